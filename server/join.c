/*
 * join.c - `sangamd join TOKEN --dir DIR`: a new region's office joins from a hub's invite; see
 * init.h and enroll.h for the trust flow.
 *
 * The node's private key is made here and never sent anywhere: the hub gets a CSR. The hub is
 * trusted only through the token's pin (tls.c's enrollment context); the certificate that comes
 * back is checked again before anything is written (it must carry this key and this region and
 * verify against the pinned CA). Files appear only after the hub said yes, the configuration
 * last, so a refused or interrupted join leaves DIR as it was (except for created directories).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>
#include <uv.h>

#include "ca.h"
#include "config.h"
#include "enroll.h"
#include "init.h"
#include "link.h"
#include "sangam/frame.h"
#include "tls.h"

#define JOIN_DEADLINE_MS 30000

typedef struct join_run {
    const sg_token *t;
    const char *csr; /* PEM */
    sg_link *link;
    char *cert_pem; /* from CERT (owned) */
    char *ca_pem;   /* from CERT (owned) */
    char why[SG_ERR_MSG_MAX + 64];
    int code;
} join_run;

/* Checks that the database at path is a node database of region (its sg_node row). */
static int check_db(const char *path, const char *region, char *why, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT id, role FROM sg_node", -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW)
        snprintf(why, cap, "not a Sangam node database");
    else if (strcmp((const char *)sqlite3_column_text(stmt, 1), "region") != 0 ||
             strcmp((const char *)sqlite3_column_text(stmt, 0), region) != 0)
        snprintf(why, cap, "it belongs to %s '%s', not region '%s'",
                 (const char *)sqlite3_column_text(stmt, 1),
                 (const char *)sqlite3_column_text(stmt, 0), region);
    else
        rc = 0;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

static void join_usage(FILE *f)
{
    fprintf(f, "usage: sangamd join TOKEN --dir DIR [--db PATH]\n"
               "\n"
               "Joins this machine to a Sangam hub as a new region, with the one-time TOKEN that\n"
               "'sangam hub invite REGION' printed at the hub. Makes the node's key here (it\n"
               "never leaves DIR/pki), verifies the hub by the CA pin in the token, receives the\n"
               "region's certificate and writes DIR/region.ini. Then start the node with\n"
               "  sangamd --config DIR/region.ini\n"
               "\n"
               "  --dir DIR   where to put the configuration, keys and database\n"
               "  --db PATH   an existing database of this region (a node that ran on its own):\n"
               "              all of its records go to the hub on the first connection\n"
               "  -h, --help  this text\n");
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static void on_open(sg_link *l, void *arg)
{
    join_run *j = arg;
    sg_msg m;
    memset(&m, 0, sizeof(m));
    m.type = SG_MSG_JOIN;
    m.version = SG_PROTO_VERSION;
    m.node = j->t->region;
    m.node_len = (uint32_t)strlen(j->t->region);
    m.secret = j->t->secret;
    m.secret_len = (uint32_t)strlen(j->t->secret);
    m.pem = j->csr;
    m.pem_len = (uint32_t)strlen(j->csr);
    sg_link_send(l, &m);
}

static void on_msg(sg_link *l, const sg_msg *m, void *arg)
{
    join_run *j = arg;
    if (m->type == SG_MSG_CERT && j->cert_pem == NULL) {
        j->cert_pem = dup_n(m->pem, m->pem_len);
        j->ca_pem = dup_n(m->pem2, m->pem2_len);
        return;
    }
    if (m->type == SG_MSG_ERROR) {
        j->code = sg_error_from_name(m->code, m->code_len);
        snprintf(j->why, sizeof(j->why), "the hub refused: %.*s", (int)m->text_len, m->text);
        sg_link_close(l, j->code, j->why);
        return;
    }
    if (m->type == SG_MSG_BYE) {
        sg_link_close(l, 0, "done");
        return;
    }
    snprintf(j->why, sizeof(j->why), "unexpected %s from the hub", sg_msg_name(m->type));
    j->code = SG_EPROTO;
    sg_link_close(l, SG_EPROTO, j->why);
}

static void on_close(sg_link *l, int code, const char *why, void *arg)
{
    join_run *j = arg;
    (void)l;
    j->link = NULL;
    if (code != 0 && j->code == 0) {
        j->code = code;
        snprintf(j->why, sizeof(j->why), "%s", why);
    }
}

static const sg_link_cbs join_cbs = {on_open, on_msg, NULL, on_close};

/* Checks what the hub sent: the CA has the token's pin, and the certificate carries key, names
 * exactly the region and verifies against that CA (ca.h, sg_cert_check_region). */
static int check_answer(const join_run *j, EVP_PKEY *key, char *why, size_t cap)
{
    X509 *cert = sg_cert_from_pem(j->cert_pem, strlen(j->cert_pem));
    X509 *ca = sg_cert_from_pem(j->ca_pem, strlen(j->ca_pem));
    char pin[SG_CA_PIN_LEN + 1];
    sg_err err = {0};
    int ok = -1;

    if (cert == NULL || ca == NULL)
        snprintf(why, cap, "the hub's answer holds no readable certificate");
    else if (sg_cert_pin(pin, ca, &err) < 0 || strcmp(pin, j->t->pin) != 0)
        snprintf(why, cap, "the CA the hub sent does not match the token's pin");
    else if (sg_cert_check_region(cert, key, j->t->region, ca, &err) < 0)
        snprintf(why, cap, "the hub sent a certificate this node cannot use: %s", err.msg);
    else
        ok = 0;
    X509_free(ca);
    X509_free(cert);
    return ok;
}

/* Dials t->hub and runs the JOIN exchange; 0 with j->cert_pem/ca_pem, or -1 with j->why. */
static int exchange(join_run *j, sg_tls_ctx *tls)
{
    char host[256];
    int port;
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    uv_loop_t loop;
    sg_err err = {0};
    int rc;

    if (sg_config_split_addr(j->t->hub, host, sizeof(host), &port) < 0) {
        snprintf(j->why, sizeof(j->why), "the token's hub address %s is not host:port", j->t->hub);
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(j->why, sizeof(j->why), "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    uv_loop_init(&loop);
    rc = sg_link_connect(&j->link, &loop, tls, res->ai_addr, &join_cbs, j, &err);
    freeaddrinfo(res);
    if (rc < 0) {
        snprintf(j->why, sizeof(j->why), "cannot connect to %s: %s", j->t->hub, err.msg);
        uv_loop_close(&loop);
        return -1;
    }
    sg_link_deadline(j->link, JOIN_DEADLINE_MS);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (j->cert_pem != NULL && j->ca_pem != NULL)
        return 0;
    if (j->why[0] == '\0')
        snprintf(j->why, sizeof(j->why), "the hub closed the connection without a certificate");
    return -1;
}

int sg_join_main(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"db", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL, *token = NULL, *db_arg = NULL;
    char db[PATH_MAX + 64];
    char pki[PATH_MAX], path[PATH_MAX + 32], why[PATH_MAX + 128], ini[2048];
    sg_token t;
    join_run j;
    sg_tls_ctx *tls = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL, *ca = NULL;
    sg_err err = {0};
    int opt, rc = 1;

    memset(&j, 0, sizeof(j));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'b':
            db_arg = optarg;
            break;
        case 'h':
            join_usage(stdout);
            return 0;
        default:
            join_usage(stderr);
            return 2;
        }
    }
    if (optind + 1 == argc)
        token = argv[optind];
    if (dir == NULL || token == NULL) {
        join_usage(stderr);
        return 2;
    }
    if (sg_token_parse(&t, token, strlen(token), &err) < 0) {
        fprintf(stderr, "sangamd join: %s\n", err.msg);
        return 2;
    }
    if (strlen(dir) + strlen(t.region) > 90) {
        fprintf(stderr, "sangamd join: --dir %s: too long a path for the API socket\n", dir);
        return 2;
    }
    if (db_arg != NULL) {
        /* A region that has been working on its own joins with its data: the database must
         * exist and be this region's; all of it goes to the hub on the first connection. */
        char real[PATH_MAX];
        if (realpath(db_arg, real) == NULL) {
            fprintf(stderr, "sangamd join: --db %s: %s\n", db_arg, strerror(errno));
            return 2;
        }
        if (check_db(real, t.region, why, sizeof(why)) < 0) {
            fprintf(stderr, "sangamd join: --db %s: %s\n", db_arg, why);
            return 1;
        }
        snprintf(db, sizeof(db), "%s", real);
    } else {
        snprintf(db, sizeof(db), "%s.db", t.region);
    }
    if (init_prepare(pki, sizeof(pki), "sangamd join", dir, "region.ini", "node.key") != 0)
        return 1;
    /* The key is kept in pki/join.key from the first attempt on, so that a retry after a lost
     * answer presents the same key: the hub admits a spent invite again only for the key it was
     * spent on (enroll.c). It becomes pki/node.key on success. */
    snprintf(path, sizeof(path), "%s/join.key", pki);
    if (access(path, F_OK) == 0) {
        if (sg_key_load(&key, path, &err) < 0)
            goto fail_err;
        fprintf(stderr, "sangamd join: using the key kept from an earlier attempt (%s)\n", path);
    } else if (sg_key_new(&key, &err) < 0 || sg_pem_write_key(path, key, &err) < 0) {
        goto fail_err;
    }
    if (sg_tls_ctx_new_join(&tls, t.pin, &err) < 0)
        goto fail_err;
    j.t = &t;
    j.csr = sg_csr_pem(key, t.region);
    if (j.csr == NULL) {
        snprintf(why, sizeof(why), "cannot make a certificate request");
        goto fail_why;
    }
    fprintf(stderr, "sangamd join: asking the hub at %s to admit region %s...\n", t.hub, t.region);
    if (exchange(&j, tls) < 0) {
        /* A refusal (the hub's ERROR, a pin or certificate that does not verify) is final; a
         * link that dropped is worth the same command again. */
        int dropped = j.code == SG_ETLS || j.code == SG_ECLOSED || j.code == SG_EIO || j.code == 0;
        snprintf(why, sizeof(why), "%s%s%s%s", j.why,
                 dropped ? "\n(if the link dropped, run the same command again: this machine's "
                           "key is kept in "
                         : "",
                 dropped ? pki : "",
                 dropped ? "/join.key and the hub admits it once more with the same token)" : "");
        goto fail_why;
    }
    if (check_answer(&j, key, why, sizeof(why)) < 0)
        goto fail_why;

    /* The hub said yes: key, certificate, CA, then the configuration. */
    cert = sg_cert_from_pem(j.cert_pem, strlen(j.cert_pem));
    ca = sg_cert_from_pem(j.ca_pem, strlen(j.ca_pem));
    snprintf(path, sizeof(path), "%s/node.key", pki);
    if (sg_pem_write_key(path, key, &err) < 0)
        goto fail_err;
    snprintf(path, sizeof(path), "%s/node.pem", pki);
    if (sg_pem_write_cert(path, cert, &err) < 0)
        goto fail_err;
    snprintf(path, sizeof(path), "%s/ca.pem", pki);
    if (sg_pem_write_cert(path, ca, &err) < 0)
        goto fail_err;
    snprintf(ini, sizeof(ini),
             "; Sangam region %s, made by sangamd join. Paths are relative to this file.\n"
             "[node]\n"
             "role = region\n"
             "id = %s\n"
             "db = %s ; this region's records (made on first start if missing)\n"
             "[api]\n"
             "socket = %s.sock        ; local API: sangam --node %s/%s.sock ...\n"
             "[hub]\n"
             "address = %s ; the hub this region replicates to\n"
             "[tls]\n"
             "ca = pki/ca.pem         ; the coalition CA, pinned at join\n"
             "cert = pki/node.pem     ; this region's certificate, renewed over the connection\n"
             "key = pki/node.key      ; made here; never leaves this machine\n"
             "renew_before = 30d      ; ask the hub for a new certificate this long before expiry\n"
             "[replication]\n"
             "retention = 7d          ; keep acknowledged log entries this long\n"
             "[log]\n"
             "level = info\n",
             t.region, t.region, db, t.region, dir, t.region, t.hub);
    snprintf(path, sizeof(path), "%s/region.ini", dir);
    if (init_write_new(path, ini, 0640, why, sizeof(why)) < 0)
        goto fail_why;
    snprintf(path, sizeof(path), "%s/join.key", pki);
    unlink(path); /* now pki/node.key */
    printf("Joined as region %s. Made in %s:\n"
           "  pki/node.key, node.pem   this node's key and certificate\n"
           "  pki/ca.pem               the coalition CA\n"
           "  region.ini               its configuration\n"
           "Next:\n"
           "  sangamd --config %s/region.ini\n",
           t.region, dir, dir);
    rc = 0;
    goto done;

fail_err:
    snprintf(why, sizeof(why), "%s", err.msg);
fail_why:
    fprintf(stderr, "sangamd join: %s\n", why);
done:
    OPENSSL_cleanse(t.secret, sizeof(t.secret));
    free((char *)j.csr);
    free(j.cert_pem);
    free(j.ca_pem);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    sg_tls_ctx_free(tls);
    return rc;
}
