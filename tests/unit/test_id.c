/* test_id.c — resource IDs: shape, prefix rules, validation, and no repeats. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <ward/id.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(id, shape_and_uniqueness)
{
    static char ids[2000][WARD_ID_MAX];
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(ward_id_new("inv", ids[i], WARD_ID_MAX), WARD_ERR_OK);
        cr_assert_eq(strlen(ids[i]), 4 + 22, "%s", ids[i]);
        cr_assert_eq(strncmp(ids[i], "inv_", 4), 0);
        cr_assert(ward_id_valid("inv", ids[i]), "%s", ids[i]);
        cr_assert_not(ward_id_valid("txn", ids[i]));
    }
    qsort(ids, 2000, WARD_ID_MAX, cmp);
    for (int i = 1; i < 2000; i++)
        cr_assert_str_neq(ids[i - 1], ids[i]);
}

Test(id, bad_prefixes_and_invalid_ids)
{
    char out[WARD_ID_MAX];
    cr_assert_eq(ward_id_new("", out, sizeof out), WARD_ERR_INVAL);
    cr_assert_eq(ward_id_new("Inv", out, sizeof out), WARD_ERR_INVAL);
    cr_assert_eq(ward_id_new("toolongpx", out, sizeof out), WARD_ERR_INVAL);
    cr_assert_eq(ward_id_new("inv", out, 10), WARD_ERR_INVAL);
    cr_assert_not(ward_id_valid("inv", "inv_"));
    cr_assert_not(ward_id_valid("inv", "inv_0123456789012345678901x"));
    cr_assert_not(ward_id_valid("inv", "inv_012345678901234567890-"));
    cr_assert_not(ward_id_valid("inv", "inv-0123456789012345678901"));
    cr_assert_not(ward_id_valid("inv", "../etc/passwd"));
    cr_assert(ward_id_valid("inv", "inv_0123456789012345678901"));
}
