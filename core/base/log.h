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
/* Is a message at this level written? (to skip costly formatting) */
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
