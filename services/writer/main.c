/* strata-writer: arguments, the node's config, logging, then the server
 * (server.c) until SIGINT/SIGTERM or the terminate verb. */
#define _GNU_SOURCE
#include "writer.h"

/* What this process reads of the node config (svc_node_defaults). */
static const char *const uses[] = {"node", "writer", "security", "log", NULL};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: strata-writer [-c FILE] [--print-config] [-h] [--version]\n"
            "  -c, --config FILE  the node's ZPL config (also $STRATA_CONFIG), one file\n"
            "                     for all its processes (deploy/node.cfg); every key can\n"
            "                     be overridden by STRATA_<SECTION>_<KEY>, e.g.\n"
            "                     STRATA_WRITER_SYNC_INTERVAL_MS=5\n"
            "  A client endpoint beyond loopback needs security/curve = true, a\n"
            "  server_cert and a clients_dir (stratactl keygen makes the certificates):\n"
            "  without CURVE any client on the network may write and run admin verbs.\n"
            "  --print-config     print the effective config and where each value came from\n"
            "Without a config it serves %s with data under ./strata-data.\n",
            "tcp://127.0.0.1:7400");
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-writer", WRITER_VERSION, usage, &config_file,
                            &print_config);
    if (rc >= 0)
        return rc;
    for (bool again = true; again;) {
        svc_config_t *cfg = NULL;
        if ((rc = svc_config_start("strata-writer", config_file, print_config, writer_check_config,
                                   uses, &cfg)) >= 0)
            return rc;
        zsys_init(); /* once; a no-op after */
        strata_error_t err;
        strata_error_clear(&err);
        writer_t *w = NULL;
        if ((rc = svc_log_init("strata-writer", svc_config_get(cfg, "log/level"),
                               svc_config_get(cfg, "log/format"), &err)) == 0)
            rc = writer_new(cfg, &w, &err); /* takes cfg */
        else
            svc_config_destroy(&cfg);
        if (rc) {
            log_error("event=start_failed error=\"%s\"", err.msg);
            return 1;
        }
        writer_run(w);
        /* A restart in place (a snapshot to install) keeps the pid that
         * writer.endpoints and the node's other processes know. */
        again = writer_restarting(w) && !zsys_interrupted;
        if (!again)
            svc_notify_stopping();
        writer_destroy(&w);
    }
    return 0;
}
