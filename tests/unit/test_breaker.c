/* test_breaker.c — unit tests of the circuit breaker on a fake clock: gobreaker's own cases
 * as behaviours, then what ward adds (excluded outcomes, probe deadline, growing open
 * duration, sliding windows, metrics). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/breaker.h>
#include <ward/metrics.h>

#define S WARD_NS_PER_S

/* What on_state_change saw. */
struct seen {
    int n;
    char name[16];
    enum ward_breaker_state from[16];
    enum ward_breaker_state to[16];
    struct ward_breaker *br; /* for callbacks that call back in */
    int nested;              /* how many times the callback called into br */
};

static struct ward_clock *clk;

static void setup(void)
{
    clk = ward_clock_fake_new(0);
    cr_assert_not_null(clk);
}

static void teardown(void)
{
    ward_clock_free(clk);
}

TestSuite(breaker, .init = setup, .fini = teardown);

static void record_change(const char *name, enum ward_breaker_state from,
                          enum ward_breaker_state to, void *arg)
{
    struct seen *s = arg;

    cr_assert_lt(s->n, 16);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->from[s->n] = from;
    s->to[s->n] = to;
    s->n++;
}

static void expect_change(const struct seen *s, int i, enum ward_breaker_state from,
                          enum ward_breaker_state to)
{
    cr_assert_gt(s->n, i);
    cr_assert_eq(s->from[i], from, "change %d from", i);
    cr_assert_eq(s->to[i], to, "change %d to", i);
}

static struct ward_breaker *make(struct ward_breaker_settings *s)
{
    struct ward_breaker *br = NULL;

    s->clock = clk;
    cr_assert_eq(ward_breaker_new(s, &br), WARD_ERR_OK);
    return br;
}

static struct ward_breaker *make_default(void)
{
    struct ward_breaker_settings s;

    memset(&s, 0, sizeof s);
    return make(&s);
}

static enum ward_breaker_outcome ok_fn(void *arg)
{
    (void)arg;
    return WARD_BREAKER_SUCCESS;
}

static enum ward_breaker_outcome fail_fn(void *arg)
{
    (void)arg;
    return WARD_BREAKER_FAILURE;
}

static enum ward_err succeed(struct ward_breaker *br)
{
    return ward_breaker_execute(br, ok_fn, NULL);
}

static enum ward_err fail(struct ward_breaker *br)
{
    return ward_breaker_execute(br, fail_fn, NULL);
}

static void fail_n(struct ward_breaker *br, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(fail(br), WARD_ERR_OK);
}

static void expect_counts(struct ward_breaker *br, uint64_t req, uint64_t ok, uint64_t bad,
                          uint64_t cons_ok, uint64_t cons_bad)
{
    struct ward_breaker_stats st;

    ward_breaker_stats(br, &st);
    cr_assert_eq(st.counts.requests, req, "requests %lu", (unsigned long)st.counts.requests);
    cr_assert_eq(st.counts.total_successes, ok);
    cr_assert_eq(st.counts.total_failures, bad);
    cr_assert_eq(st.counts.consecutive_successes, cons_ok);
    cr_assert_eq(st.counts.consecutive_failures, cons_bad);
}

static void at(int64_t ns)
{
    ward_clock_fake_set(clk, ns);
}

static bool ratio_trip(const struct ward_breaker_counts *c, void *arg)
{
    (void)arg;
    return c->requests >= 3 && c->total_failures * 10 >= c->requests * 6;
}

/* gobreaker's newCustom: max 3, interval 30 s, timeout 90 s, trips at >= 60 % failures. */
static struct ward_breaker *make_custom(struct seen *seen)
{
    struct ward_breaker_settings s;

    ward_breaker_settings_default(&s);
    s.name = "cb";
    s.max_requests = 3;
    s.interval_ns = 30 * S;
    s.timeout_ns = 90 * S;
    s.ready_to_trip = ratio_trip;
    s.on_state_change = record_change;
    s.arg = seen;
    return make(&s);
}

Test(breaker, settings_default_spells_out_the_defaults)
{
    struct ward_breaker_settings s;

    memset(&s, 0xff, sizeof s);
    ward_breaker_settings_default(&s);
    cr_assert_null(s.name);
    cr_assert_eq(s.max_requests, 1);
    cr_assert_eq(s.interval_ns, 0);
    cr_assert_eq(s.timeout_ns, 60 * S);
    cr_assert_eq(s.probe_deadline_ns, 0);
    cr_assert_eq(s.backoff, 1.0);
    cr_assert_eq(s.max_open_ns, 300 * S);
    cr_assert_null(s.ready_to_trip);
    cr_assert_null(s.on_state_change);
    cr_assert_null(s.is_successful);
    cr_assert_null(s.clock);
    cr_assert_eq(s.window.kind, WARD_BREAKER_WINDOW_NONE);
    cr_assert_eq(s.window.min_calls, 20);
    cr_assert_eq(s.window.failure_rate, 50);
    cr_assert_eq(s.window.slow_call_rate, 100);
    cr_assert_eq(s.window.slow_call_ns, 60 * S);
}

Test(breaker, new_rejects_what_cannot_be_configured)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br = (struct ward_breaker *)&s; /* must stay untouched */
    const double bad_backoff[] = {0.5, -1.0, (double)NAN, (double)INFINITY};

    ward_breaker_settings_default(&s);
    cr_assert_eq(ward_breaker_new(NULL, &br), WARD_ERR_INVAL);
    cr_assert_eq(ward_breaker_new(&s, NULL), WARD_ERR_INVAL);
    for (size_t i = 0; i < sizeof bad_backoff / sizeof bad_backoff[0]; i++) {
        ward_breaker_settings_default(&s);
        s.backoff = bad_backoff[i];
        cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL, "backoff #%zu", i);
    }
    ward_breaker_settings_default(&s);
    s.window.kind = (enum ward_breaker_window_kind)7;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL);
    s.window.kind = WARD_BREAKER_WINDOW_COUNT;
    s.window.failure_rate = 101;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL);
    s.window.failure_rate = 50;
    s.window.slow_call_rate = 101;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL);
    s.window.slow_call_rate = 100;
    s.window.size = 1000001;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL);
    s.window.kind = WARD_BREAKER_WINDOW_TIME;
    s.window.size = 86401;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL);
    s.window.size = 10;
    s.interval_ns = S;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL, "window and interval");
    s.interval_ns = 0;
    s.ready_to_trip = ratio_trip;
    cr_assert_eq(ward_breaker_new(&s, &br), WARD_ERR_INVAL, "window and ready_to_trip");
    cr_assert_eq(br, (struct ward_breaker *)&s);
    ward_breaker_free(NULL);
}

Test(breaker, names_of_states_and_breaker)
{
    struct ward_breaker *br = make_default();

    cr_assert_str_eq(ward_breaker_state_name(WARD_BREAKER_CLOSED), "closed");
    cr_assert_str_eq(ward_breaker_state_name(WARD_BREAKER_HALF_OPEN), "half-open");
    cr_assert_str_eq(ward_breaker_state_name(WARD_BREAKER_OPEN), "open");
    cr_assert_str_eq(ward_breaker_state_name((enum ward_breaker_state)100), "unknown");
    cr_assert_str_eq(ward_breaker_name(br), "");
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

/* gobreaker's TestDefaultCircuitBreaker, on a zeroed settings struct. */
Test(breaker, zeroed_settings_trip_after_six_consecutive_failures_and_recover)
{
    struct ward_breaker *br = make_default();

    fail_n(br, 5);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    expect_counts(br, 5, 0, 5, 0, 5);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    expect_counts(br, 6, 1, 5, 1, 0);
    cr_assert_eq(fail(br), WARD_ERR_OK);
    expect_counts(br, 7, 1, 6, 0, 1);
    fail_n(br, 5);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN, "6 consecutive failures trip");
    expect_counts(br, 0, 0, 0, 0, 0);
    cr_assert_eq(succeed(br), WARD_ERR_OPEN);
    cr_assert_eq(fail(br), WARD_ERR_OPEN);
    expect_counts(br, 0, 0, 0, 0, 0);
    at(60 * S - 1);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    at(60 * S);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN, "open for exactly 60 s");
    cr_assert_eq(fail(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN, "a half-open failure reopens");
    expect_counts(br, 0, 0, 0, 0, 0);
    at(120 * S);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED, "max_requests 0 means 1");
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

/* gobreaker's TestCustomCircuitBreaker. */
Test(breaker, custom_settings_clear_at_interval_trip_by_ratio_and_close_after_three)
{
    struct seen seen = {0};
    struct ward_breaker *br = make_custom(&seen);
    struct ward_breaker_ticket t;

    cr_assert_str_eq(ward_breaker_name(br), "cb");
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(succeed(br), WARD_ERR_OK);
        cr_assert_eq(fail(br), WARD_ERR_OK);
    }
    expect_counts(br, 10, 5, 5, 0, 1);
    at(29 * S);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    expect_counts(br, 11, 6, 5, 1, 0);
    at(30 * S); /* the interval ends: a new generation */
    cr_assert_eq(fail(br), WARD_ERR_OK);
    expect_counts(br, 1, 0, 1, 0, 1);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(fail(br), WARD_ERR_OK); /* 2 of 3 failed */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    expect_counts(br, 0, 0, 0, 0, 0);
    cr_assert_eq(seen.n, 1);
    cr_assert_str_eq(seen.name, "cb");
    expect_change(&seen, 0, WARD_BREAKER_CLOSED, WARD_BREAKER_OPEN);
    at(120 * S);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    expect_change(&seen, 1, WARD_BREAKER_OPEN, WARD_BREAKER_HALF_OPEN);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    expect_counts(br, 2, 2, 0, 2, 0);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK); /* the third probe, in flight */
    expect_counts(br, 3, 2, 0, 2, 0);
    cr_assert_eq(succeed(br), WARD_ERR_TOO_MANY_REQUESTS);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    expect_counts(br, 0, 0, 0, 0, 0);
    expect_change(&seen, 2, WARD_BREAKER_HALF_OPEN, WARD_BREAKER_CLOSED);
    cr_assert_eq(seen.n, 3);
    ward_breaker_free(br);
}

/* gobreaker's TestTwoStepCircuitBreaker. */
Test(breaker, two_step_form_counts_like_execute)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t;

    for (int i = 0; i < 6; i++) {
        cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
        ward_breaker_done(br, t, i == 3 ? WARD_BREAKER_SUCCESS : WARD_BREAKER_FAILURE);
    }
    expect_counts(br, 6, 1, 5, 0, 2);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
        ward_breaker_done(br, t, WARD_BREAKER_FAILURE);
    }
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OPEN);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    ward_breaker_free(br);
}

/* gobreaker's TestGeneration: an outcome from before the interval ended is ignored. */
Test(breaker, outcome_of_an_earlier_interval_is_ignored)
{
    struct seen seen = {0};
    struct ward_breaker *br = make_custom(&seen);
    struct ward_breaker_ticket t;

    at(29 * S);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    expect_counts(br, 2, 1, 0, 1, 0);
    at(30 * S);
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

Test(breaker, outcome_of_an_earlier_state_is_ignored)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket old, zero = {0, 0}, probe;

    cr_assert_eq(ward_breaker_allow(br, &old), WARD_ERR_OK);
    fail_n(br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &probe), WARD_ERR_OK);
    ward_breaker_done(br, old, WARD_BREAKER_FAILURE);
    ward_breaker_done(br, zero, WARD_BREAKER_FAILURE);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN, "stale failures do not reopen");
    expect_counts(br, 1, 0, 0, 0, 0);
    ward_breaker_done(br, probe, WARD_BREAKER_SUCCESS);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    ward_breaker_done(br, probe, WARD_BREAKER_FAILURE); /* the probe's generation is gone */
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

Test(breaker, zeroed_ticket_is_never_current)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket zero = {0, 0};

    ward_breaker_done(br, zero, WARD_BREAKER_FAILURE);
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

static enum ward_breaker_outcome always_ok(int code, void *arg)
{
    (void)code;
    (void)arg;
    return WARD_BREAKER_SUCCESS;
}

/* gobreaker's TestCustomIsSuccessful. */
Test(breaker, is_successful_classifies_codes)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket t;

    memset(&s, 0, sizeof s);
    s.is_successful = always_ok;
    br = make(&s);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
        ward_breaker_done_code(br, t, 503);
    }
    expect_counts(br, 5, 5, 0, 5, 0);
    ward_breaker_free(br);

    br = make_default(); /* the default: 0 succeeds, anything else fails */
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done_code(br, t, 0);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
        ward_breaker_done_code(br, t, -1);
    }
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, outcome_outside_the_enum_counts_as_failure)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t;

    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, (enum ward_breaker_outcome)42);
    expect_counts(br, 1, 0, 1, 0, 1);
    ward_breaker_free(br);
}

static int runs;

static enum ward_breaker_outcome counting_fn(void *arg)
{
    (void)arg;
    runs++;
    return WARD_BREAKER_SUCCESS;
}

Test(breaker, rejections_do_not_run_the_call_and_are_counted_by_reason)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t;
    struct ward_breaker_stats st;

    runs = 0;
    fail_n(br, 6);
    cr_assert_eq(ward_breaker_execute(br, counting_fn, NULL), WARD_ERR_OPEN);
    cr_assert_eq(ward_breaker_execute(br, counting_fn, NULL), WARD_ERR_OPEN);
    cr_assert_eq(runs, 0);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_execute(br, counting_fn, NULL), WARD_ERR_TOO_MANY_REQUESTS);
    cr_assert_eq(runs, 0);
    ward_breaker_stats(br, &st);
    cr_assert_eq(st.rejected_open, 2);
    cr_assert_eq(st.rejected_too_many, 1);
    cr_assert_eq(st.transitions, 2);
    cr_assert_eq(ward_breaker_allow(NULL, &t), WARD_ERR_INVAL);
    cr_assert_eq(ward_breaker_allow(br, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_breaker_execute(br, NULL, NULL), WARD_ERR_INVAL);
    ward_breaker_done(NULL, t, WARD_BREAKER_SUCCESS);
    ward_breaker_done_code(NULL, t, 0);
    ward_breaker_free(br);
}

Test(breaker, half_open_one_failure_reopens_even_after_successes)
{
    struct seen seen = {0};
    struct ward_breaker *br = make_custom(&seen);

    fail_n(br, 3);
    at(90 * S);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    cr_assert_eq(fail(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    expect_change(&seen, 2, WARD_BREAKER_HALF_OPEN, WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, interval_zero_never_clears_counts_while_closed)
{
    struct ward_breaker *br = make_default();

    fail_n(br, 5);
    at(86400 * S);
    expect_counts(br, 5, 0, 5, 0, 5);
    cr_assert_eq(fail(br), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, interval_keeps_its_grid_and_clears_once_after_a_quiet_spell)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_stats st;
    uint64_t gen;

    memset(&s, 0, sizeof s);
    s.interval_ns = 10 * S;
    br = make(&s);
    ward_breaker_stats(br, &st);
    gen = st.generation;
    fail_n(br, 2);
    at(35 * S); /* three intervals passed: one new generation */
    cr_assert_eq(fail(br), WARD_ERR_OK);
    ward_breaker_stats(br, &st);
    cr_assert_eq(st.generation, gen + 1);
    expect_counts(br, 1, 0, 1, 0, 1);
    at(40 * S - 1);
    cr_assert_eq(fail(br), WARD_ERR_OK);
    expect_counts(br, 2, 0, 2, 0, 2);
    at(40 * S); /* the grid's next line, not 35 + 10 */
    expect_counts(br, 0, 0, 0, 0, 0);
    ward_breaker_free(br);
}

Test(breaker, excluded_counts_as_neither_success_nor_failure)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t;

    fail_n(br, 5);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_EXCLUDED);
    expect_counts(br, 5, 0, 5, 0, 5);
    cr_assert_eq(ward_breaker_execute(br, fail_fn, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN, "the streak was not broken");
    ward_breaker_free(br);
}

Test(breaker, excluded_probe_frees_its_half_open_slot)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t, other;

    fail_n(br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    cr_assert_eq(ward_breaker_allow(br, &other), WARD_ERR_TOO_MANY_REQUESTS);
    ward_breaker_done(br, t, WARD_BREAKER_EXCLUDED);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    expect_counts(br, 0, 0, 0, 0, 0);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    ward_breaker_free(br);
}

Test(breaker, unanswered_probe_reopens_after_the_probe_deadline)
{
    struct seen seen = {0};
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket lost, t;

    memset(&s, 0, sizeof s); /* probe deadline defaults to the timeout, 60 s */
    s.on_state_change = record_change;
    s.arg = &seen;
    br = make(&s);
    fail_n(br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &lost), WARD_ERR_OK);
    at(120 * S - 1);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_TOO_MANY_REQUESTS);
    at(120 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OPEN, "reopened at the deadline");
    cr_assert_eq(seen.n, 3);
    expect_change(&seen, 2, WARD_BREAKER_HALF_OPEN, WARD_BREAKER_OPEN);
    ward_breaker_done(br, lost, WARD_BREAKER_SUCCESS); /* too late: ignored */
    at(180 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    ward_breaker_free(br);
}

Test(breaker, probe_deadline_runs_only_while_probes_are_out)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket t;

    memset(&s, 0, sizeof s);
    s.max_requests = 2;
    s.probe_deadline_ns = 5 * S;
    br = make(&s);
    fail_n(br, 6);
    at(60 * S);
    at(86400 * S); /* nobody probes for a day: still half-open */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    at(86400 * S + 10 * S); /* answered: no deadline pending */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    at(86400 * S + 15 * S - 1);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
    at(86400 * S + 15 * S);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, probe_deadline_counts_from_the_first_outstanding_probe)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket a, b;

    memset(&s, 0, sizeof s);
    s.max_requests = 3;
    s.probe_deadline_ns = 5 * S;
    br = make(&s);
    fail_n(br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &a), WARD_ERR_OK);
    at(63 * S);
    cr_assert_eq(ward_breaker_allow(br, &b), WARD_ERR_OK);
    at(64 * S);
    ward_breaker_done(br, a, WARD_BREAKER_SUCCESS); /* b is still out, since 60 s */
    at(65 * S);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, clock_at_its_maximum_neither_hangs_nor_wraps)
{
    struct ward_breaker *br = make_default();
    struct ward_breaker_ticket t;

    at(INT64_MAX);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
    expect_counts(br, 1, 1, 0, 1, 0);
    at(INT64_MAX - 10);
    fail_n(br, 6);
    at(INT64_MAX);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN, "open until the end of time");
    ward_breaker_free(br);
}

Test(breaker, long_quiet_after_a_lost_probe_goes_open_then_half_open_in_one_call)
{
    struct seen seen = {0};
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket t;

    memset(&s, 0, sizeof s);
    s.on_state_change = record_change;
    s.arg = &seen;
    br = make(&s);
    fail_n(br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK); /* lost */
    at(86400 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK, "reopened at 120 s, half-open at 180 s");
    cr_assert_eq(seen.n, 4);
    expect_change(&seen, 2, WARD_BREAKER_HALF_OPEN, WARD_BREAKER_OPEN);
    expect_change(&seen, 3, WARD_BREAKER_OPEN, WARD_BREAKER_HALF_OPEN);
    ward_breaker_free(br);
}

/* Trips a half-open breaker again and checks how long it then stays open. */
static void expect_open_for(struct ward_breaker *br, int64_t *now, int64_t open_ns)
{
    struct ward_breaker_stats st;

    cr_assert_eq(fail(br), WARD_ERR_OK);
    ward_breaker_stats(br, &st);
    cr_assert_eq(st.state, WARD_BREAKER_OPEN);
    cr_assert_eq(st.open_ns, open_ns, "open %ld ns", (long)st.open_ns);
    at(*now + open_ns - 1);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    *now += open_ns;
    at(*now);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_HALF_OPEN);
}

Test(breaker, open_duration_grows_on_repeated_trips_up_to_the_cap_and_resets_on_close)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_stats st;
    int64_t now = 0;

    memset(&s, 0, sizeof s);
    s.timeout_ns = 10 * S;
    s.backoff = 2.0;
    s.max_open_ns = 35 * S;
    br = make(&s);
    fail_n(br, 5);
    expect_open_for(br, &now, 10 * S);
    expect_open_for(br, &now, 20 * S);
    expect_open_for(br, &now, 35 * S);
    expect_open_for(br, &now, 35 * S);
    ward_breaker_stats(br, &st);
    cr_assert_eq(st.trips, 4);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    ward_breaker_stats(br, &st);
    cr_assert_eq(st.state, WARD_BREAKER_CLOSED);
    cr_assert_eq(st.trips, 0);
    fail_n(br, 5);
    expect_open_for(br, &now, 10 * S);
    ward_breaker_free(br);
}

Test(breaker, cap_below_the_timeout_is_the_timeout)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    int64_t now = 0;

    memset(&s, 0, sizeof s);
    s.timeout_ns = 10 * S;
    s.backoff = 3.0;
    s.max_open_ns = S;
    br = make(&s);
    fail_n(br, 5);
    expect_open_for(br, &now, 10 * S);
    expect_open_for(br, &now, 10 * S);
    ward_breaker_free(br);
}

/* A callback that calls back in: on half-open it sends a failing probe. */
static void probe_on_half_open(const char *name, enum ward_breaker_state from,
                               enum ward_breaker_state to, void *arg)
{
    struct seen *s = arg;
    struct ward_breaker_stats st;

    record_change(name, from, to, arg);
    ward_breaker_stats(s->br, &st);
    if (to == WARD_BREAKER_HALF_OPEN && s->nested++ == 0)
        cr_assert_eq(ward_breaker_execute(s->br, fail_fn, NULL), WARD_ERR_OK);
}

Test(breaker, state_change_callback_may_call_into_the_breaker)
{
    struct seen seen = {0};
    struct ward_breaker_settings s;

    memset(&s, 0, sizeof s);
    s.on_state_change = probe_on_half_open;
    s.arg = &seen;
    seen.br = make(&s);
    fail_n(seen.br, 6);
    at(60 * S);
    cr_assert_eq(ward_breaker_state(seen.br), WARD_BREAKER_HALF_OPEN, "the state it saw");
    cr_assert_eq(ward_breaker_state(seen.br), WARD_BREAKER_OPEN, "the callback's probe failed");
    cr_assert_eq(seen.n, 3);
    expect_change(&seen, 0, WARD_BREAKER_CLOSED, WARD_BREAKER_OPEN);
    expect_change(&seen, 1, WARD_BREAKER_OPEN, WARD_BREAKER_HALF_OPEN);
    expect_change(&seen, 2, WARD_BREAKER_HALF_OPEN, WARD_BREAKER_OPEN);
    ward_breaker_free(seen.br);
}

/* A window breaker on the fake clock; kind, size and min_calls given, rest defaults. */
Test(breaker, export_shows_state_transitions_and_rejections)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_breaker_settings s;
    struct ward_breaker *br;
    struct ward_breaker_ticket t;
    char *text;
    const char *want[] = {
        "ward_breaker_state{name=\"db\"} 1\n",
        "ward_breaker_transitions_total{name=\"db\",from=\"closed\",to=\"open\"} 1\n",
        "ward_breaker_transitions_total{name=\"db\",from=\"open\",to=\"half-open\"} 1\n",
        "ward_breaker_transitions_total{name=\"db\",from=\"half-open\",to=\"open\"} 0\n",
        "ward_breaker_transitions_total{name=\"db\",from=\"half-open\",to=\"closed\"} 0\n",
        "ward_breaker_rejections_total{name=\"db\",reason=\"open\"} 2\n",
        "ward_breaker_rejections_total{name=\"db\",reason=\"too_many_requests\"} 1\n",
        "# TYPE ward_breaker_state gauge\n",
        "# TYPE ward_breaker_transitions_total counter\n",
    };

    cr_assert_not_null(reg);
    memset(&s, 0, sizeof s);
    s.name = "db";
    br = make(&s);
    cr_assert_eq(ward_breaker_export(NULL, reg), WARD_ERR_INVAL);
    cr_assert_eq(ward_breaker_export(br, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_breaker_export(br, reg), WARD_ERR_OK);
    fail_n(br, 6);
    cr_assert_eq(succeed(br), WARD_ERR_OPEN);
    cr_assert_eq(succeed(br), WARD_ERR_OPEN);
    at(60 * S);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    cr_assert_eq(succeed(br), WARD_ERR_TOO_MANY_REQUESTS);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(text);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(text, want[i]), "missing %s in:\n%s", want[i], text);
    free(text);
    ward_breaker_free(br);
    ward_metrics_free(reg);
}
