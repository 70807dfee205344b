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

/* With url empty or NULL: nothing. Else registers name at advertise (or the listen
 * host) and the bound port, with its /ready check, and keeps it registered, checking
 * every refresh ns (>= 1 ms) that the registry still knows it. ADDRESS when
 * the address to register is 0.0.0.0 without --advertise; errors of ward_registry_new.
 * A registry that does not answer is not an error: anti-entropy retries. */
enum ward_err ward__selfreg_start(struct ward__selfreg *s, const char *url, const char *name,
                                  const char *version, const char *listen,
                                  const char *advertise, uint16_t bound_port,
                                  int64_t refresh, struct ward_log *log);

/* The shutdown hook: deregisters (once). */
void ward__selfreg_leave(void *arg);

/* Stops anti-entropy and frees. */
void ward__selfreg_fini(struct ward__selfreg *s);

#endif
