/* metrics.h — counters, gauges and histograms with labels, rendered in the Prometheus
 * text exposition format (version 0.0.4) that `promtool check metrics` accepts. */
#ifndef WARD_METRICS_H
#define WARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <ward/err.h>

struct ward_metrics;       /* a registry: what one /metrics endpoint shows */
struct ward_metric_family; /* one name, help, type and label names */
struct ward_metric;        /* one child of a family: one set of label values */

/* An empty registry; NULL when out of memory. The caller owns it (ward_metrics_free). */
struct ward_metrics *ward_metrics_new(void);

/* Frees the registry with every family and metric in it. NULL is a no-op. */
void ward_metrics_free(struct ward_metrics *reg);

/* Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]* (counters should end in
 * _total, and units be base units: seconds, bytes); labels holds nlabels names. The same
 * name registered twice with the same type and labels returns the existing family.
 * Returns NULL on bad names, a clash or no memory. The registry owns the family.
 * buckets: upper bounds, increasing, without +Inf; NULL means the default latency
 * buckets (5 ms .. 10 s). Thread-safe. */
struct ward_metric_family *ward_metrics_counter(struct ward_metrics *reg, const char *name,
                                                const char *help, size_t nlabels,
                                                const char *const *labels);
struct ward_metric_family *ward_metrics_gauge(struct ward_metrics *reg, const char *name,
                                              const char *help, size_t nlabels,
                                              const char *const *labels);
struct ward_metric_family *ward_metrics_histogram(struct ward_metrics *reg, const char *name,
                                                  const char *help, size_t nlabels,
                                                  const char *const *labels,
                                                  const double *buckets, size_t nbuckets);

/* The child of family with these label values (as many as the family has label names;
 * NULL when it has none), created on first use. The pointer stays valid as long as the
 * registry; callers on hot paths keep it. NULL when out of memory. Thread-safe. */
struct ward_metric *ward_metric_get(struct ward_metric_family *family, const char *const *values);

/* Lock-free updates; each is a no-op when m is NULL. */
void ward_counter_add(struct ward_metric *m, uint64_t n);
void ward_counter_inc(struct ward_metric *m);
void ward_gauge_set(struct ward_metric *m, double value);
void ward_gauge_add(struct ward_metric *m, double delta);
void ward_histogram_observe(struct ward_metric *m, double value);

/* Current value of a counter or gauge (tests, status pages). */
double ward_metric_value(const struct ward_metric *m);

/* A callback run at the start of every render, to refresh gauges (uptime, pool sizes). */
typedef void (*ward_metrics_collect_fn)(struct ward_metrics *reg, void *arg);
WARD_MUST_CHECK enum ward_err ward_metrics_on_collect(struct ward_metrics *reg,
                                                      ward_metrics_collect_fn fn, void *arg);

/* Removes the callback registered with fn and arg (no-op when absent). When it returns,
 * no render is running it any more, so arg may be freed. Must not be called from a
 * collect callback. */
void ward_metrics_off_collect(struct ward_metrics *reg, ward_metrics_collect_fn fn, void *arg);

/* Renders every family in registration order. Returns a NUL-terminated malloc'ed text
 * the caller frees, its length in *len (when len is not NULL); NULL when out of memory. */
char *ward_metrics_render(struct ward_metrics *reg, size_t *len);

#endif
