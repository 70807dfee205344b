/* balancer.c — round robin / P2C load balancer with passive outlier ejection and panic mode. */
#include <ward/balancer.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ward/metrics.h>

#include "random.h"
#include "spin.h"

/* One instance and everything it keeps across updates. */
struct inst {
    char *id;
    void *user;
    uint64_t serial;
    uint32_t outstanding;
    uint32_t consecutive;
    uint32_t ejections;
    bool ejected;
    int64_t until; /* return time while ejected */
    uint64_t picks, successes, failures;
};

/* The metrics of ward_balancer_export; all NULL (no-ops) until it is called. */
struct exported {
    struct ward_metric *ejections, *ejected, *instances, *panic, *panics;
};

struct ward_balancer {
    struct ward__spin lock;
    atomic_bool any_ejected; /* hint read outside the lock: is the clock worth reading? */
    char *name;
    struct ward_balancer_settings s;
    /* under lock: */
    struct inst *inst;
    size_t n;
    size_t nejected;
    int64_t next_return; /* earliest `until` of the ejected */
    bool panic;
    uint64_t rr;
    uint64_t rng;
    uint64_t next_serial;
    uint64_t picks, ejection_total, refused, panics;
    struct exported m;
};

void ward_balancer_settings_default(struct ward_balancer_settings *s)
{
    if (s == NULL)
        return;
    memset(s, 0, sizeof *s);
    s->policy = WARD_BALANCER_ROUND_ROBIN;
    s->consecutive_failures = 5;
    s->base_ejection_ns = 30 * WARD_NS_PER_S;
    s->max_ejection_ns = 300 * WARD_NS_PER_S;
    s->max_ejection_percent = 10;
    s->panic_threshold_percent = 50;
}

enum ward_err ward_balancer_new(const struct ward_balancer_settings *s, struct ward_balancer **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct ward_balancer *b = NULL;

    if (out != NULL)
        *out = NULL;
    if (s == NULL || out == NULL || s->base_ejection_ns < 0 ||
        s->max_ejection_ns < s->base_ejection_ns || s->max_ejection_percent > 100 ||
        s->panic_threshold_percent > 100 ||
        (s->policy != WARD_BALANCER_ROUND_ROBIN && s->policy != WARD_BALANCER_P2C))
        goto fail;
    err = WARD_ERR_NOMEM;
    b = calloc(1, sizeof *b);
    if (b == NULL)
        goto fail;
    b->name = strdup(s->name != NULL ? s->name : "");
    if (b->name == NULL)
        goto fail;
    ward__spin_init(&b->lock);
    atomic_init(&b->any_ejected, false);
    b->s = *s;
    b->s.name = b->name;
    b->rng = s->seed != 0 ? s->seed : ward__random_u64();
    b->next_serial = 1;
    *out = b;
    return WARD_ERR_OK;
fail:
    ward_balancer_free(b);
    return err;
}

static void free_insts(struct inst *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].id);
    free(v);
}

void ward_balancer_free(struct ward_balancer *b)
{
    if (b == NULL)
        return;
    free_insts(b->inst, b->n);
    free(b->name);
    free(b);
}

/* splitmix64: a tiny deterministic generator, so tests can seed the P2C choices. */
static uint64_t next_random(struct ward_balancer *b)
{
    uint64_t z = (b->rng += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Panic follows ejections and updates; called under the lock after either. */
static void refresh_state(struct ward_balancer *b)
{
    size_t available = b->n - b->nejected;
    bool panic = b->n > 0 && (uint64_t)available * 100 <
                                 (uint64_t)b->s.panic_threshold_percent * (uint64_t)b->n;

    if (panic && !b->panic) {
        b->panics++;
        ward_counter_inc(b->m.panics);
    }
    b->panic = panic;
    atomic_store_explicit(&b->any_ejected, b->nejected > 0, memory_order_relaxed);
    ward_gauge_set(b->m.panic, panic ? 1.0 : 0.0);
    ward_gauge_set(b->m.ejected, (double)b->nejected);
    ward_gauge_set(b->m.instances, (double)b->n);
}

/* Lazily returns every instance whose ejection time has passed (Envoy does it on a timer;
 * doing it on the next pick needs no thread). */
static void return_expired(struct ward_balancer *b, int64_t now)
{
    int64_t next = INT64_MAX;

    if (b->nejected == 0 || now < b->next_return)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct inst *in = &b->inst[i];

        if (!in->ejected)
            continue;
        if (now >= in->until) {
            in->ejected = false;
            in->until = 0;
            in->consecutive = 0;
            b->nejected--;
        } else if (in->until < next) {
            next = in->until;
        }
    }
    b->next_return = next;
    refresh_state(b);
}

/* Envoy's rule: eject when the ejected share stays within max_ejection_percent after it,
 * or when nothing is ejected yet (so one instance of a small set can always go). */
static bool may_eject(const struct ward_balancer *b)
{
    return b->nejected == 0 ||
           (uint64_t)(b->nejected + 1) * 100 <= (uint64_t)b->s.max_ejection_percent * b->n;
}

static void eject(struct ward_balancer *b, struct inst *in, int64_t now)
{
    int64_t t;

    if (!may_eject(b)) {
        b->refused++; /* the run goes on: the next failure tries again */
        return;
    }
    in->ejections++;
    if (__builtin_mul_overflow(b->s.base_ejection_ns, (int64_t)in->ejections, &t) ||
        t > b->s.max_ejection_ns)
        t = b->s.max_ejection_ns;
    if (__builtin_add_overflow(now, t, &in->until))
        in->until = INT64_MAX;
    in->ejected = true;
    in->consecutive = 0;
    if (b->nejected == 0 || in->until < b->next_return)
        b->next_return = in->until;
    b->nejected++;
    b->ejection_total++;
    ward_counter_inc(b->m.ejections);
    refresh_state(b);
}

/* The k-th (0-based) instance that may be picked now. */
static size_t nth_eligible(const struct ward_balancer *b, bool all, size_t k)
{
    size_t i = 0;

    if (all)
        return k;
    for (i = 0; i < b->n; i++) {
        if (b->inst[i].ejected)
            continue;
        if (k == 0)
            break;
        k--;
    }
    return i;
}

static size_t choose_rr(struct ward_balancer *b, bool all)
{
    size_t start = (size_t)(b->rr % b->n);
    size_t i = start;

    for (size_t step = 0; step < b->n; step++) {
        i = (start + step) % b->n;
        if (all || !b->inst[i].ejected)
            break;
    }
    b->rr = (uint64_t)i + 1;
    return i;
}

/* Two distinct eligible instances at random, the less loaded wins. The pair comes in random
 * order, so keeping the first on a tie is a fair coin. */
static size_t choose_p2c(struct ward_balancer *b, bool all, size_t eligible)
{
    size_t x, y;

    x = (size_t)(next_random(b) % eligible);
    if (eligible == 1)
        return nth_eligible(b, all, x);
    y = (size_t)(next_random(b) % (eligible - 1));
    if (y >= x)
        y++;
    x = nth_eligible(b, all, x);
    y = nth_eligible(b, all, y);
    return b->inst[y].outstanding < b->inst[x].outstanding ? y : x;
}

enum ward_err ward_balancer_pick(struct ward_balancer *b, struct ward_balancer_pick *out)
{
    enum ward_err err = WARD_ERR_NOT_FOUND;
    int64_t now = 0;
    bool all, check;
    size_t eligible, i;
    struct inst *in;

    if (b == NULL || out == NULL)
        return WARD_ERR_INVAL;
    check = atomic_load_explicit(&b->any_ejected, memory_order_relaxed);
    if (check)
        now = ward_clock_now(b->s.clock);
    ward__spin_lock(&b->lock);
    if (check)
        return_expired(b, now);
    all = b->panic || b->nejected == 0;
    eligible = all ? b->n : b->n - b->nejected;
    if (eligible == 0)
        goto done;
    i = b->s.policy == WARD_BALANCER_P2C ? choose_p2c(b, all, eligible) : choose_rr(b, all);
    in = &b->inst[i];
    in->outstanding++;
    in->picks++;
    b->picks++;
    strcpy(out->id, in->id); /* lengths checked in update */
    out->user = in->user;
    out->ticket = in->serial;
    out->slot = i;
    err = WARD_ERR_OK;
done:
    ward__spin_unlock(&b->lock);
    return err;
}

/* The instance a pick refers to, or NULL when an update dropped it. */
static struct inst *find_serial(struct ward_balancer *b, size_t slot, uint64_t serial)
{
    if (slot < b->n && b->inst[slot].serial == serial)
        return &b->inst[slot];
    for (size_t i = 0; i < b->n; i++)
        if (b->inst[i].serial == serial)
            return &b->inst[i];
    return NULL;
}

void ward_balancer_done(struct ward_balancer *b, const struct ward_balancer_pick *pick,
                        enum ward_balancer_outcome outcome)
{
    struct inst *in;
    bool failed =
        outcome == WARD_BALANCER_FAILURE_5XX || outcome == WARD_BALANCER_FAILURE_TRANSPORT;
    int64_t now = 0;

    if (b == NULL || pick == NULL)
        return;
    if (failed && b->s.consecutive_failures > 0)
        now = ward_clock_now(b->s.clock); /* outside the lock; only failures need it */
    ward__spin_lock(&b->lock);
    in = find_serial(b, pick->slot, pick->ticket);
    if (in == NULL)
        goto done;
    if (in->outstanding > 0)
        in->outstanding--;
    if (outcome == WARD_BALANCER_SUCCESS) {
        in->successes++;
        in->consecutive = 0;
    } else if (failed) {
        in->failures++;
        if (!in->ejected && b->s.consecutive_failures > 0) {
            in->consecutive++;
            if (in->consecutive >= b->s.consecutive_failures)
                eject(b, in, now);
        }
    }
done:
    ward__spin_unlock(&b->lock);
}

/* Finds id in the old set, for carrying its state over. */
static const struct inst *find_id(const struct inst *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

/* Checks the new list and copies its ids, outside the lock. */
static enum ward_err build(const struct ward_balancer_instance *src, size_t n, struct inst **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct inst *v = NULL;
    size_t made = 0;

    *out = NULL;
    if (n == 0)
        return WARD_ERR_OK;
    if (src == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    v = calloc(n, sizeof *v);
    if (v == NULL)
        goto fail;
    for (made = 0; made < n; made++) {
        const char *id = src[made].id;

        err = WARD_ERR_INVAL;
        if (id == NULL || id[0] == '\0' ||
            strnlen(id, WARD_BALANCER_ID_MAX) >= WARD_BALANCER_ID_MAX ||
            find_id(v, made, id) != NULL)
            goto fail;
        err = WARD_ERR_NOMEM;
        v[made].id = strdup(id);
        if (v[made].id == NULL)
            goto fail;
        v[made].user = src[made].user;
    }
    *out = v;
    return WARD_ERR_OK;
fail:
    free_insts(v, made);
    return err;
}

enum ward_err ward_balancer_update(struct ward_balancer *b,
                                   const struct ward_balancer_instance *instances, size_t n)
{
    enum ward_err err;
    struct inst *v = NULL, *old;
    size_t old_n, nejected = 0;
    int64_t next = INT64_MAX;

    if (b == NULL)
        return WARD_ERR_INVAL;
    err = build(instances, n, &v);
    if (err != WARD_ERR_OK)
        return err;
    ward__spin_lock(&b->lock);
    for (size_t i = 0; i < n; i++) {
        const struct inst *prev = find_id(b->inst, b->n, v[i].id);
        char *id = v[i].id;
        void *user = v[i].user;

        if (prev != NULL) {
            v[i] = *prev; /* counts, outstanding, ejection and serial carry over */
        } else {
            memset(&v[i], 0, sizeof v[i]);
            v[i].serial = b->next_serial++;
        }
        v[i].id = id;
        v[i].user = user;
        if (v[i].ejected) {
            nejected++;
            if (v[i].until < next)
                next = v[i].until;
        }
    }
    old = b->inst;
    old_n = b->n;
    b->inst = v;
    b->n = n;
    b->nejected = nejected;
    b->next_return = next;
    refresh_state(b);
    ward__spin_unlock(&b->lock);
    free_insts(old, old_n);
    return WARD_ERR_OK;
}

void ward_balancer_stats(struct ward_balancer *b, struct ward_balancer_stats *out)
{
    if (b == NULL || out == NULL)
        return;
    ward__spin_lock(&b->lock);
    out->instances = b->n;
    out->ejected = b->nejected;
    out->panic = b->panic;
    out->picks = b->picks;
    out->ejections = b->ejection_total;
    out->ejections_refused = b->refused;
    out->panics = b->panics;
    ward__spin_unlock(&b->lock);
}

enum ward_err ward_balancer_instance_stats(struct ward_balancer *b, const char *id,
                                           struct ward_balancer_instance_stats *out)
{
    enum ward_err err = WARD_ERR_NOT_FOUND;
    const struct inst *in;
    int64_t now;

    if (b == NULL || id == NULL || out == NULL)
        return WARD_ERR_INVAL;
    now = ward_clock_now(b->s.clock);
    ward__spin_lock(&b->lock);
    return_expired(b, now);
    in = find_id(b->inst, b->n, id);
    if (in != NULL) {
        out->user = in->user;
        out->outstanding = in->outstanding;
        out->consecutive_failures = in->consecutive;
        out->ejections = in->ejections;
        out->ejected = in->ejected;
        out->ejected_until_ns = in->ejected ? in->until : 0;
        out->picks = in->picks;
        out->successes = in->successes;
        out->failures = in->failures;
        err = WARD_ERR_OK;
    }
    ward__spin_unlock(&b->lock);
    return err;
}

enum ward_err ward_balancer_export(struct ward_balancer *b, struct ward_metrics *reg)
{
    static const char *const labels[] = {"name"};
    struct ward_metric_family *f_ej, *f_ejd, *f_n, *f_p, *f_pt;
    const char *const values[] = {b != NULL ? b->name : ""};
    struct exported e;

    if (b == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    f_ej = ward_metrics_counter(reg, "ward_balancer_ejections_total",
                                "Instances ejected by passive outlier detection.", 1, labels);
    f_ejd = ward_metrics_gauge(reg, "ward_balancer_ejected", "Instances ejected now.", 1, labels);
    f_n = ward_metrics_gauge(reg, "ward_balancer_instances", "Instances known to the balancer.",
                             1, labels);
    f_p = ward_metrics_gauge(reg, "ward_balancer_panic",
                             "1 while too few instances are available and all are used.", 1,
                             labels);
    f_pt = ward_metrics_counter(reg, "ward_balancer_panic_total", "Entries into panic mode.", 1,
                                labels);
    e.ejections = ward_metric_get(f_ej, values);
    e.ejected = ward_metric_get(f_ejd, values);
    e.instances = ward_metric_get(f_n, values);
    e.panic = ward_metric_get(f_p, values);
    e.panics = ward_metric_get(f_pt, values);
    if (e.ejections == NULL || e.ejected == NULL || e.instances == NULL || e.panic == NULL ||
        e.panics == NULL) /* ward_metric_get(NULL, ...) is NULL too: covers the families */
        return WARD_ERR_NOMEM;
    ward__spin_lock(&b->lock);
    b->m = e;
    refresh_state(b);
    ward__spin_unlock(&b->lock);
    return WARD_ERR_OK;
}
