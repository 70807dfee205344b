/* respond.c — how a handler answers when its store failed: the database's trouble is the
 * client's 503 (retry later), a constraint is a 409, anything else our 500 — the same
 * mapping in every service. */
#include <ward/store.h>

#include <ward/log.h>
#include <ward/problem.h>

void ward_store_respond_error(struct ward_req *req, enum ward_err err)
{
    switch (err) {
    case WARD_ERR_STORE_DOWN:
    case WARD_ERR_TIMEOUT:
    case WARD_ERR_RETRY:
        if (ward_req_set_header(req, "Retry-After", "1") != WARD_ERR_OK) {
            ward_req_respond_problem(req, NULL);
            return;
        }
        ward_req_fail(req, WARD_PROBLEM_UNAVAILABLE, "the database is unavailable (%s); retry later",
                      ward_strerror(err));
        return;
    case WARD_ERR_CONSTRAINT:
        ward_req_fail(req, WARD_PROBLEM_CONFLICT, "the change conflicts with the stored state");
        return;
    default:
        WARD_ERROR(ward_req_log(req), ward_req_log_ctx(req), "store failed",
                   WARD_S("error", ward_strerror(err)));
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "internal error");
        return;
    }
}
