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

#include "sangam/records.h"

/* ALPN wire format: length-prefixed protocol names. */
static const unsigned char tls_alpn_wire[] = "\x08" SG_TLS_ALPN;
#define TLS_ALPN_WIRE_LEN (sizeof(tls_alpn_wire) - 1)

#define TLS_VERIFY_DEPTH 4 /* leaf, CA, and room for an intermediate or two */

struct sg_tls_ctx {
    SSL_CTX *ssl_ctx; /* owned; every SSL made from it holds its own reference */
    int is_server;    /* 1 for the hub's side, 0 for a region's */
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
    SSL *ssl;             /* owned; owns rbio and wbio */
    BIO *rbio;            /* ciphertext from the network, read by OpenSSL */
    BIO *wbio;            /* ciphertext for the network, written by OpenSSL */
    int is_server;        /* copied from the context */
    tls_state state;      /* moved by tls_move() only */
    int eof;              /* sg_tls_feed_eof() was called */
    int sent_close;       /* sg_tls_shutdown() queued close_notify */
    sg_err fail;          /* the error that moved the engine to TLS_FAILED */
    int why_code;         /* code of a refusal decided by our own callback, or 0 */
    char why[256];        /* its message (version or ALPN) */
    int verify_err;       /* first X509_V_ERR_* of the peer's chain, or X509_V_OK */
    int verify_depth;     /* depth in the chain of that error (0 = the peer's own certificate) */
    char verify_date[40]; /* the notBefore/notAfter that made the certificate invalid */
    char verify_subject[160]; /* subject of the certificate that failed */
    int alert_recv;           /* first fatal alert received from the peer, or -1 */
    char alpn[32];            /* negotiated ALPN protocol, "" before the handshake completed */
    char peer_subject[256];   /* the peer certificate's subject (RFC 2253) */
    int64_t peer_not_after;   /* its notAfter as Unix time, -1 before the handshake completed */
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

/* Writes OpenSSL's earliest queued error as text into buf and empties the queue. */
static void ossl_msg(char *buf, size_t cap)
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

/* -------------------------------------------------------------------------------------------
 * OpenSSL callbacks: they record, the failing call explains (see the file comment).
 */

/* Server: refuses, with a message, a ClientHello that does not offer TLS 1.3 or offers no ALPN
 * at all (OpenSSL would otherwise skip the ALPN callback and go on without a protocol). Runs
 * before OpenSSL's own version negotiation, so it can name the version the peer offered. */
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
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Server: selects "sangam/1" or fails the handshake with alert no_application_protocol. */
static int tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                              const unsigned char *in, unsigned int inlen, void *arg)
{
    sg_tls *t = SSL_get_app_data(ssl);
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    char offered[160] = "";
    size_t used = 0;
    (void)arg;

    if (SSL_select_next_proto(&sel, &sellen, tls_alpn_wire, TLS_ALPN_WIRE_LEN, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    /* List what the peer offered, each name made printable, within bounds of in. */
    for (unsigned i = 0; i < inlen && used + 4 < sizeof(offered);) {
        unsigned l = in[i++];
        char name[40];
        if (l > inlen - i)
            break;
        printable(name, sizeof(name), in + i, l);
        used += (size_t)snprintf(offered + used, sizeof(offered) - used, "%s'%s'", used ? ", " : "",
                                 name);
        i += l;
    }
    t->why_code = SG_ETLS;
    snprintf(t->why, sizeof(t->why),
             "no common ALPN protocol (expected " SG_TLS_ALPN ", the peer offered %s)",
             offered[0] ? offered : "nothing");
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
        return tls_fail(t, err, SG_EAUTH, "%s: %s (not signed by the coalition CA?)%s", who, what,
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
                        "the peer refused the protocol version (this side speaks TLS 1.3 only)");
    case SSL_AD_NO_APPLICATION_PROTOCOL:
        return tls_fail(t, err, SG_ETLS,
                        "the peer refused ALPN protocol " SG_TLS_ALPN
                        " (no_application_protocol): is it Sangam of a compatible version?");
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
        return tls_fail(t, err, SG_ETLS,
                        "peer does not speak TLS 1.3; this side speaks TLS 1.3 only");
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return tls_fail(t, err, SG_ETLS, "no common ALPN protocol (expected " SG_TLS_ALPN ")");
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return tls_fail(t, err, SG_ETLS,
                        handshake ? "connection ended during the TLS handshake"
                                  : "connection cut without close_notify");
    case SSL_R_HTTP_REQUEST:
        return tls_fail(t, err, SG_ETLS, "the peer spoke plain HTTP, not TLS");
    default:
        break;
    }
    ossl_msg(detail, sizeof(detail));
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

/* The handshake completed: checks what OpenSSL's policy cannot express, records what the
 * accessors report, and opens the engine. Returns 1 or an error. */
static int tls_established(sg_tls *t, sg_err *err)
{
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    long vr = SSL_get_verify_result(t->ssl);
    struct tm tm;

    if (SSL_version(t->ssl) != TLS1_3_VERSION)
        return tls_fail(t, err, SG_ETLS, "negotiated %s; this side speaks TLS 1.3 only",
                        SSL_get_version(t->ssl));
    if (peer == NULL)
        return tls_fail(t, err, SG_EAUTH, "peer did not present a certificate");
    if (vr != X509_V_OK)
        return tls_fail(t, err, SG_EAUTH, "peer certificate: %s",
                        X509_verify_cert_error_string(vr));
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (alpn_len != TLS_ALPN_WIRE_LEN - 1 || memcmp(alpn, SG_TLS_ALPN, alpn_len) != 0) {
        char chosen[40];
        printable(chosen, sizeof(chosen), alpn, alpn_len);
        return tls_fail(t, err, SG_ETLS, "no common ALPN protocol (expected " SG_TLS_ALPN "%s%s%s)",
                        alpn_len ? ", the peer chose '" : "; the peer chose none", chosen,
                        alpn_len ? "'" : "");
    }
    memcpy(t->alpn, alpn, alpn_len);
    t->alpn[alpn_len] = '\0';
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
        ossl_msg(detail, sizeof(detail));
        return sg_err_set(err, SG_ECONFIG,
                          "[tls] certificate %s: not a usable PEM certificate (%s)", cert_file,
                          detail);
    }
    /* The key is read here rather than with SSL_CTX_use_PrivateKey_file so that a key that does
     * not match gets its own message, and an encrypted key fails instead of prompting. */
    kb = BIO_new_file(key_file, "r");
    if (kb == NULL) {
        ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ECONFIG, "[tls] key %s: cannot open (%s)", key_file, detail);
        goto free_key;
    }
    pkey = PEM_read_bio_PrivateKey(kb, NULL, no_password_cb, NULL);
    if (pkey == NULL) {
        ossl_msg(detail, sizeof(detail));
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

int sg_tls_ctx_new(sg_tls_ctx **out, int is_server, const char *ca_file, const char *cert_file,
                   const char *key_file, sg_err *err)
{
    sg_tls_ctx *c = NULL;
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

    ERR_clear_error();
    sc = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (sc == NULL) {
        ossl_msg(detail, sizeof(detail));
        return sg_err_set(err, SG_ENOMEM, "[tls] cannot make an SSL_CTX: %s", detail);
    }
    if (SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1) {
        ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ETLS, "[tls] cannot limit to TLS 1.3: %s", detail);
        goto free_ssl_ctx;
    }
    /* No resumption: every connection authenticates with certificates. */
    SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(sc, 0);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(sc, no_password_cb);

    /* Trust the coalition CA alone: no SSL_CTX_set_default_verify_paths(). */
    if (SSL_CTX_load_verify_file(sc, ca_file) != 1) {
        ossl_msg(detail, sizeof(detail));
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
        ossl_msg(detail, sizeof(detail));
        rc = sg_err_set(err, SG_ETLS, "[tls] cannot set the certificate purpose: %s", detail);
        goto free_ssl_ctx;
    }
    SSL_CTX_set_info_callback(sc, tls_info_cb);

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
            ossl_msg(detail, sizeof(detail));
            rc = sg_err_set(err, SG_ENOMEM, "[tls] cannot set host name or ALPN: %s", detail);
            goto free_ssl_ctx;
        }
    }

    if (cert_file != NULL && (rc = ctx_load_identity(sc, cert_file, key_file, err)) != 0)
        goto free_ssl_ctx;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = sg_err_set(err, SG_ENOMEM, "[tls] out of memory");
        goto free_ssl_ctx;
    }
    c->ssl_ctx = sc;
    c->is_server = is_server;
    *out = c;
    return 0;

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
    ossl_msg(detail, sizeof(detail));
    SSL_free(t->ssl);
    free(t);
    return sg_err_set(err, SG_ENOMEM, "TLS: cannot make a connection: %s", detail);
}

void sg_tls_free(sg_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
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
