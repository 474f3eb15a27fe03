/*
 * replication.h - the CLI's view of replication: the replication part of `sangam status`, and
 * the hub's commands `sangam hub regions` and `sangam quarantine list|retry|discard`.
 */
#ifndef SANGAM_CLIENT_REPLICATION_H
#define SANGAM_CLIENT_REPLICATION_H

#include <jansson.h>

#include "args.h"
#include "cli.h"

/* Prints the "replication" (region) or "regions" (hub) part of a /v1/status answer. */
void replication_print_status(const json_t *status);

int replication_regions(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_quarantine_list(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_quarantine_act(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_invite(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_invites(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_revoke(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_restore(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_backup(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_token(cli_ctx *ctx, const cli_command *cmd, const args *a);
int replication_report(cli_ctx *ctx, const cli_command *cmd, const args *a);

#endif
