/* test_fields.c — unit tests of declarative JSON body validation (ward_fields_parse). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ward/fields.h>

/* What a zakat calculation reads from its body. */
struct zk {
    int64_t wealth, nisab;
    const struct ward_currency *currency;
    const char *note;
    bool has_nisab, has_note;
};

#define UNTOUCHED INT64_C(-777)
#define NZK 4

/* The zakat spec: wealth required, nisab optional, currency optional (USD by default,
 * set in dest before the call), note optional of at most 10 bytes. */
static void zk_spec(struct zk *z, struct ward_field f[NZK])
{
    memset(z, 0, sizeof *z);
    z->wealth = UNTOUCHED;
    z->nisab = UNTOUCHED;
    z->currency = ward_currency_find("USD");
    f[0] = (struct ward_field){.name = "wealth", .type = WARD_FIELD_AMOUNT, .required = true,
                               .dest = &z->wealth, .currency = &z->currency};
    f[1] = (struct ward_field){.name = "nisab", .type = WARD_FIELD_AMOUNT, .dest = &z->nisab,
                               .present = &z->has_nisab, .currency = &z->currency};
    f[2] = (struct ward_field){.name = "currency", .type = WARD_FIELD_CURRENCY,
                               .dest = &z->currency};
    f[3] = (struct ward_field){.name = "note", .type = WARD_FIELD_STRING, .dest = &z->note,
                               .present = &z->has_note, .max_len = 10};
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

    cr_assert_not_null(j, "%s: %s", text, e.text);
    return j;
}

struct want_error {
    const char *pointer;
    const char *detail;
};

/* Asserts that p is a 400 validation problem with detail and exactly the errors given. */
static void expect_problem(const struct ward_problem *p, const char *detail,
                           const struct want_error *errors, size_t n)
{
    json_t *j, *arr;

    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_type(p), WARD_PROBLEM_VALIDATION);
    cr_assert_eq(ward_problem_status(p), 400);
    cr_assert_eq(ward_problem_error_count(p), n);
    j = ward_problem_to_json(p, NULL, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), detail);
    arr = json_object_get(j, "errors");
    cr_assert_eq(json_array_size(arr), n);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);

        cr_assert_str_eq(json_string_value(json_object_get(e, "pointer")), errors[i].pointer,
                         "error %zu", i);
        cr_assert_str_eq(json_string_value(json_object_get(e, "detail")), errors[i].detail,
                         "error %zu of %s", i, errors[i].pointer);
    }
    json_decref(j);
}

/* Runs the zakat spec on text, which must fail with exactly one error. */
static void expect_one_error(const char *text, const char *pointer, const char *detail)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load(text);
    struct want_error want = {pointer, detail};
    char summary[200];

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL, "%s", text);
    snprintf(summary, sizeof summary, "field %s: %s", pointer, detail);
    expect_problem(p, summary, &want, 1);
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, stores_every_good_member)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = (struct ward_problem *)&z; /* must be reset to NULL */
    json_t *root = load("{\"wealth\": \"10000.00\", \"nisab\": 5000, \"currency\": \"EUR\","
                        " \"note\": \"hi\", \"extra\": [1, 2]}");

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_null(p);
    cr_assert_eq(z.wealth, 1000000);
    cr_assert_eq(z.nisab, 500000);
    cr_assert_eq(z.currency, ward_currency_find("EUR"));
    cr_assert_str_eq(z.note, "hi");
    cr_assert(z.has_nisab);
    cr_assert(z.has_note);
    json_decref(root);
}

Test(fields, leaves_defaults_of_absent_members)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": 100.5}");

    zk_spec(&z, f);
    z.has_nisab = true;
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_eq(z.wealth, 10050);
    cr_assert_eq(z.nisab, UNTOUCHED);
    cr_assert_eq(z.currency, ward_currency_find("USD"));
    cr_assert_null(z.note);
    cr_assert_not(z.has_nisab, "present is cleared for an absent member");
    json_decref(root);
}

Test(fields, treats_null_as_absent)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": \"1\", \"nisab\": null, \"currency\": null, \"note\": null}");

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_eq(z.wealth, 100);
    cr_assert_eq(z.nisab, UNTOUCHED);
    cr_assert_not(z.has_nisab);
    cr_assert_not(z.has_note);
    cr_assert_eq(z.currency, ward_currency_find("USD"));
    json_decref(root);

    expect_one_error("{\"wealth\": null}", "/wealth", "is required");
}

Test(fields, the_amount_uses_the_currency_given_beside_it)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": \"1.234\", \"nisab\": 2, \"currency\": \"KWD\"}");

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_eq(z.wealth, 1234);
    cr_assert_eq(z.nisab, 2000);
    json_decref(root);
}

Test(fields, names_each_kind_of_bad_member)
{
    expect_one_error("{}", "/wealth", "is required");
    expect_one_error("{\"wealth\": \"-5\"}", "/wealth", "must not be negative");
    expect_one_error("{\"wealth\": -5}", "/wealth", "must not be negative");
    expect_one_error("{\"wealth\": \"1.005\"}", "/wealth", "has more decimals than USD allows (2)");
    expect_one_error("{\"wealth\": 0.125}", "/wealth", "has more decimals than USD allows (2)");
    expect_one_error("{\"wealth\": \"1.5\", \"currency\": \"JPY\"}", "/wealth",
                     "has more decimals than JPY allows (0)");
    expect_one_error("{\"wealth\": \"99999999999999999999\"}", "/wealth", "is too large");
    expect_one_error("{\"wealth\": 1e300}", "/wealth", "is too large");
    expect_one_error("{\"wealth\": \"abc\"}", "/wealth", "is not a valid decimal amount");
    expect_one_error("{\"wealth\": \"1e5\"}", "/wealth", "is not a valid decimal amount");
    expect_one_error("{\"wealth\": 0.30000000000000004}", "/wealth",
                     "has more than 15 significant digits; send it as a decimal string");
    expect_one_error("{\"wealth\": true}", "/wealth", "must be a number or a decimal string");
    expect_one_error("{\"wealth\": [1]}", "/wealth", "must be a number or a decimal string");
    expect_one_error("{\"wealth\": {}}", "/wealth", "must be a number or a decimal string");
    expect_one_error("{\"wealth\": \"1\", \"nisab\": \"-1\"}", "/nisab", "must not be negative");
    expect_one_error("{\"wealth\": \"1\", \"currency\": \"usd\"}", "/currency",
                     "must be an ISO 4217 currency code");
    expect_one_error("{\"wealth\": \"1\", \"currency\": \"USDX\"}", "/currency",
                     "must be an ISO 4217 currency code");
    expect_one_error("{\"wealth\": \"1\", \"currency\": 840}", "/currency",
                     "must be an ISO 4217 currency code");
    expect_one_error("{\"wealth\": \"1\", \"currency\": \"U\\u0000S\"}", "/currency",
                     "must be an ISO 4217 currency code");
    expect_one_error("{\"wealth\": \"1\", \"currency\": \"XYZ\"}", "/currency",
                     "unknown currency \"XYZ\"");
    expect_one_error("{\"wealth\": \"1\", \"currency\": \"XAU\"}", "/currency",
                     "unknown currency \"XAU\"");
    expect_one_error("{\"wealth\": \"1\", \"note\": 5}", "/note", "must be a string");
    expect_one_error("{\"wealth\": \"1\", \"note\": \"\"}", "/note", "must not be empty");
    expect_one_error("{\"wealth\": \"1\", \"note\": \"12345678901\"}", "/note",
                     "must be at most 10 bytes");
    /* Six two-byte characters are twelve bytes. */
    expect_one_error("{\"wealth\": \"1\", \"note\": \"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\"}",
                     "/note", "must be at most 10 bytes");
    expect_one_error("{\"wealth\": \"1\", \"note\": \"a\\u0000b\"}", "/note",
                     "must not contain NUL characters");
    expect_one_error("{\"wealth\": \"1\\u00002\"}", "/wealth", "is not a valid decimal amount");
}

Test(fields, string_limits_count_bytes_inclusively)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": 1, \"note\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}");

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_str_eq(z.note, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    json_decref(root);

    root = load("{\"wealth\": 1, \"note\": \"1234567890\"}");
    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_str_eq(z.note, "1234567890");
    json_decref(root);

    root = load("{\"wealth\": 1, \"note\": \"\"}");
    zk_spec(&z, f);
    f[3].allow_empty = true;
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_OK);
    cr_assert_str_eq(z.note, "");
    cr_assert(z.has_note);
    json_decref(root);
}

Test(fields, lists_every_error_in_field_order)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": \"-1\", \"nisab\": \"x\", \"note\": 7}");
    static const struct want_error want[] = {
        {"/wealth", "must not be negative"},
        {"/nisab", "is not a valid decimal amount"},
        {"/note", "must be a string"},
    };

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL);
    expect_problem(p, "3 fields are invalid", want, 3);
    cr_assert(z.has_nisab, "present is set for a given but bad member");
    cr_assert(z.has_note);
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, a_bad_currency_is_not_blamed_on_its_amounts)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": \"1.005\", \"nisab\": \"5\", \"currency\": \"XYZ\"}");
    static const struct want_error only_currency[] = {{"/currency", "unknown currency \"XYZ\""}};
    static const struct want_error both[] = {
        {"/wealth", "must be a number or a decimal string"},
        {"/currency", "must be an ISO 4217 currency code"},
    };

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL);
    expect_problem(p, "field /currency: unknown currency \"XYZ\"", only_currency, 1);
    ward_problem_free(p);
    json_decref(root);

    /* A wrong type is wrong in any currency, so it is still reported, in field order. */
    root = load("{\"wealth\": false, \"currency\": \"eur\"}");
    zk_spec(&z, f);
    p = NULL;
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL);
    expect_problem(p, "2 fields are invalid", both, 2);
    ward_problem_free(p);
    json_decref(root);

    /* A missing required currency also silences its amounts. */
    root = load("{\"wealth\": \"1.005\"}");
    zk_spec(&z, f);
    f[2].required = true;
    p = NULL;
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL);
    expect_problem(p, "field /currency: is required",
                   (const struct want_error[]){{"/currency", "is required"}}, 1);
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, an_amount_without_any_currency_is_reported)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"wealth\": \"1\"}");

    zk_spec(&z, f);
    z.currency = NULL; /* no default */
    cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL);
    expect_problem(p, "field /wealth: needs a currency; none was given",
                   (const struct want_error[]){{"/wealth", "needs a currency; none was given"}}, 1);
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, root_must_be_an_object)
{
    static const char *const roots[] = {"[1]", "\"x\"", "1", "null", "true"};
    static const struct want_error want[] = {{"", "must be a JSON object"}};

    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        struct zk z;
        struct ward_field f[NZK];
        struct ward_problem *p = NULL;
        json_t *root = load(roots[i]);

        zk_spec(&z, f);
        cr_assert_eq(ward_fields_parse(root, f, NZK, &p), WARD_ERR_INVAL, "%s", roots[i]);
        expect_problem(p, "the request body must be a JSON object", want, 1);
        ward_problem_free(p);
        json_decref(root);
    }
}

Test(fields, root_null_pointer_is_not_an_object)
{
    struct zk z;
    struct ward_field f[NZK];
    struct ward_problem *p = NULL;

    zk_spec(&z, f);
    cr_assert_eq(ward_fields_parse(NULL, f, NZK, &p), WARD_ERR_INVAL);
    cr_assert_eq(ward_problem_error_count(p), 1);
    ward_problem_free(p);
}

struct knobs {
    int64_t count, any;
    bool flag;
    bool has_flag;
};

static void knobs_spec(struct knobs *k, struct ward_field f[3])
{
    memset(k, 0, sizeof *k);
    f[0] = (struct ward_field){.name = "count", .type = WARD_FIELD_INT, .dest = &k->count,
                               .min = 1, .max = 100};
    f[1] = (struct ward_field){.name = "any", .type = WARD_FIELD_INT, .dest = &k->any};
    f[2] = (struct ward_field){.name = "flag", .type = WARD_FIELD_BOOL, .dest = &k->flag,
                               .present = &k->has_flag};
}

/* Runs the knobs spec: NULL detail means the body must pass. */
static void expect_knobs(const char *text, const char *pointer, const char *detail)
{
    struct knobs k;
    struct ward_field f[3];
    struct ward_problem *p = NULL;
    json_t *root = load(text);
    enum ward_err err;

    knobs_spec(&k, f);
    err = ward_fields_parse(root, f, 3, &p);
    if (detail == NULL) {
        cr_assert_eq(err, WARD_ERR_OK, "%s", text);
        cr_assert_null(p);
    } else {
        char summary[200];
        struct want_error want = {pointer, detail};

        cr_assert_eq(err, WARD_ERR_INVAL, "%s", text);
        snprintf(summary, sizeof summary, "field %s: %s", pointer, detail);
        expect_problem(p, summary, &want, 1);
    }
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, integers_are_checked_against_inclusive_bounds)
{
    expect_knobs("{\"count\": 1}", NULL, NULL);
    expect_knobs("{\"count\": 100}", NULL, NULL);
    expect_knobs("{\"count\": 0}", "/count", "must be between 1 and 100");
    expect_knobs("{\"count\": 101}", "/count", "must be between 1 and 100");
    expect_knobs("{\"count\": -5}", "/count", "must be between 1 and 100");
    expect_knobs("{\"count\": \"5\"}", "/count", "must be an integer");
    expect_knobs("{\"count\": 5.0}", "/count", "must be an integer");
    expect_knobs("{\"count\": 5.5}", "/count", "must be an integer");
    /* min == max means unbounded. */
    expect_knobs("{\"any\": -9223372036854775808}", NULL, NULL);
    expect_knobs("{\"any\": 9223372036854775807}", NULL, NULL);
}

Test(fields, integers_and_booleans_are_stored)
{
    struct knobs k;
    struct ward_field f[3];
    struct ward_problem *p = NULL;
    json_t *root = load("{\"count\": 42, \"any\": -9223372036854775808, \"flag\": true}");

    knobs_spec(&k, f);
    cr_assert_eq(ward_fields_parse(root, f, 3, &p), WARD_ERR_OK);
    cr_assert_eq(k.count, 42);
    cr_assert_eq(k.any, INT64_MIN);
    cr_assert(k.flag);
    cr_assert(k.has_flag);
    json_decref(root);
}

Test(fields, booleans_must_be_true_or_false)
{
    expect_knobs("{\"flag\": false}", NULL, NULL);
    expect_knobs("{\"flag\": \"true\"}", "/flag", "must be true or false");
    expect_knobs("{\"flag\": 1}", "/flag", "must be true or false");
}

Test(fields, pointers_escape_tilde_and_slash)
{
    const char *s = NULL;
    struct ward_field f[] = {
        {.name = "a/b~c", .type = WARD_FIELD_STRING, .required = true, .dest = &s},
        {.name = "~~//", .type = WARD_FIELD_STRING, .required = true, .dest = &s},
    };
    struct ward_problem *p = NULL;
    json_t *root = load("{\"a/b~c\": 1}");
    static const struct want_error want[] = {
        {"/a~1b~0c", "must be a string"},
        {"/~0~0~1~1", "is required"},
    };

    cr_assert_eq(ward_fields_parse(root, f, 2, &p), WARD_ERR_INVAL);
    expect_problem(p, "2 fields are invalid", want, 2);
    ward_problem_free(p);
    json_decref(root);
}

Test(fields, an_empty_spec_accepts_any_object)
{
    struct ward_problem *p = NULL;
    json_t *root = load("{\"a\": 1}");

    cr_assert_eq(ward_fields_parse(root, NULL, 0, &p), WARD_ERR_OK);
    cr_assert_null(p);
    json_decref(root);
}

Test(fields, a_broken_spec_is_an_internal_error)
{
    int64_t amount = 0;
    struct ward_field no_currency[] = {
        {.name = "amount", .type = WARD_FIELD_AMOUNT, .dest = &amount},
    };
    struct ward_field no_dest[] = {{.name = "x", .type = WARD_FIELD_INT}};
    struct ward_problem *p = NULL;
    json_t *root = load("{\"amount\": 1}");

    cr_assert_eq(ward_fields_parse(root, no_currency, 1, &p), WARD_ERR_INVAL);
    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_status(p), 500);
    ward_problem_free(p);
    p = NULL;
    cr_assert_eq(ward_fields_parse(root, no_dest, 1, &p), WARD_ERR_INVAL);
    cr_assert_eq(ward_problem_type(p), WARD_PROBLEM_INTERNAL);
    ward_problem_free(p);
    cr_assert_eq(ward_fields_parse(root, no_currency, 1, NULL), WARD_ERR_INVAL);
    json_decref(root);
}

/* An allocator for jansson that fails once `budget` allocations have been made. */
static int budget;

static void *limited_malloc(size_t size)
{
    if (budget <= 0)
        return NULL;
    budget--;
    return malloc(size);
}

Test(fields, out_of_memory_gives_nomem_and_no_problem)
{
    json_t *root = load("{\"wealth\": \"-1\", \"nisab\": \"x\", \"note\": 7}");
    bool done = false;

    json_set_alloc_funcs(limited_malloc, free);
    for (int limit = 0; limit < 200 && !done; limit++) {
        struct zk z;
        struct ward_field f[NZK];
        struct ward_problem *p = NULL;
        enum ward_err err;

        zk_spec(&z, f);
        budget = limit;
        err = ward_fields_parse(root, f, NZK, &p);
        if (err == WARD_ERR_NOMEM) {
            cr_assert_null(p);
            continue;
        }
        cr_assert_eq(err, WARD_ERR_INVAL);
        cr_assert_eq(ward_problem_error_count(p), 3);
        ward_problem_free(p);
        done = true;
    }
    json_set_alloc_funcs(malloc, free);
    cr_assert(done);
    json_decref(root);
}
