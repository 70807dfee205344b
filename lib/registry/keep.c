/* keep.c — anti-entropy for the consul backend: a thread per registration that registers
 * it again whenever the agent forgot it (restart without --data-dir, reaped). */
#include <stdlib.h>
#include <ward/log.h>
#include <ward/thread.h>
#include <string.h>

#include "registry_int.h"

struct ward__reg_keep {
    struct ward__reg_keep *next;
    struct ward_registry *r;
    struct ward__reg_copy copy;
    bool stop;                    /* guarded by r->lock */
    pthread_t thread;
};

/* The anti-entropy loop (see ward_registry_keep_registered). */
static void *keep_main(void *arg)
{
    struct ward__reg_keep *k = arg;
    struct ward_registry *r = k->r;
    const struct ward_registration *reg = &k->copy.reg;
    while (ward__reg_pause(r, &k->stop, r->s.keep_period))
        if (ward__consul_known(r, reg->id) == WARD_ERR_NOT_FOUND &&
            ward__consul_register(r, reg) == WARD_ERR_OK)
            WARD_INFO(r->s.log, NULL, "re-registered", WARD_S("id", reg->id));
    return NULL;
}

void ward__reg_copy_free(struct ward__reg_copy *c)
{
    for (size_t i = 0; c->tags != NULL && c->tags[i] != NULL; i++)
        free(c->tags[i]);
    free(c->tags);
    free((char *)(uintptr_t)c->reg.id);
    free((char *)(uintptr_t)c->reg.name);
    free((char *)(uintptr_t)c->reg.address);
    free((char *)(uintptr_t)c->reg.version);
    free((char *)(uintptr_t)c->reg.check_path);
    free((char *)(uintptr_t)c->reg.initial_status);
    *c = (struct ward__reg_copy){0};
}

static void keep_free(struct ward__reg_keep *k)
{
    ward__reg_copy_free(&k->copy);
    free(k);
}

void ward__keep_stop(struct ward_registry *r, const char *id)
{
    struct ward__reg_keep *found = NULL;
    pthread_mutex_lock(&r->lock);
    for (struct ward__reg_keep **p = &r->keeps; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->copy.reg.id, id) == 0) {
            found = *p;
            *p = found->next;
            found->stop = true;
            pthread_cond_broadcast(&r->cond);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (found != NULL) {
        /* Joined first, so that it cannot register id again after the caller removes it. */
        pthread_join(found->thread, NULL);
        keep_free(found);
    }
}

void ward__keep_free_all(struct ward_registry *r)
{
    while (r->keeps != NULL) {
        struct ward__reg_keep *k = r->keeps;
        r->keeps = k->next;
        pthread_join(k->thread, NULL);
        keep_free(k);
    }
}

/* *dst = a copy of src (NULL stays NULL); false on NOMEM. */
static bool dup_opt(const char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

enum ward_err ward__reg_copy(struct ward__reg_copy *c, const struct ward_registration *reg)
{
    size_t nt = 0;
    while (reg->tags != NULL && reg->tags[nt] != NULL)
        nt++;
    c->reg = *reg;
    c->tags = calloc(nt + 1, sizeof *c->tags);
    bool ok = c->tags != NULL;
    for (size_t i = 0; ok && i < nt; i++) {
        c->tags[i] = strdup(reg->tags[i]);
        ok = c->tags[i] != NULL;
    }
    c->reg.tags = (const char *const *)c->tags;
    /* Null first, so that a failed copy never frees the caller's strings. */
    c->reg.id = c->reg.name = c->reg.address = c->reg.version = NULL;
    c->reg.check_path = c->reg.initial_status = NULL;
    ok = ok && dup_opt(&c->reg.id, reg->id) && dup_opt(&c->reg.name, reg->name) &&
         dup_opt(&c->reg.address, reg->address) && dup_opt(&c->reg.version, reg->version) &&
         dup_opt(&c->reg.check_path, reg->check_path) &&
         dup_opt(&c->reg.initial_status, reg->initial_status);
    if (!ok)
        ward__reg_copy_free(c);
    return ok ? WARD_ERR_OK : WARD_ERR_NOMEM;
}

enum ward_err ward_registry_keep_registered(struct ward_registry *r,
                                            const struct ward_registration *reg)
{
    if (r == NULL || !ward__registration_ok(reg))
        return WARD_ERR_INVAL;
    if (r->kind == WARD__REG_ETCD)
        return ward__etcd_register(r, reg, false);
    if (r->kind != WARD__REG_CONSUL)
        return WARD_ERR_OK;
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward__reg_keep *k = calloc(1, sizeof *k);
    if (k == NULL)
        return err;
    k->r = r;
    if (ward__reg_copy(&k->copy, reg) != WARD_ERR_OK)
        goto fail;
    pthread_mutex_lock(&r->lock);
    err = WARD_ERR_OK;
    for (struct ward__reg_keep *o = r->keeps; o != NULL && err == WARD_ERR_OK; o = o->next)
        if (strcmp(o->copy.reg.id, reg->id) == 0)
            err = WARD_ERR_EXISTS;
    if (err == WARD_ERR_OK)
        err = ward_thread_start(&k->thread, keep_main, k);
    if (err == WARD_ERR_OK) {
        k->next = r->keeps;
        r->keeps = k;
    }
    pthread_mutex_unlock(&r->lock);
    if (err != WARD_ERR_OK)
        goto fail;
    return WARD_ERR_OK;
fail:
    keep_free(k);
    return err;
}
