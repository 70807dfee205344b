/* test_gw_buf.c — unit tests of the gateway engine's buffers and header blocks, fed the
 * way http-parser feeds them: names and values cut anywhere, a name without a value. */
#include <criterion/criterion.h>

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
    gw_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
}

static bool collect(const char *name, const char *value, void *arg)
{
    struct gw_buf *out = arg;
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
