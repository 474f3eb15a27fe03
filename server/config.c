/*
 * config.c - reading and checking sangamd's INI file; see config.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "sangam/records.h"

typedef struct load_ctx {
    sg_config *cfg;
    char dir[PATH_MAX];       /* directory of the config file, for relative paths */
    char msg[SG_ERR_MSG_MAX]; /* first problem found by the handler */
    int have_db;
} load_ctx;

/* Resolves value against dir into out (cap bytes); returns 0 or -1 if too long. */
static int resolve_path(const load_ctx *c, const char *value, char *out, size_t cap)
{
    int n = value[0] == '/' ? snprintf(out, cap, "%s", value)
                            : snprintf(out, cap, "%s/%s", c->dir, value);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int sg_config_split_addr(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon;
    size_t hlen;
    char *end;
    long p;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return SG_ECONFIG;
        hlen = (size_t)(close - addr - 1);
        colon = close + 1;
        addr++;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return SG_ECONFIG;
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= cap)
        return SG_ECONFIG;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p < 1 || p > 65535)
        return SG_ECONFIG;
    *port = (int)p;
    return 0;
}

int sg_config_duration(int64_t *out_ms, const char *s)
{
    char *end;
    long long v;
    int64_t unit;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0)
        return SG_ECONFIG;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        unit = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        unit = 24 * 3600 * 1000;
    else
        return SG_ECONFIG;
    if (v > INT64_MAX / unit)
        return SG_ECONFIG;
    *out_ms = (int64_t)v * unit;
    return 0;
}

/* Stores a host:port value; returns the inih verdict. */
static int set_addr(load_ctx *c, const char *what, const char *value, char *dst, size_t cap)
{
    char host[128];
    int port;
    if (strlen(value) >= cap || sg_config_split_addr(value, host, sizeof(host), &port) < 0) {
        snprintf(c->msg, sizeof(c->msg), "%s: '%.64s' is not host:port (e.g. 127.0.0.1:7400)", what,
                 value);
        return 0;
    }
    snprintf(dst, cap, "%s", value);
    return 1;
}

/* Parses a whole number in [lo, hi]; returns 0 or -1. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int set_replication(load_ctx *c, const char *name, const char *value)
{
    sg_config *cfg = c->cfg;
    int64_t ms;

    if (strcmp(name, "retention") == 0 || strcmp(name, "keepalive") == 0 ||
        strcmp(name, "reconnect_max") == 0) {
        int bounded = name[0] != 'r' || name[2] == 'c'; /* keepalive, reconnect_max */
        if (sg_config_duration(&ms, value) < 0 || (bounded && (ms < 100 || ms > 3600 * 1000))) {
            snprintf(c->msg, sizeof(c->msg),
                     "[replication] %s: '%.40s' is not a duration like 15s, 30m, 7d%s", name, value,
                     bounded ? " (100ms..1h)" : "");
            return 0;
        }
        *(name[0] == 'k'   ? &cfg->keepalive_ms
          : name[2] == 'c' ? &cfg->reconnect_max_ms
                           : &cfg->retention_ms) = ms;
        return 1;
    }
    if (strcmp(name, "batch_changes") == 0) {
        if (parse_u32(value, 1, 20000, &cfg->batch_changes) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[replication] batch_changes: expected 1..20000");
            return 0;
        }
        return 1;
    }
    if (strcmp(name, "batch_bytes") == 0) {
        /* A batch closes once it passes this size, so one more change (at most tens of KiB:
         * the schema bounds every text) must still fit in a frame (SG_FRAME_MAX, 1 MiB). */
        if (parse_u32(value, 1024, 960 * 1024, &cfg->batch_bytes) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[replication] batch_bytes: expected 1024..983040");
            return 0;
        }
        return 1;
    }
    if (strcmp(name, "window") == 0) {
        if (parse_u32(value, 1, 8, &cfg->window) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[replication] window: expected 1..8");
            return 0;
        }
        return 1;
    }
    snprintf(c->msg, sizeof(c->msg), "[replication] %.40s: unknown key", name);
    return 0;
}

/* inih callback: returns 1 to go on, 0 to record this line as the error. */
static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    load_ctx *c = user;
    sg_config *cfg = c->cfg;
    char host[64];
    int port;

    if (c->msg[0] != '\0')
        return 1; /* keep only the first problem */
    if (strcmp(section, "node") == 0 && strcmp(name, "role") == 0) {
        if (strcmp(value, "region") == 0 || strcmp(value, "hub") == 0) {
            snprintf(cfg->role, sizeof(cfg->role), "%s", value);
            return 1;
        }
        snprintf(c->msg, sizeof(c->msg), "[node] role: '%.40s' is not one of region|hub", value);
        return 0;
    }
    if (strcmp(section, "node") == 0 && strcmp(name, "id") == 0) {
        if (!sg_region_id_valid(value, strlen(value))) {
            snprintf(c->msg, sizeof(c->msg),
                     "[node] id: '%.64s' is not a node id (1-63 lowercase letters, digits and "
                     "'-', not starting with '-')",
                     value);
            return 0;
        }
        snprintf(cfg->id, sizeof(cfg->id), "%s", value);
        return 1;
    }
    if (strcmp(section, "node") == 0 && strcmp(name, "db") == 0) {
        if (value[0] == '\0' || resolve_path(c, value, cfg->db, sizeof(cfg->db)) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[node] db: empty or too long a path");
            return 0;
        }
        c->have_db = 1;
        return 1;
    }
    if (strcmp(section, "api") == 0 && strcmp(name, "socket") == 0) {
        if (value[0] == '\0' ||
            resolve_path(c, value, cfg->api_socket, sizeof(cfg->api_socket)) < 0) {
            snprintf(c->msg, sizeof(c->msg),
                     "[api] socket: empty, or longer than %d bytes once made absolute (a Unix "
                     "socket limit): use a shorter path",
                     SG_SOCKET_PATH_MAX);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "api") == 0 && strcmp(name, "listen") == 0) {
        /* A value longer than the field is refused, not cut: "host:7480" cut to "host:74"
         * would still read as host:port, with another port. */
        if (strlen(value) >= sizeof(cfg->api_listen) ||
            sg_config_split_addr(value, host, sizeof(host), &port) < 0) {
            snprintf(c->msg, sizeof(c->msg),
                     "[api] listen: '%.64s' is not host:port (e.g. 127.0.0.1:7480)", value);
            return 0;
        }
        snprintf(cfg->api_listen, sizeof(cfg->api_listen), "%s", value);
        return 1;
    }
    if (strcmp(section, "api") == 0 && strcmp(name, "https") == 0)
        return set_addr(c, "[api] https", value, cfg->api_https, sizeof(cfg->api_https));
    if (strcmp(section, "log") == 0 && strcmp(name, "level") == 0) {
        if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
            strcmp(value, "error")) {
            snprintf(c->msg, sizeof(c->msg),
                     "[log] level: '%.20s' is not one of debug|info|warn|error", value);
            return 0;
        }
        snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", value);
        return 1;
    }
    if (strcmp(section, "hub") == 0 && strcmp(name, "address") == 0)
        return set_addr(c, "[hub] address", value, cfg->hub_address, sizeof(cfg->hub_address));
    if (strcmp(section, "listen") == 0 && strcmp(name, "address") == 0)
        return set_addr(c, "[listen] address", value, cfg->listen_address,
                        sizeof(cfg->listen_address));
    if (strcmp(section, "listen") == 0 && strcmp(name, "public") == 0)
        return set_addr(c, "[listen] public", value, cfg->listen_public,
                        sizeof(cfg->listen_public));
    if (strcmp(section, "tls") == 0 && strcmp(name, "cert_days") == 0) {
        uint32_t days;
        if (parse_u32(value, 1, 3650, &days) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[tls] cert_days: expected 1..3650");
            return 0;
        }
        cfg->cert_days = (int)days;
        return 1;
    }
    if (strcmp(section, "tls") == 0 && strcmp(name, "renew_before") == 0) {
        if (sg_config_duration(&cfg->renew_before_ms, value) < 0) {
            snprintf(c->msg, sizeof(c->msg),
                     "[tls] renew_before: '%.40s' is not a duration (e.g. 30d)", value);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "tls") == 0 && (strcmp(name, "ca") == 0 || strcmp(name, "cert") == 0 ||
                                        strcmp(name, "key") == 0 || strcmp(name, "ca_key") == 0)) {
        char *dst = strcmp(name, "ca_key") == 0 ? cfg->tls_ca_key
                    : name[0] == 'c'            ? (name[1] == 'a' ? cfg->tls_ca : cfg->tls_cert)
                                                : cfg->tls_key;
        if (value[0] == '\0' || resolve_path(c, value, dst, PATH_MAX) < 0) {
            snprintf(c->msg, sizeof(c->msg), "[tls] %s: empty or too long a path", name);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "replication") == 0)
        return set_replication(c, name, value);
    if (strcmp(section, "node") && strcmp(section, "api") && strcmp(section, "log") &&
        strcmp(section, "hub") && strcmp(section, "listen") && strcmp(section, "tls") &&
        strcmp(section, "replication"))
        snprintf(c->msg, sizeof(c->msg),
                 "[%.40s]: unknown section (known: node, api, hub, listen, tls, replication, "
                 "log)",
                 section);
    else
        snprintf(c->msg, sizeof(c->msg), "[%s] %.40s: unknown key", section, name);
    return 0;
}

/* The line of the first NUL byte in the file at path, 0 when there is none, -1 when it cannot be
 * read. inih reads lines as C strings, so a NUL silently cuts a value short ("id = bun\0lkhand"
 * would load as "bun"); a text file has none, but a file zeroed by a crash may. */
static int nul_line(const char *path)
{
    FILE *f = fopen(path, "rb");
    int line = 1, c;

    if (f == NULL)
        return -1;
    while ((c = getc(f)) != EOF && c != '\0')
        line += c == '\n';
    fclose(f);
    return c == EOF ? 0 : line;
}

int sg_config_load(sg_config *out, const char *path, sg_err *err)
{
    load_ctx c;
    char *slash;
    int line;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.cfg = out;
    snprintf(out->path, sizeof(out->path), "%s", path);
    snprintf(out->log_level, sizeof(out->log_level), "info");
    out->retention_ms = 7LL * 24 * 3600 * 1000;
    out->keepalive_ms = 15 * 1000;
    out->batch_changes = 1000;
    out->batch_bytes = 512 * 1024;
    out->window = 4;
    out->reconnect_max_ms = 60 * 1000;
    out->cert_days = 90;
    out->renew_before_ms = 30LL * 24 * 3600 * 1000;

    if (realpath(path, c.dir) == NULL)
        return sg_err_set(err, SG_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    slash = strrchr(c.dir, '/');
    if (slash != NULL)
        *(slash == c.dir ? slash + 1 : slash) = '\0';

    line = nul_line(path);
    if (line > 0)
        return sg_err_set(err, SG_ECONFIG,
                          "%s:%d: a NUL byte: not a text file (damaged? write it again)", path,
                          line);
    line = ini_parse(path, on_entry, &c);
    if (line == -1)
        return sg_err_set(err, SG_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    if (line == -2)
        return sg_err_set(err, SG_ENOMEM, "%s: out of memory", path);
    if (line > 0)
        return sg_err_set(err, SG_ECONFIG, "%s:%d: %s", path, line,
                          c.msg[0] ? c.msg : "not a 'key = value' line or '[section]'");
    if (out->role[0] == '\0')
        return sg_err_set(err, SG_ECONFIG, "%s: [node] role: missing (role = region)", path);
    if (out->id[0] == '\0')
        return sg_err_set(err, SG_ECONFIG, "%s: [node] id: missing (e.g. id = bundelkhand)", path);
    if (!c.have_db)
        return sg_err_set(err, SG_ECONFIG, "%s: [node] db: missing (path of the database file)",
                          path);
    if (strcmp(out->role, "hub") == 0 && out->listen_address[0] == '\0')
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [listen] address: missing: a hub listens for regions (e.g. "
                          "address = 0.0.0.0:7400)",
                          path);
    if (strcmp(out->role, "hub") == 0 && out->hub_address[0] != '\0')
        return sg_err_set(err, SG_ECONFIG, "%s: [hub] address: only a region dials a hub", path);
    if (strcmp(out->role, "region") == 0 && out->listen_address[0] != '\0')
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [listen] address: only the hub listens for regions; a region "
                          "names its hub in [hub] address",
                          path);
    if (strcmp(out->role, "region") == 0 && (out->tls_ca_key[0] || out->listen_public[0]))
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [%s]: only the hub holds the CA key and invites regions", path,
                          out->tls_ca_key[0] ? "tls] ca_key" : "listen] public");
    if (strcmp(out->role, "region") == 0 && out->api_https[0] != '\0')
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [api] https: only the hub serves HTTPS (with its [tls] cert and "
                          "key); a region serves its API on [api] socket and listen",
                          path);
    if (strcmp(out->role, "region") == 0 && strcmp(out->id, "hub") == 0)
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [node] id: 'hub' is reserved for the hub's certificate name", path);
    if (out->hub_address[0] != '\0' || out->listen_address[0] != '\0') {
        const char *missing = out->tls_ca[0] == '\0'     ? "ca"
                              : out->tls_cert[0] == '\0' ? "cert"
                              : out->tls_key[0] == '\0'  ? "key"
                                                         : NULL;
        if (missing != NULL)
            return sg_err_set(err, SG_ECONFIG,
                              "%s: [tls] %s: missing: replication runs over mutual TLS (ca, "
                              "cert and key)",
                              path, missing);
    }
    if (out->api_socket[0] == '\0' && out->api_listen[0] == '\0' && out->api_https[0] == '\0')
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [api] socket: missing (and no [api] listen or https): the node "
                          "would serve no one",
                          path);
    return 0;
}
