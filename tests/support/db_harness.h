/* db_harness.h — the two databases every storage test runs on, set up and torn down the
 * same way in each: a SQLite file in a fresh temporary directory, or a PostgreSQL server
 * of its own (pg_harness.h). Plain functions returning false on failure (the concurrency
 * programs link this too and have no Criterion): assert on them. */
#ifndef WARD_TESTS_DB_HARNESS_H
#define WARD_TESTS_DB_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "pg_harness.h"

/* A fresh directory /tmp/ward-<tag>-XXXXXX into dir (size >= 64). */
bool h_db_dir(char *dir, size_t size, const char *tag);

/* A fresh directory into dir and url = "sqlite://<dir>/<file>". */
bool h_db_sqlite(char *dir, size_t dsize, char *url, size_t usize, const char *tag,
                 const char *file);

/* A PostgreSQL server into *pg and its URL into url. */
bool h_db_pg(struct pg_server **pg, char *url, size_t usize);

/* Stops *pg (NULL is fine) and removes dir with its files (an empty dir string is fine);
 * both are reset. False when the directory could not be removed. */
bool h_db_cleanup(struct pg_server **pg, char *dir);

#endif
