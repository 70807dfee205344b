/* spin.h — a test-and-test-and-set spinlock for critical sections of a few dozen
 * instructions (breaker and limiter state), where a mutex's cost would dominate. */
#ifndef WARD_LIB_SPIN_H
#define WARD_LIB_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#if defined(__x86_64__) || defined(__i386__)
#define WARD__CPU_RELAX() __builtin_ia32_pause()
#else
#define WARD__CPU_RELAX() ((void)0)
#endif

struct ward__spin {
    atomic_bool held;
};

#define WARD__SPIN_INIT {false}

static inline void ward__spin_init(struct ward__spin *s)
{
    atomic_init(&s->held, false);
}

static inline void ward__spin_lock(struct ward__spin *s)
{
    for (;;) {
        if (!atomic_exchange_explicit(&s->held, true, memory_order_acquire))
            return;
        /* a holder preempted on a busy machine must not cost a whole time slice */
        for (unsigned n = 0; atomic_load_explicit(&s->held, memory_order_relaxed); n++) {
            if (n < 64)
                WARD__CPU_RELAX();
            else
                sched_yield();
        }
    }
}

static inline void ward__spin_unlock(struct ward__spin *s)
{
    atomic_store_explicit(&s->held, false, memory_order_release);
}

#endif
