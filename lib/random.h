/* random.h — fast per-thread random numbers for request, trace and span IDs. */
#ifndef WARD_LIB_RANDOM_H
#define WARD_LIB_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit random number from a per-thread xoshiro256** seeded by getrandom(2).
 * Not for secrets: resource IDs that must be unguessable use getrandom directly. */
uint64_t ward__random_u64(void);

/* Writes 2*nbytes lowercase hex digits and a NUL into out; never all zeros. */
void ward__random_hex(char *out, size_t nbytes);

#endif
