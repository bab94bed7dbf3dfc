/*
 * upload: one file being written into the bucket.
 *
 * Sequential writes stream: bytes collect in part-sized buffers; once the
 * file outgrows one part a multipart upload starts and full parts go up in
 * the background, at most conf->parts_in_flight at a time, so memory stays
 * bounded by a few parts whatever the file's size. The first part is held
 * until commit, so a writer that seeks back to patch a header still works.
 * Any other non-sequential write (or a truncate, or a read of the data)
 * switches the file to a spool in the cache directory, which is uploaded at
 * commit. Nothing is visible in the bucket before upload_commit() returns 0;
 * a failed commit aborts the multipart upload, so no partial object exists.
 *
 * Not thread-safe per object: the caller serialises calls on one upload
 * (the FUSE layer holds a lock per open file). Different uploads may be
 * used from different threads at once.
 *
 * Threads: each upload that goes multipart runs its own parts_in_flight
 * worker threads (signals blocked), started with the multipart upload and
 * joined when it completes or is aborted; an upload_write() that hands over
 * a full part blocks while that many parts are queued or in flight. Memory
 * per file is at most parts_in_flight + 2 parts, and every part buffer of
 * every upload is taken from conf->budget: a writer waits for it. The
 * Content-Type of a multipart upload is sniffed from part 1 as it is when
 * part 2 is handed out (later patches of part 1 do not change it).
 *
 * Seeking back: writes, truncates and reads within part 1 or the part
 * being filled stay in memory (while the file fits in part 1, everything
 * does). Anything else moves the file to the spool. Parts 2..n already
 * handed to S3 are no longer in memory: with conf->tee_spool the worker
 * that sends a part also writes it to the spool file, so any later seek
 * still works, at the cost of writing the whole file to the cache
 * directory (about 2.3 s of system CPU per GiB where it was measured, off
 * the writer's path, and disk space for the file). Without it (or once a
 * spool write fails, e.g. ENOSPC, which is logged) a write or truncate
 * that needs those bytes returns EIO, logged, and breaks the upload (see
 * Failures). A read that needs them returns EIO; that breaks nothing.
 *
 * Failures: any upload_write() or upload_truncate() that fails (EIO, ENOSPC,
 * EFBIG, ENOMEM, a part that could not be sent) breaks the upload: every
 * later call and the commit return EIO and the multipart upload is
 * aborted, so the bucket never gets a file that misses a write (a cp that
 * failed half-way must not leave a truncated object). A truncate to 0
 * always starts afresh.
 *
 * Limits: a streamed file has at most 10,000 parts (part_size * 10,000
 * bytes; a write past that returns EFBIG); a spooled file is sent with
 * parts grown to fit. existing = 1 content is loaded with one GET the first
 * time it is needed (a missing object counts as empty).
 *
 * Progress: from its first change until its commit (or destroy), an upload
 * counts in the MG_UPLOADS_ACTIVE gauge and its bytes written in
 * MG_UPLOAD_BYTES_ACTIVE; a write logs an info line with the bytes so far
 * every UPLOAD_PROGRESS_SECONDS, and a commit that succeeds logs one info
 * line with the key, the size, the time since the first change and MiB/s.
 */
#ifndef IMGFS_UPLOAD_H
#define IMGFS_UPLOAD_H

#define UPLOAD_PROGRESS_SECONDS 5.0

#include <stddef.h>
#include <stdint.h>

#include "base/metrics.h"
#include "store/store.h"

struct mime;
struct journal;
struct membudget;

struct upload_conf {
	uint64_t part_size;       /* bytes per multipart part (>= 5 MiB) */
	unsigned parts_in_flight; /* parts uploading at once for this file */
	const char *spool_dir;    /* where spool files are made (unlinked at once) */
	struct mime *mime;        /* Content-Type sniffer (core/mime.h), or NULL:
				   * the key's extension alone decides */
	struct journal *journal;  /* records multipart uploads in progress so
				   * that none is left behind (core/journal.h),
				   * or NULL */
	struct membudget *budget; /* part buffers are taken from it, shared with
				   * every other upload and reader
				   * (base/membudget.h); NULL: unbounded */
	int tee_spool;            /* 1: parts streamed are also written to a spool
				   * file, so a later seek back into them works
				   * (see "Seeking back" below) */
	struct membudget *spool_budget; /* bounds every spool file's
				   * bytes (the highest offset written),
				   * shared by the uploads given it (spool_max,
				   * base/membudget.h, taken only with
				   * membudget_try); NULL: unbounded. A
				   * streamed file whose spool copy would pass
				   * it goes on without the copy (seeking back
				   * into sent parts then fails with EIO); a
				   * spooled write that would pass it fails
				   * with ENOSPC */
};

struct upload;

/*
 * Start writing key. With existing = 1 the current object is the starting
 * content (loaded into the spool on the first write that needs it, e.g.
 * O_APPEND or a write without O_TRUNC); with 0 the file starts empty
 * (create or O_TRUNC). NULL with errno set. conf and s3 must outlive it.
 */
struct upload *upload_create(struct store *store, struct metrics *m,
			     const struct upload_conf *conf, const char *key,
			     int existing, uint64_t existing_size);

/* Write len bytes at off. 0 or errno (ENOSPC, EIO for a part that failed). */
int upload_write(struct upload *u, const void *data, size_t len, uint64_t off);
/* Read back written data (switches to the spool). *got = bytes read. */
int upload_read(struct upload *u, void *data, size_t len, uint64_t off,
		size_t *got);
/* Set the size (extending with zeros). 0 or errno. A size over S3's
 * largest object (5 TiB) is EFBIG, and a spool that cannot take the size
 * gives its errno; neither changes the file nor breaks the upload. */
int upload_truncate(struct upload *u, uint64_t size);
/* The object at the key is about to be removed or replaced (unlink, a
 * rename over it) while this file stays open: make the content stop
 * depending on it (an existing object nobody has written yet is loaded
 * into the spool). 0, or errno: the upload is then broken (every later
 * call fails with EIO), never reading another object's bytes. */
int upload_detach(struct upload *u);
/* The file's current size. */
uint64_t upload_size(const struct upload *u);
/* Has anything changed since create or the last successful commit? */
int upload_dirty(const struct upload *u);

/*
 * Make the object in the bucket equal to what was written: a single PUT for
 * a small file, completion of the multipart upload for a large one. The
 * Content-Type is sniffed from the first bytes. Afterwards the upload may
 * be written again (a later commit uploads the whole file again).
 * 0, or EIO (after retries; nothing partial is left in the bucket).
 * etag_out (may be NULL) gets the new ETag; when nothing had changed no
 * request is made and it gets the last commit's ETag, or "" if none.
 * Counts MC_UPLOADS or MC_UPLOAD_ERRORS (not for a commit with nothing to do).
 */
int upload_commit(struct upload *u, char etag_out[STORE_ETAG_MAX]);

/*
 * Hand the content as last committed to sink (called with chunks in
 * order; it returns non-zero to stop), from memory or the spool, never
 * from the bucket: for work on the bytes just uploaded (thumbnails). Call
 * it after a successful upload_commit() and before any other write.
 * 0; ENOENT when the bytes are no longer held here (a streamed file
 * without a spool copy, an empty or never-committed file); ECANCELED when
 * sink stopped; EIO or ENOMEM.
 */
int upload_content(struct upload *u,
		   int (*sink)(void *arg, const void *data, size_t len),
		   void *arg);

/* The POSIX attributes the next commit stores with the object (user
 * metadata, see store.h). A multipart upload already streaming got the
 * ones set before it began; its commit then fixes the object's metadata
 * with a server-side copy. */
void upload_set_attrs(struct upload *u, const struct store_attrs *a);

/*
 * The file's name changed (a rename while it is open): later loads and
 * commits use key. A multipart upload in progress was begun under the old
 * key, so the content moves to the spool first (that needs the spool copy
 * of streamed parts, see "Seeking back") and the multipart upload is
 * aborted. 0, or errno (ENOMEM, EIO): then nothing changed.
 */
int upload_rekey(struct upload *u, const char *key);

/* Abort any multipart upload in progress and free everything. */
void upload_destroy(struct upload *u);

#endif
