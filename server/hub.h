/*
 * hub.h - the hub's replication listener: accepts regions over mutual TLS and runs one session
 * per connection (PROTOCOL.md 7.4, hub side), applying their batches through apply.c.
 *
 * Sessions are independent: a region that is refused, misbehaves or stalls is closed alone; the
 * loop keeps serving every other region. At most one session per region streams at a time: a new
 * HELLO from a region replaces its older session (a reconnect that outran dead-link detection).
 */
#ifndef SANGAM_HUB_H
#define SANGAM_HUB_H

#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "store.h"

#define SG_HUB_MAX_LINKS 2048

typedef struct sg_hub sg_hub;

/* Loads the TLS credentials and listens on cfg->listen_address. */
int sg_hub_start(sg_hub **out, uv_loop_t *loop, sg_store *st, const sg_config *cfg, sg_err *err);
/* Says BYE to every region, closes every handle, then calls done(arg) and frees the hub. */
void sg_hub_stop(sg_hub *hub, void (*done)(void *arg), void *arg);
/* Per-region replication state: [{"region", "connected", "last_seq", "region_seq",
 * "lag_changes", "lag_seconds", "last_contact", "last_error", "quarantined", ...}]. */
json_t *sg_hub_regions(sg_hub *hub, sg_store *st);

/* Enrollment (enroll.h), for the API. Both need [tls] ca_key (else SG_ECONFIG saying so). */
struct sg_token;
/* A one-time invite for region valid ttl_ms; addr overrides [listen] public / address. */
int sg_hub_invite(struct sg_token *out, char expires_at[32], sg_hub *hub, const char *region,
                  int64_t ttl_ms, const char *addr, sg_err *err);
/* 1 if this hub holds its CA's key and can enroll and renew regions. */
int sg_hub_can_enroll(const sg_hub *hub);
/* Revokes region and drops its live connections (*out_dropped of them) at once. */
int sg_hub_revoke(int *out_dropped, sg_hub *hub, const char *region, sg_err *err);

#endif
