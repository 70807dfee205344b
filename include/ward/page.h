/* page.h — cursor pagination of list endpoints, the same in every service: ?limit=
 * (1..100, default 20) and ?cursor= (opaque: from the previous page's next_cursor); the
 * answer is {"data": [...], "next_cursor": "..."}, next_cursor absent on the last page.
 * Lists are in creation order, keyed by a per-table sequence number. */
#ifndef WARD_PAGE_H
#define WARD_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/http.h>

#define WARD_PAGE_DEFAULT 20
#define WARD_PAGE_MAX 100

struct ward_page {
    int64_t limit; /* rows to return */
    int64_t after; /* return rows whose sequence number is greater (0: from the start) */
};

/* Reads ?limit and ?cursor. On bad input it answers a 400 validation problem naming the
 * parameter and returns false. Query limit + 1 rows to learn whether there is more. */
bool ward_page_parse(struct ward_req *req, struct ward_page *page);

/* {"data": data, "next_cursor": ...} (takes data): when more rows followed, next_cursor
 * encodes last_seq, the sequence number of the last row in data. NULL on NOMEM. */
json_t *ward_page_json(json_t *data, bool more, int64_t last_seq);

#endif
