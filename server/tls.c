/*
 * tls.c - the TLS engine: OpenSSL over two memory BIOs; see tls.h for the policy and the drain
 * contract.
 *
 * Invariants:
 *   - OpenSSL reads ciphertext only from rbio (filled by sg_tls_feed) and writes only to wbio
 *     (emptied by sg_tls_take). Memory BIOs never block, so the only "want" is WANT_READ: more
 *     ciphertext is needed. rbio reports "retry" when empty until sg_tls_feed_eof(), after which
 *     it reports end of stream and OpenSSL turns a missing close_notify into an error.
 *   - The thread's OpenSSL error queue is cleared before every SSL_* call (SSL_get_error() reads
 *     it) and emptied after every failure, once its text has become our message.
 *   - Callbacks (client hello, ALPN, verify, info) only record what they saw in the engine (the
 *     SSL's app data); the function that gets the failure back from OpenSSL turns the records
 *     into one message, preferring the most specific: our own refusal, then the certificate
 *     check, then the peer's alert, then OpenSSL's reason.
 *   - The state moves only through tls_move(), along tls_moves[]; TLS_FAILED is final and keeps
 *     the first error, which every later call returns again.
 *   - Enrollment (ALPN sangam-join/1) is the only way a connection completes without a verified
 *     client certificate. The hub's client-hello callback turns certificate requests off for a
 *     ClientHello that offers sangam-join/1 and not sangam/1, and the ALPN callback picks
 *     sangam/1 whenever it is offered; tls_established() then checks the outcome itself: a
 *     connection that negotiated sangam/1 still needs a verified certificate, one that negotiated
 *     sangam-join/1 is marked join and never yields a region. A join client trusts no CA file:
 *     tls_join_verify_cb() takes its one trust anchor from the hub's own chain, by pin.
 *   - An HTTPS context (sg_tls_ctx_new_https) shares none of the replication policy but the
 *     engine: it has no client-hello callback (so none of the sangam/1 rules above), requests
 *     no certificate, allows TLS 1.2, and has its own ALPN callback (http/1.1 or nothing).
 *     tls_established() accepts it without a peer, and it never yields a region.
 */
#include "tls.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "sangam/records.h"

/* ALPN wire format: length-prefixed protocol names. */
_Static_assert(sizeof(SG_TLS_ALPN) - 1 == 0x08, "the length prefix of tls_alpn_wire");
_Static_assert(sizeof(SG_TLS_ALPN_JOIN) - 1 == 0x0d, "the length prefix of tls_alpn_join_wire");
static const unsigned char tls_alpn_wire[] = "\x08" SG_TLS_ALPN;
#define TLS_ALPN_WIRE_LEN (sizeof(tls_alpn_wire) - 1)
static const unsigned char tls_alpn_join_wire[] = "\x0d" SG_TLS_ALPN_JOIN;
#define TLS_ALPN_JOIN_WIRE_LEN (sizeof(tls_alpn_join_wire) - 1)
/* The hub's list, in its order of preference: a client that offers both is a region. */
static const unsigned char tls_alpn_hub_wire[] = "\x08" SG_TLS_ALPN "\x0d" SG_TLS_ALPN_JOIN;
#define TLS_ALPN_HUB_WIRE_LEN (sizeof(tls_alpn_hub_wire) - 1)
_Static_assert(sizeof(SG_TLS_ALPN_HTTP) - 1 == 0x08, "the length prefix of tls_alpn_http_wire");
static const unsigned char tls_alpn_http_wire[] = "\x08" SG_TLS_ALPN_HTTP;
#define TLS_ALPN_HTTP_WIRE_LEN (sizeof(tls_alpn_http_wire) - 1)

/* HTTPS with TLS 1.2: forward secrecy and AEAD only (TLS 1.3's suites are all such). */
#define TLS_HTTPS_CIPHERS_12                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define TLS_VERIFY_DEPTH 4 /* leaf, CA, and room for an intermediate or two */

struct sg_tls_ctx {
    SSL_CTX *ssl_ctx;            /* owned; every SSL made from it holds its own reference */
    int is_server;               /* 1 for the hub's side, 0 for a region's */
    int join;                    /* made by sg_tls_ctx_new_join: a client enrolling */
    int https;                   /* made by sg_tls_ctx_new_https: serving the API to browsers */
    char pin[SG_CA_PIN_LEN + 1]; /* join: the invite's CA pin (lowercase hex), else "" */
};

typedef enum tls_state {
    TLS_HANDSHAKE,   /* handshake in progress */
    TLS_OPEN,        /* handshake complete and checked: application data flows */
    TLS_PEER_CLOSED, /* the peer sent close_notify; this side may still write */
    TLS_FAILED,      /* an error ended the connection; fail holds it */
    TLS_NSTATES
} tls_state;

/* Allowed moves: tls_moves[from] has bit `to` set. */
static const unsigned tls_moves[TLS_NSTATES] = {
    [TLS_HANDSHAKE] = 1u << TLS_OPEN | 1u << TLS_FAILED,
    [TLS_OPEN] = 1u << TLS_PEER_CLOSED | 1u << TLS_FAILED,
    [TLS_PEER_CLOSED] = 1u << TLS_FAILED,
    [TLS_FAILED] = 0,
};

struct sg_tls {
    SSL *ssl;                 /* owned; owns rbio and wbio */
    BIO *rbio;                /* ciphertext from the network, read by OpenSSL */
    BIO *wbio;                /* ciphertext for the network, written by OpenSSL */
    int is_server;            /* copied from the context */
    tls_state state;          /* moved by tls_move() only */
    int eof;                  /* sg_tls_feed_eof() was called */
    int sent_close;           /* sg_tls_shutdown() queued close_notify */
    sg_err fail;              /* the error that moved the engine to TLS_FAILED */
    int why_code;             /* code of a refusal decided by our own callback, or 0 */
    char why[SG_ERR_MSG_MAX]; /* its message (version, ALPN, or the invite's pin) */
    int verify_err;           /* first X509_V_ERR_* of the peer's chain, or X509_V_OK */
    int verify_depth;     /* depth in the chain of that error (0 = the peer's own certificate) */
    char verify_date[40]; /* the notBefore/notAfter that made the certificate invalid */
    char verify_subject[160];    /* subject of the certificate that failed */
    int alert_recv;              /* first fatal alert received from the peer, or -1 */
    char alpn[32];               /* negotiated ALPN protocol, "" before the handshake completed */
    char peer_subject[256];      /* the peer certificate's subject (RFC 2253) */
    int64_t peer_not_after;      /* its notAfter as Unix time, -1 before the handshake completed */
    int join_client;             /* copied from the context: a client enrolling with a pin */
    char pin[SG_CA_PIN_LEN + 1]; /* join client: the invite's CA pin, copied from the context */
    X509 *pinned;                /* join client: the CA that verified the hub (owned), or NULL */
    int join;                    /* the handshake completed with ALPN sangam-join/1 */
    int https;                   /* copied from the context: an HTTPS server connection */
};

/* -------------------------------------------------------------------------------------------
 * Helpers
 */

/* The one function that changes t->state; a move not in tls_moves[] is a bug. */
static void tls_move(sg_tls *t, tls_state to)
{
    (void)tls_moves; /* used only by the assert, which NDEBUG removes */
    assert(tls_moves[t->state] & (1u << to));
    t->state = to;
}

void tls_ossl_msg(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "no detail from OpenSSL");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

/* Copies len bytes of untrusted text into out (cap bytes), replacing anything but printable
 * ASCII with '?', so that a peer's bytes cannot forge log lines. */
static void printable(char *out, size_t cap, const unsigned char *s, size_t len)
{
    size_t i;
    if (cap == 0)
        return;
    for (i = 0; i < len && i + 1 < cap; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    out[i] = '\0';
}

/* Formats an ASN1_TIME as "2026-01-31 12:00:00 UTC". */
static void time_str(const ASN1_TIME *at, char *out, size_t cap)
{
    struct tm tm;
    if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1 ||
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "an unreadable date");
}

/* Formats an X509 name in RFC 2253 form into out ("" on failure). */
static void name_str(const X509_NAME *name, char *out, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    size_t n = 0;
    out[0] = '\0';
    if (b == NULL)
        return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
        BIO_read_ex(b, out, cap - 1, &n) == 1)
        out[n] = '\0';
    BIO_free(b);
}

/* Fails with "[tls] <what> <path>: cannot read: <errno text>" unless path can be opened. */
static int check_readable(const char *what, const char *path, sg_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return sg_err_set(err, SG_ECONFIG, "[tls] %s %s: cannot read: %s", what, path,
                          strerror(errno));
    fclose(f);
    return 0;
}

/* Password callback that refuses: an encrypted key is a configuration error, never a prompt on
 * the terminal (OpenSSL's default). */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Moves the engine to TLS_FAILED with code and message, copies them to err, empties OpenSSL's
 * error queue and returns code. */
static int tls_fail(sg_tls *t, sg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tls_fail(sg_tls *t, sg_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    t->fail.code = code;
    va_start(ap, fmt);
    vsnprintf(t->fail.msg, sizeof(t->fail.msg), fmt, ap);
    va_end(ap);
    tls_move(t, TLS_FAILED);
    ERR_clear_error();
    return sg_err_set(err, code, "%s", t->fail.msg);
}

/* The error a failed engine keeps returning. */
static int tls_failed(const sg_tls *t, sg_err *err)
{
    assert(t->state == TLS_FAILED);
    return sg_err_set(err, t->fail.code, "%s", t->fail.msg);
}

static const char *version_name(unsigned v)
{
    switch (v) {
    case SSL3_VERSION:
        return "SSL 3.0";
    case TLS1_VERSION:
        return "TLS 1.0";
    case TLS1_1_VERSION:
        return "TLS 1.1";
    case TLS1_2_VERSION:
        return "TLS 1.2";
    default:
        return NULL;
    }
}

/* Whether the ALPN extension body p[0..n) (a 2-byte length, then length-prefixed names) offers
 * proto: 1 yes, 0 no, -1 when the list is malformed. */
static int alpn_offers(const unsigned char *p, size_t n, const char *proto)
{
    size_t plen = strlen(proto), i;
    int found = 0;
    if (n < 2 || ((size_t)p[0] << 8 | p[1]) != n - 2)
        return -1;
    for (i = 2; i < n; i += 1 + (size_t)p[i]) {
        if (p[i] == 0 || p[i] > n - i - 1)
            return -1;
        if (p[i] == plen && memcmp(p + i + 1, proto, plen) == 0)
            found = 1;
    }
    return found;
}

/* Whether the negotiated ALPN protocol alpn[0..len) is proto. */
static int alpn_is(const unsigned char *alpn, unsigned len, const char *proto)
{
    return len == strlen(proto) && memcmp(alpn, proto, len) == 0;
}

/* The ALPN protocol this engine must end up with: the client's own; for the hub, either; for
 * HTTPS, http/1.1 (or none). */
static const char *alpn_expected(const sg_tls *t)
{
    return t->https ? SG_TLS_ALPN_HTTP : t->join_client ? SG_TLS_ALPN_JOIN : SG_TLS_ALPN;
}

/* Lists the ALPN protocols of the wire-format list in[0..inlen) into out (cap bytes) as
 * "'a', 'b'", each name made printable, reading within bounds of in; "nothing" when empty. */
static void alpn_offered(char *out, size_t cap, const unsigned char *in, unsigned inlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < inlen && used + 4 < cap;) {
        unsigned l = in[i++];
        char name[40];
        if (l > inlen - i)
            break;
        printable(name, sizeof(name), in + i, l);
        used += (size_t)snprintf(out + used, cap - used, "%s'%s'", used ? ", " : "", name);
        i += l;
    }
    if (out[0] == '\0')
        snprintf(out, cap, "nothing");
}

/* -------------------------------------------------------------------------------------------
 * OpenSSL callbacks: they record, the failing call explains (see the file comment).
 */

/* Server: refuses, with a message, a ClientHello that does not offer TLS 1.3 or offers no ALPN
 * at all (OpenSSL would otherwise skip the ALPN callback and go on without a protocol). Runs
 * before OpenSSL's own version negotiation, so it can name the version the peer offered, and
 * before OpenSSL decides whether to send CertificateRequest, so it can decide that per
 * connection: a client that offers sangam-join/1 but not sangam/1 is enrolling and has no
 * certificate to show. */
static int tls_client_hello_cb(SSL *ssl, int *al, void *arg)
{
    sg_tls *t = SSL_get_app_data(ssl);
    const unsigned char *p;
    size_t n;
    unsigned best = SSL_client_hello_get0_legacy_version(ssl);
    int has13 = 0;
    (void)arg;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &p, &n) == 1) {
        /* One length byte, then 2-byte versions. A malformed list is left to OpenSSL. */
        if (n < 3 || (size_t)p[0] + 1 != n || p[0] % 2 != 0)
            return SSL_CLIENT_HELLO_SUCCESS;
        for (size_t i = 1; i + 1 < n; i += 2) {
            unsigned v = (unsigned)p[i] << 8 | p[i + 1];
            if (v == TLS1_3_VERSION)
                has13 = 1;
            else if (version_name(v) != NULL && v > best)
                best = v;
        }
    }
    if (!has13) {
        const char *name = version_name(best);
        t->why_code = SG_ETLS;
        if (name != NULL)
            snprintf(t->why, sizeof(t->why), "peer offered %s; this side speaks TLS 1.3 only",
                     name);
        else
            snprintf(t->why, sizeof(t->why),
                     "peer offered protocol version 0x%04x; this side speaks TLS 1.3 only", best);
        *al = SSL_AD_PROTOCOL_VERSION;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                  &n) != 1) {
        t->why_code = SG_ETLS;
        snprintf(t->why, sizeof(t->why),
                 "peer offered no ALPN protocol (expected " SG_TLS_ALPN "): not a Sangam region?");
        *al = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    /* Set both ways, as a second ClientHello (after HelloRetryRequest) runs this again. A
     * malformed list keeps the certificate request; OpenSSL refuses the list anyway. Whatever
     * is decided here, tls_established() refuses sangam/1 without a verified certificate. */
    if (alpn_offers(p, n, SG_TLS_ALPN_JOIN) == 1 && alpn_offers(p, n, SG_TLS_ALPN) == 0) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    } else {
        const SSL_CTX *sc = SSL_get_SSL_CTX(ssl);
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(sc), SSL_CTX_get_verify_callback(sc));
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Server: selects "sangam/1", else "sangam-join/1", or fails the handshake with alert
 * no_application_protocol. */
static int tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                              const unsigned char *in, unsigned int inlen, void *arg)
{
    sg_tls *t = SSL_get_app_data(ssl);
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    char offered[160];
    (void)arg;

    if (SSL_select_next_proto(&sel, &sellen, tls_alpn_hub_wire, TLS_ALPN_HUB_WIRE_LEN, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    alpn_offered(offered, sizeof(offered), in, inlen);
    t->why_code = SG_ETLS;
    snprintf(t->why, sizeof(t->why),
             "no common ALPN protocol (expected " SG_TLS_ALPN ", the peer offered %s)", offered);
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* HTTPS server: selects "http/1.1", or fails the handshake with alert no_application_protocol
 * when the client offers only other protocols (h2 alone). OpenSSL calls this only when the
 * client sent an ALPN list; a client that sent none is served HTTP/1.1 all the same. */
static int tls_alpn_https_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                             const unsigned char *in, unsigned int inlen, void *arg)
{
    sg_tls *t = SSL_get_app_data(ssl);
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    char offered[160];
    (void)arg;

    if (SSL_select_next_proto(&sel, &sellen, tls_alpn_http_wire, TLS_ALPN_HTTP_WIRE_LEN, in,
                              inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    alpn_offered(offered, sizeof(offered), in, inlen);
    t->why_code = SG_ETLS;
    snprintf(t->why, sizeof(t->why),
             "no common ALPN protocol: this server speaks " SG_TLS_ALPN_HTTP
             " only and the client offered %s%s",
             offered,
             strstr(offered, "'h2'") != NULL ? " (HTTP/2 is not served: let the client fall back "
                                               "to HTTP/1.1, e.g. curl --http1.1)"
                                             : "");
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Both sides: records the first error found in the peer's certificate chain. */
static int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    sg_tls *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *cert;

    if (ok || t == NULL || t->verify_err != X509_V_OK)
        return ok;
    t->verify_err = X509_STORE_CTX_get_error(xs);
    t->verify_depth = X509_STORE_CTX_get_error_depth(xs);
    cert = X509_STORE_CTX_get_current_cert(xs);
    if (cert != NULL) {
        name_str(X509_get_subject_name(cert), t->verify_subject, sizeof(t->verify_subject));
        if (t->verify_err == X509_V_ERR_CERT_HAS_EXPIRED)
            time_str(X509_get0_notAfter(cert), t->verify_date, sizeof(t->verify_date));
        else if (t->verify_err == X509_V_ERR_CERT_NOT_YET_VALID)
            time_str(X509_get0_notBefore(cert), t->verify_date, sizeof(t->verify_date));
    }
    return ok;
}

/* Join client: appends the pin of cert to list (cap bytes), at most two of them, then "...". */
static void pin_list_add(char *list, size_t cap, int *count, X509 *cert)
{
    char pin[SG_CA_PIN_LEN + 1];
    size_t used = strlen(list);
    if (sg_cert_pin(pin, cert, NULL) != 0)
        snprintf(pin, sizeof(pin), "(unreadable key)");
    if (*count < 2)
        snprintf(list + used, cap - used, "%s%s", *count ? ", " : "", pin);
    else if (*count == 2)
        snprintf(list + used, cap - used, ", ...");
    (*count)++;
}

/* Join client: the certificate in the hub's chain, other than its leaf, whose public-key pin is
 * t->pin, or NULL; the pins of the others are listed in seen (cap bytes) for the message. */
static X509 *join_find_pinned(sg_tls *t, X509 *leaf, STACK_OF(X509) * chain, char *seen, size_t cap)
{
    int count = 0;
    seen[0] = '\0';
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        char pin[SG_CA_PIN_LEN + 1];
        if (x == leaf || X509_cmp(x, leaf) == 0)
            continue;
        if (sg_cert_pin(pin, x, NULL) == 0 && strcmp(pin, t->pin) == 0)
            return x;
        pin_list_add(seen, cap, &count, x);
    }
    return NULL;
}

/* Join client, in place of OpenSSL's chain verification (SSL_CTX_set_cert_verify_callback), so
 * a hub that fails never completes the handshake: verifies the hub's chain with the CA
 * certificate the invite pins, found in that chain, as the only trust anchor, with the checks a
 * region makes (serverAuth, DNS name "hub", validity). The pinned certificate must be a CA and
 * signed by its own key: as a trust anchor its content is otherwise taken on faith, and the
 * joiner saves it as its CA. Returns 1 to accept; 0 with the error set in xs, which OpenSSL
 * turns into the alert the hub receives, and the reason recorded in the engine. */
static int tls_join_verify_cb(X509_STORE_CTX *xs, void *arg)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    sg_tls *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(xs);
    X509 *pinned;
    X509_STORE *store = NULL;
    X509_STORE_CTX *vx = NULL;
    X509_VERIFY_PARAM *param;
    char seen[2 * SG_CA_PIN_LEN + 16];
    int ok = 0;
    (void)arg;

    if (t == NULL || leaf == NULL) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    pinned = join_find_pinned(t, leaf, chain, seen, sizeof(seen));
    if (pinned == NULL) {
        t->why_code = SG_EAUTH;
        snprintf(t->why, sizeof(t->why),
                 "the hub's CA does not match the invite's pin: the invite pins %s, the hub's "
                 "chain carries %s%s (wrong hub address, an invite of another coalition, or a "
                 "man in the middle)",
                 t->pin, seen[0] ? "certificates with pins " : "no CA certificate", seen);
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
        return 0;
    }
    if (X509_check_ca(pinned) != 1) {
        t->why_code = SG_EAUTH;
        snprintf(t->why, sizeof(t->why),
                 "the hub's certificate with the invite's pin %s is not a CA certificate "
                 "(basicConstraints CA:TRUE)",
                 t->pin);
        X509_STORE_CTX_set_error(xs, X509_V_ERR_INVALID_CA);
        return 0;
    }
    if (X509_check_issued(pinned, pinned) != X509_V_OK ||
        X509_verify(pinned, X509_get0_pubkey(pinned)) != 1) {
        ERR_clear_error();
        t->why_code = SG_EAUTH;
        snprintf(t->why, sizeof(t->why),
                 "the hub's CA certificate with the invite's pin %s is not self-signed by that "
                 "key (forged?)",
                 t->pin);
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_SIGNATURE_FAILURE);
        return 0;
    }

    store = X509_STORE_new();
    vx = X509_STORE_CTX_new();
    if (store == NULL || vx == NULL || X509_STORE_add_cert(store, pinned) != 1 ||
        X509_STORE_CTX_init(vx, store, leaf, chain) != 1 ||
        X509_STORE_CTX_set_ex_data(vx, SSL_get_ex_data_X509_STORE_CTX_idx(), ssl) != 1 ||
        X509_STORE_CTX_set_purpose(vx, X509_PURPOSE_SSL_SERVER) != 1) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_OUT_OF_MEM);
        goto free_store;
    }
    /* As a region's context sets it up in sg_tls_ctx_new(). */
    X509_STORE_CTX_set_verify_cb(vx, tls_verify_cb);
    param = X509_STORE_CTX_get0_param(vx);
    X509_VERIFY_PARAM_set_depth(param, TLS_VERIFY_DEPTH);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_WILDCARDS |
                                               X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (X509_VERIFY_PARAM_set1_host(param, SG_TLS_HUB, 0) != 1) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_OUT_OF_MEM);
        goto free_store;
    }
    if (X509_verify_cert(vx) != 1) {
        /* tls_verify_cb recorded the first error in t; pass it on for the alert. */
        X509_STORE_CTX_set_error(xs, X509_STORE_CTX_get_error(vx));
        X509_STORE_CTX_set_error_depth(xs, X509_STORE_CTX_get_error_depth(vx));
        X509_STORE_CTX_set_current_cert(xs, X509_STORE_CTX_get_current_cert(vx));
        if (t->verify_err == X509_V_OK)
            t->verify_err = X509_STORE_CTX_get_error(vx) != X509_V_OK ? X509_STORE_CTX_get_error(vx)
                                                                      : X509_V_ERR_UNSPECIFIED;
        goto free_store;
    }
    X509_up_ref(pinned);
    X509_free(t->pinned);
    t->pinned = pinned;
    /* For SSL_get0_verified_chain(): the chain that was verified, ending at the pinned CA. */
    X509_STORE_CTX_set0_verified_chain(xs, X509_STORE_CTX_get1_chain(vx));
    X509_STORE_CTX_set_error(xs, X509_V_OK);
    ok = 1;
free_store:
    X509_STORE_CTX_free(vx);
    X509_STORE_free(store);
    return ok;
}

/* Both sides: records the first fatal alert the peer sent. */
static void tls_info_cb(const SSL *ssl, int where, int ret)
{
    sg_tls *t = SSL_get_app_data(ssl);
    int desc = ret & 0xff;
    if (t == NULL || !(where & SSL_CB_ALERT) || !(where & SSL_CB_READ))
        return;
    /* TLS 1.3 treats every alert but these two as fatal, whatever level the peer claims. */
    if (desc == SSL_AD_CLOSE_NOTIFY || desc == SSL_AD_USER_CANCELLED)
        return;
    if (t->alert_recv < 0)
        t->alert_recv = desc;
}

/* -------------------------------------------------------------------------------------------
 * Turning failures into messages
 */

/* A certificate this side refused. */
static int tls_explain_verify(sg_tls *t, sg_err *err)
{
    const char *what = X509_verify_cert_error_string(t->verify_err);
    char who[48];
    char subj[200] = "";

    if (t->verify_depth == 0)
        snprintf(who, sizeof(who), "peer certificate");
    else
        snprintf(who, sizeof(who), "peer certificate's issuer (chain depth %d)", t->verify_depth);
    if (t->verify_subject[0])
        snprintf(subj, sizeof(subj), "; subject %s", t->verify_subject);

    switch (t->verify_err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return tls_fail(t, err, SG_EAUTH, "%s: %s (%s)%s", who, what,
                        t->join_client ? "not signed by the CA the invite pins: a man in the "
                                         "middle?"
                                       : "not signed by the coalition CA?",
                        subj);
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return tls_fail(t, err, SG_EAUTH, "%s: %s (not after %s; it must be renewed)%s", who, what,
                        t->verify_date, subj);
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return tls_fail(t, err, SG_EAUTH,
                        "%s: %s (not before %s; is a clock on either side wrong?)%s", who, what,
                        t->verify_date, subj);
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return tls_fail(t, err, SG_EAUTH,
                        "peer certificate has no DNS name '" SG_TLS_HUB "' (is the peer the "
                        "hub?)%s",
                        subj);
    case X509_V_ERR_INVALID_PURPOSE:
        return tls_fail(t, err, SG_EAUTH, "%s: %s (%s)%s", who, what,
                        t->is_server ? "a region's certificate needs extendedKeyUsage clientAuth"
                                     : "the hub's certificate needs extendedKeyUsage serverAuth",
                        subj);
    default:
        return tls_fail(t, err, SG_EAUTH, "%s: %s%s", who, what, subj);
    }
}

/* A fatal alert from the peer: the peer refused something of ours. */
static int tls_explain_alert(sg_tls *t, sg_err *err)
{
    if (t->https) {
        switch (t->alert_recv) {
        case SSL_AD_UNKNOWN_CA:
        case SSL_AD_BAD_CERTIFICATE:
        case SSL_AD_CERTIFICATE_UNKNOWN:
        case SSL_AD_CERTIFICATE_EXPIRED:
        case SSL_AD_UNSUPPORTED_CERTIFICATE:
            return tls_fail(t, err, SG_EAUTH,
                            "the client refused the hub's certificate (%s): it must trust the "
                            "coalition CA (e.g. curl --cacert pki/ca.pem) and use a name the "
                            "certificate carries",
                            SSL_alert_desc_string_long(t->alert_recv));
        default:
            break;
        }
    }
    switch (t->alert_recv) {
    case SSL_AD_UNKNOWN_CA:
        return tls_fail(t, err, SG_EAUTH,
                        "the peer refused our certificate: unknown CA (is it signed by the "
                        "coalition CA the peer trusts?)");
    case SSL_AD_CERTIFICATE_EXPIRED:
        return tls_fail(t, err, SG_EAUTH,
                        "the peer refused our certificate: expired (renew it, or check the "
                        "clocks)");
    case SSL_AD_BAD_CERTIFICATE:
        return tls_fail(t, err, SG_EAUTH,
                        "the peer refused our certificate (bad certificate: not yet valid, or "
                        "not issued for this peer?)");
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
        return tls_fail(t, err, SG_EAUTH,
                        "the peer refused our certificate: unsupported certificate (wrong "
                        "extendedKeyUsage for this side's role?)");
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_ACCESS_DENIED:
        return tls_fail(t, err, SG_EAUTH, "the peer refused our certificate (%s)",
                        SSL_alert_desc_string_long(t->alert_recv));
    case SSL_AD_CERTIFICATE_REQUIRED:
        return tls_fail(t, err, SG_EAUTH,
                        "the peer requires a certificate and this side sent none (set cert "
                        "and key)");
    case SSL_AD_PROTOCOL_VERSION:
        return tls_fail(t, err, SG_ETLS,
                        "the peer refused the protocol version (this side speaks %s)",
                        t->https ? "TLS 1.2 and 1.3" : "TLS 1.3 only");
    case SSL_AD_NO_APPLICATION_PROTOCOL:
        return tls_fail(t, err, SG_ETLS,
                        "the peer refused ALPN protocol %s (no_application_protocol): is it "
                        "Sangam of a compatible version?",
                        alpn_expected(t));
    default:
        return tls_fail(t, err, SG_ETLS, "the peer ended the connection with alert %d (%s)",
                        t->alert_recv, SSL_alert_desc_string_long(t->alert_recv));
    }
}

/* SSL_ERROR_SSL: picks the most specific explanation (see the file comment). */
static int tls_explain(sg_tls *t, sg_err *err)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
    int handshake = t->state == TLS_HANDSHAKE;
    char detail[256];

    if (t->why_code != 0)
        return tls_fail(t, err, t->why_code, "%s", t->why);
    if (t->verify_err != X509_V_OK)
        return tls_explain_verify(t, err);
    if (t->alert_recv >= 0)
        return tls_explain_alert(t, err);
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return tls_fail(t, err, SG_EAUTH, "peer did not present a certificate");
    case SSL_R_UNSUPPORTED_PROTOCOL:
        if (t->https)
            return tls_fail(t, err, SG_ETLS,
                            "the client offered no TLS version this server speaks (TLS 1.2 "
                            "or 1.3)");
        return tls_fail(t, err, SG_ETLS,
                        "peer does not speak TLS 1.3; this side speaks TLS 1.3 only");
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return tls_fail(t, err, SG_ETLS, "no common ALPN protocol (expected %s)", alpn_expected(t));
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return tls_fail(t, err, SG_ETLS,
                        handshake ? "connection ended during the TLS handshake"
                                  : "connection cut without close_notify");
    case SSL_R_HTTP_REQUEST:
        return tls_fail(t, err, SG_ETLS, "the peer spoke plain HTTP, not TLS");
    default:
        break;
    }
    tls_ossl_msg(detail, sizeof(detail));
    return tls_fail(t, err, SG_ETLS, "TLS %s: %s", handshake ? "handshake" : "connection", detail);
}

/* Interprets a failed SSL_* call: 0 when it only needs more input, else fails the engine (or,
 * for a clean close_notify after the handshake, moves it to TLS_PEER_CLOSED) and returns the
 * code. */
static int tls_error(sg_tls *t, int ret, sg_err *err)
{
    int handshake = t->state == TLS_HANDSHAKE;
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        if (handshake)
            return tls_fail(t, err, SG_ETLS, "the peer closed the connection during the handshake");
        tls_move(t, TLS_PEER_CLOSED);
        ERR_clear_error();
        return sg_err_set(err, SG_ECLOSED, "the peer closed the connection (close_notify)");
    case SSL_ERROR_SYSCALL:
        /* With memory BIOs only the end of rbio's stream gets here (OpenSSL 3.0 reports it as
         * SSL_ERROR_SSL, older versions as this). */
        return tls_fail(t, err, SG_ETLS,
                        handshake ? "connection ended during the TLS handshake"
                                  : "connection cut without close_notify");
    case SSL_ERROR_SSL:
        return tls_explain(t, err);
    default:
        return tls_fail(t, err, SG_ETLS, "TLS: unexpected SSL_get_error result %d",
                        SSL_get_error(t->ssl, ret));
    }
}

/* HTTPS: the handshake completed with TLS 1.2 or 1.3 and ALPN http/1.1 or none (the callback
 * refused anything else; checked again here all the same). No certificate was asked for, so
 * there is no peer to record. Returns 1 or an error. */
static int tls_established_https(sg_tls *t, sg_err *err)
{
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    int v = SSL_version(t->ssl);

    if (v != TLS1_2_VERSION && v != TLS1_3_VERSION)
        return tls_fail(t, err, SG_ETLS, "negotiated %s; this server speaks TLS 1.2 and 1.3",
                        SSL_get_version(t->ssl));
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (alpn_len != 0 && !alpn_is(alpn, alpn_len, SG_TLS_ALPN_HTTP)) {
        char chosen[40];
        printable(chosen, sizeof(chosen), alpn, alpn_len);
        return tls_fail(t, err, SG_ETLS, "ALPN chose '%s'; this server speaks " SG_TLS_ALPN_HTTP,
                        chosen);
    }
    if (alpn_len != 0) /* alpn is NULL when the client offered none */
        memcpy(t->alpn, alpn, alpn_len);
    t->alpn[alpn_len] = '\0';
    tls_move(t, TLS_OPEN);
    return 1;
}

/* The handshake completed: checks what OpenSSL's policy cannot express, records what the
 * accessors report, and opens the engine. Returns 1 or an error.
 *
 * The hub accepts a connection without a client certificate only when it negotiated
 * sangam-join/1, whatever the client-hello callback decided; such a connection is marked join
 * and has no peer to record. */
static int tls_established(sg_tls *t, sg_err *err)
{
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    long vr = SSL_get_verify_result(t->ssl);
    struct tm tm;

    if (t->https)
        return tls_established_https(t, err);
    if (SSL_version(t->ssl) != TLS1_3_VERSION)
        return tls_fail(t, err, SG_ETLS, "negotiated %s; this side speaks TLS 1.3 only",
                        SSL_get_version(t->ssl));
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (t->is_server && alpn_is(alpn, alpn_len, SG_TLS_ALPN_JOIN)) {
        memcpy(t->alpn, alpn, alpn_len);
        t->alpn[alpn_len] = '\0';
        t->join = 1;
        tls_move(t, TLS_OPEN);
        return 1;
    }
    if (peer == NULL)
        return tls_fail(t, err, SG_EAUTH, "peer did not present a certificate");
    if (vr != X509_V_OK)
        return tls_fail(t, err, SG_EAUTH, "peer certificate: %s",
                        X509_verify_cert_error_string(vr));
    if (!alpn_is(alpn, alpn_len, alpn_expected(t))) {
        char chosen[40];
        printable(chosen, sizeof(chosen), alpn, alpn_len);
        return tls_fail(t, err, SG_ETLS, "no common ALPN protocol (expected %s%s%s%s)",
                        alpn_expected(t), alpn_len ? ", the peer chose '" : "; the peer chose none",
                        chosen, alpn_len ? "'" : "");
    }
    /* Our verify callback either set pinned or failed the handshake; never trust a hub
     * otherwise. */
    if (t->join_client && t->pinned == NULL)
        return tls_fail(t, err, SG_EAUTH,
                        "the hub's certificate was not checked against the invite's pin");
    memcpy(t->alpn, alpn, alpn_len);
    t->alpn[alpn_len] = '\0';
    t->join = t->join_client;
    name_str(X509_get_subject_name(peer), t->peer_subject, sizeof(t->peer_subject));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm) == 1)
        t->peer_not_after = (int64_t)timegm(&tm);
    tls_move(t, TLS_OPEN);
    return 1;
}

/* -------------------------------------------------------------------------------------------
 * Contexts
 */

/* Loads cert_file and key_file into sc, checking that they belong together. */
static int ctx_load_identity(SSL_CTX *sc, const char *cert_file, const char *key_file, sg_err *err)
{
    BIO *kb = NULL;
    EVP_PKEY *pkey = NULL;
    char detail[256];
    int rc;

    if ((rc = check_readable("certificate", cert_file, err)) != 0 ||
        (rc = check_readable("key", key_file, err)) != 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1) {
        tls_ossl_msg(detail, sizeof(detail));
        return sg_err_set(err, SG_ECONFIG,
                          "[tls] certificate %s: not a usable PEM certificate (%s)", cert_file,
                          detail);
    }
    /* The key is read here rather than with SSL_CTX_use_PrivateKey_file so that a key that does
     * not match gets its own message, and an encrypted key fails instead of prompting. */
    kb = BIO_new_file(key_file, "r");
    if (kb == NULL) {
        tls_ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ECONFIG, "[tls] key %s: cannot open (%s)", key_file, detail);
        goto free_key;
    }
    pkey = PEM_read_bio_PrivateKey(kb, NULL, no_password_cb, NULL);
    if (pkey == NULL) {
        tls_ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ECONFIG, "[tls] key %s: not an unencrypted PEM private key (%s)",
                        key_file, detail);
        goto free_key;
    }
    if (X509_check_private_key(SSL_CTX_get0_certificate(sc), pkey) != 1 ||
        SSL_CTX_use_PrivateKey(sc, pkey) != 1 || SSL_CTX_check_private_key(sc) != 1) {
        ERR_clear_error();
        rc = sg_err_set(err, SG_ECONFIG, "[tls] key %s does not match certificate %s", key_file,
                        cert_file);
        goto free_key;
    }
    rc = 0;
free_key:
    EVP_PKEY_free(pkey);
    BIO_free(kb);
    return rc;
}

/* Server: appends the certificates of ca_file to the chain sc sends after its own certificate,
 * skipping any already there, so that a joiner finds the CA its invite pins. (With an empty
 * chain OpenSSL would build one from the trust store; this makes it explicit, and survives a
 * cert_file that carries its own chain.) */
static int ctx_add_ca_chain(SSL_CTX *sc, const char *ca_file, sg_err *err)
{
    BIO *b = BIO_new_file(ca_file, "r");
    X509 *x = NULL;
    char detail[256];
    int rc = 0;

    if (b == NULL) {
        tls_ossl_msg(detail, sizeof(detail));
        return sg_err_set(err, SG_ECONFIG, "[tls] CA file %s: cannot open (%s)", ca_file, detail);
    }
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        STACK_OF(X509) *chain = NULL;
        int dup = X509_cmp(x, SSL_CTX_get0_certificate(sc)) == 0;
        if (SSL_CTX_get0_chain_certs(sc, &chain) != 1)
            chain = NULL;
        for (int i = 0; !dup && i < sk_X509_num(chain); i++)
            dup = X509_cmp(x, sk_X509_value(chain, i)) == 0;
        if (!dup && SSL_CTX_add1_chain_cert(sc, x) != 1) {
            tls_ossl_msg(detail, sizeof(detail));
            rc = sg_err_set(err, SG_ENOMEM, "[tls] cannot add the CA of %s to the chain: %s",
                            ca_file, detail);
            break;
        }
        X509_free(x);
        x = NULL;
    }
    /* The read that ended the loop left "no start line": the end of the file. */
    ERR_clear_error();
    X509_free(x);
    BIO_free(b);
    return rc;
}

/* An SSL_CTX with the policy every context shares: TLS 1.3 only (the HTTPS context widens it),
 * no resumption, no password prompts, alerts recorded. */
static int ctx_base(SSL_CTX **out, int is_server, sg_err *err)
{
    SSL_CTX *sc;
    char detail[256];

    *out = NULL;
    ERR_clear_error();
    sc = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (sc == NULL) {
        tls_ossl_msg(detail, sizeof(detail));
        return sg_err_set(err, SG_ENOMEM, "[tls] cannot make an SSL_CTX: %s", detail);
    }
    if (SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1) {
        tls_ossl_msg(detail, sizeof(detail));
        SSL_CTX_free(sc);
        return sg_err_set(err, SG_ETLS, "[tls] cannot limit to TLS 1.3: %s", detail);
    }
    /* No resumption: every connection authenticates with certificates. */
    SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(sc, 0);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(sc, no_password_cb);
    SSL_CTX_set_info_callback(sc, tls_info_cb);
    *out = sc;
    return 0;
}

/* Wraps sc (taken over, freed on failure) in a new context. */
static int ctx_wrap(sg_tls_ctx **out, SSL_CTX *sc, int is_server, const char *pin, sg_err *err)
{
    sg_tls_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        SSL_CTX_free(sc);
        return sg_err_set(err, SG_ENOMEM, "[tls] out of memory");
    }
    c->ssl_ctx = sc;
    c->is_server = is_server;
    if (pin != NULL) {
        c->join = 1;
        snprintf(c->pin, sizeof(c->pin), "%s", pin);
    }
    *out = c;
    return 0;
}

int sg_tls_ctx_new(sg_tls_ctx **out, int is_server, const char *ca_file, const char *cert_file,
                   const char *key_file, sg_err *err)
{
    SSL_CTX *sc = NULL;
    char detail[256];
    int rc;

    *out = NULL;
    if (ca_file == NULL || ca_file[0] == '\0')
        return sg_err_set(err, SG_ECONFIG, "[tls] ca: missing (the coalition CA certificate)");
    if (cert_file != NULL && cert_file[0] == '\0')
        cert_file = NULL;
    if (key_file != NULL && key_file[0] == '\0')
        key_file = NULL;
    if ((cert_file == NULL) != (key_file == NULL))
        return sg_err_set(err, SG_ECONFIG, "[tls] %s: missing (cert and key go together)",
                          cert_file == NULL ? "cert" : "key");
    if (is_server && cert_file == NULL)
        return sg_err_set(err, SG_EINVAL, "[tls] the hub needs a certificate and its key");
    if ((rc = check_readable("CA file", ca_file, err)) != 0)
        return rc;
    if ((rc = ctx_base(&sc, is_server, err)) != 0)
        return rc;

    /* Trust the coalition CA alone: no SSL_CTX_set_default_verify_paths(). */
    if (SSL_CTX_load_verify_file(sc, ca_file) != 1) {
        tls_ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ECONFIG, "[tls] CA file %s: no usable PEM certificate (%s)",
                        ca_file, detail);
        goto free_ssl_ctx;
    }
    SSL_CTX_set_verify(
        sc, is_server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
        tls_verify_cb);
    SSL_CTX_set_verify_depth(sc, TLS_VERIFY_DEPTH);
    if (SSL_CTX_set_purpose(sc, is_server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) !=
        1) {
        tls_ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ETLS, "[tls] cannot set the certificate purpose: %s", detail);
        goto free_ssl_ctx;
    }

    if (is_server) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        /* Tells clients which CA to pick a certificate for; only a hint, so a failure is
         * harmless (the load above already proved the file holds a certificate). */
        if (names != NULL)
            SSL_CTX_set_client_CA_list(sc, names);
        ERR_clear_error();
        SSL_CTX_set_client_hello_cb(sc, tls_client_hello_cb, NULL);
        SSL_CTX_set_alpn_select_cb(sc, tls_alpn_select_cb, NULL);
    } else {
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(sc);
        /* Only the DNS subjectAltName counts: no wildcards, no fallback to the subject's CN. */
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_WILDCARDS |
                                                   X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        /* Both of these return 1 on success, except SSL_CTX_set_alpn_protos: 0. */
        if (X509_VERIFY_PARAM_set1_host(param, SG_TLS_HUB, 0) != 1 ||
            SSL_CTX_set_alpn_protos(sc, tls_alpn_wire, TLS_ALPN_WIRE_LEN) != 0) {
            tls_ossl_msg(detail, sizeof(detail));
            rc = sg_err_set(err, SG_ENOMEM, "[tls] cannot set host name or ALPN: %s", detail);
            goto free_ssl_ctx;
        }
    }

    if (cert_file != NULL && (rc = ctx_load_identity(sc, cert_file, key_file, err)) != 0)
        goto free_ssl_ctx;
    if (is_server && (rc = ctx_add_ca_chain(sc, ca_file, err)) != 0)
        goto free_ssl_ctx;
    return ctx_wrap(out, sc, is_server, NULL, err);

free_ssl_ctx:
    SSL_CTX_free(sc);
    ERR_clear_error();
    return rc;
}

/* Fails with SG_EINVAL unless pin is SG_CA_PIN_LEN lowercase hex characters. */
static int pin_check(const char *pin, sg_err *err)
{
    char shown[SG_CA_PIN_LEN + 8];
    size_t len;

    if (pin == NULL || pin[0] == '\0')
        return sg_err_set(err, SG_EINVAL,
                          "[tls] invite pin: missing (the SHA-256 of the coalition CA's public "
                          "key, %d lowercase hex characters)",
                          SG_CA_PIN_LEN);
    len = strlen(pin);
    printable(shown, sizeof(shown), (const unsigned char *)pin, len);
    if (len != SG_CA_PIN_LEN)
        return sg_err_set(err, SG_EINVAL,
                          "[tls] invite pin '%s%s': %zu characters, expected %d lowercase hex "
                          "(the SHA-256 of the coalition CA's public key)",
                          shown, len + 1 > sizeof(shown) ? "..." : "", len, SG_CA_PIN_LEN);
    for (size_t i = 0; i < len; i++)
        if (!((pin[i] >= '0' && pin[i] <= '9') || (pin[i] >= 'a' && pin[i] <= 'f')))
            return sg_err_set(err, SG_EINVAL,
                              "[tls] invite pin '%s': character %zu is not lowercase hex "
                              "(expected the SHA-256 of the coalition CA's public key)",
                              shown, i + 1);
    return 0;
}

int sg_tls_ctx_new_join(sg_tls_ctx **out, const char *pin_hex, sg_err *err)
{
    SSL_CTX *sc = NULL;
    char detail[256];
    int rc;

    *out = NULL;
    if ((rc = pin_check(pin_hex, err)) != 0)
        return rc;
    if ((rc = ctx_base(&sc, 0, err)) != 0)
        return rc;
    /* No CA file and no default paths: the trust store stays empty, and tls_join_verify_cb
     * verifies the hub with the pinned CA instead of X509_verify_cert over this store. */
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(sc, tls_join_verify_cb, NULL);
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(sc, tls_alpn_join_wire, TLS_ALPN_JOIN_WIRE_LEN) != 0) {
        tls_ossl_msg(detail, sizeof(detail));
        SSL_CTX_free(sc);
        return sg_err_set(err, SG_ENOMEM, "[tls] cannot set ALPN: %s", detail);
    }
    return ctx_wrap(out, sc, 0, pin_hex, err);
}

int sg_tls_ctx_new_https(sg_tls_ctx **out, const char *cert_file, const char *key_file, sg_err *err)
{
    SSL_CTX *sc = NULL;
    char detail[256];
    int rc;

    *out = NULL;
    if (cert_file == NULL || cert_file[0] == '\0' || key_file == NULL || key_file[0] == '\0')
        return sg_err_set(err, SG_EINVAL,
                          "[tls] %s: missing: HTTPS needs the hub's certificate and its key",
                          cert_file == NULL || cert_file[0] == '\0' ? "cert" : "key");
    if ((rc = ctx_base(&sc, 1, err)) != 0)
        return rc;
    /* Browsers and curl: TLS 1.2 too, with AEAD suites only and no renegotiation (which, with
     * TLS 1.2, would let a client make the server compute and would make writes want reads). */
    if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(sc, TLS_HTTPS_CIPHERS_12) != 1) {
        tls_ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ETLS, "[tls] cannot allow TLS 1.2 for HTTPS: %s", detail);
        goto free_ssl_ctx;
    }
    SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* No client certificate: the API authenticates with tokens. SSL_VERIFY_NONE on a server
     * sends no CertificateRequest. */
    SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_select_cb(sc, tls_alpn_https_cb, NULL);
    if ((rc = ctx_load_identity(sc, cert_file, key_file, err)) != 0)
        goto free_ssl_ctx;
    rc = ctx_wrap(out, sc, 1, NULL, err);
    if (rc == 0)
        (*out)->https = 1;
    return rc;

free_ssl_ctx:
    SSL_CTX_free(sc);
    ERR_clear_error();
    return rc;
}

void sg_tls_ctx_free(sg_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

/* -------------------------------------------------------------------------------------------
 * Engines
 */

int sg_tls_new(sg_tls **out, sg_tls_ctx *ctx, sg_err *err)
{
    sg_tls *t;
    BIO *rbio = NULL, *wbio = NULL;
    char detail[256];

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return sg_err_set(err, SG_ENOMEM, "TLS: out of memory");
    t->is_server = ctx->is_server;
    t->join_client = ctx->join;
    t->https = ctx->https;
    memcpy(t->pin, ctx->pin, sizeof(t->pin));
    t->state = TLS_HANDSHAKE;
    t->verify_err = X509_V_OK;
    t->alert_recv = -1;
    t->peer_not_after = -1;

    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl_ctx);
    if (t->ssl == NULL)
        goto fail_openssl;
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (rbio == NULL || wbio == NULL)
        goto free_bios;
    /* SSL_set_bio takes ownership of both. An empty rbio means "retry" (WANT_READ) until
     * sg_tls_feed_eof(). */
    SSL_set_bio(t->ssl, rbio, wbio);
    t->rbio = rbio;
    t->wbio = wbio;
    SSL_set_app_data(t->ssl, t);
    if (t->is_server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    *out = t;
    return 0;

free_bios:
    BIO_free(rbio);
    BIO_free(wbio);
fail_openssl:
    tls_ossl_msg(detail, sizeof(detail));
    SSL_free(t->ssl);
    free(t);
    return sg_err_set(err, SG_ENOMEM, "TLS: cannot make a connection: %s", detail);
}

void sg_tls_free(sg_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    X509_free(t->pinned);
    free(t);
}

int sg_tls_feed(sg_tls *t, const void *data, size_t len)
{
    const char *p = data;
    if (t->eof)
        return SG_EINVAL;
    while (len > 0) {
        size_t w = 0;
        if (BIO_write_ex(t->rbio, p, len, &w) != 1 || w == 0) {
            ERR_clear_error();
            return SG_ENOMEM;
        }
        p += w;
        len -= w;
    }
    return 0;
}

void sg_tls_feed_eof(sg_tls *t)
{
    t->eof = 1;
    BIO_set_mem_eof_return(t->rbio, 0);
}

int sg_tls_handshake(sg_tls *t, sg_err *err)
{
    int ret;
    switch (t->state) {
    case TLS_FAILED:
        return tls_failed(t, err);
    case TLS_OPEN:
    case TLS_PEER_CLOSED:
        return 1;
    default:
        break;
    }
    ERR_clear_error();
    ret = SSL_do_handshake(t->ssl);
    if (ret == 1)
        return tls_established(t, err);
    return tls_error(t, ret, err);
}

int sg_tls_read(sg_tls *t, void *buf, size_t cap, size_t *out_n, sg_err *err)
{
    size_t n = 0;
    *out_n = 0;
    switch (t->state) {
    case TLS_FAILED:
        return tls_failed(t, err);
    case TLS_HANDSHAKE:
        return sg_err_set(err, SG_EINVAL, "TLS: read before the handshake completed");
    case TLS_PEER_CLOSED:
        return sg_err_set(err, SG_ECLOSED, "the peer closed the connection (close_notify)");
    default:
        break;
    }
    if (cap == 0)
        return sg_err_set(err, SG_EINVAL, "TLS: read into an empty buffer");
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, cap, &n) == 1) {
        *out_n = n;
        return 0;
    }
    return tls_error(t, 0, err);
}

int sg_tls_write(sg_tls *t, const void *data, size_t len, sg_err *err)
{
    const char *p = data;
    switch (t->state) {
    case TLS_FAILED:
        return tls_failed(t, err);
    case TLS_HANDSHAKE:
        return sg_err_set(err, SG_EINVAL, "TLS: write before the handshake completed");
    default:
        break;
    }
    if (t->sent_close)
        return sg_err_set(err, SG_ECLOSED, "TLS: write after this side's close_notify");
    while (len > 0) {
        size_t w = 0;
        int rc;
        ERR_clear_error();
        if (SSL_write_ex(t->ssl, p, len, &w) != 1) {
            rc = tls_error(t, 0, err);
            if (rc == 0) /* cannot happen with memory BIOs and TLS 1.3 */
                rc = tls_fail(t, err, SG_ETLS, "TLS: write wants to read");
            return rc;
        }
        p += w;
        len -= w;
    }
    return 0;
}

int sg_tls_shutdown(sg_tls *t)
{
    if ((t->state != TLS_OPEN && t->state != TLS_PEER_CLOSED) || t->sent_close)
        return 0;
    t->sent_close = 1;
    ERR_clear_error();
    /* 0 (sent, the peer's not yet seen) and 1 (both seen) are both fine; with memory BIOs a
     * negative result can only be an internal error, which the close makes moot. */
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
    return 0;
}

size_t sg_tls_pending(const sg_tls *t)
{
    return BIO_ctrl_pending(t->wbio);
}

int sg_tls_take(sg_tls *t, char **out, size_t *out_len)
{
    size_t n = BIO_ctrl_pending(t->wbio), got = 0;
    char *buf;

    *out = NULL;
    *out_len = 0;
    if (n == 0)
        return 0;
    buf = malloc(n);
    if (buf == NULL)
        return SG_ENOMEM;
    while (got < n) {
        size_t r = 0;
        if (BIO_read_ex(t->wbio, buf + got, n - got, &r) != 1 || r == 0)
            break;
        got += r;
    }
    assert(got == n);
    *out = buf;
    *out_len = got;
    return 0;
}

const char *sg_tls_alpn(const sg_tls *t)
{
    return t->alpn;
}

int sg_tls_is_join(const sg_tls *t)
{
    return t->join;
}

const char *sg_tls_version(const sg_tls *t)
{
    if (t->state != TLS_OPEN && t->state != TLS_PEER_CLOSED)
        return "";
    return SSL_get_version(t->ssl);
}

int sg_tls_pinned_ca_pem(const sg_tls *t, char **out, sg_err *err)
{
    BIO *b = NULL;
    char *pem = NULL;
    const char *data;
    long n;

    *out = NULL;
    /* join is set only once the handshake completed, and pinned with it on the client. */
    if (t->is_server || !t->join || t->pinned == NULL)
        return sg_err_set(err, SG_EINVAL,
                          "TLS: a pinned CA exists only on an enrollment client, after the "
                          "handshake");
    ERR_clear_error();
    b = BIO_new(BIO_s_mem());
    if (b == NULL || PEM_write_bio_X509(b, t->pinned) != 1 ||
        (n = BIO_get_mem_data(b, &data)) <= 0 || (pem = malloc((size_t)n + 1)) == NULL) {
        BIO_free(b);
        ERR_clear_error();
        return sg_err_set(err, SG_ENOMEM, "TLS: out of memory writing the pinned CA as PEM");
    }
    memcpy(pem, data, (size_t)n);
    pem[n] = '\0';
    BIO_free(b);
    *out = pem;
    return 0;
}

int sg_tls_peer_region(sg_tls *t, char *out, size_t cap, sg_err *err)
{
    X509 *peer;
    GENERAL_NAMES *names = NULL;
    const unsigned char *dns = NULL;
    size_t dns_len = 0;
    int crit = -1, ndns = 0, rc;
    char shown[SG_REGION_MAX + 8];

    if (cap > 0)
        out[0] = '\0';
    if (!t->is_server || (t->state != TLS_OPEN && t->state != TLS_PEER_CLOSED))
        return sg_err_set(err, SG_EINVAL,
                          "TLS: the peer's region is known to the server only, "
                          "after the handshake");
    if (t->join)
        return sg_err_set(err, SG_EAUTH, "enrollment connection: no certificate");
    if (t->https)
        return sg_err_set(err, SG_EINVAL, "TLS: an HTTPS connection speaks for no region");
    peer = SSL_get0_peer_certificate(t->ssl);
    if (peer == NULL)
        return sg_err_set(err, SG_EAUTH, "peer did not present a certificate");
    names = X509_get_ext_d2i(peer, NID_subject_alt_name, &crit, NULL);
    if (names == NULL) {
        rc = sg_err_set(err, SG_EAUTH,
                        crit == -2 ? "client certificate has more than one subjectAltName "
                                     "extension"
                                   : "client certificate has no subjectAltName naming its region");
        goto free_names;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_DNS)
            continue;
        if (ndns++ == 0) {
            dns = ASN1_STRING_get0_data(gn->d.dNSName);
            dns_len = (size_t)ASN1_STRING_length(gn->d.dNSName);
        }
    }
    if (ndns != 1) {
        rc = sg_err_set(err, SG_EAUTH,
                        "client certificate has %d DNS subjectAltNames; a region's certificate "
                        "carries exactly one, its region id",
                        ndns);
        goto free_names;
    }
    printable(shown, sizeof(shown), dns, dns_len);
    if (!sg_region_id_valid((const char *)dns, dns_len)) {
        rc = sg_err_set(err, SG_EAUTH,
                        "client certificate's DNS name '%s%s' is not a region id (1..%d of "
                        "[a-z0-9-], not starting with '-')",
                        shown, dns_len > SG_REGION_MAX ? "..." : "", SG_REGION_MAX);
        goto free_names;
    }
    if (dns_len == strlen(SG_TLS_HUB) && memcmp(dns, SG_TLS_HUB, dns_len) == 0) {
        rc = sg_err_set(err, SG_EAUTH,
                        "client certificate names '" SG_TLS_HUB "'; only regions connect as "
                        "clients");
        goto free_names;
    }
    if (dns_len + 1 > cap) {
        rc = sg_err_set(err, SG_EINVAL, "TLS: region buffer of %zu bytes is too small", cap);
        goto free_names;
    }
    memcpy(out, dns, dns_len);
    out[dns_len] = '\0';
    rc = 0;
free_names:
    GENERAL_NAMES_free(names);
    return rc;
}

const char *sg_tls_peer_subject(const sg_tls *t)
{
    return t->peer_subject;
}

int64_t sg_tls_peer_not_after(const sg_tls *t)
{
    return t->peer_not_after;
}
