/*
 * journal: SQLite record of multipart uploads in progress (see journal.h).
 *
 * Table mpu(upload_id PRIMARY KEY, key, orphan). One connection guarded by
 * a mutex; the janitor sleeps on a condition variable so that close wakes
 * it at once.
 */
#include "io/journal.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/privfile.h"

struct journal {
	sqlite3 *db;            /* protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t janitor;
	int running;            /* the janitor exists; protected by lock */
	int stopping;           /* protected by lock */
	struct store *store;
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
	if ((errno = privfile_db(path.data))) {
		log_error("journal %s: cannot make it private: %s", path.data,
			  strerror(errno));
		free(j);
		buf_release(&path);
		return NULL;
	}
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

long long journal_begin(struct journal *j, const char *key)
{
	long long row = 0;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	if (exec2(j, "INSERT INTO mpu(upload_id, key) VALUES(NULL, ?)", key,
		  NULL) == 0)
		row = sqlite3_last_insert_rowid(j->db);
	pthread_mutex_unlock(&j->lock);
	return row;
}

/* 0, or EIO (logged) when the statement failed or changed no row. */
static int exec_row(struct journal *j, const char *sql, long long row,
		    const char *text)
{
	sqlite3_stmt *st;
	int rc = EIO;

	if (!j || !row)
		return EIO;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (text)
			sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, row);
		if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(j->db) == 1)
			rc = 0;
		else
			log_warn("journal: %s", sqlite3_errmsg(j->db));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int journal_bind(struct journal *j, long long handle, const char *upload_id)
{
	if (!j)
		return 0;
	return exec_row(j, "UPDATE mpu SET upload_id = ?1 WHERE rowid = ?2",
			handle, upload_id);
}

void journal_cancel(struct journal *j, long long handle)
{
	exec_row(j, "DELETE FROM mpu WHERE rowid = ?2", handle, NULL);
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

/* The orphans, as NUL-separated "rowid\0upload_id\0key\0" triples
 * (upload_id "" when the create's reply was never handled). */
static int list_orphans(struct journal *j, struct buf *out)
{
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&j->lock);
	rc = sqlite3_prepare_v2(j->db,
				"SELECT rowid, ifnull(upload_id, ''), key FROM mpu"
				" WHERE orphan = 1", -1, &st, NULL);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < 3; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);

			buf_add(out, v ? v : "", strlen(v ? v : "") + 1);
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->lock);
	return rc == SQLITE_OK ? 0 : EIO;
}

int journal_sweep(struct journal *j, struct store *store)
{
	struct buf list = BUF_INIT;
	int left = 0;

	if (list_orphans(j, &list))
		return 0;
	for (size_t off = 0; off < list.len;) {
		const char *row = list.data + off;
		const char *id = row + strlen(row) + 1;
		const char *key = id + strlen(id) + 1;
		int rc = *id ? store_mpu_abort(store, key, id) : ENOENT;
		struct log_key k;

		off = (size_t)(key + strlen(key) + 1 - list.data);
		if (!*id) {
			/* Created (maybe) but its id never learnt: S3 cannot
			 * tell it from another client's upload of key, so it
			 * is left to the bucket's lifecycle rule. */
			log_warn("journal: a multipart upload of %s may have "
				 "been created without its id being recorded; "
				 "it is left to the bucket's lifecycle rule",
				 log_key(&k, key));
			exec_row(j, "DELETE FROM mpu WHERE rowid = ?2",
				 strtoll(row, NULL, 10), NULL);
		} else if (rc == 0 || rc == ENOENT) {
			log_info("aborted the unfinished multipart upload of %s",
				 log_key(&k, key));
			exec_row(j, "DELETE FROM mpu WHERE rowid = ?2",
				 strtoll(row, NULL, 10), NULL);
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
		journal_sweep(j, j->store);
		pthread_mutex_lock(&j->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += JOURNAL_RETRY_SECONDS;
		if (!j->stopping)
			pthread_cond_timedwait(&j->wake, &j->lock, &until);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int journal_start(struct journal *j, struct store *store)
{
	int rc;

	j->store = store;
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
