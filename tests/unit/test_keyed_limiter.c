/* test_keyed_limiter.c — unit tests of the per-key rate limiter on a fake clock. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/keyed_limiter.h>
#include <ward/metrics.h>

#define T0 (1000 * WARD_NS_PER_S)
#define OK WARD_ERR_OK
#define LIMITED WARD_ERR_RATE_LIMITED

struct fx {
    struct ward_clock *clock;
    struct ward_keyed_limiter *kl;
};

static struct fx make_with(struct ward_keyed_limiter_settings *s)
{
    struct fx f;

    f.clock = ward_clock_fake_new(T0);
    cr_assert_not_null(f.clock);
    s->clock = f.clock;
    cr_assert_eq(ward_keyed_limiter_new(s, &f.kl), WARD_ERR_OK);
    return f;
}

static struct fx make(double limit, int64_t burst, size_t max_keys)
{
    struct ward_keyed_limiter_settings s;

    ward_keyed_limiter_settings_default(&s);
    s.limit = limit;
    s.burst = burst;
    s.max_keys = max_keys;
    return make_with(&s);
}

static void done(struct fx *f)
{
    ward_keyed_limiter_free(f->kl);
    ward_clock_free(f->clock);
}

static enum ward_err allow(struct fx *f, const char *key, int64_t n)
{
    return ward_keyed_limiter_allow(f->kl, key, n, NULL);
}

static size_t keys(struct fx *f)
{
    struct ward_keyed_limiter_stats st;

    ward_keyed_limiter_stats(f->kl, &st);
    return st.keys;
}

Test(keyed_limiter, each_key_has_its_own_bucket)
{
    struct fx f = make(10, 2, 100);

    cr_assert_eq(allow(&f, "alice", 1), OK);
    cr_assert_eq(allow(&f, "alice", 1), OK);
    cr_assert_eq(allow(&f, "alice", 1), LIMITED);
    cr_assert_eq(allow(&f, "bob", 2), OK, "bob is not charged for alice");
    cr_assert_eq(allow(&f, "bob", 1), LIMITED);
    cr_assert_eq(allow(&f, "", 1), OK, "the empty key is a key too");
    cr_assert_eq(keys(&f), 3);
    ward_clock_fake_advance(f.clock, 100 * WARD_NS_PER_MS);
    cr_assert_eq(allow(&f, "alice", 1), OK, "one token back after 100 ms at 10/s");
    cr_assert_eq(allow(&f, "alice", 1), LIMITED);
    done(&f);
}

Test(keyed_limiter, result_tells_retry_after_remaining_and_reset)
{
    struct fx f = make(10, 3, 100);
    struct ward_keyed_limiter_result r;

    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 1, &r), OK);
    cr_assert_eq(r.retry_after_ns, 0);
    cr_assert_eq(r.remaining, 2);
    cr_assert_eq(r.reset_ns, 100 * WARD_NS_PER_MS);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 2, &r), OK);
    cr_assert_eq(r.remaining, 0);
    cr_assert_eq(r.reset_ns, 300 * WARD_NS_PER_MS);
    ward_clock_fake_advance(f.clock, 50 * WARD_NS_PER_MS);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 2, &r), LIMITED);
    cr_assert_eq(r.retry_after_ns, 150 * WARD_NS_PER_MS, "1.5 tokens short at 10/s");
    cr_assert_eq(r.remaining, 0);
    cr_assert_eq(r.reset_ns, 250 * WARD_NS_PER_MS);
    ward_clock_fake_advance(f.clock, r.retry_after_ns - 1);
    cr_assert_eq(allow(&f, "k", 2), LIMITED, "a nanosecond early");
    ward_clock_fake_advance(f.clock, 1);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 2, &r), OK, "exactly at retry-after");
    done(&f);
}

Test(keyed_limiter, more_than_the_burst_is_refused_without_making_a_bucket)
{
    struct fx f = make(10, 3, 100);
    struct ward_keyed_limiter_result r;

    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 4, &r), WARD_ERR_BURST);
    cr_assert_eq(r.retry_after_ns, WARD_LIMITER_DELAY_INF);
    cr_assert_eq(r.remaining, 3);
    cr_assert_eq(keys(&f), 0);
    cr_assert_eq(allow(&f, "k", 1), OK);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "k", 4, &r), WARD_ERR_BURST);
    cr_assert_eq(r.remaining, 2);
    done(&f);
}

Test(keyed_limiter, a_bucket_expires_once_it_has_refilled)
{
    struct fx f = make(10, 5, 100);

    cr_assert_eq(allow(&f, "a", 2), OK); /* full again after 200 ms */
    cr_assert_eq(allow(&f, "b", 5), OK); /* full again after 500 ms */
    ward_clock_fake_advance(f.clock, 200 * WARD_NS_PER_MS - 1);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 0);
    ward_clock_fake_advance(f.clock, 1);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 1);
    cr_assert_eq(keys(&f), 1);
    ward_clock_fake_advance(f.clock, 300 * WARD_NS_PER_MS);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 1);
    cr_assert_eq(keys(&f), 0);
    cr_assert_eq(allow(&f, "b", 5), OK, "a returning key starts full, as it would have been");
    done(&f);
}

Test(keyed_limiter, idle_ttl_expires_after_that_long_without_a_call)
{
    struct ward_keyed_limiter_settings s;
    struct ward_keyed_limiter_stats st;
    struct fx f;

    ward_keyed_limiter_settings_default(&s);
    s.limit = 1;
    s.burst = 10;
    s.idle_ttl_ns = 2 * WARD_NS_PER_S;
    f = make_with(&s);
    cr_assert_eq(allow(&f, "a", 10), OK);
    ward_clock_fake_advance(f.clock, WARD_NS_PER_S);
    cr_assert_eq(allow(&f, "a", 1), OK, "a call resets the idle time");
    ward_clock_fake_advance(f.clock, 2 * WARD_NS_PER_S - 1);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 0);
    ward_clock_fake_advance(f.clock, 1);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 1, "gone though only 2 of 10 tokens came back");
    cr_assert_eq(allow(&f, "a", 10), OK, "and so the client gets a fresh bucket early");
    ward_keyed_limiter_stats(f.kl, &st);
    cr_assert_eq(st.expired, 1);
    done(&f);
}

Test(keyed_limiter, new_keys_sweep_idle_buckets_as_they_come)
{
    struct fx f = make(10, 1, 100000);
    struct ward_keyed_limiter_stats st;
    char key[32];
    int fresh = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "old-%d", i);
        cr_assert_eq(allow(&f, key, 1), OK);
    }
    cr_assert_eq(keys(&f), 1000);
    ward_clock_fake_advance(f.clock, WARD_NS_PER_S);
    /* each new key looks at a few slots of its stripe, so the idle ones go with no sweep */
    while (keys(&f) != (size_t)fresh) {
        cr_assert_lt(fresh, 50000, "%zu keys left after %d new ones", keys(&f), fresh);
        snprintf(key, sizeof key, "new-%d", fresh++);
        cr_assert_eq(allow(&f, key, 1), OK);
    }
    ward_keyed_limiter_stats(f.kl, &st);
    cr_assert_eq(st.expired, 1000);
    done(&f);
}

Test(keyed_limiter, full_table_rejects_new_keys_and_keeps_serving_known_ones)
{
    struct fx f = make(1, 10, 2);
    struct ward_keyed_limiter_result r;
    struct ward_keyed_limiter_stats st;

    cr_assert_eq(allow(&f, "a", 1), OK);
    cr_assert_eq(allow(&f, "b", 1), OK);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "c", 1, &r), WARD_ERR_FULL);
    cr_assert_eq(r.retry_after_ns, WARD_LIMITER_DELAY_INF);
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "d", 1, &r), WARD_ERR_FULL);
    cr_assert_eq(allow(&f, "a", 1), OK, "a known key is not affected");
    ward_clock_fake_advance(f.clock, 500 * WARD_NS_PER_MS);
    cr_assert_eq(allow(&f, "c", 1), WARD_ERR_FULL, "no bucket has refilled yet");
    ward_keyed_limiter_stats(f.kl, &st);
    cr_assert_eq(st.keys, 2);
    cr_assert_eq(st.full, 3);
    cr_assert_eq(st.admitted, 3);
    cr_assert_eq(st.untracked, 0);
    done(&f);
}

Test(keyed_limiter, full_table_reclaims_idle_buckets_for_new_keys)
{
    struct fx f = make(1, 10, 2);

    cr_assert_eq(allow(&f, "a", 10), OK); /* full again at +10 s */
    cr_assert_eq(allow(&f, "b", 1), OK);  /* full again at +1 s */
    ward_clock_fake_advance(f.clock, 500 * WARD_NS_PER_MS);
    cr_assert_eq(allow(&f, "c", 1), WARD_ERR_FULL);
    ward_clock_fake_advance(f.clock, 500 * WARD_NS_PER_MS);
    cr_assert_eq(allow(&f, "d", 1), OK, "b has refilled: its slot goes to d");
    cr_assert_eq(keys(&f), 2);
    /* d, new since the last sweep, refills before a does: it must not be overlooked */
    ward_clock_fake_advance(f.clock, WARD_NS_PER_S);
    cr_assert_eq(allow(&f, "e", 1), OK, "d has refilled: its slot goes to e");
    cr_assert_eq(allow(&f, "a", 3), LIMITED, "a kept its state: 2 tokens earned in 2 s");
    cr_assert_eq(allow(&f, "a", 2), OK);
    done(&f);
}

Test(keyed_limiter, fail_open_admits_new_keys_untracked_when_full)
{
    struct ward_keyed_limiter_settings s;
    struct ward_keyed_limiter_result r;
    struct ward_keyed_limiter_stats st;
    struct fx f;

    ward_keyed_limiter_settings_default(&s);
    cr_assert_not(s.fail_open, "fails closed by default");
    s.limit = 1;
    s.burst = 2;
    s.max_keys = 1;
    s.fail_open = true;
    f = make_with(&s);
    cr_assert_eq(allow(&f, "a", 1), OK);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ward_keyed_limiter_allow(f.kl, "b", 1, &r), OK);
        cr_assert_eq(r.remaining, 1, "reported as for a new key");
    }
    ward_keyed_limiter_stats(f.kl, &st);
    cr_assert_eq(st.keys, 1);
    cr_assert_eq(st.untracked, 5);
    cr_assert_eq(st.admitted, 6);
    cr_assert_eq(st.full, 0);
    done(&f);
}

Test(keyed_limiter, infinite_rate_admits_all_and_holds_no_keys)
{
    struct fx f = make(WARD_LIMIT_INF, 0, 1);

    for (int i = 0; i < 10; i++)
        cr_assert_eq(allow(&f, i % 2 ? "x" : "y", 1000), OK);
    cr_assert_eq(keys(&f), 0);
    done(&f);
}

Test(keyed_limiter, zero_rate_gives_each_key_its_burst_ever)
{
    struct fx f = make(0, 3, 10);
    struct ward_keyed_limiter_result r;

    cr_assert_eq(allow(&f, "a", 3), OK);
    ward_clock_fake_advance(f.clock, 365 * 24 * 3600 * WARD_NS_PER_S);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 0, "a bucket that never refills never expires");
    cr_assert_eq(ward_keyed_limiter_allow(f.kl, "a", 1, &r), LIMITED);
    cr_assert_eq(r.retry_after_ns, WARD_LIMITER_DELAY_INF);
    cr_assert_eq(r.reset_ns, WARD_LIMITER_DELAY_INF);
    cr_assert_eq(allow(&f, "b", 3), OK);
    done(&f);
}

Test(keyed_limiter, bad_arguments_are_refused)
{
    struct fx f = make(10, 2, 10);
    char key[WARD_KEYED_LIMITER_KEY_MAX + 2];

    memset(key, 'k', WARD_KEYED_LIMITER_KEY_MAX);
    key[WARD_KEYED_LIMITER_KEY_MAX] = '\0';
    cr_assert_eq(allow(&f, key, 1), OK, "a key of the greatest length");
    key[WARD_KEYED_LIMITER_KEY_MAX] = 'k';
    key[WARD_KEYED_LIMITER_KEY_MAX + 1] = '\0';
    cr_assert_eq(allow(&f, key, 1), WARD_ERR_INVAL);
    cr_assert_eq(allow(&f, NULL, 1), WARD_ERR_INVAL);
    cr_assert_eq(allow(&f, "k", -1), WARD_ERR_INVAL);
    cr_assert_eq(ward_keyed_limiter_allow(NULL, "k", 1, NULL), WARD_ERR_INVAL);
    cr_assert_eq(keys(&f), 1);
    done(&f);
}

Test(keyed_limiter, construction_checks_its_settings)
{
    struct ward_keyed_limiter_settings s;
    struct ward_keyed_limiter *kl = (struct ward_keyed_limiter *)&s;

    ward_keyed_limiter_settings_default(&s);
    cr_assert_str_eq(s.name, "keyed");
    cr_assert_eq(s.limit, 10.0);
    cr_assert_eq(s.burst, 20);
    cr_assert_eq(s.max_keys, 100000);
    cr_assert_eq(s.idle_ttl_ns, 0);
    s.burst = 0;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL, "burst 0 with a finite rate");
    cr_assert_null(kl);
    s.burst = 1;
    s.max_keys = 0;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL);
    s.max_keys = 1;
    s.idle_ttl_ns = -1;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL);
    s.idle_ttl_ns = 0;
    s.limit = -1;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL);
    s.limit = (double)NAN;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL);
    s.limit = 1;
    s.name = NULL;
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_INVAL);
    cr_assert_eq(ward_keyed_limiter_new(NULL, &kl), WARD_ERR_INVAL);
    cr_assert_eq(ward_keyed_limiter_new(&s, NULL), WARD_ERR_INVAL);
    s.name = "real";
    cr_assert_eq(ward_keyed_limiter_new(&s, &kl), WARD_ERR_OK, "NULL clock: the real one");
    cr_assert_eq(ward_keyed_limiter_allow(kl, "x", 1, NULL), OK);
    ward_keyed_limiter_free(kl);
    ward_keyed_limiter_free(NULL);
}

Test(keyed_limiter, many_keys_stay_distinct_and_all_expire)
{
    struct fx f = make(1, 2, 100000);
    char key[32];

    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        cr_assert_eq(allow(&f, key, 2), OK);
    }
    cr_assert_eq(keys(&f), 20000);
    for (int i = 0; i < 20000; i += 97) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        cr_assert_eq(allow(&f, key, 1), LIMITED, "%s", key);
    }
    ward_clock_fake_advance(f.clock, 2 * WARD_NS_PER_S);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 20000);
    cr_assert_eq(keys(&f), 0);
    done(&f);
}

Test(keyed_limiter, metrics_show_keys_and_rejections_by_reason)
{
    struct ward_keyed_limiter_settings s;
    struct ward_metrics *reg = ward_metrics_new();
    char *text;
    struct fx f;

    cr_assert_not_null(reg);
    ward_keyed_limiter_settings_default(&s);
    s.name = "gw";
    s.limit = 1;
    s.burst = 1;
    s.max_keys = 2;
    f = make_with(&s);
    cr_assert_eq(allow(&f, "a", 1), OK, "before the export");
    cr_assert_eq(ward_keyed_limiter_export(f.kl, reg), OK);
    cr_assert_eq(ward_keyed_limiter_export(f.kl, NULL), WARD_ERR_INVAL);
    cr_assert_eq(allow(&f, "b", 1), OK);
    cr_assert_eq(allow(&f, "a", 1), LIMITED);
    cr_assert_eq(allow(&f, "b", 2), WARD_ERR_BURST);
    cr_assert_eq(allow(&f, "c", 1), WARD_ERR_FULL);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(text);
    cr_assert_not_null(strstr(text, "# TYPE ward_keyed_limiter_keys gauge\n"), "%s", text);
    cr_assert_not_null(strstr(text, "ward_keyed_limiter_keys{name=\"gw\"} 2\n"), "%s", text);
    cr_assert_not_null(strstr(text, "# TYPE ward_keyed_limiter_rejections_total counter\n"));
    cr_assert_not_null(
        strstr(text, "ward_keyed_limiter_rejections_total{name=\"gw\",reason=\"limited\"} 2\n"),
        "%s", text);
    cr_assert_not_null(
        strstr(text, "ward_keyed_limiter_rejections_total{name=\"gw\",reason=\"full\"} 1\n"), "%s",
        text);
    free(text);
    ward_clock_fake_advance(f.clock, 2 * WARD_NS_PER_S);
    cr_assert_eq(ward_keyed_limiter_sweep(f.kl), 2);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(strstr(text, "ward_keyed_limiter_keys{name=\"gw\"} 0\n"), "%s", text);
    free(text);
    done(&f);
    ward_metrics_free(reg);
}
