/* ROUTER framing shared by the services; see router.h. */
#include "router.h"

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
