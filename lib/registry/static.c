/* static.c — the static registry backend: a fixed list of name=host:port entries. */
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

/* Parses one "name=host:port" entry of n bytes; the id is "name@host:port". */
static enum ward_err parse_entry(struct ward_registry *r, const char *e, size_t n)
{
    enum ward_err err = WARD_ERR_INVAL;
    char *name = NULL, *host = NULL, *id = NULL;
    const char *eq = memchr(e, '=', n);
    if (eq == NULL || eq == e)
        goto fail;
    size_t name_len = (size_t)(eq - e);
    uint16_t port = 0;
    err = ward__parse_hostport(eq + 1, n - name_len - 1, &host, &port);
    if (err != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_NOMEM;
    name = strndup(e, name_len);
    id = malloc(n + 1);
    if (name == NULL || id == NULL)
        goto fail;
    memcpy(id, e, n);
    id[n] = '\0';
    id[name_len] = '@';
    err = ward__instances_push(&r->statics, id, name, host, port);
fail:
    free(name);
    free(host);
    free(id);
    return err;
}

enum ward_err ward__static_parse(struct ward_registry *r, const char *spec)
{
    enum ward_err err = WARD_ERR_INVAL;
    if (*spec == '\0')
        goto fail;
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        err = parse_entry(r, p, n);
        if (err != WARD_ERR_OK)
            goto fail;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    ward__instances_sort(&r->statics);
    err = WARD_ERR_OK;
fail:
    return err;
}

enum ward_err ward__static_find(const struct ward_registry *r, const char *name,
                                struct ward_instances *out)
{
    enum ward_err err = WARD_ERR_OK;
    for (size_t i = 0; i < r->statics.len && err == WARD_ERR_OK; i++) {
        const struct ward_instance *in = &r->statics.items[i];
        if (strcmp(in->name, name) == 0)
            err = ward__instances_push(out, in->id, in->name, in->address, in->port);
    }
    if (err != WARD_ERR_OK)
        ward_instances_fini(out);
    return err;
}
