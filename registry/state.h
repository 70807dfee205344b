/* state.h — ward-registry's model: the one node, its services and checks, the index that
 * stamps every change, TTL expiry, and the lock that guards them all. */
#ifndef REG_STATE_H
#define REG_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/clock.h>
#include <ward/err.h>

#define REG_NODE "node1"
#define REG_DC "dc1"
#define REG_NODE_ADDRESS "127.0.0.1"
#define REG_OUTPUT_MAX 4096
#define REG_SERF_CHECK "serfHealth"

enum reg_status { REG_PASSING, REG_WARNING, REG_CRITICAL };

/* How a check learns its status: TTL checks from clients, HTTP and TCP checks from the
 * check runner (checks.c), node-level checks from their own updates. */
enum reg_check_kind { REG_CHECK_TTL, REG_CHECK_HTTP, REG_CHECK_TCP, REG_CHECK_NODE };

struct reg_check {
    char *id, *name, *notes, *output;
    char *service_id; /* "" for the node check */
    enum reg_check_kind kind;
    enum reg_status status;
    /* the definition, as registered */
    char *http, *method, *body, *tcp, *tls_server_name;
    json_t *header; /* object: name -> [values], or NULL */
    bool tls_skip_verify, disable_redirects, tcp_use_tls;
    int64_t interval, timeout, ttl, deregister_after; /* ns */
    int64_t success_before_passing, failures_before_warning, failures_before_critical;
    int64_t output_max_size;
    /* run time */
    int64_t ttl_deadline;   /* monotonic ns when a TTL check expires */
    int64_t critical_since; /* monotonic ns it turned critical; 0 when not critical (reaper) */
    int64_t successes, failures; /* threshold counters of the check runner */
    int64_t next_run;            /* monotonic ns of the next HTTP/TCP probe; 0 = at once */
    bool probing;                /* a check runner worker holds a probe of it */
    uint64_t create_index, modify_index;
};

struct reg_service {
    char *id, *name, *address;
    json_t *tags;   /* array of strings, never NULL */
    json_t *meta;   /* object of strings, never NULL */
    json_t *tagged; /* object: name -> {Address, Port}, never NULL */
    int64_t port;
    bool enable_tag_override;
    int64_t weight_passing, weight_warning;
    uint64_t create_index, modify_index;
};

/* Last index of a change that touched a service name (kept after deregistration, so a
 * watcher of a removed service still sees its index grow). */
struct reg_name_index {
    char *name;
    uint64_t index;
};

/* Called with the lock held after every change, so that watchers can be answered. */
typedef void (*reg_change_fn)(void *arg);

struct reg_state {
    pthread_mutex_t lock;
    const struct ward_clock *clock;
    char node_id[37];
    uint64_t index; /* the last index handed out; >= 1 */
    struct reg_service **svcs;
    size_t nsvcs, capsvcs;
    struct reg_check **checks; /* checks[0] is the node's serfHealth */
    size_t nchecks, capchecks;
    struct reg_name_index *names;
    size_t nnames, capnames;
    reg_change_fn on_change;
    void *on_change_arg;
    /* further listeners (check runner, persistence), called after on_change */
    reg_change_fn hooks[4];
    void *hook_args[4];
    size_t nhooks;
};

/* A state with the node and its serfHealth check, timed on clock (borrowed; NULL is the
 * real clock). NOMEM or SYSTEM (lock). The caller frees it with reg_state_free. */
WARD_MUST_CHECK enum ward_err reg_state_new(const struct ward_clock *clock, struct reg_state **out);
void reg_state_free(struct reg_state *st);

void reg_state_lock(struct reg_state *st);
/* Adds fn(arg) to the listeners called (lock held) after every change; false when the
 * four slots are taken. Lock held. reg_state_hook_remove takes it out again. */
bool reg_state_hook_add(struct reg_state *st, reg_change_fn fn, void *arg);
void reg_state_hook_remove(struct reg_state *st, reg_change_fn fn, void *arg);

void reg_state_unlock(struct reg_state *st);

/* Everything below expects the lock held. */

/* Expires the TTL checks whose deadline passed (critical, "TTL expired"). Returns the
 * next TTL deadline, INT64_MAX when none. */
int64_t reg_state_tick(struct reg_state *st);

/* Registers svc (taken over) with its checks (the array's pointers taken over; the array
 * stays the caller's). An existing service of that ID is replaced; an existing check ID
 * keeps its status and output; with replace, the service's other checks go. On NOMEM
 * nothing changed and everything given was freed. */
WARD_MUST_CHECK enum ward_err reg_state_register(struct reg_state *st, struct reg_service *svc,
                                                 struct reg_check **checks, size_t n, bool replace);

/* Removes the service id and its checks; false when there is no such service. */
bool reg_state_deregister(struct reg_state *st, const char *id);

/* Adds a check of its own (PUT /agent/check/register; c taken over, c->service_id ""
 * for a node-level check, else an existing service). An existing ID is replaced and
 * keeps its status and output. On NOMEM nothing changed and c was freed. */
WARD_MUST_CHECK enum ward_err reg_state_add_check(struct reg_state *st, struct reg_check *c);

/* Removes one check; false when there is none of that ID (serfHealth cannot go). */
bool reg_state_remove_check(struct reg_state *st, const char *id);

struct reg_service *reg_state_service(const struct reg_state *st, const char *id);
struct reg_check *reg_state_check(const struct reg_state *st, const char *id);

/* Sets a check's status and output (copied, capped at its output size); resets a TTL
 * check's timer. A status change takes a new index and wakes watchers; an output-only
 * change does not (as Consul's agent syncs output lazily). NOMEM leaves it unchanged. */
WARD_MUST_CHECK enum ward_err reg_state_update_check(struct reg_state *st, struct reg_check *c,
                                                     enum reg_status status, const char *output);

/* The index of the last change to services named name (0 when none). */
uint64_t reg_state_name_index(const struct reg_state *st, const char *name);

/* The status of the service's checks, worst first (passing when it has none). */
enum reg_status reg_state_service_status(const struct reg_state *st, const char *service_id);

/* Frees a service or a check that is not in a state. NULL is a no-op. */
void reg_service_free(struct reg_service *svc);
void reg_check_free(struct reg_check *c);

const char *reg_status_name(enum reg_status s);
/* "passing", "warning" or "critical" into *out; false otherwise. */
bool reg_status_parse(const char *text, enum reg_status *out);

#endif
