/*
 * mem_int: the in-memory store's private parts, shared by mem.c (objects,
 * faults, counters), mem_list.c (listings) and mem_mpu.c (multipart
 * uploads). Not for use outside the mem module.
 */
#ifndef IMGFS_MEM_INT_H
#define IMGFS_MEM_INT_H

#include <pthread.h>

#include "store/mem.h"

/* Immutable bytes shared by an object, its copies and the gets reading
 * them; refs is changed atomically, so a get can drop it without the lock. */
struct mem_blob {
	unsigned refs;
	size_t len;
	unsigned char data[];
};

struct mem_obj {
	char *key;
	struct mem_blob *blob;
	time_t mtime;
	char etag[STORE_ETAG_MAX];
	char content_type[STORE_META_MAX];
	char source_etag[STORE_ETAG_MAX];
	struct store_attrs attrs;  /* user metadata: mtime, mode, uid, gid */
};

struct mem_part {
	unsigned number;
	struct mem_blob *blob;
	char etag[STORE_ETAG_MAX];
};

struct mem_upload {
	struct mem_upload *next;
	unsigned long seq;        /* the N of its id, in creation order */
	char *id;
	char *key;
	time_t initiated;
	char content_type[STORE_META_MAX];
	char source_etag[STORE_ETAG_MAX];
	struct store_attrs attrs;
	struct mem_part *parts;   /* by number */
	size_t nparts, cap;
};

struct mem_fault_slot {
	struct mem_fault f;
	int armed;
	unsigned skip;            /* matching calls still to pass */
	unsigned left;            /* failures still to give, unless forever */
};

struct mem_store {
	struct store store;       /* first: mem_of() casts */
	pthread_mutex_t lock;
	struct mem_obj **objs;    /* by key (strcmp); protected by lock */
	size_t nobjs, cap;        /* protected by lock */
	struct mem_upload *uploads; /* in creation order; protected by lock */
	unsigned long next_upload;  /* protected by lock */
	uint64_t min_part;          /* protected by lock */
	struct mem_fault_slot faults[MEM_FAULTS]; /* protected by lock */
	unsigned latency[MEM_OPS + 1];            /* protected by lock */
	mem_hook_fn hook;                         /* protected by lock */
	void *hook_arg;                           /* protected by lock */
	unsigned long calls[MEM_OPS];             /* protected by lock */
	uint64_t bytes_read, bytes_written;       /* protected by lock */
};

/* What mem_enter() decided for one call. */
struct mem_call {
	int lose;  /* take effect, then return err */
	int err;
};

/*
 * Count a call of op, run the hook and latency, and apply the faults.
 * Returns 0 to go ahead (then finish with mem_leave()), or the errno to
 * return at once.
 */
int mem_enter(struct mem_store *m, enum mem_op op, const char *key,
	      struct mem_call *c);
/* The result of a call that went ahead and ended with err. */
static inline int mem_leave(const struct mem_call *c, int err)
{
	return c->lose ? c->err : err;
}

/* A blob of len bytes (refs 1) holding a copy of data, or, with data
 * NULL, for the caller to fill before sharing it. NULL on ENOMEM. */
struct mem_blob *mem_blob_new(const void *data, size_t len);
struct mem_blob *mem_blob_ref(struct mem_blob *b);
void mem_blob_unref(struct mem_blob *b);

/* The object at key, or NULL. Lock held. */
struct mem_obj *mem_find(struct mem_store *m, const char *key);
/* Where key is or would go in objs. Lock held. */
size_t mem_lower_bound(struct mem_store *m, const char *key);
/* Store an object made of blob (the reference is taken over, also on
 * failure), replacing any at key. Lock held. 0 or ENOMEM. */
int mem_insert(struct mem_store *m, const char *key, struct mem_blob *blob,
	       const char *etag, const struct store_put_opts *opts);

/* Copy at most n - 1 bytes of s (NULL: "") and a NUL into out. */
void mem_copy_str(char *out, size_t n, const char *s);
/* Do two ETags name the same version (quotes optional on either)? */
int mem_etag_equal(const char *a, const char *b);

/* The store operations of mem_list.c and mem_mpu.c. */
int mem_list(struct store *st, const char *prefix, const char *delimiter,
	     const char *token, unsigned max_keys,
	     struct store_list_page *out);
int mem_mpu_create(struct store *st, const char *key,
		   const struct store_put_opts *opts, char **upload_id);
int mem_mpu_part(struct store *st, const char *key, const char *upload_id,
		 unsigned part_number, const void *data, size_t len,
		 char etag_out[STORE_ETAG_MAX]);
int mem_mpu_complete(struct store *st, const char *key,
		     const char *upload_id, const struct store_part *parts,
		     size_t nparts, char etag_out[STORE_ETAG_MAX]);
int mem_mpu_abort(struct store *st, const char *key, const char *upload_id);
int mem_mpu_list(struct store *st, const char *prefix, store_mpu_fn fn,
		 void *arg);
/* Free one upload (unlinked already). */
void mem_upload_free(struct mem_upload *u);

#endif
