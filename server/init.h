/*
 * init.h - the two setup subcommands of sangamd, run once on a new machine before the daemon:
 *
 *   sangamd init --dir DIR [--listen ADDR] [--public HOST:PORT] [--name NAMES]
 *       a new hub: the coalition CA (its key never leaves DIR/pki), the hub's own certificate
 *       and DIR/hub.ini, every key commented (kubeadm init);
 *   sangamd join TOKEN --dir DIR
 *       a new region from a hub's invite: its key made here, its certificate from the hub
 *       (trusted by the pin in the token), DIR/region.ini (kubeadm join).
 *
 * Both refuse to overwrite an existing configuration or key, print what they made and the next
 * command to run, and exit 0, 1 (failure, with the reason) or 2 (usage).
 */
#ifndef SANGAM_INIT_H
#define SANGAM_INIT_H

#include <stddef.h>
#include <sys/types.h>

/* argv[0] is the subcommand's name ("init" or "join"). */
int sg_init_main(int argc, char **argv);
int sg_join_main(int argc, char **argv);

/* Shared by init.c and join.c. Makes dir with mode unless it exists as a directory; -1 with
 * why (cap bytes) on failure. */
int init_mkdir(const char *dir, mode_t mode, char *why, size_t cap);
/* Before a setup writes anything into dir: refuses (printing why, prefixed with prog) when
 * dir/ini or dir/pki/key exists, then makes dir (0750) and dir/pki (0700). 0, or 1 (the exit
 * status). pki (cap bytes) receives dir/pki. */
int init_prepare(char *pki, size_t cap, const char *prog, const char *dir, const char *ini,
                 const char *key);
/* Writes text to a new file path (mode, fsynced), failing if it exists. */
int init_write_new(const char *path, const char *text, mode_t mode, char *why, size_t cap);

#endif
