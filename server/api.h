/*
 * api.h - the node's HTTP/JSON API (docs/API.md): routing a parsed request to the store and
 * shaping the answer. No I/O: a request in, a response out, so tests and the fuzzer can drive
 * it without sockets.
 */
#ifndef SANGAM_API_H
#define SANGAM_API_H

#include <stddef.h>

#include "http.h"
#include "store.h"

#define SG_API_STATUS_SLOTS 500 /* statuses 100..599 counted for /metrics */

typedef struct sg_api_resp {
    int status; /* HTTP status */
    char *body; /* owned JSON text (may be NULL for 204) */
    size_t body_len;
    const char *error_code;   /* the error's name when status >= 400, for the request log */
    const char *content_type; /* static; NULL means application/json */
} sg_api_resp;

struct sg_hub;
struct sg_uplink;
struct sg_backup;
struct uv_loop_s;

typedef struct sg_api {
    sg_store *st;             /* borrowed */
    const char *role;         /* "region" or "hub" */
    const char *db_path;      /* the database file (for online backups), or NULL */
    struct uv_loop_s *loop;   /* the node's loop (backups run in its thread pool), or NULL */
    struct sg_backup *backup; /* the last online backup (owned; sg_api_close frees it) */
    unsigned long long requests[SG_API_STATUS_SLOTS]; /* answers by status - 100 (metrics) */
    struct sg_hub *hub;                               /* the hub's replication listener, or NULL */
    struct sg_uplink *uplink; /* a region's replication to its hub, or NULL */
} sg_api;

/* Frees what the API owns (its backup state). The loop must have ended. */
void sg_api_close(sg_api *api);

/* Answers one request. Never fails: errors become error responses. */
void sg_api_handle(sg_api *api, const sg_http_req *req, sg_api_resp *out);
/* Frees out->body. */
void sg_api_resp_free(sg_api_resp *out);
/* The HTTP status that fits an SG_E* code. */
int sg_api_status_of(int code);
/* Builds {"error": {"code", "message"}} for code/msg into out (status from the code). */
void sg_api_error(sg_api_resp *out, int code, const char *msg);

#endif
