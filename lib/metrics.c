/* metrics.c — a Prometheus registry: families of labelled counters, gauges and
 * histograms, and their lock-free updates (metrics_render.c writes the text format). */
#include <ward/metrics.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

/* Latency buckets in seconds, as the Prometheus clients' defaults. */
static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

#define INITIAL_SLOTS 16

/* Adds delta to a double kept as bits; retries when another thread got there first. */
static void add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    uint64_t new;

    do {
        new = ward__to_bits(ward__from_bits(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(bits, &old, new, memory_order_relaxed,
                                                    memory_order_relaxed));
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; without ':' for label names. */
static bool valid_name(const char *s, bool colon)
{
    if (s == NULL || !(is_name_start(*s) || (colon && *s == ':')))
        return false;
    for (s++; *s != '\0'; s++) {
        if (!(is_name_start(*s) || is_digit(*s) || (colon && *s == ':')))
            return false;
    }
    return true;
}

/* Label names are valid, unique, not reserved ("__" prefix) and, on a histogram, not "le". */
static bool valid_labels(enum ward__metric_kind kind, size_t n, const char *const *labels)
{
    if (n > 0 && labels == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
            return false;
        if (kind == WARD__HISTOGRAM && strcmp(labels[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[i], labels[j]) == 0)
                return false;
        }
    }
    return true;
}

static bool valid_bounds(const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
            return false;
    }
    return true;
}

/* True when sample is base followed by one of a histogram's suffixes. */
static bool is_histogram_sample(const char *sample, const char *base)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t len = strlen(base);

    if (strncmp(sample, base, len) != 0)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(sample + len, suffixes[i]) == 0)
            return true;
    }
    return false;
}

/* A family called name would write a sample name that e already writes. */
static bool clashes(const struct ward_metric_family *e, const char *name,
                    enum ward__metric_kind kind)
{
    return (e->kind == WARD__HISTOGRAM && is_histogram_sample(name, e->name)) ||
           (kind == WARD__HISTOGRAM && is_histogram_sample(e->name, name));
}

/* Registered again with the same type, label names and buckets. */
static bool same_shape(const struct ward_metric_family *e, enum ward__metric_kind kind,
                       size_t nlabels, const char *const *labels, const double *bounds,
                       size_t nbounds)
{
    if (e->kind != kind || e->nlabels != nlabels || e->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nlabels; i++) {
        if (strcmp(e->labels[i], labels[i]) != 0)
            return false;
    }
    return nbounds == 0 || memcmp(e->bounds, bounds, nbounds * sizeof *bounds) == 0;
}

/* FNV-1a over the values, each with its terminating NUL so that ("ab","c") != ("a","bc"). */
static uint64_t hash_values(size_t n, const char *const *values)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < n; i++) {
        const char *s = values[i];
        do {
            h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        } while (*s++ != '\0');
    }
    return h;
}

/* Copies n strings into one allocation: n pointers followed by the text. */
static char **copy_strings(size_t n, const char *const *src)
{
    size_t total = n * sizeof(char *);
    char **dst;
    char *p;

    for (size_t i = 0; i < n; i++)
        total += strlen(src[i]) + 1;
    dst = malloc(total > 0 ? total : 1);
    if (dst == NULL)
        return NULL;
    p = (char *)(dst + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(src[i]) + 1;
        memcpy(p, src[i], len);
        dst[i] = p;
        p += len;
    }
    return dst;
}

static struct ward_metric *child_new(const struct ward_metric_family *fam,
                                     const char *const *values, uint64_t hash)
{
    size_t nb = fam->kind == WARD__HISTOGRAM ? fam->nbounds + 1 : 0;
    struct ward_metric *m = calloc(1, sizeof *m + nb * sizeof m->buckets[0]);

    if (m == NULL)
        goto fail;
    m->values = copy_strings(fam->nlabels, values);
    if (m->values == NULL)
        goto fail;
    m->kind = fam->kind;
    m->hash = hash;
    m->bounds = fam->bounds;
    m->nbounds = fam->nbounds;
    atomic_init(&m->value, 0);
    for (size_t i = 0; i < nb; i++)
        atomic_init(&m->buckets[i], 0);
    return m;
fail:
    free(m);
    return NULL;
}

static void family_free(struct ward_metric_family *fam)
{
    struct ward_metric *m;
    struct ward_metric *next;

    if (fam == NULL)
        return;
    for (m = fam->first; m != NULL; m = next) {
        next = m->next;
        free(m->values);
        free(m);
    }
    pthread_mutex_destroy(&fam->lock);
    free(fam->slots);
    free(fam->bounds);
    free(fam->labels);
    free(fam->help);
    free(fam->name);
    free(fam);
}

static struct ward_metric_family *family_new(const char *name, const char *help,
                                             enum ward__metric_kind kind, size_t nlabels,
                                             const char *const *labels, const double *bounds,
                                             size_t nbounds)
{
    struct ward_metric_family *fam = calloc(1, sizeof *fam);

    if (fam == NULL)
        return NULL;
    if (pthread_mutex_init(&fam->lock, NULL) != 0) {
        free(fam);
        return NULL;
    }
    fam->kind = kind;
    fam->nlabels = nlabels;
    fam->nbounds = nbounds;
    fam->name = strdup(name);
    fam->help = strdup(help != NULL ? help : "");
    fam->labels = copy_strings(nlabels, labels);
    fam->bounds = malloc(nbounds > 0 ? nbounds * sizeof *bounds : 1);
    if (fam->name == NULL || fam->help == NULL || fam->labels == NULL || fam->bounds == NULL)
        goto fail;
    if (nbounds > 0)
        memcpy(fam->bounds, bounds, nbounds * sizeof *bounds);
    if (nlabels == 0) {
        fam->only = child_new(fam, NULL, 0);
        if (fam->only == NULL)
            goto fail;
        fam->first = fam->last = fam->only;
        fam->count = 1;
    } else {
        fam->nslots = INITIAL_SLOTS;
        fam->slots = calloc(fam->nslots, sizeof *fam->slots);
        if (fam->slots == NULL)
            goto fail;
    }
    return fam;
fail:
    family_free(fam);
    return NULL;
}

/* Validates, then returns the family of that name (same shape) or a new one. */
static struct ward_metric_family *family_register(struct ward_metrics *reg, const char *name,
                                                  const char *help, enum ward__metric_kind kind,
                                                  size_t nlabels, const char *const *labels,
                                                  const double *bounds, size_t nbounds)
{
    struct ward_metric_family *found = NULL;
    struct ward_metric_family *fam = NULL;

    if (reg == NULL || !valid_name(name, true) || !valid_labels(kind, nlabels, labels) ||
        !valid_bounds(bounds, nbounds))
        return NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nfamilies; i++) {
        struct ward_metric_family *e = reg->families[i];
        if (strcmp(e->name, name) == 0) {
            if (same_shape(e, kind, nlabels, labels, bounds, nbounds))
                found = e;
            goto out;
        }
        if (clashes(e, name, kind))
            goto out;
    }
    if (reg->nfamilies == reg->families_cap) {
        size_t cap = reg->families_cap > 0 ? 2 * reg->families_cap : 16;
        struct ward_metric_family **grown = realloc(reg->families, cap * sizeof *grown);
        if (grown == NULL)
            goto out;
        reg->families = grown;
        reg->families_cap = cap;
    }
    fam = family_new(name, help, kind, nlabels, labels, bounds, nbounds);
    if (fam == NULL)
        goto out;
    reg->families[reg->nfamilies++] = fam;
    found = fam;
out:
    pthread_mutex_unlock(&reg->lock);
    return found;
}

struct ward_metrics *ward_metrics_new(void)
{
    struct ward_metrics *reg = calloc(1, sizeof *reg);

    if (reg == NULL)
        return NULL;
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg);
        return NULL;
    }
    if (pthread_mutex_init(&reg->collect_lock, NULL) != 0) {
        pthread_mutex_destroy(&reg->lock);
        free(reg);
        return NULL;
    }
    return reg;
}

void ward_metrics_free(struct ward_metrics *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->nfamilies; i++)
        family_free(reg->families[i]);
    pthread_mutex_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->collect_lock);
    free(reg->families);
    free(reg->collectors);
    free(reg);
}

struct ward_metric_family *ward_metrics_counter(struct ward_metrics *reg, const char *name,
                                                const char *help, size_t nlabels,
                                                const char *const *labels)
{
    return family_register(reg, name, help, WARD__COUNTER, nlabels, labels, NULL, 0);
}

struct ward_metric_family *ward_metrics_gauge(struct ward_metrics *reg, const char *name,
                                              const char *help, size_t nlabels,
                                              const char *const *labels)
{
    return family_register(reg, name, help, WARD__GAUGE, nlabels, labels, NULL, 0);
}

struct ward_metric_family *ward_metrics_histogram(struct ward_metrics *reg, const char *name,
                                                  const char *help, size_t nlabels,
                                                  const char *const *labels, const double *buckets,
                                                  size_t nbuckets)
{
    if (buckets == NULL) {
        buckets = default_bounds;
        nbuckets = sizeof default_bounds / sizeof default_bounds[0];
    }
    return family_register(reg, name, help, WARD__HISTOGRAM, nlabels, labels, buckets, nbuckets);
}

/* Doubles the hash table; on no memory the old one stays (chains just grow longer). */
static void rehash_locked(struct ward_metric_family *fam)
{
    size_t n = fam->nslots * 2;
    struct ward_metric **slots = calloc(n, sizeof *slots);

    if (slots == NULL)
        return;
    for (struct ward_metric *m = fam->first; m != NULL; m = m->next) {
        m->chain = slots[m->hash & (n - 1)];
        slots[m->hash & (n - 1)] = m;
    }
    free(fam->slots);
    fam->slots = slots;
    fam->nslots = n;
}

struct ward_metric *ward_metric_get(struct ward_metric_family *family, const char *const *values)
{
    struct ward_metric *m = NULL;
    uint64_t hash;

    if (family == NULL)
        return NULL;
    if (family->nlabels == 0)
        return family->only;
    if (values == NULL)
        return NULL;
    for (size_t i = 0; i < family->nlabels; i++) {
        if (values[i] == NULL)
            return NULL;
    }
    hash = hash_values(family->nlabels, values);
    pthread_mutex_lock(&family->lock);
    for (m = family->slots[hash & (family->nslots - 1)]; m != NULL; m = m->chain) {
        size_t i = 0;
        while (m->hash == hash && i < family->nlabels && strcmp(m->values[i], values[i]) == 0)
            i++;
        if (i == family->nlabels)
            goto out;
    }
    if (family->count >= family->nslots - family->nslots / 4)
        rehash_locked(family);
    m = child_new(family, values, hash);
    if (m == NULL)
        goto out;
    m->chain = family->slots[hash & (family->nslots - 1)];
    family->slots[hash & (family->nslots - 1)] = m;
    if (family->last == NULL)
        family->first = m;
    else
        family->last->next = m;
    family->last = m;
    family->count++;
out:
    pthread_mutex_unlock(&family->lock);
    return m;
}

void ward_counter_add(struct ward_metric *m, uint64_t n)
{
    if (m != NULL && m->kind == WARD__COUNTER)
        atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void ward_counter_inc(struct ward_metric *m)
{
    ward_counter_add(m, 1);
}

void ward_gauge_set(struct ward_metric *m, double value)
{
    if (m != NULL && m->kind == WARD__GAUGE)
        atomic_store_explicit(&m->value, ward__to_bits(value), memory_order_relaxed);
}

void ward_gauge_add(struct ward_metric *m, double delta)
{
    if (m != NULL && m->kind == WARD__GAUGE)
        add_double(&m->value, delta);
}

/* Counts value in the first bucket whose upper bound is >= value; NaN lands in +Inf. */
void ward_histogram_observe(struct ward_metric *m, double value)
{
    size_t lo = 0;
    size_t hi;

    if (m == NULL || m->kind != WARD__HISTOGRAM)
        return;
    hi = m->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
    add_double(&m->value, value);
}

/* Observations so far: the sum of every bucket. */
static uint64_t histogram_count(const struct ward_metric *m)
{
    uint64_t n = 0;

    for (size_t i = 0; i <= m->nbounds; i++)
        n += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    return n;
}

double ward_metric_value(const struct ward_metric *m)
{
    if (m == NULL)
        return 0;
    switch (m->kind) {
    case WARD__COUNTER:
        return (double)atomic_load_explicit(&m->value, memory_order_relaxed);
    case WARD__GAUGE:
        return ward__from_bits(atomic_load_explicit(&m->value, memory_order_relaxed));
    case WARD__HISTOGRAM:
        break;
    }
    return (double)histogram_count(m);
}

enum ward_err ward_metrics_on_collect(struct ward_metrics *reg, ward_metrics_collect_fn fn,
                                      void *arg)
{
    enum ward_err rc = WARD_ERR_OK;

    if (reg == NULL || fn == NULL)
        return WARD_ERR_INVAL;
    pthread_mutex_lock(&reg->lock);
    if (reg->ncollectors == reg->collectors_cap) {
        size_t cap = reg->collectors_cap > 0 ? 2 * reg->collectors_cap : 4;
        struct ward__collector *grown = realloc(reg->collectors, cap * sizeof *grown);
        if (grown == NULL) {
            rc = WARD_ERR_NOMEM;
            goto out;
        }
        reg->collectors = grown;
        reg->collectors_cap = cap;
    }
    reg->collectors[reg->ncollectors++] = (struct ward__collector){fn, arg};
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

void ward_metrics_off_collect(struct ward_metrics *reg, ward_metrics_collect_fn fn, void *arg)
{
    if (reg == NULL)
        return;
    /* collect_lock first: a render running this callback finishes before we return */
    pthread_mutex_lock(&reg->collect_lock);
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->ncollectors; i++) {
        if (reg->collectors[i].fn == fn && reg->collectors[i].arg == arg) {
            memmove(&reg->collectors[i], &reg->collectors[i + 1],
                    (reg->ncollectors - i - 1) * sizeof reg->collectors[0]);
            reg->ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    pthread_mutex_unlock(&reg->collect_lock);
}
