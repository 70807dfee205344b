/* persist.c — --data-dir: the services and checks (with their status and output) saved
 * as DIR/registry.json after changes (coalesced by a writer thread; a temp file, fsync,
 * rename) and loaded at start. A corrupt file is logged and the registry starts empty. */
#include <errno.h>
#include <ward/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"

#define FILE_NAME "registry.json"
#define FORMAT_VERSION 1

struct reg_persist {
    struct reg_ctx *ctx;
    char *path, *tmp;
    pthread_t thread;
    pthread_cond_t cond; /* guarded by the state's lock, as dirty and stop */
    bool dirty, stop;
};

static const char *str_or_empty(const char *s) { return s != NULL ? s : ""; }

static json_t *service_json(const struct reg_service *s)
{
    return json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:I, s:b, s:I, s:I}", "ID", s->id, "Name",
                     s->name, "Address", str_or_empty(s->address), "Tags", s->tags, "Meta", s->meta,
                     "TaggedAddresses", s->tagged, "Port", (json_int_t)s->port, "EnableTagOverride",
                     s->enable_tag_override, "WeightPassing", (json_int_t)s->weight_passing,
                     "WeightWarning", (json_int_t)s->weight_warning);
}

static json_t *check_json(const struct reg_check *c, int64_t now)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "ID", c->id,
        "Name", c->name, "Notes", str_or_empty(c->notes), "Output", str_or_empty(c->output),
        "ServiceID", c->service_id, "Kind", (int)c->kind, "Status", reg_status_name(c->status),
        "HTTP", str_or_empty(c->http), "Method", str_or_empty(c->method), "Body",
        str_or_empty(c->body), "TCP", str_or_empty(c->tcp), "TLSServerName",
        str_or_empty(c->tls_server_name), "TLSSkipVerify", c->tls_skip_verify,
        "DisableRedirects", c->disable_redirects, "TCPUseTLS", c->tcp_use_tls);
    json_t *n = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "Interval",
                          (json_int_t)c->interval, "Timeout", (json_int_t)c->timeout, "TTL",
                          (json_int_t)c->ttl, "DeregisterAfter", (json_int_t)c->deregister_after,
                          "SuccessBeforePassing", (json_int_t)c->success_before_passing,
                          "FailuresBeforeWarning", (json_int_t)c->failures_before_warning,
                          "FailuresBeforeCritical", (json_int_t)c->failures_before_critical,
                          "OutputMaxSize", (json_int_t)c->output_max_size, "CriticalFor",
                          (json_int_t)(c->critical_since != 0 ? now - c->critical_since : -1));
    if (o == NULL || n == NULL || json_object_update(o, n) != 0 ||
        (c->header != NULL && json_object_set(o, "Header", c->header) != 0)) {
        json_decref(o);
        o = NULL;
    }
    json_decref(n);
    return o;
}

/* The whole registry as a document (node check left out: it is built in). Lock held. */
static json_t *snapshot(const struct reg_state *st)
{
    int64_t now = ward_clock_now(st->clock);
    json_t *svcs = json_array(), *checks = json_array();
    json_t *doc = json_pack("{s:i, s:o, s:o}", "Version", FORMAT_VERSION, "Services", svcs,
                            "Checks", checks);
    for (size_t i = 0; doc != NULL && i < st->nsvcs; i++) {
        if (json_array_append_new(svcs, service_json(st->svcs[i])) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    for (size_t i = 1; doc != NULL && i < st->nchecks; i++) {
        if (json_array_append_new(checks, check_json(st->checks[i], now)) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    return doc;
}

/* Writes doc to path atomically: tmp, fsync, rename, fsync of the directory. */
static bool write_file(const struct reg_persist *p, const json_t *doc)
{
    bool ok = false;
    int fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text != NULL) {
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t n = write(fd, text + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        ok = off == len && fsync(fd) == 0;
        free(text);
    }
    ok = close(fd) == 0 && ok;
    if (ok)
        ok = rename(p->tmp, p->path) == 0;
    if (ok) {
        int dfd = open(p->ctx->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    } else {
        unlink(p->tmp);
    }
    return ok;
}

static char *get_str(const json_t *o, const char *key, bool *ok)
{
    const json_t *v = json_object_get(o, key);
    char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    if (s == NULL)
        *ok = false;
    return s;
}

static int64_t get_int(const json_t *o, const char *key, bool *ok)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        *ok = false;
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static json_t *get_obj(const json_t *o, const char *key, bool array, bool *ok)
{
    json_t *v = json_object_get(o, key);
    if (array ? !json_is_array(v) : !json_is_object(v)) {
        *ok = false;
        return NULL;
    }
    return json_incref(v);
}

static struct reg_service *load_service(const json_t *o)
{
    bool ok = json_is_object(o);
    struct reg_service *s = ok ? calloc(1, sizeof *s) : NULL;
    if (s == NULL)
        return NULL;
    s->id = get_str(o, "ID", &ok);
    s->name = get_str(o, "Name", &ok);
    s->address = get_str(o, "Address", &ok);
    s->tags = get_obj(o, "Tags", true, &ok);
    s->meta = get_obj(o, "Meta", false, &ok);
    s->tagged = get_obj(o, "TaggedAddresses", false, &ok);
    s->port = get_int(o, "Port", &ok);
    s->enable_tag_override = json_is_true(json_object_get(o, "EnableTagOverride"));
    s->weight_passing = get_int(o, "WeightPassing", &ok);
    s->weight_warning = get_int(o, "WeightWarning", &ok);
    if (!ok) {
        reg_service_free(s);
        s = NULL;
    }
    return s;
}

/* A check from the file; *critical_for gets how long it had been critical (-1: not). */
static struct reg_check *load_check(const json_t *o, int64_t *critical_for)
{
    bool ok = json_is_object(o);
    struct reg_check *c = ok ? calloc(1, sizeof *c) : NULL;
    if (c == NULL)
        return NULL;
    c->id = get_str(o, "ID", &ok);
    c->name = get_str(o, "Name", &ok);
    c->notes = get_str(o, "Notes", &ok);
    c->output = get_str(o, "Output", &ok);
    c->service_id = get_str(o, "ServiceID", &ok);
    c->http = get_str(o, "HTTP", &ok);
    c->method = get_str(o, "Method", &ok);
    c->body = get_str(o, "Body", &ok);
    c->tcp = get_str(o, "TCP", &ok);
    c->tls_server_name = get_str(o, "TLSServerName", &ok);
    const json_t *h = json_object_get(o, "Header");
    c->header = json_is_object(h) ? json_incref((json_t *)(uintptr_t)h) : NULL;
    c->tls_skip_verify = json_is_true(json_object_get(o, "TLSSkipVerify"));
    c->disable_redirects = json_is_true(json_object_get(o, "DisableRedirects"));
    c->tcp_use_tls = json_is_true(json_object_get(o, "TCPUseTLS"));
    int64_t kind = get_int(o, "Kind", &ok);
    c->interval = get_int(o, "Interval", &ok);
    c->timeout = get_int(o, "Timeout", &ok);
    c->ttl = get_int(o, "TTL", &ok);
    c->deregister_after = get_int(o, "DeregisterAfter", &ok);
    c->success_before_passing = get_int(o, "SuccessBeforePassing", &ok);
    c->failures_before_warning = get_int(o, "FailuresBeforeWarning", &ok);
    c->failures_before_critical = get_int(o, "FailuresBeforeCritical", &ok);
    c->output_max_size = get_int(o, "OutputMaxSize", &ok);
    *critical_for = get_int(o, "CriticalFor", &ok);
    const json_t *status = json_object_get(o, "Status");
    if (!json_is_string(status) || !reg_status_parse(json_string_value(status), &c->status))
        ok = false;
    if (kind < REG_CHECK_TTL || kind > REG_CHECK_TCP)
        ok = false;
    c->kind = (enum reg_check_kind)kind;
    if (ok && ((c->kind == REG_CHECK_TTL && c->ttl <= 0) ||
               (c->kind != REG_CHECK_TTL && c->interval <= 0)))
        ok = false;
    if (!ok) {
        reg_check_free(c);
        c = NULL;
    }
    return c;
}

/* Parses the whole document before touching the state, so that a bad file changes
 * nothing. Returns a message on failure. Lock held. */
static const char *load_doc(struct reg_state *st, const json_t *doc)
{
    const char *why = "bad document";
    const json_t *jsvcs = json_object_get(doc, "Services");
    const json_t *jchecks = json_object_get(doc, "Checks");
    if (!json_is_array(jsvcs) || !json_is_array(jchecks) ||
        json_integer_value(json_object_get(doc, "Version")) != FORMAT_VERSION)
        return why;
    size_t ns = json_array_size(jsvcs), nc = json_array_size(jchecks);
    struct reg_service **svcs = calloc(ns + 1, sizeof *svcs);
    struct reg_check **checks = calloc(nc + 1, sizeof *checks);
    struct reg_check **batch = calloc(nc + 1, sizeof *batch);
    int64_t *crit = calloc(nc + 1, sizeof *crit);
    char **ids = calloc(nc + 1, sizeof *ids);
    size_t i = 0, k = 0;
    if (svcs == NULL || checks == NULL || batch == NULL || crit == NULL || ids == NULL)
        goto fail;
    for (i = 0; i < ns; i++) {
        svcs[i] = load_service(json_array_get(jsvcs, i));
        if (svcs[i] == NULL)
            goto fail;
    }
    for (k = 0; k < nc; k++) {
        checks[k] = load_check(json_array_get(jchecks, k), &crit[k]);
        if (checks[k] == NULL)
            goto fail;
        ids[k] = strdup(checks[k]->id);
        if (ids[k] == NULL) {
            k++;
            goto fail;
        }
    }
    why = "out of memory";
    /* from here on each object is taken over by the state, or freed by it on NOMEM */
    for (size_t s = 0; s < ns; s++) {
        size_t n = 0;
        for (size_t j = 0; j < nc; j++) {
            if (checks[j] != NULL && strcmp(checks[j]->service_id, svcs[s]->id) == 0) {
                batch[n++] = checks[j];
                checks[j] = NULL;
            }
        }
        struct reg_service *svc = svcs[s];
        svcs[s] = NULL;
        if (reg_state_register(st, svc, batch, n, false) != WARD_ERR_OK)
            goto fail;
    }
    for (size_t j = 0; j < nc; j++) {
        if (checks[j] == NULL)
            continue;
        struct reg_check *c = checks[j];
        checks[j] = NULL;
        if (c->service_id[0] != '\0' && reg_state_service(st, c->service_id) == NULL)
            reg_check_free(c); /* its service is not in the file */
        else if (reg_state_add_check(st, c) != WARD_ERR_OK)
            goto fail;
    }
    int64_t now = ward_clock_now(st->clock);
    for (size_t j = 0; j < nc; j++) {
        struct reg_check *c = reg_state_check(st, ids[j]);
        if (c != NULL)
            c->critical_since = c->status == REG_CRITICAL && crit[j] >= 0 ? now - crit[j] : 0;
    }
    why = NULL;
fail:
    for (size_t j = 0; j < ns && svcs != NULL; j++)
        reg_service_free(svcs[j]);
    for (size_t j = 0; j < nc && checks != NULL; j++)
        reg_check_free(checks[j]);
    for (size_t j = 0; j < nc && ids != NULL; j++)
        free(ids[j]);
    free(svcs);
    free(checks);
    free(batch);
    free(crit);
    free(ids);
    return why;
}

static void load(struct reg_persist *p)
{
    struct reg_ctx *ctx = p->ctx;
    struct stat sb;
    if (stat(p->path, &sb) != 0 && errno == ENOENT)
        return; /* a first start */
    json_error_t jerr;
    json_t *doc = json_load_file(p->path, 0, &jerr);
    const char *why = doc == NULL ? jerr.text : NULL;
    if (doc != NULL) {
        reg_state_lock(ctx->st);
        why = load_doc(ctx->st, doc);
        size_t nsvcs = ctx->st->nsvcs;
        reg_state_unlock(ctx->st);
        if (why == NULL)
            WARD_INFO(ctx->log, NULL, "registry loaded", WARD_S("path", p->path),
                      WARD_I("services", (int64_t)nsvcs));
    }
    if (why != NULL)
        WARD_ERROR(ctx->log, NULL, "cannot load the data file: starting empty",
                   WARD_S("path", p->path), WARD_S("error", why));
    json_decref(doc);
}

/* Any change: have the writer save. Lock held. */
static void on_change(void *arg)
{
    struct reg_persist *p = arg;
    p->dirty = true;
    pthread_cond_signal(&p->cond);
}

/* Saves a snapshot taken under the lock, writing without it. Lock held on entry and exit. */
static void save(struct reg_persist *p)
{
    struct reg_state *st = p->ctx->st;
    p->dirty = false;
    json_t *doc = snapshot(st);
    reg_state_unlock(st);
    if (doc == NULL || !write_file(p, doc))
        WARD_WARN(p->ctx->log, NULL, "cannot write the data file", WARD_S("path", p->path),
                  WARD_S("error", doc == NULL ? "out of memory" : strerror(errno)));
    json_decref(doc);
    reg_state_lock(st);
}

static void *writer_main(void *arg)
{
    struct reg_persist *p = arg;
    struct reg_state *st = p->ctx->st;
    reg_state_lock(st);
    while (!p->stop) {
        if (p->dirty)
            save(p);
        else
            pthread_cond_wait(&p->cond, &st->lock);
    }
    save(p); /* the last state, output-only changes included */
    reg_state_unlock(st);
    return NULL;
}

enum ward_err reg_persist_new(struct reg_ctx *ctx, struct reg_persist **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    bool cond_ok = false, hooked = false;
    struct reg_persist *p = calloc(1, sizeof *p);
    if (p == NULL)
        goto fail;
    p->ctx = ctx;
    size_t len = strlen(ctx->data_dir) + sizeof FILE_NAME + 8;
    p->path = malloc(len);
    p->tmp = malloc(len);
    if (p->path == NULL || p->tmp == NULL)
        goto fail;
    snprintf(p->path, len, "%s/%s", ctx->data_dir, FILE_NAME);
    snprintf(p->tmp, len, "%s/%s.tmp", ctx->data_dir, FILE_NAME);
    err = WARD_ERR_SYSTEM;
    if (mkdir(ctx->data_dir, 0700) != 0 && errno != EEXIST) {
        WARD_ERROR(ctx->log, NULL, "cannot create the data directory",
                   WARD_S("path", ctx->data_dir), WARD_S("error", strerror(errno)));
        goto fail;
    }
    cond_ok = pthread_cond_init(&p->cond, NULL) == 0;
    if (!cond_ok)
        goto fail;
    load(p);
    reg_state_lock(ctx->st);
    hooked = reg_state_hook_add(ctx->st, on_change, p);
    reg_state_unlock(ctx->st);
    if (!hooked)
        goto fail;
    /* the thread must not take the signals meant for the server */
    if (ward_thread_start(&p->thread, writer_main, p) != WARD_ERR_OK)
        goto fail;
    *out = p;
    return WARD_ERR_OK;
fail:
    if (hooked) {
        reg_state_lock(ctx->st);
        reg_state_hook_remove(ctx->st, on_change, p);
        reg_state_unlock(ctx->st);
    }
    if (cond_ok)
        pthread_cond_destroy(&p->cond);
    if (p != NULL) {
        free(p->path);
        free(p->tmp);
    }
    free(p);
    return err;
}

void reg_persist_free(struct reg_persist *p)
{
    if (p == NULL)
        return;
    struct reg_state *st = p->ctx->st;
    reg_state_lock(st);
    p->stop = true;
    reg_state_hook_remove(st, on_change, p);
    pthread_cond_signal(&p->cond);
    reg_state_unlock(st);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cond);
    free(p->path);
    free(p->tmp);
    free(p);
}
