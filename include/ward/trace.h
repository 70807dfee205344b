/* trace.h — W3C Trace Context (traceparent) and request IDs, for a program that serves
 * HTTP on its own (the gateway's engine) and must continue traces as ward's server does. */
#ifndef WARD_TRACE_H
#define WARD_TRACE_H

#include <stdbool.h>

#define WARD_TRACE_ID_LEN 32
#define WARD_SPAN_ID_LEN 16
#define WARD_TRACEPARENT_LEN 55
#define WARD_REQUEST_ID_MAX 128

struct ward_trace {
    char trace_id[WARD_TRACE_ID_LEN + 1];
    char parent_id[WARD_SPAN_ID_LEN + 1]; /* the caller's span; "" when we started the trace */
    char span_id[WARD_SPAN_ID_LEN + 1];   /* this hop's span */
    char flags[3];
    char traceparent[WARD_TRACEPARENT_LEN + 1]; /* to send downstream: our span */
};

/* Continues the trace of header (a traceparent value, may be NULL) or, when it is
 * missing or invalid, starts a new one (sampled). Always a new span ID for this hop.
 * Returns true when the header was continued. */
bool ward_trace_continue(struct ward_trace *t, const char *header);

/* The traceparent for a call made within traceparent (NULL or invalid: a new trace):
 * same trace ID and flags, a new span ID; WARD_TRACEPARENT_LEN bytes and a NUL. */
void ward_trace_child(const char *traceparent, char out[WARD_TRACEPARENT_LEN + 1]);

/* ward_trace_child of t's own traceparent, without reading it back: same trace ID and
 * flags, a new span ID. */
void ward_trace_span(const struct ward_trace *t, char out[WARD_TRACEPARENT_LEN + 1]);

/* True when value is an acceptable incoming X-Request-Id: 1..128 visible ASCII bytes. */
bool ward_request_id_valid(const char *value);

/* A new request ID: 32 random hex digits and a NUL. */
void ward_request_id_new(char out[33]);

#endif
