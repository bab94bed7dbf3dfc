/* log: stderr or syslog sink with a level threshold (see log.h). */
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static struct {
	enum log_level level;
	int use_syslog;
	int quiet;
} log_state = {LOG_LVL_INFO, 0, 0};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(*level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return EINVAL;
}

void log_setup(enum log_level level, int use_syslog)
{
	log_state.level = level;
	log_state.use_syslog = use_syslog;
	if (use_syslog)
		openlog("imgfs", LOG_PID, LOG_DAEMON);
}

void log_quiet(int on)
{
	log_state.quiet = on;
}

int log_enabled(enum log_level level)
{
	return !log_state.quiet && level <= log_state.level;
}

static int syslog_priority(enum log_level level)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

	return prio[level];
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_state.use_syslog) {
		syslog(syslog_priority(level), "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ imgfs %s: %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level],
		line);
}

/* The length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] < 0x80 ? 1 : p[0] < 0xc2 ? 0 : p[0] < 0xe0 ? 2
		 : p[0] < 0xf0 ? 3 : p[0] < 0xf5 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0; /* overlong, surrogate, beyond U+10FFFF */
	return n;
}

/* Is the valid sequence of n bytes at p one to show escaped? */
static int utf8_hidden(const unsigned char *p, size_t n)
{
	if (n == 1)
		return p[0] < 0x20 || p[0] == 0x7f || p[0] == '\\';
	if (n == 2)
		return p[0] == 0xc2 && p[1] < 0xa0; /* C1 controls */
	if (n == 3 && p[0] == 0xe2 && p[1] == 0x80)
		return p[2] >= 0xa8 && p[2] <= 0xae; /* U+2028..U+202E */
	if (n == 3 && p[0] == 0xe2 && p[1] == 0x81)
		return p[2] >= 0xa6 && p[2] <= 0xa9; /* U+2066..U+2069 */
	return 0;
}

const char *log_key(struct log_key *e, const char *key)
{
	const unsigned char *p = (const unsigned char *)key, *end;
	size_t w = 0;

	if (!key) {
		snprintf(e->s, sizeof(e->s), "(none)");
		return e->s;
	}
	end = p + strnlen(key, LOG_KEY_MAX);
	while (p < end) {
		size_t n = utf8_len(p);

		if (n == 0 || p + n > end || utf8_hidden(p, n)) {
			n = n && p + n <= end ? n : 1;
			for (size_t i = 0; i < n; i++)
				w += (size_t)snprintf(e->s + w, 5, "\\x%02x", p[i]);
		} else {
			memcpy(e->s + w, p, n);
			w += n;
		}
		p += n;
	}
	if (*end)
		w += (size_t)snprintf(e->s + w, 4, "...");
	e->s[w] = '\0';
	return e->s;
}

char *log_key_dup(const char *key)
{
	struct log_key *e = malloc(sizeof(*e));
	char *out;

	if (!e)
		return NULL;
	out = strdup(log_key(e, key));
	free(e);
	return out;
}
