/* harness.h — system-test harness: start a real ward binary on a free port, read its
 * JSON log, talk HTTP to it, stop it and check how it exited; nothing is left running. */
#ifndef WARD_TEST_HARNESS_H
#define WARD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct h_proc {
    pid_t pid;      /* also its process group */
    uint16_t port;  /* from its "listening" log line */
    int status;     /* exit status once reaped, -1 before, 128+sig when killed */
    int err_fd;
    pthread_t reader;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *log;      /* everything it wrote to stderr */
    size_t log_len, log_cap;
    bool eof;
    bool reaped;
};

struct h_resp {
    long status;
    char *body;
    size_t len;
    char *headers; /* raw header block */
    json_t *json;  /* body parsed when it is JSON, else NULL */
};

/* Starts $WARD_BIN_DIR/binary --listen 127.0.0.1:0 args... (args NULL-terminated), waits
 * for its "listening" line and for /ready to answer 200. Fails the test on error. */
struct h_proc *h_start(const char *binary, const char *const *args);

/* Starts the program at path (argv NULL-terminated, argv[0] included) like h_start does:
 * own process group, killed when the test dies, stderr captured; waits for nothing. */
struct h_proc *h_spawn(const char *path, const char *const *argv);

/* Runs binary with args to completion (no --listen added); returns its exit status and
 * what it wrote to stdout and stderr (caller frees). */
int h_run(const char *binary, const char *const *args, char **out, char **err);

/* Sends sig to the process. */
void h_signal(struct h_proc *p, int sig);

/* Waits up to timeout_ms for the process to exit; returns its status or -1. */
int h_wait(struct h_proc *p, int timeout_ms);

/* SIGTERM, wait up to timeout_ms, return the exit status; SIGKILLs the group on timeout. */
int h_stop(struct h_proc *p, int timeout_ms);

/* Kills what is left, reaps, frees. NULL is a no-op. */
void h_free(struct h_proc *p);

/* Waits up to timeout_ms for a log line holding needle; returns a copy of the line
 * parsed as JSON (caller decrefs) or NULL. */
json_t *h_log_wait(struct h_proc *p, const char *needle, int timeout_ms);

/* Waits up to timeout_ms for a line of its output holding needle; returns a copy of the
 * whole line (caller frees) or NULL. */
char *h_line_wait(struct h_proc *p, const char *needle, int timeout_ms);

/* Prints the process's log to stderr (on failures). */
void h_log_dump(struct h_proc *p);

/* One HTTP request with libcurl to 127.0.0.1:port. headers: NULL-terminated "Name: value"
 * strings or NULL. body may be NULL. Fills r (free with h_resp_free). Returns false on a
 * transport error. */
bool h_http(uint16_t port, const char *method, const char *path, const char *const *headers,
            const char *body, size_t body_len, struct h_resp *r);
void h_resp_free(struct h_resp *r);

/* The value of header name in r (copy, caller frees) or NULL. */
char *h_resp_header(const struct h_resp *r, const char *name);

/* A raw TCP connection to 127.0.0.1:port, or -1. */
int h_connect(uint16_t port);
/* Writes all of s. */
bool h_send(int fd, const char *s, size_t n);
/* Reads until the peer closes or a full response with Content-Length arrived or
 * timeout_ms passes; returns the status code or -1; body copied into *body if not NULL. */
int h_read_response(int fd, int timeout_ms, char **body);

/* Sleeps ms milliseconds (only to shape what a client does, never to wait for a result). */
void h_sleep_ms(int ms);

#endif
