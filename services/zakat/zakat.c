/* zakat.c — the rule: 2.5 % of the whole wealth once it reaches nisab (DESIGN.md §6; the
 * seed's (wealth - nisab) * 2.5 % is a simplification it corrects). */
#include "zakat.h"

#include <ward/money.h>

enum ward_err zk_zakat_due(int64_t wealth, int64_t nisab, int64_t *due, bool *eligible)
{
    if (wealth < 0 || nisab < 0)
        return WARD_ERR_INVAL;
    *eligible = wealth >= nisab;
    if (!*eligible) {
        *due = 0;
        return WARD_ERR_OK;
    }
    /* 2.5 % = 25 / 1000, rounded half away from zero, which for wealth >= 0 is half-up */
    return ward_money_ratio(wealth, 25, 1000, due);
}

enum ward_err zk_nisab_from_price(int64_t price_per_gram, int64_t grams, int64_t *nisab)
{
    if (price_per_gram < 0 || grams <= 0)
        return WARD_ERR_INVAL;
    return ward_money_mul(price_per_gram, grams, nisab);
}
