/*
 * log.c - logfmt lines on stderr; see log.h. The level threshold is the process's only mutable
 * global: it is set once at start-up from the config, before the loop runs.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

static int log_threshold = SG_LOG_INFO;

void sg_log_set_level(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            log_threshold = i;
}

void sg_log(int level, const char *event, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048], ts[32];
    va_list ap;
    int n;

    if (level < log_threshold)
        return;
    sg_now_iso(ts);
    n = snprintf(line, sizeof(line), "ts=%s level=%s event=%s", ts, names[level], event);
    if (fmt != NULL && fmt[0] != '\0' && n > 0 && (size_t)n < sizeof(line) - 1) {
        line[n++] = ' ';
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}

const char *sg_logq(char *buf, unsigned cap, const char *s)
{
    unsigned k = 0;
    if (s == NULL)
        return "\"\"";
    if (s[0] != '\0' && strpbrk(s, " \"=\t\r\n\\") == NULL)
        return s;
    buf[k++] = '"';
    for (const char *p = s; *p && k + 3 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            buf[k++] = '\\';
            buf[k++] = *p;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            buf[k++] = ' ';
        } else {
            buf[k++] = *p;
        }
    }
    buf[k++] = '"';
    buf[k] = '\0';
    return buf;
}
