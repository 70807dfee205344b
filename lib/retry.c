/* retry.c — backoff with jitter, the retry classifier, Retry-After parsing and the
 * retry plan; pure functions over caller-owned values. */
#include <ward/retry.h>

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <ward/clock.h>

#include "random.h"

#define DEFAULT_MAX_ATTEMPTS 3
#define DEFAULT_BASE (100 * WARD_NS_PER_MS)
#define DEFAULT_MULTIPLIER 2.0
#define DEFAULT_CAP (10 * WARD_NS_PER_S)
#define DEFAULT_MAX_RETRY_AFTER (60 * WARD_NS_PER_S)

/* RFC 9110 §9.2.2: the methods whose repetition has the effect of one request. */
static const char *const idempotent_methods[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS",
                                                 "TRACE"};

static const char *const verdict_names[] = {
    [WARD_RETRY_YES] = "retry",
    [WARD_RETRY_STOP_SUCCESS] = "success",
    [WARD_RETRY_STOP_STATUS] = "status",
    [WARD_RETRY_STOP_NOT_IDEMPOTENT] = "not_idempotent",
    [WARD_RETRY_STOP_REJECTED] = "rejected",
    [WARD_RETRY_STOP_ERROR] = "error",
    [WARD_RETRY_STOP_ATTEMPTS] = "attempts",
    [WARD_RETRY_STOP_RETRY_AFTER] = "retry_after",
    [WARD_RETRY_STOP_DEADLINE] = "deadline",
};

void ward_retry_policy_default(struct ward_retry_policy *p)
{
    *p = (struct ward_retry_policy){
        .max_attempts = DEFAULT_MAX_ATTEMPTS,
        .base_ns = DEFAULT_BASE,
        .multiplier = DEFAULT_MULTIPLIER,
        .cap_ns = DEFAULT_CAP,
        .jitter = WARD_RETRY_JITTER_FULL,
        .max_retry_after_ns = DEFAULT_MAX_RETRY_AFTER,
    };
}

enum ward_err ward_retry_policy_check(const struct ward_retry_policy *p)
{
    if (p == NULL || p->max_attempts < 1 || p->base_ns <= 0 || p->cap_ns < p->base_ns ||
        !isfinite(p->multiplier) || p->multiplier < 1.0 || p->max_retry_after_ns < 0)
        return WARD_ERR_INVAL;
    switch (p->jitter) {
    case WARD_RETRY_JITTER_FULL:
    case WARD_RETRY_JITTER_EQUAL:
    case WARD_RETRY_JITTER_DECORRELATED:
    case WARD_RETRY_JITTER_NONE:
        return WARD_ERR_OK;
    }
    return WARD_ERR_INVAL;
}

/* splitmix64: one multiply-xorshift step per number, good enough to spread retries. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void ward_retry_rng_seed(struct ward_retry_rng *rng, uint64_t seed)
{
    rng->next = NULL;
    rng->arg = NULL;
    rng->state = seed;
}

void ward_retry_state_init(struct ward_retry_state *st)
{
    st->attempts = 0;
    st->last_delay_ns = 0;
    ward_retry_rng_seed(&st->rng, ward__random_u64());
}

/* Uniform in [lo, hi] (0 <= lo <= hi, so span + 1 cannot wrap). The modulo's bias is
 * below span / 2^64, under 1e-9 for any delay up to hours: invisible next to network noise. */
static int64_t uniform(struct ward_retry_rng *rng, int64_t lo, int64_t hi)
{
    uint64_t r = rng->next != NULL ? rng->next(rng->arg) : splitmix(&rng->state);
    uint64_t span = (uint64_t)hi - (uint64_t)lo;

    return lo + (int64_t)(r % (span + 1));
}

/* min(cap, base × multiplier^(attempt − 1)); doubles only size the curve, and anything
 * not below cap (infinity and NaN included) is cap. */
static int64_t exponential(const struct ward_retry_policy *p, uint32_t attempt)
{
    double d = (double)p->base_ns * pow(p->multiplier, (double)(attempt - 1));

    if (!(d < (double)p->cap_ns))
        return p->cap_ns;
    if (d < 0)
        return 0;
    return (int64_t)d;
}

int64_t ward_retry_next_delay(const struct ward_retry_policy *p, uint32_t attempt, int64_t prev_ns,
                              struct ward_retry_rng *rng)
{
    int64_t d;
    int64_t hi;

    if (attempt == 0)
        attempt = 1;
    switch (p->jitter) {
    case WARD_RETRY_JITTER_DECORRELATED:
        if (prev_ns < p->base_ns)
            prev_ns = p->base_ns;
        if (__builtin_mul_overflow(prev_ns, 3, &hi))
            hi = INT64_MAX;
        d = uniform(rng, p->base_ns, hi);
        if (d > p->cap_ns)
            d = p->cap_ns;
        break;
    case WARD_RETRY_JITTER_EQUAL:
        d = exponential(p, attempt);
        d = d / 2 + uniform(rng, 0, d - d / 2);
        break;
    case WARD_RETRY_JITTER_NONE:
        d = exponential(p, attempt);
        break;
    case WARD_RETRY_JITTER_FULL:
    default:
        d = uniform(rng, 0, exponential(p, attempt));
        break;
    }
    return d;
}

bool ward_retry_idempotent(const char *method)
{
    if (method == NULL)
        return false;
    for (size_t i = 0; i < sizeof idempotent_methods / sizeof idempotent_methods[0]; i++) {
        if (strcmp(method, idempotent_methods[i]) == 0)
            return true;
    }
    return false;
}

/* The errors by which a local primitive refuses a request before it is sent. */
static bool is_rejection(enum ward_err err)
{
    return err == WARD_ERR_OPEN || err == WARD_ERR_TOO_MANY_REQUESTS ||
           err == WARD_ERR_RATE_LIMITED || err == WARD_ERR_BULKHEAD_FULL ||
           err == WARD_ERR_BUDGET_EXHAUSTED;
}

/* 429 asks to come back later; 502, 503 and 504 say the server behind did not answer
 * (Envoy's gateway-error condition). 500 and 501 are the server's own verdict on this
 * request and would repeat. */
static bool retryable_status(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

enum ward_retry_verdict ward_retry_classify(const struct ward_retry_outcome *o)
{
    switch (o->cause) {
    case WARD_RETRY_CAUSE_LOCAL:
        if (is_rejection(o->err))
            return WARD_RETRY_STOP_REJECTED;
        return o->err == WARD_ERR_DEADLINE ? WARD_RETRY_STOP_DEADLINE : WARD_RETRY_STOP_ERROR;
    case WARD_RETRY_CAUSE_RESPONSE:
        if (o->status >= 100 && o->status < 400)
            return WARD_RETRY_STOP_SUCCESS;
        if (!retryable_status(o->status))
            return WARD_RETRY_STOP_STATUS;
        break;
    case WARD_RETRY_CAUSE_CONNECT:
    case WARD_RETRY_CAUSE_DNS:
    case WARD_RETRY_CAUSE_RESET:
    case WARD_RETRY_CAUSE_TIMEOUT:
        break;
    default:
        return WARD_RETRY_STOP_ERROR;
    }
    if (!o->idempotency_key && !ward_retry_idempotent(o->method))
        return WARD_RETRY_STOP_NOT_IDEMPOTENT;
    return WARD_RETRY_YES;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* delay-seconds: 1*DIGIT, saturating rather than wrapping. NULL when s is not that. */
static const char *parse_seconds(const char *s, int64_t *ns)
{
    int64_t secs = 0;

    if (*s < '0' || *s > '9')
        return NULL;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (secs <= INT64_MAX / 10)
            secs = secs * 10 + (*s - '0');
        else
            secs = INT64_MAX;
    }
    if (__builtin_mul_overflow(secs, WARD_NS_PER_S, ns))
        *ns = INT64_MAX;
    return s;
}

/* RFC 9110 §5.6.7: an rfc850-date year more than 50 years in the future is the most
 * recent past year with the same last two digits. */
static void fix_two_digit_year(struct tm *tm, int64_t wall_now_ns)
{
    time_t now = (time_t)(wall_now_ns / WARD_NS_PER_S);
    struct tm cur;
    int this_year;
    int year;

    if (gmtime_r(&now, &cur) == NULL)
        return;
    this_year = cur.tm_year + 1900;
    year = this_year - this_year % 100 + (tm->tm_year + 1900) % 100;
    if (year > this_year + 50)
        year -= 100;
    tm->tm_year = year - 1900;
}

/* An HTTP-date in any of the three forms RFC 9110 makes recipients accept, as Unix
 * seconds. NULL when s is none of them. */
static const char *parse_http_date(const char *s, int64_t wall_now_ns, time_t *t)
{
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* obsolete RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* obsolete asctime */
    };
    const char *end = NULL;
    struct tm tm;

    for (size_t i = 0; i < sizeof formats / sizeof formats[0] && end == NULL; i++) {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, formats[i], &tm);
        if (end != NULL && i == 1)
            fix_two_digit_year(&tm, wall_now_ns);
        if (end != NULL && *skip_blanks(end) != '\0')
            end = NULL;
    }
    if (end != NULL)
        *t = timegm(&tm);
    return end;
}

enum ward_err ward_retry_after_parse(const char *text, int64_t wall_now_ns, int64_t *delay_ns)
{
    const char *s;
    const char *end;
    int64_t ns = 0;
    int64_t date_ns;
    time_t t = 0;

    if (text == NULL || delay_ns == NULL)
        return WARD_ERR_INVAL;
    s = skip_blanks(text);
    end = parse_seconds(s, &ns);
    if (end != NULL) {
        if (*skip_blanks(end) != '\0')
            return WARD_ERR_SYNTAX;
        *delay_ns = ns;
        return WARD_ERR_OK;
    }
    if (parse_http_date(s, wall_now_ns, &t) == NULL)
        return WARD_ERR_SYNTAX;
    if (__builtin_mul_overflow((int64_t)t, WARD_NS_PER_S, &date_ns))
        date_ns = t > 0 ? INT64_MAX : INT64_MIN;
    if (date_ns <= wall_now_ns)
        *delay_ns = 0;
    else if (__builtin_sub_overflow(date_ns, wall_now_ns, delay_ns))
        *delay_ns = INT64_MAX;
    return WARD_ERR_OK;
}

/* The server's Retry-After as a delay; false when absent or unparsable (then ignored). */
static bool retry_after_of(const struct ward_retry_outcome *o, int64_t *ra)
{
    int64_t wall;

    if (o->cause != WARD_RETRY_CAUSE_RESPONSE || o->retry_after == NULL)
        return false;
    wall = o->wall_now_ns != 0 ? o->wall_now_ns : ward_clock_wall();
    return ward_retry_after_parse(o->retry_after, wall, ra) == WARD_ERR_OK;
}

enum ward_retry_verdict ward_retry_plan(const struct ward_retry_policy *p,
                                        const struct ward_retry_outcome *o,
                                        struct ward_retry_state *st, int64_t now_ns,
                                        int64_t deadline_ns, int64_t *delay_ns)
{
    enum ward_retry_verdict v;
    int64_t d = 0;
    int64_t ra = 0;
    int64_t start;

    if (st->attempts < UINT32_MAX)
        st->attempts++;
    v = ward_retry_classify(o);
    if (v != WARD_RETRY_YES)
        goto out;
    if (st->attempts >= p->max_attempts) {
        v = WARD_RETRY_STOP_ATTEMPTS;
        goto out;
    }
    d = ward_retry_next_delay(p, st->attempts, st->last_delay_ns, &st->rng);
    if (retry_after_of(o, &ra)) {
        if (ra > p->max_retry_after_ns) {
            v = WARD_RETRY_STOP_RETRY_AFTER;
            goto out;
        }
        if (ra > d)
            d = ra;
    }
    if (__builtin_add_overflow(now_ns, d, &start))
        start = INT64_MAX;
    if (start >= deadline_ns) {
        v = WARD_RETRY_STOP_DEADLINE;
        goto out;
    }
    st->last_delay_ns = d;
out:
    *delay_ns = v == WARD_RETRY_YES ? d : 0;
    return v;
}

const char *ward_retry_verdict_name(enum ward_retry_verdict v)
{
    if ((unsigned)v >= sizeof verdict_names / sizeof verdict_names[0])
        return "unknown";
    return verdict_names[v];
}
