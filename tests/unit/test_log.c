/* test_log.c — unit tests of the JSON-lines logger: format, levels, escaping,
 * truncation, flushing, concurrency and dropping when the output is too slow. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/log.h>

/* What one test wrote: every line, and each parsed. */
struct out {
    char *text;
    size_t nlines;
    char **lines;
    json_t **json;
};

static int mem_fd(void)
{
    int fd = memfd_create("ward-log-test", MFD_CLOEXEC);

    cr_assert_geq(fd, 0);
    return fd;
}

static char *read_fd(int fd)
{
    struct stat st;
    char *text;

    cr_assert_eq(fstat(fd, &st), 0);
    text = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(text);
    cr_assert_eq(pread(fd, text, (size_t)st.st_size, 0), st.st_size);
    text[st.st_size] = 0;
    return text;
}

/* Splits text into lines; each must end with '\n' and parse as one JSON object. */
static void parse_lines(struct out *o)
{
    size_t cap = 16;
    char *p = o->text;

    o->nlines = 0;
    o->lines = malloc(cap * sizeof *o->lines);
    o->json = malloc(cap * sizeof *o->json);
    while (*p != 0) {
        char *nl = strchr(p, '\n');
        json_error_t jerr;

        cr_assert_not_null(nl, "every line ends with a newline");
        *nl = 0;
        if (o->nlines == cap) {
            cap *= 2;
            o->lines = realloc(o->lines, cap * sizeof *o->lines);
            o->json = realloc(o->json, cap * sizeof *o->json);
        }
        o->lines[o->nlines] = p;
        o->json[o->nlines] = json_loads(p, JSON_REJECT_DUPLICATES, &jerr);
        cr_assert_not_null(o->json[o->nlines], "line %zu is not JSON: %s: %.200s", o->nlines,
                           jerr.text, p);
        cr_assert(json_is_object(o->json[o->nlines]));
        o->nlines++;
        p = nl + 1;
    }
}

/* Flushes and reads back everything log wrote to fd. */
static struct out collect(struct ward_log *log, int fd)
{
    struct out o = {0};

    ward_log_flush(log);
    o.text = read_fd(fd);
    parse_lines(&o);
    return o;
}

static void out_fini(struct out *o)
{
    for (size_t i = 0; i < o->nlines; i++)
        json_decref(o->json[i]);
    free(o->json);
    free(o->lines);
    free(o->text);
}

static const char *str_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    cr_assert(json_is_string(v), "member %s is not a string", key);
    return json_string_value(v);
}

/* Asserts the members of obj, in order, are exactly keys. */
static void assert_keys(json_t *obj, const char *const *keys, size_t n)
{
    size_t i = 0;

    for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        cr_assert_lt(i, n, "extra member %s", json_object_iter_key(it));
        cr_assert_str_eq(json_object_iter_key(it), keys[i]);
        i++;
    }
    cr_assert_eq(i, n);
}

Test(log, line_has_members_in_order_with_exact_values)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("zakat-service", WARD_LOG_DEBUG, fd);
    struct ward_log_ctx ctx = {.request_id = "req-1", .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"};
    static const char *const keys[] = {"ts", "level", "service", "msg", "request_id", "trace_id",
                                       "method", "status", "bytes", "ms", "ok", "big", "small"};
    struct out o;
    const char *ts;

    cr_assert_not_null(log);
    WARD_INFO(log, &ctx, "request done", WARD_S("method", "POST"), WARD_I("status", 201),
              WARD_I("bytes", -17), WARD_D("ms", 0.25), WARD_B("ok", true),
              WARD_I("big", INT64_MAX), WARD_I("small", INT64_MIN));
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 1);
    assert_keys(o.json[0], keys, sizeof keys / sizeof keys[0]);
    cr_assert_str_eq(str_member(o.json[0], "level"), "info");
    cr_assert_str_eq(str_member(o.json[0], "service"), "zakat-service");
    cr_assert_str_eq(str_member(o.json[0], "msg"), "request done");
    cr_assert_str_eq(str_member(o.json[0], "request_id"), "req-1");
    cr_assert_str_eq(str_member(o.json[0], "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(str_member(o.json[0], "method"), "POST");
    cr_assert_eq(json_integer_value(json_object_get(o.json[0], "status")), 201);
    cr_assert_eq(json_integer_value(json_object_get(o.json[0], "bytes")), -17);
    cr_assert(json_is_true(json_object_get(o.json[0], "ok")));
    cr_assert(strstr(o.lines[0], "\"ms\":0.25,") != NULL, "%s", o.lines[0]);
    cr_assert(strstr(o.lines[0], "\"big\":9223372036854775807,") != NULL);
    cr_assert(strstr(o.lines[0], "\"small\":-9223372036854775808}") != NULL);
    ts = str_member(o.json[0], "ts");
    cr_assert_eq(strlen(ts), 24, "%s", ts);
    for (size_t i = 0; i < 24; i++) {
        const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";

        if (shape[i] == 'd')
            cr_assert(ts[i] >= '0' && ts[i] <= '9', "%s", ts);
        else
            cr_assert_eq(ts[i], shape[i], "%s", ts);
    }
    cr_assert(strncmp(o.lines[0], "{\"ts\":\"", 7) == 0);
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, ts_is_the_current_utc_second)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    int64_t before = ward_clock_wall() / WARD_NS_PER_S;
    struct out o;
    struct tm tm = {0};
    int64_t at;

    WARD_INFO(log, NULL, "x");
    o = collect(log, fd);
    cr_assert_not_null(strptime(str_member(o.json[0], "ts"), "%Y-%m-%dT%H:%M:%S", &tm));
    at = (int64_t)timegm(&tm);
    cr_assert(at >= before && at <= ward_clock_wall() / WARD_NS_PER_S);
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, no_ctx_means_no_request_members)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    struct ward_log_ctx half = {.request_id = NULL, .trace_id = "t-1"};
    static const char *const bare[] = {"ts", "level", "service", "msg", "k"};
    static const char *const traced[] = {"ts", "level", "service", "msg", "trace_id"};
    struct out o;

    WARD_INFO(log, NULL, "a", WARD_S("k", "v"));
    WARD_INFO(log, &half, "b");
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 2);
    assert_keys(o.json[0], bare, 5);
    assert_keys(o.json[1], traced, 5);
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, null_string_value_is_json_null)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    struct out o;

    WARD_INFO(log, NULL, NULL, WARD_S("k", NULL));
    o = collect(log, fd);
    cr_assert_str_eq(str_member(o.json[0], "msg"), "");
    cr_assert(json_is_null(json_object_get(o.json[0], "k")));
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, doubles_read_back_exactly_and_non_finite_are_null)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    struct out o;

    WARD_INFO(log, NULL, "d", WARD_D("a", 0.1), WARD_D("b", 1.0 / 3.0), WARD_D("c", 1e300),
              WARD_D("d", -2.5e-8), WARD_D("n", NAN), WARD_D("i", INFINITY),
              WARD_D("m", -INFINITY), WARD_D("e", 0.123), WARD_D("f", -1234.000001),
              WARD_D("g", 123456789.25), WARD_D("h", 1e-7), WARD_D("j", 9007199254740993.0),
              WARD_D("z", 3.0));
    o = collect(log, fd);
    cr_assert(strstr(o.lines[0], "\"a\":0.1,") != NULL, "%s", o.lines[0]);
    cr_assert(strstr(o.lines[0], "\"e\":0.123,") != NULL, "%s", o.lines[0]);
    cr_assert(strstr(o.lines[0], "\"f\":-1234.000001,") != NULL, "%s", o.lines[0]);
    cr_assert(strstr(o.lines[0], "\"g\":123456789.25,") != NULL, "%s", o.lines[0]);
    cr_assert(strstr(o.lines[0], "\"z\":3}") != NULL, "%s", o.lines[0]);
    cr_assert_eq(json_number_value(json_object_get(o.json[0], "b")), 1.0 / 3.0);
    cr_assert_eq(json_number_value(json_object_get(o.json[0], "c")), 1e300);
    cr_assert_eq(json_number_value(json_object_get(o.json[0], "d")), -2.5e-8);
    cr_assert_eq(json_number_value(json_object_get(o.json[0], "h")), 1e-7);
    cr_assert_eq(json_number_value(json_object_get(o.json[0], "j")), 9007199254740993.0);
    cr_assert(json_is_null(json_object_get(o.json[0], "n")));
    cr_assert(json_is_null(json_object_get(o.json[0], "i")));
    cr_assert(json_is_null(json_object_get(o.json[0], "m")));
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, levels_below_the_threshold_are_filtered)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_WARN, fd);
    struct out o;

    WARD_DEBUG(log, NULL, "d");
    WARD_INFO(log, NULL, "i");
    WARD_WARN(log, NULL, "w");
    WARD_ERROR(log, NULL, "e");
    ward_log_write(log, WARD_LOG_INFO, NULL, "direct", WARD_KV_LAST);
    ward_log_set_level(log, WARD_LOG_DEBUG);
    WARD_DEBUG(log, NULL, "d2");
    ward_log_set_level(log, WARD_LOG_OFF);
    WARD_ERROR(log, NULL, "e2");
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 3);
    cr_assert_str_eq(str_member(o.json[0], "msg"), "w");
    cr_assert_str_eq(str_member(o.json[0], "level"), "warn");
    cr_assert_str_eq(str_member(o.json[1], "msg"), "e");
    cr_assert_str_eq(str_member(o.json[1], "level"), "error");
    cr_assert_str_eq(str_member(o.json[2], "msg"), "d2");
    cr_assert_str_eq(str_member(o.json[2], "level"), "debug");
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, enabled_follows_level_and_null_log_is_off)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);

    cr_assert_not(ward_log_enabled(NULL, WARD_LOG_ERROR));
    cr_assert_not(ward_log_enabled(log, WARD_LOG_DEBUG));
    cr_assert(ward_log_enabled(log, WARD_LOG_INFO));
    cr_assert(ward_log_enabled(log, WARD_LOG_ERROR));
    cr_assert_not(ward_log_enabled(log, WARD_LOG_OFF), "OFF is not a level to write at");
    WARD_ERROR(NULL, NULL, "nowhere");
    ward_log_flush(NULL);
    ward_log_set_level(NULL, WARD_LOG_DEBUG);
    ward_log_free(NULL);
    ward_log_free(log);
    close(fd);
}

static int evaluated;

static int64_t count_evaluation(void)
{
    return ++evaluated;
}

Test(log, macro_does_not_evaluate_arguments_when_disabled)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_WARN, fd);
    struct out o;

    evaluated = 0;
    WARD_INFO(log, NULL, "skipped", WARD_I("n", count_evaluation()));
    WARD_DEBUG(log, NULL, "skipped", WARD_I("n", count_evaluation()));
    WARD_INFO(NULL, NULL, "skipped", WARD_I("n", count_evaluation()));
    cr_assert_eq(evaluated, 0);
    WARD_WARN(log, NULL, "written", WARD_I("n", count_evaluation()));
    cr_assert_eq(evaluated, 1);
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 1);
    cr_assert_eq(json_integer_value(json_object_get(o.json[0], "n")), 1);
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, escaping_round_trips_the_exact_string)
{
    static const char nasty[] = "q\"uote b\\ack / nl\n cr\r tab\t bs\b ff\f ctl\x01\x1f del\x7f"
                                " \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc \"quoted\"\n", WARD_LOG_INFO, fd);
    struct out o;

    WARD_INFO(log, NULL, nasty, WARD_S("v", nasty), WARD_S("key \"with\"\tstuff", "x"));
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 1);
    cr_assert_str_eq(str_member(o.json[0], "msg"), nasty);
    cr_assert_str_eq(str_member(o.json[0], "v"), nasty);
    cr_assert_str_eq(str_member(o.json[0], "service"), "svc \"quoted\"\n");
    cr_assert_str_eq(str_member(o.json[0], "key \"with\"\tstuff"), "x");
    cr_assert(strstr(o.lines[0], "ctl\\u0001\\u001f del") != NULL, "%s", o.lines[0]);
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, ill_formed_utf8_becomes_replacement_characters)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    struct out o;

    /* lone continuation, truncated sequence, overlong '/', surrogate, above U+10FFFF, 0xff */
    WARD_INFO(log, NULL, "m", WARD_S("v", "a\x80" "b\xe2\x82" "c\xc0\xaf" "d\xed\xa0\x80"
                                          "e\xf4\x90\x80\x80" "f\xff"));
    o = collect(log, fd);
    cr_assert_str_eq(str_member(o.json[0], "v"),
                     "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                     "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                     "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "f\xef\xbf\xbd");
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

Test(log, line_longer_than_stack_buffer_is_whole)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    char *big = malloc(10001);
    struct out o;

    memset(big, 'y', 10000);
    big[10000] = 0;
    WARD_INFO(log, NULL, "big", WARD_S("v", big), WARD_I("after", 7));
    o = collect(log, fd);
    cr_assert_str_eq(str_member(o.json[0], "v"), big);
    cr_assert_eq(json_integer_value(json_object_get(o.json[0], "after")), 7);
    cr_assert_null(json_object_get(o.json[0], "truncated"));
    out_fini(&o);
    free(big);
    ward_log_free(log);
    close(fd);
}

Test(log, long_value_is_truncated_into_valid_json)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    const char *v;
    struct out o;

    for (size_t i = 0; i < n; i++)
        big[i] = i % 100 == 99 ? '"' : 'x';
    big[n] = 0;
    WARD_INFO(log, NULL, "huge", WARD_S("v", big), WARD_I("after", 7));
    o = collect(log, fd);
    cr_assert_eq(o.nlines, 1);
    cr_assert_leq(strlen(o.lines[0]) + 1, 64 * 1024);
    cr_assert_gt(strlen(o.lines[0]) + 1, 63 * 1024, "cut near 64 KiB, not earlier");
    v = str_member(o.json[0], "v");
    cr_assert_gt(strlen(v), 1000);
    cr_assert_lt(strlen(v), n);
    cr_assert(strncmp(v, big, strlen(v)) == 0, "the kept part is a prefix of the value");
    cr_assert_null(json_object_get(o.json[0], "after"), "members after the cut are dropped");
    cr_assert(json_is_true(json_object_get(o.json[0], "truncated")));
    out_fini(&o);
    free(big);
    ward_log_free(log);
    close(fd);
}

Test(log, long_key_is_dropped_whole)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    size_t n = 70 * 1024;
    char *key = malloc(n + 1);
    static const char *const keys[] = {"ts", "level", "service", "msg", "before", "truncated"};
    struct out o;

    memset(key, 'k', n);
    key[n] = 0;
    WARD_INFO(log, NULL, "m", WARD_I("before", 1), WARD_I(key, 2), WARD_I("after", 3));
    o = collect(log, fd);
    assert_keys(o.json[0], keys, sizeof keys / sizeof keys[0]);
    out_fini(&o);
    free(key);
    ward_log_free(log);
    close(fd);
}

Test(log, warn_is_written_before_write_returns)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_DEBUG, fd);
    struct stat st;
    char *text;

    WARD_INFO(log, NULL, "info first");
    WARD_WARN(log, NULL, "warned");
    cr_assert_eq(fstat(fd, &st), 0);
    text = read_fd(fd);
    cr_assert(strstr(text, "\"msg\":\"info first\"") != NULL, "%s", text);
    cr_assert(strstr(text, "\"msg\":\"warned\"") != NULL, "%s", text);
    free(text);
    ward_log_free(log);
    close(fd);
}

Test(log, a_batch_hands_its_lines_over_at_its_end_and_warnings_at_once)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_DEBUG, fd);
    struct ward_log *other = ward_log_new("other", WARD_LOG_DEBUG, fd);
    char *text;

    ward_log_batch_begin(log);
    WARD_INFO(log, NULL, "kept 1");
    WARD_DEBUG(log, NULL, "kept 2");
    WARD_INFO(other, NULL, "not this log's batch");
    ward_log_flush(other);
    WARD_WARN(log, NULL, "warned"); /* at once, ahead of the kept lines */
    text = read_fd(fd);
    cr_assert_null(strstr(text, "kept"), "kept lines out before the batch ended: %s", text);
    cr_assert_not_null(strstr(text, "\"msg\":\"warned\""), "%s", text);
    cr_assert_not_null(strstr(text, "not this log's batch"), "%s", text);
    free(text);
    for (int i = 0; i < 1000; i++) /* past the batch's 64 KiB: handed over as it fills */
        WARD_INFO(log, NULL, "filler", WARD_I("i", i), WARD_S("pad", "..................................................................."));
    ward_log_flush(log);
    text = read_fd(fd);
    cr_assert_not_null(strstr(text, "kept 1"), "a full batch goes, oldest lines first");
    free(text);
    ward_log_batch_end(log);
    struct out o = collect(log, fd);
    size_t k1 = SIZE_MAX, k2 = SIZE_MAX, last = SIZE_MAX;
    for (size_t i = 0; i < o.nlines; i++) {
        const char *msg = str_member(o.json[i], "msg");
        if (strcmp(msg, "kept 1") == 0)
            k1 = i;
        else if (strcmp(msg, "kept 2") == 0)
            k2 = i;
        else if (strcmp(msg, "filler") == 0)
            last = i;
    }
    cr_assert(k1 < k2 && k2 < last, "in the order written: %zu %zu %zu", k1, k2, last);
    cr_assert_eq(json_integer_value(json_object_get(o.json[last], "i")), 999);
    out_fini(&o);
    ward_log_batch_release();
    ward_log_free(other);
    ward_log_free(log);
    close(fd);
}

Test(log, free_writes_what_is_buffered)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    struct out o = {0};

    WARD_INFO(log, NULL, "last words");
    ward_log_free(log);
    o.text = read_fd(fd);
    parse_lines(&o);
    cr_assert_eq(o.nlines, 1);
    cr_assert_str_eq(str_member(o.json[0], "msg"), "last words");
    out_fini(&o);
    close(fd);
}

Test(log, level_parse_accepts_the_five_names_in_any_case)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    static const char *const bad[] = {"", "warning", "err", "infos", "trace", " info", "info "};
    enum ward_log_level upper = WARD_LOG_DEBUG;
    cr_assert_eq(ward_log_level_parse("INFO", &upper), WARD_ERR_OK);
    cr_assert_eq(upper, WARD_LOG_INFO);
    cr_assert_eq(ward_log_level_parse("Warn", &upper), WARD_ERR_OK);
    cr_assert_eq(upper, WARD_LOG_WARN);
    enum ward_log_level lv = WARD_LOG_INFO;

    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ward_log_level_parse(names[i], &lv), WARD_ERR_OK);
        cr_assert_eq((int)lv, i);
        cr_assert_str_eq(ward_log_level_name(lv), names[i]);
    }
    lv = WARD_LOG_ERROR;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(ward_log_level_parse(bad[i], &lv), WARD_ERR_INVAL, "%s", bad[i]);
        cr_assert_eq(lv, WARD_LOG_ERROR, "unchanged on failure");
    }
    cr_assert_eq(ward_log_level_parse(NULL, &lv), WARD_ERR_INVAL);
    cr_assert_eq(ward_log_level_parse("info", NULL), WARD_ERR_INVAL);
    cr_assert_str_eq(ward_log_level_name((enum ward_log_level)42), "unknown");
}

Test(log, new_rejects_bad_arguments)
{
    cr_assert_null(ward_log_new("svc", WARD_LOG_INFO, -1));
    cr_assert_null(ward_log_new("svc", (enum ward_log_level)9, 2));
}

enum { WRITERS = 8, PER_WRITER = 5000 };
#define MSG_CONCURRENT "concurrent line with some padding to make it longer"

struct writer_arg {
    struct ward_log *log;
    int id;
};

static void *write_many(void *p)
{
    const struct writer_arg *a = p;
    struct ward_log_ctx ctx = {.request_id = "r", .trace_id = NULL};

    for (int i = 0; i < PER_WRITER; i++)
        WARD_INFO(a->log, &ctx, MSG_CONCURRENT,
                  WARD_I("writer", a->id), WARD_I("seq", i), WARD_S("path", "/v1/zakat/quote"));
    return NULL;
}

/* Lines of o whose msg is msg; the others must be the logger's reports of dropped lines,
 * whose counts are added to *dropped. */
static json_int_t count_kept(const struct out *o, const char *msg, json_int_t *dropped)
{
    json_int_t kept = 0;

    *dropped = 0;
    for (size_t i = 0; i < o->nlines; i++) {
        if (strcmp(str_member(o->json[i], "msg"), msg) == 0) {
            kept++;
            continue;
        }
        cr_assert_str_eq(str_member(o->json[i], "msg"), "log lines dropped: output too slow");
        cr_assert_str_eq(str_member(o->json[i], "level"), "warn");
        *dropped += json_integer_value(json_object_get(o->json[i], "dropped"));
    }
    return kept;
}

Test(log, concurrent_writers_produce_whole_unmixed_lines)
{
    int fd = mem_fd();
    struct ward_log *log = ward_log_new("svc", WARD_LOG_INFO, fd);
    pthread_t th[WRITERS];
    struct writer_arg args[WRITERS];
    json_int_t last[WRITERS];
    json_int_t kept;
    json_int_t dropped;
    struct out o;

    for (int i = 0; i < WRITERS; i++) {
        last[i] = -1;
        args[i] = (struct writer_arg){.log = log, .id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, write_many, &args[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    o = collect(log, fd);
    /* Every line parsed whole; a line is only ever missing when the logger says so (the
     * writer thread starved of CPU for more than 10 ms on a loaded machine). */
    kept = count_kept(&o, MSG_CONCURRENT, &dropped);
    cr_assert_eq(kept + dropped, (json_int_t)WRITERS * PER_WRITER, "kept %lld dropped %lld",
                 (long long)kept, (long long)dropped);
    for (size_t i = 0; i < o.nlines; i++) {
        json_int_t w = json_integer_value(json_object_get(o.json[i], "writer"));
        json_int_t seq = json_integer_value(json_object_get(o.json[i], "seq"));

        if (json_object_get(o.json[i], "dropped") != NULL)
            continue;
        cr_assert(w >= 0 && w < WRITERS);
        cr_assert_gt(seq, last[w], "each writer's lines arrive in order");
        cr_assert_str_eq(str_member(o.json[i], "path"), "/v1/zakat/quote");
        last[w] = seq;
    }
    out_fini(&o);
    ward_log_free(log);
    close(fd);
}

struct drain {
    int fd;
    char *text;
    size_t len;
};

static void *drain_pipe(void *p)
{
    struct drain *d = p;
    size_t cap = 1 << 20;
    ssize_t r;

    d->text = malloc(cap);
    for (;;) {
        if (cap - d->len < 65536) {
            cap *= 2;
            d->text = realloc(d->text, cap);
        }
        r = read(d->fd, d->text + d->len, cap - d->len - 1);
        if (r <= 0)
            break;
        d->len += (size_t)r;
    }
    d->text[d->len] = 0;
    return NULL;
}

Test(log, info_lines_are_dropped_and_counted_when_the_output_stalls)
{
    enum { LINES = 8000 };
    int pfd[2];
    struct ward_log *log;
    struct drain d = {0};
    pthread_t reader;
    char pad[1001];
    struct out o = {0};
    json_int_t kept = 0;
    json_int_t dropped = 0;

    cr_assert_eq(pipe(pfd), 0);
    log = ward_log_new("svc", WARD_LOG_INFO, pfd[1]);
    memset(pad, 'p', 1000);
    pad[1000] = 0;
    /* Nobody reads yet: 8 MB of lines cannot all fit in the pipe and two 2 MiB buffers. */
    for (int i = 0; i < LINES; i++)
        WARD_INFO(log, NULL, "line", WARD_S("pad", pad));
    d.fd = pfd[0];
    cr_assert_eq(pthread_create(&reader, NULL, drain_pipe, &d), 0);
    ward_log_free(log);
    close(pfd[1]);
    pthread_join(reader, NULL);
    close(pfd[0]);
    o.text = d.text;
    parse_lines(&o);
    kept = count_kept(&o, "line", &dropped);
    cr_assert_gt(dropped, 0);
    cr_assert_eq(kept + dropped, LINES, "kept %lld + dropped %lld", (long long)kept,
                 (long long)dropped);
    out_fini(&o);
}
