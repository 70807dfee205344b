/* status.c — GET /v1/status/leader and /v1/status/peers: the one node is its own leader. */
#include "registry.h"

#define REG_RAFT_ADDRESS REG_NODE_ADDRESS ":8300"

static void get_leader(struct ward_req *req, void *arg)
{
    (void)arg;
    reg_respond_json(req, json_string(REG_RAFT_ADDRESS), 0);
}

static void get_peers(struct ward_req *req, void *arg)
{
    (void)arg;
    reg_respond_json(req, json_pack("[s]", REG_RAFT_ADDRESS), 0);
}

enum ward_err reg_status_routes(struct ward_server *srv, struct reg_ctx *ctx)
{
    enum ward_err err = reg_route(srv, "GET", "/v1/status/leader", get_leader, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/status/peers", get_peers, ctx);
    return err;
}
