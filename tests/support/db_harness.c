/* db_harness.c — see db_harness.h. */
#include "db_harness.h"

#include <stdio.h>
#include <stdlib.h>

bool h_db_dir(char *dir, size_t size, const char *tag)
{
    snprintf(dir, size, "/tmp/ward-%s-XXXXXX", tag);
    return mkdtemp(dir) != NULL;
}

bool h_db_sqlite(char *dir, size_t dsize, char *url, size_t usize, const char *tag,
                 const char *file)
{
    if (!h_db_dir(dir, dsize, tag))
        return false;
    snprintf(url, usize, "sqlite://%s/%s", dir, file);
    return true;
}

bool h_db_pg(struct pg_server **pg, char *url, size_t usize)
{
    *pg = pg_start();
    if (*pg == NULL)
        return false;
    snprintf(url, usize, "%s", pg_url(*pg));
    return true;
}

bool h_db_cleanup(struct pg_server **pg, char *dir)
{
    bool ok = true;
    pg_stop(*pg);
    *pg = NULL;
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ok = system(cmd) == 0;
        dir[0] = '\0';
    }
    return ok;
}
