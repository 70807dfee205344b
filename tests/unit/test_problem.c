/* test_problem.c — unit tests of RFC 9457 problem details and their `errors` member. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <ward/problem.h>

/* The problem as compact JSON text (caller frees). */
static char *dump(const struct ward_problem *p, const char *instance, const char *request_id)
{
    json_t *j = ward_problem_to_json(p, instance, request_id);
    char *s;

    cr_assert_not_null(j);
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    cr_assert_not_null(s);
    return s;
}

Test(problem, every_type_has_its_stable_uri_title_and_status)
{
    static const struct {
        enum ward_problem_type type;
        const char *uri;
        const char *title;
        int status;
    } want[] = {
        {WARD_PROBLEM_BAD_REQUEST, "https://ward.dev/problems/bad-request", "Bad request", 400},
        {WARD_PROBLEM_MALFORMED_JSON, "https://ward.dev/problems/malformed-json",
         "Malformed JSON", 400},
        {WARD_PROBLEM_VALIDATION, "https://ward.dev/problems/validation", "Invalid request", 400},
        {WARD_PROBLEM_BAD_HEADER, "https://ward.dev/problems/bad-header", "Invalid header", 400},
        {WARD_PROBLEM_NOT_FOUND, "https://ward.dev/problems/not-found", "Not found", 404},
        {WARD_PROBLEM_METHOD_NOT_ALLOWED, "https://ward.dev/problems/method-not-allowed",
         "Method not allowed", 405},
        {WARD_PROBLEM_CONFLICT, "https://ward.dev/problems/conflict", "Conflict", 409},
        {WARD_PROBLEM_BODY_TOO_LARGE, "https://ward.dev/problems/body-too-large",
         "Request body too large", 413},
        {WARD_PROBLEM_UNSUPPORTED_MEDIA_TYPE, "https://ward.dev/problems/unsupported-media-type",
         "Unsupported media type", 415},
        {WARD_PROBLEM_UNPROCESSABLE, "https://ward.dev/problems/unprocessable",
         "Unprocessable request", 422},
        {WARD_PROBLEM_RATE_LIMITED, "https://ward.dev/problems/rate-limited", "Too many requests",
         429},
        {WARD_PROBLEM_INTERNAL, "https://ward.dev/problems/internal", "Internal error", 500},
        {WARD_PROBLEM_UNAVAILABLE, "https://ward.dev/problems/unavailable",
         "Service unavailable", 503},
        {WARD_PROBLEM_DEADLINE_EXCEEDED, "https://ward.dev/problems/deadline-exceeded",
         "Deadline exceeded", 504},
        {WARD_PROBLEM_IDEMPOTENCY_KEY_MISSING, "https://ward.dev/problems/idempotency-key-missing",
         "Idempotency-Key required", 400},
        {WARD_PROBLEM_IDEMPOTENCY_KEY_INVALID, "https://ward.dev/problems/idempotency-key-invalid",
         "Invalid Idempotency-Key", 400},
        {WARD_PROBLEM_IDEMPOTENCY_KEY_REUSED, "https://ward.dev/problems/idempotency-key-reused",
         "Idempotency-Key reused with a different request", 422},
        {WARD_PROBLEM_IDEMPOTENCY_IN_FLIGHT, "https://ward.dev/problems/idempotency-in-flight",
         "A request with this Idempotency-Key is in progress", 409},
        {WARD_PROBLEM_UNAUTHORIZED, "https://ward.dev/problems/unauthorized", "Unauthorized", 401},
        {WARD_PROBLEM_BAD_GATEWAY, "https://ward.dev/problems/bad-gateway", "Bad gateway", 502},
    };

    cr_assert_eq(sizeof want / sizeof want[0], (size_t)WARD_PROBLEM__COUNT,
                 "a new type needs a row here and a section in docs/problems.md");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct ward_problem *p = ward_problem_new(want[i].type, NULL);
        json_t *j;

        cr_assert_str_eq(ward_problem_type_uri(want[i].type), want[i].uri);
        cr_assert_str_eq(ward_problem_type_title(want[i].type), want[i].title);
        cr_assert_eq(ward_problem_type_status(want[i].type), want[i].status);
        cr_assert_not_null(p);
        cr_assert_eq(ward_problem_type(p), want[i].type);
        cr_assert_eq(ward_problem_status(p), want[i].status);
        j = ward_problem_to_json(p, NULL, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(j, "type")), want[i].uri);
        cr_assert_str_eq(json_string_value(json_object_get(j, "title")), want[i].title);
        cr_assert_eq(json_integer_value(json_object_get(j, "status")), want[i].status);
        json_decref(j);
        ward_problem_free(p);
    }
}

Test(problem, to_json_lists_members_in_order)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "%d fields are invalid", 2);
    char *s;

    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_add_error(p, "/wealth", "must not be negative"), WARD_ERR_OK);
    cr_assert_eq(ward_problem_add_error(p, "/currency", "unknown currency \"%s\"", "XYZ"),
                 WARD_ERR_OK);
    cr_assert_eq(ward_problem_error_count(p), 2);
    s = dump(p, "/calculate", "req-1");
    cr_assert_str_eq(s, "{\"type\":\"https://ward.dev/problems/validation\","
                        "\"title\":\"Invalid request\",\"status\":400,"
                        "\"detail\":\"2 fields are invalid\",\"instance\":\"/calculate\","
                        "\"request_id\":\"req-1\",\"errors\":["
                        "{\"pointer\":\"/wealth\",\"detail\":\"must not be negative\"},"
                        "{\"pointer\":\"/currency\","
                        "\"detail\":\"unknown currency \\\"XYZ\\\"\"}]}");
    free(s);
    ward_problem_free(p);
}

Test(problem, omits_detail_instance_request_id_and_errors_when_absent)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_NOT_FOUND, NULL);
    char *s;

    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_error_count(p), 0);
    s = dump(p, NULL, NULL);
    cr_assert_str_eq(s, "{\"type\":\"https://ward.dev/problems/not-found\","
                        "\"title\":\"Not found\",\"status\":404}");
    free(s);
    s = dump(p, NULL, "abc");
    cr_assert_str_eq(s, "{\"type\":\"https://ward.dev/problems/not-found\","
                        "\"title\":\"Not found\",\"status\":404,\"request_id\":\"abc\"}");
    free(s);
    ward_problem_free(p);
}

Test(problem, keeps_long_details_whole)
{
    char *big = malloc(5001);
    struct ward_problem *p;
    json_t *j;

    cr_assert_not_null(big);
    memset(big, 'a', 5000);
    big[5000] = '\0';
    p = ward_problem_new(WARD_PROBLEM_BAD_REQUEST, "<%s>", big);
    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_add_error(p, "/x", "%s!", big), WARD_ERR_OK);
    j = ward_problem_to_json(p, NULL, NULL);
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "detail"))), 5002);
    cr_assert_eq(
        strlen(json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0),
                                                 "detail"))),
        5001);
    json_decref(j);
    ward_problem_free(p);
    free(big);
}

Test(problem, replaces_bytes_that_are_not_utf8)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_BAD_HEADER, "bad value %s", "\xff\xfe");
    json_t *j;

    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_add_error(p, "/a\xc3", "x"), WARD_ERR_OK);
    j = ward_problem_to_json(p, NULL, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), "bad value ??");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0),
                                          "pointer")),
        "/a?");
    json_decref(j);
    ward_problem_free(p);
}

Test(problem, to_json_returns_an_independent_copy)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "x");
    json_t *j;

    cr_assert_eq(ward_problem_add_error(p, "/a", "is required"), WARD_ERR_OK);
    j = ward_problem_to_json(p, NULL, NULL);
    json_array_clear(json_object_get(j, "errors"));
    json_decref(j);
    cr_assert_eq(ward_problem_error_count(p), 1);
    ward_problem_free(p);
}

Test(problem, tolerates_null_arguments)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_CONFLICT, NULL);

    ward_problem_free(NULL);
    cr_assert_null(ward_problem_to_json(NULL, "/x", "r"));
    cr_assert_eq(ward_problem_error_count(NULL), 0);
    cr_assert_eq(ward_problem_type(NULL), WARD_PROBLEM_INTERNAL);
    cr_assert_eq(ward_problem_status(NULL), 500);
    cr_assert_eq(ward_problem_add_error(NULL, "/a", "x"), WARD_ERR_INVAL);
    cr_assert_eq(ward_problem_add_error(p, NULL, "x"), WARD_ERR_INVAL);
    cr_assert_eq(ward_problem_add_error(p, "/a", NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_problem_error_count(p), 0);
    ward_problem_free(p);
}

Test(problem, treats_an_unknown_type_as_internal)
{
    struct ward_problem *p = ward_problem_new((enum ward_problem_type)999, "oops");

    cr_assert_not_null(p);
    cr_assert_eq(ward_problem_type(p), WARD_PROBLEM_INTERNAL);
    cr_assert_eq(ward_problem_status(p), 500);
    cr_assert_str_eq(ward_problem_type_uri(WARD_PROBLEM__COUNT),
                     "https://ward.dev/problems/internal");
    cr_assert_eq(ward_problem_type_status((enum ward_problem_type)-1), 500);
    ward_problem_free(p);
}

Test(problem, the_empty_pointer_names_the_whole_body)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, NULL);
    char *s;

    cr_assert_eq(ward_problem_add_error(p, "", "must be a JSON object"), WARD_ERR_OK);
    s = dump(p, NULL, NULL);
    cr_assert_str_eq(s, "{\"type\":\"https://ward.dev/problems/validation\","
                        "\"title\":\"Invalid request\",\"status\":400,\"errors\":["
                        "{\"pointer\":\"\",\"detail\":\"must be a JSON object\"}]}");
    free(s);
    ward_problem_free(p);
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

Test(problem, survives_running_out_of_memory_at_every_step)
{
    bool done = false;

    json_set_alloc_funcs(limited_malloc, free);
    for (int limit = 0; limit < 200 && !done; limit++) {
        struct ward_problem *p;
        json_t *j = NULL;

        budget = limit;
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, "%s", "bad");
        if (p == NULL)
            continue;
        if (ward_problem_add_error(p, "/a", "is required") != WARD_ERR_OK) {
            cr_assert_eq(ward_problem_error_count(p), 0, "unchanged on NOMEM");
        } else if (ward_problem_add_error(p, "/b", "must be a string") != WARD_ERR_OK) {
            cr_assert_eq(ward_problem_error_count(p), 1, "unchanged on NOMEM");
        } else {
            j = ward_problem_to_json(p, "/x", "r");
            done = j != NULL;
        }
        json_decref(j);
        ward_problem_free(p);
    }
    json_set_alloc_funcs(malloc, free);
    cr_assert(done, "never succeeded with 200 allocations");
}
