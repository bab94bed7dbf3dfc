/*
 * datacache_file: block files and stages of the data cache (see
 * datacache.h, datacache_int.h).
 *
 * A block file is a DC_HEADER_LEN header, then the bytes:
 *   magic "IMGFSDC1" | id (16) | block (u64) | length (u32) | CRC-32 (u32)
 * in the host's byte order (the cache is local). Stages write their blocks
 * as DIR/stage-ID.N.tmp with a zero id, and at commit put the id in and
 * rename them into place.
 */
#include "io/datacache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"

static const char dc_magic[8] = {'I', 'M', 'G', 'F', 'S', 'D', 'C', '1'};

struct dc_header {
	char magic[8];
	uint8_t id[DC_ID_LEN];
	uint64_t block;
	uint32_t len;
	uint32_t crc;
};
_Static_assert(sizeof(struct dc_header) == DC_HEADER_LEN, "header layout");

void dc_block_id(const char *key, const char *etag, uint8_t id[DC_ID_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(id, 0, DC_ID_LEN);
	if (!ctx)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(ctx, key, strlen(key) + 1) &&
	    EVP_DigestUpdate(ctx, etag, strlen(etag)) &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= DC_ID_LEN)
		memcpy(id, md, DC_ID_LEN);
	EVP_MD_CTX_free(ctx);
}

void dc_block_name(const uint8_t id[DC_ID_LEN], uint64_t block, char *name,
		   size_t size)
{
	char hex[2 * DC_ID_LEN + 1];

	for (int i = 0; i < DC_ID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	snprintf(name, size, "%.2s/%s.%llu", hex, hex,
		 (unsigned long long)block);
}

static uint32_t crc_of(const void *data, size_t len)
{
	return (uint32_t)crc32_z(crc32_z(0, NULL, 0), data, len);
}

static int header_ok(const struct dc_header *h, const uint8_t *id,
		     uint64_t block, size_t file_len)
{
	return !memcmp(h->magic, dc_magic, sizeof(dc_magic)) &&
	       !memcmp(h->id, id, DC_ID_LEN) && h->block == block &&
	       h->len && h->len <= DATACACHE_BLOCK &&
	       file_len == DC_HEADER_LEN + (size_t)h->len;
}

static int read_all(int fd, void *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EBADMSG;
		done += (size_t)n;
	}
	return 0;
}

int dc_read_block(const char *path, const uint8_t id[DC_ID_LEN],
		  uint64_t block, size_t need, struct buf *out)
{
	struct dc_header h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return ENOENT;
	rc = fstat(fd, &st) ? EBADMSG : read_all(fd, &h, sizeof(h));
	if (!rc && !header_ok(&h, id, block, (size_t)st.st_size))
		rc = EBADMSG;
	if (!rc && h.len < need)
		rc = ENODATA;
	buf_reset(out);
	if (!rc)
		rc = buf_reserve(out, h.len);
	if (!rc)
		rc = read_all(fd, out->data, h.len);
	if (!rc && crc_of(out->data, h.len) != h.crc)
		rc = EBADMSG;
	if (!rc)
		out->len = h.len;
	close(fd);
	return rc == EIO ? EBADMSG : rc;
}

/* Write header and data to a new file at path. 0 or errno. */
static int write_file(const char *path, const struct dc_header *h,
		      const void *data, size_t len)
{
	struct iovec iov[2] = {{(void *)h, sizeof(*h)}, {(void *)data, len}};
	size_t total = sizeof(*h) + len;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;
	int rc = 0;

	if (fd < 0)
		return errno;
	n = writev(fd, iov, 2);
	if (n < 0)
		rc = errno;
	else if ((size_t)n != total)
		rc = ENOSPC;
	if (close(fd) && !rc)
		rc = errno;
	if (rc)
		unlink(path);
	return rc;
}

/* The folder of name ("XX") under dc->dir exists. */
static int make_subdir(struct datacache *dc, const char *name)
{
	char path[DC_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%.2s", dc->dir, name);
	return mkdir(path, 0700) && errno != EEXIST ? errno : 0;
}

static uint64_t next_stage_id(struct datacache *dc)
{
	uint64_t id;

	pthread_mutex_lock(&dc->lock);
	id = ++dc->stages;
	pthread_mutex_unlock(&dc->lock);
	return id;
}

static void fill_header(struct dc_header *h, const uint8_t *id,
			uint64_t block, const void *data, size_t len)
{
	memcpy(h->magic, dc_magic, sizeof(dc_magic));
	if (id)
		memcpy(h->id, id, DC_ID_LEN);
	else
		memset(h->id, 0, DC_ID_LEN);
	h->block = block;
	h->len = (uint32_t)len;
	h->crc = crc_of(data, len);
}

int dc_write_block(struct datacache *dc, const char *name,
		   const uint8_t id[DC_ID_LEN], uint64_t block,
		   const void *data, size_t len, uint64_t *bytes)
{
	char tmp[DC_PATH_MAX + 32], path[DC_PATH_MAX];
	struct dc_header h;
	int rc = make_subdir(dc, name);

	fill_header(&h, id, block, data, len);
	snprintf(path, sizeof(path), "%s/%s", dc->dir, name);
	snprintf(tmp, sizeof(tmp), "%s.%llu.tmp", path,
		 (unsigned long long)next_stage_id(dc));
	if (!rc)
		rc = write_file(tmp, &h, data, len);
	if (!rc && rename(tmp, path)) {
		rc = errno;
		unlink(tmp);
	}
	if (rc) {
		dc_write_failed(dc, path, rc);
		return rc;
	}
	*bytes = sizeof(h) + len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rebuilding the index at open */

struct scan_item {
	char name[DC_NAME_MAX];
	uint64_t bytes;
	struct timespec mtime;
};

struct scan {
	struct scan_item *items;
	size_t n, cap;
};

static int is_tmp(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && !strcmp(name + n - 4, ".tmp");
}

static int scan_add(struct scan *s, const char *name, const struct stat *st)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		struct scan_item *p = realloc(s->items, cap * sizeof(*p));

		if (!p)
			return ENOMEM;
		s->items = p;
		s->cap = cap;
	}
	snprintf(s->items[s->n].name, DC_NAME_MAX, "%s", name);
	s->items[s->n].bytes = (uint64_t)st->st_size;
	s->items[s->n].mtime = st->st_mtim;
	s->n++;
	return 0;
}

/* Index the block files of one "XX" folder; delete temporary ones. */
static int scan_subdir(struct datacache *dc, const char *sub, struct scan *s)
{
	char path[DC_PATH_MAX], name[DC_NAME_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dc->dir, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while (!rc && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' || strlen(de->d_name) >= DC_NAME_MAX - 3)
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", dc->dir, sub, de->d_name);
		if (is_tmp(de->d_name)) {
			unlink(path);
			continue;
		}
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		if (snprintf(name, sizeof(name), "%s/%s", sub, de->d_name) >=
		    (int)sizeof(name))
			continue; /* cannot happen: the length was checked */
		rc = scan_add(s, name, &st);
	}
	closedir(d);
	return rc;
}

static int by_mtime(const void *a, const void *b)
{
	const struct timespec *x = &((const struct scan_item *)a)->mtime;
	const struct timespec *y = &((const struct scan_item *)b)->mtime;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

int dc_scan(struct datacache *dc)
{
	struct scan s = {0};
	struct dirent *de;
	DIR *d = opendir(dc->dir);
	int rc = 0;

	if (!d)
		return errno;
	while (!rc && (de = readdir(d))) {
		char path[DC_PATH_MAX];

		if (is_tmp(de->d_name)) {
			snprintf(path, sizeof(path), "%s/%s", dc->dir, de->d_name);
			unlink(path);
		} else if (strlen(de->d_name) == 2 && de->d_name[0] != '.') {
			rc = scan_subdir(dc, de->d_name, &s);
		}
	}
	closedir(d);
	if (s.n)
		qsort(s.items, s.n, sizeof(*s.items), by_mtime);
	for (size_t i = 0; !rc && i < s.n; i++)
		rc = dc_index_add(dc, s.items[i].name, s.items[i].bytes);
	free(s.items);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Stages: blocks of an upload, before its ETag is known */

struct staged {
	uint64_t block;
	uint32_t len;
};

struct datacache_stage {
	struct datacache *dc;
	char *key;
	uint64_t id;
	pthread_mutex_t lock;     /* parts may be sent from several threads */
	struct staged *v;         /* protected by lock */
	size_t n, cap;            /* protected by lock */
	uint64_t bytes;           /* protected by lock */
};

static void stage_path(const struct datacache_stage *st, uint64_t block,
		       char *path, size_t size)
{
	snprintf(path, size, "%s/stage-%llu.%llu.tmp", st->dc->dir,
		 (unsigned long long)st->id, (unsigned long long)block);
}

struct datacache_stage *datacache_stage_begin(struct datacache *dc,
					      const char *key)
{
	struct datacache_stage *st;

	if (!dc)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->key = strdup(key);
	if (!st->key || pthread_mutex_init(&st->lock, NULL)) {
		free(st->key);
		free(st);
		return NULL;
	}
	st->dc = dc;
	st->id = next_stage_id(dc);
	return st;
}

/* Note block (len bytes) as staged. Lock held. */
static int stage_note(struct datacache_stage *st, uint64_t block, size_t len)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].block == block) {
			st->bytes += len - st->v[i].len;
			st->v[i].len = (uint32_t)len;
			return 0;
		}
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		struct staged *p = realloc(st->v, cap * sizeof(*p));

		if (!p)
			return ENOMEM;
		st->v = p;
		st->cap = cap;
	}
	st->v[st->n].block = block;
	st->v[st->n].len = (uint32_t)len;
	st->n++;
	st->bytes += len;
	return 0;
}

static int stage_block(struct datacache_stage *st, uint64_t block,
		       const void *data, size_t len)
{
	char path[DC_PATH_MAX];
	struct dc_header h;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = st->bytes + len > datacache_stage_bound(st->dc->max_bytes) ? EFBIG
								     : 0;
	pthread_mutex_unlock(&st->lock);
	if (rc)
		return rc;
	fill_header(&h, NULL, block, data, len);
	stage_path(st, block, path, sizeof(path));
	rc = write_file(path, &h, data, len);
	if (rc) {
		dc_write_failed(st->dc, path, rc);
		return rc;
	}
	pthread_mutex_lock(&st->lock);
	rc = stage_note(st, block, len);
	pthread_mutex_unlock(&st->lock);
	if (rc)
		unlink(path);
	return rc;
}

void datacache_stage_write(struct datacache_stage *st, uint64_t off,
			   const void *data, size_t len)
{
	const char *p = data;

	if (!st || off % DATACACHE_BLOCK)
		return;
	while (len) {
		size_t n = len < DATACACHE_BLOCK ? len : DATACACHE_BLOCK;

		if (stage_block(st, off / DATACACHE_BLOCK, p, n))
			return;
		off += n;
		p += n;
		len -= n;
	}
}

/* Put the id into a staged block file and move it into the cache. */
static void stage_adopt(struct datacache_stage *st, const uint8_t *id,
			const struct staged *s)
{
	char tmp[DC_PATH_MAX], name[DC_NAME_MAX], path[DC_PATH_MAX];
	int fd, rc;

	stage_path(st, s->block, tmp, sizeof(tmp));
	dc_block_name(id, s->block, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", st->dc->dir, name);
	fd = open(tmp, O_WRONLY | O_CLOEXEC);
	rc = fd < 0 ? errno : 0;
	if (!rc && pwrite(fd, id, DC_ID_LEN, sizeof(dc_magic)) != DC_ID_LEN)
		rc = EIO;
	if (fd >= 0 && close(fd) && !rc)
		rc = errno;
	if (!rc)
		rc = make_subdir(st->dc, name);
	if (!rc && rename(tmp, path))
		rc = errno;
	if (rc) {
		unlink(tmp);
		return;
	}
	dc_account(st->dc, name, DC_HEADER_LEN + (uint64_t)s->len);
}

void datacache_stage_commit(struct datacache_stage *st, const char *etag,
			    uint64_t size)
{
	uint8_t id[DC_ID_LEN];

	if (!st)
		return;
	if (!etag || !etag[0]) {
		datacache_stage_abort(st);
		return;
	}
	dc_block_id(st->key, etag, id);
	for (size_t i = 0; i < st->n; i++) {
		const struct staged *s = &st->v[i];
		uint64_t end = s->block * DATACACHE_BLOCK + s->len;
		int whole = s->len == DATACACHE_BLOCK && end <= size;
		char tmp[DC_PATH_MAX];

		if (whole || end == size) {
			stage_adopt(st, id, s);
		} else {
			stage_path(st, s->block, tmp, sizeof(tmp));
			unlink(tmp);
		}
	}
	if (st->n)
		datacache_put_size(st->dc, st->key, etag, size);
	st->n = 0;
	datacache_stage_abort(st);
}

void datacache_stage_abort(struct datacache_stage *st)
{
	char tmp[DC_PATH_MAX];

	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++) {
		stage_path(st, st->v[i].block, tmp, sizeof(tmp));
		unlink(tmp);
	}
	pthread_mutex_destroy(&st->lock);
	free(st->v);
	free(st->key);
	free(st);
}
