/* fault_server.h — a real in-process HTTP server for tests that answers faults on command. */
#ifndef WARD_TESTS_FAULT_SERVER_H
#define WARD_TESTS_FAULT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The fault server listens on 127.0.0.1 on a port the kernel picks, runs on libmicrohttpd
 * with one thread per connection (a hanging or slow answer blocks only its own connection)
 * and answers every request according to a mode the test sets or queues. It records every
 * request it receives so a test can check what a client sent.
 *
 * Every function is thread-safe: a test drives the server from its own thread while clients
 * call it from others. Modes passed in are copied (strings included), so the caller may pass
 * literals or stack values and reuse them at once.
 *
 * Each request's body is read in full before the answer; a body over FAULT_BODY_LIMIT bytes
 * is drained and answered 413 whatever the mode (still recorded).
 *
 *     struct fault_server *fs = fault_server_start();
 *     fault_server_push(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 2);
 *     ... client calls http://127.0.0.1:<fault_server_port(fs)>/x: 503, 503, then 200 ...
 *     cr_assert_eq(fault_server_count(fs), 3);
 *     fault_server_stop(fs);
 */

#define FAULT_BODY_LIMIT ((size_t)1 << 20) /* request bodies above this are answered 413 */
#define FAULT_MAX_HEADERS 4                /* extra response headers per mode */
#define FAULT_RECORD_BODY 4096             /* bytes of each request body kept by the record */
#define FAULT_RECORD_VALUE 256             /* bytes of each recorded header value, NUL included */

enum fault_kind {
    FAULT_OK,     /* `status` (0: 200) with `body`, or {"method":..,"path":..,"seq":i} */
    FAULT_STATUS, /* `status` (0: 500) with `body`, or a small JSON problem */
    FAULT_429,    /* 429 with Retry-After: `retry_after_date` verbatim if set, else
                     `retry_after_s` in seconds; no Retry-After if retry_after_s < 0 */
    FAULT_SLOW,   /* wait `delay_ms`, then answer like FAULT_OK */
    FAULT_HANG,   /* answer nothing until fault_server_release() (then like FAULT_OK) or
                     fault_server_stop() (then close without an answer) */
    FAULT_CLOSE,  /* close the connection without any answer */
    FAULT_BIG,    /* 200 with a body of exactly `big_bytes` bytes of 'x' */
};

/* An extra response header; a NULL name ends the list. */
struct fault_header {
    const char *name;
    const char *value;
};

/* How to answer. Zero-initialised fields mean the defaults above; strings may be NULL. */
struct fault_mode {
    enum fault_kind kind;
    unsigned status;              /* FAULT_OK, FAULT_STATUS, FAULT_SLOW, FAULT_HANG */
    const char *body;             /* answer body instead of the default one */
    const char *content_type;     /* of `body`; NULL: application/json */
    long retry_after_s;           /* FAULT_429 */
    const char *retry_after_date; /* FAULT_429: an IMF-fixdate, sent as given */
    unsigned delay_ms;            /* FAULT_SLOW */
    size_t big_bytes;             /* FAULT_BIG */
    struct fault_header headers[FAULT_MAX_HEADERS]; /* added to any answer */
};

/* One recorded request. Header values are "" when the header was absent; values and the path
 * are truncated to fit, and the body to FAULT_RECORD_BODY bytes (body_len is the full size). */
struct fault_request {
    char method[16];
    char path[512]; /* without the query string */
    char timeout_ms[FAULT_RECORD_VALUE];      /* X-Request-Timeout-Ms */
    char request_id[FAULT_RECORD_VALUE];      /* X-Request-Id */
    char traceparent[FAULT_RECORD_VALUE];     /* traceparent */
    char idempotency_key[FAULT_RECORD_VALUE]; /* Idempotency-Key */
    char content_type[FAULT_RECORD_VALUE];    /* Content-Type */
    char body[FAULT_RECORD_BODY + 1];         /* NUL-terminated prefix of the body */
    size_t body_len;                          /* bytes of body received */
    uint64_t arrived_ns;  /* CLOCK_MONOTONIC when its headers arrived */
    enum fault_kind kind; /* the mode it was answered with */
};

struct fault_server;

/* Starts a server on 127.0.0.1 and an ephemeral port in mode FAULT_OK. Returns a server the
 * caller frees with fault_server_stop(), or NULL if memory, threads or the socket fail. */
struct fault_server *fault_server_start(void);

/* The port the server listens on. */
uint16_t fault_server_port(const struct fault_server *fs);

/* Closes every hanging or slow request without an answer, stops the server, waits for its
 * threads and frees it. Returns promptly even with requests in flight. NULL is a no-op. */
void fault_server_stop(struct fault_server *fs);

/* Answers every following request with mode *m (NULL: FAULT_OK) once the queue is empty.
 * Returns false, changing nothing, if memory runs out. */
bool fault_server_set(struct fault_server *fs, const struct fault_mode *m);

/* Queues mode *m for the next `times` requests, after any modes queued before it; queued
 * modes take precedence over the set one. Returns false, changing nothing, if memory runs out
 * or times < 1. */
bool fault_server_push(struct fault_server *fs, const struct fault_mode *m, int times);

/* Lets every request hanging now (FAULT_HANG) answer. Requests that arrive later in
 * FAULT_HANG hang until the next release. */
void fault_server_release(struct fault_server *fs);

/* The number of requests recorded since the start or the last reset. A request is recorded
 * once its body has arrived, before its mode is applied (so a hanging one counts). */
size_t fault_server_count(struct fault_server *fs);

/* Copies the i-th recorded request (0 the first to arrive) to *out. Returns false, leaving
 * *out untouched, if there is no such request. */
bool fault_server_request(struct fault_server *fs, size_t i, struct fault_request *out);

/* Forgets the recorded requests and the queued modes and goes back to FAULT_OK. Requests
 * hanging now keep hanging until released. */
void fault_server_reset(struct fault_server *fs);

/* Waits up to timeout_ms for at least n requests to have been recorded. Returns whether they
 * were. */
bool fault_server_wait_count(struct fault_server *fs, size_t n, int timeout_ms);

#endif
