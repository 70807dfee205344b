/* keyed_limiter.h — one token bucket per client key (API key, address), in bounded memory. */
#ifndef WARD_KEYED_LIMITER_H
#define WARD_KEYED_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/err.h>
#include <ward/limiter.h>

struct ward_clock;
struct ward_metrics;

/* The longest key, in bytes, without its NUL. */
#define WARD_KEYED_LIMITER_KEY_MAX 128

/* Every key gets its own bucket of `burst` tokens, full when the key is first seen and
 * refilled at `limit` per second, with x/time/rate's arithmetic (see limiter.h).
 *
 * Memory is bounded. A bucket whose key has been idle long enough is deleted, lazily:
 * each new key sweeps a few table slots, and a full table sweeps it all before it gives
 * up, no timer thread. By default a bucket goes once it has refilled completely, which
 * loses nothing, since a new bucket starts full. At most max_keys buckets exist; when
 * they all hold active keys, a new key is rejected with WARD_ERR_FULL (fail closed), so
 * that a client rotating through keys can neither evict the state of legitimate clients
 * nor grow memory; fail_open admits such keys untracked instead. */
struct ward_keyed_limiter;

struct ward_keyed_limiter_settings {
    const char *name;    /* the `name` label of the metrics; copied; default "keyed" */
    double limit;        /* per key, events per second, >= 0; WARD_LIMIT_INF admits all
                          * without tracking keys; 0 = `burst` events per key ever, and
                          * idle buckets then never expire unless idle_ttl_ns is set;
                          * default 10 */
    int64_t burst;       /* per key; > 0 unless limit is 0 or infinite; default 20 */
    size_t max_keys;     /* > 0; default 100000 */
    int64_t idle_ttl_ns; /* 0 = expire a bucket once it is full again (lossless); > 0 =
                          * after this long without a call (shorter than the refill time
                          * gives returning clients a fresh bucket early); default 0 */
    bool fail_open;      /* when full: false = reject new keys with FULL; true = admit
                          * them untracked; default false */
    const struct ward_clock *clock; /* NULL = the real clock; must outlive the limiter */
};

/* What a call tells the caller for its response headers. */
struct ward_keyed_limiter_result {
    int64_t retry_after_ns; /* RATE_LIMITED: the wait until n tokens are there (rounded
                             * up, so a retry then succeeds if nothing else took them);
                             * BURST and FULL: WARD_LIMITER_DELAY_INF; else 0 */
    int64_t remaining;      /* whole tokens left for the key (RateLimit-Remaining) */
    int64_t reset_ns;       /* the wait until the key's bucket is full (RateLimit-Reset) */
};

/* A snapshot. The counters are the sums of per-stripe counts taken stripe by stripe. */
struct ward_keyed_limiter_stats {
    size_t keys;        /* buckets held now */
    uint64_t admitted;  /* calls admitted, tracked or not */
    uint64_t limited;   /* calls rejected for their key's rate (RATE_LIMITED, BURST) */
    uint64_t full;      /* calls rejected because the table was full (FULL) */
    uint64_t untracked; /* calls admitted untracked because the table was full */
    uint64_t expired;   /* buckets deleted as idle */
};

/* Fills s with the defaults above. */
void ward_keyed_limiter_settings_default(struct ward_keyed_limiter_settings *s);

/* A keyed limiter with settings s. Returns OK and the limiter in *out, which the caller
 * owns and frees with ward_keyed_limiter_free(); INVAL when s or out is NULL, the name is
 * NULL or longer than WARD_LIMITER_NAME_MAX, the limit is NaN or negative, the burst is
 * negative or above WARD_LIMITER_BURST_MAX, burst 0 goes with a finite non-zero limit,
 * max_keys is 0 or idle_ttl_ns negative; NOMEM. On failure *out is NULL. */
WARD_MUST_CHECK enum ward_err
ward_keyed_limiter_new(const struct ward_keyed_limiter_settings *s, struct ward_keyed_limiter **out);

/* Frees kl and all its buckets. NULL is a no-op. No other thread may be using kl. */
void ward_keyed_limiter_free(struct ward_keyed_limiter *kl);

/* Takes n tokens from key's bucket now, creating the bucket if the key is new. Returns
 * OK (taken); RATE_LIMITED (too few tokens; nothing taken; answer 429 with
 * Retry-After); BURST (n exceeds the burst: never possible); FULL (a new key, max_keys
 * active buckets and fail_open off); NOMEM (no memory for a new bucket; nothing is
 * admitted); INVAL (kl or key NULL, key longer than WARD_KEYED_LIMITER_KEY_MAX, n < 0).
 * Fills *out when out is not NULL and the call is not INVAL. Reads the clock once;
 * locks one stripe of the table (a spinlock), all stripes one after another when a full
 * table is swept. Thread-safe; calls on keys in different stripes do not contend. */
WARD_MUST_CHECK enum ward_err ward_keyed_limiter_allow(struct ward_keyed_limiter *kl,
                                                       const char *key, int64_t n,
                                                       struct ward_keyed_limiter_result *out);

/* Deletes every idle bucket now (what allow does lazily) and returns how many went.
 * Locks each stripe in turn. Thread-safe. */
size_t ward_keyed_limiter_sweep(struct ward_keyed_limiter *kl);

/* Fills *out. Thread-safe. */
void ward_keyed_limiter_stats(struct ward_keyed_limiter *kl, struct ward_keyed_limiter_stats *out);

/* Registers in reg the gauge ward_keyed_limiter_keys{name} and the counter
 * ward_keyed_limiter_rejections_total{name,reason} (reason "limited" or "full"), and from
 * then on keeps them current: the gauge when a bucket is created or deleted, the counter
 * on each rejection; admitting a known key costs nothing. reg must outlive kl. Exporting
 * again moves the updates to the new registry. INVAL when kl or reg is NULL; NOMEM (or a
 * name clash in reg) leaves kl unexported. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_keyed_limiter_export(struct ward_keyed_limiter *kl,
                                                        struct ward_metrics *reg);

#endif
