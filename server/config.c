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
    char dir[PATH_MAX]; /* directory of the config file, for relative paths */
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
        if (strcmp(value, "region") == 0) {
            snprintf(cfg->role, sizeof(cfg->role), "%s", value);
            return 1;
        }
        if (strcmp(value, "hub") == 0)
            snprintf(c->msg, sizeof(c->msg),
                     "[node] role: 'hub' is not available in this version yet; use 'region'");
        else
            snprintf(c->msg, sizeof(c->msg), "[node] role: '%.40s' is not one of region|hub",
                     value);
        return 0;
    }
    if (strcmp(section, "node") == 0 && strcmp(name, "id") == 0) {
        if (!sg_region_id_valid(value, strlen(value)) || strcmp(value, "hub") == 0) {
            snprintf(c->msg, sizeof(c->msg),
                     "[node] id: '%.64s' is not a region id (1-63 lowercase letters, digits and "
                     "'-', not starting with '-', not 'hub')",
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
        if (sg_config_split_addr(value, host, sizeof(host), &port) < 0) {
            snprintf(c->msg, sizeof(c->msg),
                     "[api] listen: '%.64s' is not host:port (e.g. 127.0.0.1:7480)", value);
            return 0;
        }
        snprintf(cfg->api_listen, sizeof(cfg->api_listen), "%s", value);
        return 1;
    }
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
    if (strcmp(section, "node") && strcmp(section, "api") && strcmp(section, "log"))
        snprintf(c->msg, sizeof(c->msg), "[%.40s]: unknown section (known: node, api, log)",
                 section);
    else
        snprintf(c->msg, sizeof(c->msg), "[%s] %.40s: unknown key", section, name);
    return 0;
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

    if (realpath(path, c.dir) == NULL)
        return sg_err_set(err, SG_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    slash = strrchr(c.dir, '/');
    if (slash != NULL)
        *(slash == c.dir ? slash + 1 : slash) = '\0';

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
        return sg_err_set(err, SG_ECONFIG, "%s: [node] id: missing (e.g. id = bundelkhand)",
                          path);
    if (!c.have_db)
        return sg_err_set(err, SG_ECONFIG, "%s: [node] db: missing (path of the database file)",
                          path);
    if (out->api_socket[0] == '\0' && out->api_listen[0] == '\0')
        return sg_err_set(err, SG_ECONFIG,
                          "%s: [api] socket: missing (and no [api] listen): the node would "
                          "serve no one",
                          path);
    return 0;
}
