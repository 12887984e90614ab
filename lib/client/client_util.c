#include "client_util.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    zsys_init();
}

void client_zsys_init_once(void)
{
    pthread_once(&s_once, s_init);
}

int client_curve_apply(zsock_t *sock, const char *server_key, const char *cert, strata_error_t *err)
{
    if (!server_key && !cert)
        return 0;
    if (!server_key || !cert)
        return strata_error_set(err, STRATA_EINVAL,
                                "curve: needs both curve_server_key and curve_cert");
    zcert_t *mine = zcert_load(cert);
    if (!mine)
        return strata_error_set(err, STRATA_EINVAL, "curve_cert: cannot read %s", cert);
    char key[41];
    if (strlen(server_key) == 40) {
        snprintf(key, sizeof key, "%s", server_key);
    } else {
        zcert_t *theirs = zcert_load(server_key);
        if (!theirs) {
            zcert_destroy(&mine);
            return strata_error_set(err, STRATA_EINVAL,
                                    "curve_server_key: '%s' is neither 40 characters of Z85 nor "
                                    "a certificate file",
                                    server_key);
        }
        snprintf(key, sizeof key, "%s", zcert_public_txt(theirs));
        zcert_destroy(&theirs);
    }
    zcert_apply(mine, sock);
    zcert_destroy(&mine);
    zsock_set_curve_serverkey(sock, key);
    return 0;
}

int64_t client_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t client_deadline_ms(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : client_mono_ms() + timeout_ms;
}

long client_remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - client_mono_ms();
    return left > 0 ? (long)left : 0;
}

static void s_free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* One frame, MORE when others follow. A frame sent is ZeroMQ's; on failure
 * frame is still the caller's to close. */
static int s_send_frame(void *handle, const char *endpoint, zmq_msg_t *frame, int more,
                        int64_t deadline, int timeout_ms, strata_error_t *err)
{
    /* DONTWAIT and poll so a full send queue costs at most the deadline.
     * Only a message's first frame can find it full: the high-water mark
     * counts whole messages. */
    while (zmq_msg_send(frame, handle, ZMQ_DONTWAIT | more) < 0) {
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
            return strata_error_set(err, STRATA_EIO, "send to %s: %s", endpoint,
                                    zmq_strerror(zmq_errno()));
        long wait_ms = client_remaining_ms(deadline);
        if (wait_ms == 0)
            return strata_error_set(err, STRATA_ETIMEDOUT, "send to %s: queue full for %d ms",
                                    endpoint, timeout_ms);
        zmq_pollitem_t item = {.socket = handle, .events = ZMQ_POLLOUT};
        if (zmq_poll(&item, 1, wait_ms) < 0 && zmq_errno() != EINTR)
            return strata_error_set(err, STRATA_EIO, "poll %s: %s", endpoint,
                                    zmq_strerror(zmq_errno()));
        if (zsys_interrupted)
            return strata_error_set(err, STRATA_ECLOSED, "interrupted");
    }
    return 0;
}

int client_send_frames(void *handle, const char *endpoint, uint8_t *const *bufs, const size_t *lens,
                       size_t n, int64_t deadline, int timeout_ms, strata_error_t *err)
{
    int rc = 0;
    size_t i = 0;
    for (; i < n && rc == 0; i++) {
        zmq_msg_t frame;
        if (zmq_msg_init_data(&frame, bufs[i], lens[i], s_free_frame, NULL) != 0) {
            free(bufs[i]);
            rc = strata_error_set(err, STRATA_ENOMEM, "send to %s: out of memory", endpoint);
            break;
        }
        rc = s_send_frame(handle, endpoint, &frame, i + 1 < n ? ZMQ_SNDMORE : 0, deadline,
                          timeout_ms, err);
        if (rc)
            zmq_msg_close(&frame); /* frees bufs[i] */
    }
    for (; i < n; i++)
        free(bufs[i]);
    return rc;
}

int client_send_request(void *handle, const char *endpoint, const strata_request_t *req,
                        int64_t deadline, int timeout_ms, strata_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = strata_request_encode(req, &buf, &len, err);
    if (rc)
        return rc;
    return client_send_frames(handle, endpoint, &buf, &len, 1, deadline, timeout_ms, err);
}
