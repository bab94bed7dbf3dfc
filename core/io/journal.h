/*
 * journal: multipart uploads in progress, remembered in the cache directory
 * so that none is left behind in the bucket.
 *
 * An upload is recorded when its multipart upload is created and forgotten
 * when it completes or is aborted. One whose abort failed (the server was
 * unreachable) is marked orphaned; so is every upload still recorded when
 * the journal is opened, which a killed daemon left behind. A janitor
 * thread aborts orphans: at once, then every JOURNAL_RETRY_SECONDS until
 * each abort succeeds (or S3 says the upload is gone).
 *
 * Thread-safe. Stored in SQLite (cache_dir/uploads.db, WAL).
 */
#ifndef IMGFS_JOURNAL_H
#define IMGFS_JOURNAL_H

#include "base/metrics.h"
#include "store/store.h"

#define JOURNAL_RETRY_SECONDS 10

struct journal;

/* Open (or create) the journal in dir, marking what it holds orphaned.
 * NULL with errno set (logged). */
struct journal *journal_open(const char *dir);
/* Stop the janitor (if started) and close. */
void journal_close(struct journal *j);

/* Start the janitor thread aborting orphans with s3 (which must outlive
 * the journal's janitor). 0 or errno. */
int journal_start(struct journal *j, struct store *store);

/*
 * Record a multipart upload of key about to be created, before the request
 * is sent (a crash between S3 creating it and the reply being handled must
 * not leave it unknown); returns a handle for journal_bind(), 0 on failure
 * (logged; e.g. cache_dir is full): the caller must then not create the
 * upload, since a crash would leave it unknown. A record never bound (the
 * create's reply was never handled) is dropped at the next sweep with a
 * warning: S3 lists nothing that tells such an upload from another
 * client's upload of the same key, so it is left to the bucket's lifecycle
 * rule rather than risk aborting someone else's. Only uploads whose ids
 * this journal recorded are ever aborted.
 */
long long journal_begin(struct journal *j, const char *key);
/* The create succeeded with upload_id. 0, or EIO (logged): the upload is
 * not recorded, and the caller must abort it. */
int journal_bind(struct journal *j, long long handle, const char *upload_id);
/* The create failed: forget the record. */
void journal_cancel(struct journal *j, long long handle);
void journal_done(struct journal *j, const char *upload_id);
/* The abort of upload_id failed: leave it to the janitor. */
void journal_orphan(struct journal *j, const char *upload_id);

/* Abort every orphan now; returns how many remain. */
int journal_sweep(struct journal *j, struct store *store);

#endif
