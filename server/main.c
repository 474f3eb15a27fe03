/*
 * main.c - sangamd: the node daemon. Reads its config, takes sole ownership of its database
 * (an exclusive lock beside it), opens and migrates it, serves the API until SIGTERM or SIGINT,
 * then stops accepting, lets requests in progress finish and closes the database.
 *
 * Under systemd (Type=notify) it tells the service manager READY=1 once it serves, STOPPING=1
 * when a stop begins, and WATCHDOG=1 at half the interval the manager asked for (WatchdogSec=),
 * from a timer on the loop, so a loop that hangs is restarted. Without $NOTIFY_SOCKET these
 * are no-ops.
 *
 * Exit codes: 0 clean stop, 1 runtime failure (database, socket), 2 bad usage or config.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#include "api.h"
#include "config.h"
#include "hub.h"
#include "init.h"
#include "log.h"
#include "store.h"
#include "transport.h"
#include "uplink.h"

/* The process's state, passed down from here (no globals). */
typedef struct node {
    sg_config cfg;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t watchdog; /* WATCHDOG=1 to systemd; started only when it asked for one */
    sg_store *st;
    sg_api api;
    sg_http_server *http;
    sg_hub *hub;       /* role = hub */
    sg_uplink *uplink; /* role = region with [hub] address */
    int lock_fd;
    int stopping;
    int running; /* components still to stop */
} node;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sangamd --config FILE [--check]\n"
            "       sangamd init --dir DIR [...]     set up a new hub (see sangamd init --help)\n"
            "       sangamd join TOKEN --dir DIR     join a hub as a new region\n"
            "\n"
            "Runs a Sangam node: its database, its API on a Unix socket (and TCP if set).\n"
            "\n"
            "  -c, --config FILE  the node's INI configuration (see deploy/region.ini)\n"
            "      --check        check the configuration and the database, then exit\n"
            "  -h, --help         this text\n"
            "  -V, --version      print the version\n"
            "\n"
            "Stops cleanly on SIGTERM or SIGINT. Logs one logfmt line per event on stderr.\n");
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* A component finished stopping; when the last one has, the loop can end. The watchdog keeps
 * pinging until then, so a slow drain is not mistaken for a hang. */
static void on_component_stopped(void *arg)
{
    node *n = arg;
    if (--n->running > 0)
        return;
    uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&n->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&n->watchdog, on_handle_closed);
}

static void stop_all(node *n)
{
    /* Count first, so that a component finishing at once does not end the loop early. */
    n->running = 1 + (n->http != NULL) + (n->hub != NULL) + (n->uplink != NULL);
    if (n->http)
        sg_http_server_shutdown(n->http, on_component_stopped, n);
    if (n->hub)
        sg_hub_stop(n->hub, on_component_stopped, n);
    if (n->uplink)
        sg_uplink_stop(n->uplink, on_component_stopped, n);
    n->http = NULL;
    n->hub = NULL;
    n->uplink = NULL;
    on_component_stopped(n);
}

static void on_signal(uv_signal_t *s, int signum)
{
    node *n = s->data;
    if (n->stopping) {
        sg_log(SG_LOG_WARN, "signal", "signal=%s action=already_stopping",
               signum == SIGTERM ? "TERM" : "INT");
        return;
    }
    n->stopping = 1;
    sg_log(SG_LOG_INFO, "stopping", "signal=%s", signum == SIGTERM ? "TERM" : "INT");
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    stop_all(n);
}

/* The loop is alive: tell systemd, which restarts a node that stays silent for WatchdogSec. */
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

/* Starts the watchdog timer at half the interval systemd asked for ($WATCHDOG_USEC, for this
 * pid), or leaves it stopped when it asked for none. */
static void start_watchdog(node *n)
{
    uint64_t usec = 0, ms;
    char q[128];
    int rc = sd_watchdog_enabled(0, &usec);

    if (rc < 0)
        sg_log(SG_LOG_WARN, "watchdog_off", "reason=%s", sg_logq(q, sizeof(q), strerror(-rc)));
    if (rc <= 0 || usec == 0)
        return;
    ms = usec / 2000;
    if (ms == 0)
        ms = 1;
    uv_timer_start(&n->watchdog, on_watchdog, ms, ms);
    sg_log(SG_LOG_INFO, "watchdog", "interval_ms=%llu ping_ms=%llu",
           (unsigned long long)(usec / 1000), (unsigned long long)ms);
}

/* The store committed a local write: replication sends it now rather than at the next poll. */
static void on_commit(void *arg)
{
    node *n = arg;
    sg_uplink_notify(n->uplink);
}

/* Takes an exclusive lock on "<db>.lock" so two nodes never share one database. */
static int lock_db(node *n, sg_err *err)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s.lock", n->cfg.db);
    n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (n->lock_fd < 0)
        return sg_err_set(err, SG_EIO, "cannot create %s: %s", path, strerror(errno));
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return sg_err_set(err, SG_EBUSY, "database %s is in use by another sangamd", n->cfg.db);
    return 0;
}

/* Creates the database's directory if it is missing (mode 0750). */
static void make_db_dir(const char *db)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", db);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0750);
        *p = '/';
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    node n;
    sg_err err = {0};
    const char *config = NULL;
    int check = 0, opt, rc, status = 1;

    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return sg_init_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "join") == 0)
        return sg_join_main(argc - 1, argv + 1);
    memset(&n, 0, sizeof(n));
    n.lock_fd = -1;
    /* SQLite's allocation statistics take a global mutex on every malloc and free; nothing
     * reads them, and a replication apply allocates per change (5% of a catch-up's time). Must
     * come before SQLite is first used. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sangamd %s\n", SANGAM_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        fprintf(stderr, "sangamd: %s\n",
                config == NULL ? "--config FILE is required" : "unexpected argument");
        usage(stderr);
        return 2;
    }
    if (sg_config_load(&n.cfg, config, &err) < 0) {
        fprintf(stderr, "sangamd: %s\n", err.msg);
        return 2;
    }
    sg_log_set_level(n.cfg.log_level);
    /* A peer that goes away mid-write must not kill the node: writes return EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);

    make_db_dir(n.cfg.db);
    if (lock_db(&n, &err) < 0 || sg_store_open(&n.st, n.cfg.db, n.cfg.id, n.cfg.role, &err) < 0) {
        sg_log(SG_LOG_ERROR, "start_failed", "code=%s", sg_strerror_name(err.code));
        fprintf(stderr, "sangamd: %s\n", err.msg);
        goto close_lock;
    }
    if (check) {
        printf("config %s ok; database %s at schema version %d, seq %lld\n", n.cfg.path, n.cfg.db,
               SG_SCHEMA_VERSION, (long long)sg_store_seq(n.st));
        status = 0;
        goto close_store;
    }
    n.api.st = n.st;
    n.api.role = n.cfg.role;
    n.api.db_path = n.cfg.db;
    n.api.loop = &n.loop;

    rc = uv_loop_init(&n.loop);
    if (rc < 0) {
        fprintf(stderr, "sangamd: event loop: %s\n", uv_strerror(rc));
        goto close_store;
    }
    uv_signal_init(&n.loop, &n.sigterm);
    uv_signal_init(&n.loop, &n.sigint);
    uv_timer_init(&n.loop, &n.watchdog);
    n.sigterm.data = &n;
    n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);

    rc = 0;
    if (strcmp(n.cfg.role, "hub") == 0)
        rc = sg_hub_start(&n.hub, &n.loop, n.st, &n.cfg, &err);
    else if (n.cfg.hub_address[0] != '\0')
        rc = sg_uplink_start(&n.uplink, &n.loop, n.st, &n.cfg, &err);
    n.api.hub = n.hub;
    n.api.uplink = n.uplink;
    sg_store_on_commit(n.st, on_commit, &n);
    if (rc == 0)
        rc = sg_http_server_start(&n.http, &n.loop, &n.api, n.cfg.api_socket, n.cfg.api_listen,
                                  &err);
    /* The hub's API over HTTPS, with the hub's own certificate ([api] https; config.c allows it
     * on a hub only). */
    if (rc == 0 && n.cfg.api_https[0] != '\0' && strcmp(n.cfg.role, "hub") == 0)
        rc = sg_http_server_listen_https(n.http, n.cfg.api_https, n.cfg.tls_cert, n.cfg.tls_key,
                                         &err);
    if (rc < 0) {
        sg_log(SG_LOG_ERROR, "start_failed", "code=%s", sg_strerror_name(err.code));
        fprintf(stderr, "sangamd: %s\n", err.msg);
        sd_notifyf(0, "STATUS=start failed: %s", err.msg);
        n.stopping = 1;
        stop_all(&n);
        uv_run(&n.loop, UV_RUN_DEFAULT);
        goto close_loop;
    }
    sg_log(SG_LOG_INFO, "started", "node=%s role=%s db=%s schema=%d seq=%lld pid=%ld", n.cfg.id,
           n.cfg.role, n.cfg.db, SG_SCHEMA_VERSION, (long long)sg_store_seq(n.st), (long)getpid());
    sd_notifyf(0, "READY=1\nSTATUS=serving: node %s, role %s, database %s", n.cfg.id, n.cfg.role,
               n.cfg.db);
    start_watchdog(&n);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    status = 0;

close_loop:
    if (uv_loop_close(&n.loop) != 0)
        sg_log(SG_LOG_WARN, "loop_not_clean", "detail=handles_still_open");
close_store:
    sg_api_close(&n.api);
    sg_store_close(n.st);
    if (status == 0 && !check)
        sg_log(SG_LOG_INFO, "stopped", "node=%s", n.cfg.id);
close_lock:
    if (n.lock_fd >= 0)
        close(n.lock_fd);
    return status;
}
