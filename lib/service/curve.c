/* See curve.h. */
#include "curve.h"

#include <stdbool.h>
#include <string.h>

struct svc_curve {
    zcert_t *server;
    zcertstore_t *clients; /* public key text -> certificate, for roles */
    zactor_t *auth;        /* czmq's ZAP handler: admits only clients */
};

/* The security section's values and files, loaded into a new *c (NULL
 * with 0 when CURVE is off). */
static int s_load(svc_config_t *cfg, svc_curve_t **c_p, strata_error_t *err)
{
    *c_p = NULL;
    bool on = false;
    if (!svc_config_get(cfg, "security/curve"))
        return 0; /* a config without the section (an embedded test's): off */
    int rc = svc_config_bool(cfg, "security/curve", &on, err);
    if (rc || !on)
        return rc;
    const char *server = svc_config_get(cfg, "security/server_cert");
    const char *clients = svc_config_get(cfg, "security/clients_dir");
    if (!*server)
        return strata_error_set(err, STRATA_EINVAL,
                                "security/server_cert: empty, and security/curve is on");
    if (!*clients)
        return strata_error_set(err, STRATA_EINVAL,
                                "security/clients_dir: empty, and security/curve is on");
    svc_curve_t *c = calloc(1, sizeof *c);
    if (!c)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    c->server = zcert_load(server);
    static const char no_secret[] = "0000000000000000000000000000000000000000";
    if (!c->server || !strcmp(zcert_secret_txt(c->server), no_secret)) {
        svc_curve_close(&c);
        return strata_error_set(err, STRATA_EINVAL,
                                "security/server_cert: %s is not a certificate with a secret key "
                                "(stratactl keygen writes one)",
                                server);
    }
    if (!zsys_file_exists(clients) || !(c->clients = zcertstore_new(clients))) {
        svc_curve_close(&c);
        return strata_error_set(err, STRATA_EINVAL,
                                "security/clients_dir: %s is not a directory of certificates",
                                clients);
    }
    *c_p = c;
    return 0;
}

int svc_curve_check(svc_config_t *cfg, strata_error_t *err)
{
    svc_curve_t *c = NULL;
    int rc = s_load(cfg, &c, err);
    svc_curve_close(&c);
    return rc;
}

int svc_curve_open(svc_config_t *cfg, svc_curve_t **curve_p, strata_error_t *err)
{
    svc_curve_t *c = NULL;
    *curve_p = NULL;
    int rc = s_load(cfg, &c, err);
    if (rc || !c)
        return rc;
    const char *clients = svc_config_get(cfg, "security/clients_dir");
    c->auth = zactor_new(zauth, NULL);
    if (!c->auth || zstr_sendx(c->auth, "CURVE", clients, NULL) != 0 || zsock_wait(c->auth) != 0) {
        svc_curve_close(&c);
        return strata_error_set(err, STRATA_EIO, "security: cannot start the CURVE handler");
    }
    *curve_p = c;
    return 0;
}

void svc_curve_close(svc_curve_t **curve_p)
{
    svc_curve_t *c = *curve_p;
    if (!c)
        return;
    zactor_destroy(&c->auth);
    zcertstore_destroy(&c->clients);
    zcert_destroy(&c->server);
    free(c);
    *curve_p = NULL;
}

void svc_curve_serve(svc_curve_t *curve, zsock_t *sock)
{
    if (!curve)
        return;
    zcert_apply(curve->server, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, "strata");
}

const char *svc_curve_role(svc_curve_t *curve, zframe_t *frame)
{
    if (!curve)
        return NULL;
    /* zauth hands the certificate's metadata on with each message; the
     * key, as User-Id, finds it in our store otherwise. */
    const char *role = zframe_meta(frame, "role");
    if (role && *role)
        return role;
    const char *key = zframe_meta(frame, "User-Id");
    zcert_t *cert = key ? zcertstore_lookup(curve->clients, key) : NULL;
    if (!cert)
        return NULL;
    role = zcert_meta(cert, "role");
    return role && *role ? role : "client";
}

const char *svc_curve_key(svc_curve_t *curve, zframe_t *frame)
{
    if (!curve)
        return NULL;
    /* zauth answers the handshake with the client's key as the ZAP user
     * id, and libzmq hands that on with every message as User-Id. */
    const char *key = zframe_meta(frame, "User-Id");
    return key && strlen(key) == 40 ? key : NULL;
}

const char *svc_curve_public(const svc_curve_t *curve)
{
    return zcert_public_txt(curve->server);
}
