/* keyed_limiter.c — per-key token buckets in a striped hash table with lazy expiry. */
#include <ward/keyed_limiter.h>

#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/metrics.h>

#include "random.h"
#include "limiter_int.h"
#include "spin.h"

#define NSTRIPES 64        /* a power of 2; the top bits of a hash pick the stripe */
#define STRIPE_SHIFT 58    /* 64 - log2(NSTRIPES) */
#define INITIAL_SLOTS 8
#define SWEEP_STEP 2       /* slots a new key examines for idle buckets */

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t last;  /* when tokens was last brought up to date */
    double tokens; /* in [0, burst]: this limiter never reserves ahead */
    size_t len;
    char key[];
};

struct stripe {
    alignas(64) struct ward__spin lock;
    struct entry **slots; /* chains; nslots is a power of 2 */
    size_t nslots;
    size_t count;
    size_t hand; /* next slot the incremental sweep examines */
    uint64_t admitted, limited, full, untracked, expired;
};

struct ward_keyed_limiter {
    /* Fixed at creation, except the metrics, written with every stripe locked. */
    const struct ward_clock *clock;
    double limit;
    int64_t burst;
    size_t max_keys;
    int64_t idle_ttl;
    bool fail_open;
    uint64_t k0, k1; /* hash key, random per limiter: clients cannot aim at one chain */
    struct ward_metric *m_keys, *m_limited, *m_full;
    char name[WARD_LIMITER_NAME_MAX + 1];
    /* Changed only when buckets come and go. */
    alignas(64) _Atomic size_t nkeys;
    /* No bucket can expire before this time, so a full table need not be swept before:
     * a client rotating keys costs O(1) per rejection, not a sweep of the table. */
    _Atomic int64_t sweep_after;
    struct stripe stripes[NSTRIPES];
};

/* The time to earn tokens, rounded up (not truncated as in x/time/rate) so that a client
 * told to come back after it finds the tokens there; DELAY_INF when they never come. */
static int64_t wait_for(double limit, double tokens)
{
    double ns;

    if (tokens <= 0)
        return 0;
    if (limit <= 0)
        return WARD_LIMITER_DELAY_INF;
    ns = ceil(tokens / limit * 1e9);
    return ns >= 0x1p63 ? WARD_LIMITER_DELAY_INF : (int64_t)ns;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                   \
    do {                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                  \
    } while (0)

/* SipHash-1-3 of the key: keyed, so chains cannot be flooded by chosen keys. */
static uint64_t hash_key(const struct ward_keyed_limiter *kl, const char *key, size_t len)
{
    uint64_t v0 = kl->k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = kl->k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = kl->k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = kl->k1 ^ UINT64_C(0x7465646279746573);
    uint64_t b = (uint64_t)len << 56;
    uint64_t m;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | (unsigned char)key[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i + (size_t)j < len; j++)
        b |= (uint64_t)(unsigned char)key[i + (size_t)j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* When e's bucket may go: once full again (lossless) or after the idle TTL. */
static int64_t expires_at(const struct ward_keyed_limiter *kl, const struct entry *e)
{
    if (kl->idle_ttl > 0)
        return ward__sat_add(e->last, kl->idle_ttl);
    if (kl->limit <= 0)
        return INT64_MAX; /* never refills, so forgetting it would hand out a new burst */
    return ward__sat_add(e->last, wait_for(kl->limit, (double)kl->burst - e->tokens));
}

/* Lowers sweep_after to t, for a bucket that can expire before anything seen so far. */
static void sweep_after_min(struct ward_keyed_limiter *kl, int64_t t)
{
    int64_t cur = atomic_load_explicit(&kl->sweep_after, memory_order_relaxed);

    while (t < cur && !atomic_compare_exchange_weak_explicit(&kl->sweep_after, &cur, t,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

/* Deletes the idle buckets in one chain, stripe locked; lowers *min to the earliest
 * expiry among those that stay. Returns how many went. */
static size_t sweep_slot(struct ward_keyed_limiter *kl, struct stripe *s, size_t slot,
                         int64_t now, int64_t *min)
{
    struct entry **pp = &s->slots[slot];
    struct entry *e;
    size_t gone = 0;
    int64_t at;

    while (*pp != NULL) {
        e = *pp;
        at = expires_at(kl, e);
        if (at != INT64_MAX && now >= at) {
            *pp = e->next;
            free(e);
            gone++;
        } else {
            if (at < *min)
                *min = at;
            pp = &e->next;
        }
    }
    if (gone > 0) {
        s->count -= gone;
        s->expired += gone;
        atomic_fetch_sub_explicit(&kl->nkeys, gone, memory_order_relaxed);
        ward_gauge_add(kl->m_keys, -(double)gone);
    }
    return gone;
}

/* Sweeps every stripe, one lock at a time; returns how many buckets went. */
static size_t sweep_all(struct ward_keyed_limiter *kl, int64_t now)
{
    int64_t min = INT64_MAX;
    size_t gone = 0;

    for (size_t i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &kl->stripes[i];

        ward__spin_lock(&s->lock);
        for (size_t slot = 0; slot < s->nslots; slot++)
            gone += sweep_slot(kl, s, slot, now, &min);
        ward__spin_unlock(&s->lock);
    }
    sweep_after_min(kl, min);
    return gone;
}

/* True when this caller should sweep a full table: something may have expired by now and
 * no other caller is sweeping (the claim parks sweep_after at the end of time). */
static bool claim_sweep(struct ward_keyed_limiter *kl, int64_t now)
{
    int64_t after = atomic_load_explicit(&kl->sweep_after, memory_order_relaxed);

    return now >= after &&
           atomic_compare_exchange_strong_explicit(&kl->sweep_after, &after, INT64_MAX,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* One more key, unless max_keys are held. */
static bool take_key(struct ward_keyed_limiter *kl)
{
    size_t n = atomic_load_explicit(&kl->nkeys, memory_order_relaxed);

    do {
        if (n >= kl->max_keys)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&kl->nkeys, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static struct entry *find_locked(struct stripe *s, uint64_t h, const char *key, size_t len)
{
    struct entry *e = s->slots[h & (s->nslots - 1)];

    while (e != NULL && !(e->hash == h && e->len == len && memcmp(e->key, key, len) == 0))
        e = e->next;
    return e;
}

/* Doubles a stripe's table; out of memory, the chains just grow longer. */
static void grow_locked(struct stripe *s)
{
    size_t n = s->nslots * 2;
    struct entry **slots = calloc(n, sizeof *slots);
    struct entry *e;

    if (slots == NULL)
        return;
    for (size_t i = 0; i < s->nslots; i++) {
        while (s->slots[i] != NULL) {
            e = s->slots[i];
            s->slots[i] = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
        }
    }
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
    s->hand &= n - 1;
}

/* A full bucket for a new key, stripe locked; NULL with *err FULL or NOMEM. Each new key
 * first sweeps a few slots, so idle buckets go at the pace new ones come. */
static struct entry *insert_locked(struct ward_keyed_limiter *kl, struct stripe *s, uint64_t h,
                                   const char *key, size_t len, int64_t now, enum ward_err *err)
{
    struct entry *e = NULL;
    int64_t min = INT64_MAX;

    for (int i = 0; i < SWEEP_STEP; i++) {
        sweep_slot(kl, s, s->hand, now, &min);
        s->hand = (s->hand + 1) & (s->nslots - 1);
    }
    *err = WARD_ERR_FULL;
    if (!take_key(kl))
        goto fail;
    *err = WARD_ERR_NOMEM;
    e = malloc(sizeof *e + len + 1);
    if (e == NULL) {
        atomic_fetch_sub_explicit(&kl->nkeys, 1, memory_order_relaxed);
        goto fail;
    }
    e->hash = h;
    e->last = now;
    e->tokens = (double)kl->burst;
    e->len = len;
    memcpy(e->key, key, len + 1);
    if (s->count >= s->nslots)
        grow_locked(s);
    e->next = s->slots[h & (s->nslots - 1)];
    s->slots[h & (s->nslots - 1)] = e;
    s->count++;
    ward_gauge_add(kl->m_keys, 1);
    *err = WARD_ERR_OK;
fail:
    return e;
}

/* Charges n tokens to e at now, stripe locked, and says what the caller may tell. */
static enum ward_err take_locked(const struct ward_keyed_limiter *kl, struct entry *e, int64_t n,
                                 int64_t now, struct ward_keyed_limiter_result *res)
{
    enum ward_err err = WARD_ERR_OK;
    double burst = (double)kl->burst;
    double tokens = e->tokens;

    if (now > e->last)
        tokens += ward__tokens_from_duration(kl->limit, ward__sat_sub(now, e->last));
    if (tokens > burst)
        tokens = burst;
    if (n > kl->burst) {
        err = WARD_ERR_BURST;
        res->retry_after_ns = WARD_LIMITER_DELAY_INF;
    } else if (tokens < (double)n) {
        err = WARD_ERR_RATE_LIMITED;
        res->retry_after_ns = wait_for(kl->limit, (double)n - tokens);
    } else {
        tokens -= (double)n;
        e->tokens = tokens;
        e->last = now; /* as x/time/rate: even when the clock went back */
        res->retry_after_ns = 0;
    }
    res->remaining = (int64_t)floor(tokens);
    res->reset_ns = wait_for(kl->limit, burst - tokens);
    return err;
}

void ward_keyed_limiter_settings_default(struct ward_keyed_limiter_settings *s)
{
    s->name = "keyed";
    s->limit = 10;
    s->burst = 20;
    s->max_keys = 100000;
    s->idle_ttl_ns = 0;
    s->fail_open = false;
    s->clock = NULL;
}

enum ward_err ward_keyed_limiter_new(const struct ward_keyed_limiter_settings *s,
                                     struct ward_keyed_limiter **out)
{
    struct ward_keyed_limiter *kl = NULL;
    enum ward_err err = WARD_ERR_INVAL;
    double limit;

    if (out == NULL)
        goto fail;
    *out = NULL;
    if (s == NULL || s->name == NULL || strlen(s->name) > WARD_LIMITER_NAME_MAX ||
        isnan(s->limit) || s->limit < 0 || s->burst < 0 || s->burst > WARD_LIMITER_BURST_MAX ||
        s->max_keys == 0 || s->idle_ttl_ns < 0)
        goto fail;
    limit = s->limit > WARD_LIMIT_INF ? WARD_LIMIT_INF : s->limit;
    if (s->burst == 0 && limit != 0 && limit != WARD_LIMIT_INF)
        goto fail;
    err = WARD_ERR_NOMEM;
    kl = aligned_alloc(alignof(struct ward_keyed_limiter), sizeof *kl);
    if (kl == NULL)
        goto fail;
    memset(kl, 0, sizeof *kl);
    for (size_t i = 0; i < NSTRIPES; i++) {
        ward__spin_init(&kl->stripes[i].lock);
        kl->stripes[i].nslots = INITIAL_SLOTS;
        kl->stripes[i].slots = calloc(INITIAL_SLOTS, sizeof(struct entry *));
        if (kl->stripes[i].slots == NULL)
            goto fail;
    }
    kl->clock = s->clock;
    kl->limit = limit;
    kl->burst = s->burst;
    kl->max_keys = s->max_keys;
    kl->idle_ttl = s->idle_ttl_ns;
    kl->fail_open = s->fail_open;
    kl->k0 = ward__random_u64();
    kl->k1 = ward__random_u64();
    strcpy(kl->name, s->name);
    atomic_init(&kl->nkeys, 0);
    atomic_init(&kl->sweep_after, INT64_MIN);
    *out = kl;
    kl = NULL;
    err = WARD_ERR_OK;
fail:
    ward_keyed_limiter_free(kl);
    return err;
}

void ward_keyed_limiter_free(struct ward_keyed_limiter *kl)
{
    struct entry *e;

    if (kl == NULL)
        return;
    for (size_t i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &kl->stripes[i];

        for (size_t slot = 0; s->slots != NULL && slot < s->nslots; slot++) {
            while (s->slots[slot] != NULL) {
                e = s->slots[slot];
                s->slots[slot] = e->next;
                free(e);
            }
        }
        free(s->slots);
    }
    free(kl);
}

/* Finds or makes key's bucket and charges it, stripe s locked (released and retaken
 * around a sweep of a full table). */
static enum ward_err allow_locked(struct ward_keyed_limiter *kl, struct stripe *s, uint64_t h,
                                  const char *key, size_t len, int64_t n, int64_t now,
                                  struct ward_keyed_limiter_result *res)
{
    enum ward_err err = WARD_ERR_OK;
    struct entry *e = find_locked(s, h, key, len);
    bool fresh = false;

    if (e == NULL && n > kl->burst) {
        res->remaining = kl->burst; /* no bucket for a request that can never pass */
        return WARD_ERR_BURST;
    }
    if (e == NULL) {
        e = insert_locked(kl, s, h, key, len, now, &err);
        if (e == NULL && err == WARD_ERR_FULL && claim_sweep(kl, now)) {
            ward__spin_unlock(&s->lock);
            sweep_all(kl, now);
            ward__spin_lock(&s->lock);
            e = find_locked(s, h, key, len);
            if (e == NULL)
                e = insert_locked(kl, s, h, key, len, now, &err);
        }
        fresh = e != NULL;
    }
    if (e != NULL) {
        err = take_locked(kl, e, n, now, res);
        if (fresh) /* keeps sweep_after at or before every bucket's expiry */
            sweep_after_min(kl, expires_at(kl, e));
    } else if (err == WARD_ERR_FULL && kl->fail_open) {
        err = WARD_ERR_OK;
        s->untracked++;
        *res = (struct ward_keyed_limiter_result){0, kl->burst - n, 0};
    }
    return err;
}

enum ward_err ward_keyed_limiter_allow(struct ward_keyed_limiter *kl, const char *key, int64_t n,
                                       struct ward_keyed_limiter_result *out)
{
    struct ward_keyed_limiter_result res = {WARD_LIMITER_DELAY_INF, 0, 0};
    enum ward_err err = WARD_ERR_INVAL;
    struct ward_metric *m = NULL;
    struct stripe *s;
    size_t len;
    int64_t now;
    uint64_t h;

    if (kl == NULL || key == NULL || n < 0)
        goto done;
    len = strnlen(key, WARD_KEYED_LIMITER_KEY_MAX + 1);
    if (len > WARD_KEYED_LIMITER_KEY_MAX)
        goto done;
    now = ward_clock_now(kl->clock);
    h = hash_key(kl, key, len);
    s = &kl->stripes[h >> STRIPE_SHIFT];
    ward__spin_lock(&s->lock);
    if (kl->limit == WARD_LIMIT_INF) {
        err = WARD_ERR_OK;
        res = (struct ward_keyed_limiter_result){0, kl->burst, 0};
    } else {
        err = allow_locked(kl, s, h, key, len, n, now, &res);
    }
    if (err == WARD_ERR_OK) {
        s->admitted++;
    } else if (err == WARD_ERR_RATE_LIMITED || err == WARD_ERR_BURST) {
        s->limited++;
        m = kl->m_limited;
    } else if (err == WARD_ERR_FULL) {
        s->full++;
        m = kl->m_full;
    }
    ward__spin_unlock(&s->lock);
    if (m != NULL)
        ward_counter_inc(m);
    if (out != NULL)
        *out = res;
done:
    return err;
}

size_t ward_keyed_limiter_sweep(struct ward_keyed_limiter *kl)
{
    return sweep_all(kl, ward_clock_now(kl->clock));
}

void ward_keyed_limiter_stats(struct ward_keyed_limiter *kl, struct ward_keyed_limiter_stats *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &kl->stripes[i];

        ward__spin_lock(&s->lock);
        out->admitted += s->admitted;
        out->limited += s->limited;
        out->full += s->full;
        out->untracked += s->untracked;
        out->expired += s->expired;
        ward__spin_unlock(&s->lock);
    }
    out->keys = atomic_load_explicit(&kl->nkeys, memory_order_relaxed);
}

enum ward_err ward_keyed_limiter_export(struct ward_keyed_limiter *kl, struct ward_metrics *reg)
{
    static const char *const name_label[] = {"name"};
    static const char *const reason_labels[] = {"name", "reason"};
    struct ward_metric_family *keys_fam;
    struct ward_metric_family *rej_fam;
    struct ward_metric *keys, *limited, *full;
    const char *values[2];
    enum ward_err err = WARD_ERR_INVAL;

    if (kl == NULL || reg == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    keys_fam = ward_metrics_gauge(reg, "ward_keyed_limiter_keys",
                                  "Client keys a keyed rate limiter holds a bucket for.", 1,
                                  name_label);
    rej_fam = ward_metrics_counter(reg, "ward_keyed_limiter_rejections_total",
                                   "Calls a keyed rate limiter turned away, by reason: the "
                                   "key's rate (limited) or a full key table (full).",
                                   2, reason_labels);
    values[0] = kl->name;
    keys = ward_metric_get(keys_fam, values);
    values[1] = "limited";
    limited = ward_metric_get(rej_fam, values);
    values[1] = "full";
    full = ward_metric_get(rej_fam, values);
    if (keys == NULL || limited == NULL || full == NULL)
        goto fail;
    /* every stripe locked: no bucket comes or goes between the count and the switch */
    for (size_t i = 0; i < NSTRIPES; i++)
        ward__spin_lock(&kl->stripes[i].lock);
    ward_gauge_set(keys, (double)atomic_load_explicit(&kl->nkeys, memory_order_relaxed));
    kl->m_keys = keys;
    kl->m_limited = limited;
    kl->m_full = full;
    for (size_t i = 0; i < NSTRIPES; i++)
        ward__spin_unlock(&kl->stripes[i].lock);
    err = WARD_ERR_OK;
fail:
    return err;
}
