/*
 * test_ca.c - server/ca.c: the certificates the hub issues say exactly what the profile allows,
 * verify against the CA, work with the TLS engine's policy, and files are written safely.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "tls.h"

static char dir[64];

static const char *path(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sangam-test-ca-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* 1 if cert verifies against ca for purpose (X509_PURPOSE_SSL_CLIENT/SERVER). */
static int verifies(X509 *ca, X509 *cert, int purpose)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok;
    assert_non_null(st);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(st, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, st, cert, NULL), 1);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return ok;
}

/* The DNS names of cert's subjectAltName, comma-separated, into out. */
static void dns_names(X509 *cert, char *out, size_t cap)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    out[0] = '\0';
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        size_t n = strlen(out);
        if (g->type == GEN_DNS)
            snprintf(out + n, cap - n, "%s%s", n ? "," : "",
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        else if (g->type == GEN_IPADD)
            snprintf(out + n, cap - n, "%sIP", n ? "," : "");
    }
    GENERAL_NAMES_free(gens);
}

static void region_certificate_follows_the_profile(void **state)
{
    sg_ca *ca = NULL;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    sg_err err = {0};
    char names[256];
    (void)state;

    assert_int_equal(sg_ca_create(&ca, "Test coalition CA", 365, &err), 0);
    assert_int_equal(X509_check_ca(sg_ca_cert(ca)), 1);
    assert_int_equal(sg_key_new(&k, &err), 0);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "chitrakoot", 90, &err), 0);
    assert_true(verifies(sg_ca_cert(ca), x, X509_PURPOSE_SSL_CLIENT));
    assert_false(verifies(sg_ca_cert(ca), x, X509_PURPOSE_SSL_SERVER));
    assert_int_equal(X509_check_ca(x), 0); /* no CA rights */
    dns_names(x, names, sizeof(names));
    assert_string_equal(names, "chitrakoot");
    /* valid now, for about 90 days */
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
    {
        int days, secs;
        assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
        assert_true(days == 89 || days == 90);
    }
    X509_free(x);

    /* The hub's certificate: serverAuth with DNS:hub and the extra names. */
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_HUB, "hub.example.org,127.0.0.1", 90, &err), 0);
    assert_true(verifies(sg_ca_cert(ca), x, X509_PURPOSE_SSL_SERVER));
    dns_names(x, names, sizeof(names));
    assert_string_equal(names, "hub,hub.example.org,IP");
    X509_free(x);

    /* Names the profile refuses. */
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "hub", 90, &err), SG_EINVAL);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "Bad_Name", 90, &err), SG_EINVAL);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "", 90, &err), SG_EINVAL);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_HUB, "a b", 90, &err), SG_EINVAL);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "awadh", 0, &err), SG_EINVAL);
    assert_null(x);
    EVP_PKEY_free(k);
    sg_ca_free(ca);
}

static void files_round_trip_and_keys_are_private(void **state)
{
    sg_ca *ca = NULL, *again = NULL, *other = NULL;
    sg_err err = {0};
    struct stat st;
    char pin1[SG_CA_PIN_LEN + 1], pin2[SG_CA_PIN_LEN + 1], cmd[512], line[128] = "";
    FILE *p;
    (void)state;

    assert_int_equal(sg_ca_create(&ca, "Test CA", 365, &err), 0);
    assert_int_equal(sg_ca_save(ca, path("ca.pem"), path("ca.key"), &err), 0);
    assert_int_equal(stat(path("ca.key"), &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    assert_int_equal(sg_ca_load(&again, path("ca.pem"), path("ca.key"), &err), 0);
    assert_int_equal(X509_cmp(sg_ca_cert(ca), sg_ca_cert(again)), 0);

    /* The pin is the SHA-256 of the DER public key, as openssl computes it. */
    assert_int_equal(sg_cert_pin(pin1, sg_ca_cert(ca), &err), 0);
    assert_int_equal(sg_cert_pin(pin2, sg_ca_cert(again), &err), 0);
    assert_string_equal(pin1, pin2);
    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in %s -noout -pubkey | openssl pkey -pubin -outform DER | "
             "openssl dgst -sha256 -r",
             path("ca.pem"));
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    assert_memory_equal(line, pin1, SG_CA_PIN_LEN);

    /* A key from another CA, a missing file, a leaf certificate as a CA: refused by name. */
    assert_int_equal(sg_ca_create(&other, "Other CA", 365, &err), 0);
    assert_int_equal(sg_ca_save(other, path("other.pem"), path("other.key"), &err), 0);
    sg_ca_free(other);
    assert_int_equal(sg_ca_load(&other, path("ca.pem"), path("other.key"), &err), SG_ECONFIG);
    assert_null(other);
    assert_non_null(strstr(err.msg, "does not match"));
    assert_int_equal(sg_ca_load(&other, path("missing.pem"), path("ca.key"), &err), SG_ECONFIG);
    assert_non_null(strstr(err.msg, "missing.pem"));
    sg_ca_free(again);
    sg_ca_free(ca);
}

/* Certificates issued here pass the TLS engine's own policy (tls.c): a region context and a hub
 * context can be made from them. */
static void issued_certificates_load_in_tls_contexts(void **state)
{
    sg_ca *ca = NULL;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    sg_tls_ctx *ctx = NULL;
    sg_err err = {0};
    (void)state;

    assert_int_equal(sg_ca_create(&ca, "Test CA", 365, &err), 0);
    assert_int_equal(sg_ca_save(ca, path("ca2.pem"), path("ca2.key"), &err), 0);
    assert_int_equal(sg_key_new(&k, &err), 0);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_REGION, "awadh", 30, &err), 0);
    assert_int_equal(sg_pem_write_cert(path("awadh.pem"), x, &err), 0);
    assert_int_equal(sg_pem_write_key(path("awadh.key"), k, &err), 0);
    assert_int_equal(
        sg_tls_ctx_new(&ctx, 0, path("ca2.pem"), path("awadh.pem"), path("awadh.key"), &err), 0);
    sg_tls_ctx_free(ctx);
    X509_free(x);
    assert_int_equal(sg_ca_issue(&x, ca, k, SG_CERT_HUB, NULL, 30, &err), 0);
    assert_int_equal(sg_pem_write_cert(path("hub.pem"), x, &err), 0);
    assert_int_equal(
        sg_tls_ctx_new(&ctx, 1, path("ca2.pem"), path("hub.pem"), path("awadh.key"), &err), 0);
    sg_tls_ctx_free(ctx);
    X509_free(x);
    EVP_PKEY_free(k);
    sg_ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_certificate_follows_the_profile),
        cmocka_unit_test(files_round_trip_and_keys_are_private),
        cmocka_unit_test(issued_certificates_load_in_tls_contexts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
