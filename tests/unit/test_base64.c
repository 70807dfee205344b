/* test_base64.c — the base64 the etcd backend speaks (lib/registry/base64.c): the test
 * vectors of RFC 4648 §10 both ways, binary bytes, the prefix-range keys etcd needs, and
 * malformed input refused. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "../../lib/registry/registry_int.h"

static const char *const vectors[][2] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

Test(base64, rfc4648_vectors_both_ways)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *enc = ward__b64_encode(vectors[i][0], strlen(vectors[i][0]));
        cr_assert_str_eq(enc, vectors[i][1]);
        size_t len = 99;
        char *dec = ward__b64_decode(vectors[i][1], &len);
        cr_assert_not_null(dec, "%s", vectors[i][1]);
        cr_assert_eq(len, strlen(vectors[i][0]));
        cr_assert_str_eq(dec, vectors[i][0]); /* NUL-terminated for text */
        free(enc);
        free(dec);
    }
}

Test(base64, etcd_prefix_range_keys)
{
    /* registry-spec.md §B.1: /services/web/ and its prefix end /services/web0 */
    char *a = ward__b64_encode("/services/web/", 14), *b = ward__b64_encode("/services/web0", 14);
    cr_assert_str_eq(a, "L3NlcnZpY2VzL3dlYi8=");
    cr_assert_str_eq(b, "L3NlcnZpY2VzL3dlYjA=");
    free(a);
    free(b);
}

Test(base64, every_byte_round_trips)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *enc = ward__b64_encode(all, sizeof all);
    size_t len = 0;
    char *dec = ward__b64_decode(enc, &len);
    cr_assert_eq(len, sizeof all);
    cr_assert_eq(memcmp(dec, all, sizeof all), 0);
    free(enc);
    free(dec);
}

Test(base64, malformed_is_refused)
{
    static const char *const bad[] = {"Zg", "Zg=", "Z===", "Zm9v!", "Zg==Zg==", "=Zg=", "Zm 9v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = 0;
        cr_assert_null(ward__b64_decode(bad[i], &len), "%s", bad[i]);
    }
}
