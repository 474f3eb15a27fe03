/*
 * config.h - sangamd's INI configuration (read with inih).
 *
 *   [node]
 *   role = region            ; region (hub comes with replication)
 *   id = bundelkhand         ; the region id: lowercase letters, digits, '-'
 *   db = /var/lib/sangam/bundelkhand.db
 *   [api]
 *   socket = /run/sangam/bundelkhand.sock   ; local admin, permissions 0660
 *   listen = 127.0.0.1:7480                 ; optional TCP listener (plain HTTP)
 *   https = 0.0.0.0:7443    ; hub: optional HTTPS listener, with [tls] cert and key (TLS 1.2+)
 *   [hub]                    ; region: where to replicate (omit to run standalone)
 *   address = hub.example.org:7400
 *   [listen]                 ; hub: where regions connect
 *   address = 0.0.0.0:7400
 *   public = hub.example.org:7400 ; hub: the address invites tell new regions (default: address)
 *   [tls]                    ; both, when replicating: the coalition CA and this node's pair
 *   ca = /etc/sangam/ca.pem
 *   cert = /etc/sangam/bundelkhand.pem
 *   key = /etc/sangam/bundelkhand.key
 *   ca_key = /etc/sangam/ca.key ; hub: the CA's key, to enroll and renew regions (optional)
 *   cert_days = 90           ; hub: validity of the certificates it issues (1..3650)
 *   renew_before = 30d       ; region: ask for a new certificate this long before expiry
 *   [replication]
 *   retention = 7d           ; region: keep acknowledged log entries this long (s, m, h, d)
 *   keepalive = 15s          ; PING interval; a silent link is dead after twice this
 *   batch_changes = 1000     ; region: changes per batch at most
 *   batch_bytes = 524288     ; region: bytes per batch, about
 *   window = 4               ; region: batches sent before waiting for an ACK (1..8)
 *   reconnect_max = 60s      ; region: the longest wait between connection attempts
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
#include <stdint.h>

#include "sangam/error.h"

#define SG_SOCKET_PATH_MAX 107 /* sun_path is 108 bytes with the NUL */

typedef struct sg_config {
    char path[PATH_MAX];                     /* the file read */
    char role[8];                            /* "region" or "hub" */
    char id[64];                             /* region id, or the hub's id */
    char db[PATH_MAX];                       /* absolute database path */
    char api_socket[SG_SOCKET_PATH_MAX + 1]; /* Unix socket path, or "" */
    char api_listen[64];                     /* host:port, or "" */
    char api_https[64];                      /* hub: host:port served over HTTPS, or "" */
    char log_level[8];                       /* "info" by default */
    char hub_address[128];                   /* region: the hub's host:port, or "" (standalone) */
    char listen_address[64];                 /* hub: host:port regions connect to */
    char tls_ca[PATH_MAX];                   /* coalition CA certificate (PEM) */
    char tls_cert[PATH_MAX];                 /* this node's certificate (PEM) */
    char tls_key[PATH_MAX];                  /* this node's private key (PEM) */
    char tls_ca_key[PATH_MAX];               /* hub: the CA's private key, or "" (no enrollment) */
    char listen_public[128];                 /* hub: address for invites, or "" (use address) */
    int cert_days;                           /* hub: validity of issued certificates, days */
    int64_t renew_before_ms;                 /* region: renew when less than this is left */
    int64_t retention_ms;                    /* region: keep acknowledged log entries this long */
    int64_t keepalive_ms;                    /* PING interval; a link is dead after twice it */
    uint32_t batch_changes;                  /* region: changes per batch at most */
    uint32_t batch_bytes;                    /* region: bytes per batch, about */
    uint32_t window;                         /* region: batches in flight before an ACK */
    int64_t reconnect_max_ms;                /* region: longest delay between attempts */
} sg_config;

/* Loads and checks path into *out. On failure err's message is one line naming the file, line,
 * key and problem: "b.ini:3: [node] id: 'Bundel khand' is not a region id (...)". */
int sg_config_load(sg_config *out, const char *path, sg_err *err);

/* Parses a duration "250ms", "15s", "30m", "24h", "7d" into *out_ms; 0 or SG_ECONFIG. */
int sg_config_duration(int64_t *out_ms, const char *s);

/* Splits "host:port" or "[v6]:port" into host (cap bytes) and port; 0 or SG_ECONFIG. */
int sg_config_split_addr(const char *addr, char *host, size_t cap, int *port);

#endif
