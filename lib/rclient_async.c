/* rclient_async.c — the event-driven resilient call: the steps of rclient_policy.c driven
 * by an event loop (ward_loop_after for the waits, ward_httpc_send for the attempts), so
 * that no thread blocks and the policy is the blocking form's own. */
#include "rclient_int.h"

#include <stdlib.h>

#include "httpc_int.h"

/* One call in flight, owned by the loop's callbacks from submission to cb. */
struct acall {
    struct ward__rcall q;
    struct ward_rclient *rc;
    struct ward_loop *loop;
    struct ward__call_copy cc;
    struct ward_http_result res; /* the last attempt's */
    ward_httpc_done_fn *cb;
    void *arg;
};

static void attempt(void *arg);

/* Ends the call: settles the policy, hands the result to the caller, frees a. */
static void finish(struct acall *a)
{
    enum ward_err err = ward__rcall_finish(&a->q);

    a->res.sent = a->q.sent_any;
    a->cb(err, &a->res, a->arg);
    ward__call_copy_free(&a->cc);
    free(a);
}

/* Follows a step that is WAIT or DONE. */
static void follow(struct acall *a, enum ward__rstep step, int64_t wait_ns)
{
    enum ward_err err;

    if (step == WARD__RSTEP_WAIT) {
        err = ward_loop_after(a->loop, wait_ns, attempt, a);
        if (err == WARD_ERR_OK)
            return;
        a->q.err = err; /* no timer: the call ends here with the loop's refusal */
    }
    finish(a);
}

/* An attempt's completion: its outcome goes to the policy. */
static void sent(enum ward_err err, struct ward_http_result *res, void *arg)
{
    struct acall *a = arg;
    int64_t wait_ns = 0;
    enum ward__rstep step;

    ward_http_result_fini(&a->res);
    a->res = *res;
    *res = (struct ward_http_result){0};
    step = ward__rcall_outcome(&a->q, err, &a->res, &wait_ns);
    follow(a, step, wait_ns);
}

/* After a wait: asks the policy for an attempt and sends it. */
static void attempt(void *arg)
{
    struct acall *a = arg;
    struct ward_http_call out;
    struct ward_http_result none = {0};
    int64_t wait_ns = 0;
    enum ward__rstep step = ward__rcall_attempt(&a->q, &out, &wait_ns);
    enum ward_err err;

    if (step != WARD__RSTEP_SEND) {
        follow(a, step, wait_ns);
        return;
    }
    err = ward_httpc_send(a->loop, &out, sent, a);
    if (err != WARD_ERR_OK)
        sent(err, &none, a); /* a local error: the policy stops and settles the breaker */
}

/* Admission, on the loop thread. */
static void start(void *arg)
{
    struct acall *a = arg;
    int64_t wait_ns = 0;
    enum ward__rstep step = ward__rcall_start(&a->q, a->rc, &a->cc.call, &wait_ns);

    follow(a, step, wait_ns);
}

enum ward_err ward_rclient_call_async(struct ward_rclient *rc, struct ward_loop *loop,
                                      const struct ward_http_call *call,
                                      ward_httpc_done_fn *cb, void *arg)
{
    struct acall *a = NULL;
    enum ward_err err = WARD_ERR_INVAL;

    if (rc == NULL || loop == NULL || call == NULL || cb == NULL ||
        ward_loop_clock(loop) != rc->clock)
        goto fail;
    err = WARD_ERR_NOMEM;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        goto fail;
    err = ward__call_copy(&a->cc, call);
    if (err != WARD_ERR_OK)
        goto fail;
    a->rc = rc;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    err = ward_loop_post(loop, start, a);
    if (err != WARD_ERR_OK)
        goto fail;
    return WARD_ERR_OK;
fail:
    if (a != NULL)
        ward__call_copy_free(&a->cc);
    free(a);
    return err;
}
