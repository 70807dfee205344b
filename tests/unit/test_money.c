/* test_money.c — unit tests of exact money: currencies, parsing, doubles, JSON, formatting. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ward/money.h>

static const struct ward_currency *cur(const char *code)
{
    const struct ward_currency *c = ward_currency_find(code);

    cr_assert_not_null(c, "currency %s missing", code);
    return c;
}

/* Parses text in code; returns the status and stores minor units in *out. */
static enum ward_err parse(const char *text, const char *code, unsigned flags, int64_t *out)
{
    return ward_money_parse(text, cur(code), flags, out);
}

static void expect_parse(const char *text, const char *code, unsigned flags, int64_t want)
{
    int64_t got = 12345;
    enum ward_err err = parse(text, code, flags, &got);

    cr_assert_eq(err, WARD_ERR_OK, "\"%s\" %s: %s", text, code, ward_strerror(err));
    cr_assert_eq(got, want, "\"%s\" %s: got %lld, want %lld", text, code, (long long)got,
                 (long long)want);
}

static void expect_parse_err(const char *text, const char *code, unsigned flags,
                             enum ward_err want)
{
    int64_t got = 12345;
    enum ward_err err = parse(text, code, flags, &got);

    cr_assert_eq(err, want, "\"%s\" %s: got %s, want %s", text, code, ward_strerror(err),
                 ward_strerror(want));
    cr_assert_eq(got, 12345, "\"%s\": output written on error", text);
}

static void expect_double(double v, const char *code, unsigned flags, int64_t want)
{
    int64_t got = 12345;
    enum ward_err err = ward_money_from_double(v, cur(code), flags, &got);

    cr_assert_eq(err, WARD_ERR_OK, "%.17g %s: %s", v, code, ward_strerror(err));
    cr_assert_eq(got, want, "%.17g %s: got %lld, want %lld", v, code, (long long)got,
                 (long long)want);
}

static void expect_double_err(double v, const char *code, unsigned flags, enum ward_err want)
{
    int64_t got = 12345;
    enum ward_err err = ward_money_from_double(v, cur(code), flags, &got);

    cr_assert_eq(err, want, "%.17g %s: got %s, want %s", v, code, ward_strerror(err),
                 ward_strerror(want));
    cr_assert_eq(got, 12345);
}

/* Loads text as JSON (numbers and strings alike) and converts it. */
static enum ward_err from_json_text(const char *text, const char *code, int64_t *out)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    enum ward_err err;

    cr_assert_not_null(v, "json_loads(%s): %s", text, jerr.text);
    err = ward_money_from_json(v, cur(code), 0, out);
    json_decref(v);
    return err;
}

static void expect_format(int64_t minor, const char *code, const char *want)
{
    char buf[WARD_MONEY_BUFSZ];
    int len = ward_money_format(minor, cur(code), buf, sizeof buf);

    cr_assert_eq(len, (int)strlen(want), "%lld %s: length %d", (long long)minor, code, len);
    cr_assert_str_eq(buf, want);
}

Test(currency, finds_every_active_code_with_its_exponent)
{
    static const char *const two[] = {
        "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
        "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP",
        "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD",
        "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES",
        "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL",
        "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR",
        "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR",
        "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
        "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
        "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED", "VES", "WST",
        "XAD", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
    };
    static const char *const zero[] = {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
        "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
    };
    static const char *const three[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
    static const char *const four[] = {"CLF", "UYW"};
    struct {
        const char *const *codes;
        size_t n;
        int exponent;
    } groups[] = {
        {two, sizeof two / sizeof two[0], 2},
        {zero, sizeof zero / sizeof zero[0], 0},
        {three, sizeof three / sizeof three[0], 3},
        {four, sizeof four / sizeof four[0], 4},
    };

    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        for (size_t i = 0; i < groups[g].n; i++) {
            const struct ward_currency *c = cur(groups[g].codes[i]);

            cr_assert_str_eq(c->code, groups[g].codes[i]);
            cr_assert_eq(c->exponent, groups[g].exponent, "%s", c->code);
            cr_assert_eq(ward_currency_find(groups[g].codes[i]), c, "same pointer each time");
        }
    }
}

Test(currency, rejects_malformed_unknown_and_unitless_codes)
{
    static const char *const bad[] = {
        "usd", "Usd", "US", "USDX", "", " USD", "USD ", "U$D", "XAU", "XAG", "XPT", "XPD",
        "XDR", "XTS", "XXX", "XBA", "XSU", "XUA", "HRK", "ZZZ", "AAA",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(ward_currency_find(bad[i]), "\"%s\" should be unknown", bad[i]);
    cr_assert_null(ward_currency_find(NULL));
}

Test(money_parse, reads_exact_decimals)
{
    int64_t a, b, sum;

    expect_parse("10000", "USD", 0, 1000000);
    expect_parse("123.45", "USD", 0, 12345);
    expect_parse("0.5", "USD", 0, 50);
    expect_parse("1.500", "USD", 0, 150);
    expect_parse("0", "USD", 0, 0);
    expect_parse("007.10", "USD", 0, 710);
    expect_parse("12", "JPY", 0, 12);
    expect_parse("12.000", "JPY", 0, 12);
    expect_parse("1.234", "KWD", 0, 1234);
    expect_parse("1.2", "KWD", 0, 1200);
    expect_parse("0.0001", "CLF", 0, 1);
    /* The classic: 0.1 + 0.2 is exactly 0.3 in minor units. */
    cr_assert_eq(parse("0.1", "USD", 0, &a), WARD_ERR_OK);
    cr_assert_eq(parse("0.2", "USD", 0, &b), WARD_ERR_OK);
    cr_assert_eq(ward_money_add(a, b, &sum), WARD_ERR_OK);
    cr_assert_eq(sum, 30);
}

Test(money_parse, rejects_bad_syntax)
{
    static const char *const bad[] = {
        "", "-", "1.", ".5", "1e5", "+1", " 1", "1 ", "0x10", "1,000", "--1", "1..0",
        "1.0.0", "abc", "1-", "- 1", "1.5e2", "NaN", "inf", "\302\2401", "\357\274\221",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_parse_err(bad[i], "USD", WARD_MONEY_ALLOW_NEGATIVE, WARD_ERR_SYNTAX);
}

Test(money_parse, rejects_decimals_the_currency_lacks)
{
    expect_parse_err("1.005", "USD", 0, WARD_ERR_PRECISION);
    expect_parse_err("0.001", "USD", 0, WARD_ERR_PRECISION);
    expect_parse_err("12.3", "JPY", 0, WARD_ERR_PRECISION);
    expect_parse_err("1.2345", "KWD", 0, WARD_ERR_PRECISION);
    expect_parse_err("1.0000000000000000000001", "USD", 0, WARD_ERR_PRECISION);
    expect_parse("1.0000000000000000000000", "USD", 0, 100);
}

Test(money_parse, detects_overflow_at_the_int64_edge)
{
    expect_parse("92233720368547758.07", "USD", 0, INT64_MAX);
    expect_parse_err("92233720368547758.08", "USD", 0, WARD_ERR_OVERFLOW);
    expect_parse("-92233720368547758.08", "USD", WARD_MONEY_ALLOW_NEGATIVE, INT64_MIN);
    expect_parse_err("-92233720368547758.09", "USD", WARD_MONEY_ALLOW_NEGATIVE,
                     WARD_ERR_OVERFLOW);
    expect_parse("9223372036854775807", "JPY", 0, INT64_MAX);
    expect_parse("-9223372036854775808", "JPY", WARD_MONEY_ALLOW_NEGATIVE, INT64_MIN);
    expect_parse_err("9223372036854775808", "JPY", 0, WARD_ERR_OVERFLOW);
    expect_parse_err("99999999999999999999999999", "USD", 0, WARD_ERR_OVERFLOW);
    expect_parse("00000000000000000000000001.00", "USD", 0, 100);
}

Test(money_parse, refuses_negatives_unless_allowed)
{
    expect_parse_err("-1", "USD", 0, WARD_ERR_NEGATIVE);
    expect_parse_err("-0.01", "USD", 0, WARD_ERR_NEGATIVE);
    /* Negative is the first complaint, before precision and overflow. */
    expect_parse_err("-1.005", "USD", 0, WARD_ERR_NEGATIVE);
    expect_parse_err("-99999999999999999999", "USD", 0, WARD_ERR_NEGATIVE);
    expect_parse("-1.25", "USD", WARD_MONEY_ALLOW_NEGATIVE, -125);
    expect_parse("-0", "USD", 0, 0);
    expect_parse("-0.00", "USD", 0, 0);
}

Test(money_parse, rejects_null_arguments)
{
    int64_t out = 7;

    cr_assert_eq(ward_money_parse(NULL, cur("USD"), 0, &out), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_parse("1", NULL, 0, &out), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_parse("1", cur("USD"), 0, NULL), WARD_ERR_INVAL);
    cr_assert_eq(out, 7);
}

Test(money_double, converts_doubles_that_are_exact_in_15_digits)
{
    expect_double(0.1, "USD", 0, 10);
    expect_double(10000.0, "USD", 0, 1000000);
    expect_double(100.5, "USD", 0, 10050);
    expect_double(0.0, "USD", 0, 0);
    expect_double(-0.0, "USD", 0, 0);
    expect_double(1e5, "USD", 0, 10000000);
    expect_double(0.01, "USD", 0, 1);
    expect_double(1234.5, "KWD", 0, 1234500);
    expect_double(1.5e-3, "CLF", 0, 15);
    expect_double(-12.34, "USD", WARD_MONEY_ALLOW_NEGATIVE, -1234);
    expect_double(123456789012345.0, "JPY", 0, 123456789012345);
    /* "%.15g" writes 1e+18: the exponent is applied with integers, not a multiply. */
    expect_double(1e18, "JPY", 0, 1000000000000000000);
    expect_double(1e16, "USD", 0, 1000000000000000000);
}

Test(money_double, rejects_extra_decimals)
{
    expect_double_err(0.125, "USD", 0, WARD_ERR_PRECISION);
    expect_double_err(12.5, "JPY", 0, WARD_ERR_PRECISION);
    expect_double_err(1.5e-5, "CLF", 0, WARD_ERR_PRECISION); /* "%.15g" gives 1.5e-05 */
    expect_double_err(1e-300, "USD", 0, WARD_ERR_PRECISION);
    expect_double_err(5e-324, "USD", 0, WARD_ERR_PRECISION);
}

Test(money_double, rejects_values_beyond_int64)
{
    expect_double_err(1e300, "USD", 0, WARD_ERR_OVERFLOW);
    expect_double_err(1e19, "JPY", 0, WARD_ERR_OVERFLOW);
    expect_double_err(1e17, "USD", 0, WARD_ERR_OVERFLOW);
    expect_double_err(-1e300, "USD", WARD_MONEY_ALLOW_NEGATIVE, WARD_ERR_OVERFLOW);
}

Test(money_double, rejects_non_finite_numbers)
{
    expect_double_err((double)NAN, "USD", 0, WARD_ERR_NOT_FINITE);
    expect_double_err((double)INFINITY, "USD", 0, WARD_ERR_NOT_FINITE);
    expect_double_err(-(double)INFINITY, "USD", WARD_MONEY_ALLOW_NEGATIVE, WARD_ERR_NOT_FINITE);
}

Test(money_double, rejects_doubles_that_need_more_than_15_digits)
{
    volatile double a = 0.1, b = 0.2;

    expect_double_err(a + b, "USD", 0, WARD_ERR_DIGITS); /* 0.30000000000000004 */
    expect_double_err(123456789012345.67, "USD", 0, WARD_ERR_DIGITS);
    expect_double_err(92233720368547758.07, "USD", 0, WARD_ERR_DIGITS);
}

Test(money_double, refuses_negatives_unless_allowed)
{
    expect_double_err(-5.0, "USD", 0, WARD_ERR_NEGATIVE);
    expect_double_err(-0.125, "USD", 0, WARD_ERR_NEGATIVE);
}

Test(money_json, converts_integers_reals_and_strings)
{
    static const struct {
        const char *json;
        const char *code;
        int64_t minor;
    } good[] = {
        {"10000", "USD", 1000000},
        {"10000.50", "USD", 1000050},
        {"\"10000.50\"", "USD", 1000050},
        {"1e2", "USD", 10000},
        {"0", "USD", 0},
        {"7", "KWD", 7000},
        {"92233720368547758", "USD", INT64_C(9223372036854775800)},
        {"9223372036854775807", "JPY", INT64_MAX},
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t got = -1;
        enum ward_err err = from_json_text(good[i].json, good[i].code, &got);

        cr_assert_eq(err, WARD_ERR_OK, "%s: %s", good[i].json, ward_strerror(err));
        cr_assert_eq(got, good[i].minor, "%s: got %lld", good[i].json, (long long)got);
    }
}

Test(money_json, reports_what_is_wrong)
{
    static const struct {
        const char *json;
        enum ward_err err;
    } bad[] = {
        {"true", WARD_ERR_TYPE},
        {"null", WARD_ERR_TYPE},
        {"[]", WARD_ERR_TYPE},
        {"{}", WARD_ERR_TYPE},
        {"\"abc\"", WARD_ERR_SYNTAX},
        {"\"1\\u00002\"", WARD_ERR_SYNTAX},
        {"-5", WARD_ERR_NEGATIVE},
        {"\"-5\"", WARD_ERR_NEGATIVE},
        {"-0.5", WARD_ERR_NEGATIVE},
        {"92233720368547759", WARD_ERR_OVERFLOW},
        {"0.125", WARD_ERR_PRECISION},
        {"\"0.125\"", WARD_ERR_PRECISION},
        {"0.30000000000000004", WARD_ERR_DIGITS},
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t jerr;
        json_t *v = json_loads(bad[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        int64_t got = 99;
        enum ward_err err;

        cr_assert_not_null(v, "%s: %s", bad[i].json, jerr.text);
        err = ward_money_from_json(v, cur("USD"), 0, &got);
        json_decref(v);
        cr_assert_eq(err, bad[i].err, "%s: got %s, want %s", bad[i].json, ward_strerror(err),
                     ward_strerror(bad[i].err));
        cr_assert_eq(got, 99);
    }
}

Test(money_json, rejects_null_arguments)
{
    int64_t out;
    json_t *v = json_integer(1);

    cr_assert_eq(ward_money_from_json(NULL, cur("USD"), 0, &out), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_from_json(v, NULL, 0, &out), WARD_ERR_INVAL);
    json_decref(v);
}

Test(money_format, writes_exactly_the_currency_decimals)
{
    expect_format(25000, "USD", "250.00");
    expect_format(-5, "USD", "-0.05");
    expect_format(0, "USD", "0.00");
    expect_format(1, "USD", "0.01");
    expect_format(1000, "JPY", "1000");
    expect_format(0, "JPY", "0");
    expect_format(-7, "JPY", "-7");
    expect_format(1234, "KWD", "1.234");
    expect_format(1, "CLF", "0.0001");
    expect_format(INT64_MAX, "USD", "92233720368547758.07");
    expect_format(INT64_MIN, "USD", "-92233720368547758.08");
    expect_format(INT64_MIN, "JPY", "-9223372036854775808");
    expect_format(INT64_MIN, "KWD", "-9223372036854775.808");
    expect_format(INT64_MIN, "CLF", "-922337203685477.5808");
}

Test(money_format, fails_when_the_buffer_is_too_small)
{
    char buf[WARD_MONEY_BUFSZ];

    memset(buf, 'x', sizeof buf);
    cr_assert_eq(ward_money_format(25000, cur("USD"), buf, 6), -1); /* "250.00" needs 7 */
    cr_assert_eq(buf[0], 'x');
    cr_assert_eq(ward_money_format(25000, cur("USD"), buf, 7), 6);
    cr_assert_str_eq(buf, "250.00");
    cr_assert_eq(ward_money_format(1, NULL, buf, sizeof buf), -1);
    cr_assert_eq(ward_money_format(1, cur("USD"), NULL, 10), -1);
}

Test(money_format, to_json_gives_a_decimal_string)
{
    json_t *j = ward_money_to_json(-123456, cur("USD"));

    cr_assert(json_is_string(j));
    cr_assert_str_eq(json_string_value(j), "-1234.56");
    json_decref(j);
    cr_assert_null(ward_money_to_json(1, NULL));
}

/* xorshift64: a fixed seed makes the "random" values the same on every run. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

Test(money_format, parse_reads_back_what_format_wrote)
{
    static const char *const codes[] = {"USD", "JPY", "KWD", "CLF"};
    static const int64_t edges[] = {0, 1, -1, 9, 10, 99, 100, -100, INT64_MAX, INT64_MIN,
                                    INT64_MAX - 1, INT64_MIN + 1};
    uint64_t state = UINT64_C(0x9E3779B97F4A7C15);

    for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++) {
        const struct ward_currency *cu = cur(codes[c]);

        for (int i = 0; i < 20000; i++) {
            char buf[WARD_MONEY_BUFSZ];
            uint64_t r = next_random(&state);
            int64_t x, back = 0;
            enum ward_err err;

            if (i < (int)(sizeof edges / sizeof edges[0]))
                x = edges[i];
            else
                x = (int64_t)((r >> (r % 64)) & INT64_MAX) * ((r & 1) ? -1 : 1);
            cr_assert_gt(ward_money_format(x, cu, buf, sizeof buf), 0);
            err = ward_money_parse(buf, cu, WARD_MONEY_ALLOW_NEGATIVE, &back);
            cr_assert_eq(err, WARD_ERR_OK, "%s %s: %s", buf, codes[c], ward_strerror(err));
            cr_assert_eq(back, x, "%s %s: %lld became %lld", buf, codes[c], (long long)x,
                         (long long)back);
        }
    }
}

Test(money_arith, add_sub_mul_report_overflow_instead_of_wrapping)
{
    int64_t out = 42;

    cr_assert_eq(ward_money_add(5, -7, &out), WARD_ERR_OK);
    cr_assert_eq(out, -2);
    cr_assert_eq(ward_money_sub(5, 7, &out), WARD_ERR_OK);
    cr_assert_eq(out, -2);
    cr_assert_eq(ward_money_mul(12345, 3, &out), WARD_ERR_OK);
    cr_assert_eq(out, 37035);

    out = 42;
    cr_assert_eq(ward_money_add(INT64_MAX, 1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_add(INT64_MIN, -1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_sub(INT64_MIN, 1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_sub(0, INT64_MIN, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_mul(INT64_MAX, 2, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_mul(INT64_MIN, -1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(out, 42, "untouched on overflow");

    cr_assert_eq(ward_money_add(INT64_MAX - 1, 1, &out), WARD_ERR_OK);
    cr_assert_eq(out, INT64_MAX);
    cr_assert_eq(ward_money_sub(-1, INT64_MAX, &out), WARD_ERR_OK);
    cr_assert_eq(out, INT64_MIN);
    cr_assert_eq(ward_money_add(1, 1, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_sub(1, 1, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_mul(1, 1, NULL), WARD_ERR_INVAL);
}

static void expect_ratio(int64_t a, int64_t num, int64_t den, int64_t want)
{
    int64_t got = 0;
    enum ward_err err = ward_money_ratio(a, num, den, &got);

    cr_assert_eq(err, WARD_ERR_OK, "%lld*%lld/%lld: %s", (long long)a, (long long)num,
                 (long long)den, ward_strerror(err));
    cr_assert_eq(got, want, "%lld*%lld/%lld: got %lld, want %lld", (long long)a,
                 (long long)num, (long long)den, (long long)got, (long long)want);
}

Test(money_arith, ratio_rounds_half_away_from_zero)
{
    expect_ratio(1000000, 25, 1000, 25000);  /* 2.5 % of 10000.00 is 250.00 */
    expect_ratio(1000001, 25, 1000, 25000);  /* 25000.025 */
    expect_ratio(1000020, 25, 1000, 25001);  /* 25000.5 */
    expect_ratio(1000019, 25, 1000, 25000);  /* 25000.475 */
    expect_ratio(1000060, 25, 1000, 25002);  /* 25001.5 */
    expect_ratio(-1000020, 25, 1000, -25001);
    expect_ratio(-1000001, 25, 1000, -25000);
    expect_ratio(1000020, -25, 1000, -25001);
    expect_ratio(1, 1, 2, 1);
    expect_ratio(-1, 1, 2, -1);
    expect_ratio(1, 1, 3, 0);
    expect_ratio(2, 1, 3, 1);
    expect_ratio(0, 25, 1000, 0);
}

Test(money_arith, ratio_uses_a_wide_intermediate)
{
    int64_t out = 42;

    expect_ratio(INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX);
    expect_ratio(INT64_MIN, 1, 1, INT64_MIN);
    expect_ratio(INT64_MIN, INT64_MAX, INT64_MAX, INT64_MIN);
    expect_ratio(INT64_MAX, 3, 4, INT64_C(6917529027641081855)); /* ...855.25 */
    cr_assert_eq(ward_money_ratio(INT64_MAX, 2, 1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_ratio(INT64_MIN, -1, 1, &out), WARD_ERR_OVERFLOW);
    cr_assert_eq(ward_money_ratio(1, 1, 0, &out), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_ratio(1, 1, -1, &out), WARD_ERR_INVAL);
    cr_assert_eq(ward_money_ratio(1, 1, 1, NULL), WARD_ERR_INVAL);
    cr_assert_eq(out, 42);
}
