/* up.h — `ward up`'s state, shared by its supervisor (up.c) and its control socket
 * (control.c). */
#ifndef CLI_UP_H
#define CLI_UP_H

#include <limits.h>

#include "cli.h"

struct up {
    /* flags */
    const char *data_dir; /* absolute once started */
    const char *db_url;
    const char *registry_url; /* an external registry; NULL: the embedded one */
    const char *instances;
    const char *gateway_config;
    bool free_ports;
    int64_t stop_timeout;
    /* state */
    char bin_dir[PATH_MAX];
    char reg_url[256]; /* what the services are given */
    struct cli_child kids[CLI_MAX_CHILDREN];
    size_t n;
    struct ward_httpc *http;
    int ctl_fd;
    char ctl_path[PATH_MAX + 16];
    bool shutting_down, forced, announced;
};

/* Stops c gracefully and keeps it stopped (`ward stop`). */
void up_stop_child(struct up *u, struct cli_child *c);
/* Starts c again (`ward start`). */
void up_start_child(struct up *u, struct cli_child *c);

/* The control socket: opened in the data directory (false, said, when another `ward up`
 * already answers there), one request per connection. */
bool up_control_open(struct up *u);
void up_control_accept(struct up *u);
void up_control_close(struct up *u);

#endif
