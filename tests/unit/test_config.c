/* test_config.c — unit tests of flags, environment fallbacks, durations and sizes. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <ward/config.h>
#include <ward/log.h>

/* The destinations and options of a small service, reset before each test. */
struct cfg {
    const char *listen;
    int64_t port;
    int64_t drain;
    int64_t body;
    bool verbose;
    enum ward_log_level level;
    struct ward_opt opts[6];
};

static void cfg_init(struct cfg *c)
{
    memset(c, 0, sizeof *c);
    c->listen = "0.0.0.0:8080";
    c->port = 8080;
    c->drain = 30 * INT64_C(1000000000);
    c->body = 1 << 20;
    c->level = WARD_LOG_INFO;
    c->opts[0] = (struct ward_opt){.name = "listen",
                                   .env = "WT_LISTEN",
                                   .type = WARD_OPT_STRING,
                                   .dest = &c->listen,
                                   .help = "address to listen on"};
    c->opts[1] = (struct ward_opt){.name = "port",
                                   .env = "WT_PORT",
                                   .type = WARD_OPT_INT,
                                   .dest = &c->port,
                                   .help = "TCP port",
                                   .min = 1,
                                   .max = 65535};
    c->opts[2] = (struct ward_opt){.name = "drain-timeout",
                                   .env = "WT_DRAIN_TIMEOUT",
                                   .type = WARD_OPT_DURATION,
                                   .dest = &c->drain,
                                   .help = "how long to drain",
                                   .max = 3600 * INT64_C(1000000000)};
    c->opts[3] = (struct ward_opt){.name = "max-body",
                                   .env = "WT_MAX_BODY",
                                   .type = WARD_OPT_SIZE,
                                   .dest = &c->body,
                                   .help = "largest body"};
    c->opts[4] = (struct ward_opt){
        .name = "verbose", .type = WARD_OPT_BOOL, .dest = &c->verbose, .help = "say more"};
    c->opts[5] = (struct ward_opt){.name = "log-level",
                                   .env = "WT_LOG_LEVEL",
                                   .type = WARD_OPT_LOG_LEVEL,
                                   .dest = &c->level,
                                   .help = "least level logged"};
}

/* Runs ward_config_parse on a NULL-terminated argument list (argv[0] = "svc") and keeps
 * what it printed on out and err. */
struct run {
    enum ward_config_result res;
    char *out;
    char *err;
    char *argv[32]; /* copies: a STRING destination may point into them */
};

static struct run run_argv(struct cfg *c, const char *const *args)
{
    int argc = 0;
    size_t olen = 0, elen = 0;
    struct run r = {0};
    FILE *out = open_memstream(&r.out, &olen);
    FILE *err = open_memstream(&r.err, &elen);

    cr_assert(out != NULL && err != NULL);
    r.argv[argc++] = strdup("svc");
    for (; args[argc - 1] != NULL; argc++)
        r.argv[argc] = strdup(args[argc - 1]);
    r.res = ward_config_parse(c->opts, 6, argc, r.argv, "svc", "1.2.3", out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    for (size_t i = 0; r->argv[i] != NULL; i++)
        free(r->argv[i]);
}

#define RUN(c, ...) run_argv((c), (const char *const[]){__VA_ARGS__, NULL})

Test(config, no_arguments_keeps_defaults)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = run_argv(&c, (const char *const[]){NULL});
    cr_assert_eq(r.res, WARD_CONFIG_OK);
    cr_assert_str_eq(c.listen, "0.0.0.0:8080");
    cr_assert_eq(c.port, 8080);
    cr_assert_eq(c.drain, INT64_C(30000000000));
    cr_assert_eq(c.body, 1048576);
    cr_assert_eq(c.verbose, false);
    cr_assert_eq(c.level, WARD_LOG_INFO);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "");
    run_free(&r);
}

Test(config, both_flag_forms_set_every_type)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = RUN(&c, "--listen", "127.0.0.1:9", "--port=9090", "--drain-timeout", "1.5s",
                       "--max-body=64k", "--verbose", "--log-level", "debug");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_str_eq(c.listen, "127.0.0.1:9");
    cr_assert_eq(c.port, 9090);
    cr_assert_eq(c.drain, INT64_C(1500000000));
    cr_assert_eq(c.body, 65536);
    cr_assert_eq(c.verbose, true);
    cr_assert_eq(c.level, WARD_LOG_DEBUG);
    run_free(&r);
}

Test(config, equals_form_keeps_everything_after_the_first_equals_sign)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = RUN(&c, "--listen=a=b", "--port", "-5", "--port", "7");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_str_eq(c.listen, "a=b");
    cr_assert_eq(c.port, 7, "the last flag given wins");
    run_free(&r);
}

Test(config, bool_flag_takes_explicit_values)
{
    static const char *const texts[] = {"true", "false", "1", "0", "TRUE", "False"};
    static const bool want[] = {true, false, true, false, true, false};
    for (size_t i = 0; i < 6; i++) {
        struct cfg c;
        char arg[32];
        cfg_init(&c);
        c.verbose = !want[i];
        snprintf(arg, sizeof arg, "--verbose=%s", texts[i]);
        struct run r = RUN(&c, arg);
        cr_assert_eq(r.res, WARD_CONFIG_OK, "%s", arg);
        cr_assert_eq(c.verbose, want[i], "%s", arg);
        run_free(&r);
    }
}

Test(config, flag_wins_over_environment_which_wins_over_default)
{
    struct cfg c;
    cfg_init(&c);
    setenv("WT_PORT", "7000", 1);
    setenv("WT_LISTEN", "10.0.0.1:1", 1);
    setenv("WT_DRAIN_TIMEOUT", "250ms", 1);
    setenv("WT_LOG_LEVEL", "warn", 1);
    struct run r = RUN(&c, "--port", "7001");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_eq(c.port, 7001);
    cr_assert_str_eq(c.listen, "10.0.0.1:1");
    cr_assert_eq(c.drain, 250000000);
    cr_assert_eq(c.level, WARD_LOG_WARN);
    cr_assert_eq(c.body, 1048576, "unset variable keeps the default");
    run_free(&r);
}

Test(config, empty_environment_variable_is_ignored)
{
    struct cfg c;
    cfg_init(&c);
    setenv("WT_PORT", "", 1);
    struct run r = run_argv(&c, (const char *const[]){NULL});
    cr_assert_eq(r.res, WARD_CONFIG_OK);
    cr_assert_eq(c.port, 8080);
    run_free(&r);
}

Test(config, bad_environment_value_is_a_usage_error_naming_the_variable)
{
    struct cfg c;
    cfg_init(&c);
    setenv("WT_DRAIN_TIMEOUT", "5x", 1);
    struct run r = run_argv(&c, (const char *const[]){NULL});
    cr_assert_eq(r.res, WARD_CONFIG_USAGE);
    cr_assert_str_eq(r.err, "svc: WT_DRAIN_TIMEOUT (--drain-timeout): invalid duration \"5x\" "
                            "(use e.g. 500ms, 2s, 1m)\nsvc: try --help\n");
    run_free(&r);
}

Test(config, bad_environment_value_is_ignored_when_the_flag_is_given)
{
    struct cfg c;
    cfg_init(&c);
    setenv("WT_DRAIN_TIMEOUT", "5x", 1);
    struct run r = RUN(&c, "--drain-timeout=2s");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_eq(c.drain, INT64_C(2000000000));
    run_free(&r);
}

/* Each usage error: the arguments and the exact first line on err. */
static const struct {
    const char *args[4];
    const char *line;
} usage_cases[] = {
    {{"--drain-timeout", "5x"},
     "svc: --drain-timeout: invalid duration \"5x\" (use e.g. 500ms, 2s, 1m)\n"},
    {{"--bogus"}, "svc: --bogus: unknown flag\n"},
    {{"--bogus=1"}, "svc: --bogus: unknown flag\n"},
    {{"-x"}, "svc: -x: unknown flag\n"},
    {{"--port"}, "svc: --port: missing value\n"},
    {{"--port", "--verbose"}, "svc: --port: missing value\n"},
    {{"--port", "abc"}, "svc: --port: invalid integer \"abc\"\n"},
    {{"--port", " 1"}, "svc: --port: invalid integer \" 1\"\n"},
    {{"--port="}, "svc: --port: invalid integer \"\"\n"},
    {{"--port", "99999999999999999999"}, "svc: --port: \"99999999999999999999\" is too large\n"},
    {{"--port", "0"}, "svc: --port: \"0\" is out of range (1..65535)\n"},
    {{"--port", "65536"}, "svc: --port: \"65536\" is out of range (1..65535)\n"},
    {{"--drain-timeout", "2h"}, "svc: --drain-timeout: \"2h\" is out of range (0s..1h)\n"},
    {{"--drain-timeout", "9999999999h"}, "svc: --drain-timeout: \"9999999999h\" is too large\n"},
    {{"--max-body", "1x"}, "svc: --max-body: invalid size \"1x\" (use e.g. 4096, 64k, 1m)\n"},
    {{"--verbose=maybe"}, "svc: --verbose: invalid boolean \"maybe\" (use true or false)\n"},
    {{"--verbose", "false"}, "svc: unexpected argument \"false\"\n"},
    {{"--log-level", "loud"},
     "svc: --log-level: invalid log level \"loud\" (use debug, info, warn, error or off)\n"},
    {{"extra"}, "svc: unexpected argument \"extra\"\n"},
    {{"-"}, "svc: unexpected argument \"-\"\n"},
    {{"--", "extra"}, "svc: unexpected argument \"extra\"\n"},
};

Test(config, every_usage_error_names_the_flag_and_hints_at_help)
{
    for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
        struct cfg c;
        char want[256];
        cfg_init(&c);
        struct run r = run_argv(&c, usage_cases[i].args);
        cr_assert_eq(r.res, WARD_CONFIG_USAGE, "case %zu", i);
        snprintf(want, sizeof want, "%ssvc: try --help\n", usage_cases[i].line);
        cr_assert_str_eq(r.err, want, "case %zu", i);
        cr_assert_str_eq(r.out, "", "case %zu", i);
        run_free(&r);
    }
}

Test(config, double_dash_alone_ends_flags)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = RUN(&c, "--port", "1", "--");
    cr_assert_eq(r.res, WARD_CONFIG_OK);
    cr_assert_eq(c.port, 1);
    run_free(&r);
}

Test(config, bounds_are_inclusive)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = RUN(&c, "--port", "65535", "--drain-timeout", "1h");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_eq(c.port, 65535);
    cr_assert_eq(c.drain, INT64_C(3600000000000));
    run_free(&r);
    cfg_init(&c);
    r = RUN(&c, "--port", "1", "--drain-timeout", "0");
    cr_assert_eq(r.res, WARD_CONFIG_OK, "err: %s", r.err);
    cr_assert_eq(c.port, 1);
    cr_assert_eq(c.drain, 0);
    run_free(&r);
}

Test(config, help_lists_every_flag_env_and_rendered_default)
{
    struct cfg c;
    cfg_init(&c);
    c.drain = 500000000;
    struct run r = RUN(&c, "--port", "5", "--help");
    cr_assert_eq(r.res, WARD_CONFIG_EXIT);
    cr_assert_str_eq(r.err, "");
    cr_assert_str_eq(
        r.out,
        "usage: svc [flags]\n\nflags:\n"
        "  --listen string\n      address to listen on (env WT_LISTEN, default \"0.0.0.0:8080\")\n"
        "  --port int\n      TCP port (env WT_PORT, default 8080, range 1..65535)\n"
        "  --drain-timeout duration\n      how long to drain (env WT_DRAIN_TIMEOUT, default 500ms, "
        "range 0s..1h)\n"
        "  --max-body size\n      largest body (env WT_MAX_BODY, default 1m)\n"
        "  --verbose\n      say more (no env, default false)\n"
        "  --log-level level\n      least level logged (env WT_LOG_LEVEL, default info)\n"
        "  -h, --help\n      show this help and exit\n"
        "  --version\n      show the version and exit\n");
    cr_assert_eq(c.port, 8080, "--help exits before anything is stored");
    run_free(&r);
}

Test(config, short_help_is_help_and_defaults_render_in_their_units)
{
    struct cfg c;
    cfg_init(&c);
    c.drain = 90 * INT64_C(1000000000);
    c.body = 1000;
    struct run r = RUN(&c, "-h");
    cr_assert_eq(r.res, WARD_CONFIG_EXIT);
    cr_assert(strstr(r.out, "default 1m30s,") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "default 1000)") != NULL, "%s", r.out);
    run_free(&r);
}

Test(config, version_prints_prog_and_version)
{
    struct cfg c;
    cfg_init(&c);
    struct run r = RUN(&c, "--version");
    cr_assert_eq(r.res, WARD_CONFIG_EXIT);
    cr_assert_str_eq(r.out, "svc 1.2.3\n");
    cr_assert_str_eq(r.err, "");
    run_free(&r);
}

static const struct {
    const char *text;
    enum ward_err rc;
    int64_t ns;
} durations[] = {
    {"500ms", WARD_ERR_OK, 500000000},
    {"2s", WARD_ERR_OK, 2000000000},
    {"1m", WARD_ERR_OK, 60000000000},
    {"1h", WARD_ERR_OK, 3600000000000},
    {"1.5s", WARD_ERR_OK, 1500000000},
    {"0.25ms", WARD_ERR_OK, 250000},
    {"1.5ns", WARD_ERR_OK, 1},
    {"1.0000000019s", WARD_ERR_OK, 1000000001},
    {"0.1h", WARD_ERR_OK, 360000000000},
    {"10us", WARD_ERR_OK, 10000},
    {"7ns", WARD_ERR_OK, 7},
    {"1m30s", WARD_ERR_OK, 90000000000},
    {"1h2m3.5s", WARD_ERR_OK, 3723500000000},
    {"0", WARD_ERR_OK, 0},
    {"0s", WARD_ERR_OK, 0},
    {"9223372036854775807ns", WARD_ERR_OK, INT64_MAX},
    {"2562047h47m16.854775807s", WARD_ERR_OK, INT64_MAX},
    {"9223372036854775808ns", WARD_ERR_OVERFLOW, 0},
    {"2562048h", WARD_ERR_OVERFLOW, 0},
    {"2562047h47m16.854775808s", WARD_ERR_OVERFLOW, 0},
    {"", WARD_ERR_SYNTAX, 0},
    {"-1s", WARD_ERR_SYNTAX, 0},
    {"+1s", WARD_ERR_SYNTAX, 0},
    {"5x", WARD_ERR_SYNTAX, 0},
    {"5", WARD_ERR_SYNTAX, 0},
    {"00", WARD_ERR_SYNTAX, 0},
    {"s", WARD_ERR_SYNTAX, 0},
    {"1.s", WARD_ERR_SYNTAX, 0},
    {".5s", WARD_ERR_SYNTAX, 0},
    {"1S", WARD_ERR_SYNTAX, 0},
    {" 1s", WARD_ERR_SYNTAX, 0},
    {"1s ", WARD_ERR_SYNTAX, 0},
    {"1h30", WARD_ERR_SYNTAX, 0},
};

Test(config, duration_table)
{
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        int64_t ns = -42;
        enum ward_err rc = ward_duration_parse(durations[i].text, &ns);
        cr_assert_eq(rc, durations[i].rc, "\"%s\": rc %d", durations[i].text, rc);
        if (rc == WARD_ERR_OK)
            cr_assert_eq(ns, durations[i].ns, "\"%s\": %lld", durations[i].text, (long long)ns);
        else
            cr_assert_eq(ns, -42, "\"%s\": output untouched on error", durations[i].text);
    }
}

static const struct {
    const char *text;
    enum ward_err rc;
    int64_t bytes;
} sizes[] = {
    {"0", WARD_ERR_OK, 0},
    {"1048576", WARD_ERR_OK, 1048576},
    {"64k", WARD_ERR_OK, 65536},
    {"64K", WARD_ERR_OK, 65536},
    {"1m", WARD_ERR_OK, 1048576},
    {"1M", WARD_ERR_OK, 1048576},
    {"2g", WARD_ERR_OK, 2147483648},
    {"9223372036854775807", WARD_ERR_OK, INT64_MAX},
    {"8589934591g", WARD_ERR_OK, INT64_C(8589934591) << 30},
    {"8589934592g", WARD_ERR_OVERFLOW, 0},
    {"9223372036854775808", WARD_ERR_OVERFLOW, 0},
    {"", WARD_ERR_SYNTAX, 0},
    {"k", WARD_ERR_SYNTAX, 0},
    {"-1", WARD_ERR_SYNTAX, 0},
    {"1.5m", WARD_ERR_SYNTAX, 0},
    {"1kb", WARD_ERR_SYNTAX, 0},
    {"1t", WARD_ERR_SYNTAX, 0},
    {" 1", WARD_ERR_SYNTAX, 0},
};

Test(config, size_table)
{
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int64_t b = -42;
        enum ward_err rc = ward_size_parse(sizes[i].text, &b);
        cr_assert_eq(rc, sizes[i].rc, "\"%s\": rc %d", sizes[i].text, rc);
        if (rc == WARD_ERR_OK)
            cr_assert_eq(b, sizes[i].bytes, "\"%s\": %lld", sizes[i].text, (long long)b);
        else
            cr_assert_eq(b, -42, "\"%s\": output untouched on error", sizes[i].text);
    }
}
