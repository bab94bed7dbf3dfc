/*
 * store: the object store every service stands on, as a table of
 * operations (the S3 client in s3.h implements it; so can anything that
 * behaves like S3, such as an in-memory store for tests).
 *
 * Keys are full object keys ("uploads/a b.jpg"), unencoded. Every call is
 * synchronous and thread-safe. ETags are quoted as S3 sends them; a
 * multipart object's ETag is the MD5 of its parts' MD5s with a "-N" suffix
 * (store_mpu_etag).
 *
 * Returns: 0; ENOENT (no such key or upload); EACCES (refused); EEXIST or
 * EAGAIN (a precondition failed: if_none_match or if_match); ERANGE (a
 * range past the end); EIO (anything else, logged by the implementation);
 * ENOMEM; ECANCELED (a sink asked to stop).
 *
 * An implementation embeds struct store as its first member and fills in
 * ops; the store_* functions below dispatch through it.
 */
#ifndef IMGFS_STORE_H
#define IMGFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/buf.h"

#define STORE_ETAG_MAX 80       /* quoted ETag, including a multipart "-N" */
#define STORE_META_MAX 128
#define STORE_COPY_MAX (5ULL << 30) /* S3's largest CopyObject */

/*
 * POSIX attributes kept as user metadata, as s3fs and rclone keep them:
 * x-amz-meta-mtime (seconds since the epoch, with a fraction when the
 * nanoseconds are not 0: "1500000000.25" as rclone writes it; s3fs reads
 * the whole seconds), x-amz-meta-mode (decimal st_mode, file type bits
 * included, as s3fs writes it), x-amz-meta-uid, x-amz-meta-gid (decimal),
 * and x-amz-meta-rdev (decimal dev_t of a device node, as s3fs writes it).
 * have says which are set; a value that does not parse is left out.
 */
#define STORE_ATTR_MTIME 1u
#define STORE_ATTR_MODE 2u
#define STORE_ATTR_UID 4u
#define STORE_ATTR_GID 8u
#define STORE_ATTR_RDEV 16u

struct store_attrs {
	unsigned have;       /* STORE_ATTR_* */
	int64_t mtime_sec;
	long mtime_nsec;     /* 0..999999999 */
	uint32_t mode;       /* st_mode, type bits included */
	uint32_t uid, gid;
	uint64_t rdev;       /* a device's number */
};

struct store_object {
	uint64_t size;
	time_t mtime;                      /* Last-Modified */
	struct store_attrs attrs;          /* head/get only */
	char etag[STORE_ETAG_MAX];         /* as S3 sends it, with quotes */
	char content_type[STORE_META_MAX]; /* head/get only */
	char source_etag[STORE_ETAG_MAX];  /* x-amz-meta-source-etag, head/get */
};

struct store_put_opts {
	const char *content_type;   /* NULL: application/octet-stream */
	const char *source_etag;    /* stored as x-amz-meta-source-etag, or NULL */
	const char *if_none_match;  /* "*" to create only, or NULL */
	const struct store_attrs *attrs; /* stored as user metadata, or NULL */
};

/* Receives a GET's bytes in order; non-zero stops it with ECANCELED. */
typedef int (*store_sink_fn)(void *arg, const void *data, size_t len);

struct store_list_entry {
	char *key;         /* full key */
	uint64_t size;
	time_t mtime;
	char etag[STORE_ETAG_MAX];
};

/* One page of a listing; release with store_list_page_release(). */
struct store_list_page {
	struct store_list_entry *entries;
	size_t nentries;
	char **prefixes;   /* common prefixes, full, ending with the delimiter */
	size_t nprefixes;
	char *next_token;  /* NULL when this was the last page */
};

struct store_part {
	unsigned number;
	char etag[STORE_ETAG_MAX];
};

/* Called for each multipart upload in progress. */
typedef void (*store_mpu_fn)(void *arg, const char *key,
			     const char *upload_id, time_t initiated);

struct store;

struct store_ops {
	int (*head)(struct store *st, const char *key, struct store_object *out);
	/* Bytes [off, off+len) (len 0: to the end) to sink, in order, never a
	 * byte twice (retries resume). info (may be NULL) gets the object's
	 * attributes; if_match (may be NULL) pins the ETag (else EAGAIN). */
	int (*get)(struct store *st, const char *key, uint64_t off,
		   uint64_t len, const char *if_match, store_sink_fn sink,
		   void *arg, struct store_object *info);
	/* etag_out (may be NULL) gets the new ETag. */
	int (*put)(struct store *st, const char *key, const void *data,
		   size_t len, const struct store_put_opts *opts,
		   char etag_out[STORE_ETAG_MAX]);
	/* Deleting a missing key is 0. */
	int (*del)(struct store *st, const char *key);
	/* Server-side copy. replace NULL keeps the source's metadata and
	 * Content-Type; otherwise they are replaced by replace's
	 * (content_type, source_etag, attrs; if_none_match is ignored).
	 * src_size is the source's size as last seen: an object larger than
	 * STORE_COPY_MAX (or an implementation's own lower limit) is copied
	 * part by part (UploadPartCopy). etag_out
	 * (may be NULL) gets the new object's ETag, which S3 may make
	 * different from the source's (multipart, SSE-KMS). src_key may equal
	 * dst_key (to change metadata). */
	int (*copy)(struct store *st, const char *src_key, const char *dst_key,
		    const struct store_put_opts *replace, uint64_t src_size,
		    char etag_out[STORE_ETAG_MAX]);
	/* List under prefix with delimiter (NULL: none), from token (NULL:
	 * the first page), at most max_keys (0: 1000). */
	int (*list)(struct store *st, const char *prefix, const char *delimiter,
		    const char *token, unsigned max_keys,
		    struct store_list_page *out);
	/* *upload_id is allocated (caller frees). */
	int (*mpu_create)(struct store *st, const char *key,
			  const struct store_put_opts *opts, char **upload_id);
	int (*mpu_part)(struct store *st, const char *key,
			const char *upload_id, unsigned part_number,
			const void *data, size_t len,
			char etag_out[STORE_ETAG_MAX]);
	/* ENOENT: no such upload. An implementation that retries a
	 * completion and then finds no such upload checks with
	 * store_mpu_landed() whether its first attempt made the object
	 * (then 0), so a caller checks only after other errors. */
	int (*mpu_complete)(struct store *st, const char *key,
			    const char *upload_id,
			    const struct store_part *parts, size_t nparts,
			    char etag_out[STORE_ETAG_MAX]);
	int (*mpu_abort)(struct store *st, const char *key,
			 const char *upload_id);
	int (*mpu_list)(struct store *st, const char *prefix, store_mpu_fn fn,
			void *arg);
};

struct store {
	const struct store_ops *ops;
};

static inline int store_head(struct store *st, const char *key,
			     struct store_object *out)
{
	return st->ops->head(st, key, out);
}

static inline int store_get(struct store *st, const char *key, uint64_t off,
			    uint64_t len, const char *if_match,
			    store_sink_fn sink, void *arg,
			    struct store_object *info)
{
	return st->ops->get(st, key, off, len, if_match, sink, arg, info);
}

static inline int store_put(struct store *st, const char *key,
			    const void *data, size_t len,
			    const struct store_put_opts *opts,
			    char etag_out[STORE_ETAG_MAX])
{
	return st->ops->put(st, key, data, len, opts, etag_out);
}

static inline int store_delete(struct store *st, const char *key)
{
	return st->ops->del(st, key);
}

static inline int store_copy(struct store *st, const char *src_key,
			     const char *dst_key,
			     const struct store_put_opts *replace,
			     uint64_t src_size, char etag_out[STORE_ETAG_MAX])
{
	return st->ops->copy(st, src_key, dst_key, replace, src_size, etag_out);
}

static inline int store_list(struct store *st, const char *prefix,
			     const char *delimiter, const char *token,
			     unsigned max_keys, struct store_list_page *out)
{
	return st->ops->list(st, prefix, delimiter, token, max_keys, out);
}

static inline int store_mpu_create(struct store *st, const char *key,
				   const struct store_put_opts *opts,
				   char **upload_id)
{
	return st->ops->mpu_create(st, key, opts, upload_id);
}

static inline int store_mpu_part(struct store *st, const char *key,
				 const char *upload_id, unsigned part_number,
				 const void *data, size_t len,
				 char etag_out[STORE_ETAG_MAX])
{
	return st->ops->mpu_part(st, key, upload_id, part_number, data, len,
				 etag_out);
}

static inline int store_mpu_complete(struct store *st, const char *key,
				     const char *upload_id,
				     const struct store_part *parts,
				     size_t nparts,
				     char etag_out[STORE_ETAG_MAX])
{
	return st->ops->mpu_complete(st, key, upload_id, parts, nparts,
				     etag_out);
}

static inline int store_mpu_abort(struct store *st, const char *key,
				  const char *upload_id)
{
	return st->ops->mpu_abort(st, key, upload_id);
}

static inline int store_mpu_list(struct store *st, const char *prefix,
				 store_mpu_fn fn, void *arg)
{
	return st->ops->mpu_list(st, prefix, fn, arg);
}

/* GET the whole object, appended to out. */
int store_get_buf(struct store *st, const char *key, struct buf *out,
		  struct store_object *info);

/* Free what a page holds and zero it. */
void store_list_page_release(struct store_list_page *p);

/* The quoted MD5 ETag S3 gives a single-part object of these bytes.
 * 0 or EIO (no MD5 available). */
int store_md5_etag(const void *data, size_t len, char out[STORE_ETAG_MAX]);

/* The 16 bytes of an MD5 ETag (quotes optional). 0, or EINVAL when etag is
 * not one (a multipart ETag, or an SSE-KMS part's). */
int store_etag_md5(const char *etag, unsigned char md5[16]);

/*
 * The ETag S3 gives the object completed from these parts, in order: the
 * MD5 of the parts' binary MD5s, "-" and the count, quoted. 0; EINVAL when
 * there is no part or a part's ETag is no MD5; EIO (no MD5 available).
 */
int store_mpu_etag(const struct store_part *parts, size_t nparts,
		   char out[STORE_ETAG_MAX]);

/*
 * A completion failed, perhaps after the server acted (a lost reply): is
 * the object at key made of exactly these parts? One HEAD. 1 (etag gets
 * the object's ETag) or 0 (not, or it cannot be told).
 */
int store_mpu_landed(struct store *st, const char *key,
		     const struct store_part *parts, size_t nparts,
		     char etag[STORE_ETAG_MAX]);

#endif
