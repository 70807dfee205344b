/* trace.h — W3C Trace Context (traceparent) and request IDs. */
#ifndef WARD_LIB_TRACE_H
#define WARD_LIB_TRACE_H

#include <stdbool.h>

#include <ward/trace.h>

/* Continues the trace of header (a traceparent value, may be NULL) or, when it is
 * missing or invalid, starts a new one (sampled flag 01). Always gives a new span ID.
 * Returns true when the header was continued. */
bool ward__trace_continue(struct ward_trace *t, const char *header);

/* The traceparent for an outgoing call made within traceparent (the caller's, may be
 * NULL or invalid: then a new trace is started): same trace ID and flags, a new span ID.
 * Writes WARD_TRACEPARENT_LEN bytes and a NUL into out. */
void ward__trace_child(const char *traceparent, char out[WARD_TRACEPARENT_LEN + 1]);

/* True when value is an acceptable incoming X-Request-Id: 1..128 visible ASCII bytes. */
bool ward__request_id_valid(const char *value);

#endif
