/* money.c — exact money: decimal text and JSON numbers to int64 minor units and back. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/money.h>

#define DECIMAL_DIGITS "0123456789"

/* The magnitude of INT64_MIN: the largest a negative amount may have. */
#define NEG_LIMIT ((uint64_t)INT64_MAX + 1u)

/* Exponents beyond 18 would not leave one whole major unit in int64. */
#define MAX_EXPONENT 18

/* __extension__ keeps -Wpedantic quiet about the GNU 128-bit type. */
__extension__ typedef __int128 i128;

static bool exponent_ok(const struct ward_currency *cur)
{
    return cur != NULL && cur->exponent >= 0 && cur->exponent <= MAX_EXPONENT;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* *mag = *mag * 10 + d; false (and *mag unchanged) when it no longer fits in 64 bits. */
static bool push_digit(uint64_t *mag, unsigned d)
{
    uint64_t v;

    if (__builtin_mul_overflow(*mag, 10u, &v) || __builtin_add_overflow(v, d, &v))
        return false;
    *mag = v;
    return true;
}

/* The signed amount of a sign and magnitude; OVERFLOW past int64 for that sign, so
 * that 2^63 is representable when negative only. */
static enum ward_err signed_value(uint64_t mag, bool neg, int64_t *out)
{
    if (neg) {
        if (mag > NEG_LIMIT)
            return WARD_ERR_OVERFLOW;
        *out = mag == NEG_LIMIT ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return WARD_ERR_OVERFLOW;
        *out = (int64_t)mag;
    }
    return WARD_ERR_OK;
}

static bool has_nonzero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '0')
            return true;
    }
    return false;
}

/* Errors come in a fixed order for every input path: SYNTAX, NEGATIVE, PRECISION,
 * OVERFLOW, so that "-1.005" is reported as negative, the most basic complaint. */
enum ward_err ward_money_parse(const char *text, const struct ward_currency *cur, unsigned flags,
                               int64_t *minor)
{
    const char *p, *ints, *frac = "";
    size_t nint, nfrac = 0;
    bool neg;
    uint64_t mag = 0;
    int exp;

    if (text == NULL || !exponent_ok(cur) || minor == NULL)
        return WARD_ERR_INVAL;
    exp = cur->exponent;
    p = text;
    neg = *p == '-';
    if (neg)
        p++;
    ints = p;
    nint = strspn(ints, DECIMAL_DIGITS);
    if (nint == 0)
        return WARD_ERR_SYNTAX;
    p += nint;
    if (*p == '.') {
        frac = p + 1;
        nfrac = strspn(frac, DECIMAL_DIGITS);
        if (nfrac == 0)
            return WARD_ERR_SYNTAX;
        p = frac + nfrac;
    }
    if (*p != '\0')
        return WARD_ERR_SYNTAX;

    /* "-0" and "-0.00" are zero, not negative amounts. */
    if (neg && !(flags & WARD_MONEY_ALLOW_NEGATIVE) &&
        (has_nonzero(ints, nint) || has_nonzero(frac, nfrac)))
        return WARD_ERR_NEGATIVE;
    if (nfrac > (size_t)exp && has_nonzero(frac + exp, nfrac - (size_t)exp))
        return WARD_ERR_PRECISION;

    for (size_t i = 0; i < nint; i++) {
        if (!push_digit(&mag, (unsigned)(ints[i] - '0')))
            return WARD_ERR_OVERFLOW;
    }
    for (size_t i = 0; i < (size_t)exp; i++) {
        unsigned d = i < nfrac ? (unsigned)(frac[i] - '0') : 0u;

        if (!push_digit(&mag, d))
            return WARD_ERR_OVERFLOW;
    }
    return signed_value(mag, neg, minor);
}

/* Converts the output of "%.15g" (sign, up to 15 digits with an optional radix, an
 * optional exponent such as e+20 or e-05) into minor units with integer arithmetic
 * only: value = digits * 10^e10, minor = digits * 10^(e10 + exponent). */
static enum ward_err from_shortest(const char *text, const struct ward_currency *cur,
                                   unsigned flags, int64_t *minor)
{
    const char *p = text;
    uint64_t digits = 0;
    int e10 = 0, shift;
    bool neg;

    neg = *p == '-';
    if (neg)
        p++;
    for (; is_digit(*p); p++) {
        if (!push_digit(&digits, (unsigned)(*p - '0')))
            return WARD_ERR_OVERFLOW;
    }
    /* The radix follows LC_NUMERIC as snprintf and strtod do; "." in the C locale. */
    if (*p == '.' || *p == ',') {
        for (p++; is_digit(*p); p++) {
            if (!push_digit(&digits, (unsigned)(*p - '0')))
                return WARD_ERR_OVERFLOW;
            e10--;
        }
    }
    if (*p == 'e' || *p == 'E') {
        bool eneg;
        int e = 0;

        p++;
        eneg = *p == '-';
        if (*p == '-' || *p == '+')
            p++;
        /* A double's decimal exponent has at most three digits. */
        for (; is_digit(*p) && e < 10000; p++)
            e = e * 10 + (*p - '0');
        e10 += eneg ? -e : e;
    }
    if (*p != '\0')
        return WARD_ERR_SYNTAX;

    if (digits == 0) {
        *minor = 0;
        return WARD_ERR_OK;
    }
    if (neg && !(flags & WARD_MONEY_ALLOW_NEGATIVE))
        return WARD_ERR_NEGATIVE;
    while (digits % 10 == 0) {
        digits /= 10;
        e10++;
    }
    shift = e10 + cur->exponent;
    if (shift < 0)
        return WARD_ERR_PRECISION;
    for (; shift > 0; shift--) {
        if (!push_digit(&digits, 0))
            return WARD_ERR_OVERFLOW;
    }
    return signed_value(digits, neg, minor);
}

enum ward_err ward_money_from_double(double value, const struct ward_currency *cur,
                                     unsigned flags, int64_t *minor)
{
    char text[40];

    if (!exponent_ok(cur) || minor == NULL)
        return WARD_ERR_INVAL;
    if (!isfinite(value))
        return WARD_ERR_NOT_FINITE;
    snprintf(text, sizeof text, "%.15g", value);
    /* A double that needs 16 or 17 digits to be told apart is not what the client
     * wrote (0.1 + 0.2) or has more precision than 15 digits can carry. */
    if (strtod(text, NULL) != value)
        return WARD_ERR_DIGITS;
    return from_shortest(text, cur, flags, minor);
}

static enum ward_err from_integer(int64_t v, const struct ward_currency *cur, unsigned flags,
                                  int64_t *minor)
{
    if (v < 0 && !(flags & WARD_MONEY_ALLOW_NEGATIVE))
        return WARD_ERR_NEGATIVE;
    for (int i = 0; i < cur->exponent; i++) {
        if (__builtin_mul_overflow(v, 10, &v))
            return WARD_ERR_OVERFLOW;
    }
    *minor = v;
    return WARD_ERR_OK;
}

enum ward_err ward_money_from_json(const json_t *value, const struct ward_currency *cur,
                                   unsigned flags, int64_t *minor)
{
    const char *s;

    if (value == NULL || !exponent_ok(cur) || minor == NULL)
        return WARD_ERR_INVAL;
    switch (json_typeof(value)) {
    case JSON_INTEGER:
        return from_integer((int64_t)json_integer_value(value), cur, flags, minor);
    case JSON_REAL:
        return ward_money_from_double(json_real_value(value), cur, flags, minor);
    case JSON_STRING:
        s = json_string_value(value);
        /* An embedded NUL (\u0000) would hide the rest of the text from the parser. */
        if (strlen(s) != json_string_length(value))
            return WARD_ERR_SYNTAX;
        return ward_money_parse(s, cur, flags, minor);
    default:
        return WARD_ERR_TYPE;
    }
}

int ward_money_format(int64_t minor, const struct ward_currency *cur, char *buf, size_t size)
{
    char rev[24]; /* digits, least significant first */
    char out[WARD_MONEY_BUFSZ];
    uint64_t mag;
    int n = 0, len = 0, exp;

    if (buf == NULL || !exponent_ok(cur))
        return -1;
    exp = cur->exponent;
    /* Unsigned negation is defined for INT64_MIN too. */
    mag = minor < 0 ? 0u - (uint64_t)minor : (uint64_t)minor;
    do {
        rev[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag > 0);
    while (n < exp + 1)
        rev[n++] = '0';
    if (minor < 0)
        out[len++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[len++] = rev[i];
        if (i == exp && exp > 0)
            out[len++] = '.';
    }
    if ((size_t)len >= size)
        return -1;
    memcpy(buf, out, (size_t)len);
    buf[len] = '\0';
    return len;
}

json_t *ward_money_to_json(int64_t minor, const struct ward_currency *cur)
{
    char buf[WARD_MONEY_BUFSZ];
    int len = ward_money_format(minor, cur, buf, sizeof buf);

    if (len < 0)
        return NULL;
    return json_stringn_nocheck(buf, (size_t)len); /* digits, sign and point: ASCII */
}

enum ward_err ward_money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;

    if (out == NULL)
        return WARD_ERR_INVAL;
    if (__builtin_add_overflow(a, b, &r))
        return WARD_ERR_OVERFLOW;
    *out = r;
    return WARD_ERR_OK;
}

enum ward_err ward_money_sub(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;

    if (out == NULL)
        return WARD_ERR_INVAL;
    if (__builtin_sub_overflow(a, b, &r))
        return WARD_ERR_OVERFLOW;
    *out = r;
    return WARD_ERR_OK;
}

enum ward_err ward_money_mul(int64_t a, int64_t k, int64_t *out)
{
    int64_t r;

    if (out == NULL)
        return WARD_ERR_INVAL;
    if (__builtin_mul_overflow(a, k, &r))
        return WARD_ERR_OVERFLOW;
    *out = r;
    return WARD_ERR_OK;
}

/* |a * num| < 2^126 always fits in 128 bits, so only the final quotient can overflow. */
enum ward_err ward_money_ratio(int64_t a, int64_t num, int64_t den, int64_t *out)
{
    i128 p, q, r;

    if (out == NULL || den <= 0)
        return WARD_ERR_INVAL;
    p = (i128)a * num;
    q = p / den;
    r = p % den;
    if (r < 0)
        r = -r;
    if (2 * r >= den)
        q += p < 0 ? -1 : 1;
    if (q > INT64_MAX || q < INT64_MIN)
        return WARD_ERR_OVERFLOW;
    *out = (int64_t)q;
    return WARD_ERR_OK;
}
