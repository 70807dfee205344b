/* tsan_balancer.c — threads picking and reporting on one balancer while another updates the
 * set and moves the clock, built with ThreadSanitizer: outstanding counts return to 0 and
 * the totals add up exactly. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ward/balancer.h>
#include <ward/clock.h>
#include <ward/metrics.h>

#include "tsan_check.h"

#define THREADS 4
#define CALLS 30000


static const char *const ids[] = {"10.0.0.0:8081", "10.0.0.1:8081", "10.0.0.2:8081",
                                  "10.0.0.3:8081", "10.0.0.4:8081", "10.0.0.5:8081"};

struct job {
    struct ward_balancer *b;
    atomic_bool *stop;
    const struct ward_clock *clock;
    uint64_t picked;
};

static bool set_of(struct ward_balancer *b, size_t n)
{
    struct ward_balancer_instance v[6];

    for (size_t i = 0; i < n; i++) {
        v[i].id = ids[i];
        v[i].user = NULL;
    }
    return ward_balancer_update(b, v, n) == WARD_ERR_OK;
}

/* Picks and reports; instance 0 always fails, and every 8th pick is held over one more. */
static void *worker(void *arg)
{
    struct job *j = arg;
    struct ward_balancer_pick p, held;
    bool holding = false;

    for (int k = 0; k < CALLS; k++) {
        if (ward_balancer_pick(j->b, &p) != WARD_ERR_OK)
            continue;
        j->picked++;
        if (k % 8 == 0 && !holding) {
            held = p;
            holding = true;
            continue;
        }
        ward_balancer_done(j->b, &p,
                           strcmp(p.id, ids[0]) == 0 ? WARD_BALANCER_FAILURE_5XX
                                                     : WARD_BALANCER_SUCCESS);
        if (holding) {
            ward_balancer_done(j->b, &held, WARD_BALANCER_EXCLUDED);
            holding = false;
        }
    }
    if (holding)
        ward_balancer_done(j->b, &held, WARD_BALANCER_EXCLUDED);
    return NULL;
}

/* Swaps the set between 5 and 6 instances and moves time so ejections come and go. */
static void *churn(void *arg)
{
    struct job *j = arg;
    size_t n = 5;

    while (!atomic_load(j->stop)) {
        if (!set_of(j->b, n))
            j->picked++; /* counted as an error by the caller */
        n = n == 5 ? 6 : 5;
        ward_clock_fake_advance(j->clock, 10 * WARD_NS_PER_S);
    }
    return NULL;
}

static struct ward_balancer *make(enum ward_balancer_policy policy, const struct ward_clock *c)
{
    struct ward_balancer_settings s;
    struct ward_balancer *b = NULL;

    ward_balancer_settings_default(&s);
    s.name = "tsan";
    s.policy = policy;
    s.clock = c;
    s.seed = 7;
    if (ward_balancer_new(&s, &b) != WARD_ERR_OK)
        return NULL;
    return b;
}

static void hammer(enum ward_balancer_policy policy, const char *label)
{
    struct ward_clock *c = ward_clock_fake_new(0);
    struct ward_balancer *b = make(policy, c);
    struct ward_metrics *reg = ward_metrics_new();
    atomic_bool stop;
    struct job jobs[THREADS], ch;
    pthread_t th[THREADS], cth;
    struct ward_balancer_stats st;
    struct ward_balancer_instance_stats is;
    uint64_t total = 0, outstanding = 0;
    char what[128];

    atomic_init(&stop, false);
    if (c == NULL || b == NULL || reg == NULL || !set_of(b, 6) ||
        ward_balancer_export(b, reg) != WARD_ERR_OK) {
        check(false, "setup");
        goto done;
    }
    ch = (struct job){b, &stop, c, 0};
    pthread_create(&cth, NULL, churn, &ch);
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct job){b, &stop, c, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += jobs[i].picked;
    }
    atomic_store(&stop, true);
    pthread_join(cth, NULL);
    ward_balancer_stats(b, &st);
    for (size_t i = 0; i < 6; i++)
        if (ward_balancer_instance_stats(b, ids[i], &is) == WARD_ERR_OK)
            outstanding += is.outstanding;
    snprintf(what, sizeof what, "%s: picks add up (%llu == %llu)", label,
             (unsigned long long)st.picks, (unsigned long long)total);
    check(st.picks == total && total > 0 && ch.picked == 0, what);
    snprintf(what, sizeof what, "%s: outstanding back to 0 (%llu)", label,
             (unsigned long long)outstanding);
    check(outstanding == 0, what);
    snprintf(what, sizeof what, "%s: failing instance ejected (%llu ejections)", label,
             (unsigned long long)st.ejections);
    check(st.ejections > 0, what);
done:
    ward_balancer_free(b);
    ward_metrics_free(reg);
    ward_clock_free(c);
}

static void *rr_worker(void *arg)
{
    struct job *j = arg;
    struct ward_balancer_pick p;

    for (int k = 0; k < CALLS; k++) {
        if (ward_balancer_pick(j->b, &p) != WARD_ERR_OK)
            continue;
        j->picked++;
        ward_balancer_done(j->b, &p, WARD_BALANCER_SUCCESS);
    }
    return NULL;
}

/* Round robin is exact across threads: each of 3 instances gets a third of the picks. */
static void round_robin_exact(void)
{
    struct ward_clock *c = ward_clock_fake_new(0);
    struct ward_balancer *b = make(WARD_BALANCER_ROUND_ROBIN, c);
    struct job jobs[THREADS];
    pthread_t th[THREADS];
    struct ward_balancer_instance_stats is;
    bool ok = true;

    if (c == NULL || b == NULL || !set_of(b, 3)) {
        check(false, "round robin setup");
        goto done;
    }
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct job){b, NULL, c, 0};
        pthread_create(&th[i], NULL, rr_worker, &jobs[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < 3; i++) {
        ok = ok && ward_balancer_instance_stats(b, ids[i], &is) == WARD_ERR_OK &&
             is.picks == THREADS * CALLS / 3 && is.successes == is.picks && is.outstanding == 0;
    }
    check(ok, "round robin: each instance got exactly a third, all done");
done:
    ward_balancer_free(b);
    ward_clock_free(c);
}

int main(void)
{
    hammer(WARD_BALANCER_P2C, "p2c");
    hammer(WARD_BALANCER_ROUND_ROBIN, "round robin");
    round_robin_exact();
    return tsan_summary();
}
