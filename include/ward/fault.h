/* fault.h — test-only fault injection at named points: crash tests stop a daemon at a saga
 * step boundary, or make a service slow after it committed, without test code in the
 * product's paths. Off (one branch per point) unless WARD_FAULTS is set, e.g.
 *     WARD_FAULTS="payment.ledger.after=exit,accounting.txn.committed=sleep:3000"
 * Actions: exit (_exit(WARD_FAULT_EXIT_STATUS): a crash, nothing flushed or cleaned up),
 * sleep:MS, and either one only on the Nth time the point is reached: "name@N=exit". */
#ifndef WARD_FAULT_H
#define WARD_FAULT_H

#include <stdbool.h>

#define WARD_FAULT_EXIT_STATUS 86

/* Reached point name: does what WARD_FAULTS says for it, if anything. Thread-safe. */
void ward_fault(const char *name);

/* Whether WARD_FAULTS names any point (a daemon logs a warning at start when it does). */
bool ward_fault_armed(void);

#endif
