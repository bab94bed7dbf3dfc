/* Unit tests for core/metrics: counting, and the shape of every line of the
 * Prometheus text exposition. */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "base/buf.h"
#include "base/metrics.h"

/* Is the line "# HELP name text", "# TYPE name kind" or
 * "name{k="v",...} number"? Returns the metric name's length, 0 if bad. */
static size_t name_len(const char *s)
{
	size_t n = 0;

	if (!isalpha((unsigned char)s[0]) && s[0] != '_')
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':')
		n++;
	return n;
}

static int labels_ok(const char **p)
{
	const char *s = *p;

	if (*s != '{')
		return 1;
	s++;
	while (*s != '}') {
		size_t n = name_len(s);

		if (!n || s[n] != '=' || s[n + 1] != '"')
			return 0;
		s += n + 2;
		while (*s && *s != '"')
			s += *s == '\\' ? 2 : 1;
		if (*s != '"')
			return 0;
		s++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			return 0;
	}
	*p = s + 1;
	return 1;
}

static int line_ok(const char *line)
{
	const char *p = line;
	char *end;

	if (strncmp(line, "# HELP ", 7) == 0)
		return name_len(line + 7) > 0 && line[7 + name_len(line + 7)] == ' ';
	if (strncmp(line, "# TYPE ", 7) == 0) {
		const char *kind = line + 7 + name_len(line + 7);
		return strcmp(kind, " counter") == 0 ||
		       strcmp(kind, " gauge") == 0 ||
		       strcmp(kind, " histogram") == 0;
	}
	if (!name_len(p))
		return 0;
	p += name_len(p);
	if (!labels_ok(&p) || *p != ' ')
		return 0;
	strtod(p + 1, &end);
	return end != p + 1 && *end == '\0';
}

/* The value of the sample line starting with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

static void test_render_shapes(void)
{
	struct metrics *m = metrics_create();
	struct buf out = BUF_INIT;
	char *save = NULL;
	int lines = 0, bad = 0;

	CHECK(m != NULL);
	metrics_request(m, MOP_PUT, 200, 0.003);
	metrics_request(m, MOP_PUT, 200, 0.2);
	metrics_request(m, MOP_PUT, 503, 12.0);
	metrics_request(m, MOP_GET, 0, 0.01);
	metrics_request(m, MOP_GET, 599, 0.01);
	metrics_add(m, MC_RETRIES, 2);
	metrics_add(m, MC_BYTES_UP, 1 << 20);
	metrics_gauge_set(m, MG_CACHE_BYTES, -5);
	CHECK_INT(metrics_requests(m, MOP_PUT), 3);
	CHECK_INT(metrics_requests(m, MOP_GET), 2);
	CHECK_INT(metrics_requests(m, MOP_HEAD), 0);
	CHECK_INT(metrics_get(m, MC_BYTES_UP), 1 << 20);
	CHECK_INT(metrics_render(m, &out), 0);

	CHECK_INT(sample(out.data, "imgfs_s3_requests_total{op=\"PUT\",status=\"200\"}"), 2);
	CHECK_INT(sample(out.data, "imgfs_s3_requests_total{op=\"PUT\",status=\"503\"}"), 1);
	CHECK_INT(sample(out.data, "imgfs_s3_requests_total{op=\"GET\",status=\"0\"}"), 1);
	CHECK_INT(sample(out.data, "imgfs_s3_requests_total{op=\"GET\",status=\"other\"}"), 1);
	CHECK_INT(sample(out.data, "imgfs_s3_request_seconds_bucket{op=\"PUT\",le=\"0.005\"}"), 1);
	CHECK_INT(sample(out.data, "imgfs_s3_request_seconds_bucket{op=\"PUT\",le=\"0.25\"}"), 2);
	CHECK_INT(sample(out.data, "imgfs_s3_request_seconds_bucket{op=\"PUT\",le=\"10\"}"), 2);
	CHECK_INT(sample(out.data, "imgfs_s3_request_seconds_bucket{op=\"PUT\",le=\"+Inf\"}"), 3);
	CHECK_INT(sample(out.data, "imgfs_s3_request_seconds_count{op=\"PUT\"}"), 3);
	CHECK(sample(out.data, "imgfs_s3_request_seconds_sum{op=\"PUT\"}") > 12.2);
	CHECK(sample(out.data, "imgfs_s3_request_seconds_count{op=\"HEAD\"}") < 0);
	CHECK_INT(sample(out.data, "imgfs_retries_total"), 2);
	CHECK_INT(sample(out.data, "imgfs_bytes_up_total"), 1 << 20);
	CHECK_INT(sample(out.data, "imgfs_bytes_down_total"), 0);
	CHECK_INT(sample(out.data, "imgfs_cache_bytes"), -5);
	CHECK(strstr(out.data, "# TYPE imgfs_s3_request_seconds histogram\n") != NULL);
	CHECK(strstr(out.data, "# TYPE imgfs_retries_total counter\n") != NULL);
	CHECK(strstr(out.data, "# TYPE imgfs_cache_entries gauge\n") != NULL);

	for (char *l = strtok_r(out.data, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		lines++;
		if (!line_ok(l)) {
			bad++;
			fprintf(stderr, "  bad line: %s\n", l);
		}
	}
	CHECK(lines > 40);
	CHECK_INT(bad, 0);
	buf_release(&out);
	metrics_destroy(m);
}

static void *count_many(void *arg)
{
	struct metrics *m = arg;

	for (int i = 0; i < 100000; i++) {
		metrics_add(m, MC_BYTES_DOWN, 3);
		metrics_request(m, MOP_HEAD, 404, 0.001);
	}
	return NULL;
}

static void test_threads(void)
{
	struct metrics *m = metrics_create();
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, count_many, m), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(metrics_get(m, MC_BYTES_DOWN), 1200000);
	CHECK_INT(metrics_requests(m, MOP_HEAD), 400000);
	CHECK_STR(metrics_op_name(MOP_MPU_COMPLETE), "MPU_COMPLETE");
	CHECK_STR(metrics_op_name(MOP__COUNT), "UNKNOWN");
	metrics_destroy(m);
}

int main(void)
{
	test_render_shapes();
	test_threads();
	return check_done("metrics");
}
