/*
 * fuzz_token.c - libFuzzer target for the join token parser (server/enroll.c, sg_token_parse):
 * the line an operator pastes into `sangamd join`, sangam1.REGION.SECRET.PIN.HOST:PORT.
 *
 * Besides what the sanitizers catch, these properties are checked and abort() when broken, so
 * the fuzzer reports the input (abort is this harness's; sangamd never aborts on a token):
 *   1. a refusal is SG_EFORMAT, with the same code in err and a message that starts with
 *      "join token: " (enroll.h: the message names the part that is wrong);
 *   2. a token that parses holds what enroll.h promises: a region id that is not "hub", a secret
 *      of SG_TOKEN_SECRET_LEN and a pin of SG_CA_PIN_LEN lowercase hex characters, a hub address
 *      with a ':' and only host:port characters, every field terminated inside its array;
 *   3. round trip: sg_token_format writes back exactly the input without its surrounding white
 *      space (so nothing was dropped or cut), and that text parses to the same token;
 *   4. the parser reads only the len bytes it is given: the same bytes followed by a NUL, or
 *      by more bytes, within the same len, give the same answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enroll.h"

#define FUZZ_NAME "fuzz_token.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* ASan's quarantine as in fuzz_harness.h: 64 MiB keeps a 60 s run well under tests/run.sh's
 * 512 MiB rss limit and still catches the use of recently freed memory. */
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=64";
}

/* Aborts when a property does not hold, saying which, so a crash report names it. */
static void require_at(int ok, const char *what, int line)
{
    if (!ok) {
        fprintf(stderr, "%s:%d: property failed: %s\n", FUZZ_NAME, line, what);
        abort();
    }
}
#define require(cond) require_at((cond) != 0, #cond, __LINE__)

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int token_eq(const sg_token *a, const sg_token *b)
{
    return strcmp(a->region, b->region) == 0 && strcmp(a->secret, b->secret) == 0 &&
           strcmp(a->pin, b->pin) == 0 && strcmp(a->hub, b->hub) == 0;
}

/* Property 2. */
static void check_token(const sg_token *t)
{
    size_t hub_len;

    require(memchr(t->region, '\0', sizeof(t->region)) &&
            memchr(t->secret, '\0', sizeof(t->secret)));
    require(memchr(t->pin, '\0', sizeof(t->pin)) && memchr(t->hub, '\0', sizeof(t->hub)));
    require(sg_region_id_valid(t->region, strlen(t->region)) && strcmp(t->region, "hub") != 0);
    require(strlen(t->secret) == SG_TOKEN_SECRET_LEN &&
            sg_is_lowerhex(t->secret, SG_TOKEN_SECRET_LEN));
    require(strlen(t->pin) == SG_CA_PIN_LEN && sg_is_lowerhex(t->pin, SG_CA_PIN_LEN));
    hub_len = strlen(t->hub);
    require(hub_len > 0 && strchr(t->hub, ':') != NULL);
    require(strspn(t->hub, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
            hub_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char text[SG_TOKEN_MAX + 1];
    sg_token t, t2;
    sg_err err = {0}, err2 = {0};
    size_t a = 0, b = size;
    char *copy;
    int rc, rc2;

    rc = sg_token_parse(&t, s, size, &err);

    /* Property 4: the same bytes in a bigger buffer, followed by a NUL and junk. */
    copy = malloc(size + 2);
    require(copy != NULL);
    if (size > 0)
        memcpy(copy, data, size);
    copy[size] = '\0';
    copy[size + 1] = '.';
    rc2 = sg_token_parse(&t2, copy, size, &err2);
    require(rc2 == rc && strcmp(err.msg, err2.msg) == 0);
    require(rc != 0 || token_eq(&t, &t2));
    free(copy);

    if (rc != 0) { /* property 1 */
        require(rc == SG_EFORMAT && err.code == rc);
        require(strncmp(err.msg, "join token: ", 12) == 0);
        return 0;
    }
    check_token(&t);

    /* Property 3. */
    while (b > a && is_space(data[b - 1]))
        b--;
    while (a < b && is_space(data[a]))
        a++;
    require(sg_token_format(text, sizeof(text), &t) == 0);
    require(strlen(text) == b - a && memcmp(text, data + a, b - a) == 0);
    require(sg_token_parse(&t2, text, strlen(text), &err2) == 0);
    require(token_eq(&t, &t2));
    return 0;
}
