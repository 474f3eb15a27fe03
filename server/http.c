/*
 * http.c - strict HTTP/1.1 request framing around llhttp; see http.h for the rules and why.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static sg_http_parser *parser_of(llhttp_t *ll)
{
    return (sg_http_parser *)ll->data;
}

static int fail_cb(sg_http_parser *p, int status, const char *msg)
{
    p->cb_status = status;
    snprintf(p->cb_msg, sizeof(p->cb_msg), "%s", msg);
    return HPE_USER;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    sg_http_parser *p = parser_of(ll);
    if (p->url_len + len >= sizeof(p->req.url))
        return fail_cb(p, 414, "request target longer than 4096 bytes");
    memcpy(p->req.url + p->url_len, at, len);
    p->url_len += len;
    p->req.url[p->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    sg_http_parser *p = parser_of(ll);
    /* The head is handed to llhttp in one piece, so a field name arrives whole. */
    if (len == 12 && strncasecmp(at, "content-type", 12) == 0)
        p->hdr_state = 1;
    else if (len == 13 && strncasecmp(at, "authorization", 13) == 0)
        p->hdr_state = 3;
    else if (len == 17 && strncasecmp(at, "transfer-encoding", 17) == 0)
        return fail_cb(p, 400,
                       "Transfer-Encoding is not accepted in requests; send Content-Length");
    else
        p->hdr_state = 0;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    sg_http_parser *p = parser_of(ll);
    if (p->hdr_state == 1) {
        if (len >= sizeof(p->req.content_type))
            len = sizeof(p->req.content_type) - 1;
        memcpy(p->req.content_type, at, len);
        p->req.content_type[len] = '\0';
    } else if (p->hdr_state == 3) {
        /* A value that does not fit is no token of ours: remember that it was too long. */
        if (len >= sizeof(p->req.authorization))
            snprintf(p->req.authorization, sizeof(p->req.authorization), "!");
        else {
            memcpy(p->req.authorization, at, len);
            p->req.authorization[len] = '\0';
        }
    }
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    sg_http_parser *p = parser_of(ll);
    if (ll->upgrade)
        return fail_cb(p, 501, "protocol upgrades are not supported");
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > SG_HTTP_BODY_MAX)
        return fail_cb(p, 413, "request body over 16 MiB");
    p->headers_done = 1;
    p->req.method = llhttp_method_name((llhttp_method_t)ll->method);
    p->req.keep_alive = llhttp_should_keep_alive(ll);
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    sg_http_parser *p = parser_of(ll);
    if (p->req.body_len + len > SG_HTTP_BODY_MAX)
        return fail_cb(p, 413, "request body over 16 MiB");
    if (p->req.body_len + len + 1 > p->body_cap) {
        size_t cap = p->body_cap ? p->body_cap : 4096;
        char *nb;
        while (cap < p->req.body_len + len + 1)
            cap *= 2;
        nb = realloc(p->req.body, cap);
        if (nb == NULL)
            return fail_cb(p, 503, "out of memory for the request body");
        p->req.body = nb;
        p->body_cap = cap;
    }
    memcpy(p->req.body + p->req.body_len, at, len);
    p->req.body_len += len;
    p->req.body[p->req.body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    sg_http_parser *p = parser_of(ll);
    char *q;

    p->complete = 1;
    p->req.path = p->req.url;
    q = strchr(p->req.url, '?');
    if (q != NULL) {
        *q = '\0';
        p->req.query = q + 1;
    } else {
        p->req.query = p->req.url + p->url_len; /* "" */
    }
    if (p->req.body == NULL)
        p->req.body_len = 0;
    /* Stop after this message so the caller answers it before reading the next. */
    return HPE_PAUSED;
}

void sg_http_parser_init(sg_http_parser *p)
{
    memset(p, 0, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_url = on_url;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->ll, HTTP_REQUEST, &p->settings);
    p->ll.data = p;
    p->req.query = p->req.url;
    p->req.path = p->req.url;
}

void sg_http_parser_free(sg_http_parser *p)
{
    if (p == NULL)
        return;
    free(p->req.body);
    p->req.body = NULL;
    p->body_cap = 0;
}

void sg_http_parser_next(sg_http_parser *p)
{
    char *body = p->req.body;
    size_t cap = p->body_cap;

    p->head_len = 0;
    p->head_done = 0;
    p->complete = 0;
    p->headers_done = 0;
    p->hdr_state = 0;
    p->url_len = 0;
    p->cb_status = 0;
    memset(&p->req, 0, sizeof(p->req));
    /* Keep the body buffer for reuse unless it grew large. */
    if (cap > 1024 * 1024) {
        free(body);
        body = NULL;
        cap = 0;
    }
    if (body != NULL)
        body[0] = '\0'; /* the previous request's body is not this one's */
    p->req.body = body;
    p->body_cap = cap;
    p->req.path = p->req.url;
    p->req.query = p->req.url;
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
}

int sg_http_parser_idle(const sg_http_parser *p)
{
    return p->head_len == 0 && !p->head_done;
}

/* Runs llhttp over data; converts its outcome into our return convention. */
static int run_llhttp(sg_http_parser *p, const char *data, size_t len, size_t *used, int *status,
                      sg_err *err)
{
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);

    if (e == HPE_OK) {
        *used = len;
        return 0;
    }
    if (e == HPE_PAUSED && p->complete) {
        *used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        return 1;
    }
    if (p->cb_status != 0) {
        /* One of our callbacks refused (llhttp reports it as HPE_USER, or as
         * HPE_CB_HEADERS_COMPLETE when it was on_headers_complete). */
        *status = p->cb_status;
        return sg_err_set(err, *status == 413 ? SG_ETOOBIG : SG_EHTTP, "%s", p->cb_msg);
    }
    *status = 400;
    return sg_err_set(err, SG_EHTTP, "malformed request: %s", llhttp_get_error_reason(&p->ll));
}

int sg_http_parser_feed(sg_http_parser *p, const char *data, size_t len, size_t *used, int *status,
                        sg_err *err)
{
    size_t i = 0;
    int rc;

    *used = 0;
    *status = 0;
    if (!p->head_done) {
        for (; i < len; i++) {
            char c = data[i];
            char prev = p->head_len ? p->head[p->head_len - 1] : '\0';
            if (p->head_len >= SG_HTTP_HEAD_MAX) {
                *status = 431;
                return sg_err_set(err, SG_ETOOBIG, "request head over %u bytes", SG_HTTP_HEAD_MAX);
            }
            if (c == '\0') {
                *status = 400;
                return sg_err_set(err, SG_EHTTP, "NUL byte in the request head");
            }
            if (prev == '\r' && c != '\n') {
                *status = 400;
                return sg_err_set(err, SG_EHTTP,
                                  "bare CR in the request head (CR must be "
                                  "followed by LF)");
            }
            if (c == '\n' && prev != '\r') {
                *status = 400;
                return sg_err_set(err, SG_EHTTP,
                                  "bare LF in the request head (lines end in "
                                  "CRLF)");
            }
            /* A line that starts with space or tab continues the previous header: obs-fold,
             * which RFC 9112 lets a server reject, and which smuggling attacks rely on. */
            if ((c == ' ' || c == '\t') && prev == '\n' && p->head_len > 2) {
                *status = 400;
                return sg_err_set(err, SG_EHTTP, "obsolete line folding in the request head");
            }
            p->head[p->head_len++] = c;
            if (p->head_len >= 4 && memcmp(p->head + p->head_len - 4, "\r\n\r\n", 4) == 0) {
                i++;
                break;
            }
        }
        if (p->head_len < 4 || memcmp(p->head + p->head_len - 4, "\r\n\r\n", 4) != 0) {
            *used = len;
            return 0;
        }
        p->head_done = 1;
        {
            size_t head_used = 0;
            rc = run_llhttp(p, p->head, p->head_len, &head_used, status, err);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                /* The message ended with its head (no body). */
                *used = i;
                return 1;
            }
            /* What we took for a head must be one for llhttp too. If it is not (empty lines
             * before a request line: "\r\n\r\n"), everything after it would reach llhttp
             * unchecked: no bare CR/LF, obs-fold or size checks, and header names split across
             * reads (a Transfer-Encoding that on_header_field does not recognise). */
            if (!p->headers_done) {
                *status = 400;
                return sg_err_set(err, SG_EHTTP,
                                  "the request head has no request line (empty lines before it?)");
            }
        }
    }
    {
        size_t body_used = 0;
        rc = run_llhttp(p, data + i, len - i, &body_used, status, err);
        *used = i + body_used;
        return rc;
    }
}

const char *sg_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

int sg_http_format(char **out, size_t *out_len, int status, const char *content_type,
                   const char *body, size_t body_len, int keep_alive)
{
    char head[256];
    int n;
    char *buf;

    *out = NULL;
    *out_len = 0;
    if (status == 204) {
        n = snprintf(head, sizeof(head), "HTTP/1.1 204 No Content\r\nConnection: %s\r\n\r\n",
                     keep_alive ? "keep-alive" : "close");
        body_len = 0;
    } else {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: %s\r\n\r\n",
                     status, sg_http_reason(status), content_type, body_len,
                     keep_alive ? "keep-alive" : "close");
    }
    if (n < 0 || (size_t)n >= sizeof(head))
        return SG_EINVAL;
    buf = malloc((size_t)n + body_len);
    if (buf == NULL)
        return SG_ENOMEM;
    memcpy(buf, head, (size_t)n);
    if (body_len)
        memcpy(buf + n, body, body_len);
    *out = buf;
    *out_len = (size_t)n + body_len;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) (%XX and '+') into out (capacity >= n + 1); returns length or -1. */
static ptrdiff_t url_decode(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+') {
            out[k++] = ' ';
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return (ptrdiff_t)k;
}

int sg_http_query_parse(json_t **out, const char *query, sg_err *err)
{
    json_t *obj = json_object();
    const char *p = query;
    char key[SG_HTTP_URL_MAX], val[SG_HTTP_URL_MAX];

    *out = NULL;
    if (obj == NULL)
        return sg_err_set(err, SG_ENOMEM, "query: out of memory");
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        ptrdiff_t kd, vd;
        json_t *s;

        if (n == 0) {
            p += amp ? 1 : 0;
            continue;
        }
        kd = url_decode(p, klen, key);
        vd = eq ? url_decode(eq + 1, n - klen - 1, val) : 0;
        if (!eq)
            val[0] = '\0';
        if (kd <= 0 || vd < 0) {
            json_decref(obj);
            return sg_err_set(err, SG_EHTTP, "query: bad %%-escape or empty name in '%.*s'",
                              (int)(n > 60 ? 60 : n), p);
        }
        if (json_object_get(obj, key) != NULL) {
            json_decref(obj);
            return sg_err_set(err, SG_EHTTP, "query: '%.60s' given twice", key);
        }
        s = json_stringn(val, (size_t)vd);
        if (s == NULL || json_object_set_new(obj, key, s) != 0) {
            json_decref(obj);
            return sg_err_set(err, SG_EHTTP, "query: '%.60s' is not valid UTF-8", key);
        }
        p += n + (amp ? 1 : 0);
    }
    *out = obj;
    return 0;
}
