/* main.c — the ward command (DESIGN.md §1): `ward up` starts and supervises the local
 * stack, `ward status` shows it, `ward stop|start SERVICE` stop a service of it and start
 * it again. docs/ward.md documents it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ward COMMAND [FLAGS]\n"
            "\n"
            "  up                 start the whole stack (registry, services, gateway) and supervise it\n"
            "  status             the running stack: processes, instances, the gateway's breakers and limiters\n"
            "  stop SERVICE       stop a service of the running stack (it stays stopped)\n"
            "  start SERVICE      start it again\n"
            "\n"
            "`ward COMMAND --help` lists a command's flags. docs/ward.md has the rest.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "up") == 0)
        return cli_up(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "start") == 0)
        return cli_stop_start(cmd, argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ward %s\n", CLI_VERSION);
        return 0;
    }
    fprintf(stderr, "ward: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
