/*
 * test_tls.c - the TLS engine (server/tls.c): two engines handshake in memory by passing their
 * ciphertext to each other, whole or one byte at a time. Certificates come from
 * deploy/make-test-pki.sh run into a temporary directory, plus certificates made here with the
 * OpenSSL C API for what the script will not make (a foreign CA, expired and not-yet-valid
 * certificates, wrong extendedKeyUsage, odd subjectAltNames). Plain OpenSSL peers stand in for
 * clients and servers that break the policy (TLS 1.2 only, other ALPN).
 *
 * Enrollment: a join client (sg_tls_ctx_new_join) knows only the pin of the CA's public key and
 * must find that CA in the hub's chain; the tests give it hubs of the right CA, of a foreign CA,
 * a man in the middle holding the real CA certificate but not its key, and forged or unsuitable
 * pinned certificates. The hub's side is driven by plain OpenSSL clients offering each mix of
 * ALPN protocols, with and without certificates.
 *
 * HTTPS (sg_tls_ctx_new_https, the hub's API): plain OpenSSL clients stand in for browsers and
 * curl - TLS 1.2 and 1.3, ALPN h2+http/1.1, http/1.1, none, h2 alone - verifying the hub's
 * certificate against the CA as curl --cacert does, and counting certificate requests.
 *
 * The script is found through $SANGAM_SOURCE_DIR, else the source tree compiled in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "tls.h"

#ifndef SANGAM_SOURCE_DIR
#define SANGAM_SOURCE_DIR "."
#endif

static char dir[64]; /* the temporary PKI directory */

/* dir/name, in one of a few rotating buffers so several can be used in one call. */
static const char *path(const char *name)
{
    static char bufs[8][256];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (strstr(h_, n_) == NULL) {                                                              \
            print_error("expected \"%s\" in \"%s\"\n", n_, h_);                                    \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* -------------------------------------------------------------------------------------------
 * Certificates made with the C API
 */

static X509 *ca_cert, *foreign_ca_cert;
static EVP_PKEY *ca_key, *foreign_ca_key;

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
    char file[64];
    FILE *f;
    snprintf(file, sizeof(file), "%s.pem", name);
    f = fopen(path(file), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    snprintf(file, sizeof(file), "%s.key", name);
    f = fopen(path(file), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

/* Makes dir/name.pem and dir/name.key: an EC P-256 key and a certificate valid from nb_days to
 * na_days from now, signed by issuer (self-signed when NULL), with subjectAltName san and
 * extendedKeyUsage eku when not NULL. The certificate and key are returned when out-params are
 * given, else freed. */
static void make_cert(const char *name, const char *san, const char *eku, int is_ca, long nb_days,
                      long na_days, X509 *issuer, EVP_PKEY *issuer_key, X509 **out_x,
                      EVP_PKEY **out_k)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *subj;
    X509V3_CTX v3;
    BIGNUM *bn = BN_new();

    assert_non_null(k);
    assert_non_null(x);
    assert_non_null(bn);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY), 1);
    assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
    BN_free(bn);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb_days * 86400));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na_days * 86400));
    assert_int_equal(X509_set_pubkey(x, k), 1);
    subj = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_ASC, (const unsigned char *)"Sangam test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj), 1);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v3, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, &v3, NID_key_usage,
            is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (eku != NULL)
        add_ext(x, &v3, NID_ext_key_usage, eku);
    if (san != NULL)
        add_ext(x, &v3, NID_subject_alt_name, san);
    assert_true(X509_sign(x, issuer_key ? issuer_key : k, EVP_sha256()) > 0);
    write_pem(name, x, k);
    if (out_x != NULL)
        *out_x = x;
    else
        X509_free(x);
    if (out_k != NULL)
        *out_k = k;
    else
        EVP_PKEY_free(k);
}

static void load_ca(void)
{
    FILE *f = fopen(path("ca.pem"), "r");
    assert_non_null(f);
    ca_cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(path("ca.key"), "r");
    assert_non_null(f);
    ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(ca_cert);
    assert_non_null(ca_key);
}

/* Runs deploy/make-test-pki.sh with args; returns its exit status. */
static int run_script(const char *args)
{
    const char *src = getenv("SANGAM_SOURCE_DIR");
    char cmd[1024];
    int st;
    if (src == NULL || src[0] == '\0')
        src = SANGAM_SOURCE_DIR;
    snprintf(cmd, sizeof(cmd), "bash '%s/deploy/make-test-pki.sh' %s >/dev/null 2>&1", src, args);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int group_setup(void **state)
{
    char args[256];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sg_tls_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(args, sizeof(args), "'%s' hub bundelkhand mirzapur", dir);
    if (run_script(args) != 0) {
        fprintf(stderr, "deploy/make-test-pki.sh failed (set SANGAM_SOURCE_DIR?)\n");
        return -1;
    }
    snprintf(args, sizeof(args), "'%s' old --days -1", dir);
    if (run_script(args) != 0)
        return -1;
    load_ca();

    /* A foreign coalition: its CA, a hub and a region that look right but are not ours. */
    make_cert("foreign-ca", NULL, NULL, 1, -1, 3650, NULL, NULL, &foreign_ca_cert, &foreign_ca_key);
    make_cert("foreign-hub", "DNS:hub", "serverAuth", 0, -1, 30, foreign_ca_cert, foreign_ca_key,
              NULL, NULL);
    make_cert("foreign-region", "DNS:bundelkhand", "clientAuth", 0, -1, 30, foreign_ca_cert,
              foreign_ca_key, NULL, NULL);
    /* Ours, but out of their validity window. */
    make_cert("expired-region", "DNS:expired", "clientAuth", 0, -30, -1, ca_cert, ca_key, NULL,
              NULL);
    make_cert("future-region", "DNS:future", "clientAuth", 0, 1, 30, ca_cert, ca_key, NULL, NULL);
    make_cert("expired-hub", "DNS:hub", "serverAuth", 0, -30, -1, ca_cert, ca_key, NULL, NULL);
    make_cert("future-hub", "DNS:hub", "serverAuth", 0, 1, 30, ca_cert, ca_key, NULL, NULL);
    /* Ours and valid, but wrong for their use. */
    make_cert("noclient", "DNS:noclient", "serverAuth", 0, -1, 30, ca_cert, ca_key, NULL, NULL);
    make_cert("two-sans", "DNS:awadh,DNS:braj", "clientAuth", 0, -1, 30, ca_cert, ca_key, NULL,
              NULL);
    make_cert("hub-client", "DNS:hub", "clientAuth", 0, -1, 30, ca_cert, ca_key, NULL, NULL);
    make_cert("badname", "DNS:Bad_Name", "clientAuth", 0, -1, 30, ca_cert, ca_key, NULL, NULL);
    make_cert("nosan", NULL, "clientAuth", 0, -1, 30, ca_cert, ca_key, NULL, NULL);
    make_cert("not-hub", "DNS:other,IP:127.0.0.1", "serverAuth", 0, -1, 30, ca_cert, ca_key, NULL,
              NULL);
    /* A man in the middle: a hub certificate naming our CA as issuer, signed by another key. */
    make_cert("mitm-hub", "DNS:hub", "serverAuth", 0, -1, 30, ca_cert, foreign_ca_key, NULL, NULL);
    /* Our CA's certificate (same name, same public key) re-signed by a key that is not its own:
     * a trust anchor nobody can have made with the pinned key. */
    {
        X509 *x = X509_dup(ca_cert);
        FILE *f;
        assert_non_null(x);
        assert_true(X509_sign(x, foreign_ca_key, EVP_sha256()) > 0);
        f = fopen(path("forged-ca.pem"), "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_X509(f, x), 1);
        fclose(f);
        X509_free(x);
    }
    /* A certificate with CN=hub but no subjectAltName: the CN must not count. */
    {
        X509 *x = NULL;
        EVP_PKEY *k = NULL;
        make_cert("cn-hub-tmp", NULL, "serverAuth", 0, -1, 30, ca_cert, ca_key, &x, &k);
        X509_NAME *subj = X509_NAME_new();
        X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"hub", -1, -1,
                                   0);
        X509_set_subject_name(x, subj);
        X509_NAME_free(subj);
        X509_sign(x, ca_key, EVP_sha256());
        write_pem("cn-hub", x, k);
        X509_free(x);
        EVP_PKEY_free(k);
    }
    return 0;
}

static int group_teardown(void **state)
{
    DIR *d;
    struct dirent *de;
    (void)state;
    X509_free(ca_cert);
    X509_free(foreign_ca_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(foreign_ca_key);
    d = opendir(dir);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlink(path(de->d_name));
    closedir(d);
    return rmdir(dir);
}

/* -------------------------------------------------------------------------------------------
 * Endpoints: one of our engines, or a plain OpenSSL peer on memory BIOs.
 */

typedef struct ep {
    sg_tls *t;    /* our engine, or NULL */
    SSL *raw;     /* a plain OpenSSL peer, or NULL */
    BIO *rb, *wb; /* raw's memory BIOs (owned by raw) */
    int rc;       /* handshake: 0 in progress, 1 done, <0 failed */
    sg_err err;
} ep;

/* A context trusting dir/ca (a file name) and presenting dir/name.pem, or nothing. */
static sg_tls_ctx *ctx_with_ca(int is_server, const char *ca, const char *name)
{
    sg_tls_ctx *c = NULL;
    sg_err err = {0};
    char pem[64], key[64];
    int rc;
    if (name != NULL) {
        snprintf(pem, sizeof(pem), "%s.pem", name);
        snprintf(key, sizeof(key), "%s.key", name);
    }
    rc = sg_tls_ctx_new(&c, is_server, path(ca), name ? path(pem) : NULL, name ? path(key) : NULL,
                        &err);
    if (rc != 0)
        print_error("sg_tls_ctx_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return c;
}

static sg_tls_ctx *ctx_of(int is_server, const char *name)
{
    return ctx_with_ca(is_server, "ca.pem", name);
}

static void ep_ctx(ep *e, sg_tls_ctx *c)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(sg_tls_new(&e->t, c, &e->err), 0);
    sg_tls_ctx_free(c); /* the engine keeps its own reference */
}

static void ep_tls(ep *e, int is_server, const char *name)
{
    ep_ctx(e, ctx_of(is_server, name));
}

/* A hub trusting dir/ca (whose certificates it also sends in its chain) and presenting name. */
static void ep_hub(ep *e, const char *ca, const char *name)
{
    ep_ctx(e, ctx_with_ca(1, ca, name));
}

/* A client enrolling with the invite's pin. */
static void ep_join(ep *e, const char *pin)
{
    sg_tls_ctx *c = NULL;
    sg_err err = {0};
    int rc = sg_tls_ctx_new_join(&c, pin, &err);
    if (rc != 0)
        print_error("sg_tls_ctx_new_join: %s\n", err.msg);
    assert_int_equal(rc, 0);
    ep_ctx(e, c);
}

/* The pin of dir/file's first certificate: SHA-256 of its DER SubjectPublicKeyInfo in lowercase
 * hex, computed here and checked against sg_cert_pin(), whose format invites carry. */
static void pin_of(char out[SG_CA_PIN_LEN + 1], const char *file)
{
    FILE *f = fopen(path(file), "r");
    X509 *x;
    unsigned char *der = NULL, md[32];
    unsigned mdlen = 0;
    char theirs[SG_CA_PIN_LEN + 1];
    sg_err err = {0};
    int len;
    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    len = i2d_PUBKEY(X509_get0_pubkey(x), &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, 32);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    assert_int_equal(sg_cert_pin(theirs, x, &err), 0);
    assert_string_equal(out, theirs);
    OPENSSL_free(der);
    X509_free(x);
}

/* A plain OpenSSL peer. max_version 0 means any; alpn (wire format) may be NULL. */
static void ep_raw(ep *e, int is_server, int max_version, const char *name, const char *alpn,
                   size_t alpn_len)
{
    SSL_CTX *c = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    char pem[64], key[64];
    memset(e, 0, sizeof(*e));
    assert_non_null(c);
    if (max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(c, max_version), 1);
    if (name != NULL) {
        snprintf(pem, sizeof(pem), "%s.pem", name);
        snprintf(key, sizeof(key), "%s.key", name);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(c, path(pem)), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c, path(key), SSL_FILETYPE_PEM), 1);
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    if (alpn != NULL)
        assert_int_equal(SSL_CTX_set_alpn_protos(c, (const unsigned char *)alpn, alpn_len), 0);
    e->raw = SSL_new(c);
    SSL_CTX_free(c);
    assert_non_null(e->raw);
    e->rb = BIO_new(BIO_s_mem());
    e->wb = BIO_new(BIO_s_mem());
    SSL_set_bio(e->raw, e->rb, e->wb);
    if (is_server)
        SSL_set_accept_state(e->raw);
    else
        SSL_set_connect_state(e->raw);
}

static void ep_free(ep *e)
{
    sg_tls_free(e->t);
    SSL_free(e->raw);
    memset(e, 0, sizeof(*e));
}

static void ep_step(ep *e)
{
    int r;
    if (e->rc != 0)
        return;
    if (e->t != NULL) {
        e->rc = sg_tls_handshake(e->t, &e->err);
        return;
    }
    ERR_clear_error();
    r = SSL_do_handshake(e->raw);
    if (r == 1)
        e->rc = 1;
    else if (SSL_get_error(e->raw, r) != SSL_ERROR_WANT_READ) {
        e->rc = -1;
        ERR_error_string_n(ERR_get_error(), e->err.msg, sizeof(e->err.msg));
    }
    ERR_clear_error();
}

static size_t ep_take(ep *e, char **buf)
{
    size_t n = 0;
    if (e->t != NULL) {
        assert_int_equal(sg_tls_take(e->t, buf, &n), 0);
        assert_int_equal(sg_tls_pending(e->t), 0);
        return n;
    }
    n = BIO_ctrl_pending(e->wb);
    *buf = NULL;
    if (n > 0) {
        *buf = malloc(n);
        assert_non_null(*buf);
        assert_int_equal(BIO_read(e->wb, *buf, (int)n), (int)n);
    }
    return n;
}

static void ep_feed(ep *e, const char *p, size_t n)
{
    if (e->t != NULL)
        assert_int_equal(sg_tls_feed(e->t, p, n), 0);
    else
        assert_int_equal(BIO_write(e->rb, p, (int)n), (int)n);
}

/* Moves everything a has to send to b, chunk bytes at a time, advancing b's handshake after
 * each chunk. Returns the number of bytes moved. */
static size_t deliver(ep *a, ep *b, size_t chunk)
{
    char *buf;
    size_t n = ep_take(a, &buf);
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        ep_feed(b, buf + off, len);
        ep_step(b);
    }
    free(buf);
    return n;
}

/* Runs both handshakes until neither side has anything more to say. */
static void handshake(ep *c, ep *s, size_t chunk)
{
    for (int i = 0; i < 100; i++) {
        ep_step(c);
        ep_step(s);
        if (deliver(c, s, chunk) + deliver(s, c, chunk) == 0)
            return;
    }
    fail_msg("handshake did not settle");
}

/* Handshakes client name_c with server name_s and checks that both complete. */
static void connect_ok(ep *c, ep *s, const char *name_c, const char *name_s, size_t chunk)
{
    ep_tls(c, 0, name_c);
    ep_tls(s, 1, name_s);
    handshake(c, s, chunk);
    if (c->rc != 1 || s->rc != 1)
        print_error("client %d %s / server %d %s\n", c->rc, c->err.msg, s->rc, s->err.msg);
    assert_int_equal(c->rc, 1);
    assert_int_equal(s->rc, 1);
}

/* Reads everything e has decrypted into buf; returns the count. Fails on an error. */
static size_t recv_all(ep *e, char *buf, size_t cap)
{
    size_t total = 0, n;
    sg_err err = {0};
    do {
        int rc =
            sg_tls_read(e->t, buf + total, cap - total < 16384 ? cap - total : 16384, &n, &err);
        if (rc != 0)
            print_error("sg_tls_read: %s\n", err.msg);
        assert_int_equal(rc, 0);
        total += n;
    } while (n > 0 && total < cap);
    return total;
}

/* Sends len bytes from a to b (delivered chunk bytes at a time) and checks they arrive intact. */
static void exchange(ep *a, ep *b, const char *data, size_t len, size_t chunk)
{
    char *got = malloc(len + 1);
    sg_err err = {0};
    assert_non_null(got);
    assert_int_equal(sg_tls_write(a->t, data, len, &err), 0);
    deliver(a, b, chunk);
    assert_int_equal(recv_all(b, got, len + 1), len);
    assert_memory_equal(got, data, len);
    free(got);
}

/* Reads from e expecting an error; returns its code and leaves its message in err. */
static int read_error(ep *e, sg_err *err)
{
    char buf[256];
    size_t n;
    int rc;
    sg_err_clear(err);
    do
        rc = sg_tls_read(e->t, buf, sizeof(buf), &n, err);
    while (rc == 0 && n > 0);
    return rc;
}

/* Expects the server to refuse the client with code and a message containing want. */
static void expect_server_refuses(const char *client, int code, const char *want)
{
    ep c, s;
    sg_err err;
    ep_tls(&c, 0, client);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, code);
    assert_contains(s.err.msg, want);
    /* The client finished first (TLS 1.3) and reads the server's alert. */
    assert_int_equal(c.rc, 1);
    assert_int_equal(read_error(&c, &err), SG_EAUTH);
    print_message("client: %s\n", err.msg);
    ep_free(&c);
    ep_free(&s);
}

/* Expects the client to refuse the server with code and a message containing want. */
static void expect_client_refuses(const char *server, int code, const char *want)
{
    ep c, s;
    ep_tls(&c, 0, "bundelkhand");
    ep_tls(&s, 1, server);
    handshake(&c, &s, SIZE_MAX);
    print_message("client: %s\n", c.err.msg);
    assert_int_equal(c.rc, code);
    assert_contains(c.err.msg, want);
    assert_true(s.rc < 0); /* and the server saw the client's alert */
    print_message("server: %s\n", s.err.msg);
    ep_free(&c);
    ep_free(&s);
}

/* -------------------------------------------------------------------------------------------
 * Tests
 */

static void test_handshake_and_data(void **state)
{
    ep c, s;
    char region[64];
    sg_err err = {0};
    (void)state;
    connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
    assert_string_equal(sg_tls_alpn(c.t), "sangam/1");
    assert_string_equal(sg_tls_alpn(s.t), "sangam/1");
    assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), 0);
    assert_string_equal(region, "bundelkhand");
    assert_contains(sg_tls_peer_subject(s.t), "CN=bundelkhand");
    assert_contains(sg_tls_peer_subject(c.t), "CN=hub");
    assert_true(sg_tls_peer_not_after(s.t) > (int64_t)time(NULL));
    assert_true(sg_tls_peer_not_after(c.t) > (int64_t)time(NULL));
    /* The client side has no peer region. */
    assert_int_equal(sg_tls_peer_region(c.t, region, sizeof(region), &err), SG_EINVAL);
    /* Handshake again: done is done. */
    assert_int_equal(sg_tls_handshake(c.t, &err), 1);
    exchange(&c, &s, "hello hub", 9, SIZE_MAX);
    exchange(&s, &c, "hello bundelkhand", 17, SIZE_MAX);
    exchange(&c, &s, "again", 5, SIZE_MAX);
    ep_free(&c);
    ep_free(&s);
}

static void test_byte_at_a_time(void **state)
{
    ep c, s;
    char region[64];
    sg_err err = {0};
    (void)state;
    connect_ok(&c, &s, "mirzapur", "hub", 1);
    assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), 0);
    assert_string_equal(region, "mirzapur");
    exchange(&c, &s, "one byte at a time", 18, 1);
    exchange(&s, &c, "and back", 8, 1);
    ep_free(&c);
    ep_free(&s);
}

/* Application data sent in the same flight as the client's Finished is not lost. */
static void test_data_with_last_flight(void **state)
{
    ep c, s;
    sg_err err = {0};
    char buf[64];
    (void)state;
    ep_tls(&c, 0, "bundelkhand");
    ep_tls(&s, 1, "hub");
    ep_step(&c);
    deliver(&c, &s, SIZE_MAX); /* ClientHello; the server answers */
    deliver(&s, &c, SIZE_MAX); /* the client completes */
    assert_int_equal(c.rc, 1);
    assert_int_equal(sg_tls_write(c.t, "early", 5, &err), 0);
    deliver(&c, &s, SIZE_MAX); /* Finished and data in one buffer */
    assert_int_equal(s.rc, 1);
    assert_int_equal(recv_all(&s, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "early", 5);
    ep_free(&c);
    ep_free(&s);
}

static void test_large_write(void **state)
{
    ep c, s;
    size_t len = 1u << 20;
    char *data = malloc(len);
    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 2654435761u >> 13);
    connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
    exchange(&c, &s, data, len, SIZE_MAX);
    exchange(&s, &c, data, len, 4096);
    ep_free(&c);
    ep_free(&s);
    free(data);
}

/* A TLS 1.3 KeyUpdate from the peer is honoured (OpenSSL 3.0 sends the answering KeyUpdate
 * with this side's next write, not from the read). */
static void test_key_update(void **state)
{
    ep c, s;
    char buf[64];
    sg_err err = {0};
    (void)state;
    ep_raw(&c, 0, 0, "bundelkhand", "\x08sangam/1", 9);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    assert_int_equal(c.rc, 1);
    assert_int_equal(s.rc, 1);
    assert_int_equal(SSL_write(c.raw, "before", 6), 6);
    assert_int_equal(SSL_key_update(c.raw, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(c.raw, "after", 5), 5);
    deliver(&c, &s, SIZE_MAX);
    assert_int_equal(sg_tls_pending(s.t), 0);
    assert_int_equal(recv_all(&s, buf, sizeof(buf)), 11);
    assert_memory_equal(buf, "beforeafter", 11);
    assert_int_equal(sg_tls_write(s.t, "reply", 5, &err), 0);
    deliver(&s, &c, SIZE_MAX);
    assert_int_equal(SSL_read(c.raw, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "reply", 5);
    ep_free(&c);
    ep_free(&s);
}

/* A corrupted record fails the read, and the read leaves an alert to send: the reason callers
 * drain after reads too. */
static void test_corrupt_record(void **state)
{
    ep c, s;
    sg_err err = {0};
    char buf[64], *wire;
    size_t n, len;
    (void)state;
    connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
    assert_int_equal(sg_tls_write(c.t, "payload", 7, &err), 0);
    len = ep_take(&c, &wire);
    wire[len - 1] ^= 1;
    ep_feed(&s, wire, len);
    free(wire);
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), SG_ETLS);
    print_message("server: %s\n", err.msg);
    assert_true(sg_tls_pending(s.t) > 0);
    deliver(&s, &c, SIZE_MAX);
    assert_int_equal(read_error(&c, &err), SG_ETLS);
    print_message("client: %s\n", err.msg);
    assert_contains(err.msg, "bad record mac");
    ep_free(&c);
    ep_free(&s);
}

static void test_client_from_foreign_ca(void **state)
{
    ep c, s;
    sg_err err;
    (void)state;
    ep_tls(&c, 0, "foreign-region");
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_EAUTH);
    assert_contains(s.err.msg, "peer certificate: unable to get local issuer certificate (not "
                               "signed by the coalition CA?)");
    /* TLS 1.3: the client finished first and learns of the refusal on its next read. */
    assert_int_equal(c.rc, 1);
    assert_int_equal(read_error(&c, &err), SG_EAUTH);
    print_message("client: %s\n", err.msg);
    assert_contains(err.msg, "unknown CA");
    /* A failed engine keeps its error. */
    assert_int_equal(sg_tls_handshake(s.t, &err), SG_EAUTH);
    assert_contains(err.msg, "coalition CA");
    assert_int_equal(read_error(&c, &err), SG_EAUTH);
    assert_int_equal(sg_tls_write(c.t, "x", 1, &err), SG_EAUTH);
    ep_free(&c);
    ep_free(&s);
}

static void test_server_from_foreign_ca(void **state)
{
    (void)state;
    expect_client_refuses("foreign-hub", SG_EAUTH,
                          "peer certificate: unable to get local issuer certificate");
}

static void test_no_client_cert(void **state)
{
    ep c, s;
    sg_err err;
    (void)state;
    ep_tls(&c, 0, NULL);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_EAUTH);
    assert_contains(s.err.msg, "peer did not present a certificate");
    assert_int_equal(c.rc, 1);
    assert_int_equal(read_error(&c, &err), SG_EAUTH);
    print_message("client: %s\n", err.msg);
    assert_contains(err.msg, "requires a certificate");
    ep_free(&c);
    ep_free(&s);
}

static void test_server_without_hub_name(void **state)
{
    (void)state;
    /* A region's certificate used by a server: wrong purpose, caught first. */
    expect_client_refuses("bundelkhand", SG_EAUTH, "serverAuth");
    /* A server certificate of our CA, but for another name. */
    expect_client_refuses("not-hub", SG_EAUTH, "peer certificate has no DNS name 'hub'");
    /* CN=hub without a subjectAltName does not count. */
    expect_client_refuses("cn-hub", SG_EAUTH, "peer certificate has no DNS name 'hub'");
}

static void test_client_wrong_purpose(void **state)
{
    (void)state;
    expect_server_refuses("noclient", SG_EAUTH,
                          "unsuitable certificate purpose (a region's certificate needs "
                          "extendedKeyUsage clientAuth)");
    expect_server_refuses("hub", SG_EAUTH, "clientAuth");
}

static void test_expired_and_future(void **state)
{
    (void)state;
    expect_server_refuses("expired-region", SG_EAUTH, "certificate has expired (not after ");
    expect_server_refuses("old", SG_EAUTH, "certificate has expired"); /* the script's --days -1 */
    expect_server_refuses("future-region", SG_EAUTH, "certificate is not yet valid (not before ");
    expect_client_refuses("expired-hub", SG_EAUTH, "certificate has expired");
    expect_client_refuses("future-hub", SG_EAUTH, "certificate is not yet valid");
}

static void test_tls12_client_refused(void **state)
{
    ep c, s;
    (void)state;
    ep_raw(&c, 0, TLS1_2_VERSION, "bundelkhand", "\x08sangam/1", 9);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_string_equal(s.err.msg, "peer offered TLS 1.2; this side speaks TLS 1.3 only");
    assert_int_equal(c.rc, -1);
    print_message("plain client: %s\n", c.err.msg);
    ep_free(&c);
    ep_free(&s);
}

static void test_tls12_server_refused(void **state)
{
    ep c, s;
    (void)state;
    ep_tls(&c, 0, "bundelkhand");
    ep_raw(&s, 1, TLS1_2_VERSION, "hub", NULL, 0);
    handshake(&c, &s, SIZE_MAX);
    print_message("client: %s\n", c.err.msg);
    assert_int_equal(c.rc, SG_ETLS);
    assert_contains(c.err.msg, "TLS 1.3 only");
    assert_int_equal(s.rc, -1);
    ep_free(&c);
    ep_free(&s);
}

static void test_alpn_mismatch(void **state)
{
    ep c, s;
    sg_err err;
    (void)state;
    /* A client offering another protocol. */
    ep_raw(&c, 0, 0, "bundelkhand", "\x08http/1.1", 9);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_contains(s.err.msg, "no common ALPN protocol (expected sangam/1, the peer offered "
                               "'http/1.1')");
    assert_int_equal(c.rc, -1);
    print_message("plain client: %s\n", c.err.msg);
    assert_contains(c.err.msg, "no application protocol");
    ep_free(&c);
    ep_free(&s);

    /* A client offering none. */
    ep_raw(&c, 0, 0, "bundelkhand", NULL, 0);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_contains(s.err.msg, "offered no ALPN protocol (expected sangam/1)");
    ep_free(&c);
    ep_free(&s);

    /* A server that ignores ALPN: our client refuses after the handshake. */
    ep_tls(&c, 0, "bundelkhand");
    ep_raw(&s, 1, 0, "hub", NULL, 0);
    handshake(&c, &s, SIZE_MAX);
    print_message("client: %s\n", c.err.msg);
    assert_int_equal(c.rc, SG_ETLS);
    assert_contains(c.err.msg, "no common ALPN protocol (expected sangam/1");
    assert_int_equal(read_error(&c, &err), SG_ETLS);
    ep_free(&c);
    ep_free(&s);
}

static void test_truncation(void **state)
{
    ep c, s;
    sg_err err = {0};
    char buf[64];
    size_t n;
    (void)state;
    connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
    assert_int_equal(sg_tls_write(c.t, "partial", 7, &err), 0);
    deliver(&c, &s, SIZE_MAX);
    sg_tls_feed_eof(s.t);
    assert_int_equal(sg_tls_feed(s.t, "x", 1), SG_EINVAL); /* nothing after the end */
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "partial", 7);
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), SG_ETLS);
    print_message("server: %s\n", err.msg);
    assert_string_equal(err.msg, "connection cut without close_notify");
    assert_int_equal(n, 0);
    ep_free(&c);
    ep_free(&s);

    /* The stream ends during the handshake. */
    ep_tls(&c, 0, "bundelkhand");
    ep_tls(&s, 1, "hub");
    ep_step(&c);
    deliver(&c, &s, SIZE_MAX);
    sg_tls_feed_eof(c.t);
    assert_int_equal(sg_tls_handshake(c.t, &err), SG_ETLS);
    print_message("client: %s\n", err.msg);
    assert_contains(err.msg, "connection ended during the TLS handshake");
    ep_free(&c);
    ep_free(&s);
}

static void test_clean_close(void **state)
{
    ep c, s;
    sg_err err = {0};
    char buf[64];
    size_t n;
    (void)state;
    connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
    assert_int_equal(sg_tls_write(c.t, "bye", 3, &err), 0);
    assert_int_equal(sg_tls_shutdown(c.t), 0);
    assert_int_equal(sg_tls_shutdown(c.t), 0); /* twice is harmless */
    assert_int_equal(sg_tls_write(c.t, "more", 4, &err), SG_ECLOSED);
    deliver(&c, &s, SIZE_MAX);
    sg_tls_feed_eof(s.t); /* close_notify, then the TCP end: clean, not truncated */
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), SG_ECLOSED);
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), SG_ECLOSED);
    /* Half-close: the server may still answer, then closes too. */
    assert_int_equal(sg_tls_write(s.t, "last words", 10, &err), 0);
    assert_int_equal(sg_tls_shutdown(s.t), 0);
    deliver(&s, &c, SIZE_MAX);
    assert_int_equal(sg_tls_read(c.t, buf, sizeof(buf), &n, &err), 0);
    assert_int_equal(n, 10);
    assert_int_equal(sg_tls_read(c.t, buf, sizeof(buf), &n, &err), SG_ECLOSED);
    ep_free(&c);
    ep_free(&s);
}

static void test_peer_region_refused(void **state)
{
    static const struct {
        const char *cert, *want;
    } cases[] = {
        {"two-sans", "has 2 DNS subjectAltNames"},
        {"hub-client", "names 'hub'"},
        {"badname", "DNS name 'Bad_Name' is not a region id"},
        {"nosan", "no subjectAltName"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ep c, s;
        char region[64];
        sg_err err = {0};
        connect_ok(&c, &s, cases[i].cert, "hub", SIZE_MAX);
        assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), SG_EAUTH);
        print_message("%s: %s\n", cases[i].cert, err.msg);
        assert_contains(err.msg, cases[i].want);
        assert_string_equal(region, "");
        ep_free(&c);
        ep_free(&s);
    }
}

static void test_not_tls(void **state)
{
    ep s;
    sg_err err = {0};
    char buf[16];
    size_t n;
    static const char http[] = "GET / HTTP/1.1\r\nHost: hub\r\n\r\n";
    static const unsigned char junk[] = {0x16, 0x03, 0x01, 0x00, 0x05,
                                         0xde, 0xad, 0xbe, 0xef, 0x00};
    (void)state;
    ep_tls(&s, 1, "hub");
    assert_int_equal(sg_tls_read(s.t, buf, sizeof(buf), &n, &err), SG_EINVAL);
    assert_int_equal(sg_tls_write(s.t, "x", 1, &err), SG_EINVAL);
    assert_int_equal(sg_tls_shutdown(s.t), 0); /* nothing to close yet */
    assert_int_equal(sg_tls_pending(s.t), 0);
    ep_feed(&s, http, sizeof(http) - 1);
    ep_step(&s);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_contains(s.err.msg, "plain HTTP");
    ep_free(&s);

    ep_tls(&s, 1, "hub");
    ep_feed(&s, (const char *)junk, sizeof(junk));
    ep_step(&s);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    ep_free(&s);
}

static void test_ctx_errors(void **state)
{
    sg_tls_ctx *c = (sg_tls_ctx *)&c; /* must be set to NULL on failure */
    sg_err err = {0};
    char want[512];
    FILE *f;
    (void)state;

    assert_int_equal(
        sg_tls_ctx_new(&c, 1, path("ca.pem"), path("hub.pem"), path("bundelkhand.key"), &err),
        SG_ECONFIG);
    assert_null(c);
    snprintf(want, sizeof(want), "[tls] key %s does not match certificate %s",
             path("bundelkhand.key"), path("hub.pem"));
    print_message("%s\n", err.msg);
    assert_string_equal(err.msg, want);

    assert_int_equal(
        sg_tls_ctx_new(&c, 1, path("nope.pem"), path("hub.pem"), path("hub.key"), &err),
        SG_ECONFIG);
    print_message("%s\n", err.msg);
    snprintf(want, sizeof(want), "[tls] CA file %s: cannot read: No such file or directory",
             path("nope.pem"));
    assert_string_equal(err.msg, want);

    assert_int_equal(sg_tls_ctx_new(&c, 0, path("ca.pem"), path("nope.pem"), path("hub.key"), &err),
                     SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, path("nope.pem"));

    assert_int_equal(sg_tls_ctx_new(&c, 0, path("ca.pem"), path("hub.pem"), path("nope.key"), &err),
                     SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, path("nope.key"));

    /* Files that exist but hold the wrong thing. */
    f = fopen(path("junk.pem"), "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    assert_int_equal(
        sg_tls_ctx_new(&c, 1, path("junk.pem"), path("hub.pem"), path("hub.key"), &err),
        SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, path("junk.pem"));
    assert_int_equal(sg_tls_ctx_new(&c, 1, path("ca.pem"), path("junk.pem"), path("hub.key"), &err),
                     SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, "certificate");
    assert_contains(err.msg, path("junk.pem"));
    assert_int_equal(sg_tls_ctx_new(&c, 1, path("ca.pem"), path("hub.pem"), path("hub.pem"), &err),
                     SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, "not an unencrypted PEM private key");

    /* An encrypted key is refused, not prompted for. */
    {
        EVP_PKEY *k = NULL;
        FILE *kf = fopen(path("hub.key"), "r");
        assert_non_null(kf);
        k = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
        fclose(kf);
        assert_non_null(k);
        kf = fopen(path("enc.key"), "w");
        assert_non_null(kf);
        assert_int_equal(PEM_write_PrivateKey(kf, k, EVP_aes_128_cbc(),
                                              (const unsigned char *)"secret", 6, NULL, NULL),
                         1);
        fclose(kf);
        EVP_PKEY_free(k);
        assert_int_equal(
            sg_tls_ctx_new(&c, 1, path("ca.pem"), path("hub.pem"), path("enc.key"), &err),
            SG_ECONFIG);
        print_message("%s\n", err.msg);
        assert_contains(err.msg, path("enc.key"));
    }

    /* Missing halves. */
    assert_int_equal(sg_tls_ctx_new(&c, 1, path("ca.pem"), NULL, NULL, &err), SG_EINVAL);
    assert_int_equal(sg_tls_ctx_new(&c, 0, path("ca.pem"), path("hub.pem"), NULL, &err),
                     SG_ECONFIG);
    assert_int_equal(sg_tls_ctx_new(&c, 0, NULL, NULL, NULL, &err), SG_ECONFIG);
    assert_null(c);

    /* NULL-safe destructors. */
    sg_tls_ctx_free(NULL);
    sg_tls_free(NULL);
}

/* The script: idempotent, reuses its CA for a later region, refuses bad names. */
static void test_make_test_pki(void **state)
{
    char args[256];
    struct stat st;
    X509 *before = X509_dup(ca_cert);
    FILE *f;
    X509 *after;
    ep c, s;
    (void)state;

    snprintf(args, sizeof(args), "'%s' hub bundelkhand", dir);
    assert_int_equal(run_script(args), 0);
    snprintf(args, sizeof(args), "'%s' awadh", dir);
    assert_int_equal(run_script(args), 0);
    f = fopen(path("ca.pem"), "r");
    assert_non_null(f);
    after = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(after);
    assert_int_equal(X509_cmp(before, after), 0);
    X509_free(before);
    X509_free(after);
    assert_int_equal(stat(path("awadh.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path("ca.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The later region connects to the earlier hub. */
    connect_ok(&c, &s, "awadh", "hub", SIZE_MAX);
    ep_free(&c);
    ep_free(&s);

    snprintf(args, sizeof(args), "'%s' Bad_Name", dir);
    assert_int_not_equal(run_script(args), 0);
    snprintf(args, sizeof(args), "'%s' -x", dir);
    assert_int_not_equal(run_script(args), 0);
    snprintf(args, sizeof(args), "'%s' x --days 0", dir);
    assert_int_not_equal(run_script(args), 0);
    assert_int_not_equal(access(path("x.pem"), F_OK), 0);
    assert_int_equal(run_script("--help"), 0);
}

/* Expects a join client with pin to refuse hub (trusting and sending ca) with SG_EAUTH and a
 * message containing want, having learnt nothing it could save. */
static void expect_join_refuses(const char *pin, const char *ca, const char *hub, const char *want)
{
    ep c, s;
    sg_err err = {0};
    char *pem = (char *)&pem;
    ep_join(&c, pin);
    ep_hub(&s, ca, hub);
    handshake(&c, &s, SIZE_MAX);
    print_message("join client vs %s: %s\n", hub, c.err.msg);
    assert_int_equal(c.rc, SG_EAUTH);
    assert_contains(c.err.msg, want);
    assert_true(s.rc < 0); /* the hub heard the refusal */
    print_message("hub: %s\n", s.err.msg);
    assert_int_equal(sg_tls_is_join(c.t), 0);
    assert_int_equal(sg_tls_pinned_ca_pem(c.t, &pem, &err), SG_EINVAL);
    assert_null(pem);
    ep_free(&c);
    ep_free(&s);
}

/* A join client and our hub, whole and one byte at a time: both sides know it is an enrollment,
 * the hub has no region for it, the joiner gets the CA it pinned, and data flows. */
static void test_join_handshake(void **state)
{
    char pin[SG_CA_PIN_LEN + 1], region[64];
    size_t chunks[] = {SIZE_MAX, 1};
    sg_err err = {0};
    (void)state;
    pin_of(pin, "ca.pem");
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        ep c, s;
        char *pem = NULL;
        BIO *b;
        X509 *got;

        ep_join(&c, pin);
        ep_tls(&s, 1, "hub");
        assert_int_equal(sg_tls_is_join(c.t), 0); /* not before the handshake */
        assert_int_equal(sg_tls_pinned_ca_pem(c.t, &pem, &err), SG_EINVAL);
        handshake(&c, &s, chunks[i]);
        if (c.rc != 1 || s.rc != 1)
            print_error("client %d %s / server %d %s\n", c.rc, c.err.msg, s.rc, s.err.msg);
        assert_int_equal(c.rc, 1);
        assert_int_equal(s.rc, 1);
        assert_int_equal(sg_tls_is_join(c.t), 1);
        assert_int_equal(sg_tls_is_join(s.t), 1);
        assert_string_equal(sg_tls_alpn(c.t), "sangam-join/1");
        assert_string_equal(sg_tls_alpn(s.t), "sangam-join/1");

        /* The hub: no certificate, so no region, subject or expiry. */
        snprintf(region, sizeof(region), "unchanged");
        assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), SG_EAUTH);
        assert_string_equal(err.msg, "enrollment connection: no certificate");
        assert_string_equal(region, "");
        assert_string_equal(sg_tls_peer_subject(s.t), "");
        assert_int_equal(sg_tls_peer_not_after(s.t), -1);
        assert_int_equal(sg_tls_pinned_ca_pem(s.t, &pem, &err), SG_EINVAL);
        assert_null(pem);

        /* The joiner: the hub it verified, and the CA it verified it with. */
        assert_contains(sg_tls_peer_subject(c.t), "CN=hub");
        assert_true(sg_tls_peer_not_after(c.t) > (int64_t)time(NULL));
        assert_int_equal(sg_tls_peer_region(c.t, region, sizeof(region), &err), SG_EINVAL);
        assert_int_equal(sg_tls_pinned_ca_pem(c.t, &pem, &err), 0);
        assert_non_null(pem);
        assert_contains(pem, "-----BEGIN CERTIFICATE-----");
        b = BIO_new_mem_buf(pem, -1);
        assert_non_null(b);
        got = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
        assert_non_null(got);
        assert_int_equal(X509_cmp(got, ca_cert), 0);
        X509_free(got);
        free(pem);

        exchange(&c, &s, "enroll me", 9, chunks[i]);
        exchange(&s, &c, "welcome", 7, chunks[i]);
        ep_free(&c);
        ep_free(&s);
    }

    /* An ordinary region connection is no enrollment and pinned nothing. */
    {
        ep c, s;
        char *pem = NULL;
        connect_ok(&c, &s, "bundelkhand", "hub", SIZE_MAX);
        assert_int_equal(sg_tls_is_join(c.t), 0);
        assert_int_equal(sg_tls_is_join(s.t), 0);
        assert_int_equal(sg_tls_pinned_ca_pem(c.t, &pem, &err), SG_EINVAL);
        assert_null(pem);
        ep_free(&c);
        ep_free(&s);
    }
}

static void test_join_wrong_pin(void **state)
{
    char real[SG_CA_PIN_LEN + 1], foreign[SG_CA_PIN_LEN + 1], want[256];
    char other[SG_CA_PIN_LEN + 1];
    (void)state;
    pin_of(real, "ca.pem");
    pin_of(foreign, "foreign-ca.pem");

    /* Our hub, an invite naming another CA. */
    memcpy(other, real, sizeof(other));
    other[0] = other[0] == '0' ? '1' : '0';
    expect_join_refuses(other, "ca.pem", "hub", "the hub's CA does not match the invite's pin");
    snprintf(want, sizeof(want),
             "the invite pins %s, the hub's chain carries certificates with "
             "pins %s",
             other, real);
    expect_join_refuses(other, "ca.pem", "hub", want);

    /* A hub of a foreign coalition, its CA in its chain, and the invite of ours. */
    snprintf(want, sizeof(want),
             "the invite pins %s, the hub's chain carries certificates with "
             "pins %s",
             real, foreign);
    expect_join_refuses(real, "foreign-ca.pem", "foreign-hub", want);
    /* The foreign hub is fine for an invite of its own coalition: the pin is what decides. */
    {
        ep c, s;
        ep_join(&c, foreign);
        ep_hub(&s, "foreign-ca.pem", "foreign-hub");
        handshake(&c, &s, SIZE_MAX);
        assert_int_equal(c.rc, 1);
        assert_int_equal(s.rc, 1);
        ep_free(&c);
        ep_free(&s);
    }

    /* A server that sends no CA certificate at all (plain OpenSSL: a chain of its leaf alone). */
    {
        ep c, s;
        ep_join(&c, real);
        ep_raw(&s, 1, 0, "hub", NULL, 0);
        handshake(&c, &s, SIZE_MAX);
        print_message("join client: %s\n", c.err.msg);
        assert_int_equal(c.rc, SG_EAUTH);
        assert_contains(c.err.msg, "the hub's chain carries no CA certificate");
        assert_int_equal(s.rc, -1);
        ep_free(&c);
        ep_free(&s);
    }
}

/* A man in the middle holds our CA's certificate, which is public, but not its key. */
static void test_join_mitm(void **state)
{
    char real[SG_CA_PIN_LEN + 1];
    (void)state;
    pin_of(real, "ca.pem");
    /* Its own leaf, claiming our CA as issuer: the signature gives it away. */
    expect_join_refuses(real, "ca.pem", "mitm-hub",
                        "peer certificate: certificate signature failure (not signed by the CA "
                        "the invite pins: a man in the middle?)");
    /* Our CA's certificate re-signed by another key, sent as the pinned CA: the pin matches, the
     * certificate was not made with the pinned key. */
    expect_join_refuses(real, "forged-ca.pem", "foreign-hub",
                        "is not self-signed by that key (forged?)");
    /* A certificate with the pinned key that is no CA. */
    {
        char leaf[SG_CA_PIN_LEN + 1];
        pin_of(leaf, "bundelkhand.pem");
        expect_join_refuses(leaf, "bundelkhand.pem", "hub", "is not a CA certificate");
    }
}

/* With the pinned CA as trust anchor, the hub's certificate gets a region's checks. */
static void test_join_hub_checks(void **state)
{
    char real[SG_CA_PIN_LEN + 1];
    (void)state;
    pin_of(real, "ca.pem");
    expect_join_refuses(real, "ca.pem", "not-hub", "peer certificate has no DNS name 'hub'");
    expect_join_refuses(real, "ca.pem", "cn-hub", "peer certificate has no DNS name 'hub'");
    expect_join_refuses(real, "ca.pem", "bundelkhand", "needs extendedKeyUsage serverAuth");
    expect_join_refuses(real, "ca.pem", "expired-hub", "certificate has expired (not after ");
    expect_join_refuses(real, "ca.pem", "future-hub", "certificate is not yet valid");
}

static void test_join_bad_pin(void **state)
{
    static const struct {
        const char *pin, *want;
    } cases[] = {
        {NULL, "invite pin: missing"},
        {"", "invite pin: missing"},
        {"abc", "invite pin 'abc': 3 characters, expected 64 lowercase hex"},
        /* 65 characters */
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
         "65 characters, expected 64"},
        /* kubeadm's form: the caller strips "sha256:" */
        {"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "71 characters"},
        {"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
         "character 11 is not lowercase hex"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
         "character 64 is not lowercase hex"},
        {"0123456789abcdef0123456789abcdef 123456789abcdef0123456789abcdef",
         "character 33 is not lowercase hex"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sg_tls_ctx *c = (sg_tls_ctx *)&c; /* must be set to NULL */
        sg_err err = {0};
        assert_int_equal(sg_tls_ctx_new_join(&c, cases[i].pin, &err), SG_EINVAL);
        print_message("%s\n", err.msg);
        assert_null(c);
        assert_contains(err.msg, cases[i].want);
    }
}

/* The hub decides per connection from the ALPN protocols offered: sangam/1 means a region,
 * which needs a certificate, even when sangam-join/1 is offered too. */
static void test_join_hub_alpn(void **state)
{
    static const char both[] = "\x08sangam/1\x0dsangam-join/1";
    static const char both_join_first[] = "\x0dsangam-join/1\x08sangam/1";
    static const char join[] = "\x0dsangam-join/1";
    static const char region_only[] = "\x08sangam/1";
    const char *lists[] = {both, both_join_first};
    sg_err err = {0};
    char region[64];
    (void)state;

    /* Both offered, with a certificate: a region, and it sees our CA in the hub's chain. */
    for (size_t i = 0; i < 2; i++) {
        ep c, s;
        STACK_OF(X509) * chain;
        int has_ca = 0;
        ep_raw(&c, 0, 0, "bundelkhand", lists[i], strlen(lists[i]));
        ep_tls(&s, 1, "hub");
        handshake(&c, &s, SIZE_MAX);
        assert_int_equal(c.rc, 1);
        assert_int_equal(s.rc, 1);
        assert_string_equal(sg_tls_alpn(s.t), "sangam/1");
        assert_int_equal(sg_tls_is_join(s.t), 0);
        assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), 0);
        assert_string_equal(region, "bundelkhand");
        chain = SSL_get_peer_cert_chain(c.raw);
        for (int j = 0; j < sk_X509_num(chain); j++)
            has_ca |= X509_cmp(sk_X509_value(chain, j), ca_cert) == 0;
        assert_true(has_ca);
        ep_free(&c);
        ep_free(&s);
    }

    /* Both offered, or sangam/1 alone, without a certificate: refused as before. */
    {
        const char *nocert[] = {both, both_join_first, region_only};
        for (size_t i = 0; i < 3; i++) {
            ep c, s;
            ep_raw(&c, 0, 0, NULL, nocert[i], strlen(nocert[i]));
            ep_tls(&s, 1, "hub");
            handshake(&c, &s, SIZE_MAX);
            print_message("hub: %s\n", s.err.msg);
            assert_int_equal(s.rc, SG_EAUTH);
            assert_string_equal(s.err.msg, "peer did not present a certificate");
            ep_free(&c);
            ep_free(&s);
        }
    }

    /* sangam-join/1 alone: an enrollment, no certificate asked for, none recorded even from a
     * client that had one to give. */
    {
        const char *who[] = {NULL, "bundelkhand"};
        for (size_t i = 0; i < 2; i++) {
            ep c, s;
            ep_raw(&c, 0, 0, who[i], join, strlen(join));
            ep_tls(&s, 1, "hub");
            handshake(&c, &s, SIZE_MAX);
            if (s.rc != 1)
                print_error("hub: %s\n", s.err.msg);
            assert_int_equal(c.rc, 1);
            assert_int_equal(s.rc, 1);
            assert_string_equal(sg_tls_alpn(s.t), "sangam-join/1");
            assert_int_equal(sg_tls_is_join(s.t), 1);
            assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), SG_EAUTH);
            assert_string_equal(err.msg, "enrollment connection: no certificate");
            assert_string_equal(sg_tls_peer_subject(s.t), "");
            ep_free(&c);
            ep_free(&s);
        }
    }
}

/* -------------------------------------------------------------------------------------------
 * HTTPS: the hub's API for browsers and curl
 */

static int cert_requests; /* times a plain client was asked for a certificate */

static int count_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    (void)ssl, (void)x509, (void)pkey;
    cert_requests++;
    return 0; /* send none */
}

/* An HTTPS server engine presenting dir/name. */
static void ep_https(ep *e, const char *name)
{
    sg_tls_ctx *c = NULL;
    sg_err err = {0};
    char pem[64], key[64];
    int rc;
    snprintf(pem, sizeof(pem), "%s.pem", name);
    snprintf(key, sizeof(key), "%s.key", name);
    rc = sg_tls_ctx_new_https(&c, path(pem), path(key), &err);
    if (rc != 0)
        print_error("sg_tls_ctx_new_https: %s\n", err.msg);
    assert_int_equal(rc, 0);
    ep_ctx(e, c);
}

/* A plain OpenSSL client as curl --cacert dir/ca.pem https://hub/ is: it verifies the server's
 * certificate against the CA and the name "hub", offers alpn (wire format, may be NULL), and
 * counts certificate requests instead of answering them. Presents dir/name when not NULL. */
static void ep_browser(ep *e, int max_version, const char *name, const char *alpn, size_t alpn_len)
{
    SSL_CTX *sc;
    ep_raw(e, 0, max_version, name, alpn, alpn_len);
    sc = SSL_get_SSL_CTX(e->raw);
    assert_int_equal(SSL_CTX_load_verify_file(sc, path("ca.pem")), 1);
    SSL_set_verify(e->raw, SSL_VERIFY_PEER, NULL);
    assert_int_equal(SSL_set1_host(e->raw, "hub"), 1);
    if (name == NULL)
        SSL_CTX_set_client_cert_cb(sc, count_cert_request);
}

/* Sends an HTTP request from the plain client c to the HTTPS server s and an answer back. */
static void https_exchange(ep *c, ep *s, size_t chunk)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
    char buf[256];
    sg_err err = {0};

    assert_int_equal(SSL_write(c->raw, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
    deliver(c, s, chunk);
    assert_int_equal(recv_all(s, buf, sizeof(buf)), sizeof(req) - 1);
    assert_memory_equal(buf, req, sizeof(req) - 1);
    assert_int_equal(sg_tls_write(s->t, resp, sizeof(resp) - 1, &err), 0);
    deliver(s, c, chunk);
    assert_int_equal(SSL_read(c->raw, buf, sizeof(buf)), (int)sizeof(resp) - 1);
    assert_memory_equal(buf, resp, sizeof(resp) - 1);
}

/* TLS 1.2 and 1.3 clients offering what curl offers (h2, http/1.1) get http/1.1, verify the
 * hub's certificate, are asked for no certificate, and exchange a request and its answer; the
 * server ends with close_notify. */
static void test_https_handshake(void **state)
{
    static const char curl_alpn[] = "\x02h2\x08http/1.1";
    static const struct {
        int max_version;
        const char *version;
        size_t chunk;
    } cases[] = {
        {TLS1_2_VERSION, "TLSv1.2", SIZE_MAX},
        {0, "TLSv1.3", SIZE_MAX},
        {TLS1_2_VERSION, "TLSv1.2", 1},
        {0, "TLSv1.3", 1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ep c, s;
        char region[64], buf[16];
        sg_err err = {0};
        cert_requests = 0;
        ep_browser(&c, cases[i].max_version, NULL, curl_alpn, sizeof(curl_alpn) - 1);
        ep_https(&s, "hub");
        assert_string_equal(sg_tls_version(s.t), "");
        handshake(&c, &s, cases[i].chunk);
        if (c.rc != 1 || s.rc != 1)
            print_error("client %d %s / server %d %s\n", c.rc, c.err.msg, s.rc, s.err.msg);
        assert_int_equal(c.rc, 1);
        assert_int_equal(s.rc, 1);
        assert_int_equal(SSL_get_verify_result(c.raw), X509_V_OK);
        assert_string_equal(sg_tls_version(s.t), cases[i].version);
        assert_string_equal(SSL_get_version(c.raw), cases[i].version);
        assert_string_equal(sg_tls_alpn(s.t), "http/1.1");
        assert_int_equal(cert_requests, 0);
        assert_string_equal(sg_tls_peer_subject(s.t), "");
        assert_int_equal(sg_tls_peer_not_after(s.t), -1);
        assert_int_equal(sg_tls_is_join(s.t), 0);
        assert_int_equal(sg_tls_peer_region(s.t, region, sizeof(region), &err), SG_EINVAL);
        assert_non_null(SSL_get0_peer_certificate(c.raw));
        https_exchange(&c, &s, cases[i].chunk);
        https_exchange(&c, &s, cases[i].chunk); /* keep-alive: a second request */
        /* No session ticket reaches the client: every connection does a full handshake. */
        assert_int_equal(SSL_SESSION_is_resumable(SSL_get0_session(c.raw)), 0);
        assert_int_equal(sg_tls_shutdown(s.t), 0);
        deliver(&s, &c, SIZE_MAX);
        assert_int_equal(SSL_read(c.raw, buf, sizeof(buf)), 0);
        assert_int_equal(SSL_get_error(c.raw, 0), SSL_ERROR_ZERO_RETURN);
        ep_free(&c);
        ep_free(&s);
    }
}

/* A client that offers no ALPN (older curl, scripts) is served; one that offers http/1.1 alone
 * gets it; one that presents a certificate unasked has it ignored. */
static void test_https_alpn_optional(void **state)
{
    ep c, s;
    (void)state;
    cert_requests = 0;
    ep_browser(&c, 0, NULL, NULL, 0);
    ep_https(&s, "hub");
    handshake(&c, &s, SIZE_MAX);
    assert_int_equal(c.rc, 1);
    assert_int_equal(s.rc, 1);
    assert_string_equal(sg_tls_alpn(s.t), "");
    assert_int_equal(cert_requests, 0);
    https_exchange(&c, &s, SIZE_MAX);
    ep_free(&c);
    ep_free(&s);

    ep_browser(&c, TLS1_2_VERSION, NULL, "\x08http/1.1", 9);
    ep_https(&s, "hub");
    handshake(&c, &s, SIZE_MAX);
    assert_int_equal(s.rc, 1);
    assert_string_equal(sg_tls_alpn(s.t), "http/1.1");
    ep_free(&c);
    ep_free(&s);

    ep_browser(&c, 0, "bundelkhand", "\x08http/1.1", 9);
    ep_https(&s, "hub");
    handshake(&c, &s, SIZE_MAX);
    assert_int_equal(c.rc, 1);
    assert_int_equal(s.rc, 1);
    assert_string_equal(sg_tls_peer_subject(s.t), "");
    ep_free(&c);
    ep_free(&s);
}

/* Clients offering only protocols the API does not speak are refused with a message naming
 * them: h2 alone, and a region's sangam/1 (the replication rules are not this context's). */
static void test_https_alpn_refused(void **state)
{
    static const struct {
        const char *alpn, *want;
    } cases[] = {
        {"\x02h2", "this server speaks http/1.1 only and the client offered 'h2' (HTTP/2 is not "
                   "served"},
        {"\x08sangam/1", "the client offered 'sangam/1'"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ep c, s;
        ep_browser(&c, 0, NULL, cases[i].alpn, strlen(cases[i].alpn));
        ep_https(&s, "hub");
        handshake(&c, &s, SIZE_MAX);
        print_message("server: %s\n", s.err.msg);
        assert_int_equal(s.rc, SG_ETLS);
        assert_contains(s.err.msg, "no common ALPN protocol");
        assert_contains(s.err.msg, cases[i].want);
        assert_int_equal(c.rc, -1);
        print_message("plain client: %s\n", c.err.msg);
        assert_contains(c.err.msg, "no application protocol");
        ep_free(&c);
        ep_free(&s);
    }

    /* A region's engine dialling the HTTPS port by mistake is refused the same way. */
    {
        ep c, s;
        ep_tls(&c, 0, "bundelkhand");
        ep_https(&s, "hub");
        handshake(&c, &s, SIZE_MAX);
        print_message("server: %s / region: %s\n", s.err.msg, c.err.msg);
        assert_int_equal(s.rc, SG_ETLS);
        assert_contains(s.err.msg, "the client offered 'sangam/1'");
        assert_int_equal(c.rc, SG_ETLS);
        assert_contains(c.err.msg, "no_application_protocol");
        ep_free(&c);
        ep_free(&s);
    }
}

/* Older TLS, plain HTTP and junk are refused with a reason; the hub's replication context still
 * refuses TLS 1.2 (its client-hello rules are untouched). */
static void test_https_refusals(void **state)
{
    ep c, s;
    static const char http[] = "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n";
    static const unsigned char junk[] = {0x16, 0x03, 0x01, 0x00, 0x05,
                                         0xde, 0xad, 0xbe, 0xef, 0x00};
    (void)state;

    ep_raw(&c, 0, TLS1_1_VERSION, NULL, "\x08http/1.1", 9);
    SSL_set_security_level(c.raw, 0);
    assert_int_equal(SSL_set_cipher_list(c.raw, "DEFAULT:@SECLEVEL=0"), 1);
    ep_https(&s, "hub");
    handshake(&c, &s, SIZE_MAX);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_contains(s.err.msg, "TLS 1.2 or 1.3");
    assert_int_equal(c.rc, -1);
    ep_free(&c);
    ep_free(&s);

    ep_https(&s, "hub");
    ep_feed(&s, http, sizeof(http) - 1);
    ep_step(&s);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_contains(s.err.msg, "plain HTTP");
    ep_free(&s);

    ep_https(&s, "hub");
    ep_feed(&s, (const char *)junk, sizeof(junk));
    ep_step(&s);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, SG_ETLS);
    assert_true(sg_tls_pending(s.t) > 0); /* an alert to drain and send */
    ep_free(&s);

    ep_raw(&c, 0, TLS1_2_VERSION, "bundelkhand", "\x08sangam/1", 9);
    ep_tls(&s, 1, "hub");
    handshake(&c, &s, SIZE_MAX);
    assert_int_equal(s.rc, SG_ETLS);
    assert_string_equal(s.err.msg, "peer offered TLS 1.2; this side speaks TLS 1.3 only");
    ep_free(&c);
    ep_free(&s);
}

static void test_https_ctx_errors(void **state)
{
    sg_tls_ctx *c = (sg_tls_ctx *)&c; /* must be set to NULL on failure */
    sg_err err = {0};
    char want[512];
    (void)state;

    assert_int_equal(sg_tls_ctx_new_https(&c, NULL, path("hub.key"), &err), SG_EINVAL);
    assert_null(c);
    assert_contains(err.msg, "[tls] cert: missing");
    assert_int_equal(sg_tls_ctx_new_https(&c, path("hub.pem"), "", &err), SG_EINVAL);
    assert_contains(err.msg, "[tls] key: missing");
    assert_int_equal(sg_tls_ctx_new_https(&c, path("nope.pem"), path("hub.key"), &err), SG_ECONFIG);
    print_message("%s\n", err.msg);
    assert_contains(err.msg, path("nope.pem"));
    assert_int_equal(sg_tls_ctx_new_https(&c, path("hub.pem"), path("bundelkhand.key"), &err),
                     SG_ECONFIG);
    snprintf(want, sizeof(want), "[tls] key %s does not match certificate %s",
             path("bundelkhand.key"), path("hub.pem"));
    assert_string_equal(err.msg, want);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_data_with_last_flight),
        cmocka_unit_test(test_large_write),
        cmocka_unit_test(test_key_update),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_client_from_foreign_ca),
        cmocka_unit_test(test_server_from_foreign_ca),
        cmocka_unit_test(test_no_client_cert),
        cmocka_unit_test(test_server_without_hub_name),
        cmocka_unit_test(test_client_wrong_purpose),
        cmocka_unit_test(test_expired_and_future),
        cmocka_unit_test(test_tls12_client_refused),
        cmocka_unit_test(test_tls12_server_refused),
        cmocka_unit_test(test_alpn_mismatch),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_clean_close),
        cmocka_unit_test(test_peer_region_refused),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_make_test_pki),
        cmocka_unit_test(test_join_handshake),
        cmocka_unit_test(test_join_wrong_pin),
        cmocka_unit_test(test_join_mitm),
        cmocka_unit_test(test_join_hub_checks),
        cmocka_unit_test(test_join_bad_pin),
        cmocka_unit_test(test_join_hub_alpn),
        cmocka_unit_test(test_https_handshake),
        cmocka_unit_test(test_https_alpn_optional),
        cmocka_unit_test(test_https_alpn_refused),
        cmocka_unit_test(test_https_refusals),
        cmocka_unit_test(test_https_ctx_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
