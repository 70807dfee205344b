/* decode.c — a service definition and its checks from a register body, decoded and
 * validated as Consul's agent does (agent/structs/check_type.go, agent.go), with its
 * error texts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define MAX_CHECKS 32

/* A field of the wrong JSON type, in the words of Go's decoder. */
static bool type_error(struct ward_req *req, const char *field, const char *want)
{
    reg_respond_error(req, 400, "Request decode failed: json: cannot unmarshal into Go struct field %s of type %s",
                      field, want);
    return false;
}

/* Optional string member into *out (copied; def when absent or null). */
static bool get_str(struct ward_req *req, const json_t *o, const char *name, const char *def,
                    char **out)
{
    json_t *v = reg_json_get(o, name);
    if (v != NULL && !json_is_null(v) && !json_is_string(v))
        return type_error(req, name, "string");
    const char *s = json_is_string(v) ? json_string_value(v) : def;
    *out = s != NULL ? strdup(s) : NULL;
    if (s != NULL && *out == NULL) {
        reg_respond_error(req, 500, "out of memory");
        return false;
    }
    return true;
}

static bool get_int(struct ward_req *req, const json_t *o, const char *name, int64_t *out)
{
    json_t *v = reg_json_get(o, name);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v))
        return type_error(req, name, "int");
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool get_bool(struct ward_req *req, const json_t *o, const char *name, bool *out)
{
    json_t *v = reg_json_get(o, name);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return type_error(req, name, "bool");
    *out = json_is_true(v);
    return true;
}

/* A duration given as Go text or as a number of nanoseconds. */
static bool get_duration(struct ward_req *req, const json_t *o, const char *name, int64_t *out)
{
    json_t *v = reg_json_get(o, name);
    if (v == NULL || json_is_null(v))
        return true;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return type_error(req, name, "time.Duration");
    if (!reg_duration_parse(json_string_value(v), out)) {
        reg_respond_error(req, 400, "Request decode failed: time: invalid duration \"%s\"",
                          json_string_value(v));
        return false;
    }
    return true;
}

/* An object whose values all satisfy ok (or null); a copy into *out, never NULL. */
static bool get_object(struct ward_req *req, const json_t *o, const char *name,
                       int (*ok)(const json_t *), const char *want, json_t **out)
{
    json_t *v = reg_json_get(o, name);
    const char *key;
    json_t *val;
    if (v != NULL && !json_is_null(v) && !json_is_object(v))
        return type_error(req, name, want);
    json_object_foreach(v, key, val) {
        if (!ok(val))
            return type_error(req, name, want);
    }
    *out = json_is_object(v) ? json_deep_copy(v) : json_object();
    if (*out == NULL) {
        reg_respond_error(req, 500, "out of memory");
        return false;
    }
    return true;
}

static int is_string(const json_t *v) { return json_is_string(v); }
static int is_object(const json_t *v) { return json_is_object(v); }
static int is_string_array(const json_t *v)
{
    size_t i;
    json_t *e;
    if (!json_is_array(v))
        return 0;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            return 0;
    }
    return 1;
}

static bool meta_valid(struct ward_req *req, const json_t *meta)
{
    const char *key;
    json_t *val;
    if (json_object_size(meta) > 64) {
        reg_respond_error(req, 400, "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs");
        return false;
    }
    json_object_foreach((json_t *)(uintptr_t)meta, key, val) {
        size_t n = strlen(key);
        bool ok = n > 0 && n <= 128 && strncmp(key, "consul-", 7) != 0 &&
                  strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
        if (!ok || strlen(json_string_value(val)) > 512) {
            reg_respond_error(req, 400, "Invalid Service Meta: Couldn't load metadata pair ('%s', '%s')",
                              key, json_string_value(val));
            return false;
        }
    }
    return true;
}

static bool decode_check(struct ward_req *req, const json_t *o, struct reg_check *c)
{
    char *status = NULL;
    bool ok = false;
    if (!json_is_object(o)) {
        reg_respond_error(req, 400, "Request decode failed: json: cannot unmarshal %s into Go struct field of type structs.CheckType",
                          json_is_array(o) ? "array" : "value");
        return false;
    }
    c->failures_before_critical = c->success_before_passing = 0;
    if (!get_str(req, o, "CheckID", "", &c->id) || !get_str(req, o, "Name", "", &c->name) ||
        !get_str(req, o, "Notes", "", &c->notes) || !get_str(req, o, "Status", "", &status) ||
        !get_str(req, o, "HTTP", "", &c->http) || !get_str(req, o, "Method", "GET", &c->method) ||
        !get_str(req, o, "Body", NULL, &c->body) || !get_str(req, o, "TCP", "", &c->tcp) ||
        !get_str(req, o, "TLSServerName", NULL, &c->tls_server_name) ||
        !get_bool(req, o, "TLSSkipVerify", &c->tls_skip_verify) ||
        !get_bool(req, o, "DisableRedirects", &c->disable_redirects) ||
        !get_bool(req, o, "TCPUseTLS", &c->tcp_use_tls) ||
        !get_duration(req, o, "TTL", &c->ttl) || !get_duration(req, o, "Interval", &c->interval) ||
        !get_duration(req, o, "Timeout", &c->timeout) ||
        !get_duration(req, o, "DeregisterCriticalServiceAfter", &c->deregister_after) ||
        !get_int(req, o, "SuccessBeforePassing", &c->success_before_passing) ||
        !get_int(req, o, "FailuresBeforeWarning", &c->failures_before_warning) ||
        !get_int(req, o, "FailuresBeforeCritical", &c->failures_before_critical) ||
        !get_int(req, o, "OutputMaxSize", &c->output_max_size))
        goto out;
    json_t *hdr = reg_json_get(o, "Header");
    if (hdr != NULL && !json_is_null(hdr)) {
        if (!get_object(req, o, "Header", is_string_array, "map[string][]string", &c->header))
            goto out;
    }
    if (c->id == NULL || c->name == NULL || c->notes == NULL || c->method == NULL ||
        c->http == NULL || c->tcp == NULL || status == NULL) {
        reg_respond_error(req, 500, "out of memory");
        goto out;
    }
    bool interval_type = c->http[0] != '\0' || c->tcp[0] != '\0';
    c->kind = c->http[0] ? REG_CHECK_HTTP : c->tcp[0] ? REG_CHECK_TCP : REG_CHECK_TTL;
    if (c->failures_before_warning == 0)
        c->failures_before_warning = c->failures_before_critical;
    if (c->interval > 0 && c->ttl > 0) {
        reg_respond_error(req, 400, "Invalid check: Interval and TTL cannot both be specified");
    } else if (interval_type && c->interval <= 0) {
        reg_respond_error(req, 400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks");
    } else if (!interval_type && c->ttl <= 0) {
        reg_respond_error(req, 400, "Invalid check: TTL must be > 0 for TTL checks");
    } else if (c->failures_before_warning > c->failures_before_critical) {
        reg_respond_error(req, 400, "Invalid check: FailuresBeforeWarning must be less than or equal to FailuresBeforeCritical");
    } else if (status[0] != '\0' && !reg_status_parse(status, &c->status)) {
        reg_respond_error(req, 400, "Status for checks must 'passing', 'warning', 'critical'");
    } else {
        if (status[0] == '\0')
            c->status = REG_CRITICAL;
        if (c->interval > 0 && c->interval < WARD_NS_PER_S)
            c->interval = WARD_NS_PER_S; /* Consul's floor */
        if (c->output_max_size <= 0)
            c->output_max_size = REG_OUTPUT_MAX;
        ok = true;
    }
out:
    free(status);
    return ok;
}

/* Fills the IDs, names and service link Consul derives when they are empty. */
static bool name_checks(const struct reg_service *svc, struct reg_check **checks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct reg_check *c = checks[i];
        char buf[1024];
        if (c->id[0] == '\0') {
            if (n == 1)
                snprintf(buf, sizeof buf, "service:%s", svc->id);
            else
                snprintf(buf, sizeof buf, "service:%s:%zu", svc->id, i + 1);
            free(c->id);
            c->id = strdup(buf);
        }
        if (c->name[0] == '\0') {
            snprintf(buf, sizeof buf, "Service '%s' check", svc->name);
            free(c->name);
            c->name = strdup(buf);
        }
        c->service_id = strdup(svc->id);
        c->output = strdup("");
        if (c->id == NULL || c->name == NULL || c->service_id == NULL || c->output == NULL)
            return false;
    }
    return true;
}

static bool decode_fields(struct ward_req *req, const json_t *body, struct reg_service *s)
{
    json_t *w = reg_json_get(body, "Weights");
    s->weight_passing = s->weight_warning = 1;
    if (!get_str(req, body, "Name", "", &s->name) || !get_str(req, body, "ID", "", &s->id) ||
        !get_str(req, body, "Address", "", &s->address) || !get_int(req, body, "Port", &s->port) ||
        !get_bool(req, body, "EnableTagOverride", &s->enable_tag_override) ||
        !get_object(req, body, "Meta", is_string, "map[string]string", &s->meta) ||
        !get_object(req, body, "TaggedAddresses", is_object, "map[string]structs.ServiceAddress",
                    &s->tagged))
        return false;
    json_t *tags = reg_json_get(body, "Tags");
    if (tags != NULL && !json_is_null(tags) && !is_string_array(tags))
        return type_error(req, "Tags", "[]string");
    s->tags = is_string_array(tags) ? json_deep_copy(tags) : json_array();
    if (w != NULL && !json_is_null(w)) {
        if (!json_is_object(w))
            return type_error(req, "Weights", "api.AgentWeights");
        if (!get_int(req, w, "Passing", &s->weight_passing) || !get_int(req, w, "Warning", &s->weight_warning))
            return false;
        if (s->weight_passing < 1 || s->weight_warning < 0) {
            reg_respond_error(req, 400, "Invalid Weights: Passing must be greater than 0");
            return false;
        }
    }
    if (s->name == NULL || s->id == NULL || s->address == NULL || s->tags == NULL) {
        reg_respond_error(req, 500, "out of memory");
        return false;
    }
    if (s->name[0] == '\0') {
        reg_respond_error(req, 400, "Missing service name");
        return false;
    }
    if (strcmp(s->address, "0.0.0.0") == 0 || strcmp(s->address, "::") == 0 ||
        strcmp(s->address, "[::]") == 0) {
        reg_respond_error(req, 400, "Invalid service address");
        return false;
    }
    if (s->port < 0 || s->port > 65535) {
        reg_respond_error(req, 400, "Invalid service port: %lld", (long long)s->port);
        return false;
    }
    if (!meta_valid(req, s->meta))
        return false;
    if (s->id[0] == '\0') {
        free(s->id);
        s->id = strdup(s->name);
        if (s->id == NULL) {
            reg_respond_error(req, 500, "out of memory");
            return false;
        }
    }
    return true;
}

bool reg_decode_service(struct ward_req *req, const json_t *body, struct reg_service **svc,
                        struct reg_check ***checks, size_t *n)
{
    struct reg_service *s = calloc(1, sizeof *s);
    struct reg_check **cs = calloc(MAX_CHECKS, sizeof *cs);
    size_t nc = 0;
    if (s == NULL || cs == NULL) {
        reg_respond_error(req, 500, "out of memory");
        goto fail;
    }
    if (!json_is_object(body)) {
        reg_respond_error(req, 400, "Request decode failed: json: cannot unmarshal %s into Go value of type structs.ServiceDefinition",
                          json_is_array(body) ? "array" : json_is_string(body) ? "string" : "number");
        goto fail;
    }
    if (!decode_fields(req, body, s))
        goto fail;
    json_t *one = reg_json_get(body, "Check");
    json_t *many = reg_json_get(body, "Checks");
    if (many != NULL && !json_is_null(many) && !json_is_array(many)) {
        type_error(req, "Checks", "structs.CheckTypes");
        goto fail;
    }
    size_t total = (one != NULL && !json_is_null(one) ? 1 : 0) + json_array_size(many);
    if (total > MAX_CHECKS) {
        reg_respond_error(req, 400, "Invalid check: at most %d checks per service", MAX_CHECKS);
        goto fail;
    }
    for (size_t i = 0; i < total; i++) {
        const json_t *o = (one != NULL && !json_is_null(one)) ? (i == 0 ? one : json_array_get(many, i - 1))
                                                              : json_array_get(many, i);
        cs[nc] = calloc(1, sizeof *cs[nc]);
        if (cs[nc] == NULL) {
            reg_respond_error(req, 500, "out of memory");
            goto fail;
        }
        nc++;
        if (!decode_check(req, o, cs[nc - 1]))
            goto fail;
    }
    if (!name_checks(s, cs, nc)) {
        reg_respond_error(req, 500, "out of memory");
        goto fail;
    }
    *svc = s;
    *checks = cs;
    *n = nc;
    return true;
fail:
    reg_service_free(s);
    for (size_t i = 0; i < nc; i++)
        reg_check_free(cs[i]);
    free(cs);
    return false;
}

bool reg_decode_check(struct ward_req *req, const json_t *body, struct reg_check **out)
{
    char *id = NULL;
    bool ok = false;
    struct reg_check *c = calloc(1, sizeof *c);
    if (c == NULL) {
        reg_respond_error(req, 500, "out of memory");
        return false;
    }
    if (!decode_check(req, body, c) || !get_str(req, body, "ID", "", &id) ||
        !get_str(req, body, "ServiceID", "", &c->service_id))
        goto out;
    if (id == NULL || c->service_id == NULL) {
        reg_respond_error(req, 500, "out of memory");
        goto out;
    }
    if (c->name[0] == '\0') {
        reg_respond_error(req, 400, "Missing check name");
        goto out;
    }
    if (c->id[0] == '\0') { /* CheckID, then ID, then Name */
        free(c->id);
        c->id = strdup(id[0] != '\0' ? id : c->name);
    }
    c->output = strdup("");
    if (c->id == NULL || c->output == NULL) {
        reg_respond_error(req, 500, "out of memory");
        goto out;
    }
    *out = c;
    c = NULL;
    ok = true;
out:
    free(id);
    reg_check_free(c);
    return ok;
}
