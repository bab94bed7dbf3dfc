/*
 * log: the daemon's one logging function.
 *
 * Lines go to stderr (foreground) or syslog (detached). Messages start in
 * lowercase and name the object they concern; callers never pass secrets,
 * session tokens or signatures. Thread-safe: each call writes one line.
 * The level and sink are process-wide because syslog itself is.
 */
#ifndef IMGFS_LOG_H
#define IMGFS_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Parse "error", "warn", "info" or "debug". 0 or EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
/* Set the threshold and the sink; call before threads start. */
void log_setup(enum log_level level, int use_syslog);
/* With on = 1, write nothing until called with 0 (a caller that reports
 * the outcome in one line of its own). Call while no other thread logs. */
void log_quiet(int on);
/* Is a message at this level written? (to skip costly formatting) */
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Object keys, file names and anything else a user chose go into a line
 * only through log_key(), so that no name can forge a line or reach the
 * terminal as an escape sequence: control bytes (C0, DEL, and C1 encoded
 * as UTF-8), the line and paragraph separators U+2028/U+2029, the bidi
 * controls U+202A..U+202E and U+2066..U+2069, '\' itself and every byte
 * that is not part of valid UTF-8 become \xHH; other UTF-8 is kept. At
 * most LOG_KEY_MAX bytes of the key are shown, then "...". A NULL key
 * shows as "(none)".
 */
#define LOG_KEY_MAX 256
struct log_key {
	char s[LOG_KEY_MAX * 4 + 8];
};
/* Escape key into e; returns e->s. Thread-safe (e is the caller's). */
const char *log_key(struct log_key *e, const char *key);
/* The same, allocated (to keep with an object that is logged often);
 * NULL on ENOMEM. The caller frees it. */
char *log_key_dup(const char *key);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
