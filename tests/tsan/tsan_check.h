/* tsan_check.h — the protocol of the concurrency programs (plain programs: Criterion
 * aborts under ThreadSanitizer): one "ok - what" or "FAIL - what" line per check, then
 * "N passed, M failed"; main returns tsan_summary(), non-zero when anything failed. */
#ifndef WARD_TSAN_CHECK_H
#define WARD_TSAN_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int tsan_passed;
static int tsan_failed;

static inline void check(bool ok, const char *what)
{
    printf("%s - %s\n", ok ? "ok" : "FAIL", what);
    if (ok)
        tsan_passed++;
    else
        tsan_failed++;
}

static inline int tsan_summary(void)
{
    printf("%d passed, %d failed\n", tsan_passed, tsan_failed);
    return tsan_failed != 0;
}

#endif
