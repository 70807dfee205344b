/* state.c — ward-registry's model: services and checks of the one node, one global index
 * stamped on every change, TTL expiry driven from the clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

const char *reg_status_name(enum reg_status s)
{
    return s == REG_PASSING ? "passing" : s == REG_WARNING ? "warning" : "critical";
}

bool reg_status_parse(const char *text, enum reg_status *out)
{
    static const enum reg_status all[] = {REG_PASSING, REG_WARNING, REG_CRITICAL};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(text, reg_status_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

void reg_service_free(struct reg_service *svc)
{
    if (svc == NULL)
        return;
    free(svc->id);
    free(svc->name);
    free(svc->address);
    json_decref(svc->tags);
    json_decref(svc->meta);
    json_decref(svc->tagged);
    free(svc);
}

void reg_check_free(struct reg_check *c)
{
    if (c == NULL)
        return;
    free(c->id);
    free(c->name);
    free(c->notes);
    free(c->output);
    free(c->service_id);
    free(c->http);
    free(c->method);
    free(c->body);
    free(c->tcp);
    free(c->tls_server_name);
    json_decref(c->header);
    free(c);
}

/* A node ID in UUID form, random per process like a fresh Consul data dir. */
static void make_node_id(char out[37])
{
    unsigned char b[16] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (f != NULL) {
        if (fread(b, 1, sizeof b, f) != sizeof b)
            memset(b, 0x5a, sizeof b);
        fclose(f);
    }
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static struct reg_check *node_check(void)
{
    struct reg_check *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->id = strdup(REG_SERF_CHECK);
    c->name = strdup("Serf Health Status");
    c->notes = strdup("");
    c->output = strdup("Agent alive and reachable");
    c->service_id = strdup("");
    c->kind = REG_CHECK_NODE;
    c->status = REG_PASSING;
    c->create_index = c->modify_index = 1;
    if (c->id == NULL || c->name == NULL || c->notes == NULL || c->output == NULL ||
        c->service_id == NULL) {
        reg_check_free(c);
        return NULL;
    }
    return c;
}

enum ward_err reg_state_new(const struct ward_clock *clock, struct reg_state **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct reg_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        goto fail;
    st->clock = clock;
    st->index = 1; /* the node's registration */
    make_node_id(st->node_id);
    st->checks = calloc(8, sizeof *st->checks);
    if (st->checks == NULL)
        goto fail;
    st->capchecks = 8;
    st->checks[0] = node_check();
    if (st->checks[0] == NULL)
        goto fail;
    st->nchecks = 1;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        err = WARD_ERR_SYSTEM;
        goto fail;
    }
    *out = st;
    return WARD_ERR_OK;
fail:
    if (st != NULL) {
        if (st->nchecks > 0)
            reg_check_free(st->checks[0]);
        free(st->checks);
        free(st);
    }
    return err;
}

void reg_state_free(struct reg_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nsvcs; i++)
        reg_service_free(st->svcs[i]);
    for (size_t i = 0; i < st->nchecks; i++)
        reg_check_free(st->checks[i]);
    for (size_t i = 0; i < st->nnames; i++)
        free(st->names[i].name);
    free(st->svcs);
    free(st->checks);
    free(st->names);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

void reg_state_lock(struct reg_state *st) { pthread_mutex_lock(&st->lock); }
void reg_state_unlock(struct reg_state *st) { pthread_mutex_unlock(&st->lock); }

/* Grows an array of n used of *cap elements of size so that one more fits. */
static bool grow(void **arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *g = realloc(*arr, ncap * size);
    if (g == NULL)
        return false;
    *arr = g;
    *cap = ncap;
    return true;
}

/* Records that name changed at index; false on NOMEM (the caller has reserved room). */
static bool touch_name(struct reg_state *st, const char *name, uint64_t index)
{
    for (size_t i = 0; i < st->nnames; i++) {
        if (strcmp(st->names[i].name, name) == 0) {
            st->names[i].index = index;
            return true;
        }
    }
    char *copy = strdup(name);
    if (copy == NULL || !grow((void **)&st->names, st->nnames, &st->capnames, sizeof *st->names)) {
        free(copy);
        return false;
    }
    st->names[st->nnames++] = (struct reg_name_index){.name = copy, .index = index};
    return true;
}

uint64_t reg_state_name_index(const struct reg_state *st, const char *name)
{
    for (size_t i = 0; i < st->nnames; i++)
        if (strcmp(st->names[i].name, name) == 0)
            return st->names[i].index;
    return 0;
}

/* A change to check c at index: its service's name, or every name for a node check
 * (node checks are part of every service's health). The names are known: no allocation. */
static void touch_check(struct reg_state *st, const struct reg_check *c, uint64_t index)
{
    if (c->service_id[0] == '\0') {
        for (size_t i = 0; i < st->nnames; i++)
            st->names[i].index = index;
        return;
    }
    struct reg_service *svc = reg_state_service(st, c->service_id);
    if (svc != NULL)
        touch_name(st, svc->name, index);
}

static void changed(struct reg_state *st)
{
    if (st->on_change != NULL)
        st->on_change(st->on_change_arg);
    for (size_t i = 0; i < st->nhooks; i++)
        st->hooks[i](st->hook_args[i]);
}

bool reg_state_hook_add(struct reg_state *st, reg_change_fn fn, void *arg)
{
    if (st->nhooks >= sizeof st->hooks / sizeof st->hooks[0])
        return false;
    st->hooks[st->nhooks] = fn;
    st->hook_args[st->nhooks] = arg;
    st->nhooks++;
    return true;
}

void reg_state_hook_remove(struct reg_state *st, reg_change_fn fn, void *arg)
{
    for (size_t i = 0; i < st->nhooks; i++) {
        if (st->hooks[i] == fn && st->hook_args[i] == arg) {
            st->nhooks--;
            st->hooks[i] = st->hooks[st->nhooks];
            st->hook_args[i] = st->hook_args[st->nhooks];
            return;
        }
    }
}

/* The runner's threshold counters start at their thresholds, so that the first result
 * applies at once (Consul's StatusHandler). */
static void arm_counters(struct reg_check *c)
{
    c->successes = c->success_before_passing;
    c->failures = c->failures_before_critical;
}

struct reg_service *reg_state_service(const struct reg_state *st, const char *id)
{
    for (size_t i = 0; i < st->nsvcs; i++)
        if (strcmp(st->svcs[i]->id, id) == 0)
            return st->svcs[i];
    return NULL;
}

struct reg_check *reg_state_check(const struct reg_state *st, const char *id)
{
    for (size_t i = 0; i < st->nchecks; i++)
        if (strcmp(st->checks[i]->id, id) == 0)
            return st->checks[i];
    return NULL;
}

static void remove_check_at(struct reg_state *st, size_t i)
{
    reg_check_free(st->checks[i]);
    memmove(&st->checks[i], &st->checks[i + 1], (st->nchecks - i - 1) * sizeof *st->checks);
    st->nchecks--;
}

enum reg_status reg_state_service_status(const struct reg_state *st, const char *service_id)
{
    enum reg_status worst = REG_PASSING;
    for (size_t i = 0; i < st->nchecks; i++)
        if (strcmp(st->checks[i]->service_id, service_id) == 0 && st->checks[i]->status > worst)
            worst = st->checks[i]->status;
    return worst;
}

enum ward_err reg_state_register(struct reg_state *st, struct reg_service *svc,
                                 struct reg_check **checks, size_t n, bool replace)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct reg_service *old = reg_state_service(st, svc->id);
    /* reserve every slot first, so that nothing below can fail half way */
    if (!grow((void **)&st->svcs, st->nsvcs, &st->capsvcs, sizeof *st->svcs) ||
        !touch_name(st, svc->name, st->index) ||
        (old != NULL && !touch_name(st, old->name, st->index)))
        goto fail;
    while (st->capchecks < st->nchecks + n) {
        if (!grow((void **)&st->checks, st->capchecks, &st->capchecks, sizeof *st->checks))
            goto fail;
    }
    uint64_t index = ++st->index;
    int64_t now = ward_clock_now(st->clock);
    svc->create_index = old != NULL ? old->create_index : index;
    svc->modify_index = index;
    if (old != NULL) {
        touch_name(st, old->name, index);
        for (size_t i = 0; i < st->nsvcs; i++)
            if (st->svcs[i] == old)
                st->svcs[i] = svc;
        reg_service_free(old);
    } else {
        st->svcs[st->nsvcs++] = svc;
    }
    touch_name(st, svc->name, index);
    for (size_t k = 0; k < n; k++) {
        struct reg_check *c = checks[k];
        struct reg_check *prev = reg_state_check(st, c->id);
        c->modify_index = index;
        c->create_index = index;
        if (prev != NULL) {
            /* an existing check keeps its state across re-registration */
            c->status = prev->status;
            char *tmp = c->output;
            c->output = prev->output;
            prev->output = tmp;
            c->create_index = prev->create_index;
            c->critical_since = prev->critical_since;
            for (size_t i = 0; i < st->nchecks; i++) {
                if (st->checks[i] == prev) {
                    st->checks[i] = c;
                    reg_check_free(prev);
                    break;
                }
            }
        } else {
            c->critical_since = c->status == REG_CRITICAL ? now : 0;
            st->checks[st->nchecks++] = c;
        }
        if (c->kind == REG_CHECK_TTL)
            c->ttl_deadline = now + c->ttl;
        arm_counters(c);
    }
    if (replace) {
        for (size_t i = st->nchecks; i-- > 1;) {
            struct reg_check *c = st->checks[i];
            bool kept = false;
            for (size_t k = 0; k < n && !kept; k++)
                kept = checks[k] == c;
            if (!kept && strcmp(c->service_id, svc->id) == 0)
                remove_check_at(st, i);
        }
    }
    changed(st);
    return WARD_ERR_OK;
fail:
    reg_service_free(svc);
    for (size_t k = 0; k < n; k++)
        reg_check_free(checks[k]);
    return err;
}

bool reg_state_deregister(struct reg_state *st, const char *id)
{
    for (size_t i = 0; i < st->nsvcs; i++) {
        struct reg_service *svc = st->svcs[i];
        if (strcmp(svc->id, id) != 0)
            continue;
        uint64_t index = ++st->index;
        touch_name(st, svc->name, index); /* the name is known: this cannot allocate */
        for (size_t k = st->nchecks; k-- > 1;)
            if (strcmp(st->checks[k]->service_id, id) == 0)
                remove_check_at(st, k);
        reg_service_free(svc);
        memmove(&st->svcs[i], &st->svcs[i + 1], (st->nsvcs - i - 1) * sizeof *st->svcs);
        st->nsvcs--;
        changed(st);
        return true;
    }
    return false;
}

enum ward_err reg_state_add_check(struct reg_state *st, struct reg_check *c)
{
    struct reg_check *prev = reg_state_check(st, c->id);
    if (prev == NULL && !grow((void **)&st->checks, st->nchecks, &st->capchecks, sizeof *st->checks)) {
        reg_check_free(c);
        return WARD_ERR_NOMEM;
    }
    int64_t now = ward_clock_now(st->clock);
    uint64_t index = ++st->index;
    c->create_index = c->modify_index = index;
    c->critical_since = c->status == REG_CRITICAL ? now : 0;
    if (prev != NULL) {
        c->status = prev->status;
        char *tmp = c->output;
        c->output = prev->output;
        prev->output = tmp;
        c->create_index = prev->create_index;
        c->critical_since = prev->critical_since;
        touch_check(st, prev, index);
        for (size_t i = 0; i < st->nchecks; i++)
            if (st->checks[i] == prev)
                st->checks[i] = c;
        reg_check_free(prev);
    } else {
        st->checks[st->nchecks++] = c;
    }
    if (c->kind == REG_CHECK_TTL)
        c->ttl_deadline = now + c->ttl;
    arm_counters(c);
    touch_check(st, c, index);
    changed(st);
    return WARD_ERR_OK;
}

bool reg_state_remove_check(struct reg_state *st, const char *id)
{
    for (size_t i = 1; i < st->nchecks; i++) {
        if (strcmp(st->checks[i]->id, id) != 0)
            continue;
        touch_check(st, st->checks[i], ++st->index);
        remove_check_at(st, i);
        changed(st);
        return true;
    }
    return false;
}

/* Output capped as Consul's agent does: the head, then how much there was. */
static char *capped(const char *output, int64_t max)
{
    size_t len = strlen(output);
    size_t cap = max > 0 ? (size_t)max : REG_OUTPUT_MAX;
    if (len <= cap)
        return strdup(output);
    char *out = malloc(cap + 80);
    if (out == NULL)
        return NULL;
    memcpy(out, output, cap);
    snprintf(out + cap, 80, " ... (captured %zu of %zu bytes)", cap, len);
    return out;
}

/* Sets status and takes output; bumps the index when the status moved. Lock held. */
static void apply(struct reg_state *st, struct reg_check *c, enum reg_status status, char *output,
                  int64_t now)
{
    free(c->output);
    c->output = output;
    if (c->status == status)
        return;
    c->status = status;
    c->critical_since = status == REG_CRITICAL ? now : 0;
    c->modify_index = ++st->index;
    touch_check(st, c, c->modify_index);
    changed(st);
}

enum ward_err reg_state_update_check(struct reg_state *st, struct reg_check *c,
                                     enum reg_status status, const char *output)
{
    char *copy = capped(output != NULL ? output : "", c->output_max_size);
    if (copy == NULL)
        return WARD_ERR_NOMEM;
    int64_t now = ward_clock_now(st->clock);
    if (c->kind == REG_CHECK_TTL)
        c->ttl_deadline = now + c->ttl;
    apply(st, c, status, copy, now);
    return WARD_ERR_OK;
}

int64_t reg_state_tick(struct reg_state *st)
{
    int64_t now = ward_clock_now(st->clock);
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < st->nchecks; i++) {
        struct reg_check *c = st->checks[i];
        if (c->kind != REG_CHECK_TTL)
            continue;
        if (c->ttl_deadline > now) {
            if (c->ttl_deadline < next)
                next = c->ttl_deadline;
            continue;
        }
        /* expired: critical once, then no deadline until the next update */
        const char *last = c->output != NULL ? c->output : "";
        size_t len = strlen(last) + 64;
        char *text = malloc(len);
        if (text == NULL)
            continue; /* retried at the next tick */
        c->ttl_deadline = INT64_MAX;
        if (last[0] == '\0')
            snprintf(text, len, "TTL expired");
        else
            snprintf(text, len, "TTL expired (last output before timeout follows): %s", last);
        apply(st, c, REG_CRITICAL, text, now);
    }
    return next;
}
