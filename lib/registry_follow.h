/* registry_follow.h — for libward's own callers (the resilient client): following a
 * service's watch without a callback, shared with anyone else following the same name, and
 * noticing a change with one atomic load instead of copying the cache per call. */
#ifndef WARD_LIB_REGISTRY_FOLLOW_H
#define WARD_LIB_REGISTRY_FOLLOW_H

#include <stdint.h>

#include <ward/registry.h>

struct ward__reg_watch;

/* The watch of name in r, started without a callback when nobody watches it yet (else the
 * existing one, whoever started it). The pointer stays valid until r is freed. INVAL;
 * NOMEM; SYSTEM. */
enum ward_err ward__registry_follow(struct ward_registry *r, const char *name,
                                    struct ward__reg_watch **out);

/* Grows by one on every change of w's cache; 0 until the first answer. Lock-free. */
uint64_t ward__registry_generation(const struct ward__reg_watch *w);

/* A copy of w's cache (caller finis it) and the generation it belongs to. NOMEM. */
enum ward_err ward__registry_snapshot(struct ward__reg_watch *w, struct ward_instances *out,
                                      uint64_t *generation);

#endif
