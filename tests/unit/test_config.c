/*
 * test_config.c - sangamd's INI config (server/config.c): a good file loads with paths made
 * absolute; each kind of mistake is refused with one line naming file, line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char dir[64];

static const char *write_cfg(const char *text)
{
    static char path[128];
    FILE *f;
    snprintf(path, sizeof(path), "%s/node.ini", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sg_cfg_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[128];
    (void)state;
    snprintf(path, sizeof(path), "%s/node.ini", dir);
    unlink(path);
    return rmdir(dir);
}

static void test_good(void **state)
{
    sg_config cfg;
    sg_err err = {0};
    char want[256];
    (void)state;
    const char *p = write_cfg("; a region\n[node]\nrole = region\nid = bundelkhand\n"
                              "db = data/b.db\n[api]\nsocket = /run/x.sock\n"
                              "listen = 127.0.0.1:7480\n[log]\nlevel = debug\n");
    assert_int_equal(sg_config_load(&cfg, p, &err), 0);
    assert_string_equal(cfg.id, "bundelkhand");
    assert_string_equal(cfg.role, "region");
    snprintf(want, sizeof(want), "%s/data/b.db", dir);
    assert_string_equal(cfg.db, want);
    assert_string_equal(cfg.api_socket, "/run/x.sock");
    assert_string_equal(cfg.api_listen, "127.0.0.1:7480");
    assert_string_equal(cfg.log_level, "debug");
}

/* Each bad file must fail with SG_ECONFIG and a message containing every fragment given. */
static void expect_bad(const char *text, const char *frag1, const char *frag2)
{
    sg_config cfg;
    sg_err err = {0};
    const char *p = write_cfg(text);
    assert_int_equal(sg_config_load(&cfg, p, &err), SG_ECONFIG);
    if (strstr(err.msg, p) == NULL || strstr(err.msg, frag1) == NULL ||
        (frag2 && strstr(err.msg, frag2) == NULL))
        fail_msg("message '%s' lacks '%s' / '%s'", err.msg, frag1, frag2 ? frag2 : "");
    assert_null(strchr(err.msg, '\n'));
}

static void test_bad(void **state)
{
    (void)state;
    expect_bad("[node]\nrole = region\nid = Bundel khand\ndb = b.db\n[api]\nsocket = s\n",
               ":3:", "[node] id");
    expect_bad("[node]\nrole = regoin\nid = b\ndb = b.db\n[api]\nsocket = s\n",
               ":2:", "[node] role");
    expect_bad("[node]\nrole = region\nid = b\n[api]\nsocket = s\n", "[node] db", "missing");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[api]\nsocket = s\ncolour = red\n",
               ":7:", "colour");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[ap]\nsocket = s\n", "[ap]",
               "unknown section");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[api]\nlisten = localhost\n",
               ":6:", "[api] listen");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[api]\nlisten = 1.2.3.4:99999\n",
               ":6:", "[api] listen");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n", "[api] socket", "missing");
    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[api]\nsocket = s\n[log]\n"
               "level = loud\n",
               ":8:", "[log] level");
    expect_bad("[node]\nrole = region\nthis is not ini\n", ":3:", NULL);
    /* An [api] listen value longer than its field is refused, never cut short: cut,
     * "host:7480" would read as "host:74", another port (found by fuzz_config). */
    {
        sg_config cfg;
        sg_err err = {0};
        char text[256], host[80];

        memset(host, 'a', 58);
        host[58] = '\0';
        snprintf(text, sizeof(text),
                 "[node]\nrole = region\nid = b\ndb = b.db\n[api]\nlisten = %s:7480\n",
                 host); /* 63 bytes: the most the field holds */
        assert_int_equal(sg_config_load(&cfg, write_cfg(text), &err), 0);
        assert_int_equal(strlen(cfg.api_listen), 63);
        assert_memory_equal(cfg.api_listen + 58, ":7480", 6);
        memset(host, 'a', 60);
        host[60] = '\0';
        snprintf(text, sizeof(text),
                 "[node]\nrole = region\nid = b\ndb = b.db\n[api]\nlisten = %s:7480\n", host);
        expect_bad(text, ":6:", "[api] listen");
    }
    /* A NUL byte, which would cut "bun\0lkhand" to "bun" for inih, refuses the file. */
    {
        static const char nul[] = "[node]\nrole = region\nid = bun\0lkhand\ndb = b.db\n[api]\n"
                                  "socket = s\n";
        sg_config cfg;
        sg_err err = {0};
        const char *p = write_cfg("");
        FILE *f = fopen(p, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(nul, 1, sizeof(nul) - 1, f), sizeof(nul) - 1);
        fclose(f);
        assert_int_equal(sg_config_load(&cfg, p, &err), SG_ECONFIG);
        assert_non_null(strstr(err.msg, ":3: a NUL byte"));
    }
}

/* [api] https: the hub serves its API over HTTPS with its own certificate; a region may not. */
static void test_https(void **state)
{
    sg_config cfg;
    sg_err err = {0};
    char want[256];
    const char *hub = "[node]\nrole = hub\nid = hub\ndb = hub.db\n[api]\nsocket = hub.sock\n"
                      "https = 127.0.0.1:7443\n[listen]\naddress = 0.0.0.0:7400\n[tls]\n"
                      "ca = pki/ca.pem\ncert = pki/hub.pem\nkey = pki/hub.key\n";
    (void)state;
    assert_int_equal(sg_config_load(&cfg, write_cfg(hub), &err), 0);
    assert_string_equal(cfg.api_https, "127.0.0.1:7443");
    assert_string_equal(cfg.api_listen, "");
    snprintf(want, sizeof(want), "%s/pki/hub.pem", dir);
    assert_string_equal(cfg.tls_cert, want);
    /* IPv6, and HTTPS as the only network listener with no socket. */
    assert_int_equal(sg_config_load(&cfg,
                                    write_cfg("[node]\nrole = hub\nid = hub\ndb = hub.db\n[api]\n"
                                              "https = [::1]:7443\n[listen]\naddress = "
                                              "0.0.0.0:7400\n[tls]\nca = c\ncert = h\nkey = k\n"),
                                    &err),
                     0);
    assert_string_equal(cfg.api_https, "[::1]:7443");
    /* Absent: no HTTPS. */
    assert_int_equal(sg_config_load(&cfg,
                                    write_cfg("[node]\nrole = region\nid = b\ndb = b.db\n[api]\n"
                                              "socket = s\n"),
                                    &err),
                     0);
    assert_string_equal(cfg.api_https, "");

    expect_bad("[node]\nrole = region\nid = b\ndb = b.db\n[api]\nsocket = s\n"
               "https = 127.0.0.1:7443\n",
               "[api] https", "only the hub");
    expect_bad("[node]\nrole = hub\nid = hub\ndb = hub.db\n[api]\nsocket = s\n"
               "https = 7443\n",
               ":7:", "[api] https: '7443' is not host:port");
    expect_bad("[node]\nrole = hub\nid = hub\ndb = hub.db\n[api]\nsocket = s\n"
               "https = 127.0.0.1:0\n",
               ":7:", "[api] https");
    /* The hub's certificate is what HTTPS serves: a hub without [tls] is refused as ever. */
    expect_bad("[node]\nrole = hub\nid = hub\ndb = hub.db\n[api]\nsocket = s\n"
               "https = 127.0.0.1:7443\n[listen]\naddress = 0.0.0.0:7400\n",
               "[tls] ca", "missing");
}

static void test_missing_file(void **state)
{
    sg_config cfg;
    sg_err err = {0};
    (void)state;
    assert_int_equal(sg_config_load(&cfg, "/nonexistent/sangam.ini", &err), SG_ECONFIG);
    assert_non_null(strstr(err.msg, "/nonexistent/sangam.ini"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_https),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
