/* The node's endpoints files; see node.h. */
#include "node.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

int svc_write_endpoints(const char *path, const char *service, const strata_pair_t *pairs, size_t n,
                        strata_error_t *err)
{
    zconfig_t *root = zconfig_new("root", NULL);
    char key[128], pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(key, sizeof key, "%s/pid", service);
    zconfig_put(root, key, pid);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s/%s", service, pairs[i].name);
        zconfig_put(root, key, pairs[i].value);
    }
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = zconfig_save(root, tmp);
    zconfig_destroy(&root);
    if (rc != 0 || rename(tmp, path) != 0)
        return strata_error_set(err, STRATA_EIO, "cannot write %s", path);
    /* libsystemd rather than a datagram by hand: $NOTIFY_SOCKET may name an
     * abstract socket, and systemd checks the sender's credentials. */
    sd_notify(0, "READY=1");
    return 0;
}

void svc_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

int svc_writer_connect(const char *writer_file, int timeout_ms, strata_client_t **client,
                       strata_error_t *err)
{
    if (*client)
        return 0;
    zconfig_t *root = zconfig_load(writer_file);
    const char *ep = root ? zconfig_get(root, "writer/control", "") : "";
    int rc;
    if (!ep || !*ep) {
        rc = strata_error_set(err, STRATA_EIO, "the writer is not running (no %s)", writer_file);
    } else {
        strata_client_options_t co = {.endpoint = ep, .timeout_ms = timeout_ms};
        rc = strata_client_connect(&co, client, err);
    }
    zconfig_destroy(&root);
    return rc;
}

bool svc_writer_answers(const char *writer_file)
{
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_reply_t rep = {0};
    strata_request_t req = {.op = STRATA_OP_CONTROL, .verb = "ping"};
    int rc =
        svc_writer_call(writer_file, SVC_WRITER_PROBE_MS, &client, &req, &rep, NULL, NULL, &err);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    return rc == 0;
}

/* The pid in writer_file, 0 when there is none to read. */
static long writer_pid(const char *writer_file)
{
    zconfig_t *root = zconfig_load(writer_file);
    const char *pid = root ? zconfig_get(root, "writer/pid", "") : "";
    long v = pid ? strtol(pid, NULL, 10) : 0;
    zconfig_destroy(&root);
    return v;
}

int svc_writer_call(const char *writer_file, int timeout_ms, strata_client_t **client,
                    strata_request_t *req, strata_reply_t *rep, svc_stop_fn *stop, void *stop_arg,
                    strata_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    long pid = writer_pid(writer_file);
    int rc = svc_writer_connect(writer_file, timeout_ms, client, err);
    uint64_t id = 0;
    if (rc == 0)
        rc = strata_client_send(*client, req, &id, err);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (rc == 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= timeout_ms) {
            rc = strata_error_set(err, STRATA_ETIMEDOUT, "the writer did not answer %s in %d ms",
                                  req->verb ? req->verb : strata_op_name(req->op), timeout_ms);
            break;
        }
        long slice = timeout_ms - waited < 250 ? timeout_ms - waited : 250;
        rc = strata_client_recv(*client, (int)slice, rep, err);
        if (rc == 0 && rep->request_id != id) {
            strata_reply_clear(rep); /* a late answer to an earlier call */
            continue;
        }
        if (rc == 0) {
            if (rep->status < 0)
                rc = strata_error_set(err, rep->status, "%s", rep->message);
            break;
        }
        if (rc != STRATA_ETIMEDOUT)
            break;
        rc = 0;
        if (stop && stop(stop_arg)) {
            rc = strata_error_set(err, STRATA_ECLOSED, "stopping while the writer ran %s",
                                  req->verb ? req->verb : strata_op_name(req->op));
            break;
        }
        /* Killed, or restarted in its place: this reply will never come. */
        long now_pid = writer_pid(writer_file);
        if (pid > 0 && (now_pid != pid || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))) {
            rc = strata_error_set(err, STRATA_EIO,
                                  "the writer (pid %ld) went away while it ran %s; nothing "
                                  "will answer it",
                                  pid, req->verb ? req->verb : strata_op_name(req->op));
            break;
        }
    }
    /* Only a refusal leaves the connection known good. */
    if (rc && rc != STRATA_EINVAL && rc != STRATA_EEXIST && rc != STRATA_ESTALE)
        strata_client_destroy(client);
    return rc;
}

const char *svc_reply_get(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    return NULL;
}
