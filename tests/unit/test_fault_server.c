/* test_fault_server.c — unit tests of the fault server: each mode, the queue, the records and
 * a prompt stop, driven by libcurl. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "fault_server.h"

#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"

static struct fault_server *fs;

static void setup(void)
{
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    fs = fault_server_start();
    cr_assert_not_null(fs);
}

static void teardown(void)
{
    fault_server_stop(fs);
    fs = NULL;
    curl_global_cleanup();
}

TestSuite(fault_server, .init = setup, .fini = teardown, .timeout = 20);

/* What a client saw of one exchange. */
struct reply {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char retry_after[128]; /* "" when absent */
    char content_type[128];
    char extra[128]; /* the X-Extra header */
};

/* What a client sends. */
struct call {
    const char *method; /* NULL: GET */
    const char *path;
    const char *body; /* sent with body_len bytes, or strlen when body_len is 0 */
    size_t body_len;
    const char *headers[8]; /* "Name: value", NULL-terminated */
    long timeout_ms;        /* 0: 5000 */
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    char *grown = realloc(r->body, r->len + size * n + 1);

    cr_assert_not_null(grown);
    memcpy(grown + r->len, data, size * n);
    r->len += size * n;
    grown[r->len] = '\0';
    r->body = grown;
    return size * n;
}

static void header_value(CURL *h, const char *name, char *dst, size_t cap)
{
    struct curl_header *hv = NULL;

    dst[0] = '\0';
    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hv) == CURLHE_OK)
        snprintf(dst, cap, "%s", hv->value);
}

static struct reply perform(struct fault_server *srv, const struct call *c)
{
    struct reply r = {0};
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    char url[600];

    cr_assert_not_null(h);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)fault_server_port(srv),
             c->path != NULL ? c->path : "/");
    for (size_t i = 0; i < 8 && c->headers[i] != NULL; i++)
        hdrs = curl_slist_append(hdrs, c->headers[i]);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method != NULL ? c->method : "GET");
    if (c->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(c->body_len != 0 ? c->body_len : strlen(c->body)));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms != 0 ? c->timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    r.rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    header_value(h, "Retry-After", r.retry_after, sizeof(r.retry_after));
    header_value(h, "Content-Type", r.content_type, sizeof(r.content_type));
    header_value(h, "X-Extra", r.extra, sizeof(r.extra));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return r;
}

static struct reply get(const char *path)
{
    return perform(fs, &(struct call){.path = path});
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* A call made from another thread, for answers that block. */
struct bg {
    pthread_t th;
    struct fault_server *srv;
    struct call call;
    struct reply reply;
};

static void *bg_main(void *arg)
{
    struct bg *b = arg;

    b->reply = perform(b->srv, &b->call);
    return NULL;
}

static void bg_start(struct bg *b, struct fault_server *srv, const char *path)
{
    *b = (struct bg){.srv = srv, .call = {.path = path}};
    cr_assert_eq(pthread_create(&b->th, NULL, bg_main, b), 0);
}

static struct reply bg_join(struct bg *b)
{
    cr_assert_eq(pthread_join(b->th, NULL), 0);
    return b->reply;
}

Test(fault_server, ok_echoes_method_path_and_sequence_as_json)
{
    struct reply a = get("/hello"), b = perform(fs, &(struct call){.method = "DELETE",
                                                                    .path = "/items/7"});

    cr_assert_eq(a.rc, CURLE_OK);
    cr_assert_eq(a.status, 200);
    cr_assert_str_eq(a.body, "{\"method\":\"GET\",\"path\":\"/hello\",\"seq\":0}");
    cr_assert_str_eq(a.content_type, "application/json");
    cr_assert_str_eq(b.body, "{\"method\":\"DELETE\",\"path\":\"/items/7\",\"seq\":1}");
    cr_assert_neq(fault_server_port(fs), 0);
    free(a.body);
    free(b.body);
}

Test(fault_server, ok_answers_the_configured_status_body_and_content_type)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_OK,
                                                         .status = 201,
                                                         .body = "made",
                                                         .content_type = "text/plain"}));
    struct reply r = get("/");

    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "made");
    cr_assert_str_eq(r.content_type, "text/plain");
    free(r.body);
}

Test(fault_server, status_answers_each_given_code)
{
    static const unsigned codes[] = {500, 502, 503, 504, 400, 404};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_STATUS,
                                                             .status = codes[i]}));
        struct reply r = get("/x");

        cr_assert_eq(r.rc, CURLE_OK);
        cr_assert_eq(r.status, (long)codes[i]);
        free(r.body);
    }
}

Test(fault_server, status_defaults_to_500_with_a_json_problem_or_the_given_body)
{
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_STATUS}, 1));
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 502,
                                                          .body = "{\"e\":1}"}, 1));
    struct reply a = get("/"), b = get("/");

    cr_assert_eq(a.status, 500);
    cr_assert_str_eq(a.body, "{\"title\":\"fault\",\"status\":500}");
    cr_assert_eq(b.status, 502);
    cr_assert_str_eq(b.body, "{\"e\":1}");
    free(a.body);
    free(b.body);
}

Test(fault_server, too_many_requests_sends_retry_after_in_seconds)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_429, .retry_after_s = 7}));
    struct reply r = get("/");

    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(r.retry_after, "7");
    free(r.body);
}

Test(fault_server, too_many_requests_sends_the_http_date_verbatim)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_429,
                                                         .retry_after_date = DATE}));
    struct reply r = get("/");

    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(r.retry_after, DATE);
    free(r.body);
}

Test(fault_server, too_many_requests_omits_retry_after_when_seconds_are_negative)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_429,
                                                         .retry_after_s = -1}));
    struct reply r = get("/");

    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(r.retry_after, "");
    free(r.body);
}

Test(fault_server, slow_answers_ok_after_at_least_its_delay)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_SLOW, .delay_ms = 150}));
    uint64_t t0 = now_ns();
    struct reply r = get("/slow");
    uint64_t took = now_ns() - t0;

    cr_assert_eq(r.status, 200);
    cr_assert_geq(took, UINT64_C(150000000));
    cr_assert_str_eq(r.body, "{\"method\":\"GET\",\"path\":\"/slow\",\"seq\":0}");
    free(r.body);
}

Test(fault_server, hang_makes_the_client_time_out)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG}));
    struct reply r = perform(fs, &(struct call){.path = "/h", .timeout_ms = 200});

    cr_assert_eq(r.rc, CURLE_OPERATION_TIMEDOUT);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(fault_server_count(fs), 1);
    free(r.body);
}

Test(fault_server, hang_answers_ok_once_released)
{
    struct bg b;

    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG, .status = 202}));
    bg_start(&b, fs, "/h");
    cr_assert(fault_server_wait_count(fs, 1, 5000));
    fault_server_release(fs);
    struct reply r = bg_join(&b);

    cr_assert_eq(r.rc, CURLE_OK);
    cr_assert_eq(r.status, 202);
    free(r.body);
}

Test(fault_server, hang_blocks_only_its_own_connection)
{
    struct bg b;

    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_HANG}, 1));
    bg_start(&b, fs, "/h");
    cr_assert(fault_server_wait_count(fs, 1, 5000));
    struct reply r = get("/other");

    cr_assert_eq(r.status, 200);
    fault_server_release(fs);
    struct reply h = bg_join(&b);

    cr_assert_eq(h.status, 200);
    free(r.body);
    free(h.body);
}

Test(fault_server, close_ends_the_connection_with_no_answer)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_CLOSE}));
    struct reply r = get("/c");

    cr_assert_eq(r.rc, CURLE_GOT_NOTHING);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(fault_server_count(fs), 1);
    free(r.body);
}

Test(fault_server, big_sends_exactly_the_given_number_of_bytes)
{
    size_t n = ((size_t)3 << 20) + 7;

    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_BIG, .big_bytes = n}, 1));
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_BIG}, 1));
    struct reply r = get("/big"), e = get("/empty");

    cr_assert_eq(r.rc, CURLE_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, n);
    cr_assert_eq(r.body[0], 'x');
    cr_assert_eq(r.body[n - 1], 'x');
    cr_assert_eq(e.status, 200);
    cr_assert_eq(e.len, 0);
    free(r.body);
    free(e.body);
}

Test(fault_server, extra_headers_are_added_to_the_answer)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503,
                                                         .headers = {{"X-Extra", "yes"}}}));
    struct reply r = get("/");

    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.extra, "yes");
    free(r.body);
}

Test(fault_server, queued_modes_apply_in_order_then_the_set_mode)
{
    static const long want[] = {500, 500, 429, 503, 503};
    struct fault_request rec;

    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503}));
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 500}, 2));
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_429}, 1));
    for (size_t i = 0; i < 5; i++) {
        struct reply r = get("/q");

        cr_assert_eq(r.status, want[i], "request %zu", i);
        free(r.body);
    }
    cr_assert(fault_server_request(fs, 2, &rec));
    cr_assert_eq(rec.kind, FAULT_429);
    cr_assert(fault_server_request(fs, 3, &rec));
    cr_assert_eq(rec.kind, FAULT_STATUS);
}

Test(fault_server, push_refuses_fewer_than_one_time)
{
    cr_assert_not(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_CLOSE}, 0));
    struct reply r = get("/");

    cr_assert_eq(r.status, 200);
    free(r.body);
}

Test(fault_server, records_method_path_headers_body_and_arrival)
{
    static const char body[] = "{\"amount\":100}";
    struct fault_request rec;
    uint64_t t0 = now_ns();
    struct reply r = perform(fs, &(struct call){
        .method = "POST",
        .path = "/payments?x=1",
        .body = body,
        .headers = {"X-Request-Timeout-Ms: 250", "X-Request-Id: req-1",
                    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "Idempotency-Key: k-42", "Content-Type: application/json"}});
    uint64_t t1 = now_ns();

    cr_assert_eq(r.status, 200);
    cr_assert_eq(fault_server_count(fs), 1);
    cr_assert(fault_server_request(fs, 0, &rec));
    cr_assert_str_eq(rec.method, "POST");
    cr_assert_str_eq(rec.path, "/payments");
    cr_assert_str_eq(rec.timeout_ms, "250");
    cr_assert_str_eq(rec.request_id, "req-1");
    cr_assert_str_eq(rec.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    cr_assert_str_eq(rec.idempotency_key, "k-42");
    cr_assert_str_eq(rec.content_type, "application/json");
    cr_assert_str_eq(rec.body, body);
    cr_assert_eq(rec.body_len, strlen(body));
    cr_assert_geq(rec.arrived_ns, t0);
    cr_assert_leq(rec.arrived_ns, t1);
    cr_assert_eq(rec.kind, FAULT_OK);
    cr_assert_not(fault_server_request(fs, 1, &rec));
    free(r.body);
}

Test(fault_server, records_absent_headers_as_empty)
{
    struct fault_request rec;
    struct reply r = get("/plain");

    cr_assert(fault_server_request(fs, 0, &rec));
    cr_assert_str_eq(rec.timeout_ms, "");
    cr_assert_str_eq(rec.request_id, "");
    cr_assert_str_eq(rec.traceparent, "");
    cr_assert_str_eq(rec.idempotency_key, "");
    cr_assert_str_eq(rec.body, "");
    cr_assert_eq(rec.body_len, 0);
    free(r.body);
}

Test(fault_server, reads_a_large_body_fully_before_answering)
{
    size_t n = 700 * 1000;
    char *big = malloc(n);
    struct fault_request rec;

    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    struct reply r = perform(fs, &(struct call){.method = "PUT", .path = "/up", .body = big,
                                                .body_len = n});

    cr_assert_eq(r.status, 200);
    cr_assert(fault_server_request(fs, 0, &rec));
    cr_assert_eq(rec.body_len, n);
    cr_assert_eq(strlen(rec.body), FAULT_RECORD_BODY);
    cr_assert_eq(memcmp(rec.body, big, FAULT_RECORD_BODY), 0);
    free(big);
    free(r.body);
}

Test(fault_server, body_over_the_limit_is_answered_413)
{
    size_t n = FAULT_BODY_LIMIT + 1;
    char *big = calloc(1, n);
    struct fault_request rec;

    cr_assert_not_null(big);
    memset(big, 'b', n);
    struct reply r = perform(fs, &(struct call){.method = "POST", .body = big, .body_len = n});

    cr_assert_eq(r.status, 413);
    cr_assert(fault_server_request(fs, 0, &rec));
    cr_assert_eq(rec.body_len, n);
    free(big);
    free(r.body);
}

Test(fault_server, reset_forgets_records_and_queue_and_answers_ok)
{
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503}));
    cr_assert(fault_server_push(fs, &(struct fault_mode){.kind = FAULT_CLOSE}, 3));
    struct reply a = get("/");

    cr_assert_eq(a.rc, CURLE_GOT_NOTHING);
    fault_server_reset(fs);
    cr_assert_eq(fault_server_count(fs), 0);
    struct reply b = get("/after");

    cr_assert_eq(b.status, 200);
    cr_assert_str_eq(b.body, "{\"method\":\"GET\",\"path\":\"/after\",\"seq\":0}");
    cr_assert_eq(fault_server_count(fs), 1);
    free(a.body);
    free(b.body);
}

Test(fault_server, wait_count_reports_whether_enough_requests_arrived)
{
    cr_assert_not(fault_server_wait_count(fs, 1, 30));
    struct reply r = get("/");

    cr_assert(fault_server_wait_count(fs, 1, 0));
    cr_assert_not(fault_server_wait_count(fs, 2, 0));
    free(r.body);
}

Test(fault_server, stop_with_a_hanging_request_returns_within_a_second)
{
    struct fault_server *other = fault_server_start();
    struct bg b;

    cr_assert_not_null(other);
    cr_assert_neq(fault_server_port(other), fault_server_port(fs));
    cr_assert(fault_server_set(other, &(struct fault_mode){.kind = FAULT_HANG}));
    bg_start(&b, other, "/h");
    cr_assert(fault_server_wait_count(other, 1, 5000));
    uint64_t t0 = now_ns();

    fault_server_stop(other);
    cr_assert_lt(now_ns() - t0, UINT64_C(1000000000));
    struct reply r = bg_join(&b);

    cr_assert_neq(r.rc, CURLE_OK);
    cr_assert_neq(r.rc, CURLE_OPERATION_TIMEDOUT);
    free(r.body);
    fault_server_stop(NULL);
}
