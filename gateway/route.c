/* route.c — ward-gateway's route match: the longest prefix on a whole-segment boundary,
 * and the upstream path with the prefix rewritten. */
#include "config.h"

#include <string.h>

/* Whether prefix matches path on a segment boundary: the path goes on with nothing, a
 * '/' or the query string. */
static bool matches(const char *prefix, size_t len, const char *path)
{
    return strncmp(path, prefix, len) == 0 &&
           (path[len] == '\0' || path[len] == '/' || path[len] == '?');
}

/* Writes head + rest to out, with a '/' between them when head is empty and rest does
 * not start a path; out becomes "" when it does not fit. */
static void rewrite_path(const char *head, const char *rest, char *out, size_t out_len)
{
    size_t hl = strlen(head);
    size_t rl = strlen(rest);
    size_t slash = (hl == 0 && rest[0] != '/') ? 1 : 0;

    if (hl + slash + rl + 1 > out_len) {
        out[0] = '\0';
        return;
    }
    memcpy(out, head, hl);
    if (slash)
        out[hl] = '/';
    memcpy(out + hl + slash, rest, rl + 1);
}

const struct gw_route *gw_route_match(const struct gw_config *cfg, const char *path,
                                      char *out_path, size_t out_len)
{
    const struct gw_route *best = NULL;
    size_t best_len = 0;

    if (cfg == NULL || path == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_route *r = &cfg->routes[i];
        size_t len = strlen(r->prefix);
        if (len > best_len && matches(r->prefix, len, path)) {
            best = r;
            best_len = len;
        }
    }
    if (best != NULL && out_path != NULL && out_len > 0)
        rewrite_path(best->rewrite != NULL ? best->rewrite : best->prefix, path + best_len,
                     out_path, out_len);
    return best;
}
