/*
 * import.h - `sangam member import FILE.csv [--dry-run]`: uploads a CSV file of members to the
 * node's all-or-nothing import route and reports the result row by row.
 */
#ifndef SANGAM_CLIENT_IMPORT_H
#define SANGAM_CLIENT_IMPORT_H

#include "args.h"
#include "cli.h"

/* Runs the import command (a->operand[0] is the file). Prints "imported N members from FILE in
 * X.Ys" on success; on a refused file prints each problem as "FILE:ROW: COLUMN: message" on
 * stderr and returns CLI_EXIT_REFUSED. */
int import_run(cli_ctx *ctx, const cli_command *cmd, const args *a);

#endif
