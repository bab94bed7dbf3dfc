/*
 * metrics: lock-free counters and their Prometheus text rendering
 * (see metrics.h).
 *
 * Requests are counted per operation and per status from a small fixed
 * table (any other status counts as "other"); latencies go into a
 * per-operation histogram with Prometheus' default buckets, the sum kept
 * in microseconds so that it can be a plain atomic integer.
 */
#include "base/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const int status_table[] = {0,   200, 204, 206, 304, 400, 403,
				   404, 409, 412, 416, 500, 503};
#define NSTATUS (sizeof(status_table) / sizeof(*status_table))
#define STATUS_OTHER NSTATUS

static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				   0.5,   1,    2.5,   5,    10};
#define NBUCKETS (sizeof(bucket_le) / sizeof(*bucket_le))

static const char *const op_names[MOP__COUNT] = {
	[MOP_GET] = "GET",
	[MOP_PUT] = "PUT",
	[MOP_HEAD] = "HEAD",
	[MOP_DELETE] = "DELETE",
	[MOP_COPY] = "COPY",
	[MOP_LIST] = "LIST",
	[MOP_MPU_CREATE] = "MPU_CREATE",
	[MOP_MPU_PART] = "MPU_PART",
	[MOP_MPU_COMPLETE] = "MPU_COMPLETE",
	[MOP_MPU_ABORT] = "MPU_ABORT",
	[MOP_MPU_LIST] = "MPU_LIST",
	[MOP_CREDS] = "CREDS",
};

struct counter_info {
	const char *name;
	const char *help;
};

static const struct counter_info counter_info[MC__COUNT] = {
	[MC_RETRIES] = {"imgfs_retries_total",
			"S3 request attempts after the first."},
	[MC_BYTES_UP] = {"imgfs_bytes_up_total", "Body bytes sent to S3."},
	[MC_BYTES_DOWN] = {"imgfs_bytes_down_total",
			   "Body bytes received from S3."},
	[MC_UPLOADS] = {"imgfs_uploads_total", "Files uploaded at close."},
	[MC_UPLOAD_ERRORS] = {"imgfs_upload_errors_total",
			      "Uploads that failed and returned an error."},
	[MC_THUMBS_GENERATED] = {"imgfs_thumbnails_generated_total",
				 "Thumbnails decoded and encoded."},
	[MC_THUMB_ERRORS] = {"imgfs_thumbnail_errors_total",
			     "Sources that could not be thumbnailed."},
	[MC_CACHE_HITS] = {"imgfs_cache_hits_total",
			   "Thumbnails served from the local cache."},
	[MC_CACHE_MISSES] = {"imgfs_cache_misses_total",
			     "Thumbnail lookups the local cache missed."},
	[MC_CACHE_EVICTIONS] = {"imgfs_cache_evictions_total",
				"Thumbnails evicted from the local cache."},
	[MC_THUMB_S3_HITS] = {"imgfs_thumbnail_s3_hits_total",
			      "Thumbnails reused from the bucket."},
	[MC_LINK_READS] = {"imgfs_link_reads_total", "Link files opened."},
	[MC_DATA_HITS] = {"imgfs_data_cache_hits_total",
			  "Blocks read from the local data cache."},
	[MC_DATA_MISSES] = {"imgfs_data_cache_misses_total",
			    "Blocks looked up in the data cache and not found."},
	[MC_DATA_CORRUPT] = {"imgfs_data_cache_corrupt_total",
			     "Damaged data cache blocks dropped and refetched."},
	[MC_DATA_EVICTIONS] = {"imgfs_data_cache_evictions_total",
			       "Blocks evicted from the data cache."},
	[MC_THUMBS_EAGER] = {"imgfs_thumbnails_eager_total",
			     "Sources thumbnailed from the bytes uploaded."},
	[MC_THUMBS_AHEAD] = {"imgfs_thumbnails_ahead_total",
			     "Thumbnails queued ahead of a reader."},
	[MC_THUMB_WORKER_RESTARTS] = {"imgfs_thumb_worker_restarts_total",
				      "Thumbnail workers killed (crash, "
				      "timeout) and replaced."},
};

static const char *const error_kinds[ME__COUNT] = {
	[ME_READ_EIO] = "read_eio",
	[ME_WRITE_REFUSED] = "write_refused",
	[ME_UPLOAD] = "upload",
	[ME_DECODE] = "decode",
};

static const struct counter_info gauge_info[MG__COUNT] = {
	[MG_CACHE_BYTES] = {"imgfs_cache_bytes",
			    "Bytes held by the local thumbnail cache."},
	[MG_CACHE_ENTRIES] = {"imgfs_cache_entries",
			      "Entries in the local thumbnail cache."},
	[MG_DATA_BYTES] = {"imgfs_data_cache_bytes",
			   "Bytes held by the local data cache."},
	[MG_MEMORY_BYTES] = {"imgfs_memory_bytes",
			     "Bytes of upload part and read-ahead buffers "
			     "(bounded by memory_max)."},
	[MG_UPLOADS_ACTIVE] = {"imgfs_uploads_in_progress",
			       "Files written and not yet uploaded."},
	[MG_UPLOAD_BYTES_ACTIVE] = {"imgfs_upload_bytes_in_progress",
				    "Bytes written so far to files not yet "
				    "uploaded."},
};

struct op_stats {
	atomic_uint_fast64_t status[NSTATUS + 1];  /* by status_table index */
	atomic_uint_fast64_t bucket[NBUCKETS + 1]; /* non-cumulative; last: +Inf */
	atomic_uint_fast64_t sum_us;               /* total latency */
};

struct metrics {
	atomic_uint_fast64_t counter[MC__COUNT];
	atomic_uint_fast64_t error[ME__COUNT];
	atomic_int_fast64_t gauge[MG__COUNT];
	struct op_stats op[MOP__COUNT];
};

struct metrics *metrics_create(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		errno = ENOMEM;
	return m;
}

void metrics_destroy(struct metrics *m)
{
	free(m);
}

const char *metrics_op_name(enum metrics_op op)
{
	if ((unsigned)op >= MOP__COUNT)
		return "UNKNOWN";
	return op_names[op];
}

static size_t status_index(int status)
{
	for (size_t i = 0; i < NSTATUS; i++)
		if (status_table[i] == status)
			return i;
	return STATUS_OTHER;
}

static size_t bucket_index(double seconds)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= bucket_le[i])
			return i;
	return NBUCKETS;
}

void metrics_request(struct metrics *m, enum metrics_op op, int status,
		     double seconds)
{
	struct op_stats *s;

	if (!m || (unsigned)op >= MOP__COUNT)
		return;
	if (!(seconds >= 0))
		seconds = 0;
	s = &m->op[op];
	atomic_fetch_add_explicit(&s->status[status_index(status)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&s->bucket[bucket_index(seconds)], 1,
				  memory_order_relaxed);
	if (seconds > 1e7)
		seconds = 1e7;
	atomic_fetch_add_explicit(&s->sum_us, (uint64_t)(seconds * 1e6),
				  memory_order_relaxed);
}

void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n)
{
	if (!m || (unsigned)c >= MC__COUNT)
		return;
	atomic_fetch_add_explicit(&m->counter[c], n, memory_order_relaxed);
}

void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t v)
{
	if (!m || (unsigned)g >= MG__COUNT)
		return;
	atomic_store_explicit(&m->gauge[g], v, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t d)
{
	if (!m || (unsigned)g >= MG__COUNT)
		return;
	atomic_fetch_add_explicit(&m->gauge[g], d, memory_order_relaxed);
}

void metrics_error(struct metrics *m, enum metrics_error kind)
{
	if (!m || (unsigned)kind >= ME__COUNT)
		return;
	atomic_fetch_add_explicit(&m->error[kind], 1, memory_order_relaxed);
}

static uint64_t load(const atomic_uint_fast64_t *a)
{
	return atomic_load_explicit((atomic_uint_fast64_t *)a,
				    memory_order_relaxed);
}

uint64_t metrics_get(const struct metrics *m, enum metrics_counter c)
{
	if (!m || (unsigned)c >= MC__COUNT)
		return 0;
	return load(&m->counter[c]);
}

uint64_t metrics_errors(const struct metrics *m, enum metrics_error kind)
{
	if (!m || (unsigned)kind >= ME__COUNT)
		return 0;
	return load(&m->error[kind]);
}

uint64_t metrics_requests(const struct metrics *m, enum metrics_op op)
{
	uint64_t n = 0;

	if (!m || (unsigned)op >= MOP__COUNT)
		return 0;
	for (size_t i = 0; i <= NSTATUS; i++)
		n += load(&m->op[op].status[i]);
	return n;
}

/* ---- rendering --------------------------------------------------------- */

static int render_requests(const struct metrics *m, struct buf *out)
{
	int err = buf_adds(out,
			   "# HELP imgfs_s3_requests_total S3 request attempts "
			   "by operation and HTTP status (0: transport error).\n"
			   "# TYPE imgfs_s3_requests_total counter\n");

	for (size_t op = 0; !err && op < MOP__COUNT; op++) {
		for (size_t i = 0; !err && i <= NSTATUS; i++) {
			uint64_t n = load(&m->op[op].status[i]);
			char status[8] = "other";

			if (!n)
				continue;
			if (i < NSTATUS)
				snprintf(status, sizeof(status), "%d",
					 status_table[i]);
			err = buf_addf(out,
				       "imgfs_s3_requests_total{op=\"%s\","
				       "status=\"%s\"} %llu\n",
				       op_names[op], status,
				       (unsigned long long)n);
		}
	}
	return err;
}

static int render_histogram(const struct op_stats *s, const char *op,
			    struct buf *out)
{
	uint64_t cum = 0;
	int err = 0;

	for (size_t i = 0; !err && i <= NBUCKETS; i++) {
		cum += load(&s->bucket[i]);
		if (i < NBUCKETS)
			err = buf_addf(out,
				       "imgfs_s3_request_seconds_bucket{op=\"%s\","
				       "le=\"%g\"} %llu\n",
				       op, bucket_le[i], (unsigned long long)cum);
		else
			err = buf_addf(out,
				       "imgfs_s3_request_seconds_bucket{op=\"%s\","
				       "le=\"+Inf\"} %llu\n",
				       op, (unsigned long long)cum);
	}
	if (!err)
		err = buf_addf(out,
			       "imgfs_s3_request_seconds_sum{op=\"%s\"} %.6f\n"
			       "imgfs_s3_request_seconds_count{op=\"%s\"} %llu\n",
			       op, (double)load(&s->sum_us) / 1e6, op,
			       (unsigned long long)cum);
	return err;
}

static int render_latency(const struct metrics *m, struct buf *out)
{
	int err = buf_adds(out,
			   "# HELP imgfs_s3_request_seconds S3 request attempt "
			   "latency by operation.\n"
			   "# TYPE imgfs_s3_request_seconds histogram\n");

	for (size_t op = 0; !err && op < MOP__COUNT; op++)
		if (metrics_requests(m, (enum metrics_op)op))
			err = render_histogram(&m->op[op], op_names[op], out);
	return err;
}

static int render_errors(const struct metrics *m, struct buf *out)
{
	int err = buf_adds(out, "# HELP imgfs_errors_total Errors returned to "
			   "a caller, by kind.\n# TYPE imgfs_errors_total "
			   "counter\n");

	for (size_t k = 0; !err && k < ME__COUNT; k++)
		err = buf_addf(out, "imgfs_errors_total{kind=\"%s\"} %llu\n",
			       error_kinds[k],
			       (unsigned long long)load(&m->error[k]));
	return err;
}

static int render_scalars(const struct metrics *m, struct buf *out)
{
	int err = render_errors(m, out);

	for (size_t c = 0; !err && c < MC__COUNT; c++)
		err = buf_addf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
			       counter_info[c].name, counter_info[c].help,
			       counter_info[c].name, counter_info[c].name,
			       (unsigned long long)load(&m->counter[c]));
	for (size_t g = 0; !err && g < MG__COUNT; g++)
		err = buf_addf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n",
			       gauge_info[g].name, gauge_info[g].help,
			       gauge_info[g].name, gauge_info[g].name,
			       (long long)atomic_load_explicit(
				       (atomic_int_fast64_t *)&m->gauge[g],
				       memory_order_relaxed));
	return err;
}

int metrics_render(const struct metrics *m, struct buf *out)
{
	int err = render_requests(m, out);

	if (!err)
		err = render_latency(m, out);
	if (!err)
		err = render_scalars(m, out);
	return err;
}
