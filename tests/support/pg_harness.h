/* pg_harness.h — a real, throwaway PostgreSQL server (Debian's postgresql-15) for the tests. */
#ifndef WARD_TESTS_PG_HARNESS_H
#define WARD_TESTS_PG_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Each pg_start gives its caller a server of its own: its own data dir in a fresh mkdtemp'ed
 * directory under $TMPDIR (default /tmp), its own free 127.0.0.1 port, its unix socket in
 * that directory, trust authentication for everyone (a throwaway server), superuser
 * "postgres" and an empty database "ward_test". A test may therefore kill and restart its
 * server without disturbing any other test.
 *
 * Speed: initdb (1-2 s) runs once into a template data dir; every pg_start copies the
 * template (~0.1 s) and starts postgres on the copy with fsync, full_page_writes and
 * autovacuum off (~0.2 s; synchronous_commit stays on: with it off a SIGKILL loses the
 * commits of the last ~200 ms, which 'database goes away' tests would trip over). Criterion
 * runs every test in a process of its own (re-executed by the runner): those processes
 * share one template, $TMPDIR/ward-pgtmpl-<uid>-<runner pid>, made by the first test that
 * needs it while the others wait, and removed by a small detached shell (sh -c 'while
 * kill -0 <runner>...; rm -rf') once the runner has exited. Outside Criterion (plain
 * programs such as the tsan tests) the template belongs to the process and its atexit
 * hook removes it.
 *
 * Root (CI) runs initdb and postgres as the `postgres` user, which then owns the
 * directories; anyone else runs them as themselves. The binaries are taken from
 * $WARD_PG_BIN (a directory), else /usr/lib/postgresql/15/bin.
 *
 * Nothing is left behind: pg_stop removes the directory (and, after a pg_kill, the
 * server's SysV segment); an atexit hook stops servers a test did not stop and removes the
 * template; the postmaster gets SIGKILL when the thread that started it exits
 * (PR_SET_PDEATHSIG), so start servers from the test's main thread. Failures print why
 * (and the server's log) to stderr. Not thread-safe: drive a server from one thread.
 *
 *     struct pg_server *pg = pg_start();
 *     cr_assert_not_null(pg);
 *     cr_assert(pg_exec(pg, "CREATE TABLE t (id BIGINT PRIMARY KEY)"));
 *     ... connect to pg_url(pg) ...
 *     pg_kill(pg);            (the database goes away)
 *     cr_assert(pg_restart(pg));
 *     pg_stop(pg);
 */

struct pg_server;

/* Starts a server and creates the database ward_test; retries with another port when the
 * one picked was taken meanwhile. NULL on failure. The caller owns the result (pg_stop). */
struct pg_server *pg_start(void);

/* "postgresql://postgres@127.0.0.1:PORT/ward_test"; owned by p, valid until pg_stop. */
const char *pg_url(const struct pg_server *p);

uint16_t pg_port(const struct pg_server *p);

/* SIGKILLs the postmaster (an immediate crash: no shutdown checkpoint, clients see their
 * connections drop) and waits until its backends have gone too. No-op when not running. */
void pg_kill(struct pg_server *p);

/* Starts a killed (or stopped) server again on the same port and data dir (it recovers
 * from its WAL) and waits until it accepts connections. False on failure (the port was
 * taken meanwhile, postgres refused to start, 20 s passed). True when already running. */
bool pg_restart(struct pg_server *p);

/* Stops the server (fast shutdown; SIGKILL after 10 s), removes its directory, frees p.
 * NULL is a no-op. */
void pg_stop(struct pg_server *p);

/* Runs sql (several statements allowed) in ward_test as the superuser on a connection of
 * its own. False (with the error on stderr) when it fails. */
bool pg_exec(struct pg_server *p, const char *sql);

#endif
