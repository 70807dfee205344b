/* test_bulkhead.c — unit tests of the bulkhead: the cap, releases, rejections and metrics. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <ward/bulkhead.h>
#include <ward/metrics.h>

static struct ward_bulkhead *bulkhead(uint32_t max)
{
    struct ward_bulkhead_settings s;
    struct ward_bulkhead *bh = NULL;

    ward_bulkhead_settings_default(&s);
    s.name = "ledger";
    s.max_concurrent = max;
    cr_assert_eq(ward_bulkhead_new(&s, &bh), WARD_ERR_OK);
    return bh;
}

static struct ward_bulkhead_stats stats(const struct ward_bulkhead *bh)
{
    struct ward_bulkhead_stats st;

    ward_bulkhead_stats(bh, &st);
    return st;
}

Test(bulkhead, defaults_are_documented_values)
{
    struct ward_bulkhead_settings s;
    struct ward_bulkhead *bh = NULL;

    ward_bulkhead_settings_default(&s);
    cr_assert_str_eq(s.name, "default");
    cr_assert_eq(s.max_concurrent, 25);
    cr_assert_eq(ward_bulkhead_new(NULL, &bh), WARD_ERR_OK);
    cr_assert_eq(stats(bh).max, 25);
    cr_assert_eq(stats(bh).in_use, 0);
    cr_assert_eq(stats(bh).rejections, 0);
    ward_bulkhead_free(bh);
    ward_bulkhead_free(NULL);
}

Test(bulkhead, new_rejects_zero_slots)
{
    struct ward_bulkhead_settings s;
    struct ward_bulkhead *bh = (struct ward_bulkhead *)&s; /* must stay untouched */

    ward_bulkhead_settings_default(&s);
    s.max_concurrent = 0;
    cr_assert_eq(ward_bulkhead_new(&s, &bh), WARD_ERR_INVAL);
    cr_assert_eq(bh, (struct ward_bulkhead *)&s);
    cr_assert_eq(ward_bulkhead_new(NULL, NULL), WARD_ERR_INVAL);
}

Test(bulkhead, the_cap_is_respected_and_full_fails_at_once)
{
    struct ward_bulkhead *bh = bulkhead(3);

    for (int i = 0; i < 3; i++)
        cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK, "slot %d", i);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    cr_assert_eq(stats(bh).in_use, 3, "a refusal takes no slot");
    cr_assert_eq(stats(bh).rejections, 2);
    ward_bulkhead_free(bh);
}

Test(bulkhead, a_release_frees_one_slot)
{
    struct ward_bulkhead *bh = bulkhead(2);

    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    ward_bulkhead_release(bh);
    cr_assert_eq(stats(bh).in_use, 1);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    ward_bulkhead_release(bh);
    ward_bulkhead_release(bh);
    cr_assert_eq(stats(bh).in_use, 0);
    cr_assert_eq(stats(bh).rejections, 2);
    ward_bulkhead_free(bh);
}

Test(bulkhead, one_slot_serialises)
{
    struct ward_bulkhead *bh = bulkhead(1);

    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
        cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
        ward_bulkhead_release(bh);
    }
    cr_assert_eq(stats(bh).in_use, 0);
    cr_assert_eq(stats(bh).rejections, 1000);
    ward_bulkhead_free(bh);
}

#ifndef NDEBUG
Test(bulkhead, a_release_without_a_slot_is_caught, .signal = SIGABRT)
{
    struct ward_bulkhead *bh = bulkhead(1);

    ward_bulkhead_release(bh);
}
#endif

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

Test(bulkhead, export_shows_in_use_max_and_rejections_at_each_render)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_bulkhead *bh = bulkhead(2);
    char *text;

    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    cr_assert_eq(ward_bulkhead_export(bh, reg), WARD_ERR_OK);
    text = render(reg);
    expect_sample(text, "# TYPE ward_bulkhead_in_use gauge\n");
    expect_sample(text, "ward_bulkhead_in_use{name=\"ledger\"} 2\n");
    expect_sample(text, "ward_bulkhead_max{name=\"ledger\"} 2\n");
    expect_sample(text, "# TYPE ward_bulkhead_rejections_total counter\n");
    expect_sample(text, "ward_bulkhead_rejections_total{name=\"ledger\"} 1\n");
    free(text);

    ward_bulkhead_release(bh);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_OK);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    cr_assert_eq(ward_bulkhead_acquire(bh), WARD_ERR_BULKHEAD_FULL);
    ward_bulkhead_release(bh);
    text = render(reg);
    expect_sample(text, "ward_bulkhead_in_use{name=\"ledger\"} 1\n");
    expect_sample(text, "ward_bulkhead_rejections_total{name=\"ledger\"} 3\n");
    free(text);
    text = render(reg);
    expect_sample(text, "ward_bulkhead_rejections_total{name=\"ledger\"} 3\n");
    free(text);

    cr_assert_eq(ward_bulkhead_export(bh, reg), WARD_ERR_STATE);
    ward_bulkhead_release(bh);
    ward_bulkhead_free(bh);
    ward_metrics_free(reg);
}

Test(bulkhead, export_refuses_a_clashing_family_and_null)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_bulkhead *bh = bulkhead(2);
    char *text;

    cr_assert_not_null(ward_metrics_counter(reg, "ward_bulkhead_in_use", "clash", 0, NULL));
    cr_assert_eq(ward_bulkhead_export(bh, reg), WARD_ERR_INVAL);
    cr_assert_eq(ward_bulkhead_export(bh, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_bulkhead_export(NULL, reg), WARD_ERR_INVAL);
    text = render(reg);
    ward_bulkhead_free(bh); /* no callback was left behind: rendering again is safe */
    free(text);
    text = render(reg);
    free(text);
    ward_metrics_free(reg);
}

Test(bulkhead, a_failed_export_can_be_retried_elsewhere)
{
    struct ward_metrics *clash = ward_metrics_new();
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_bulkhead *bh = bulkhead(4);
    char *text;

    cr_assert_not_null(ward_metrics_gauge(clash, "ward_bulkhead_rejections_total", "x", 0, NULL));
    cr_assert_eq(ward_bulkhead_export(bh, clash), WARD_ERR_INVAL);
    cr_assert_eq(ward_bulkhead_export(bh, reg), WARD_ERR_OK);
    text = render(reg);
    expect_sample(text, "ward_bulkhead_max{name=\"ledger\"} 4\n");
    free(text);
    ward_bulkhead_free(bh);
    ward_metrics_free(reg);
    ward_metrics_free(clash);
}
