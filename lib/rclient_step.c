/* rclient_step.c — the resilient client's policy as public steps (ward_rcall_*), so that
 * a program with its own event loop and its own transport (the gateway's engine) runs
 * the very decisions of ward_rclient_call: deadline, bulkhead, limiter, breaker,
 * discovery and balancing, retries and their budget. */
#include "rclient_int.h"

#include <stdlib.h>

struct ward_rcall {
    struct ward__rcall q;
};

static enum ward_rstep step_of(enum ward__rstep s)
{
    return s == WARD__RSTEP_SEND ? WARD_RSTEP_SEND
           : s == WARD__RSTEP_WAIT ? WARD_RSTEP_WAIT
                                   : WARD_RSTEP_DONE;
}

enum ward_err ward_rcall_new(struct ward_rclient *rc, const struct ward_http_call *call,
                             struct ward_rcall **out, enum ward_rstep *step, int64_t *wait_ns)
{
    if (rc == NULL || call == NULL || out == NULL || step == NULL || wait_ns == NULL)
        return WARD_ERR_INVAL;
    struct ward_rcall *c = calloc(1, sizeof *c);
    if (c == NULL)
        return WARD_ERR_NOMEM;
    *step = step_of(ward__rcall_start(&c->q, rc, call, wait_ns));
    *out = c;
    return WARD_ERR_OK;
}

enum ward_rstep ward_rcall_attempt(struct ward_rcall *c, struct ward_http_call *out,
                                   int64_t *wait_ns)
{
    return step_of(ward__rcall_attempt(&c->q, out, wait_ns));
}

enum ward_rstep ward_rcall_outcome(struct ward_rcall *c, enum ward_err err,
                                   const struct ward_http_result *res, int64_t *wait_ns)
{
    return step_of(ward__rcall_outcome(&c->q, err, res, wait_ns));
}

enum ward_err ward_rcall_end(struct ward_rcall *c, bool *sent_any)
{
    if (c == NULL)
        return WARD_ERR_INVAL;
    enum ward_err err = ward__rcall_finish(&c->q);
    if (sent_any != NULL)
        *sent_any = c->q.sent_any;
    free(c);
    return err;
}
