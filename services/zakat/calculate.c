/* calculate.c — POST /calculate: zakat due on an amount of wealth, exactly. */
#include <string.h>

#include <ward/fields.h>
#include <ward/money.h>

#include "zakat.h"

struct calc_req {
    const struct ward_currency *currency;
    int64_t wealth, nisab, gold, silver;
    bool has_nisab, has_gold, has_silver;
};

static json_t *amount(int64_t minor, const struct ward_currency *cur)
{
    return ward_money_to_json(minor, cur);
}

void zk_calculate(struct ward_req *req, void *arg)
{
    (void)arg;
    json_t *root = NULL;
    struct calc_req r = {.currency = ward_currency_find("USD")};
    const struct ward_field fields[] = {
        {.name = "currency", .type = WARD_FIELD_CURRENCY, .dest = &r.currency},
        {.name = "wealth", .type = WARD_FIELD_AMOUNT, .required = true, .dest = &r.wealth,
         .currency = &r.currency},
        {.name = "nisab", .type = WARD_FIELD_AMOUNT, .dest = &r.nisab, .present = &r.has_nisab,
         .currency = &r.currency},
        {.name = "gold_price_per_gram", .type = WARD_FIELD_AMOUNT, .dest = &r.gold,
         .present = &r.has_gold, .currency = &r.currency},
        {.name = "silver_price_per_gram", .type = WARD_FIELD_AMOUNT, .dest = &r.silver,
         .present = &r.has_silver, .currency = &r.currency},
    };
    if (!ward_req_fields(req, fields, sizeof fields / sizeof fields[0], &root))
        return;

    struct ward_problem *p = NULL;
    int given = (int)r.has_nisab + (int)r.has_gold + (int)r.has_silver;
    const char *basis = "given";
    enum ward_err err = WARD_ERR_OK;
    if (given != 1) {
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, given == 0
                                 ? "give the nisab, or a gold or silver price per gram to derive it"
                                 : "give only one of nisab, gold_price_per_gram and silver_price_per_gram");
        if (p != NULL && ward_problem_add_error(p, given == 0 ? "/nisab" : "",
                                                given == 0 ? "is required" : "only one nisab basis may be given") != WARD_ERR_OK) {
            ward_problem_free(p);
            p = NULL;
        }
        goto fail;
    }
    if (r.has_gold) {
        basis = "gold";
        err = zk_nisab_from_price(r.gold, ZK_GOLD_GRAMS, &r.nisab);
    } else if (r.has_silver) {
        basis = "silver";
        err = zk_nisab_from_price(r.silver, ZK_SILVER_GRAMS, &r.nisab);
    }
    if (err != WARD_ERR_OK) {
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, "the nisab derived from the %s price is too large", basis);
        if (p != NULL && ward_problem_add_error(p, r.has_gold ? "/gold_price_per_gram" : "/silver_price_per_gram",
                                                "is too large") != WARD_ERR_OK) {
            ward_problem_free(p);
            p = NULL;
        }
        goto fail;
    }
    int64_t due = 0;
    bool eligible = false;
    err = zk_zakat_due(r.wealth, r.nisab, &due, &eligible);
    if (err != WARD_ERR_OK) {
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, "cannot compute zakat: %s", ward_strerror(err));
        goto fail;
    }
    /* built member by member: json_pack's format parsing is a third of this handler's
     * cost; the keys are literals, so their UTF-8 check is skipped */
    json_t *body = json_object();
    bool ok = body != NULL &&
              json_object_set_new_nocheck(body, "wealth", amount(r.wealth, r.currency)) == 0 &&
              json_object_set_new_nocheck(body, "nisab", amount(r.nisab, r.currency)) == 0 &&
              json_object_set_new_nocheck(body, "zakat_due", amount(due, r.currency)) == 0 &&
              json_object_set_new_nocheck(body, "is_eligible", json_boolean(eligible)) == 0 &&
              json_object_set_new_nocheck(body, "currency", json_string_nocheck(r.currency->code)) == 0 &&
              json_object_set_new_nocheck(body, "nisab_basis", json_string_nocheck(basis)) == 0;
    json_decref(root);
    if (!ok) {
        json_decref(body);
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "out of memory");
        return;
    }
    ward_req_respond_json(req, 200, body);
    return;
fail:
    json_decref(root);
    ward_req_respond_problem(req, p);
}
