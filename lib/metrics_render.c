/* metrics_render.c — the Prometheus text exposition format (0.0.4) of a registry. */
#include <ward/metrics.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* A double as Prometheus reads it: integral values without exponent or fraction, others
 * in the shortest form that reads back exactly; "+Inf", "-Inf", "NaN". */
static void put_double(FILE *f, double v)
{
    char buf[32];

    if (isnan(v)) {
        fputs("NaN", f);
    } else if (isinf(v)) {
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    } else if (v == floor(v) && fabs(v) < 1e15) {
        fprintf(f, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        fputs(buf, f);
    }
}

/* Writes s with '\\' and '\n' escaped, and '"' too for label values. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '"' && quote)
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

/* Writes name, suffix and {labels[,le="bound"]} (nothing when there is no label at all). */
static void put_series(FILE *f, const struct ward_metric_family *fam, const struct ward_metric *m,
                       const char *suffix, const double *le)
{
    fprintf(f, "%s%s", fam->name, suffix);
    if (fam->nlabels == 0 && le == NULL)
        return;
    fputc('{', f);
    for (size_t i = 0; i < fam->nlabels; i++) {
        fprintf(f, "%s%s=\"", i > 0 ? "," : "", fam->labels[i]);
        put_escaped(f, m->values[i], true);
        fputc('"', f);
    }
    if (le != NULL) {
        fprintf(f, "%sle=\"", fam->nlabels > 0 ? "," : "");
        put_double(f, *le);
        fputc('"', f);
    }
    fputc('}', f);
}

static void render_histogram(FILE *f, const struct ward_metric_family *fam,
                             const struct ward_metric *m)
{
    uint64_t cumulative = 0;

    for (size_t i = 0; i <= m->nbounds; i++) {
        double le = i < m->nbounds ? m->bounds[i] : (double)INFINITY;
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        put_series(f, fam, m, "_bucket", &le);
        fprintf(f, " %" PRIu64 "\n", cumulative);
    }
    put_series(f, fam, m, "_sum", NULL);
    fputc(' ', f);
    put_double(f, ward__from_bits(atomic_load_explicit(&m->value, memory_order_relaxed)));
    fputc('\n', f);
    put_series(f, fam, m, "_count", NULL);
    /* The +Inf bucket's total, so that _count always equals it even during updates. */
    fprintf(f, " %" PRIu64 "\n", cumulative);
}

static void render_family(FILE *f, struct ward_metric_family *fam)
{
    if (fam->help[0] != '\0') {
        fprintf(f, "# HELP %s ", fam->name);
        put_escaped(f, fam->help, false);
        fputc('\n', f);
    }
    fprintf(f, "# TYPE %s %s\n", fam->name, kind_names[fam->kind]);
    pthread_mutex_lock(&fam->lock);
    for (const struct ward_metric *m = fam->first; m != NULL; m = m->next) {
        uint64_t v = atomic_load_explicit(&m->value, memory_order_relaxed);
        if (m->kind == WARD__HISTOGRAM) {
            render_histogram(f, fam, m);
            continue;
        }
        put_series(f, fam, m, "", NULL);
        fputc(' ', f);
        if (m->kind == WARD__COUNTER)
            fprintf(f, "%" PRIu64, v);
        else
            put_double(f, ward__from_bits(v));
        fputc('\n', f);
    }
    pthread_mutex_unlock(&fam->lock);
}

/* Runs the collectors from a copy of their list, without the lock, so that they may
 * register families, add collectors or take a family lock themselves. */
char *ward_metrics_render(struct ward_metrics *reg, size_t *len)
{
    struct ward__collector *copy = NULL;
    size_t ncopy = 0;
    FILE *f = NULL;
    char *buf = NULL;
    size_t size = 0;
    bool ok;

    if (reg == NULL)
        goto fail;
    pthread_mutex_lock(&reg->collect_lock);
    pthread_mutex_lock(&reg->lock);
    ncopy = reg->ncollectors;
    copy = ncopy > 0 ? malloc(ncopy * sizeof *copy) : NULL;
    if (copy != NULL)
        memcpy(copy, reg->collectors, ncopy * sizeof *copy);
    pthread_mutex_unlock(&reg->lock);
    if (ncopy > 0 && copy == NULL) {
        pthread_mutex_unlock(&reg->collect_lock);
        goto fail;
    }
    for (size_t i = 0; i < ncopy; i++)
        copy[i].fn(reg, copy[i].arg);
    pthread_mutex_unlock(&reg->collect_lock);
    f = open_memstream(&buf, &size);
    if (f == NULL)
        goto fail;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nfamilies; i++)
        render_family(f, reg->families[i]);
    pthread_mutex_unlock(&reg->lock);
    ok = !ferror(f);
    if (fclose(f) != 0 || !ok)
        goto fail;
    if (len != NULL)
        *len = size;
    free(copy);
    return buf;
fail:
    free(copy);
    free(buf);
    return NULL;
}
