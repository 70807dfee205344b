/* zakat.h — the zakat rule of zakat-service, apart from HTTP. */
#ifndef ZK_ZAKAT_H
#define ZK_ZAKAT_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/err.h>
#include <ward/http.h>

/* Grams of gold and of silver whose value is the nisab. */
#define ZK_GOLD_GRAMS 85
#define ZK_SILVER_GRAMS 595

/* Zakat on wealth (minor units) against nisab: when wealth >= nisab, 2.5 % of the whole
 * wealth rounded half-up to the minor unit, else 0. Both must be >= 0 (INVAL). */
WARD_MUST_CHECK enum ward_err zk_zakat_due(int64_t wealth, int64_t nisab, int64_t *due,
                                           bool *eligible);

/* Nisab from a price per gram: price * grams, OVERFLOW when it does not fit. */
WARD_MUST_CHECK enum ward_err zk_nisab_from_price(int64_t price_per_gram, int64_t grams,
                                                  int64_t *nisab);

/* POST /calculate */
void zk_calculate(struct ward_req *req, void *arg);

#endif
