/* selfreg.h — how ward_service_main puts a daemon in the registry and takes it out. */
#ifndef WARD_LIB_SELFREG_H
#define WARD_LIB_SELFREG_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/log.h>
#include <ward/registry.h>

struct ward__selfreg {
    struct ward_registry *reg; /* NULL: not registering */
    char id[256];
    char address[128];
    uint16_t port;
    bool left;
    struct ward_log *log;
};

/* With rs->url empty or NULL: nothing. Else makes a registry client with rs (its url,
 * keep_period, lease_ttl and log; rs->log is also where this logs), registers name at
 * advertise (or the listen host) and the bound port, with its /ready check, and keeps it
 * registered. ADDRESS when the address to register is 0.0.0.0 without --advertise;
 * errors of ward_registry_new. A registry that does not answer is not an error:
 * anti-entropy retries. */
enum ward_err ward__selfreg_start(struct ward__selfreg *s, const struct ward_registry_settings *rs,
                                  const char *name, const char *version, const char *listen,
                                  const char *advertise, uint16_t bound_port);

/* The shutdown hook: deregisters (once). */
void ward__selfreg_leave(void *arg);

/* Stops anti-entropy and frees. */
void ward__selfreg_fini(struct ward__selfreg *s);

#endif
