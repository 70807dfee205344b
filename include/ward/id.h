/* id.h — resource IDs: a type prefix and 128 random bits in base62 ("inv_4Qz...", 22
 * characters after the prefix), opaque and unguessable (DESIGN.md §4). */
#ifndef WARD_ID_H
#define WARD_ID_H

#include <stdbool.h>
#include <stddef.h>

#include <ward/err.h>

/* Room for a prefix of up to 8 characters, '_', 22 digits and the NUL. */
#define WARD_ID_MAX 32

/* Writes prefix "_" and 22 base62 digits of getrandom(2) into out (size >= WARD_ID_MAX).
 * INVAL for a NULL or empty prefix, one longer than 8 or not [a-z]; SYSTEM when the
 * kernel gives no randomness. */
WARD_MUST_CHECK enum ward_err ward_id_new(const char *prefix, char *out, size_t size);

/* Whether s looks like an ID of prefix (so that a bad path parameter is a clean 404
 * without a database round trip). */
bool ward_id_valid(const char *prefix, const char *s);

#endif
