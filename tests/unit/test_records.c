/*
 * test_records.c - the record descriptor table (proto/records.c) and single-value checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sangam/records.h"

static void test_dates(void **state)
{
    (void)state;
    assert_true(sg_date_valid("2024-02-29", 10));
    assert_false(sg_date_valid("2023-02-29", 10));
    assert_false(sg_date_valid("2024-13-01", 10));
    assert_false(sg_date_valid("2024-04-31", 10));
    assert_false(sg_date_valid("2024-4-01", 9));
    assert_false(sg_date_valid("2024/04/01", 10));
    assert_false(sg_date_valid("2024-04-0x", 10));
    assert_true(sg_date_valid("2000-02-29", 10));
    assert_false(sg_date_valid("1900-02-29", 10));
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(sg_region_id_valid("bundelkhand", 11));
    assert_true(sg_region_id_valid("mirzapur-2", 10));
    assert_false(sg_region_id_valid("Mirzapur", 8));
    assert_false(sg_region_id_valid("-x", 2));
    assert_false(sg_region_id_valid("a b", 3));
    assert_false(sg_region_id_valid("", 0));
    char long_id[80];
    memset(long_id, 'a', sizeof(long_id));
    assert_true(sg_region_id_valid(long_id, 63));
    assert_false(sg_region_id_valid(long_id, 64));
    assert_true(sg_record_id_valid("01JD0000000000000000000000", 26));
    assert_false(sg_record_id_valid("x'; DROP TABLE members", 22));
    assert_false(sg_record_id_valid("", 0));
}

static void test_text_checks(void **state)
{
    const sg_rectype *m = sg_rectype_find("members", -1);
    const sg_field *name = sg_rectype_field(m, "name", -1);
    const sg_field *phone = sg_rectype_field(m, "phone", -1);
    const sg_field *kind = sg_rectype_field(m, "kind", -1);
    const sg_field *by = sg_rectype_field(m, "birth_year", -1);
    sg_err err = {0};
    (void)state;

    assert_int_equal(sg_field_check_text(name, "सीता देवी", strlen("सीता देवी"), &err), 0);
    assert_int_equal(sg_field_check_text(name, "bad\xff", 4, &err), SG_EVALIDATE);
    assert_non_null(strstr(err.msg, "name"));
    assert_int_equal(sg_field_check_text(name, "a\x01b", 3, &err), SG_EVALIDATE);
    assert_int_equal(sg_field_check_text(name, "\xe0\xa4", 2, &err), SG_EVALIDATE); /* cut */
    assert_int_equal(sg_field_check_text(name, "\xc0\xaf", 2, &err), SG_EVALIDATE); /* overlong */
    assert_int_equal(sg_field_check_text(name, "", 0, &err), SG_EVALIDATE);
    assert_int_equal(sg_field_check_text(phone, "+91 (522) 123-4567", 18, &err), 0);
    assert_int_equal(sg_field_check_text(phone, "call me", 7, &err), SG_EVALIDATE);
    assert_int_equal(sg_field_check_text(kind, "staff", 5, &err), 0);
    assert_int_equal(sg_field_check_text(kind, "Staff", 5, &err), SG_EVALIDATE);
    assert_non_null(strstr(err.msg, "entrepreneur|representative|staff"));
    assert_int_equal(sg_field_check_text(by, "1990", 4, &err), SG_ETYPE);
    assert_int_equal(sg_field_check_int(by, 1990, &err), 0);
    assert_int_equal(sg_field_check_int(by, 1899, &err), SG_EVALIDATE);
    assert_int_equal(sg_field_check_int(name, 5, &err), SG_ETYPE);
    char big[500];
    memset(big, 'a', sizeof(big));
    assert_int_equal(sg_field_check_text(name, big, 400, &err), 0);
    assert_int_equal(sg_field_check_text(name, big, 401, &err), SG_EVALIDATE);
}

/* The table itself: unique names and flags per type, references to known tables, enums with
 * values, and every type findable by name. */
static void test_table_consistent(void **state)
{
    (void)state;
    for (size_t i = 0; sg_rectypes[i] != NULL; i++) {
        const sg_rectype *rt = sg_rectypes[i];
        assert_ptr_equal(sg_rectype_find(rt->table, -1), rt);
        for (size_t j = 0; j < rt->nfields; j++) {
            const sg_field *f = &rt->fields[j];
            assert_ptr_equal(sg_rectype_field(rt, f->name, -1), f);
            for (size_t k = j + 1; k < rt->nfields; k++) {
                assert_string_not_equal(f->name, rt->fields[k].name);
                assert_string_not_equal(f->flag, rt->fields[k].flag);
            }
            if (f->type == SG_FT_REF) {
                const sg_rectype *target = sg_rectype_find(f->ref, -1);
                assert_non_null(target);
                /* Referenced tables come first, so replaying rows in table order works. */
                int before = 0;
                for (size_t k = 0; k < i; k++)
                    before |= sg_rectypes[k] == target;
                assert_true(before);
            }
            if (f->type == SG_FT_ENUM)
                assert_non_null(f->values[0]);
            if (f->type == SG_FT_TEXT)
                assert_true(f->max > 0);
        }
        if (rt->date_field != NULL)
            assert_int_equal(sg_rectype_field(rt, rt->date_field, -1)->type, SG_FT_DATE);
    }
    assert_null(sg_rectype_find("sqlite_master", -1));
    assert_non_null(sg_rectype_find("membersXX", 7));
}

/* Every error name maps back to its code (ERROR frames carry names), and nothing else does. */
static void test_error_names(void **state)
{
    (void)state;
    for (int code = -1; code >= SG_ECLOSED; code--) {
        const char *name = sg_strerror_name(code);
        assert_string_not_equal(name, "unknown_error");
        assert_int_equal(sg_error_from_name(name, strlen(name)), code);
    }
    assert_int_equal(sg_error_from_name("no_such_code", 12), SG_EINVAL);
    assert_int_equal(sg_error_from_name("not_found", 8), SG_EINVAL); /* a prefix is not a name */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),       cmocka_unit_test(test_ids),
        cmocka_unit_test(test_text_checks), cmocka_unit_test(test_table_consistent),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
