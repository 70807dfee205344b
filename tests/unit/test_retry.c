/* test_retry.c — unit tests of the retry policy: backoff and jitter, the classifier,
 * Retry-After and the plan's deadline rule. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/retry.h>

#define MS WARD_NS_PER_MS
#define S WARD_NS_PER_S
/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date */
#define EXAMPLE_DATE (INT64_C(784111777) * S)

/* An injected random source that always answers *arg. */
static uint64_t fixed(void *arg)
{
    return *(const uint64_t *)arg;
}

static struct ward_retry_policy policy(enum ward_retry_jitter jitter)
{
    struct ward_retry_policy p;

    ward_retry_policy_default(&p);
    p.jitter = jitter;
    return p;
}

static struct ward_retry_outcome response(int status, const char *method)
{
    return (struct ward_retry_outcome){.cause = WARD_RETRY_CAUSE_RESPONSE,
                                       .status = status,
                                       .method = method,
                                       .wall_now_ns = EXAMPLE_DATE};
}

static struct ward_retry_state seeded(uint64_t seed)
{
    struct ward_retry_state st;

    ward_retry_state_init(&st);
    ward_retry_rng_seed(&st.rng, seed);
    return st;
}

Test(retry_policy, defaults_are_documented_values)
{
    struct ward_retry_policy p;

    ward_retry_policy_default(&p);
    cr_assert_eq(p.max_attempts, 3);
    cr_assert_eq(p.base_ns, 100 * MS);
    cr_assert_eq(p.multiplier, 2.0);
    cr_assert_eq(p.cap_ns, 10 * S);
    cr_assert_eq(p.jitter, WARD_RETRY_JITTER_FULL);
    cr_assert_eq(p.max_retry_after_ns, 60 * S);
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_OK);
}

Test(retry_policy, check_rejects_each_out_of_range_setting)
{
    struct ward_retry_policy p;

    cr_assert_eq(ward_retry_policy_check(NULL), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.max_attempts = 0;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.base_ns = 0;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.cap_ns = p.base_ns - 1;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.multiplier = 0.5;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.multiplier = (double)NAN;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.multiplier = (double)INFINITY;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.jitter = (enum ward_retry_jitter)42;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.max_retry_after_ns = -1;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_INVAL);
    p = policy(WARD_RETRY_JITTER_FULL), p.max_attempts = 1, p.cap_ns = p.base_ns, p.multiplier = 1;
    cr_assert_eq(ward_retry_policy_check(&p), WARD_ERR_OK, "the tightest valid policy");
}

Test(retry_delay, none_doubles_from_base_up_to_the_cap)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_rng rng;
    static const int64_t want[] = {100 * MS, 200 * MS, 400 * MS, 800 * MS, 1600 * MS,
                                   3200 * MS, 6400 * MS, 10 * S, 10 * S};

    ward_retry_rng_seed(&rng, 1);
    for (uint32_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_eq(ward_retry_next_delay(&p, i + 1, 0, &rng), want[i], "attempt %u", i + 1);
    cr_assert_eq(ward_retry_next_delay(&p, 0, 0, &rng), 100 * MS, "attempt 0 counts as 1");
    cr_assert_eq(ward_retry_next_delay(&p, UINT32_MAX, 0, &rng), 10 * S);
}

Test(retry_delay, none_follows_a_fractional_multiplier)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_rng rng;

    p.multiplier = 1.5;
    ward_retry_rng_seed(&rng, 1);
    cr_assert_eq(ward_retry_next_delay(&p, 1, 0, &rng), 100 * MS);
    cr_assert_eq(ward_retry_next_delay(&p, 2, 0, &rng), 150 * MS);
    cr_assert_eq(ward_retry_next_delay(&p, 3, 0, &rng), 225 * MS);
    cr_assert_eq(ward_retry_next_delay(&p, 4, 0, &rng), 337500 * WARD_NS_PER_US);
    p.multiplier = 1;
    cr_assert_eq(ward_retry_next_delay(&p, 1000, 0, &rng), 100 * MS, "multiplier 1 is constant");
}

Test(retry_delay, full_jitter_maps_the_random_number_into_0_to_d)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_FULL);
    struct ward_retry_rng rng = {.next = fixed};
    uint64_t r = 0;

    rng.arg = &r;
    cr_assert_eq(ward_retry_next_delay(&p, 3, 0, &rng), 0);
    r = 12345;
    cr_assert_eq(ward_retry_next_delay(&p, 3, 0, &rng), 12345);
    r = 400 * MS;
    cr_assert_eq(ward_retry_next_delay(&p, 3, 0, &rng), 400 * MS, "d itself is reachable");
    r = 400 * MS + 1;
    cr_assert_eq(ward_retry_next_delay(&p, 3, 0, &rng), 0, "and d + 1 wraps to 0");
}

Test(retry_delay, equal_jitter_maps_the_random_number_into_half_d_to_d)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_EQUAL);
    struct ward_retry_rng rng = {.next = fixed};
    uint64_t r = 0;

    rng.arg = &r;
    cr_assert_eq(ward_retry_next_delay(&p, 2, 0, &rng), 100 * MS);
    r = 7;
    cr_assert_eq(ward_retry_next_delay(&p, 2, 0, &rng), 100 * MS + 7);
    r = 100 * MS;
    cr_assert_eq(ward_retry_next_delay(&p, 2, 0, &rng), 200 * MS);
}

Test(retry_delay, decorrelated_draws_between_base_and_three_times_the_last)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_DECORRELATED);
    struct ward_retry_rng rng = {.next = fixed};
    uint64_t r = 0;

    rng.arg = &r;
    cr_assert_eq(ward_retry_next_delay(&p, 1, 0, &rng), 100 * MS, "no previous delay: base");
    r = 200 * MS;
    cr_assert_eq(ward_retry_next_delay(&p, 1, 0, &rng), 300 * MS, "prev 0 counts as base");
    r = 1400 * MS;
    cr_assert_eq(ward_retry_next_delay(&p, 9, 500 * MS, &rng), 1500 * MS, "top is 3 x prev");
    r = 20 * S;
    cr_assert_eq(ward_retry_next_delay(&p, 2, 8 * S, &rng), 10 * S, "the cap bounds it");
}

Test(retry_delay, every_mode_stays_within_its_bounds_over_many_seeds)
{
    for (int mode = WARD_RETRY_JITTER_FULL; mode <= WARD_RETRY_JITTER_NONE; mode++) {
        struct ward_retry_policy p = policy((enum ward_retry_jitter)mode);
        p.cap_ns = 3 * S;
        for (uint64_t seed = 0; seed < 500; seed++) {
            struct ward_retry_rng rng;
            int64_t prev = 0;
            ward_retry_rng_seed(&rng, seed);
            for (uint32_t attempt = 1; attempt <= 12; attempt++) {
                int64_t d = ward_retry_next_delay(&p, attempt, prev, &rng);
                int64_t full = 100 * MS << (attempt - 1);
                full = full < p.cap_ns ? full : p.cap_ns;
                int64_t lo = 0, hi = full;
                if (mode == WARD_RETRY_JITTER_EQUAL)
                    lo = full / 2;
                if (mode == WARD_RETRY_JITTER_NONE)
                    lo = full;
                if (mode == WARD_RETRY_JITTER_DECORRELATED) {
                    lo = p.base_ns;
                    hi = 3 * (prev > p.base_ns ? prev : p.base_ns);
                    hi = hi < p.cap_ns ? hi : p.cap_ns;
                }
                cr_assert(d >= lo && d <= hi,
                          "mode %d seed %llu attempt %u: %lld not in [%lld, %lld]", mode,
                          (unsigned long long)seed, attempt, (long long)d, (long long)lo,
                          (long long)hi);
                cr_assert(d <= p.cap_ns);
                prev = d;
            }
        }
    }
}

Test(retry_delay, full_jitter_averages_half_of_d)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_FULL);
    struct ward_retry_rng rng;
    double sum = 0;

    ward_retry_rng_seed(&rng, 7);
    for (int i = 0; i < 20000; i++)
        sum += (double)ward_retry_next_delay(&p, 4, 0, &rng);
    /* uniform on [0, 800 ms]: mean 400 ms, standard error about 1.6 ms */
    cr_assert(fabs(sum / 20000 - 400e6) < 10e6, "mean %f", sum / 20000);
}

Test(retry_delay, same_seed_same_sequence_other_seed_other_sequence)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_FULL);
    struct ward_retry_rng a, b, c;
    int differ = 0;

    ward_retry_rng_seed(&a, 99);
    ward_retry_rng_seed(&b, 99);
    ward_retry_rng_seed(&c, 100);
    for (int i = 0; i < 10; i++) {
        int64_t da = ward_retry_next_delay(&p, 5, 0, &a);
        cr_assert_eq(da, ward_retry_next_delay(&p, 5, 0, &b));
        differ += da != ward_retry_next_delay(&p, 5, 0, &c);
    }
    cr_assert_gt(differ, 0);
}

Test(retry_classify, statuses)
{
    static const struct {
        int status;
        enum ward_retry_verdict want;
    } cases[] = {
        {100, WARD_RETRY_STOP_SUCCESS}, {200, WARD_RETRY_STOP_SUCCESS},
        {204, WARD_RETRY_STOP_SUCCESS}, {301, WARD_RETRY_STOP_SUCCESS},
        {304, WARD_RETRY_STOP_SUCCESS}, {400, WARD_RETRY_STOP_STATUS},
        {401, WARD_RETRY_STOP_STATUS},  {403, WARD_RETRY_STOP_STATUS},
        {404, WARD_RETRY_STOP_STATUS},  {408, WARD_RETRY_STOP_STATUS},
        {409, WARD_RETRY_STOP_STATUS},  {422, WARD_RETRY_STOP_STATUS},
        {429, WARD_RETRY_YES},          {499, WARD_RETRY_STOP_STATUS},
        {500, WARD_RETRY_STOP_STATUS},  {501, WARD_RETRY_STOP_STATUS},
        {502, WARD_RETRY_YES},          {503, WARD_RETRY_YES},
        {504, WARD_RETRY_YES},          {505, WARD_RETRY_STOP_STATUS},
        {511, WARD_RETRY_STOP_STATUS},  {0, WARD_RETRY_STOP_STATUS},
        {99, WARD_RETRY_STOP_STATUS},   {600, WARD_RETRY_STOP_STATUS},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ward_retry_outcome o = response(cases[i].status, "GET");
        cr_assert_eq(ward_retry_classify(&o), cases[i].want, "status %d", cases[i].status);
    }
}

Test(retry_classify, transport_errors_and_timeouts_are_retryable)
{
    static const enum ward_retry_cause causes[] = {WARD_RETRY_CAUSE_CONNECT, WARD_RETRY_CAUSE_DNS,
                                                   WARD_RETRY_CAUSE_RESET,
                                                   WARD_RETRY_CAUSE_TIMEOUT};

    for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++) {
        struct ward_retry_outcome o = {.cause = causes[i], .method = "GET"};
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_YES, "cause %d", causes[i]);
        o.method = "POST";
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_NOT_IDEMPOTENT, "cause %d",
                     causes[i]);
        o.idempotency_key = true;
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_YES, "cause %d", causes[i]);
    }
    struct ward_retry_outcome o = {.cause = (enum ward_retry_cause)77, .method = "GET"};
    cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_ERROR, "an unknown cause");
}

Test(retry_classify, idempotent_methods_retry_others_need_an_idempotency_key)
{
    static const char *const idempotent[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    static const char *const other[] = {"POST", "PATCH", "CONNECT", "get", "PURGE", ""};

    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++) {
        struct ward_retry_outcome o = response(503, idempotent[i]);
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_YES, "%s", idempotent[i]);
    }
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct ward_retry_outcome o = response(503, other[i]);
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_NOT_IDEMPOTENT, "%s", other[i]);
        o.idempotency_key = true;
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_YES, "%s with a key", other[i]);
    }
    struct ward_retry_outcome o = response(429, NULL);
    cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_NOT_IDEMPOTENT, "NULL is unknown");
    o = response(400, "POST");
    o.idempotency_key = true;
    cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_STATUS,
                 "a key does not make 400 retryable");
    o = response(201, "POST");
    cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_SUCCESS);
}

Test(retry_classify, local_rejections_never_retry)
{
    static const enum ward_err rejections[] = {WARD_ERR_OPEN, WARD_ERR_TOO_MANY_REQUESTS,
                                               WARD_ERR_RATE_LIMITED, WARD_ERR_BULKHEAD_FULL,
                                               WARD_ERR_BUDGET_EXHAUSTED};
    static const enum ward_err others[] = {WARD_ERR_OK, WARD_ERR_NOMEM, WARD_ERR_INVAL,
                                           WARD_ERR_SYSTEM, WARD_ERR_FULL};

    for (size_t i = 0; i < sizeof rejections / sizeof rejections[0]; i++) {
        struct ward_retry_outcome o = {.cause = WARD_RETRY_CAUSE_LOCAL, .err = rejections[i],
                                       .method = "GET", .idempotency_key = true};
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_REJECTED, "%s",
                     ward_strerror(rejections[i]));
    }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        struct ward_retry_outcome o = {.cause = WARD_RETRY_CAUSE_LOCAL, .err = others[i],
                                       .method = "GET"};
        cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_ERROR, "%s",
                     ward_strerror(others[i]));
    }
    struct ward_retry_outcome o = {.cause = WARD_RETRY_CAUSE_LOCAL, .err = WARD_ERR_DEADLINE,
                                   .method = "GET"};
    cr_assert_eq(ward_retry_classify(&o), WARD_RETRY_STOP_DEADLINE);
}

Test(retry_after, delay_seconds)
{
    int64_t d = -1;

    cr_assert_eq(ward_retry_after_parse("120", 0, &d), WARD_ERR_OK);
    cr_assert_eq(d, 120 * S);
    cr_assert_eq(ward_retry_after_parse(" \t7 ", 0, &d), WARD_ERR_OK);
    cr_assert_eq(d, 7 * S);
    cr_assert_eq(ward_retry_after_parse("0", 0, &d), WARD_ERR_OK);
    cr_assert_eq(d, 0);
    cr_assert_eq(ward_retry_after_parse("99999999999999999999999", 0, &d), WARD_ERR_OK);
    cr_assert_eq(d, INT64_MAX, "saturates");
}

Test(retry_after, imf_fixdate_rfc850_and_asctime_dates)
{
    int64_t wall = EXAMPLE_DATE - 30 * S;
    int64_t d = -1;

    cr_assert_eq(ward_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", wall, &d), WARD_ERR_OK);
    cr_assert_eq(d, 30 * S);
    d = -1;
    cr_assert_eq(ward_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", wall, &d), WARD_ERR_OK);
    cr_assert_eq(d, 30 * S);
    d = -1;
    cr_assert_eq(ward_retry_after_parse("Sun Nov  6 08:49:37 1994", wall, &d), WARD_ERR_OK);
    cr_assert_eq(d, 30 * S);
    d = -1;
    cr_assert_eq(ward_retry_after_parse("  Sun, 06 Nov 1994 08:49:37 GMT ", wall + 500 * MS, &d),
                 WARD_ERR_OK);
    cr_assert_eq(d, 29500 * MS, "counted from wall_now_ns to the nanosecond");
}

Test(retry_after, a_date_in_the_past_is_no_delay)
{
    int64_t d = -1;

    cr_assert_eq(ward_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_DATE + S, &d),
                 WARD_ERR_OK);
    cr_assert_eq(d, 0);
    d = -1;
    cr_assert_eq(ward_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_DATE, &d),
                 WARD_ERR_OK);
    cr_assert_eq(d, 0);
}

Test(retry_after, rfc850_year_more_than_50_years_ahead_is_the_last_century)
{
    int64_t y2030 = INT64_C(1893456000) * S; /* Tue, 01 Jan 2030 00:00:00 GMT */
    int64_t y2079 = INT64_C(3439756800) * S;
    int64_t d = -1;

    cr_assert_eq(ward_retry_after_parse("Sunday, 01-Jan-79 00:00:00 GMT", y2030, &d), WARD_ERR_OK);
    cr_assert_eq(d, y2079 - y2030, "79 is 2079, 49 years ahead");
    d = -1;
    cr_assert_eq(ward_retry_after_parse("Thursday, 01-Jan-81 00:00:00 GMT", y2030, &d),
                 WARD_ERR_OK);
    cr_assert_eq(d, 0, "81 would be 51 years ahead: it is 1981, past");
}

Test(retry_after, garbage_is_a_syntax_error_and_leaves_delay_alone)
{
    static const char *const garbage[] = {
        "", "   ", "abc", "-5", "+5", "1.5", "12 s", "0x10", "5 5",
        "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994", "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37", "Sun Nov  6 08:49:37", "tomorrow",
    };
    int64_t d = 42;

    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        cr_assert_eq(ward_retry_after_parse(garbage[i], EXAMPLE_DATE, &d), WARD_ERR_SYNTAX,
                     "\"%s\"", garbage[i]);
        cr_assert_eq(d, 42);
    }
    cr_assert_eq(ward_retry_after_parse(NULL, 0, &d), WARD_ERR_INVAL);
    cr_assert_eq(ward_retry_after_parse("5", 0, NULL), WARD_ERR_INVAL);
}

Test(retry_plan, backs_off_then_stops_after_max_attempts)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = response(503, "GET");
    int64_t d = -1;

    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 100 * MS);
    cr_assert_eq(st.attempts, 1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 200 * MS);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_ATTEMPTS, "3 attempts made");
    cr_assert_eq(d, 0);
    cr_assert_eq(st.attempts, 3);
}

Test(retry_plan, max_attempts_one_never_retries)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = {.cause = WARD_RETRY_CAUSE_CONNECT, .method = "GET"};
    int64_t d = -1;

    p.max_attempts = 1;
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_ATTEMPTS);
    cr_assert_eq(d, 0);
}

Test(retry_plan, the_classification_comes_first)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome ok = response(200, "GET");
    struct ward_retry_outcome post = response(503, "POST");
    struct ward_retry_outcome open = {.cause = WARD_RETRY_CAUSE_LOCAL, .err = WARD_ERR_OPEN,
                                      .method = "GET"};
    int64_t d = -1;

    cr_assert_eq(ward_retry_plan(&p, &ok, &st, 0, 1, &d), WARD_RETRY_STOP_SUCCESS);
    cr_assert_eq(d, 0);
    cr_assert_eq(ward_retry_plan(&p, &post, &st, 0, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_NOT_IDEMPOTENT);
    cr_assert_eq(ward_retry_plan(&p, &open, &st, 0, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_REJECTED);
    cr_assert_eq(st.attempts, 3, "every call counts an attempt");
}

Test(retry_plan, a_longer_retry_after_wins_a_shorter_one_does_not)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = response(429, "GET");
    int64_t d = -1;

    o.retry_after = "5";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 5 * S);
    cr_assert_eq(st.last_delay_ns, 5 * S);
    st = seeded(1);
    o.retry_after = "0";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 100 * MS, "the backoff still applies");
    st = seeded(1);
    o.retry_after = "soon";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 100 * MS, "garbage is ignored");
    st = seeded(1);
    o.retry_after = "Sun, 06 Nov 1994 08:49:40 GMT";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 3 * S, "a date, against the outcome's wall_now_ns");
}

Test(retry_plan, a_retry_after_past_the_deadline_stops_at_once)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = response(503, "GET");
    int64_t now = 1000 * S;
    int64_t d = -1;

    o.retry_after = "5";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, now, now + 2 * S, &d), WARD_RETRY_STOP_DEADLINE);
    cr_assert_eq(d, 0);
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, now, now + 5 * S, &d), WARD_RETRY_STOP_DEADLINE,
                 "retrying exactly at the deadline leaves no time");
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, now, now + 5 * S + 1, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 5 * S);
}

Test(retry_plan, a_retry_after_beyond_max_retry_after_stops)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = response(503, "GET");
    int64_t d = -1;

    o.retry_after = "61";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_RETRY_AFTER);
    cr_assert_eq(d, 0);
    st = seeded(1);
    o.retry_after = "60";
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 60 * S);
}

Test(retry_plan, a_backoff_past_the_deadline_stops)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_NONE);
    struct ward_retry_state st = seeded(1);
    struct ward_retry_outcome o = {.cause = WARD_RETRY_CAUSE_TIMEOUT, .method = "GET"};
    int64_t d = -1;

    cr_assert_eq(ward_retry_plan(&p, &o, &st, 10 * S, 10 * S + 50 * MS, &d),
                 WARD_RETRY_STOP_DEADLINE);
    cr_assert_eq(d, 0);
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 10 * S, 10 * S + 100 * MS, &d),
                 WARD_RETRY_STOP_DEADLINE);
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 10 * S, 10 * S + 100 * MS + 1, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 100 * MS);
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 10 * S, 9 * S, &d), WARD_RETRY_STOP_DEADLINE,
                 "a deadline already past");
    st = seeded(1);
    cr_assert_eq(ward_retry_plan(&p, &o, &st, INT64_MAX - 1, WARD_RETRY_NO_DEADLINE, &d),
                 WARD_RETRY_STOP_DEADLINE, "now + delay saturates instead of wrapping");
}

Test(retry_plan, never_plans_past_the_deadline_over_random_schedules)
{
    struct ward_retry_rng dice;

    ward_retry_rng_seed(&dice, 2024);
    for (int mode = WARD_RETRY_JITTER_FULL; mode <= WARD_RETRY_JITTER_NONE; mode++) {
        struct ward_retry_policy p = policy((enum ward_retry_jitter)mode);
        p.max_attempts = 8;
        for (int run = 0; run < 300; run++) {
            struct ward_retry_state st = seeded((uint64_t)run);
            struct ward_retry_outcome o = response(503, "GET");
            int64_t now = 0;
            int64_t deadline = (int64_t)(dice.state % (uint64_t)(20 * S));
            int64_t d;
            dice.state = dice.state * 6364136223846793005u + 1442695040888963407u;
            while (ward_retry_plan(&p, &o, &st, now, deadline, &d) == WARD_RETRY_YES) {
                cr_assert_lt(now + d, deadline);
                cr_assert(d >= 0 && d <= p.cap_ns);
                now += d;
            }
            cr_assert_leq(st.attempts, p.max_attempts);
        }
    }
}

Test(retry_plan, decorrelated_grows_from_the_last_delay)
{
    struct ward_retry_policy p = policy(WARD_RETRY_JITTER_DECORRELATED);
    struct ward_retry_state st;
    struct ward_retry_outcome o = response(502, "GET");
    uint64_t r = 200 * MS;
    int64_t d = -1;

    ward_retry_state_init(&st);
    st.rng.next = fixed;
    st.rng.arg = &r;
    p.max_attempts = 10;
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 300 * MS, "the top of [base, 3 x base]");
    r = 800 * MS;
    cr_assert_eq(ward_retry_plan(&p, &o, &st, 0, WARD_RETRY_NO_DEADLINE, &d), WARD_RETRY_YES);
    cr_assert_eq(d, 900 * MS, "base + r, within [base, 3 x 300 ms]");
    cr_assert_eq(st.last_delay_ns, 900 * MS);
}

Test(retry_state, init_starts_empty_with_a_random_seed)
{
    struct ward_retry_state a, b;

    ward_retry_state_init(&a);
    ward_retry_state_init(&b);
    cr_assert_eq(a.attempts, 0);
    cr_assert_eq(a.last_delay_ns, 0);
    cr_assert_null(a.rng.next);
    cr_assert_neq(a.rng.state, b.rng.state);
}

Test(retry_verdict, names)
{
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_YES), "retry");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_SUCCESS), "success");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_STATUS), "status");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_NOT_IDEMPOTENT), "not_idempotent");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_REJECTED), "rejected");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_ERROR), "error");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_ATTEMPTS), "attempts");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_RETRY_AFTER), "retry_after");
    cr_assert_str_eq(ward_retry_verdict_name(WARD_RETRY_STOP_DEADLINE), "deadline");
    cr_assert_str_eq(ward_retry_verdict_name((enum ward_retry_verdict)99), "unknown");
}
