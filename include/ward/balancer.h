/* balancer.h — client-side load balancing over a replaceable set of instances: round robin
 * or power of two choices, with Envoy-style passive outlier ejection and panic mode. */
#ifndef WARD_BALANCER_H
#define WARD_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>

struct ward_balancer;
struct ward_metrics;

/* Longest instance id, NUL included ("host:port" fits with room to spare). */
#define WARD_BALANCER_ID_MAX 128

enum ward_balancer_policy {
    WARD_BALANCER_ROUND_ROBIN = 0, /* each available instance in turn */
    WARD_BALANCER_P2C = 1,         /* the less loaded of two chosen at random */
};

/* What a picked call came to. Both failures count toward the same consecutive run (Envoy's
 * consecutive_5xx with local-origin errors mapped to 5xx, its default). EXCLUDED (the
 * caller's own cancellation or bad request) only gives the outstanding slot back. */
enum ward_balancer_outcome {
    WARD_BALANCER_SUCCESS = 0,
    WARD_BALANCER_FAILURE_5XX = 1,
    WARD_BALANCER_FAILURE_TRANSPORT = 2,
    WARD_BALANCER_EXCLUDED = 3,
};

/* One instance given to ward_balancer_update. id is copied; user is the caller's, handed
 * back in picks and never dereferenced by the balancer. */
struct ward_balancer_instance {
    const char *id;
    void *user;
};

/* Defaults are Envoy's outlier detection defaults. Durations are nanoseconds. */
struct ward_balancer_settings {
    const char *name;                 /* copied; NULL means "" */
    enum ward_balancer_policy policy; /* default ROUND_ROBIN */
    uint32_t consecutive_failures;    /* failures in a row that eject; default 5; 0 = never */
    int64_t base_ejection_ns;         /* default 30 s, times the instance's ejection count */
    int64_t max_ejection_ns;          /* cap on one ejection; default 300 s */
    uint32_t max_ejection_percent;    /* 0..100, default 10; one ejection is always allowed */
    uint32_t panic_threshold_percent; /* 0..100, default 50; 0 = never panic */
    uint64_t seed;                    /* P2C random seed; 0 = a random one */
    const struct ward_clock *clock;   /* NULL = real clock; must outlive the balancer */
};

/* A picked instance. id is a copy, so it stays valid after the instance is removed. Pass
 * the whole struct back to ward_balancer_done exactly once. */
struct ward_balancer_pick {
    char id[WARD_BALANCER_ID_MAX];
    void *user;
    uint64_t ticket; /* which instance (its serial); internal */
    size_t slot;     /* where it was at pick time; internal */
};

/* A snapshot (ward_balancer_stats). */
struct ward_balancer_stats {
    size_t instances;           /* in the current set */
    size_t ejected;             /* of them, ejected now */
    bool panic;                 /* fewer than panic_threshold_percent available */
    uint64_t picks;             /* successful ward_balancer_pick calls */
    uint64_t ejections;         /* ejections ever */
    uint64_t ejections_refused; /* ejections max_ejection_percent prevented */
    uint64_t panics;            /* entries into panic mode */
};

/* A snapshot of one instance (ward_balancer_instance_stats). */
struct ward_balancer_instance_stats {
    void *user;
    uint32_t outstanding;          /* picked, not yet done */
    uint32_t consecutive_failures; /* current run */
    uint32_t ejections;            /* times ejected */
    bool ejected;
    int64_t ejected_until_ns; /* on the balancer's clock; 0 when not ejected */
    uint64_t picks, successes, failures;
};

/* Fills s with the defaults: name NULL, ROUND_ROBIN, 5 failures, 30 s base, 300 s max,
 * 10 % max ejected, 50 % panic threshold, seed 0, real clock. */
void ward_balancer_settings_default(struct ward_balancer_settings *s);

/* A new balancer with no instances, settings s copied. Returns INVAL for s NULL, out NULL,
 * negative durations, max_ejection_ns < base_ejection_ns or percents over 100; NOMEM.
 * The caller owns *out (ward_balancer_free). */
WARD_MUST_CHECK enum ward_err ward_balancer_new(const struct ward_balancer_settings *s,
                                                struct ward_balancer **out);

/* Frees b; NULL is a no-op. No pick or done may run concurrently. */
void ward_balancer_free(struct ward_balancer *b);

/* Replaces the instance set with n instances (copied). Instances whose id was already
 * present keep their counts, outstanding calls and ejection; new ones start fresh; missing
 * ones are dropped (their late done calls are ignored). Returns INVAL for a NULL, empty,
 * too long (>= WARD_BALANCER_ID_MAX) or duplicate id, or instances NULL with n > 0; NOMEM.
 * On failure the set is unchanged. Thread-safe; allocates outside the lock. */
WARD_MUST_CHECK enum ward_err ward_balancer_update(struct ward_balancer *b,
                                                   const struct ward_balancer_instance *instances,
                                                   size_t n);

/* Chooses an instance by the policy among those not ejected (among all in panic mode),
 * returns ejected ones whose time has passed first, and counts one outstanding call on it.
 * Returns OK with *out filled; NOT_FOUND when there is no instance to pick (empty set, or
 * all ejected with panic disabled); INVAL for NULL arguments. Thread-safe, spinlock. */
WARD_MUST_CHECK enum ward_err ward_balancer_pick(struct ward_balancer *b,
                                                 struct ward_balancer_pick *out);

/* Reports how the call to pick went: gives the outstanding slot back and feeds outlier
 * ejection. Picks of instances no longer in the set are ignored. Thread-safe, spinlock. */
void ward_balancer_done(struct ward_balancer *b, const struct ward_balancer_pick *pick,
                        enum ward_balancer_outcome outcome);

/* A snapshot of the totals. Thread-safe. */
void ward_balancer_stats(struct ward_balancer *b, struct ward_balancer_stats *out);

/* A snapshot of the instance with this id (after returning expired ejections). Returns
 * NOT_FOUND when it is not in the set, INVAL for NULL arguments. Thread-safe. */
WARD_MUST_CHECK enum ward_err
ward_balancer_instance_stats(struct ward_balancer *b, const char *id,
                             struct ward_balancer_instance_stats *out);

/* Registers in reg, labelled name="<the balancer's name>": ward_balancer_ejections_total
 * (counter), ward_balancer_ejected (gauge, instances ejected now), ward_balancer_instances
 * (gauge), ward_balancer_panic (gauge, 0 or 1) and ward_balancer_panic_total (counter,
 * entries into panic). They change on ejections, returns and updates only, never on a plain
 * pick. reg must outlive b. Returns INVAL for NULL arguments, NOMEM when reg refuses. */
WARD_MUST_CHECK enum ward_err ward_balancer_export(struct ward_balancer *b,
                                                   struct ward_metrics *reg);

#endif
