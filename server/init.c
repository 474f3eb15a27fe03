/*
 * init.c - `sangamd init`: a new hub's CA, certificate and configuration; see init.h.
 *
 * Everything is written under DIR: pki/ca.pem (0644), pki/ca.key (0600), pki/hub.pem,
 * pki/hub.key (0600), hub.ini (0640). Nothing existing is overwritten; each file appears whole
 * (ca.c writes through a temporary name), and hub.ini is written last, so a failed init leaves
 * no configuration that points at missing files.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"
#include "config.h"

static void init_usage(FILE *f)
{
    fprintf(f,
            "usage: sangamd init --dir DIR [--listen ADDR] [--public HOST:PORT] [--name NAMES]\n"
            "\n"
            "Sets up a new hub in DIR: the coalition's CA (EC P-256; its key stays in DIR/pki,\n"
            "mode 0600), the hub's certificate signed by it, and DIR/hub.ini. Then:\n"
            "  sangamd --config DIR/hub.ini                    start the hub\n"
            "  sangam --node DIR/hub.sock hub invite REGION    a token for a new region\n"
            "\n"
            "  --dir DIR           where to put the configuration, keys and database\n"
            "  --listen ADDR       where regions connect (default 0.0.0.0:7400)\n"
            "  --public HOST:PORT  the address invites tell new regions to dial (default: the\n"
            "                      listen address, unless it is 0.0.0.0)\n"
            "  --name NAMES        extra DNS names or IPs for the hub's certificate, comma-\n"
            "                      separated (it always has 'hub'; default localhost,127.0.0.1)\n"
            "  -h, --help          this text\n");
}

/* Creates DIR with MODE, and its missing parents (0755) as `mkdir -p` would: operators give
 * --dir /var/lib/sangam/hub on a machine where /var/lib/sangam does not exist yet. */
int init_mkdir(const char *dir, mode_t mode, char *why, size_t cap)
{
    struct stat st;
    char parent[PATH_MAX];
    if (mkdir(dir, mode) == 0 || (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    if (errno == ENOENT && snprintf(parent, sizeof(parent), "%s", dir) < (int)sizeof(parent)) {
        char *slash = strrchr(parent, '/');
        while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
            *slash = '\0';
            slash = strrchr(parent, '/');
        }
        if (slash && slash > parent) {
            *slash = '\0';
            if (init_mkdir(parent, 0755, why, cap) < 0)
                return -1;
            if (mkdir(dir, mode) == 0)
                return 0;
        }
    }
    snprintf(why, cap, "cannot create directory %s: %s", dir, strerror(errno));
    return -1;
}

int init_prepare(char *pki, size_t cap, const char *prog, const char *dir, const char *ini,
                 const char *key)
{
    char path[PATH_MAX + 64], why[PATH_MAX + 128];
    struct stat st;

    snprintf(pki, cap, "%s/pki", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, ini);
    if (stat(path, &st) == 0) {
        fprintf(stderr, "%s: %s exists: this directory already has a node\n", prog, path);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s", pki, key);
    if (stat(path, &st) == 0) {
        fprintf(stderr, "%s: %s exists: refusing to replace a key\n", prog, path);
        return 1;
    }
    if (init_mkdir(dir, 0750, why, sizeof(why)) < 0 ||
        init_mkdir(pki, 0700, why, sizeof(why)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return 1;
    }
    return 0;
}

int init_write_new(const char *path, const char *text, mode_t mode, char *why, size_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    size_t len = strlen(text), off = 0;
    if (fd < 0) {
        snprintf(why, cap, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int sg_init_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},    {"listen", required_argument, NULL, 'l'},
        {"public", required_argument, NULL, 'p'}, {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *dir = NULL, *listen = "0.0.0.0:7400", *public_addr = NULL,
               *names = "localhost,127.0.0.1";
    char pki[PATH_MAX], path[PATH_MAX + 32], names_all[512], host[256], why[PATH_MAX + 128];
    char ini[4096], pin[SG_CA_PIN_LEN + 1];
    sg_ca *ca = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    sg_err err = {0};
    int opt, port, rc = 1;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'p':
            public_addr = optarg;
            break;
        case 'n':
            names = optarg;
            break;
        case 'h':
            init_usage(stdout);
            return 0;
        default:
            init_usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || optind != argc) {
        init_usage(stderr);
        return 2;
    }
    if (sg_config_split_addr(listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "sangamd init: --listen %s: expected IP:PORT (e.g. 0.0.0.0:7400)\n",
                listen);
        return 2;
    }
    if (public_addr != NULL && sg_config_split_addr(public_addr, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "sangamd init: --public %s: expected HOST:PORT\n", public_addr);
        return 2;
    }
    /* The public host goes into the certificate too, so regions can dial it by name. */
    if (public_addr != NULL && strstr(names, host) == NULL)
        snprintf(names_all, sizeof(names_all), "%s%s%s", names, names[0] ? "," : "", host);
    else
        snprintf(names_all, sizeof(names_all), "%s", names);
    if (strlen(dir) > 80) {
        fprintf(stderr,
                "sangamd init: --dir %s: keep it under 80 characters (the API socket "
                "lives there and Unix socket paths are short)\n",
                dir);
        return 2;
    }
    if (init_prepare(pki, sizeof(pki), "sangamd init", dir, "hub.ini", "ca.key") != 0)
        return 1;

    if (sg_ca_create(&ca, "Sangam coalition CA", 3650, &err) < 0 || sg_key_new(&key, &err) < 0 ||
        sg_ca_issue(&cert, ca, key, SG_CERT_HUB, names_all, 825, &err) < 0)
        goto fail_err;
    snprintf(path, sizeof(path), "%s/ca.pem", pki);
    {
        char keypath[PATH_MAX + 32];
        snprintf(keypath, sizeof(keypath), "%s/ca.key", pki);
        if (sg_ca_save(ca, path, keypath, &err) < 0)
            goto fail_err;
    }
    snprintf(path, sizeof(path), "%s/hub.key", pki);
    if (sg_pem_write_key(path, key, &err) < 0)
        goto fail_err;
    snprintf(path, sizeof(path), "%s/hub.pem", pki);
    if (sg_pem_write_cert(path, cert, &err) < 0 || sg_cert_pin(pin, sg_ca_cert(ca), &err) < 0)
        goto fail_err;

    snprintf(ini, sizeof(ini),
             "; Sangam hub, made by sangamd init. Paths are relative to this file.\n"
             "[node]\n"
             "role = hub              ; this node aggregates the regions\n"
             "id = hub\n"
             "db = hub.db             ; the consolidated database (made on first start)\n"
             "[api]\n"
             "socket = hub.sock       ; local admin API: sangam --node %s/hub.sock ...\n"
             "[listen]\n"
             "address = %s ; where regions connect (mutual TLS 1.3)\n"
             "%s%s%s"
             "[tls]\n"
             "ca = pki/ca.pem         ; the coalition CA: every node trusts only it\n"
             "cert = pki/hub.pem      ; the hub's certificate (DNS:hub, %s)\n"
             "key = pki/hub.key\n"
             "ca_key = pki/ca.key     ; lets this hub enroll and renew regions; keep it here only\n"
             "cert_days = 90          ; validity of the region certificates it issues\n"
             "[replication]\n"
             "keepalive = 15s         ; a silent connection is dead after twice this\n"
             "[log]\n"
             "level = info            ; debug | info | warn | error\n",
             dir, listen, public_addr ? "public = " : "", public_addr ? public_addr : "",
             public_addr ? " ; the address invites give new regions\n" : "", names_all);
    snprintf(path, sizeof(path), "%s/hub.ini", dir);
    if (init_write_new(path, ini, 0640, why, sizeof(why)) < 0)
        goto fail_why;

    printf("Made a hub in %s:\n"
           "  %s/pki/ca.pem, ca.key   the coalition CA (pin sha256:%s)\n"
           "  %s/pki/hub.pem, hub.key the hub's certificate (DNS:hub, %s)\n"
           "  %s/hub.ini              its configuration\n"
           "Next:\n"
           "  sangamd --config %s/hub.ini\n"
           "  sangam --node %s/hub.sock hub invite REGION%s\n",
           dir, dir, pin, dir, names_all, dir, dir, dir,
           public_addr ? "" : "   (add --address HOST:PORT: no --public was given)");
    rc = 0;
    goto done;

fail_err:
    fprintf(stderr, "sangamd init: %s\n", err.msg);
    goto done;
fail_why:
    fprintf(stderr, "sangamd init: %s\n", why);
done:
    X509_free(cert);
    EVP_PKEY_free(key);
    sg_ca_free(ca);
    return rc;
}
