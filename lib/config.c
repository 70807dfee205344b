/* config.c — command-line flags with environment fallbacks, durations, sizes, --help. */
#include <ward/config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ward/log.h>

#define NS_PER_US INT64_C(1000)
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define NS_PER_M (60 * NS_PER_S)
#define NS_PER_H (60 * NS_PER_M)

/* Marks a bool flag given alone (`--verbose`): it means true. */
static const char bool_alone[] = "true";

static const struct {
    const char *name;
    int64_t ns;
} duration_units[] = {
    {"ns", 1},       {"us", NS_PER_US}, {"ms", NS_PER_MS},
    {"s", NS_PER_S}, {"m", NS_PER_M},   {"h", NS_PER_H},
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parses one component "<digits>[.<digits>]<unit>" at *p, adding its nanoseconds to
 * *total. The fraction is folded in from its last digit backwards, so that
 * floor((d + floor(x)) / 10) == floor((d + x) / 10) keeps the result exact (truncated
 * to whole nanoseconds) without floating point or wide integers. */
static enum ward_err duration_component(const char **p, int64_t *total)
{
    const char *s = *p;
    const char *frac = NULL;
    const char *frac_end = NULL;
    const char *unit;
    int64_t whole = 0;
    int64_t per = 0;
    int64_t part = 0;
    size_t ulen;

    if (!is_digit(*s))
        return WARD_ERR_SYNTAX;
    for (; is_digit(*s); s++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, *s - '0', &whole))
            return WARD_ERR_OVERFLOW;
    }
    if (*s == '.') {
        frac = ++s;
        while (is_digit(*s))
            s++;
        frac_end = s;
        if (frac == frac_end)
            return WARD_ERR_SYNTAX;
    }
    unit = s;
    while (is_alpha(*s))
        s++;
    ulen = (size_t)(s - unit);
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
        if (strlen(duration_units[i].name) == ulen &&
            strncmp(unit, duration_units[i].name, ulen) == 0)
            per = duration_units[i].ns;
    }
    if (per == 0)
        return WARD_ERR_SYNTAX;
    if (__builtin_mul_overflow(whole, per, &part))
        return WARD_ERR_OVERFLOW;
    if (frac != NULL) {
        int64_t f = 0;
        for (const char *d = frac_end; d > frac; d--)
            f = ((d[-1] - '0') * per + f) / 10;
        if (__builtin_add_overflow(part, f, &part))
            return WARD_ERR_OVERFLOW;
    }
    if (__builtin_add_overflow(*total, part, total))
        return WARD_ERR_OVERFLOW;
    *p = s;
    return WARD_ERR_OK;
}

enum ward_err ward_duration_parse(const char *text, int64_t *ns)
{
    enum ward_err rc = WARD_ERR_SYNTAX;
    const char *p = text;
    int64_t total = 0;

    if (text == NULL || ns == NULL) {
        rc = WARD_ERR_INVAL;
        goto out;
    }
    if (strcmp(text, "0") == 0) {
        *ns = 0;
        rc = WARD_ERR_OK;
        goto out;
    }
    if (*p == '\0')
        goto out;
    while (*p != '\0') {
        rc = duration_component(&p, &total);
        if (rc != WARD_ERR_OK)
            goto out;
    }
    *ns = total;
out:
    return rc;
}

enum ward_err ward_size_parse(const char *text, int64_t *bytes)
{
    enum ward_err rc = WARD_ERR_SYNTAX;
    const char *p = text;
    int64_t v = 0;
    int64_t mult = 1;

    if (text == NULL || bytes == NULL) {
        rc = WARD_ERR_INVAL;
        goto out;
    }
    if (!is_digit(*p))
        goto out;
    for (; is_digit(*p); p++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v)) {
            rc = WARD_ERR_OVERFLOW;
            goto out;
        }
    }
    if (*p == 'k' || *p == 'K')
        mult = INT64_C(1) << 10;
    else if (*p == 'm' || *p == 'M')
        mult = INT64_C(1) << 20;
    else if (*p == 'g' || *p == 'G')
        mult = INT64_C(1) << 30;
    if (mult != 1)
        p++;
    if (*p != '\0')
        goto out;
    if (__builtin_mul_overflow(v, mult, &v)) {
        rc = WARD_ERR_OVERFLOW;
        goto out;
    }
    *bytes = v;
    rc = WARD_ERR_OK;
out:
    return rc;
}

/* Writes "[.digits]" of frac (scale digits wide) without trailing zeros. */
static void put_fraction(FILE *f, uint64_t frac, int scale)
{
    char digits[16];

    if (frac == 0)
        return;
    snprintf(digits, sizeof digits, "%0*" PRIu64, scale, frac);
    for (int i = scale - 1; i > 0 && digits[i] == '0'; i--)
        digits[i] = '\0';
    fprintf(f, ".%s", digits);
}

/* Writes a duration the way ward_duration_parse reads it back: "0s", "250ms", "1.5s",
 * "1m30s", "2h". */
static void put_duration(FILE *f, int64_t ns)
{
    uint64_t u = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;
    uint64_t h, m;

    if (ns < 0)
        fputc('-', f);
    if (u == 0) {
        fputs("0s", f);
    } else if (u < (uint64_t)NS_PER_US) {
        fprintf(f, "%" PRIu64 "ns", u);
    } else if (u < (uint64_t)NS_PER_MS) {
        fprintf(f, "%" PRIu64, u / NS_PER_US);
        put_fraction(f, u % NS_PER_US, 3);
        fputs("us", f);
    } else if (u < (uint64_t)NS_PER_S) {
        fprintf(f, "%" PRIu64, u / NS_PER_MS);
        put_fraction(f, u % NS_PER_MS, 6);
        fputs("ms", f);
    } else {
        h = u / NS_PER_H;
        u %= NS_PER_H;
        m = u / NS_PER_M;
        u %= NS_PER_M;
        if (h > 0)
            fprintf(f, "%" PRIu64 "h", h);
        if (m > 0)
            fprintf(f, "%" PRIu64 "m", m);
        if (u > 0) {
            fprintf(f, "%" PRIu64, u / NS_PER_S);
            put_fraction(f, u % NS_PER_S, 9);
            fputc('s', f);
        }
    }
}

/* Writes a size as the largest exact unit: "1m", "64k", "1000". */
static void put_size(FILE *f, int64_t b)
{
    static const char suffix[] = "gmk";

    for (int i = 0; i < 3; i++) {
        int64_t unit = INT64_C(1) << (10 * (3 - i));
        if (b != 0 && b % unit == 0) {
            fprintf(f, "%" PRId64 "%c", b / unit, suffix[i]);
            return;
        }
    }
    fprintf(f, "%" PRId64, b);
}

static void put_bound(FILE *f, enum ward_opt_type type, int64_t v)
{
    if (type == WARD_OPT_DURATION)
        put_duration(f, v);
    else if (type == WARD_OPT_SIZE)
        put_size(f, v);
    else
        fprintf(f, "%" PRId64, v);
}

static const char *placeholder(enum ward_opt_type type)
{
    switch (type) {
    case WARD_OPT_STRING:
        return " string";
    case WARD_OPT_INT:
        return " int";
    case WARD_OPT_DURATION:
        return " duration";
    case WARD_OPT_SIZE:
        return " size";
    case WARD_OPT_LOG_LEVEL:
        return " level";
    case WARD_OPT_BOOL:
        break;
    }
    return "";
}

/* The current value of dest, shown as the default by --help. */
static void put_default(FILE *f, const struct ward_opt *o)
{
    switch (o->type) {
    case WARD_OPT_STRING: {
        const char *s = *(const char *const *)o->dest;
        if (s != NULL && *s != '\0')
            fprintf(f, ", default \"%s\"", s);
        break;
    }
    case WARD_OPT_INT:
    case WARD_OPT_DURATION:
    case WARD_OPT_SIZE:
        fputs(", default ", f);
        put_bound(f, o->type, *(const int64_t *)o->dest);
        break;
    case WARD_OPT_BOOL:
        fprintf(f, ", default %s", *(const bool *)o->dest ? "true" : "false");
        break;
    case WARD_OPT_LOG_LEVEL:
        fprintf(f, ", default %s", ward_log_level_name(*(const enum ward_log_level *)o->dest));
        break;
    }
}

static void print_help(const struct ward_opt *opts, size_t n, const char *prog, FILE *out)
{
    fprintf(out, "usage: %s [flags]\n\nflags:\n", prog);
    for (size_t i = 0; i < n; i++) {
        const struct ward_opt *o = &opts[i];
        fprintf(out, "  --%s%s\n      %s (", o->name, placeholder(o->type), o->help ? o->help : "");
        if (o->env != NULL)
            fprintf(out, "env %s", o->env);
        else
            fputs("no env", out);
        put_default(out, o);
        if (o->min < o->max && o->type != WARD_OPT_STRING && o->type != WARD_OPT_BOOL &&
            o->type != WARD_OPT_LOG_LEVEL) {
            fputs(", range ", out);
            put_bound(out, o->type, o->min);
            fputs("..", out);
            put_bound(out, o->type, o->max);
        }
        fputs(")\n", out);
    }
    fputs("  -h, --help\n      show this help and exit\n"
          "  --version\n      show the version and exit\n",
          out);
}

/* Prints "prog: <where>: " for a value of o that came from the flag or from env. */
static void blame(FILE *err, const char *prog, const struct ward_opt *o, bool from_env)
{
    if (from_env)
        fprintf(err, "%s: %s (--%s): ", prog, o->env, o->name);
    else
        fprintf(err, "%s: --%s: ", prog, o->name);
}

/* Parses text for o and stores it in o->dest; on a bad value names it on err. */
static bool apply(const struct ward_opt *o, const char *text, bool from_env, const char *prog,
                  FILE *err)
{
    enum ward_err rc = WARD_ERR_OK;
    int64_t v = 0;
    char *end = NULL;

    switch (o->type) {
    case WARD_OPT_STRING:
        *(const char **)o->dest = text;
        return true;
    case WARD_OPT_BOOL:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0) {
            *(bool *)o->dest = true;
        } else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0) {
            *(bool *)o->dest = false;
        } else {
            blame(err, prog, o, from_env);
            fprintf(err, "invalid boolean \"%s\" (use true or false)\n", text);
            return false;
        }
        return true;
    case WARD_OPT_LOG_LEVEL:
        if (ward_log_level_parse(text, (enum ward_log_level *)o->dest) != WARD_ERR_OK) {
            blame(err, prog, o, from_env);
            fprintf(err, "invalid log level \"%s\" (use debug, info, warn, error or off)\n", text);
            return false;
        }
        return true;
    case WARD_OPT_INT:
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno == ERANGE)
            rc = WARD_ERR_OVERFLOW;
        else if (end == text || *end != '\0' || !(is_digit(*text) || *text == '-' || *text == '+'))
            rc = WARD_ERR_SYNTAX;
        break;
    case WARD_OPT_DURATION:
        rc = ward_duration_parse(text, &v);
        break;
    case WARD_OPT_SIZE:
        rc = ward_size_parse(text, &v);
        break;
    }
    if (rc == WARD_ERR_OK && o->min < o->max && (v < o->min || v > o->max)) {
        blame(err, prog, o, from_env);
        fprintf(err, "\"%s\" is out of range (", text);
        put_bound(err, o->type, o->min);
        fputs("..", err);
        put_bound(err, o->type, o->max);
        fputs(")\n", err);
        return false;
    }
    if (rc != WARD_ERR_OK) {
        blame(err, prog, o, from_env);
        if (rc == WARD_ERR_OVERFLOW)
            fprintf(err, "\"%s\" is too large\n", text);
        else if (o->type == WARD_OPT_DURATION)
            fprintf(err, "invalid duration \"%s\" (use e.g. 500ms, 2s, 1m)\n", text);
        else if (o->type == WARD_OPT_SIZE)
            fprintf(err, "invalid size \"%s\" (use e.g. 4096, 64k, 1m)\n", text);
        else
            fprintf(err, "invalid integer \"%s\"\n", text);
        return false;
    }
    *(int64_t *)o->dest = v;
    return true;
}

/* The option called name[0..len), or NULL. */
static const struct ward_opt *find(const struct ward_opt *opts, size_t n, const char *name,
                                   size_t len, size_t *index)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) {
            *index = i;
            return &opts[i];
        }
    }
    return NULL;
}

/* Two passes: the first reads argv into vals[] (the last text given per option) and
 * handles --help / --version before any destination changes, so --help shows the real
 * defaults; the second stores each option from its flag, else from its variable. */
enum ward_config_result ward_config_parse(const struct ward_opt *opts, size_t n, int argc,
                                          char *const *argv, const char *prog, const char *version,
                                          FILE *out, FILE *err)
{
    enum ward_config_result res = WARD_CONFIG_USAGE;
    const char **vals = NULL;

    if (prog == NULL)
        prog = argc > 0 && argv[0] != NULL ? argv[0] : "ward";
    vals = calloc(n > 0 ? n : 1, sizeof *vals);
    if (vals == NULL) {
        fprintf(err, "%s: out of memory\n", prog);
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct ward_opt *o;
        const char *eq;
        size_t idx = 0;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(opts, n, prog, out);
            res = WARD_CONFIG_EXIT;
            goto out;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "%s %s\n", prog, version != NULL ? version : "unknown");
            res = WARD_CONFIG_EXIT;
            goto out;
        }
        if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc) {
                fprintf(err, "%s: unexpected argument \"%s\"\n", prog, argv[i + 1]);
                goto usage;
            }
            break;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (arg[0] == '-' && arg[1] != '\0')
                fprintf(err, "%s: %s: unknown flag\n", prog, arg);
            else
                fprintf(err, "%s: unexpected argument \"%s\"\n", prog, arg);
            goto usage;
        }
        eq = strchr(arg + 2, '=');
        o = find(opts, n, arg + 2, eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2), &idx);
        if (o == NULL) {
            fprintf(err, "%s: %.*s: unknown flag\n", prog,
                    eq != NULL ? (int)(eq - arg) : (int)strlen(arg), arg);
            goto usage;
        }
        if (eq != NULL) {
            vals[idx] = eq + 1;
        } else if (o->type == WARD_OPT_BOOL) {
            vals[idx] = bool_alone;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            vals[idx] = argv[++i];
        } else {
            fprintf(err, "%s: --%s: missing value\n", prog, o->name);
            goto usage;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *text = vals[i];
        bool from_env = false;

        if (text == NULL && opts[i].env != NULL) {
            text = getenv(opts[i].env);
            from_env = true;
        }
        if (text == NULL || (from_env && *text == '\0'))
            continue;
        if (!apply(&opts[i], text, from_env, prog, err))
            goto usage;
    }
    res = WARD_CONFIG_OK;
    goto out;
usage:
    fprintf(err, "%s: try --help\n", prog);
out:
    free(vals);
    return res;
}
