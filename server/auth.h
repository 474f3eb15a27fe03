/*
 * auth.h - bearer tokens for the hub's API over the network (issue 6): who may read the
 * consolidated data (viewer) and who may also change things (admin).
 *
 * A token is "sgt_<id>_<secret>": id is 8 lowercase hex characters naming the row, secret 32
 * (128 bits). The hub keeps the id, a name, the role and the SHA-256 of the secret, never the
 * secret itself; it is shown once, when made. Requests on the node's Unix socket are the local
 * operator's (the socket is 0660) and need no token; requests over TCP to a hub do.
 */
#ifndef SANGAM_AUTH_H
#define SANGAM_AUTH_H

#include <jansson.h>

#include "sangam/error.h"
#include "store.h"

#define SG_AUTH_TOKEN_MAX 64 /* bytes of a token's text: "sgt_" + 8 + "_" + 32 = 45 */

typedef enum sg_role {
    SG_ROLE_NONE = 0,
    SG_ROLE_VIEWER = 1, /* reads: GET and HEAD */
    SG_ROLE_ADMIN = 2,  /* everything */
} sg_role;

/* Makes a token named name (1..100 printable characters) with role "viewer" or "admin".
 * *out is {"id", "name", "role", "created_at", "token"}; the token text appears only here. */
int sg_auth_create(json_t **out, sg_store *st, const char *name, const char *role, sg_err *err);
/* [{"id", "name", "role", "created_at", "last_used_at", "revoked_at"}], newest first. */
int sg_auth_list(json_t **out, sg_store *st, sg_err *err);
/* Revokes token id (idempotent); SG_ENOTFOUND for an unknown id. */
int sg_auth_revoke(sg_store *st, const char *id, sg_err *err);
/* Checks an Authorization header value ("Bearer sgt_..."): the role it grants, or SG_EAUTH with
 * why (missing, malformed, unknown, revoked). Constant-time on the secret. */
int sg_auth_check(sg_role *out, sg_store *st, const char *authorization, sg_err *err);

#endif
