/* breaker.c — the circuit breaker: gobreaker's state machine under one spinlock, with
 * state-change callbacks delivered in order outside the lock. */
#include <ward/breaker.h>

#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <ward/metrics.h>

#include "breaker_window.h"
#include "spin.h"

#define TIMEOUT_DEFAULT (60 * WARD_NS_PER_S)
#define MAX_OPEN_DEFAULT (300 * WARD_NS_PER_S)
#define NEVER INT64_MAX
/* A call changes state at most twice: applying the clock (half-open whose probes timed
 * out -> open -> half-open; its outcome is then for an old generation), or once by the
 * clock and once by its outcome. */
#define MAX_CHANGES 3

/* A state change waiting for on_state_change. It lives on the stack of the call that made
 * it; that call does not return before the change has been taken off the list. */
struct change {
    struct change *next;
    enum ward_breaker_state from;
    enum ward_breaker_state to;
};

struct changes {
    struct change item[MAX_CHANGES];
    int n;
};

/* The four changes the state machine can make, for the transitions counter. */
enum edge { EDGE_CLOSED_OPEN, EDGE_OPEN_HALF, EDGE_HALF_OPEN, EDGE_HALF_CLOSED, EDGE_COUNT };

/* The metrics of ward_breaker_export; all NULL (no-ops) until it is called. */
struct exported {
    struct ward_metric *state;
    struct ward_metric *edge[EDGE_COUNT];
    struct ward_metric *rejected_open;
    struct ward_metric *rejected_too_many;
};

struct ward_breaker {
    /* Guarded by lock. What every call touches shares the first cache line. */
    alignas(64) struct ward__spin lock;
    enum ward_breaker_state state;
    int64_t expiry; /* when the clock next changes something; NEVER when nothing will */
    uint64_t generation;
    struct ward_breaker_counts counts;

    /* Guarded by lock, used on rarer paths. */
    uint32_t trips;
    int64_t open_ns;
    uint64_t transitions;
    uint64_t rejected_open;
    uint64_t rejected_too_many;
    struct change *pending; /* changes not yet given to on_state_change, oldest first */
    struct change **pending_tail;
    struct exported m;

    /* Set by ward_breaker_new, then read-only (the window's contents are under lock). */
    struct ward_breaker_settings cfg; /* defaults filled in; cfg.name is name */
    struct ward__bwin *window;        /* NULL outside window mode */
    char *name;
    pthread_mutex_t deliver_mu; /* recursive: held while changes go to on_state_change */
};

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t sum;

    if (__builtin_add_overflow(a, b, &sum))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return sum;
}

void ward_breaker_settings_default(struct ward_breaker_settings *s)
{
    memset(s, 0, sizeof *s);
    s->max_requests = 1;
    s->timeout_ns = TIMEOUT_DEFAULT;
    s->backoff = 1.0;
    s->max_open_ns = MAX_OPEN_DEFAULT;
    s->window.min_calls = 20;
    s->window.failure_rate = 50;
    s->window.slow_call_rate = 100;
    s->window.slow_call_ns = 60 * WARD_NS_PER_S;
}

const char *ward_breaker_state_name(enum ward_breaker_state state)
{
    static const char *const names[] = {"closed", "half-open", "open"};

    return (unsigned)state <= WARD_BREAKER_OPEN ? names[state] : "unknown";
}

/* Copies the settings into br->cfg, turning zeros into defaults; INVAL for what cannot be. */
static enum ward_err configure(struct ward_breaker *br, const struct ward_breaker_settings *s)
{
    struct ward_breaker_settings *c = &br->cfg;

    *c = *s;
    c->name = br->name;
    if (ward__bwin_normalize(&c->window) != WARD_ERR_OK)
        return WARD_ERR_INVAL;
    if (c->window.kind != WARD_BREAKER_WINDOW_NONE && (c->interval_ns > 0 || c->ready_to_trip))
        return WARD_ERR_INVAL;
    c->backoff = c->backoff == 0.0 ? 1.0 : c->backoff;
    if (!(c->backoff >= 1.0) || isinf(c->backoff))
        return WARD_ERR_INVAL;
    c->max_requests = c->max_requests == 0 ? 1 : c->max_requests;
    c->interval_ns = c->interval_ns > 0 ? c->interval_ns : 0;
    c->timeout_ns = c->timeout_ns > 0 ? c->timeout_ns : TIMEOUT_DEFAULT;
    c->probe_deadline_ns = c->probe_deadline_ns > 0 ? c->probe_deadline_ns : c->timeout_ns;
    c->max_open_ns = c->max_open_ns > 0 ? c->max_open_ns : MAX_OPEN_DEFAULT;
    c->max_open_ns = c->max_open_ns < c->timeout_ns ? c->timeout_ns : c->max_open_ns;
    return WARD_ERR_OK;
}

enum ward_err ward_breaker_new(const struct ward_breaker_settings *s, struct ward_breaker **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct ward_breaker *br = NULL;
    pthread_mutexattr_t attr;
    bool attr_made = false;

    if (s == NULL || out == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    br = aligned_alloc(alignof(struct ward_breaker), sizeof *br);
    if (br == NULL)
        goto fail;
    memset(br, 0, sizeof *br);
    br->name = strdup(s->name != NULL ? s->name : "");
    if (br->name == NULL)
        goto fail;
    err = configure(br, s);
    if (err != WARD_ERR_OK)
        goto fail;
    if (br->cfg.window.kind != WARD_BREAKER_WINDOW_NONE) {
        err = ward__bwin_new(&br->cfg.window, &br->window);
        if (err != WARD_ERR_OK)
            goto fail;
    }
    err = WARD_ERR_SYSTEM;
    if (pthread_mutexattr_init(&attr) != 0)
        goto fail;
    attr_made = true;
    if (pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) != 0 ||
        pthread_mutex_init(&br->deliver_mu, &attr) != 0)
        goto fail;
    pthread_mutexattr_destroy(&attr);
    ward__spin_init(&br->lock);
    br->state = WARD_BREAKER_CLOSED;
    br->generation = 1; /* a zeroed ticket never matches */
    br->expiry = NEVER;
    if (br->cfg.interval_ns > 0)
        br->expiry = add_sat(ward_clock_now(br->cfg.clock), br->cfg.interval_ns);
    br->open_ns = br->cfg.timeout_ns;
    br->pending_tail = &br->pending;
    *out = br;
    return WARD_ERR_OK;
fail:
    if (attr_made)
        pthread_mutexattr_destroy(&attr);
    if (br != NULL) {
        ward__bwin_free(br->window);
        free(br->name);
        free(br);
    }
    return err;
}

void ward_breaker_free(struct ward_breaker *br)
{
    if (br == NULL)
        return;
    pthread_mutex_destroy(&br->deliver_mu);
    ward__bwin_free(br->window);
    free(br->name);
    free(br);
}

const char *ward_breaker_name(const struct ward_breaker *br)
{
    return br->name;
}

static enum edge edge_of(enum ward_breaker_state from, enum ward_breaker_state to)
{
    if (from != WARD_BREAKER_HALF_OPEN)
        return from == WARD_BREAKER_CLOSED ? EDGE_CLOSED_OPEN : EDGE_OPEN_HALF;
    return to == WARD_BREAKER_OPEN ? EDGE_HALF_OPEN : EDGE_HALF_CLOSED;
}

/* The open duration of the next trip: the timeout for the first since the breaker last
 * closed, then the previous one times backoff, up to max_open_ns. */
static int64_t next_open_ns(const struct ward_breaker *br)
{
    double grown;

    if (br->trips == 0)
        return br->cfg.timeout_ns;
    grown = (double)br->open_ns * br->cfg.backoff;
    if (!(grown < (double)br->cfg.max_open_ns))
        return br->cfg.max_open_ns;
    return (int64_t)grown;
}

/* Changes state at time at (under the lock): a new generation with cleared counts, the
 * new state's expiry, metrics, and the change queued for on_state_change. */
static void set_state(struct ward_breaker *br, enum ward_breaker_state to, int64_t at,
                      struct changes *ch)
{
    enum ward_breaker_state from = br->state;

    if (from == to)
        return;
    br->state = to;
    br->generation++;
    memset(&br->counts, 0, sizeof br->counts);
    switch (to) {
    case WARD_BREAKER_CLOSED:
        br->trips = 0;
        br->expiry = br->cfg.interval_ns > 0 ? add_sat(at, br->cfg.interval_ns) : NEVER;
        if (br->window != NULL)
            ward__bwin_clear(br->window);
        break;
    case WARD_BREAKER_OPEN:
        br->open_ns = next_open_ns(br);
        br->trips++;
        br->expiry = add_sat(at, br->open_ns);
        break;
    case WARD_BREAKER_HALF_OPEN:
        br->expiry = NEVER; /* until a probe is admitted */
        break;
    }
    br->transitions++;
    ward_gauge_set(br->m.state, (double)to);
    ward_counter_inc(br->m.edge[edge_of(from, to)]);
    if (br->cfg.on_state_change != NULL && ch->n < MAX_CHANGES) {
        struct change *c = &ch->item[ch->n++];

        c->next = NULL;
        c->from = from;
        c->to = to;
        *br->pending_tail = c;
        br->pending_tail = &c->next;
    }
}

/* While closed with an interval, starts a new generation. gobreaker keeps the interval's
 * grid (the next expiry is the old one plus the interval); after a long quiet spell the
 * grid is moved on past now in one step, so the counts are cleared once, not once per call
 * until the grid has caught up. */
static void roll_interval(struct ward_breaker *br, int64_t now)
{
    int64_t late;
    int64_t step;

    br->generation++;
    memset(&br->counts, 0, sizeof br->counts);
    if (__builtin_sub_overflow(now, br->expiry, &late) ||
        __builtin_mul_overflow(late / br->cfg.interval_ns + 1, br->cfg.interval_ns, &step))
        br->expiry = add_sat(now, br->cfg.interval_ns);
    else
        br->expiry = add_sat(br->expiry, step);
}

/* Applies the clock (under the lock; the caller has seen now >= br->expiry). Changes made
 * by the clock happen at the expiry instant, not at now, so a breaker nobody calls for a
 * while is where its schedule says when the next call comes. NEVER stays never, even for a
 * fake clock set to INT64_MAX. */
static void advance(struct ward_breaker *br, int64_t now, struct changes *ch)
{
    while (br->expiry != NEVER && now >= br->expiry) {
        switch (br->state) {
        case WARD_BREAKER_CLOSED:
            roll_interval(br, now);
            break;
        case WARD_BREAKER_OPEN:
            set_state(br, WARD_BREAKER_HALF_OPEN, br->expiry, ch);
            break;
        case WARD_BREAKER_HALF_OPEN: /* probes outstanding past the probe deadline */
            set_state(br, WARD_BREAKER_OPEN, br->expiry, ch);
            break;
        }
    }
}

/* Hands queued changes to on_state_change, oldest first, one at a time. Whoever holds
 * deliver_mu drains the whole list, so by the time this returns the caller's own changes
 * (on its stack) have been delivered, by it or by another thread. Recursive, so that a
 * callback may call into the breaker. */
static void deliver(struct ward_breaker *br)
{
    bool locked = pthread_mutex_lock(&br->deliver_mu) == 0;
    struct change c;
    bool got;

    for (;;) {
        ward__spin_lock(&br->lock);
        got = br->pending != NULL;
        if (got) {
            c = *br->pending;
            br->pending = c.next;
            if (br->pending == NULL)
                br->pending_tail = &br->pending;
        }
        ward__spin_unlock(&br->lock);
        if (!got)
            break;
        br->cfg.on_state_change(br->name, c.from, c.to, br->cfg.arg);
    }
    if (locked)
        pthread_mutex_unlock(&br->deliver_mu);
}

enum ward_err ward_breaker_allow(struct ward_breaker *br, struct ward_breaker_ticket *ticket)
{
    enum ward_err err = WARD_ERR_OK;
    struct ward_metric *rejected = NULL;
    struct changes ch;
    int64_t now;

    if (br == NULL || ticket == NULL)
        return WARD_ERR_INVAL;
    now = ward_clock_now(br->cfg.clock);
    ch.n = 0;
    ward__spin_lock(&br->lock);
    if (now >= br->expiry)
        advance(br, now, &ch);
    switch (br->state) {
    case WARD_BREAKER_CLOSED:
        break;
    case WARD_BREAKER_HALF_OPEN:
        if (br->counts.requests >= br->cfg.max_requests) {
            err = WARD_ERR_TOO_MANY_REQUESTS;
            br->rejected_too_many++;
            rejected = br->m.rejected_too_many;
        } else if (br->counts.requests == br->counts.total_successes) {
            /* the first probe outstanding: the probe deadline starts now */
            br->expiry = add_sat(now, br->cfg.probe_deadline_ns);
        }
        break;
    case WARD_BREAKER_OPEN:
        err = WARD_ERR_OPEN;
        br->rejected_open++;
        rejected = br->m.rejected_open;
        break;
    }
    if (err == WARD_ERR_OK) {
        br->counts.requests++;
        ticket->generation = br->generation;
        ticket->start_ns = now;
    }
    ward__spin_unlock(&br->lock);
    ward_counter_inc(rejected);
    if (ch.n > 0)
        deliver(br);
    return err;
}

/* Whether a failure while closed trips the breaker (under the lock). */
static bool should_trip(struct ward_breaker *br, int64_t now, int64_t start)
{
    if (br->window != NULL)
        return ward__bwin_record(br->window, now, true, now - start);
    if (br->cfg.ready_to_trip != NULL)
        return br->cfg.ready_to_trip(&br->counts, br->cfg.arg);
    return br->counts.consecutive_failures > 5;
}

/* Counts an outcome of the current generation (under the lock). */
static void record(struct ward_breaker *br, int64_t now, int64_t start,
                   enum ward_breaker_outcome outcome, struct changes *ch)
{
    struct ward_breaker_counts *c = &br->counts;
    bool half = br->state == WARD_BREAKER_HALF_OPEN;

    if (br->state == WARD_BREAKER_OPEN) /* admitted in an open generation: impossible */
        return;
    switch (outcome) {
    case WARD_BREAKER_EXCLUDED:
        if (c->requests > c->total_successes + c->total_failures)
            c->requests--;
        if (half && c->requests == c->total_successes)
            br->expiry = NEVER; /* no probe outstanding any more */
        break;
    case WARD_BREAKER_SUCCESS:
        c->total_successes++;
        c->consecutive_successes++;
        c->consecutive_failures = 0;
        if (half) {
            if (c->consecutive_successes >= br->cfg.max_requests)
                set_state(br, WARD_BREAKER_CLOSED, now, ch);
            else if (c->requests == c->total_successes)
                br->expiry = NEVER;
        } else if (br->window != NULL && ward__bwin_record(br->window, now, false, now - start)) {
            set_state(br, WARD_BREAKER_OPEN, now, ch);
        }
        break;
    case WARD_BREAKER_FAILURE:
    default:
        c->total_failures++;
        c->consecutive_failures++;
        c->consecutive_successes = 0;
        if (half || should_trip(br, now, start))
            set_state(br, WARD_BREAKER_OPEN, now, ch);
        break;
    }
}

void ward_breaker_done(struct ward_breaker *br, struct ward_breaker_ticket ticket,
                       enum ward_breaker_outcome outcome)
{
    struct changes ch;
    int64_t now;

    if (br == NULL)
        return;
    now = ward_clock_now(br->cfg.clock);
    ch.n = 0;
    ward__spin_lock(&br->lock);
    if (now >= br->expiry)
        advance(br, now, &ch);
    if (ticket.generation == br->generation)
        record(br, now, ticket.start_ns, outcome, &ch);
    ward__spin_unlock(&br->lock);
    if (ch.n > 0)
        deliver(br);
}

void ward_breaker_done_code(struct ward_breaker *br, struct ward_breaker_ticket ticket, int code)
{
    enum ward_breaker_outcome outcome = code == 0 ? WARD_BREAKER_SUCCESS : WARD_BREAKER_FAILURE;

    if (br == NULL)
        return;
    if (br->cfg.is_successful != NULL)
        outcome = br->cfg.is_successful(code, br->cfg.arg);
    ward_breaker_done(br, ticket, outcome);
}

enum ward_err ward_breaker_execute(struct ward_breaker *br, ward_breaker_fn fn, void *arg)
{
    struct ward_breaker_ticket ticket;
    enum ward_err err;

    if (fn == NULL)
        return WARD_ERR_INVAL;
    err = ward_breaker_allow(br, &ticket);
    if (err == WARD_ERR_OK)
        ward_breaker_done(br, ticket, fn(arg));
    return err;
}

void ward_breaker_stats(struct ward_breaker *br, struct ward_breaker_stats *out)
{
    struct ward__bwin_totals tot = {0, 0, 0};
    struct changes ch;
    int64_t now = ward_clock_now(br->cfg.clock);

    ch.n = 0;
    ward__spin_lock(&br->lock);
    if (now >= br->expiry)
        advance(br, now, &ch);
    if (br->window != NULL)
        ward__bwin_totals(br->window, now, &tot);
    out->state = br->state;
    out->generation = br->generation;
    out->counts = br->counts;
    out->transitions = br->transitions;
    out->rejected_open = br->rejected_open;
    out->rejected_too_many = br->rejected_too_many;
    out->trips = br->trips;
    out->open_ns = br->open_ns;
    ward__spin_unlock(&br->lock);
    out->window_calls = tot.calls;
    out->window_failures = tot.failures;
    out->window_slow = tot.slow;
    if (ch.n > 0)
        deliver(br);
}

enum ward_breaker_state ward_breaker_state(struct ward_breaker *br)
{
    struct ward_breaker_stats st;

    ward_breaker_stats(br, &st);
    return st.state;
}

enum ward_err ward_breaker_export(struct ward_breaker *br, struct ward_metrics *reg)
{
    static const char *const labels[] = {"name", "from", "to"};
    static const char *const reject_labels[] = {"name", "reason"};
    static const enum ward_breaker_state edges[EDGE_COUNT][2] = {
        [EDGE_CLOSED_OPEN] = {WARD_BREAKER_CLOSED, WARD_BREAKER_OPEN},
        [EDGE_OPEN_HALF] = {WARD_BREAKER_OPEN, WARD_BREAKER_HALF_OPEN},
        [EDGE_HALF_OPEN] = {WARD_BREAKER_HALF_OPEN, WARD_BREAKER_OPEN},
        [EDGE_HALF_CLOSED] = {WARD_BREAKER_HALF_OPEN, WARD_BREAKER_CLOSED},
    };
    struct ward_metric_family *f_state, *f_edge, *f_reject;
    struct exported e;
    bool missing;

    if (br == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    f_state = ward_metrics_gauge(reg, "ward_breaker_state",
                                 "Circuit breaker state: 0 closed, 1 half-open, 2 open.", 1, labels);
    f_edge = ward_metrics_counter(reg, "ward_breaker_transitions_total",
                                  "Circuit breaker state changes.", 3, labels);
    f_reject = ward_metrics_counter(reg, "ward_breaker_rejections_total",
                                    "Calls a circuit breaker refused, by reason.", 2, reject_labels);
    e.state = ward_metric_get(f_state, (const char *const[]){br->name});
    e.rejected_open = ward_metric_get(f_reject, (const char *const[]){br->name, "open"});
    e.rejected_too_many =
        ward_metric_get(f_reject, (const char *const[]){br->name, "too_many_requests"});
    missing = e.state == NULL || e.rejected_open == NULL || e.rejected_too_many == NULL;
    for (int i = 0; i < EDGE_COUNT; i++) {
        e.edge[i] = ward_metric_get(f_edge, (const char *const[]){
            br->name, ward_breaker_state_name(edges[i][0]), ward_breaker_state_name(edges[i][1])});
        missing = missing || e.edge[i] == NULL;
    }
    if (missing) /* ward_metric_get(NULL, ...) is NULL too: covers the families */
        return WARD_ERR_NOMEM;
    ward__spin_lock(&br->lock);
    br->m = e;
    ward_gauge_set(e.state, (double)br->state);
    ward__spin_unlock(&br->lock);
    return WARD_ERR_OK;
}
