/*
 * http.c - the libcurl wrapper of http.h.
 *
 * A node is reached either through its Unix socket (CURLOPT_UNIX_SOCKET_PATH with the URL
 * http://localhost/...) or over TCP at a base URL. Answers are read into memory up to
 * BODY_MAX bytes and parsed as JSON; an answer that is not JSON means whatever listens there is
 * not a sangamd node, which the user hears about as a reachability problem, not as a refusal.
 *
 * The node is decided at the first request, not when the client is made, so a command's usage
 * errors are reported the same whether or not a node can be found.
 *
 * Invariants: c->base is NULL until setup() succeeded, then c->curl, c->base and c->where are
 * all set. c->curl is reset before every request, so no option leaks from one request into
 * the next (the connection cache survives the reset). Nothing here writes to stdout.
 */
#include "http.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define BODY_MAX          (256u * 1024u * 1024u) /* answers larger than this are refused */
#define CONNECT_TIMEOUT_S 10L

struct http_client {
    const char *node; /* as given to http_open (NULL: find the default); not owned */
    CURL *curl;       /* the reused handle, NULL until the first request; owned */
    char *socket;     /* Unix socket path, or NULL for TCP; owned */
    char *base;       /* URL prefix without a trailing '/' ("http://localhost"); owned */
    char *where;      /* "socket PATH" or the base URL, for messages; owned */
    char errbuf[CURL_ERROR_SIZE]; /* curl's detail for the last failure */
};

/* The answer's bytes while they arrive. */
typedef struct body_buf {
    char *data;
    size_t len, cap;
    int too_big; /* 1 when the answer passed BODY_MAX */
} body_buf;

/* Duplicates n bytes of s into a new NUL-terminated string, or returns NULL. */
static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int http_open(http_client **out, const char *node)
{
    http_client *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL) {
        fprintf(stderr, "sangam: out of memory\n");
        return CLI_EXIT_UNREACHABLE;
    }
    c->node = node;
    *out = c;
    return CLI_EXIT_OK;
}

/* Finds the default node: $SANGAM_NODE, else the only *.sock in HTTP_RUN_DIR, and appends it to
 * path. Returns CLI_EXIT_OK, or prints what to pass and returns CLI_EXIT_UNREACHABLE (no node
 * found) or CLI_EXIT_USAGE (several found). */
static int default_node(sbuf *path)
{
    const char *env = getenv("SANGAM_NODE");
    DIR *d;
    struct dirent *e;
    size_t found = 0;
    sbuf names;

    if (env != NULL && env[0] != '\0') {
        sbuf_add(path, env);
        return CLI_EXIT_OK;
    }
    sbuf_init(&names);
    d = opendir(HTTP_RUN_DIR);
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".sock") != 0)
            continue;
        if (found++ == 0)
            sbuf_addf(path, "%s/%s", HTTP_RUN_DIR, e->d_name);
        sbuf_addf(&names, "%s%s", found > 1 ? ", " : "", e->d_name);
    }
    if (d != NULL)
        closedir(d);
    if (found > 1)
        fprintf(stderr,
                "sangam: several nodes in %s (%s): choose one with --node PATH or "
                "SANGAM_NODE=PATH\n",
                HTTP_RUN_DIR, sbuf_str(&names));
    else if (found == 0)
        fprintf(stderr,
                "sangam: no node to talk to: no --node given, SANGAM_NODE is not set and there "
                "is no socket in %s; pass --node PATH (the [api] socket in sangamd's config) or "
                "--node http://host:port, and check that sangamd is running\n",
                HTTP_RUN_DIR);
    sbuf_free(&names);
    return found == 1 ? CLI_EXIT_OK : found > 1 ? CLI_EXIT_USAGE : CLI_EXIT_UNREACHABLE;
}

/* Decides where c talks to and makes its curl handle; done once, at the first request. */
static int setup(http_client *c)
{
    sbuf found;
    const char *node = c->node;
    size_t n, wn;
    int is_url, ret = CLI_EXIT_UNREACHABLE;

    sbuf_init(&found);
    if (node == NULL) {
        if ((ret = default_node(&found)) != CLI_EXIT_OK)
            goto done;
        if (found.failed)
            goto fail_oom;
        node = sbuf_str(&found);
    }
    n = strlen(node);
    is_url = strncmp(node, "http://", 7) == 0 || strncmp(node, "https://", 8) == 0;
    ret = CLI_EXIT_USAGE;
    if (n == 0) {
        fprintf(stderr, "sangam: --node is empty; give a socket path or http://host:port\n");
        goto done;
    }
    if (!is_url && strstr(node, "://") != NULL) {
        fprintf(stderr,
                "sangam: --node %s: only http:// and https:// URLs (or a socket path) work\n",
                node);
        goto done;
    }
    if (!is_url && n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "sangam: --node %s: a socket path must be shorter than %zu bytes\n", node,
                sizeof(((struct sockaddr_un *)0)->sun_path));
        goto done;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        goto fail_oom;
    if (is_url) {
        while (n > 0 && node[n - 1] == '/')
            n--;
        c->base = dupn(node, n);
        c->where = dupn(node, n);
    } else {
        wn = n + sizeof("socket ");
        c->socket = dupn(node, n);
        c->base = dupn("http://localhost", strlen("http://localhost"));
        c->where = malloc(wn);
        if (c->where != NULL)
            snprintf(c->where, wn, "socket %s", node);
    }
    if (c->base == NULL || c->where == NULL || (!is_url && c->socket == NULL))
        goto fail_oom;
    ret = CLI_EXIT_OK;
    goto done;

fail_oom:
    free(c->base); /* keeps the invariant: no base, not set up */
    c->base = NULL;
    fprintf(stderr, "sangam: out of memory\n");
    ret = CLI_EXIT_UNREACHABLE;
done:
    sbuf_free(&found);
    return ret;
}

void http_close(http_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->socket);
    free(c->base);
    free(c->where);
    free(c);
}

const char *http_where(const http_client *c)
{
    return c->where != NULL ? c->where : "the node";
}

/* curl write callback: appends to the body_buf, refusing to grow past BODY_MAX. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_buf *b = arg;
    size_t n = size * nmemb;

    if (n > BODY_MAX - b->len) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* The caller's progress callback behind curl's signature; never aborts the transfer. */
typedef struct progress_hook {
    http_progress_fn fn;
    void *arg;
} progress_hook;

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    progress_hook *h = arg;
    (void)dltotal;
    (void)dlnow;
    h->fn(h->arg, (long long)ulnow, (long long)ultotal);
    return 0;
}

/* Prints why the node could not be reached, refining curl's message for sockets with what
 * stat() says about the path. Returns CLI_EXIT_UNREACHABLE. */
static int unreachable(const http_client *c, CURLcode rc)
{
    const char *detail = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
    struct stat st;

    if (c->socket != NULL) {
        if (stat(c->socket, &st) != 0 && errno == ENOENT)
            detail = "no such file";
        else if (stat(c->socket, &st) == 0 && !S_ISSOCK(st.st_mode))
            detail = "that file is not a socket";
        else if (rc == CURLE_COULDNT_CONNECT && access(c->socket, W_OK) != 0 && errno == EACCES)
            detail = "permission denied (are you in the node's group?)";
        fprintf(stderr,
                "sangam: cannot reach the node at %s: %s; check that sangamd is running "
                "and that --node or SANGAM_NODE names its [api] socket\n",
                c->where, detail);
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION && getenv("SANGAM_CA") == NULL) {
        fprintf(stderr,
                "sangam: the node at %s has a certificate this machine does not trust (%s): "
                "set SANGAM_CA to the coalition CA (the hub's pki/ca.pem)\n",
                c->where, detail);
    } else {
        fprintf(stderr,
                "sangam: cannot reach the node at %s: %s; check that sangamd is running there "
                "with [api] listen or https set\n",
                c->where, detail);
    }
    return CLI_EXIT_UNREACHABLE;
}

int http_send(http_client *c, const http_request *req, http_response *out)
{
    struct curl_slist *headers = NULL;
    body_buf body = {NULL, 0, 0, 0};
    progress_hook hook = {req->progress, req->progress_arg};
    sbuf url, ctype;
    CURLcode rc;
    int ret = CLI_EXIT_UNREACHABLE;
    json_error_t jerr;

    out->status = 0;
    out->json = NULL;
    out->text = NULL;
    if (c->base == NULL && (ret = setup(c)) != CLI_EXIT_OK)
        return ret;
    ret = CLI_EXIT_UNREACHABLE;
    sbuf_init(&url);
    sbuf_init(&ctype);
    sbuf_add(&url, c->base);
    sbuf_add(&url, req->path);
    if (req->content_type != NULL)
        sbuf_addf(&ctype, "Content-Type: %s", req->content_type);
    if (url.failed || ctype.failed)
        goto fail_oom;

    /* "Expect:" stops curl from waiting for a 100 Continue before large uploads. */
    headers = curl_slist_append(NULL, "Accept: application/json");
    if (headers == NULL || curl_slist_append(headers, "Expect:") == NULL)
        goto fail_oom;
    if (req->content_type != NULL && curl_slist_append(headers, sbuf_str(&ctype)) == NULL)
        goto fail_oom;
    /* Over the network a hub wants a token (docs/API.md); its socket does not. */
    if (c->socket == NULL && getenv("SANGAM_TOKEN") != NULL && getenv("SANGAM_TOKEN")[0]) {
        sbuf auth;
        sbuf_init(&auth);
        sbuf_addf(&auth, "Authorization: Bearer %s", getenv("SANGAM_TOKEN"));
        if (auth.failed || curl_slist_append(headers, sbuf_str(&auth)) == NULL) {
            sbuf_free(&auth);
            goto fail_oom;
        }
        sbuf_free(&auth);
    }

    curl_easy_reset(c->curl);
    c->errbuf[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->curl, CURLOPT_URL, sbuf_str(&url));
    if (c->socket != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
        curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
    }
    /* A hub's HTTPS certificate is signed by the coalition CA, not a public one: with
     * SANGAM_CA, trust that file alone (never the system store as well). */
    if (c->socket == NULL && getenv("SANGAM_CA") != NULL && getenv("SANGAM_CA")[0]) {
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, getenv("SANGAM_CA"));
        curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "sangam/" SANGAM_VERSION);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &body);
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(req->method, "POST") == 0)
            curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        else
            curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body != NULL || strcmp(req->method, "POST") == 0) {
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(req->body != NULL ? req->body_len : 0));
        }
    }
    if (req->progress != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &hook);
    }

    rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK) {
        if (body.too_big)
            fprintf(stderr, "sangam: the answer from %s is larger than %u MiB; narrow the query\n",
                    c->where, BODY_MAX >> 20);
        else
            unreachable(c, rc);
        goto done;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &out->status);
    {
        char *type = NULL;
        curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
        if (out->status / 100 == 2 && type != NULL && strncmp(type, "text/", 5) == 0) {
            out->text = malloc(body.len + 1);
            if (out->text == NULL)
                goto fail_oom;
            memcpy(out->text, body.data ? body.data : "", body.len);
            out->text[body.len] = '\0';
            ret = CLI_EXIT_OK;
            goto done;
        }
    }
    if (body.len > 0) {
        out->json = json_loadb(body.data, body.len, JSON_DECODE_ANY, &jerr);
        if (out->json == NULL) {
            fprintf(stderr,
                    "sangam: %s answered HTTP %ld with something that is not JSON (%s); is "
                    "sangamd listening there?\n",
                    c->where, out->status, jerr.text);
            goto done;
        }
    }
    ret = CLI_EXIT_OK;
    goto done;

fail_oom:
    fprintf(stderr, "sangam: out of memory\n");
done:
    curl_slist_free_all(headers);
    sbuf_free(&url);
    sbuf_free(&ctype);
    free(body.data);
    return ret;
}

int http_fail(const http_response *r)
{
    json_t *err = json_object_get(r->json, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));

    if (msg != NULL && code != NULL)
        fprintf(stderr, "sangam: %s (%s)\n", msg, code);
    else if (msg != NULL)
        fprintf(stderr, "sangam: %s (HTTP %ld)\n", msg, r->status);
    else
        fprintf(stderr, "sangam: the node answered HTTP %ld without an explanation\n", r->status);
    return CLI_EXIT_REFUSED;
}

void http_response_free(http_response *r)
{
    if (r == NULL)
        return;
    json_decref(r->json);
    r->json = NULL;
    free(r->text);
    r->text = NULL;
}

int http_json(http_client *c, const char *method, const char *path, const json_t *body,
              json_t **out)
{
    http_request req = {method, path, NULL, NULL, 0, NULL, NULL};
    http_response resp;
    char *text = NULL;
    int ret;

    if (out != NULL)
        *out = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            fprintf(stderr, "sangam: out of memory\n");
            return CLI_EXIT_UNREACHABLE;
        }
        req.content_type = "application/json";
        req.body = text;
        req.body_len = strlen(text);
    }
    ret = http_send(c, &req, &resp);
    free(text);
    if (ret != CLI_EXIT_OK)
        return ret;
    if (resp.status < 200 || resp.status > 299) {
        ret = http_fail(&resp);
        http_response_free(&resp);
        return ret;
    }
    if (out != NULL)
        *out = resp.json;
    else
        json_decref(resp.json);
    return CLI_EXIT_OK;
}

void http_query_add(sbuf *b, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {key, value};

    sbuf_add(b, strchr(sbuf_str(b), '?') != NULL ? "&" : "?");
    for (int i = 0; i < 2; i++) {
        if (i == 1)
            sbuf_add(b, "=");
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p != '\0'; p++) {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                strchr("-._~", *p) != NULL)
                sbuf_addn(b, (const char *)p, 1);
            else
                sbuf_addn(b, esc, 3);
        }
    }
}
