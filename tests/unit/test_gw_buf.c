/* test_gw_buf.c — unit tests of the gateway engine's buffers and header blocks, fed the
 * way http-parser feeds them: names and values cut anywhere, a name without a value. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gateway/engine.h"

Test(gw_buf, grows_and_keeps_what_it_holds)
{
    struct gw_buf b = {0};
    for (int i = 0; i < 10000; i++)
        cr_assert(gw_buf_add(&b, "0123456789", 10));
    cr_assert_eq(b.len, 100000);
    cr_assert_geq(b.cap, b.len);
    cr_assert(memcmp(b.data + 99990, "0123456789", 10) == 0);
    cr_assert(gw_buf_str(&b, "x"));
    cr_assert(gw_buf_add(&b, NULL, 0));
    cr_assert_eq(b.len, 100001);
    b.len = 0;
    cr_assert(gw_buf_int(&b, 0) && gw_buf_str(&b, " ") && gw_buf_int(&b, -42) &&
              gw_buf_str(&b, " ") && gw_buf_int(&b, INT64_MIN) && gw_buf_add(&b, "", 1));
    cr_assert_str_eq(b.data, "0 -42 -9223372036854775808");
    gw_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
}

static bool collect(const char *name, size_t nlen, const char *value, void *arg)
{
    struct gw_buf *out = arg;
    cr_assert_eq(nlen, strlen(name));
    return gw_buf_str(out, name) && gw_buf_str(out, "=") && gw_buf_str(out, value) &&
           gw_buf_str(out, ";");
}

Test(gw_buf, headers_cut_anywhere_come_out_whole_and_in_order)
{
    struct gw_headers h = {0};
    cr_assert(gw_headers_field(&h, "Cont", 4));
    cr_assert(gw_headers_field(&h, "ent-Type", 8));
    cr_assert(gw_headers_value(&h, "applica", 7));
    cr_assert(gw_headers_value(&h, "tion/json", 9));
    cr_assert(gw_headers_field(&h, "X-Empty", 7));
    cr_assert(gw_headers_value(&h, "", 0)); /* http-parser's call for an empty value */
    cr_assert(gw_headers_field(&h, "x-api-key", 9));
    cr_assert(gw_headers_value(&h, "k1", 2));
    cr_assert(gw_headers_field(&h, "X-Api-Key", 9));
    cr_assert(gw_headers_value(&h, "k2", 2));
    cr_assert(gw_headers_end(&h));
    cr_assert_str_eq(gw_headers_get(&h, "content-type"), "application/json");
    cr_assert_str_eq(gw_headers_get(&h, "X-API-KEY"), "k1", "the first of a repeated header");
    cr_assert_null(gw_headers_get(&h, "Host"));
    struct gw_buf out = {0};
    gw_headers_each(&h, collect, &out);
    cr_assert(gw_buf_add(&out, "", 1));
    cr_assert_str_eq(out.data, "Content-Type=application/json;X-Empty=;x-api-key=k1;X-Api-Key=k2;");
    cr_assert_eq(h.count, 4);
    gw_buf_free(&out);
    gw_headers_reset(&h);
    cr_assert_null(gw_headers_get(&h, "Content-Type"));
    cr_assert(gw_headers_end(&h)); /* an empty block */
    /* a last name that never got a value reads as empty */
    cr_assert(gw_headers_field(&h, "Host", 4));
    cr_assert(gw_headers_end(&h));
    cr_assert_str_eq(gw_headers_get(&h, "host"), "");
    gw_buf_free(&h.buf);
}

Test(gw_buf, more_headers_than_the_index_holds_are_still_found)
{
    struct gw_headers h = {0};
    char name[32], value[32];
    for (int i = 0; i < GW_HEADERS_INDEXED + 20; i++) {
        int n = snprintf(name, sizeof name, "X-H%d", i);
        int v = snprintf(value, sizeof value, "v%d", i);
        cr_assert(gw_headers_field(&h, name, (size_t)n) && gw_headers_value(&h, value, (size_t)v));
    }
    cr_assert(gw_headers_end(&h));
    cr_assert(!h.indexed);
    cr_assert_str_eq(gw_headers_get(&h, "x-h0"), "v0");
    cr_assert_str_eq(gw_headers_get(&h, "X-H67"), "v67");
    cr_assert_null(gw_headers_get(&h, "X-H68"));
    struct gw_buf out = {0};
    gw_headers_each(&h, collect, &out);
    cr_assert(gw_buf_add(&out, "", 1));
    cr_assert_not_null(strstr(out.data, "X-H67=v67;"));
    gw_buf_free(&out);
    gw_buf_free(&h.buf);
}
