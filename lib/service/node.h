/* The files through which a node's processes find each other: each writes
 * <data_dir>/<service>.endpoints once it serves, and the others read the
 * writer's to reach its control endpoint. */
#ifndef STRATA_SVC_NODE_H
#define STRATA_SVC_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "strata/client.h"
#include "strata/codec.h"
#include "strata/err.h"

/* Writes path (<data_dir>/<service>.endpoints) holding <service>/pid and
 * <service>/<name> = value for each of the n pairs, through a temp file and
 * a rename, so a reader never sees half of it. The file says the process
 * serves, so this is also where it tells systemd READY=1 (a no-op without
 * $NOTIFY_SOCKET). */
int svc_write_endpoints(const char *path, const char *service, const strata_pair_t *pairs, size_t n,
                        strata_error_t *err);

/* Tells systemd (Type=notify) that a clean stop has begun, so that it waits
 * for the final fsync rather than counting the time as a hang; call it once,
 * when the service's loop has ended for good (not for a restart in place).
 * A no-op without $NOTIFY_SOCKET. */
void svc_notify_stopping(void);

/* Connects *client to the control endpoint the writer published in
 * writer_file, unless *client is already connected. */
int svc_writer_connect(const char *writer_file, int timeout_ms, strata_client_t **client,
                       strata_error_t *err);

/* How long a readiness probe waits for the writer's answer. */
#define SVC_WRITER_PROBE_MS 1000

/* The readiness rule of every process beside the writer: it is ready only
 * while the writer that published writer_file answers a ping within
 * SVC_WRITER_PROBE_MS. Makes a connection of its own, so any thread may ask
 * (the admin HTTP thread does, at every /readyz). */
bool svc_writer_answers(const char *writer_file);

typedef bool svc_stop_fn(void *arg);

/* Sends req to the writer that published writer_file (connecting *client
 * first if needed) and waits up to timeout_ms for its reply, giving up at
 * once with STRATA_EIO when that writer process is gone (killed, or a new
 * one wrote the file): its reply would never come. stop (may be NULL) is
 * asked every 250 ms; true ends the wait with STRATA_ECLOSED. The reply's
 * own error status is returned with its message; a failure other than a
 * refusal drops the connection, since a restarted writer may be elsewhere. */
int svc_writer_call(const char *writer_file, int timeout_ms, strata_client_t **client,
                    strata_request_t *req, strata_reply_t *rep, svc_stop_fn *stop, void *stop_arg,
                    strata_error_t *err);

/* The value of a reply's pair, or NULL. */
const char *svc_reply_get(const strata_reply_t *rep, const char *name);

#endif
