/*
 * config.h - sangamd's INI configuration (read with inih).
 *
 *   [node]
 *   role = region            ; region (hub comes with replication)
 *   id = bundelkhand         ; the region id: lowercase letters, digits, '-'
 *   db = /var/lib/sangam/bundelkhand.db
 *   [api]
 *   socket = /run/sangam/bundelkhand.sock   ; local admin, permissions 0660
 *   listen = 127.0.0.1:7480                 ; optional TCP listener
 *   [log]
 *   level = info             ; debug | info | warn | error
 *
 * Relative paths are taken relative to the directory of the config file, so a config and its
 * database can move together. Unknown sections and keys are errors: a typo never silently
 * falls back to a default.
 */
#ifndef SANGAM_CONFIG_H
#define SANGAM_CONFIG_H

#include <limits.h>

#include "sangam/error.h"

#define SG_SOCKET_PATH_MAX 107 /* sun_path is 108 bytes with the NUL */

typedef struct sg_config {
    char path[PATH_MAX];                      /* the file read */
    char role[8];                             /* "region" */
    char id[64];                              /* region id */
    char db[PATH_MAX];                        /* absolute database path */
    char api_socket[SG_SOCKET_PATH_MAX + 1];  /* Unix socket path, or "" */
    char api_listen[64];                      /* host:port, or "" */
    char log_level[8];                        /* "info" by default */
} sg_config;

/* Loads and checks path into *out. On failure err's message is one line naming the file, line,
 * key and problem: "b.ini:3: [node] id: 'Bundel khand' is not a region id (...)". */
int sg_config_load(sg_config *out, const char *path, sg_err *err);

/* Splits "host:port" or "[v6]:port" into host (cap bytes) and port; 0 or SG_ECONFIG. */
int sg_config_split_addr(const char *addr, char *host, size_t cap, int *port);

#endif
