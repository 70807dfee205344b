/* test_balancer.c — round robin, P2C, updates, outlier ejection and panic on a fake clock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/balancer.h>
#include <ward/metrics.h>

#define S WARD_NS_PER_S

static struct ward_clock *clk;

static void setup(void)
{
    clk = ward_clock_fake_new(1000 * S);
    cr_assert_not_null(clk);
}

static void teardown(void)
{
    ward_clock_free(clk);
    clk = NULL;
}

TestSuite(balancer, .init = setup, .fini = teardown);

static char ids[32][32];

/* Instances "10.0.0.<i>:8081" for i in [first, first + n), user = &ids[i]. */
static void set_of(struct ward_balancer *b, size_t first, size_t n)
{
    struct ward_balancer_instance v[32];

    for (size_t i = 0; i < n; i++) {
        snprintf(ids[first + i], sizeof ids[0], "10.0.0.%zu:8081", first + i);
        v[i].id = ids[first + i];
        v[i].user = ids[first + i];
    }
    cr_assert_eq(ward_balancer_update(b, v, n), WARD_ERR_OK);
}

static struct ward_balancer *make(enum ward_balancer_policy policy, uint32_t max_pct, size_t n)
{
    struct ward_balancer_settings s;
    struct ward_balancer *b = NULL;

    ward_balancer_settings_default(&s);
    s.name = "zakat";
    s.policy = policy;
    s.clock = clk;
    s.seed = 42;
    s.max_ejection_percent = max_pct;
    cr_assert_eq(ward_balancer_new(&s, &b), WARD_ERR_OK);
    set_of(b, 0, n);
    return b;
}

static size_t index_of(const struct ward_balancer_pick *p)
{
    return (size_t)((char(*)[32])p->user - ids);
}

/* Picks until instance i comes up (others are handed back EXCLUDED). */
static void pick_index(struct ward_balancer *b, size_t i, struct ward_balancer_pick *p)
{
    for (int tries = 0; tries < 1000; tries++) {
        cr_assert_eq(ward_balancer_pick(b, p), WARD_ERR_OK);
        if (index_of(p) == i)
            return;
        ward_balancer_done(b, p, WARD_BALANCER_EXCLUDED);
    }
    cr_assert_fail("instance %zu never picked", i);
}

static void report(struct ward_balancer *b, size_t i, enum ward_balancer_outcome o, int times)
{
    struct ward_balancer_pick p;

    for (int k = 0; k < times; k++) {
        pick_index(b, i, &p);
        ward_balancer_done(b, &p, o);
    }
}

static struct ward_balancer_instance_stats inst(struct ward_balancer *b, size_t i)
{
    struct ward_balancer_instance_stats st;

    cr_assert_eq(ward_balancer_instance_stats(b, ids[i], &st), WARD_ERR_OK);
    return st;
}

Test(balancer, settings_default_are_envoys)
{
    struct ward_balancer_settings s;
    struct ward_balancer *b = NULL;

    ward_balancer_settings_default(&s);
    cr_assert_eq(s.policy, WARD_BALANCER_ROUND_ROBIN);
    cr_assert_eq(s.consecutive_failures, 5);
    cr_assert_eq(s.base_ejection_ns, 30 * S);
    cr_assert_eq(s.max_ejection_ns, 300 * S);
    cr_assert_eq(s.max_ejection_percent, 10);
    cr_assert_eq(s.panic_threshold_percent, 50);
    s.max_ejection_percent = 101;
    cr_assert_eq(ward_balancer_new(&s, &b), WARD_ERR_INVAL);
    cr_assert_null(b);
    ward_balancer_settings_default(&s);
    s.max_ejection_ns = s.base_ejection_ns - 1;
    cr_assert_eq(ward_balancer_new(&s, &b), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_new(NULL, &b), WARD_ERR_INVAL);
    ward_balancer_free(NULL);
}

Test(balancer, no_instances_is_not_found)
{
    struct ward_balancer *b = make(WARD_BALANCER_P2C, 10, 0);
    struct ward_balancer_pick p;

    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_NOT_FOUND);
    set_of(b, 0, 2);
    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
    cr_assert_eq(ward_balancer_update(b, NULL, 0), WARD_ERR_OK);
    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_NOT_FOUND);
    ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS); /* dropped instance: ignored */
    ward_balancer_free(b);
}

Test(balancer, update_rejects_bad_lists_and_keeps_the_set)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 2);
    struct ward_balancer_instance dup[] = {{"a:1", NULL}, {"a:1", NULL}};
    struct ward_balancer_instance empty[] = {{"", NULL}};
    char longid[WARD_BALANCER_ID_MAX + 1];
    struct ward_balancer_instance toolong[] = {{longid, NULL}};
    struct ward_balancer_stats st;

    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    cr_assert_eq(ward_balancer_update(b, dup, 2), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_update(b, empty, 1), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_update(b, toolong, 1), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_update(b, NULL, 1), WARD_ERR_INVAL);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.instances, 2);
    ward_balancer_free(b);
}

Test(balancer, round_robin_distribution_is_exact)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 3);
    struct ward_balancer_pick p;
    size_t count[3] = {0};

    for (size_t k = 0; k < 300; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        cr_assert_eq(index_of(&p), k % 3);
        cr_assert_str_eq(p.id, ids[k % 3]);
        count[index_of(&p)]++;
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    cr_assert_eq(count[0], 100);
    cr_assert_eq(count[1], 100);
    cr_assert_eq(count[2], 100);
    cr_assert_eq(inst(b, 1).successes, 100);
    cr_assert_eq(inst(b, 1).outstanding, 0);
    ward_balancer_free(b);
}

Test(balancer, p2c_prefers_the_less_loaded)
{
    struct ward_balancer *b = make(WARD_BALANCER_P2C, 10, 0);
    struct ward_balancer_pick held[20], p, extra;
    size_t count[3] = {0};

    set_of(b, 1, 2); /* two instances: every pair is both, so holding levels them exactly */
    for (size_t k = 0; k < 20; k++)
        cr_assert_eq(ward_balancer_pick(b, &held[k]), WARD_ERR_OK);
    cr_assert_eq(inst(b, 1).outstanding, 10);
    cr_assert_eq(inst(b, 2).outstanding, 10);
    cr_assert_eq(ward_balancer_pick(b, &extra), WARD_ERR_OK); /* 11 against 10 */
    for (size_t k = 0; k < 100; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        cr_assert_neq(index_of(&p), index_of(&extra), "pick %zu went to the busier", k);
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    ward_balancer_done(b, &extra, WARD_BALANCER_SUCCESS);
    set_of(b, 0, 3); /* instance 0 joins idle; 1 and 2 keep their 10 outstanding */
    cr_assert_eq(inst(b, 1).outstanding, 10);
    cr_assert_eq(inst(b, 0).outstanding, 0);
    for (size_t k = 0; k < 3000; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        count[index_of(&p)]++;
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    /* instance 0 wins every pair it is in (2/3 of them); 1 and 2 share the rest evenly */
    cr_assert(count[0] > 1850 && count[0] < 2150, "idle instance got %zu", count[0]);
    cr_assert(count[1] > 400 && count[1] < 600, "instance 1 got %zu", count[1]);
    cr_assert_eq(count[0] + count[1] + count[2], 3000);
    for (size_t k = 0; k < 20; k++)
        ward_balancer_done(b, &held[k], WARD_BALANCER_EXCLUDED);
    cr_assert_eq(inst(b, 1).outstanding, 0);
    cr_assert_eq(inst(b, 2).outstanding, 0);
    ward_balancer_free(b);
}

Test(balancer, update_keeps_stats_of_surviving_instances)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 100, 3);
    struct ward_balancer_pick on_a, on_b;
    struct ward_balancer_instance v[] = {
        {ids[1], ids[1]}, {ids[2], ids[2]}, {"10.0.0.9:8081", NULL}};
    struct ward_balancer_instance_stats st;

    pick_index(b, 0, &on_a);
    report(b, 1, WARD_BALANCER_FAILURE_5XX, 3);
    pick_index(b, 1, &on_b);
    report(b, 2, WARD_BALANCER_FAILURE_TRANSPORT, 5);
    cr_assert(inst(b, 2).ejected);
    cr_assert_eq(ward_balancer_update(b, v, 3), WARD_ERR_OK);
    cr_assert_eq(ward_balancer_instance_stats(b, ids[0], &st), WARD_ERR_NOT_FOUND);
    cr_assert_eq(inst(b, 1).consecutive_failures, 3);
    cr_assert_eq(inst(b, 1).outstanding, 1);
    cr_assert_eq(inst(b, 1).failures, 3);
    cr_assert(inst(b, 2).ejected);
    cr_assert_eq(inst(b, 2).ejections, 1);
    cr_assert_eq(ward_balancer_instance_stats(b, "10.0.0.9:8081", &st), WARD_ERR_OK);
    cr_assert_eq(st.picks, 0);
    ward_balancer_done(b, &on_a, WARD_BALANCER_FAILURE_5XX); /* removed: ignored */
    ward_balancer_done(b, &on_b, WARD_BALANCER_SUCCESS);      /* moved from slot 1 to 0 */
    cr_assert_eq(inst(b, 1).outstanding, 0);
    cr_assert_eq(inst(b, 1).consecutive_failures, 0);
    ward_balancer_free(b);
}

Test(balancer, ejects_after_5_consecutive_failures_not_4_and_a_success)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 10);
    struct ward_balancer_pick p;

    report(b, 3, WARD_BALANCER_FAILURE_5XX, 4);
    report(b, 3, WARD_BALANCER_SUCCESS, 1);
    report(b, 3, WARD_BALANCER_FAILURE_5XX, 2);
    report(b, 3, WARD_BALANCER_EXCLUDED, 1); /* neither breaks nor extends the run */
    report(b, 3, WARD_BALANCER_FAILURE_TRANSPORT, 2);
    cr_assert_not(inst(b, 3).ejected);
    cr_assert_eq(inst(b, 3).consecutive_failures, 4);
    report(b, 3, WARD_BALANCER_FAILURE_5XX, 1);
    cr_assert(inst(b, 3).ejected);
    cr_assert_eq(inst(b, 3).ejected_until_ns, 1000 * S + 30 * S);
    for (int k = 0; k < 90; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        cr_assert_neq(index_of(&p), 3);
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    ward_balancer_free(b);
}

Test(balancer, ejection_lasts_30s_times_count_capped_at_300s)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 10);
    int64_t want;

    for (uint32_t n = 1; n <= 12; n++) {
        int64_t t0 = ward_clock_now(clk);

        report(b, 5, WARD_BALANCER_FAILURE_5XX, 5);
        cr_assert(inst(b, 5).ejected);
        cr_assert_eq(inst(b, 5).ejections, n);
        want = n * 30 * S < 300 * S ? (int64_t)n * 30 * S : 300 * S;
        cr_assert_eq(inst(b, 5).ejected_until_ns - t0, want, "ejection %u", n);
        ward_clock_fake_advance(clk, want - 1);
        cr_assert(inst(b, 5).ejected);
        ward_clock_fake_advance(clk, 1);
        cr_assert_not(inst(b, 5).ejected, "ejection %u should be over", n);
        cr_assert_eq(inst(b, 5).consecutive_failures, 0);
    }
    ward_balancer_free(b);
}

Test(balancer, returned_instance_is_picked_again)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 2);
    struct ward_balancer_pick p;
    size_t count[2] = {0};

    report(b, 0, WARD_BALANCER_FAILURE_TRANSPORT, 5);
    ward_clock_fake_advance(clk, 30 * S);
    for (int k = 0; k < 10; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        count[index_of(&p)]++;
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    cr_assert_eq(count[0], 5);
    cr_assert_eq(count[1], 5);
    ward_balancer_free(b);
}

Test(balancer, max_ejection_percent_allows_2_of_20)
{
    struct ward_balancer *b = make(WARD_BALANCER_P2C, 10, 20);
    struct ward_balancer_stats st;

    for (size_t i = 0; i < 4; i++)
        report(b, i, WARD_BALANCER_FAILURE_5XX, 5);
    cr_assert(inst(b, 0).ejected);
    cr_assert(inst(b, 1).ejected);
    cr_assert_not(inst(b, 2).ejected);
    cr_assert_not(inst(b, 3).ejected);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.ejected, 2);
    cr_assert_eq(st.ejections, 2);
    cr_assert_eq(st.ejections_refused, 2);
    cr_assert_not(st.panic);
    /* room again once one returns: the next failure of instance 2 ejects it */
    ward_clock_fake_advance(clk, 30 * S);
    report(b, 2, WARD_BALANCER_FAILURE_5XX, 1);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.ejected, 1);
    cr_assert(inst(b, 2).ejected);
    ward_balancer_free(b);
}

Test(balancer, one_of_3_may_be_ejected_despite_10_percent)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 10, 3);
    struct ward_balancer_stats st;

    report(b, 0, WARD_BALANCER_FAILURE_5XX, 5);
    report(b, 1, WARD_BALANCER_FAILURE_5XX, 5);
    cr_assert(inst(b, 0).ejected);
    cr_assert_not(inst(b, 1).ejected);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.ejected, 1);
    cr_assert_not(st.panic); /* 2 of 3 available */
    ward_balancer_free(b);
}

Test(balancer, panic_below_half_available_picks_among_all)
{
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, 100, 4);
    struct ward_balancer_pick p;
    struct ward_balancer_stats st;
    struct ward_metrics *reg = ward_metrics_new();
    size_t count[4] = {0};
    char *text;
    const char *want[] = {
        "ward_balancer_ejections_total{name=\"zakat\"} 3\n",
        "ward_balancer_ejected{name=\"zakat\"} 3\n",
        "ward_balancer_instances{name=\"zakat\"} 4\n",
        "ward_balancer_panic{name=\"zakat\"} 1\n",
        "ward_balancer_panic_total{name=\"zakat\"} 1\n",
        "# TYPE ward_balancer_ejections_total counter\n",
        "# TYPE ward_balancer_ejected gauge\n",
    };

    cr_assert_not_null(reg);
    cr_assert_eq(ward_balancer_export(NULL, reg), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_export(b, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_balancer_export(b, reg), WARD_ERR_OK);
    report(b, 0, WARD_BALANCER_FAILURE_5XX, 5);
    report(b, 1, WARD_BALANCER_FAILURE_5XX, 5);
    ward_balancer_stats(b, &st);
    cr_assert_not(st.panic); /* exactly 50 % available is not below the threshold */
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        count[index_of(&p)]++;
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    cr_assert_eq(count[0] + count[1], 0);
    cr_assert_eq(count[2], 4);
    report(b, 2, WARD_BALANCER_FAILURE_5XX, 5);
    ward_balancer_stats(b, &st);
    cr_assert(st.panic);
    cr_assert_eq(st.panics, 1);
    memset(count, 0, sizeof count);
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
        count[index_of(&p)]++;
        ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    }
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(count[i], 2, "instance %zu got %zu in panic", i, count[i]);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(text);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(text, want[i]), "missing %s in:\n%s", want[i], text);
    free(text);
    ward_clock_fake_advance(clk, 30 * S);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.ejected, 3); /* returns are lazy: on the next pick */
    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
    ward_balancer_done(b, &p, WARD_BALANCER_SUCCESS);
    ward_balancer_stats(b, &st);
    cr_assert_eq(st.ejected, 0);
    cr_assert_not(st.panic);
    ward_balancer_free(b);
    ward_metrics_free(reg);
}

Test(balancer, all_ejected_without_panic_is_not_found)
{
    struct ward_balancer_settings s;
    struct ward_balancer *b = NULL;
    struct ward_balancer_pick p;

    ward_balancer_settings_default(&s);
    s.clock = clk;
    s.panic_threshold_percent = 0;
    cr_assert_eq(ward_balancer_new(&s, &b), WARD_ERR_OK);
    set_of(b, 0, 1);
    report(b, 0, WARD_BALANCER_FAILURE_5XX, 5);
    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_NOT_FOUND);
    ward_clock_fake_advance(clk, 30 * S);
    cr_assert_eq(ward_balancer_pick(b, &p), WARD_ERR_OK);
    ward_balancer_free(b);
}
