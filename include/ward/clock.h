/* clock.h — monotonic time that tests can replace with a fake they move by hand. */
#ifndef WARD_CLOCK_H
#define WARD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define WARD_NS_PER_US INT64_C(1000)
#define WARD_NS_PER_MS INT64_C(1000000)
#define WARD_NS_PER_S INT64_C(1000000000)

struct ward_clock;

/* The process-wide real clock (CLOCK_MONOTONIC). Static; never free it. */
const struct ward_clock *ward_clock_real(void);

/* Monotonic nanoseconds on clock c; c == NULL means the real clock. Thread-safe. */
int64_t ward_clock_now(const struct ward_clock *c);

/* Sleeps ns on clock c. On a fake clock it does not block: it advances the clock by ns,
 * so code that backs off runs instantly in tests. ns <= 0 returns at once. */
void ward_clock_sleep(const struct ward_clock *c, int64_t ns);

/* A fake clock starting at start_ns. Returns NULL when out of memory. The caller owns it
 * and releases it with ward_clock_free(). Thread-safe to read and move. */
struct ward_clock *ward_clock_fake_new(int64_t start_ns);

/* Moves a fake clock forward by ns (ignored on the real clock). */
void ward_clock_fake_advance(const struct ward_clock *c, int64_t ns);

/* Sets a fake clock to ns (ignored on the real clock). */
void ward_clock_fake_set(const struct ward_clock *c, int64_t ns);

/* Frees a fake clock. NULL and the real clock are ignored. */
void ward_clock_free(const struct ward_clock *c);

/* Wall-clock time, nanoseconds since the Unix epoch (CLOCK_REALTIME): for timestamps in
 * logs and bodies, never for measuring intervals. */
int64_t ward_clock_wall(void);

/* Formats wall_ns as RFC 3339 UTC with milliseconds ("2026-11-26T23:59:59.123Z") into buf
 * (size >= WARD_RFC3339_SIZE). */
#define WARD_RFC3339_SIZE 32
void ward_clock_rfc3339(int64_t wall_ns, char *buf, size_t size);

#endif
