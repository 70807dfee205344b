/* httpc_int.h — the HTTP client's call split in two halves (prepare a libcurl handle,
 * turn a finished transfer into a result), shared by the blocking ward_httpc_do and the
 * event loop's ward_httpc_send, so that both build requests and map errors the same way. */
#ifndef WARD_LIB_HTTPC_INT_H
#define WARD_LIB_HTTPC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include <ward/httpc.h>

/* What one transfer collects: the body up to the limit and the final response's headers. */
struct ward__sink {
    char *body;
    size_t len, cap, max;
    char *hdr; /* "name\0value\0" pairs */
    size_t hlen, hcap;
    bool too_large, nomem;
};

/* One call between its two halves. The handle reads the call's url (copied by libcurl)
 * and body (not copied): the call's body must stay valid until ward__httpc_end. */
struct ward__httpc_xfer {
    CURL *h;                 /* from the client's pool; NULL before it is taken */
    struct curl_slist *hdrs; /* the request headers, owned */
    struct ward__sink k;
    int64_t start;  /* on the client's clock */
    int64_t budget; /* ns: the smaller of the deadline's and the total timeout */
    bool by_deadline;
    char method[40]; /* for the metrics: the call's (truncated) or "GET" */
};

/* First half: zeroes *res, checks the call, works out the budget, builds the headers,
 * takes a handle from c's pool and sets every option on it. OK: x->h is ready for
 * curl_easy_perform or a multi handle (then call ward__httpc_end). Any other error is
 * ward_httpc_do's final answer: res is complete (elapsed, sent false), the call is
 * counted and x holds nothing. */
enum ward_err ward__httpc_begin(struct ward_httpc *c, const struct ward_http_call *call,
                                struct ward__httpc_xfer *x, struct ward_http_result *res);

/* Second half, after the transfer ended with e (the handle already out of any multi
 * handle): fills *res, maps e to ward_httpc_do's errors, gives the handle back to the
 * pool, frees what x holds and counts the call. Returns ward_httpc_do's answer. */
enum ward_err ward__httpc_end(struct ward_httpc *c, struct ward__httpc_xfer *x, CURLcode e,
                              struct ward_http_result *res);

/* c's clock (never NULL: the real one when the settings had none). */
const struct ward_clock *ward__httpc_clock(const struct ward_httpc *c);

/* A call deep-copied into one allocation (strings, header lines, body), so that an
 * event-driven call may outlive the caller's stack. */
struct ward__call_copy {
    struct ward_http_call call; /* points into mem */
    void *mem;
};

/* Copies *src into *dst. INVAL when src->body is NULL with a length; NOMEM. On failure
 * *dst holds nothing (freeing it is harmless). */
enum ward_err ward__call_copy(struct ward__call_copy *dst, const struct ward_http_call *src);

/* Frees what dst holds and zeroes it. */
void ward__call_copy_free(struct ward__call_copy *dst);

#endif
