/* fields.h — declarative parsing of a JSON request body: a handler lists its members
 * (name, type, required, destination) and one call validates them all, answering with
 * a problem that names every bad member by JSON Pointer. */
#ifndef WARD_FIELDS_H
#define WARD_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/err.h>
#include <ward/money.h>
#include <ward/problem.h>

enum ward_field_type {
    WARD_FIELD_STRING,   /* dest: const char ** borrowed from the JSON value */
    WARD_FIELD_INT,      /* dest: int64_t *, bounded by min/max when min < max */
    WARD_FIELD_BOOL,     /* dest: bool * */
    WARD_FIELD_CURRENCY, /* dest: const struct ward_currency ** (ISO 4217 code) */
    WARD_FIELD_AMOUNT,   /* dest: int64_t * minor units; number or decimal string */
};

struct ward_field {
    const char *name;
    enum ward_field_type type;
    bool required;
    void *dest;
    bool *present; /* optional: set to whether the member was given (null counts as absent) */
    /* AMOUNT: where the currency of the amount is found. Currency members are parsed
     * before amounts, so this may point at another field's dest. */
    const struct ward_currency *const *currency;
    unsigned flags;  /* AMOUNT: WARD_MONEY_ALLOW_NEGATIVE */
    size_t max_len;  /* STRING: longest accepted length in bytes; 0 = no limit */
    bool allow_empty; /* STRING: accept "" */
    int64_t min, max; /* INT: inclusive bounds, checked when min < max */
};

/* Validates root against fields[0..n) and stores each given member through its dest.
 * Unknown members are ignored; a JSON null is the same as an absent member. Returns OK,
 * or INVAL with *problem set to a 400 validation problem whose errors name every bad or
 * missing member (root not an object names ""), or NOMEM. The caller owns *problem.
 * Destinations of bad members may have been written. */
WARD_MUST_CHECK enum ward_err ward_fields_parse(const json_t *root, const struct ward_field *fields,
                                                size_t n, struct ward_problem **problem);

#endif
