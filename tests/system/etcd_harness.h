/* etcd_harness.h — real etcd (3.4, Debian's etcd-server) clusters of 1..5 members for the
 * system tests, started by the test itself on free 127.0.0.1 ports with data dirs under
 * $TMPDIR (default /tmp), and small helpers over etcd's v3 JSON gateway.
 *
 * Members run fast for tests: --heartbeat-interval 50 --election-timeout 500 (so the least
 * lease TTL granted is ceil(1.5 * 0.5 s) = 1 s), watch progress notifications every 500 ms
 * (--experimental-watch-progress-notify-interval), no auto compaction, zap logs at level
 * warn to stderr, captured like h_start's (h_etcd_dump_logs prints them).
 *
 * The etcd binary is $WARD_ETCD_BIN or `etcd` on PATH (scripts/deps.sh test installs it).
 * Every function fails the test (cr_assert) on a setup error; stop clusters in a .fini so
 * that a failed assertion leaves no process and no directory behind. */
#ifndef WARD_TEST_ETCD_HARNESS_H
#define WARD_TEST_ETCD_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define H_ETCD_MAX_MEMBERS 5
/* The lease TTL (s) etcd grants at least with the timings above; shorter asks are raised. */
#define H_ETCD_MIN_TTL 1
/* The watch progress-notify interval (ms) the members run with. */
#define H_ETCD_PROGRESS_MS 500

struct h_etcd;

/* Starts a cluster of members (1..5) and waits until every member answers /health with
 * {"health":"true"}; retries with new ports when one was taken in the meantime. */
struct h_etcd *h_etcd_start(int members);

/* Kills every member (SIGKILL: the data is thrown away), removes the data dirs, frees.
 * NULL is a no-op. */
void h_etcd_stop(struct h_etcd *e);

int h_etcd_members(const struct h_etcd *e);

/* "127.0.0.1:C0,127.0.0.1:C1,..." (client ports, every member, running or not), for
 * etcd://... URLs. Owned by e. */
const char *h_etcd_endpoints(const struct h_etcd *e);

uint16_t h_etcd_client_port(const struct h_etcd *e, int member);

/* SIGKILLs one member and reaps it; its log so far is kept for h_etcd_dump_logs. */
void h_etcd_kill(struct h_etcd *e, int member);

/* Starts a killed member again with the same name, data dir and ports, and waits until it
 * is healthy (it rejoins from its WAL). */
void h_etcd_restart(struct h_etcd *e, int member);

/* Starts the killed member of a one-member cluster again with an empty data dir: a new
 * cluster on the same ports that knows no key and no lease (revisions start over). */
void h_etcd_restart_empty(struct h_etcd *e);

/* The member is running and its /health says true (it sees a leader). */
bool h_etcd_healthy(const struct h_etcd *e, int member);

/* Waits up to timeout_ms for every running member to be healthy. */
bool h_etcd_wait_healthy(const struct h_etcd *e, int timeout_ms);

/* The member that is the raft leader (asked through /v3/maintenance/status), or -1. */
int h_etcd_leader(const struct h_etcd *e);

/* Prints every member's captured stderr (on failures). */
void h_etcd_dump_logs(const struct h_etcd *e);

/* POST path with the JSON body (stolen) to member's gateway; member -1 means the first
 * running member that answers. r->json holds the parsed reply (free r with h_resp_free).
 * Returns false on a transport error (or when no member is running). */
bool h_etcd_post(const struct h_etcd *e, int member, const char *path, json_t *body,
                 struct h_resp *r);

/* KV helpers on member -1 (see h_etcd_post); keys and values are C strings, base64 is
 * done inside. lease: NULL or a lease ID as a decimal string. */
bool h_etcd_put(const struct h_etcd *e, const char *key, const char *value, const char *lease);
bool h_etcd_put_on(const struct h_etcd *e, int member, const char *key, const char *value,
                   const char *lease);
/* The value ("" when empty) or NULL when the key does not exist; caller frees. */
char *h_etcd_get(const struct h_etcd *e, const char *key);
char *h_etcd_get_on(const struct h_etcd *e, int member, const char *key);
/* Number of keys under prefix (count_only range up to the prefix end). */
size_t h_etcd_count_prefix(const struct h_etcd *e, const char *prefix);
/* Deletes every key under prefix; returns how many. */
size_t h_etcd_delete_prefix(const struct h_etcd *e, const char *prefix);

/* Grants a lease of ttl seconds; returns its ID (decimal string, caller frees) and stores
 * the TTL etcd granted in *granted when not NULL. Fails the test on error. */
char *h_etcd_lease_grant(const struct h_etcd *e, long ttl, long *granted);
/* Revokes a lease; true on 200 (404 when unknown or expired). */
bool h_etcd_lease_revoke(const struct h_etcd *e, const char *lease);

/* Standard base64 with padding, as the gateway wants bytes fields; caller frees. */
char *h_etcd_b64(const void *data, size_t len);
/* Decodes base64 (NUL-terminated result, length in *len when not NULL) or NULL when it
 * is not valid base64; caller frees. */
char *h_etcd_unb64(const char *text, size_t *len);
/* The range end that selects every key starting with prefix (clientv3 getPrefix), as
 * base64; caller frees. */
char *h_etcd_prefix_end_b64(const char *prefix);

#endif
