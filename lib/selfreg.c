/* selfreg.c — a daemon's own entry in the registry: registered once it serves (with its
 * /ready check), kept there by anti-entropy, deregistered first thing on shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfreg.h"

/* The host of "HOST:PORT" / "[V6]:PORT" into buf and the port into *port (0 when absent). */
static bool split_hostport(const char *hp, char *buf, size_t size, uint16_t *port)
{
    const char *host = hp, *colon;
    size_t n;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (end == NULL)
            return false;
        host = hp + 1;
        n = (size_t)(end - host);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(hp, ':');
        n = colon != NULL ? (size_t)(colon - hp) : strlen(hp);
    }
    if (n == 0 || n >= size)
        return false;
    memcpy(buf, host, n);
    buf[n] = '\0';
    long p = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
    if (p < 0 || p > 65535)
        return false;
    *port = (uint16_t)p;
    return true;
}

static bool unroutable(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0;
}

enum ward_err ward__selfreg_start(struct ward__selfreg *s, const struct ward_registry_settings *rs,
                                  const char *name, const char *version, const char *listen,
                                  const char *advertise, uint16_t bound_port)
{
    const char *url = rs->url;
    struct ward_log *log = rs->log;
    memset(s, 0, sizeof *s);
    s->log = log;
    if (url == NULL || url[0] == '\0')
        return WARD_ERR_OK; /* no registry: the daemon runs unregistered */
    uint16_t port = 0;
    if (!split_hostport(advertise != NULL && advertise[0] ? advertise : listen, s->address,
                        sizeof s->address, &port) || unroutable(s->address)) {
        WARD_ERROR(log, NULL, "cannot register: the listen address is not reachable as it is; "
                              "give --advertise HOST:PORT",
                   WARD_S("listen", listen));
        return WARD_ERR_ADDRESS;
    }
    s->port = advertise != NULL && advertise[0] && port != 0 ? port : bound_port;
    snprintf(s->id, sizeof s->id, "%s-%s-%u", name, s->address, s->port);
    enum ward_err err = ward_registry_new(rs, &s->reg);
    if (err != WARD_ERR_OK) {
        WARD_ERROR(log, NULL, "bad --registry", WARD_S("registry", url), WARD_S("error", ward_strerror(err)));
        return err;
    }
    struct ward_registration r = {.id = s->id, .name = name, .address = s->address,
                                  .port = s->port, .version = version};
    /* best effort now; anti-entropy registers us whenever the registry does not know us */
    err = ward_registry_register(s->reg, &r);
    if (err == WARD_ERR_OK)
        WARD_INFO(log, NULL, "registered", WARD_S("id", s->id), WARD_S("registry", url));
    else
        WARD_WARN(log, NULL, "registration failed; retrying in the background", WARD_S("id", s->id),
                  WARD_S("error", ward_strerror(err)));
    err = ward_registry_keep_registered(s->reg, &r);
    if (err != WARD_ERR_OK)
        WARD_WARN(log, NULL, "anti-entropy not running", WARD_S("error", ward_strerror(err)));
    return WARD_ERR_OK;
}

void ward__selfreg_leave(void *arg)
{
    struct ward__selfreg *s = arg;
    if (s->reg == NULL || s->left)
        return;
    s->left = true;
    enum ward_err err = ward_registry_deregister(s->reg, s->id);
    if (err == WARD_ERR_OK)
        WARD_INFO(s->log, NULL, "deregistered", WARD_S("id", s->id));
    else
        WARD_WARN(s->log, NULL, "deregistration failed", WARD_S("id", s->id),
                  WARD_S("error", ward_strerror(err)));
}

void ward__selfreg_fini(struct ward__selfreg *s)
{
    ward_registry_free(s->reg);
    s->reg = NULL;
}
