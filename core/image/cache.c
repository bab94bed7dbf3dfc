/*
 * cache: the thumbnail cache on SQLite (see cache.h).
 *
 * One table, one row per (key, spec, etag); the small columns come first
 * so that look-ups and eviction never read a blob's overflow pages. The
 * size column is what an entry counts against the bound: the thumbnail's
 * length, or the error text's for a failure. Writes that change the
 * totals run in one transaction and update the in-memory totals only once
 * it has committed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "image/cache.h"
#include "base/log.h"
#include "base/privfile.h"

#define CACHE_BUSY_MS 5000
#define CACHE_TOUCH_MS 1000

static const char cache_schema[] =
	"CREATE TABLE IF NOT EXISTS thumbs("
	" id INTEGER PRIMARY KEY,"
	" key TEXT NOT NULL, spec TEXT NOT NULL, etag TEXT NOT NULL,"
	" size INTEGER NOT NULL, atime INTEGER NOT NULL,"
	" format TEXT, error TEXT, data BLOB,"
	" UNIQUE(key, spec, etag));"
	"CREATE INDEX IF NOT EXISTS thumbs_lru ON thumbs(atime, id);"
	"CREATE TABLE IF NOT EXISTS dims("
	" key TEXT PRIMARY KEY, etag TEXT NOT NULL,"
	" width INTEGER NOT NULL, height INTEGER NOT NULL);"
	"PRAGMA user_version=1;";

enum cache_stmt {
	ST_GET, ST_PEEK, ST_TOUCH, ST_DROP_SPEC, ST_INSERT, ST_EVICT,
	ST_FORGET, ST_TOTALS, ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_DIMS_GET, ST_DIMS_PUT, ST_DIMS_FORGET, ST__COUNT
};

static const char *const cache_sql[ST__COUNT] = {
	[ST_GET] = "SELECT id, atime, format, error, data FROM thumbs"
		   " WHERE key=?1 AND spec=?2 AND etag=?3",
	[ST_PEEK] = "SELECT size, error IS NOT NULL FROM thumbs"
		    " WHERE key=?1 AND spec=?2 AND etag=?3",
	[ST_TOUCH] = "UPDATE thumbs SET atime=?2 WHERE id=?1",
	[ST_DROP_SPEC] = "DELETE FROM thumbs WHERE key=?1 AND spec=?2"
			 " RETURNING size",
	[ST_INSERT] = "INSERT INTO thumbs(key, spec, etag, size, atime,"
		      " format, error, data) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
	[ST_EVICT] = "DELETE FROM thumbs WHERE id=(SELECT id FROM thumbs"
		     " ORDER BY atime, id LIMIT 1) RETURNING size",
	[ST_FORGET] = "DELETE FROM thumbs WHERE key=?1 RETURNING size",
	[ST_TOTALS] = "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM thumbs",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_DIMS_GET] = "SELECT width, height FROM dims WHERE key=?1 AND etag=?2",
	[ST_DIMS_PUT] = "INSERT OR REPLACE INTO dims(key, etag, width, height)"
			" VALUES(?1,?2,?3,?4)",
	[ST_DIMS_FORGET] = "DELETE FROM dims WHERE key=?1",
};

struct cache {
	pthread_mutex_t lock;
	sqlite3 *db;                 /* protected by lock */
	sqlite3_stmt *st[ST__COUNT]; /* protected by lock */
	uint64_t bytes;              /* protected by lock */
	uint64_t entries;            /* protected by lock */
	uint64_t max_bytes;
	struct metrics *m;           /* may be NULL */
	char *path;                  /* the database file */
};

/* What a write transaction removed, applied to the totals at commit. */
struct cache_delta {
	uint64_t freed;
	uint64_t removed;
	uint64_t evicted;
};

static int64_t cache_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Log a failed SQLite call and map it to an errno. */
static int cache_err(struct cache *c, const char *what, int rc)
{
	log_error("thumbnail cache %s: %s: %s", c->path, what,
		  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	switch (rc) {
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_FULL:
		return ENOSPC;
	default:
		return EIO;
	}
}

static void cache_gauges(struct cache *c)
{
	if (!c->m)
		return;
	metrics_gauge_set(c->m, MG_CACHE_BYTES, (int64_t)c->bytes);
	metrics_gauge_set(c->m, MG_CACHE_ENTRIES, (int64_t)c->entries);
}

static void cache_count(struct cache *c, enum metrics_counter mc, uint64_t n)
{
	if (c->m && n)
		metrics_add(c->m, mc, n);
}

/* Bind key and spec as ?1 ?2, and the etag as ?3 if st has one. */
static int cache_bind_key(sqlite3_stmt *st, const struct cache_key *k)
{
	int rc = sqlite3_bind_text(st, 1, k->key, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, k->spec, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 3)
		rc = sqlite3_bind_text(st, 3, k->etag, -1, SQLITE_STATIC);
	return rc;
}

static void cache_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a DELETE ... RETURNING size to the end, adding to d. */
static int cache_drain(struct cache *c, sqlite3_stmt *st, uint64_t *freed,
		       uint64_t *removed)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*freed += (uint64_t)sqlite3_column_int64(st, 0);
		(*removed)++;
	}
	cache_done(st);
	return rc == SQLITE_DONE ? 0 : cache_err(c, "delete", rc);
}

static int cache_simple(struct cache *c, enum cache_stmt s)
{
	int rc = sqlite3_step(c->st[s]);

	sqlite3_reset(c->st[s]);
	return rc == SQLITE_DONE ? 0 : cache_err(c, cache_sql[s], rc);
}

static int cache_load_totals(struct cache *c)
{
	sqlite3_stmt *st = c->st[ST_TOTALS];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		c->bytes = (uint64_t)sqlite3_column_int64(st, 0);
		c->entries = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : cache_err(c, "totals", rc);
}

/* mkdir -p with mode 0700 for the parts that do not exist. */
static int cache_mkdirs(const char *dir)
{
	size_t n = strlen(dir);
	char *p = malloc(n + 1);
	int rc = 0;

	if (!p)
		return ENOMEM;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n && !rc; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0700) && errno != EEXIST)
			rc = errno;
		p[i] = i < n ? '/' : '\0';
	}
	free(p);
	return rc;
}

static void cache_db_close(struct cache *c)
{
	for (int i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(c->st[i]);
		c->st[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

/* Open the database, set it up and prepare every statement; the SQLite
 * result code of the first failure, else SQLITE_OK. */
static int cache_db_open(struct cache *c)
{
	int rc = privfile_db(c->path);

	if (rc) {
		log_error("thumbnail cache %s: cannot make it private: %s",
			  c->path, strerror(rc));
		return SQLITE_CANTOPEN;
	}
	rc = sqlite3_open_v2(c->path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					 SQLITE_OPEN_NOMUTEX,
				 NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(c->db, CACHE_BUSY_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL;"
				  "PRAGMA synchronous=NORMAL;",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, cache_schema, NULL, NULL, NULL);
	for (int i = 0; i < ST__COUNT && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(c->db, cache_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &c->st[i],
					NULL);
	if (rc == SQLITE_OK && cache_load_totals(c))
		rc = SQLITE_CORRUPT;
	return rc;
}

/* A file that is not a usable database is only a lost cache: remove it
 * (and its WAL) so that it is created anew. */
static void cache_db_remove(struct cache *c)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	size_t n = strlen(c->path);
	char *p = malloc(n + 5);

	if (!p)
		return;
	for (size_t i = 0; i < 3; i++) {
		memcpy(p, c->path, n);
		memcpy(p + n, suffix[i], strlen(suffix[i]) + 1);
		unlink(p);
	}
	free(p);
}

static int cache_setup(struct cache *c, const struct cache_conf *conf)
{
	struct buf path = BUF_INIT;
	int rc = cache_mkdirs(conf->dir);

	if (rc) {
		log_error("thumbnail cache: cannot create %s: %s", conf->dir,
			  strerror(rc));
		return rc;
	}
	if (buf_addf(&path, "%s/%s", conf->dir, CACHE_DB_NAME))
		return ENOMEM;
	c->path = buf_detach(&path, NULL);
	if (!c->path)
		return ENOMEM;
	rc = cache_db_open(c);
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
		log_warn("thumbnail cache %s: not a usable database, starting "
			 "anew", c->path);
		cache_db_close(c);
		cache_db_remove(c);
		rc = cache_db_open(c);
	}
	if (rc != SQLITE_OK) {
		rc = cache_err(c, "open", rc);
		cache_db_close(c);
	}
	return rc;
}

struct cache *cache_open(const struct cache_conf *conf, struct metrics *m)
{
	struct cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return NULL;
	c->max_bytes = conf->max_bytes;
	c->m = m;
	rc = pthread_mutex_init(&c->lock, NULL);
	if (rc) {
		free(c);
		errno = rc;
		return NULL;
	}
	rc = cache_setup(c, conf);
	if (rc) {
		pthread_mutex_destroy(&c->lock);
		free(c->path);
		free(c);
		errno = rc;
		return NULL;
	}
	cache_gauges(c);
	return c;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	cache_db_close(c);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}

/* Copy the row under ST_GET into out/format/err: 0, EIO or ENOMEM. */
static int cache_get_row(sqlite3_stmt *st, struct buf *out, char *format,
			 struct buf *err)
{
	const unsigned char *fmt = sqlite3_column_text(st, 2);
	const unsigned char *error = sqlite3_column_text(st, 3);
	const void *data = sqlite3_column_blob(st, 4);
	size_t len = (size_t)sqlite3_column_bytes(st, 4);

	if (error) {
		if (err && buf_adds(err, (const char *)error))
			return ENOMEM;
		return EIO;
	}
	if (format)
		snprintf(format, CACHE_FORMAT_MAX, "%s",
			 fmt ? (const char *)fmt : "");
	return len && buf_add(out, data, len) ? ENOMEM : 0;
}

/* Record an access, at most once per CACHE_TOUCH_MS per entry. */
static void cache_touch(struct cache *c, int64_t id, int64_t atime)
{
	sqlite3_stmt *st = c->st[ST_TOUCH];
	int64_t now = cache_now_ms();

	if (now - atime < CACHE_TOUCH_MS)
		return;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_step(st); /* best effort: only the LRU order is lost */
	cache_done(st);
}

/* Bind k to st and take its first step: SQLITE_ROW, SQLITE_DONE or an
 * error code. Lock held. */
static int cache_step_key(sqlite3_stmt *st, const struct cache_key *k)
{
	int rc = cache_bind_key(st, k);

	return rc == SQLITE_OK ? sqlite3_step(st) : rc;
}

int cache_get(struct cache *c, const struct cache_key *k, struct buf *out,
	      char *format, struct buf *err)
{
	sqlite3_stmt *st = c->st[ST_GET];
	int64_t id, atime;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = cache_step_key(st, k);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		atime = sqlite3_column_int64(st, 1);
		rc = cache_get_row(st, out, format, err);
		cache_done(st);
		cache_touch(c, id, atime);
		cache_count(c, MC_CACHE_HITS, rc == 0);
	} else {
		cache_done(st);
		rc = rc == SQLITE_DONE ? ENOENT : cache_err(c, "get", rc);
		cache_count(c, MC_CACHE_MISSES, 1);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_peek(struct cache *c, const struct cache_key *k, uint64_t *size)
{
	sqlite3_stmt *st = c->st[ST_PEEK];
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = cache_step_key(st, k);
	if (rc == SQLITE_ROW) {
		*size = (uint64_t)sqlite3_column_int64(st, 0);
		rc = sqlite3_column_int(st, 1) ? EIO : 0;
	} else {
		rc = rc == SQLITE_DONE ? ENOENT : cache_err(c, "peek", rc);
	}
	cache_done(st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int cache_insert(struct cache *c, const struct cache_key *k,
			const void *data, size_t len, const char *format,
			const char *error)
{
	sqlite3_stmt *st = c->st[ST_INSERT];
	uint64_t size = error ? strlen(error) : len;
	int rc = cache_bind_key(st, k);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)size);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, cache_now_ms());
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 6, format, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 7, error, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob64(st, 8, data, error ? 0 : len,
					 SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	cache_done(st);
	return rc == SQLITE_DONE ? 0 : cache_err(c, "insert", rc);
}

static uint64_t cache_less(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Evict least recently used entries until the total (after d) fits. */
static int cache_evict(struct cache *c, uint64_t added, struct cache_delta *d)
{
	int rc = 0;

	while (!rc && cache_less(c->bytes + added, d->freed) > c->max_bytes &&
	       c->entries + 1 > d->removed) {
		uint64_t removed = d->removed;

		rc = cache_drain(c, c->st[ST_EVICT], &d->freed, &d->removed);
		if (removed == d->removed)
			break;
		d->evicted += d->removed - removed;
	}
	return rc;
}

/* Replace the entries of (key, spec) by one row, evicting to the bound. */
static int cache_store(struct cache *c, const struct cache_key *k,
		       const void *data, size_t len, const char *format,
		       const char *error)
{
	struct cache_delta d = {0, 0, 0};
	uint64_t added = error ? strlen(error) : len;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = cache_simple(c, ST_BEGIN);
	if (rc)
		goto out_unlock;
	rc = cache_bind_key(c->st[ST_DROP_SPEC], k) == SQLITE_OK
		     ? cache_drain(c, c->st[ST_DROP_SPEC], &d.freed, &d.removed)
		     : cache_err(c, "bind", SQLITE_RANGE);
	if (!rc)
		rc = cache_insert(c, k, data, len, format, error);
	if (!rc)
		rc = cache_evict(c, added, &d);
	if (!rc)
		rc = cache_simple(c, ST_COMMIT);
	if (rc) {
		cache_simple(c, ST_ROLLBACK);
		goto out_unlock;
	}
	c->bytes = cache_less(c->bytes + added, d.freed);
	c->entries = cache_less(c->entries + 1, d.removed);
	cache_count(c, MC_CACHE_EVICTIONS, d.evicted);
	cache_gauges(c);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_put(struct cache *c, const struct cache_key *k, const void *data,
	      size_t len, const char *format)
{
	return cache_store(c, k, data, len, format, NULL);
}

int cache_put_failure(struct cache *c, const struct cache_key *k,
		      const char *error)
{
	return cache_store(c, k, NULL, 0, NULL, error && *error ? error : "error");
}

/* Run a dims statement that returns no row. Locks held: c->lock. */
static int cache_dims_run(struct cache *c, sqlite3_stmt *st, const char *key,
			  const char *etag, unsigned width, unsigned height)
{
	int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK && etag)
		rc = sqlite3_bind_text(st, 2, etag, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && etag)
		rc = sqlite3_bind_int64(st, 3, width);
	if (rc == SQLITE_OK && etag)
		rc = sqlite3_bind_int64(st, 4, height);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : cache_err(c, "dims", rc);
	cache_done(st);
	return rc;
}

int cache_put_dims(struct cache *c, const char *key, const char *etag,
		   unsigned width, unsigned height)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = cache_dims_run(c, c->st[ST_DIMS_PUT], key, etag, width, height);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_get_dims(struct cache *c, const char *key, const char *etag,
		   unsigned *width, unsigned *height)
{
	sqlite3_stmt *st = c->st[ST_DIMS_GET];
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, etag, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*width = (unsigned)sqlite3_column_int64(st, 0);
		*height = (unsigned)sqlite3_column_int64(st, 1);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? ENOENT : cache_err(c, "dims", rc);
	}
	cache_done(st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cache_forget_source(struct cache *c, const char *key)
{
	sqlite3_stmt *st = c->st[ST_FORGET];
	uint64_t freed = 0, removed = 0;
	int rc;

	pthread_mutex_lock(&c->lock);
	if (cache_dims_run(c, c->st[ST_DIMS_FORGET], key, NULL, 0, 0)) {
		pthread_mutex_unlock(&c->lock);
		return EIO;
	}
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = rc == SQLITE_OK ? cache_drain(c, st, &freed, &removed)
			     : cache_err(c, "forget", rc);
	if (!rc) {
		c->bytes = cache_less(c->bytes, freed);
		c->entries = cache_less(c->entries, removed);
		cache_gauges(c);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void cache_totals(struct cache *c, uint64_t *bytes, uint64_t *entries)
{
	pthread_mutex_lock(&c->lock);
	if (bytes)
		*bytes = c->bytes;
	if (entries)
		*entries = c->entries;
	pthread_mutex_unlock(&c->lock);
}

int cache_check(struct cache *c)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *r = sqlite3_column_text(st, 0);

		rc = r && strcmp((const char *)r, "ok") == 0 ? 0 : EIO;
		if (rc)
			log_error("thumbnail cache %s: integrity check: %s",
				  c->path, r ? (const char *)r : "no result");
	} else {
		rc = cache_err(c, "integrity check", rc);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
