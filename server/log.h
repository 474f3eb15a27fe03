/*
 * log.h - one line per event on stderr, in logfmt:
 *   ts=2026-11-27T12:00:00.000Z level=info event=listen socket=/run/sangam/b.sock
 * Values with spaces, quotes or '=' are quoted by sg_log_kv; callers build the rest of the line
 * with sg_log(), passing values that may contain such characters through sg_logq().
 */
#ifndef SANGAM_LOG_H
#define SANGAM_LOG_H

enum { SG_LOG_DEBUG = 0, SG_LOG_INFO = 1, SG_LOG_WARN = 2, SG_LOG_ERROR = 3 };

/* Sets the lowest level printed from a name (debug|info|warn|error). */
void sg_log_set_level(const char *name);
/* Prints "ts=... level=... event=EVENT " followed by the formatted key=value pairs. */
void sg_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Quotes s for logfmt into buf when it needs quoting; returns buf (or s when it does not). */
const char *sg_logq(char *buf, unsigned cap, const char *s);

#endif
