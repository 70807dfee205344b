/* money.h — exact money: int64 minor units and an ISO 4217 currency with its exponent.
 * No floating point is used to compute an amount; a double from a JSON parser is only
 * accepted when it converts exactly (see ward_money_from_double). */
#ifndef WARD_MONEY_H
#define WARD_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/err.h>

/* A currency of ISO 4217: alphabetic code and exponent (digits after the decimal point).
 * Instances live in a static table; compare them by pointer. */
struct ward_currency {
    char code[4];
    int exponent;
};

/* An amount: minor units of currency (cents for USD, yen for JPY, fils/1000 for KWD). */
struct ward_money {
    int64_t minor;
    const struct ward_currency *currency;
};

/* Flags for parsing. */
#define WARD_MONEY_ALLOW_NEGATIVE 1u

/* Room for any formatted amount: sign, 19 digits, point, NUL. */
#define WARD_MONEY_BUFSZ 32

/* The currency with code (exactly three upper-case letters), or NULL when unknown. */
const struct ward_currency *ward_currency_find(const char *code);

/* Parses exact decimal text ("123.45", "-0.5", "100") in major units of cur into minor
 * units. Grammar: optional '-', one or more digits, optionally '.' and one or more
 * digits; no exponent, sign '+', spaces or thousands separators. Trailing zeros past the
 * currency's exponent are accepted ("1.500" USD is 150); other extra decimals are not.
 * Errors: SYNTAX, OVERFLOW (beyond int64 minor units), NEGATIVE (without
 * WARD_MONEY_ALLOW_NEGATIVE), PRECISION; *minor is untouched on error. */
WARD_MUST_CHECK enum ward_err ward_money_parse(const char *text, const struct ward_currency *cur,
                                               unsigned flags, int64_t *minor);

/* Converts a double (as a JSON parser hands out) into minor units, only when exact: the
 * number's shortest form within 15 significant digits must read back as the same double
 * (else DIGITS) and have at most the currency's decimals (else PRECISION). NaN and
 * infinities are NOT_FINITE; OVERFLOW and NEGATIVE as for ward_money_parse. */
WARD_MUST_CHECK enum ward_err ward_money_from_double(double value, const struct ward_currency *cur,
                                                     unsigned flags, int64_t *minor);

/* Converts a JSON integer, real or decimal string; any other JSON type is TYPE. */
WARD_MUST_CHECK enum ward_err ward_money_from_json(const json_t *value, const struct ward_currency *cur,
                                                   unsigned flags, int64_t *minor);

/* Writes minor as decimal text in major units with exactly the currency's decimals
 * ("250.00", "-0.05", "1000" for JPY) into buf of size bytes (WARD_MONEY_BUFSZ is always
 * enough). Returns the length written, or -1 when buf is too small. */
int ward_money_format(int64_t minor, const struct ward_currency *cur, char *buf, size_t size);

/* A new JSON string holding the formatted amount; NULL when out of memory. */
json_t *ward_money_to_json(int64_t minor, const struct ward_currency *cur);

/* *out = a + b, a - b, a * k; OVERFLOW instead of wrapping (then *out is untouched). */
WARD_MUST_CHECK enum ward_err ward_money_add(int64_t a, int64_t b, int64_t *out);
WARD_MUST_CHECK enum ward_err ward_money_sub(int64_t a, int64_t b, int64_t *out);
WARD_MUST_CHECK enum ward_err ward_money_mul(int64_t a, int64_t k, int64_t *out);

/* *out = a * num / den rounded half away from zero (a percentage: num=25, den=1000 is
 * 2.5 %). den must be > 0 (else INVAL); OVERFLOW when the result does not fit. */
WARD_MUST_CHECK enum ward_err ward_money_ratio(int64_t a, int64_t num, int64_t den, int64_t *out);

#endif
