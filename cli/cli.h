/* cli.h — the ward command: `ward up` starts and supervises the whole local stack,
 * `ward status` shows it, `ward stop|start SERVICE` ask the running `ward up` (through
 * its control socket) to stop a service or start it again. */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CLI_VERSION "0.1.0"
#define CLI_NAME_MAX 64
#define CLI_MAX_CHILDREN 64

/* Where a child is in its life. */
enum cli_state {
    CLI_WAITING,    /* not started yet: an earlier tier is getting ready */
    CLI_STARTING,   /* running, not ready yet */
    CLI_READY,      /* answering /ready */
    CLI_BACKOFF,    /* crashed; restarts at restart_at */
    CLI_STOPPING,   /* asked to end (SIGTERM sent) */
    CLI_STOPPED,    /* ended on request (ward stop, or the shutdown) */
};

/* One process of the stack. */
struct cli_child {
    char name[CLI_NAME_MAX];  /* "payment-service" */
    char label[CLI_NAME_MAX]; /* "payment-service" or "payment-service#2" */
    char binary[CLI_NAME_MAX];
    int tier;                 /* started after every lower tier is ready */
    char *argv[32];           /* owned strings; argv[0] the binary's path */
    size_t argc;
    enum cli_state state;
    pid_t pid;
    int out;                  /* the read end of its stdout and stderr */
    char line[16384];         /* a partial line of its output */
    size_t line_len;
    int log_fd;               /* <data>/logs/<label>.log */
    uint16_t port;            /* from its "listening" line */
    uint16_t admin_port;      /* the gateway's, from "admin listening" */
    int restarts;             /* in a row, for the backoff */
    int64_t restart_at;       /* CLI_BACKOFF: monotonic ns */
    int64_t started_at;
    int64_t stop_deadline;    /* CLI_STOPPING: SIGKILL after it */
    int64_t next_probe;       /* CLI_STARTING: next /ready look */
    int exit_status;          /* the last one, as waitpid gave it */
    bool held;                /* `ward stop`: not restarted until `ward start` */
};

/* `ward up` and its flags (cli/up.c). Returns the exit status. */
int cli_up(int argc, char **argv);
/* `ward status` (cli/status.c). */
int cli_status(int argc, char **argv);
/* `ward stop NAME` and `ward start NAME` (cli/control.c). */
int cli_stop_start(const char *verb, int argc, char **argv);

/* ---- children (cli/child.c) ------------------------------------------------------------ */

/* Starts c (fork, its own process group, output to a pipe, exec). false on failure
 * (said on stderr). */
bool cli_child_spawn(struct cli_child *c);
/* Reads what c wrote: each whole line goes to the terminal with c's label in front and
 * to its log file; "listening" lines tell its ports. false at the end of its output. */
bool cli_child_relay(struct cli_child *c);
/* Sends sig to c's process group. */
void cli_child_signal(struct cli_child *c, int sig);
/* Whether c answers GET /ready with 200 (a short, blocking look through http). */
struct ward_httpc;
bool cli_child_ready(struct cli_child *c, struct ward_httpc *http);
/* Frees c's argv strings, closes its descriptors. */
void cli_child_fini(struct cli_child *c);
/* Appends arg (copied) to c's argv. */
bool cli_child_arg(struct cli_child *c, const char *arg);

/* ---- the control socket (cli/control.c) ------------------------------------------------ */

/* <data dir>/ward.sock into buf. */
void cli_control_path(const char *data_dir, char *buf, size_t size);
/* Sends one request line on the socket at path and reads the answer into *out (caller
 * frees). false when nothing listens there. */
bool cli_control_ask(const char *path, const char *request, char **out);

/* Monotonic ns. */
int64_t cli_now(void);

/* Parses a command's flags (ward_config_parse): -1 to go on, else the status to exit with
 * (0 after --help or --version, 2 on a bad flag, said on stderr). */
struct ward_opt;
int cli_parse_flags(const struct ward_opt *opts, size_t n, int argc, char **argv,
                    const char *prog);

#endif
