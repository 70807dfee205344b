/* test_budget.c — unit tests of the retry budget on a fake clock. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <ward/budget.h>
#include <ward/clock.h>
#include <ward/metrics.h>

#define S WARD_NS_PER_S
#define MS WARD_NS_PER_MS

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

TestSuite(budget, .init = setup, .fini = teardown);

/* A budget on the fake clock with the defaults but for percent and the floor. */
static struct ward_budget *budget(uint32_t percent, uint32_t min_per_second)
{
    struct ward_budget_settings s;
    struct ward_budget *b = NULL;

    ward_budget_settings_default(&s);
    s.name = "ledger";
    s.percent = percent;
    s.min_retries_per_second = min_per_second;
    s.clock = clk;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_OK);
    return b;
}

static void deposit(struct ward_budget *b, int n)
{
    for (int i = 0; i < n; i++)
        ward_budget_deposit(b);
}

/* Withdraws until refused; returns how many succeeded (at most limit). */
static int drain(struct ward_budget *b, int limit)
{
    int n = 0;

    while (n < limit && ward_budget_try_withdraw(b) == WARD_ERR_OK)
        n++;
    return n;
}

Test(budget, defaults_are_documented_values)
{
    struct ward_budget_settings s;

    ward_budget_settings_default(&s);
    cr_assert_str_eq(s.name, "default");
    cr_assert_eq(s.percent, 20);
    cr_assert_eq(s.min_retries_per_second, 10);
    cr_assert_eq(s.window_ns, 10 * S);
    cr_assert_eq(s.buckets, 10);
    cr_assert_null(s.clock);
}

Test(budget, new_rejects_settings_out_of_range)
{
    struct ward_budget_settings s;
    struct ward_budget *b = (struct ward_budget *)&s; /* must stay untouched */

    ward_budget_settings_default(&s);
    s.percent = 1001;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_INVAL);
    ward_budget_settings_default(&s);
    s.buckets = 0;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_INVAL);
    s.buckets = 3601;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_INVAL);
    ward_budget_settings_default(&s);
    s.window_ns = 9;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_INVAL, "window / buckets below 1 ns");
    s.window_ns = -S;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_INVAL);
    cr_assert_eq(b, (struct ward_budget *)&s);
    cr_assert_eq(ward_budget_new(NULL, NULL), WARD_ERR_INVAL);
}

Test(budget, null_settings_mean_the_defaults_on_the_real_clock)
{
    struct ward_budget *b = NULL;

    cr_assert_eq(ward_budget_new(NULL, &b), WARD_ERR_OK);
    cr_assert_eq(ward_budget_available(b), 100, "10 per second over 10 s");
    ward_budget_free(b);
    ward_budget_free(NULL);
}

Test(budget, low_traffic_can_still_retry_up_to_the_floor)
{
    struct ward_budget *b = budget(20, 10);
    struct ward_budget_stats st;

    deposit(b, 3);
    cr_assert_eq(ward_budget_available(b), 100);
    cr_assert_eq(drain(b, 1000), 100, "the floor alone: 10/s x 10 s");
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_BUDGET_EXHAUSTED);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 3);
    cr_assert_eq(st.retries, 100);
    cr_assert_eq(st.available, 0);
    cr_assert_eq(st.exhausted_total, 2, "drain's last try and the one after");
    ward_budget_free(b);
}

Test(budget, high_traffic_is_limited_to_the_percentage)
{
    struct ward_budget *b = budget(20, 0);

    deposit(b, 1000);
    cr_assert_eq(ward_budget_available(b), 200);
    cr_assert_eq(drain(b, 10000), 200);
    deposit(b, 5);
    cr_assert_eq(drain(b, 10000), 1, "5 more requests earn one more retry");
    ward_budget_free(b);
}

Test(budget, the_floor_adds_to_the_percentage)
{
    struct ward_budget *b = budget(20, 10);

    deposit(b, 1000);
    cr_assert_eq(ward_budget_available(b), 300);
    cr_assert_eq(drain(b, 10000), 300);
    ward_budget_free(b);
}

Test(budget, shares_round_down)
{
    struct ward_budget *b = budget(20, 0);

    deposit(b, 4);
    cr_assert_eq(ward_budget_available(b), 0, "4 x 20 %% is 0.8 retries");
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_BUDGET_EXHAUSTED);
    deposit(b, 1);
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_OK);
    ward_budget_free(b);
}

Test(budget, the_window_frees_the_budget_after_ten_seconds)
{
    struct ward_budget *b = budget(20, 10);

    cr_assert_eq(drain(b, 1000), 100);
    ward_clock_fake_set(clk, 10 * S - 1);
    cr_assert_eq(ward_budget_available(b), 0, "still inside the window");
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_BUDGET_EXHAUSTED);
    ward_clock_fake_set(clk, 10 * S);
    cr_assert_eq(ward_budget_available(b), 100, "the first second left the window");
    ward_budget_free(b);
}

Test(budget, the_window_slides_one_bucket_at_a_time)
{
    struct ward_budget *b = budget(20, 0);
    struct ward_budget_stats st;

    deposit(b, 500); /* t = 0 */
    ward_clock_fake_set(clk, 5 * S);
    deposit(b, 500);
    cr_assert_eq(drain(b, 1000), 200);
    ward_clock_fake_set(clk, 10 * S);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 500, "the deposits of t = 0 left");
    cr_assert_eq(st.retries, 200, "the retries of t = 5 s are still in");
    cr_assert_eq(st.available, 0, "100 allowed, 200 taken");
    ward_clock_fake_set(clk, 15 * S);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 0);
    cr_assert_eq(st.retries, 0);
    cr_assert_eq(st.requests_total, 1000, "lifetime totals stay");
    cr_assert_eq(st.retries_total, 200);
    ward_budget_free(b);
}

Test(budget, a_long_pause_clears_every_bucket)
{
    struct ward_budget *b = budget(20, 0);

    for (int i = 0; i < 10; i++) {
        deposit(b, 100);
        ward_clock_fake_advance(clk, S);
    }
    cr_assert_eq(ward_budget_available(b), 180, "the first second already left");
    ward_clock_fake_advance(clk, 3600 * S);
    cr_assert_eq(ward_budget_available(b), 0);
    deposit(b, 10);
    cr_assert_eq(ward_budget_available(b), 2);
    ward_budget_free(b);
}

Test(budget, a_clock_reading_behind_the_newest_bucket_counts_in_it)
{
    struct ward_budget *b = budget(20, 0);
    struct ward_budget_stats st;

    ward_clock_fake_set(clk, 20 * S);
    deposit(b, 5);
    ward_clock_fake_set(clk, 3 * S); /* a thread that read the clock a while ago */
    deposit(b, 5);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 10);
    ward_clock_fake_set(clk, 30 * S - 1);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 10, "both in the bucket of t = 20 s");
    ward_clock_fake_set(clk, 30 * S);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 0);
    ward_budget_free(b);
}

Test(budget, times_before_zero_bucket_like_any_other)
{
    struct ward_budget *b;

    ward_clock_fake_set(clk, -3 * S + 1);
    b = budget(20, 0);
    deposit(b, 5);
    ward_clock_fake_set(clk, 7 * S - 1);
    cr_assert_eq(ward_budget_available(b), 1);
    ward_clock_fake_set(clk, 7 * S);
    cr_assert_eq(ward_budget_available(b), 0);
    ward_budget_free(b);
}

Test(budget, a_short_window_has_a_proportional_floor)
{
    struct ward_budget_settings s;
    struct ward_budget *b = NULL;

    ward_budget_settings_default(&s);
    s.window_ns = 2500 * MS;
    s.buckets = 5;
    s.min_retries_per_second = 10;
    s.clock = clk;
    cr_assert_eq(ward_budget_new(&s, &b), WARD_ERR_OK);
    cr_assert_eq(ward_budget_available(b), 25);
    cr_assert_eq(drain(b, 100), 25);
    ward_clock_fake_set(clk, 2500 * MS);
    cr_assert_eq(ward_budget_available(b), 25);
    ward_budget_free(b);
}

Test(budget, stats_count_requests_across_rotations)
{
    struct ward_budget *b = budget(20, 10);
    struct ward_budget_stats st;

    deposit(b, 7);
    ward_clock_fake_advance(clk, 1500 * MS);
    deposit(b, 3);
    ward_clock_fake_advance(clk, 60 * S);
    deposit(b, 1);
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_OK);
    ward_budget_stats(b, &st);
    cr_assert_eq(st.requests, 1);
    cr_assert_eq(st.retries, 1);
    cr_assert_eq(st.available, 99);
    cr_assert_eq(st.requests_total, 11);
    cr_assert_eq(st.retries_total, 1);
    cr_assert_eq(st.exhausted_total, 0);
    ward_budget_free(b);
}

/* Renders reg into a string the caller frees. */
static char *render(struct ward_metrics *reg)
{
    char *text = ward_metrics_render(reg, NULL);

    cr_assert_not_null(text);
    return text;
}

static void expect_sample(const char *text, const char *sample)
{
    cr_assert_not_null(strstr(text, sample), "no \"%s\" in:\n%s", sample, text);
}

Test(budget, export_counts_retries_and_exhaustion_live_and_requests_per_bucket)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_budget *b = budget(20, 0);
    char *text;

    deposit(b, 10);
    cr_assert_eq(drain(b, 100), 2);
    cr_assert_eq(ward_budget_export(b, reg), WARD_ERR_OK);
    text = render(reg);
    expect_sample(text, "# TYPE ward_retry_budget_requests_total counter\n");
    expect_sample(text, "ward_retry_budget_requests_total{name=\"ledger\"} 0\n");
    expect_sample(text, "ward_retry_budget_retries_total{name=\"ledger\"} 2\n");
    expect_sample(text, "ward_retry_budget_exhausted_total{name=\"ledger\"} 1\n");
    free(text);

    deposit(b, 5);
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_OK);
    cr_assert_eq(ward_budget_try_withdraw(b), WARD_ERR_BUDGET_EXHAUSTED);
    text = render(reg);
    expect_sample(text, "ward_retry_budget_requests_total{name=\"ledger\"} 0\n");
    expect_sample(text, "ward_retry_budget_retries_total{name=\"ledger\"} 3\n");
    expect_sample(text, "ward_retry_budget_exhausted_total{name=\"ledger\"} 2\n");
    free(text);

    ward_clock_fake_advance(clk, S);
    deposit(b, 1);
    text = render(reg);
    expect_sample(text, "ward_retry_budget_requests_total{name=\"ledger\"} 15\n");
    free(text);

    cr_assert_eq(ward_budget_export(b, reg), WARD_ERR_STATE);
    ward_budget_free(b);
    ward_metrics_free(reg);
}

Test(budget, export_starts_from_the_requests_already_flushed)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_budget *b = budget(20, 0);
    char *text;

    deposit(b, 4);
    ward_clock_fake_advance(clk, 2 * S);
    deposit(b, 1);
    cr_assert_eq(ward_budget_export(b, reg), WARD_ERR_OK);
    text = render(reg);
    expect_sample(text, "ward_retry_budget_requests_total{name=\"ledger\"} 4\n");
    free(text);
    ward_budget_free(b);
    ward_metrics_free(reg);
}

Test(budget, export_refuses_a_clashing_family_and_null)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_budget *b = budget(20, 0);

    cr_assert_not_null(
        ward_metrics_gauge(reg, "ward_retry_budget_retries_total", "clash", 0, NULL));
    cr_assert_eq(ward_budget_export(b, reg), WARD_ERR_INVAL);
    cr_assert_eq(ward_budget_export(b, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_budget_export(NULL, reg), WARD_ERR_INVAL);
    ward_budget_free(b);
    ward_metrics_free(reg);
}
