/*
 * journal: SQLite record of multipart uploads in progress (see journal.h).
 *
 * Table mpu(upload_id PRIMARY KEY, key, orphan). One connection guarded by
 * a mutex; the janitor sleeps on a condition variable so that close wakes
 * it at once.
 */
#include "journal.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"

struct journal {
	sqlite3 *db;            /* protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t janitor;
	int running;            /* the janitor exists; protected by lock */
	int stopping;           /* protected by lock */
	struct s3_client *s3;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS mpu(upload_id TEXT PRIMARY KEY,"
	" key TEXT NOT NULL, orphan INTEGER NOT NULL DEFAULT 0);"
	"UPDATE mpu SET orphan = 1;";

struct journal *journal_open(const char *dir)
{
	struct journal *j = calloc(1, sizeof(*j));
	struct buf path = BUF_INIT;

	if (!j || buf_addf(&path, "%s/uploads.db", dir))
		goto out_nomem;
	if (sqlite3_open(path.data, &j->db) != SQLITE_OK ||
	    sqlite3_busy_timeout(j->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(j->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		log_error("journal %s: %s", path.data,
			  j->db ? sqlite3_errmsg(j->db) : "cannot open");
		sqlite3_close(j->db);
		free(j);
		buf_release(&path);
		errno = EIO;
		return NULL;
	}
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	buf_release(&path);
	return j;

out_nomem:
	free(j);
	buf_release(&path);
	errno = ENOMEM;
	return NULL;
}

/* Run one statement with up to two text parameters. Lock held. */
static int exec2(struct journal *j, const char *sql, const char *a,
		 const char *b)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK && a)
		sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK && b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warn("journal: %s", sqlite3_errmsg(j->db));
		return EIO;
	}
	return 0;
}

static void locked_exec(struct journal *j, const char *sql, const char *a,
			const char *b)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	exec2(j, sql, a, b);
	pthread_mutex_unlock(&j->lock);
}

void journal_add(struct journal *j, const char *key, const char *upload_id)
{
	locked_exec(j, "INSERT OR REPLACE INTO mpu(upload_id, key) VALUES(?, ?)",
		    upload_id, key);
}

void journal_done(struct journal *j, const char *upload_id)
{
	locked_exec(j, "DELETE FROM mpu WHERE upload_id = ?", upload_id, NULL);
}

void journal_orphan(struct journal *j, const char *upload_id)
{
	locked_exec(j, "UPDATE mpu SET orphan = 1 WHERE upload_id = ?",
		    upload_id, NULL);
	if (j) {
		pthread_mutex_lock(&j->lock);
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->lock);
	}
}

/* The orphans, as NUL-separated "upload_id\0key\0" pairs. */
static int list_orphans(struct journal *j, struct buf *out, int *n)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	pthread_mutex_lock(&j->lock);
	rc = sqlite3_prepare_v2(j->db,
				"SELECT upload_id, key FROM mpu WHERE orphan = 1",
				-1, &st, NULL);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *key = (const char *)sqlite3_column_text(st, 1);

		buf_add(out, id, strlen(id) + 1);
		buf_add(out, key, strlen(key) + 1);
		(*n)++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return rc == SQLITE_OK ? 0 : EIO;
}

int journal_sweep(struct journal *j, struct s3_client *s3)
{
	struct buf list = BUF_INIT;
	int n, left = 0;

	if (list_orphans(j, &list, &n))
		return 0;
	for (size_t off = 0; off < list.len;) {
		const char *id = list.data + off;
		const char *key = id + strlen(id) + 1;
		int rc = s3_mpu_abort(s3, key, id);

		off = (size_t)(key + strlen(key) + 1 - list.data);
		if (rc == 0 || rc == ENOENT) {
			log_info("aborted the unfinished multipart upload of %s",
				 key);
			journal_done(j, id);
		} else {
			left++;
		}
	}
	buf_release(&list);
	return left;
}

static void *janitor_main(void *arg)
{
	struct journal *j = arg;

	pthread_mutex_lock(&j->lock);
	while (!j->stopping) {
		struct timespec until;

		pthread_mutex_unlock(&j->lock);
		journal_sweep(j, j->s3);
		pthread_mutex_lock(&j->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += JOURNAL_RETRY_SECONDS;
		if (!j->stopping)
			pthread_cond_timedwait(&j->wake, &j->lock, &until);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int journal_start(struct journal *j, struct s3_client *s3)
{
	int rc;

	j->s3 = s3;
	rc = pthread_create(&j->janitor, NULL, janitor_main, j);
	if (rc)
		return rc;
	j->running = 1;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = 1;
	pthread_cond_signal(&j->wake);
	pthread_mutex_unlock(&j->lock);
	if (j->running)
		pthread_join(j->janitor, NULL);
	sqlite3_close(j->db);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->lock);
	free(j);
}
