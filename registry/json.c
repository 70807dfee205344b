/* json.c — Consul's wire conventions for ward-registry: Go durations, case-insensitive
 * member lookup, the JSON shapes of nodes, services and checks, and the plain-text
 * errors and ?pretty answers. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry.h"

/* Compares a JSON key with a canonical PascalCase name, ignoring case and '_'. */
static bool key_matches(const char *key, const char *canon)
{
    for (;;) {
        while (*key == '_')
            key++;
        if (*key == '\0' || *canon == '\0')
            return *key == *canon;
        if (tolower((unsigned char)*key) != tolower((unsigned char)*canon))
            return false;
        key++;
        canon++;
    }
}

json_t *reg_json_get(const json_t *obj, const char *canon)
{
    const char *key;
    json_t *value;
    if (!json_is_object(obj))
        return NULL;
    json_t *exact = json_object_get(obj, canon);
    if (exact != NULL)
        return exact;
    json_object_foreach((json_t *)(uintptr_t)obj, key, value) {
        if (key_matches(key, canon))
            return value;
    }
    return NULL;
}

/* One unit of Go's duration syntax; *len is its length in text. */
static int64_t unit_ns(const char *u, size_t *len)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1},
                 {"us", WARD_NS_PER_US},
                 {"\xc2\xb5s", WARD_NS_PER_US}, /* U+00B5 micro sign */
                 {"\xce\xbcs", WARD_NS_PER_US}, /* U+03BC Greek mu */
                 {"ms", WARD_NS_PER_MS},
                 {"s", WARD_NS_PER_S},
                 {"m", 60 * WARD_NS_PER_S},
                 {"h", 3600 * WARD_NS_PER_S}};
    size_t n = 0;
    while (u[n] != '\0' && u[n] != '.' && (u[n] < '0' || u[n] > '9'))
        n++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].name) == n && strncmp(u, units[i].name, n) == 0) {
            *len = n;
            return units[i].ns;
        }
    }
    return 0;
}

bool reg_duration_parse(const char *text, int64_t *ns)
{
    const char *p = text;
    int64_t total = 0;
    if (*p == '+')
        p++;
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return true;
    }
    if (*p == '\0')
        return false;
    while (*p != '\0') {
        int64_t whole = 0;
        uint64_t frac = 0, scale = 1;
        bool digits = false;
        while (*p >= '0' && *p <= '9') {
            if (__builtin_mul_overflow(whole, 10, &whole) ||
                __builtin_add_overflow(whole, *p - '0', &whole))
                return false;
            p++;
            digits = true;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (scale < UINT64_C(1000000000000000000)) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                p++;
                digits = true;
            }
        }
        size_t ulen = 0;
        int64_t unit = unit_ns(p, &ulen);
        if (!digits || unit == 0)
            return false;
        p += ulen;
        int64_t part;
        if (__builtin_mul_overflow(whole, unit, &part) ||
            __builtin_add_overflow(total, part, &total))
            return false;
        double f = (double)frac / (double)scale * (double)unit;
        if (__builtin_add_overflow(total, (int64_t)f, &total))
            return false;
    }
    *ns = total;
    return true;
}

/* Appends v / 10^prec with its fraction trimmed of trailing zeros. */
static size_t put_fixed(char *buf, size_t size, int64_t v, int prec, const char *unit)
{
    int64_t div = 1;
    for (int i = 0; i < prec; i++)
        div *= 10;
    int64_t whole = v / div, frac = v % div;
    char fr[24] = "";
    if (frac != 0) {
        snprintf(fr, sizeof fr, ".%0*lld", prec, (long long)frac);
        size_t n = strlen(fr);
        while (n > 0 && fr[n - 1] == '0')
            fr[--n] = '\0';
    }
    int w = snprintf(buf, size, "%lld%s%s", (long long)whole, fr, unit);
    return w > 0 ? (size_t)w : 0;
}

void reg_duration_format(int64_t ns, char *buf, size_t size)
{
    if (ns <= 0) {
        snprintf(buf, size, ns == 0 ? "0s" : "-");
        return;
    }
    if (ns < WARD_NS_PER_US) {
        snprintf(buf, size, "%lldns", (long long)ns);
    } else if (ns < WARD_NS_PER_MS) {
        put_fixed(buf, size, ns, 3, "\xc2\xb5s");
    } else if (ns < WARD_NS_PER_S) {
        put_fixed(buf, size, ns, 6, "ms");
    } else {
        int64_t h = ns / (3600 * WARD_NS_PER_S);
        int64_t m = ns / (60 * WARD_NS_PER_S) % 60;
        int64_t rest = ns % (60 * WARD_NS_PER_S);
        int w = 0;
        if (h > 0)
            w = snprintf(buf, size, "%lldh%lldm", (long long)h, (long long)m);
        else if (m > 0)
            w = snprintf(buf, size, "%lldm", (long long)m);
        if (w < 0 || (size_t)w >= size)
            return;
        put_fixed(buf + w, size - (size_t)w, rest, 9, "s");
    }
}

json_t *reg_json_node(const struct reg_state *st)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s}, s:i, s:i}", "ID",
                     st->node_id, "Node", REG_NODE, "Address", REG_NODE_ADDRESS, "Datacenter", REG_DC,
                     "TaggedAddresses", "lan", REG_NODE_ADDRESS, "lan_ipv4", REG_NODE_ADDRESS,
                     "wan", REG_NODE_ADDRESS, "wan_ipv4", REG_NODE_ADDRESS, "Meta",
                     "consul-network-segment", "", "CreateIndex", 1, "ModifyIndex", 1);
}

json_t *reg_json_agent_service(const struct reg_service *svc, bool with_index)
{
    json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:I, s:s, s:{s:I, s:I}, s:b, s:s}", "ID", svc->id,
                          "Service", svc->name, "Tags", svc->tags, "Meta", svc->meta, "Port",
                          (json_int_t)svc->port, "Address", svc->address, "Weights", "Passing",
                          (json_int_t)svc->weight_passing, "Warning",
                          (json_int_t)svc->weight_warning, "EnableTagOverride",
                          svc->enable_tag_override, "Datacenter", REG_DC);
    if (o == NULL)
        return NULL;
    bool ok = true;
    if (json_object_size(svc->tagged) > 0)
        ok = json_object_set(o, "TaggedAddresses", svc->tagged) == 0;
    if (ok && with_index)
        ok = json_object_set_new(o, "CreateIndex", json_integer((json_int_t)svc->create_index)) == 0 &&
             json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)svc->modify_index)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *kind_name(enum reg_check_kind k)
{
    return k == REG_CHECK_TTL ? "ttl" : k == REG_CHECK_HTTP ? "http" : k == REG_CHECK_TCP ? "tcp" : "";
}

static json_t *definition(const struct reg_check *c)
{
    char iv[32], to[32], dr[32];
    reg_duration_format(c->interval, iv, sizeof iv);
    reg_duration_format(c->timeout, to, sizeof to);
    reg_duration_format(c->deregister_after, dr, sizeof dr);
    json_t *d = json_pack("{s:s, s:s, s:s}", "Interval", iv, "Timeout", to,
                          "DeregisterCriticalServiceAfter", dr);
    if (d == NULL)
        return NULL;
    bool ok = true;
    if (c->kind == REG_CHECK_HTTP) {
        ok = json_object_set_new(d, "HTTP", json_string(c->http)) == 0 &&
             json_object_set_new(d, "Method", json_string(c->method)) == 0 &&
             json_object_set_new(d, "TLSSkipVerify", json_boolean(c->tls_skip_verify)) == 0 &&
             (c->header == NULL || json_object_set(d, "Header", c->header) == 0) &&
             (c->body == NULL || json_object_set_new(d, "Body", json_string(c->body)) == 0) &&
             (c->tls_server_name == NULL ||
              json_object_set_new(d, "TLSServerName", json_string(c->tls_server_name)) == 0);
    } else if (c->kind == REG_CHECK_TCP) {
        ok = json_object_set_new(d, "TCP", json_string(c->tcp)) == 0;
    }
    if (!ok) {
        json_decref(d);
        return NULL;
    }
    return d;
}

json_t *reg_json_check(const struct reg_state *st, const struct reg_check *c)
{
    const struct reg_service *svc = c->service_id[0] ? reg_state_service(st, c->service_id) : NULL;
    json_t *tags = svc != NULL ? json_copy(svc->tags) : json_array();
    json_t *def = definition(c);
    if (tags == NULL || def == NULL) {
        json_decref(tags);
        json_decref(def);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:i, s:o, s:I, s:I}",
                     "Node", REG_NODE, "CheckID", c->id, "Name", c->name, "Status",
                     reg_status_name(c->status), "Notes", c->notes ? c->notes : "", "Output",
                     c->output ? c->output : "", "ServiceID", c->service_id, "ServiceName",
                     svc != NULL ? svc->name : "", "ServiceTags", tags, "Type", kind_name(c->kind),
                     "ExposedPort", 0, "Definition", def, "CreateIndex",
                     (json_int_t)c->create_index, "ModifyIndex", (json_int_t)c->modify_index);
}

json_t *reg_json_catalog_service(const struct reg_state *st, const struct reg_service *svc)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s}, s:s, s:s, s:s, s:O, s:s, s:O, "
        "s:{s:I, s:I}, s:O, s:I, s:b, s:{s:s, s:{}, s:{}}, s:{}, s:I, s:I}",
        "ID", st->node_id, "Node", REG_NODE, "Address", REG_NODE_ADDRESS, "Datacenter", REG_DC,
        "TaggedAddresses", "lan", REG_NODE_ADDRESS, "lan_ipv4", REG_NODE_ADDRESS, "wan",
        REG_NODE_ADDRESS, "wan_ipv4", REG_NODE_ADDRESS, "NodeMeta", "consul-network-segment", "",
        "ServiceKind", "", "ServiceID", svc->id, "ServiceName", svc->name, "ServiceTags", svc->tags,
        "ServiceAddress", svc->address, "ServiceTaggedAddresses", svc->tagged, "ServiceWeights",
        "Passing", (json_int_t)svc->weight_passing, "Warning", (json_int_t)svc->weight_warning,
        "ServiceMeta", svc->meta, "ServicePort", (json_int_t)svc->port, "ServiceEnableTagOverride",
        svc->enable_tag_override, "ServiceProxy", "Mode", "", "MeshGateway", "Expose",
        "ServiceConnect", "CreateIndex", (json_int_t)svc->create_index, "ModifyIndex",
        (json_int_t)svc->modify_index);
    return o;
}

bool reg_query_bool(const struct ward_req *req, const char *name, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const char *v = NULL;
    *out = false;
    if (!ward_req_query_nth(req, name, 0, &v))
        return true;
    if (v == NULL || v[0] == '\0') {
        *out = true;
        return true;
    }
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(v, no[i]) == 0)
            return true;
    }
    return false;
}

bool reg_query_common(struct ward_req *req)
{
    const char *dc = NULL, *v = NULL;
    if (ward_req_query_nth(req, "dc", 0, &dc) && dc != NULL && dc[0] != '\0' && strcmp(dc, REG_DC) != 0) {
        reg_respond_error(req, 500, "No path to datacenter");
        return false;
    }
    if (ward_req_query_nth(req, "stale", 0, &v) && ward_req_query_nth(req, "consistent", 0, &v)) {
        reg_respond_error(req, 400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
        return false;
    }
    return true;
}

static bool set_header(struct ward_req *req, const char *name, const char *value)
{
    return ward_req_set_header(req, name, value) == WARD_ERR_OK;
}

void reg_respond_json(struct ward_req *req, json_t *body, uint64_t index)
{
    const char *v = NULL;
    bool pretty = ward_req_query_nth(req, "pretty", 0, &v);
    char *text = body != NULL ? json_dumps(body, JSON_ENCODE_ANY | (pretty ? JSON_INDENT(4) : JSON_COMPACT)) : NULL;
    json_decref(body);
    if (text == NULL) {
        reg_respond_error(req, 500, "out of memory");
        return;
    }
    bool ok = true;
    if (index > 0) {
        char idx[32];
        snprintf(idx, sizeof idx, "%llu", (unsigned long long)index);
        ok = set_header(req, "X-Consul-Index", idx) && set_header(req, "X-Consul-KnownLeader", "true") &&
             set_header(req, "X-Consul-LastContact", "0") &&
             set_header(req, "X-Consul-Effective-Consistency", "leader");
    }
    if (ok)
        ward_req_respond(req, 200, "application/json", text, strlen(text));
    else
        reg_respond_error(req, 500, "out of memory");
    free(text);
}

void reg_respond_empty(struct ward_req *req)
{
    ward_req_respond(req, 200, "text/plain; charset=utf-8", "", 0);
}

void reg_respond_error(struct ward_req *req, int status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1 : (size_t)n;
    ward_req_respond(req, status, "text/plain; charset=utf-8", text, len);
}

void reg_render_error(struct ward_req *req, int status, const char *detail, void *arg)
{
    (void)arg;
    if (status == 404)
        reg_respond_error(req, 404, "Invalid URL path: not a recognized HTTP API endpoint");
    else if (status == 405)
        reg_respond_error(req, 405, "method %s not allowed", ward_req_method(req));
    else if (status == 413)
        reg_respond_error(req, 413, "Request body too large: %s", detail);
    else
        reg_respond_error(req, status, "%s", detail);
}
