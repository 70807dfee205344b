/* err.h — the one error enum of libward and its messages. */
#ifndef WARD_ERR_H
#define WARD_ERR_H

/* X(name, number, message). Numbers are part of the ABI: never change or reuse one;
 * add new errors at the end with the next free number. */
#define WARD_ERRORS(X)                                                             \
    X(OK, 0, "success")                                                            \
    X(NOMEM, 1, "out of memory")                                                   \
    X(INVAL, 2, "invalid argument")                                                \
    X(SYSTEM, 3, "system call failed")                                             \
    X(SYNTAX, 4, "malformed number")                                               \
    X(OVERFLOW, 5, "amount out of range")                                          \
    X(NEGATIVE, 6, "must not be negative")                                         \
    X(PRECISION, 7, "more decimals than the currency has")                        \
    X(DIGITS, 8, "more than 15 significant digits; send the amount as a string") \
    X(NOT_FINITE, 9, "not a finite number")                                        \
    X(CURRENCY, 10, "unknown currency")                                            \
    X(CURRENCY_MISMATCH, 11, "currency mismatch")                                  \
    X(TYPE, 12, "wrong type")                                                      \
    X(ADDRESS, 13, "bad address")                                                  \
    X(EXISTS, 14, "already exists")                                                \
    X(NOT_FOUND, 15, "not found")                                                  \
    X(STATE, 16, "not allowed in this state")                                      \
    X(OPEN, 17, "circuit breaker is open")                                         \
    X(TOO_MANY_REQUESTS, 18, "circuit breaker is half-open and its probes are taken") \
    X(RATE_LIMITED, 19, "rate limited")                                            \
    X(BULKHEAD_FULL, 20, "bulkhead full")                                          \
    X(BUDGET_EXHAUSTED, 21, "retry budget exhausted")                              \
    X(DEADLINE, 22, "deadline exceeded")                                           \
    X(BURST, 23, "more events than the burst allows")                              \
    X(FULL, 24, "capacity reached")                                                \
    X(CONNECT, 25, "could not connect")                                            \
    X(TRANSPORT, 26, "transport error after the request was sent")                 \
    X(TIMEOUT, 27, "timed out")                                                    \
    X(TOO_LARGE, 28, "response larger than the limit")                             \
    X(HTTP_STATUS, 29, "unsuccessful HTTP status")                                \
    X(UNAVAILABLE, 30, "no instance of the service is available")                \
    X(RETRY, 31, "transaction must be retried")                                   \
    X(STORE_DOWN, 32, "database unreachable")                                     \
    X(CONSTRAINT, 33, "database constraint violated")                             \
    X(DB, 34, "database error")                                                   \
    X(CONFLICT, 35, "changed concurrently by someone else")

enum ward_err {
#define WARD__ERR_ENUM(name, num, msg) WARD_ERR_##name = num,
    WARD_ERRORS(WARD__ERR_ENUM)
#undef WARD__ERR_ENUM
};

/* Returns a static, human-readable message for err; never NULL (unknown numbers
 * get "unknown error"). */
const char *ward_strerror(enum ward_err err);

/* Marks functions whose status the caller must look at. */
#define WARD_MUST_CHECK __attribute__((warn_unused_result))

#endif
