/* ROUTER framing shared by the services; see router.h. */
#include "router.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"

int svc_router_recv(zsock_t *sock, zframe_t **identity, bool *delimited, zframe_t **payload,
                    size_t *frames)
{
    *identity = *payload = NULL;
    *delimited = false;
    *frames = 0;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return -1;
    size_t n = zmsg_size(msg);
    *identity = zmsg_pop(msg);
    *delimited = n == 3 && zframe_size(zmsg_first(msg)) == 0;
    if (*delimited)
        zframe_destroy(&(zframe_t *){zmsg_pop(msg)});
    *frames = n ? n - 1 : 0;
    if (zmsg_size(msg) == 1)
        *payload = zmsg_pop(msg);
    zmsg_destroy(&msg);
    return 0;
}

void svc_router_send(zsock_t *sock, zframe_t *identity, bool delimited, const strata_reply_t *rep)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    strata_error_t err;
    if (strata_reply_encode(rep, &buf, &len, &err) != 0) {
        log_error("event=encode_failed op=%s error=\"%s\"", strata_op_name(rep->op), err.msg);
        return;
    }
    zmsg_t *msg = zmsg_new();
    zmsg_append(msg, &(zframe_t *){zframe_dup(identity)});
    if (delimited)
        zmsg_addmem(msg, NULL, 0);
    zmsg_addmem(msg, buf, len);
    free(buf);
    zmsg_send(&msg, sock);
}

void svc_router_send_error(zsock_t *sock, zframe_t *identity, bool delimited, uint64_t request_id,
                           int code, const char *text)
{
    strata_reply_t rep = {.request_id = request_id, .status = code, .message = text};
    svc_router_send(sock, identity, delimited, &rep);
}

int svc_router_serve_control(zsock_t *sock, svc_control_fn *fn, void *arg, const char *wrong_op)
{
    zframe_t *identity, *payload;
    bool delimited;
    size_t frames;
    if (svc_router_recv(sock, &identity, &delimited, &payload, &frames) != 0)
        return zsys_interrupted ? -1 : 0;
    strata_request_t req;
    strata_error_t err;
    if (!identity || !payload) {
        if (identity)
            svc_router_send_error(sock, identity, delimited, 0, STRATA_EINVAL,
                                  "request: expected one payload frame");
    } else if (strata_request_decode(zframe_data(payload), zframe_size(payload), &req, &err) != 0) {
        svc_router_send_error(sock, identity, delimited, req.request_id, STRATA_EINVAL, err.msg);
    } else {
        if (req.op == STRATA_OP_CONTROL)
            fn(arg, identity, delimited, &req);
        else
            svc_router_send_error(sock, identity, delimited, req.request_id, STRATA_EINVAL,
                                  wrong_op);
        strata_request_clear(&req);
    }
    zframe_destroy(&identity);
    zframe_destroy(&payload);
    return 0;
}

int svc_interrupt_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    const _Atomic bool *stop = arg;
    return zsys_interrupted || (stop && atomic_load(stop)) ? -1 : 0;
}

int svc_control_bind(const char *configured, const char *data_dir, const char *service,
                     zsock_t **router, char *endpoint, size_t cap, strata_error_t *err)
{
    char bind_ep[PATH_MAX + 64];
    if (*configured)
        snprintf(bind_ep, sizeof bind_ep, "%s", configured);
    else
        snprintf(bind_ep, sizeof bind_ep, "ipc://%.4000s/%s.ctl", data_dir, service);
    *router = zsock_new(ZMQ_ROUTER);
    if (!*router || zsock_bind(*router, "%s", bind_ep) < 0) {
        const char *why = *router ? zmq_strerror(zmq_errno()) : "cannot create a ROUTER socket";
        zsock_destroy(router);
        return strata_error_set(err, STRATA_EIO, "%s/endpoint: cannot bind %s: %s", service,
                                bind_ep, why);
    }
    zsock_set_maxmsgsize(*router, STRATA_PROTO_MAX_MESSAGE);
    char *last = zsock_last_endpoint(*router);
    snprintf(endpoint, cap, "%s", last ? last : bind_ep);
    zstr_free(&last);
    return 0;
}

bool svc_endpoint_is_ipc(const char *endpoint)
{
    return endpoint && !strncmp(endpoint, "ipc://", 6);
}
