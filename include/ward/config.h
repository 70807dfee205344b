/* config.h — command-line flags (`--name value` or `--name=value`) with WARD_*
 * environment fallbacks, typed values, durations ("500ms", "2s", "1m"), --help and
 * --version. A flag given on the command line wins over the environment, which wins
 * over the default already stored in the destination. */
#ifndef WARD_CONFIG_H
#define WARD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ward/err.h>

enum ward_opt_type {
    WARD_OPT_STRING,   /* dest: const char ** (points into argv or environ) */
    WARD_OPT_INT,      /* dest: int64_t *, bounded by min/max when min < max */
    WARD_OPT_DURATION, /* dest: int64_t * nanoseconds: "250ms", "2s", "1m", "1h", "1.5s"; bare "0" */
    WARD_OPT_SIZE,     /* dest: int64_t * bytes: "1048576", "64k", "1m" (KiB, MiB) */
    WARD_OPT_BOOL,     /* dest: bool *; `--name` alone sets true; values true/false/1/0 */
    WARD_OPT_LOG_LEVEL /* dest: enum ward_log_level * */
};

struct ward_opt {
    const char *name;  /* "listen": given as --listen */
    const char *env;   /* "WARD_LISTEN", or NULL for no environment fallback */
    enum ward_opt_type type;
    void *dest;
    const char *help;  /* one line for --help */
    int64_t min, max;  /* INT, DURATION, SIZE: inclusive bounds when min < max */
};

enum ward_config_result {
    WARD_CONFIG_OK,   /* go on */
    WARD_CONFIG_EXIT, /* --help or --version was printed to out: exit 0 */
    WARD_CONFIG_USAGE /* a bad flag or value, named on err: exit 2 */
};

/* Parses argv against opts[0..n) (and the environment for flags not given). prog and
 * version are shown by --help / --version on out; messages naming a bad flag go to err.
 * Positional arguments are a usage error. */
enum ward_config_result ward_config_parse(const struct ward_opt *opts, size_t n, int argc,
                                          char *const *argv, const char *prog,
                                          const char *version, FILE *out, FILE *err);

/* Parses a duration into nanoseconds: a decimal number followed by ns, us, ms, s, m or h
 * ("0" alone is allowed). SYNTAX or OVERFLOW (negative durations are SYNTAX). */
WARD_MUST_CHECK enum ward_err ward_duration_parse(const char *text, int64_t *ns);

/* Parses a byte size: digits with an optional k, m or g suffix (powers of 1024). */
WARD_MUST_CHECK enum ward_err ward_size_parse(const char *text, int64_t *bytes);

#endif
