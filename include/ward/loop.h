/* loop.h — an event loop on its own thread: libcurl's multi interface for non-blocking
 * HTTP calls with completion callbacks, timers on a (possibly fake) clock, and functions
 * posted from other threads. The event-driven form of httpc.h and rclient.h runs on it. */
#ifndef WARD_LOOP_H
#define WARD_LOOP_H

#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/httpc.h>

struct ward_loop;

struct ward_loop_settings {
    const struct ward_clock *clock; /* timers and the HTTP deadlines; NULL (default) = the
                                     * real clock; must outlive the loop */
    const struct ward_httpc_settings *httpc; /* the loop's own HTTP client (its timeouts,
                                              * body limit, handle pool); copied; NULL
                                              * (default) = the httpc defaults; its clock
                                              * is ignored: the loop's is used */
};

/* A function run on the loop thread. */
typedef void ward_loop_fn(void *arg);

/* Called once, on the loop thread, when a ward_httpc_send call ends. err and *res are as
 * ward_httpc_do would have returned and filled them. res points to the loop's storage,
 * valid during the callback only; what it holds (body, headers) is the callback's: copy
 * the struct to keep it (`struct ward_http_result mine = *res;`) and release it with
 * ward_http_result_fini, or release it at once. */
typedef void ward_httpc_done_fn(enum ward_err err, struct ward_http_result *res, void *arg);

/* Fills s with the defaults above. */
void ward_loop_settings_default(struct ward_loop_settings *s);

/* Creates a loop from s (NULL = the defaults) and starts its thread, with every signal
 * blocked in it (so that SIGTERM and SIGINT stay with the thread running
 * ward_server_run). INVAL on a NULL out or a bad httpc setting; NOMEM; SYSTEM when
 * libcurl, the thread or a lock cannot be created. On success the caller owns *out
 * (ward_loop_free); on failure *out is untouched. */
WARD_MUST_CHECK enum ward_err ward_loop_new(const struct ward_loop_settings *s,
                                            struct ward_loop **out);

/* Stops and frees loop. NULL is a no-op. From then on the entry points refuse work from
 * other threads (STATE); the loop thread drains what it has: functions posted before run,
 * pending timers fire at once (without moving a fake clock), transfers in flight are
 * aborted and every ward_httpc_send not yet finished (including those made from
 * callbacks while draining) completes with WARD_ERR_STATE and res->sent true when it may
 * have gone out — so every callback still runs exactly once, on the loop thread. Then the
 * thread ends and is joined. Callbacks that keep re-arming timers while draining keep the
 * loop alive: stop re-arming when a send completes with STATE. Must not be called from
 * the loop thread itself (nor from a callback). */
void ward_loop_free(struct ward_loop *loop);

/* Runs fn(arg) on the loop thread, after the functions posted before it. Thread-safe,
 * from any thread including the loop's own. INVAL on NULL loop or fn; NOMEM; STATE when
 * ward_loop_free has begun and the caller is not the loop thread (fn will not run). */
WARD_MUST_CHECK enum ward_err ward_loop_post(struct ward_loop *loop, ward_loop_fn *fn,
                                             void *arg);

/* Runs fn(arg) on the loop thread once delay_ns (<= 0: at once) has passed on the loop's
 * clock. Timers run in the order of their due time, then of their arming. On a fake clock
 * nothing waits: when a timer is the next thing due, the loop advances the fake clock to
 * its due time (ward_clock_sleep) and runs it, so a test sees backoffs happen instantly
 * and exactly. Thread-safe; errors as ward_loop_post. */
WARD_MUST_CHECK enum ward_err ward_loop_after(struct ward_loop *loop, int64_t delay_ns,
                                              ward_loop_fn *fn, void *arg);

/* Starts call on loop and returns at once: everything call points to (strings, headers,
 * body) is copied first, so it may live on the caller's stack. The request is built and
 * sent exactly as ward_httpc_do would (same headers, budget from call->deadline on the
 * loop's clock, same errors), on a libcurl multi handle whose connections are kept alive
 * and reused between calls. cb(err, res, arg) runs once on the loop thread when the call
 * ends, also when it fails before sending (INVAL, DEADLINE). Thread-safe. Returns OK (cb
 * will run), or without calling cb: INVAL on a NULL loop, call, call->url or cb, or a
 * body pointer NULL with a length; NOMEM; STATE as ward_loop_post. */
WARD_MUST_CHECK enum ward_err ward_httpc_send(struct ward_loop *loop,
                                              const struct ward_http_call *call,
                                              ward_httpc_done_fn *cb, void *arg);

/* The loop's clock (the real one when the settings had none). */
const struct ward_clock *ward_loop_clock(const struct ward_loop *loop);

/* The loop's own HTTP client, borrowed: to export its metrics (ward_httpc_export) for the
 * calls made through ward_httpc_send. Its blocking calls must not be used. */
struct ward_httpc *ward_loop_httpc(const struct ward_loop *loop);

#endif
