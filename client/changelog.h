/*
 * changelog.h - `sangam log [--since SEQ] [--limit N]`: the node's change log, one line per
 * change.
 */
#ifndef SANGAM_CLIENT_CHANGELOG_H
#define SANGAM_CLIENT_CHANGELOG_H

#include "args.h"
#include "cli.h"

/* Runs the log command: GET /v1/changes from --since (default 0), following "next" to the end
 * of the log, or until --limit changes were printed. Each line holds seq, the time of the
 * change (UTC, from the hlc), op, table, record id and the data as compact JSON. */
int changelog_run(cli_ctx *ctx, const cli_command *cmd, const args *a);

#endif
