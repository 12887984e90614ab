/* The files through which a node's processes find each other: each writes
 * <data_dir>/<service>.endpoints once it serves, and the others read the
 * writer's to reach its control endpoint. */
#ifndef STRATA_SVC_NODE_H
#define STRATA_SVC_NODE_H

#include <stddef.h>

#include "strata/client.h"
#include "strata/codec.h"
#include "strata/err.h"

/* Writes path (<data_dir>/<service>.endpoints) holding <service>/pid and
 * <service>/<name> = value for each of the n pairs, through a temp file and
 * a rename, so a reader never sees half of it. */
int svc_write_endpoints(const char *path, const char *service, const strata_pair_t *pairs, size_t n,
                        strata_error_t *err);

/* Connects *client to the control endpoint the writer published in
 * writer_file, unless *client is already connected. */
int svc_writer_connect(const char *writer_file, int timeout_ms, strata_client_t **client,
                       strata_error_t *err);

/* The value of a reply's pair, or NULL. */
const char *svc_reply_get(const strata_reply_t *rep, const char *name);

#endif
