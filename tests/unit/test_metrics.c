/* test_metrics.c — unit tests of the metrics registry and its Prometheus text format. */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ward/metrics.h>

/* Renders reg, checks the reported length and returns the text (caller frees). */
static char *render(struct ward_metrics *reg)
{
    size_t len = 0;
    char *text = ward_metrics_render(reg, &len);
    cr_assert_not_null(text);
    cr_assert_eq(len, strlen(text));
    return text;
}

static void expect_render(struct ward_metrics *reg, const char *want)
{
    char *text = render(reg);
    cr_assert_str_eq(text, want);
    free(text);
}

Test(metrics, counter_adds_up)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *fam = ward_metrics_counter(reg, "jobs_total", "Jobs run.", 0, NULL);
    struct ward_metric *m = ward_metric_get(fam, NULL);
    cr_assert_not_null(m);
    ward_counter_inc(m);
    ward_counter_add(m, 41);
    cr_assert_eq(ward_metric_value(m), 42.0);
    expect_render(reg, "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 42\n");
    ward_metrics_free(reg);
}

Test(metrics, gauge_sets_and_adds)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric *m =
        ward_metric_get(ward_metrics_gauge(reg, "pool_size", "Pool size.", 0, NULL), NULL);
    ward_gauge_set(m, 10);
    ward_gauge_add(m, -2.5);
    cr_assert_eq(ward_metric_value(m), 7.5);
    ward_gauge_add(m, 0.5);
    expect_render(reg, "# HELP pool_size Pool size.\n# TYPE pool_size gauge\npool_size 8\n");
    ward_metrics_free(reg);
}

Test(metrics, small_registry_renders_exactly)
{
    static const char *const req_labels[] = {"method", "code"};
    static const char *const route[] = {"route"};
    static const double bounds[] = {0.1, 0.5, 1};
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *req =
        ward_metrics_counter(reg, "http_requests_total", "Requests handled.", 2, req_labels);
    struct ward_metric_family *inflight =
        ward_metrics_gauge(reg, "inflight_requests", "Requests in flight.", 0, NULL);
    struct ward_metric_family *dur = ward_metrics_histogram(reg, "request_duration_seconds",
                                                            "Time to answer.", 1, route, bounds, 3);
    cr_assert(req && inflight && dur);
    ward_counter_add(ward_metric_get(req, (const char *const[]){"GET", "200"}), 3);
    ward_counter_inc(ward_metric_get(req, (const char *const[]){"POST", "500"}));
    ward_gauge_set(ward_metric_get(inflight, NULL), 2.5);
    struct ward_metric *a = ward_metric_get(dur, (const char *const[]){"/a"});
    ward_histogram_observe(a, 0.0625);
    ward_histogram_observe(a, 0.25);
    ward_histogram_observe(a, 0.5);
    ward_histogram_observe(a, 2);
    cr_assert_eq(ward_metric_value(a), 4.0, "a histogram's value is its count");
    expect_render(reg, "# HELP http_requests_total Requests handled.\n"
                       "# TYPE http_requests_total counter\n"
                       "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                       "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                       "# HELP inflight_requests Requests in flight.\n"
                       "# TYPE inflight_requests gauge\n"
                       "inflight_requests 2.5\n"
                       "# HELP request_duration_seconds Time to answer.\n"
                       "# TYPE request_duration_seconds histogram\n"
                       "request_duration_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n"
                       "request_duration_seconds_bucket{route=\"/a\",le=\"0.5\"} 3\n"
                       "request_duration_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
                       "request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                       "request_duration_seconds_sum{route=\"/a\"} 2.8125\n"
                       "request_duration_seconds_count{route=\"/a\"} 4\n");
    ward_metrics_free(reg);
}

Test(metrics, unlabelled_families_render_zero_before_any_update)
{
    struct ward_metrics *reg = ward_metrics_new();
    cr_assert_not_null(ward_metrics_counter(reg, "a_total", "A.", 0, NULL));
    cr_assert_not_null(ward_metrics_histogram(reg, "b_seconds", "B.", 0, NULL, NULL, 0));
    cr_assert_not_null(ward_metrics_counter(reg, "c_total", "C.", 1, (const char *const[]){"x"}));
    expect_render(reg, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
                       "# HELP b_seconds B.\n# TYPE b_seconds histogram\n"
                       "b_seconds_bucket{le=\"0.005\"} 0\nb_seconds_bucket{le=\"0.01\"} 0\n"
                       "b_seconds_bucket{le=\"0.025\"} 0\nb_seconds_bucket{le=\"0.05\"} 0\n"
                       "b_seconds_bucket{le=\"0.1\"} 0\nb_seconds_bucket{le=\"0.25\"} 0\n"
                       "b_seconds_bucket{le=\"0.5\"} 0\nb_seconds_bucket{le=\"1\"} 0\n"
                       "b_seconds_bucket{le=\"2.5\"} 0\nb_seconds_bucket{le=\"5\"} 0\n"
                       "b_seconds_bucket{le=\"10\"} 0\nb_seconds_bucket{le=\"+Inf\"} 0\n"
                       "b_seconds_sum 0\nb_seconds_count 0\n"
                       "# HELP c_total C.\n# TYPE c_total counter\n");
    ward_metrics_free(reg);
}

Test(metrics, histogram_bucket_edges_are_inclusive_and_nan_goes_to_inf)
{
    static const double bounds[] = {1, 2};
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric *m =
        ward_metric_get(ward_metrics_histogram(reg, "h", "H.", 0, NULL, bounds, 2), NULL);
    struct ward_metric *n =
        ward_metric_get(ward_metrics_histogram(reg, "n", "N.", 0, NULL, bounds, 2), NULL);
    ward_histogram_observe(m, 1);
    ward_histogram_observe(m, 2);
    ward_histogram_observe(m, -5);
    ward_histogram_observe(m, 2.5);
    ward_histogram_observe(n, (double)NAN);
    expect_render(reg, "# HELP h H.\n# TYPE h histogram\n"
                       "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 3\nh_bucket{le=\"+Inf\"} 4\n"
                       "h_sum 0.5\nh_count 4\n"
                       "# HELP n N.\n# TYPE n histogram\n"
                       "n_bucket{le=\"1\"} 0\nn_bucket{le=\"2\"} 0\nn_bucket{le=\"+Inf\"} 1\n"
                       "n_sum NaN\nn_count 1\n");
    ward_metrics_free(reg);
}

Test(metrics, help_and_label_values_are_escaped)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *fam = ward_metrics_counter(
        reg, "esc_total", "line one\nback\\slash \"quoted\"", 1, (const char *const[]){"v"});
    ward_counter_inc(ward_metric_get(fam, (const char *const[]){"a\"b\\c\nd"}));
    expect_render(reg, "# HELP esc_total line one\\nback\\\\slash \"quoted\"\n"
                       "# TYPE esc_total counter\n"
                       "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    ward_metrics_free(reg);
}

Test(metrics, gauge_values_render_in_a_form_prometheus_parses)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {-3, "-3"},
        {1e15, "1e+15"},
        {123456789, "123456789"},
        {1e-05, "1e-05"},
        {1.0 / 3, "0.3333333333333333"},
        {(double)INFINITY, "+Inf"},
        {-(double)INFINITY, "-Inf"},
        {(double)NAN, "NaN"},
        {0.25, "0.25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ward_metrics *reg = ward_metrics_new();
        char want[128];
        ward_gauge_set(ward_metric_get(ward_metrics_gauge(reg, "g", "G.", 0, NULL), NULL),
                       cases[i].v);
        snprintf(want, sizeof want, "# HELP g G.\n# TYPE g gauge\ng %s\n", cases[i].text);
        expect_render(reg, want);
        ward_metrics_free(reg);
    }
}

Test(metrics, same_label_values_give_the_same_child)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *fam =
        ward_metrics_counter(reg, "x_total", "X.", 2, (const char *const[]){"a", "b"});
    struct ward_metric *m1 = ward_metric_get(fam, (const char *const[]){"ab", "c"});
    struct ward_metric *m2 = ward_metric_get(fam, (const char *const[]){"a", "bc"});
    cr_assert_neq(m1, m2);
    cr_assert_eq(ward_metric_get(fam, (const char *const[]){"ab", "c"}), m1);
    cr_assert_eq(ward_metric_get(fam, (const char *const[]){"a", "bc"}), m2);
    cr_assert_null(ward_metric_get(fam, NULL), "a labelled family needs values");
    cr_assert_null(ward_metric_get(fam, (const char *const[]){"a", NULL}));
    ward_metrics_free(reg);
}

Test(metrics, many_children_survive_table_growth_in_creation_order)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *fam =
        ward_metrics_gauge(reg, "g", "G.", 1, (const char *const[]){"i"});
    struct ward_metric *kids[1000];
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "%d", i);
        kids[i] = ward_metric_get(fam, (const char *const[]){name});
        cr_assert_not_null(kids[i]);
        ward_gauge_set(kids[i], i);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "%d", i);
        cr_assert_eq(ward_metric_get(fam, (const char *const[]){name}), kids[i], "child %d moved",
                     i);
    }
    char *text = render(reg);
    const char *p = strstr(text, "g{i=\"0\"} 0\ng{i=\"1\"} 1\ng{i=\"2\"} 2\n");
    cr_assert_not_null(p);
    cr_assert_not_null(strstr(p, "g{i=\"998\"} 998\ng{i=\"999\"} 999\n"));
    free(text);
    ward_metrics_free(reg);
}

Test(metrics, bad_names_are_rejected)
{
    static const double decreasing[] = {1, 0.5};
    static const double equal[] = {1, 1};
    static const double nan_bound[] = {(double)NAN};
    static const double inf_bound[] = {1, (double)INFINITY};
    struct ward_metrics *reg = ward_metrics_new();
    const char *const bad_metric[] = {"", "1abc", "a-b", "a b", "é"};
    const char *const bad_label[] = {"", "__name", "1x", "a:b", "a-b"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_null(ward_metrics_counter(reg, bad_metric[i], "h", 0, NULL), "%s", bad_metric[i]);
        cr_assert_null(ward_metrics_counter(reg, "ok_total", "h", 1, &bad_label[i]), "%s",
                       bad_label[i]);
    }
    cr_assert_null(ward_metrics_counter(reg, NULL, "h", 0, NULL));
    cr_assert_null(ward_metrics_counter(reg, "ok_total", "h", 1, NULL));
    cr_assert_null(ward_metrics_counter(reg, "ok_total", "h", 2, (const char *const[]){"a", "a"}));
    cr_assert_null(ward_metrics_histogram(reg, "h", "h", 1, (const char *const[]){"le"}, NULL, 0));
    cr_assert_null(ward_metrics_histogram(reg, "h", "h", 0, NULL, decreasing, 2));
    cr_assert_null(ward_metrics_histogram(reg, "h", "h", 0, NULL, equal, 2));
    cr_assert_null(ward_metrics_histogram(reg, "h", "h", 0, NULL, nan_bound, 1));
    cr_assert_null(ward_metrics_histogram(reg, "h", "h", 0, NULL, inf_bound, 2));
    cr_assert_not_null(ward_metrics_counter(reg, "a:b_total", "h", 1, (const char *const[]){"le"}),
                       "colons in metric names and le on a counter are fine");
    cr_assert_not_null(ward_metrics_gauge(reg, "_x", "h", 1, (const char *const[]){"_y"}));
    ward_metrics_free(reg);
}

Test(metrics, reregistration_returns_the_family_and_a_conflict_returns_null)
{
    static const double b1[] = {1, 2};
    static const double b2[] = {1, 3};
    struct ward_metrics *reg = ward_metrics_new();
    const char *const ab[] = {"a", "b"};
    const char *const ba[] = {"b", "a"};
    struct ward_metric_family *c = ward_metrics_counter(reg, "c_total", "C.", 2, ab);
    struct ward_metric_family *h = ward_metrics_histogram(reg, "h", "H.", 0, NULL, b1, 2);
    cr_assert_not_null(c);
    cr_assert_eq(ward_metrics_counter(reg, "c_total", "other help", 2, ab), c);
    cr_assert_null(ward_metrics_gauge(reg, "c_total", "C.", 2, ab), "other type");
    cr_assert_null(ward_metrics_counter(reg, "c_total", "C.", 2, ba), "other label order");
    cr_assert_null(ward_metrics_counter(reg, "c_total", "C.", 1, ab), "fewer labels");
    cr_assert_eq(ward_metrics_histogram(reg, "h", "H.", 0, NULL, b1, 2), h);
    cr_assert_null(ward_metrics_histogram(reg, "h", "H.", 0, NULL, b2, 2), "other buckets");
    cr_assert_null(ward_metrics_histogram(reg, "h", "H.", 0, NULL, NULL, 0),
                   "default buckets differ");
    cr_assert_null(ward_metrics_counter(reg, "h_count", "X.", 0, NULL),
                   "clashes with the histogram's samples");
    cr_assert_null(ward_metrics_gauge(reg, "h_bucket", "X.", 0, NULL));
    cr_assert_not_null(ward_metrics_gauge(reg, "q_sum", "X.", 0, NULL));
    cr_assert_null(ward_metrics_histogram(reg, "q", "X.", 0, NULL, NULL, 0), "q_sum is taken");
    ward_metrics_free(reg);
}

Test(metrics, updates_of_the_wrong_type_or_null_are_ignored)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric *c =
        ward_metric_get(ward_metrics_counter(reg, "c_total", "C.", 0, NULL), NULL);
    struct ward_metric *g = ward_metric_get(ward_metrics_gauge(reg, "g", "G.", 0, NULL), NULL);
    ward_gauge_set(c, 5);
    ward_gauge_add(c, 5);
    ward_histogram_observe(c, 5);
    ward_counter_inc(g);
    ward_counter_inc(NULL);
    ward_gauge_set(NULL, 1);
    ward_gauge_add(NULL, 1);
    ward_histogram_observe(NULL, 1);
    cr_assert_eq(ward_metric_value(c), 0.0);
    cr_assert_eq(ward_metric_value(g), 0.0);
    cr_assert_eq(ward_metric_value(NULL), 0.0);
    cr_assert_null(ward_metric_get(NULL, NULL));
    cr_assert_null(ward_metrics_counter(NULL, "c_total", "C.", 0, NULL));
    cr_assert_null(ward_metrics_render(NULL, NULL));
    cr_assert_eq(ward_metrics_on_collect(reg, NULL, NULL), WARD_ERR_INVAL);
    ward_metrics_free(reg);
    ward_metrics_free(NULL);
}

struct collect_state {
    int calls;
    struct ward_metric *uptime;
};

/* Refreshes a gauge, and registers a family on its first run (it holds no lock). */
static void collect(struct ward_metrics *reg, void *arg)
{
    struct collect_state *st = arg;
    st->calls++;
    ward_gauge_set(st->uptime, 100.0 * st->calls);
    if (st->calls == 1)
        cr_assert_not_null(ward_metrics_counter(reg, "late_total", "Late.", 0, NULL));
}

Test(metrics, collectors_run_before_every_render)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct collect_state st = {0, NULL};
    st.uptime = ward_metric_get(ward_metrics_gauge(reg, "uptime_seconds", "Up.", 0, NULL), NULL);
    cr_assert_eq(ward_metrics_on_collect(reg, collect, &st), WARD_ERR_OK);
    expect_render(reg,
                  "# HELP uptime_seconds Up.\n# TYPE uptime_seconds gauge\nuptime_seconds 100\n"
                  "# HELP late_total Late.\n# TYPE late_total counter\nlate_total 0\n");
    char *text = render(reg);
    cr_assert_not_null(strstr(text, "uptime_seconds 200\n"));
    cr_assert_eq(st.calls, 2);
    free(text);
    ward_metrics_free(reg);
}

Test(metrics, off_collect_stops_a_collector)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct collect_state st = {0, NULL};
    st.uptime = ward_metric_get(ward_metrics_gauge(reg, "uptime_seconds", "Up.", 0, NULL), NULL);
    cr_assert_eq(ward_metrics_on_collect(reg, collect, &st), WARD_ERR_OK);
    free(render(reg));
    cr_assert_eq(st.calls, 1);
    ward_metrics_off_collect(reg, collect, &st);
    ward_metrics_off_collect(reg, collect, &st); /* absent: no-op */
    free(render(reg));
    cr_assert_eq(st.calls, 1, "the collector ran after it was removed");
    ward_metrics_free(reg);
}

struct hammer {
    struct ward_metric_family *fam;
    struct ward_metric *counter;
    struct ward_metric *gauge;
    struct ward_metric *got[1000];
};

static void *hammer_counter(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 100000; i++) {
        ward_counter_inc(h->counter);
        ward_gauge_add(h->gauge, 1);
    }
    return NULL;
}

static void *hammer_get(void *arg)
{
    struct hammer *h = arg;
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "k%d", i % 50);
        h->got[i] = ward_metric_get(h->fam, (const char *const[]){"same", name});
    }
    return NULL;
}

Test(metrics, concurrent_increments_are_exact)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct hammer h = {0};
    pthread_t t[4];
    h.counter = ward_metric_get(ward_metrics_counter(reg, "n_total", "N.", 0, NULL), NULL);
    h.gauge = ward_metric_get(ward_metrics_gauge(reg, "g", "G.", 0, NULL), NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer_counter, &h), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(ward_metric_value(h.counter), 400000.0);
    cr_assert_eq(ward_metric_value(h.gauge), 400000.0);
    ward_metrics_free(reg);
}

Test(metrics, concurrent_get_or_create_makes_one_child_per_label_set)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *fam =
        ward_metrics_counter(reg, "k_total", "K.", 2, (const char *const[]){"a", "b"});
    static struct hammer h[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        h[i].fam = fam;
        cr_assert_eq(pthread_create(&t[i], NULL, hammer_get, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 1000; i++) {
        cr_assert_not_null(h[0].got[i]);
        for (int j = 1; j < 4; j++)
            cr_assert_eq(h[j].got[i], h[0].got[i], "thread %d, get %d", j, i);
        cr_assert_eq(h[0].got[i], h[0].got[i % 50]);
    }
    char *text = render(reg);
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 2 + 50, "HELP, TYPE and one line per child");
    free(text);
    ward_metrics_free(reg);
}

Test(metrics, promtool_accepts_the_rendered_text)
{
    static const char *const route[] = {"route", "method"};
    char path[] = "/tmp/ward_metrics_XXXXXX";
    char cmd[128];
    int fd;
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *req = ward_metrics_counter(
        reg, "http_requests_total", "Requests \"handled\"\nby route.", 1, route);
    struct ward_metric_family *dur = ward_metrics_histogram(reg, "http_request_duration_seconds",
                                                            "Time to answer.", 2, route, NULL, 0);
    cr_assert_eq(system("command -v promtool >/dev/null 2>&1"), 0,
                 "promtool not found: install it (Debian package prometheus) to run this test");
    ward_counter_inc(ward_metric_get(req, (const char *const[]){"/a\"b\\c\nd"}));
    ward_gauge_set(
        ward_metric_get(ward_metrics_gauge(reg, "inflight_requests", "In flight.", 0, NULL), NULL),
        -1.5);
    ward_histogram_observe(ward_metric_get(dur, (const char *const[]){"/pay", "POST"}), 0.042);
    ward_histogram_observe(ward_metric_get(dur, (const char *const[]){"/pay", "POST"}), 12);
    ward_histogram_observe(ward_metric_get(dur, (const char *const[]){"/health", "GET"}), 0.001);
    char *text = render(reg);
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int status = system(cmd);
    unlink(path);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "promtool check metrics failed (status %d) on:\n%s", status, text);
    free(text);
    ward_metrics_free(reg);
}
