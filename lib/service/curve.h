/* CURVE on a service's TCP endpoints (ZeroMQ's CurveZMQ, through czmq's
 * zcert and zauth): the server proves its key, and only clients whose
 * public certificates sit in the allowed directory get in, each with the
 * role its certificate's metadata names. Configured by the node's
 * `security` section:
 *
 *     security
 *         curve = false        # true: every TCP endpoint needs CURVE
 *         server_cert = ""     # this node's certificate, its secret part
 *         clients_dir = ""     # allowed clients' public certificates
 *
 * Roles: `client` (data verbs; the default when a certificate names
 * none), `admin` (also the control verbs), `peer` (another node). The
 * node's own ipc endpoints stay as they are: the file system guards them. */
#ifndef STRATA_SVC_CURVE_H
#define STRATA_SVC_CURVE_H

#include <czmq.h>

#include "config.h"
#include "strata/err.h"

typedef struct svc_curve svc_curve_t;

/* Off: *curve_p is NULL and 0 is returned. On: loads the server
 * certificate (it must hold a secret key) and the allowed certificates,
 * and starts the handler that admits only those. An error names the key
 * and the file. One per process: ZeroMQ has one handler per context. */
int svc_curve_open(svc_config_t *cfg, svc_curve_t **curve_p, strata_error_t *err);
void svc_curve_close(svc_curve_t **curve_p);
/* svc_curve_open's checks of the values and the certificate files, without
 * the handler: what every process reading the section runs at start and for
 * --print-config. */
int svc_curve_check(svc_config_t *cfg, strata_error_t *err);
/* Makes sock a CURVE server with this node's key; before its bind. */
void svc_curve_serve(svc_curve_t *curve, zsock_t *sock);
/* The role of the client that sent frame, from its key; NULL when curve
 * is NULL (CURVE off) or the key is unknown. */
const char *svc_curve_role(svc_curve_t *curve, zframe_t *frame);
/* The public key (40 characters of Z85) of the client that sent frame,
 * as the handshake proved it; NULL when curve is NULL (CURVE off). */
const char *svc_curve_key(svc_curve_t *curve, zframe_t *frame);
/* The public key of the server certificate, Z85 text. */
const char *svc_curve_public(const svc_curve_t *curve);

#endif
