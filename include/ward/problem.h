/* problem.h — RFC 9457 problem details (application/problem+json) with ward's `errors`
 * member naming bad fields by JSON Pointer. Every type is listed in docs/problems.md. */
#ifndef WARD_PROBLEM_H
#define WARD_PROBLEM_H

#include <jansson.h>

#include <ward/err.h>

#define WARD_PROBLEM_BASE "https://ward.dev/problems/"

/* X(name, slug, status, title). The URI of a type is WARD_PROBLEM_BASE slug; slugs
 * are stable: never rename one. */
#define WARD_PROBLEMS(X)                                                              \
    X(BAD_REQUEST, "bad-request", 400, "Bad request")                                 \
    X(MALFORMED_JSON, "malformed-json", 400, "Malformed JSON")                        \
    X(VALIDATION, "validation", 400, "Invalid request")                               \
    X(BAD_HEADER, "bad-header", 400, "Invalid header")                                \
    X(NOT_FOUND, "not-found", 404, "Not found")                                       \
    X(METHOD_NOT_ALLOWED, "method-not-allowed", 405, "Method not allowed")            \
    X(CONFLICT, "conflict", 409, "Conflict")                                          \
    X(BODY_TOO_LARGE, "body-too-large", 413, "Request body too large")                \
    X(UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", 415, "Unsupported media type") \
    X(UNPROCESSABLE, "unprocessable", 422, "Unprocessable request")                   \
    X(RATE_LIMITED, "rate-limited", 429, "Too many requests")                         \
    X(INTERNAL, "internal", 500, "Internal error")                                    \
    X(UNAVAILABLE, "unavailable", 503, "Service unavailable")                         \
    X(DEADLINE_EXCEEDED, "deadline-exceeded", 504, "Deadline exceeded")               \
    X(IDEMPOTENCY_KEY_MISSING, "idempotency-key-missing", 400, "Idempotency-Key required") \
    X(IDEMPOTENCY_KEY_INVALID, "idempotency-key-invalid", 400, "Invalid Idempotency-Key") \
    X(IDEMPOTENCY_KEY_REUSED, "idempotency-key-reused", 422,                          \
      "Idempotency-Key reused with a different request")                              \
    X(IDEMPOTENCY_IN_FLIGHT, "idempotency-in-flight", 409,                            \
      "A request with this Idempotency-Key is in progress")                           \
    X(UNAUTHORIZED, "unauthorized", 401, "Unauthorized")                              \
    X(BAD_GATEWAY, "bad-gateway", 502, "Bad gateway")

enum ward_problem_type {
#define WARD__PROBLEM_ENUM(name, slug, status, title) WARD_PROBLEM_##name,
    WARD_PROBLEMS(WARD__PROBLEM_ENUM)
#undef WARD__PROBLEM_ENUM
        WARD_PROBLEM__COUNT
};

struct ward_problem;

/* A problem of type with a detail sentence (printf format; may be NULL). Returns NULL
 * when out of memory. The caller owns it (ward_problem_free). */
struct ward_problem *ward_problem_new(enum ward_problem_type type, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3)));

void ward_problem_free(struct ward_problem *p);

/* Appends {"pointer": pointer, "detail": ...} to the errors member. pointer is a JSON
 * Pointer ("/wealth", "" for the whole body). NOMEM on failure (p unchanged). */
WARD_MUST_CHECK enum ward_err ward_problem_add_error(struct ward_problem *p, const char *pointer,
                                                     const char *detail_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number of entries in the errors member. */
size_t ward_problem_error_count(const struct ward_problem *p);

enum ward_problem_type ward_problem_type(const struct ward_problem *p);
int ward_problem_status(const struct ward_problem *p);

/* The problem as a new JSON object: type, title, status, detail, instance (when not NULL),
 * request_id (when not NULL), errors (when any). NULL when out of memory. */
json_t *ward_problem_to_json(const struct ward_problem *p, const char *instance,
                             const char *request_id);

/* Static facts of a type: its URI, title and HTTP status. */
const char *ward_problem_type_uri(enum ward_problem_type type);
const char *ward_problem_type_title(enum ward_problem_type type);
int ward_problem_type_status(enum ward_problem_type type);

#endif
