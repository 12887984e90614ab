/* strata-compactor: arguments and the node's config, then the server object
 * (compactor.h) until SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>

#include "compactor.h"
#include "config.h"
#include "log.h"

static const char default_config[] =
    "node\n"
    "    name = node1\n"
    "    data_dir = ./strata-data\n"
    "compactor\n"
    "    endpoint = \"\"\n" /* empty: ipc://<data_dir>/compactor.ctl */
    "    l0_trigger = 4\n"
    "    level1_mb = 64\n"
    "    target_file_mb = 8\n"
    "    rate_mb_s = 0\n"     /* bytes written per second; 0: unlimited */
    "    cpu_percent = 100\n" /* of one core, while compacting */
    "writer\n"
    "    lz4 = false\n" /* the writer's: outputs are compressed as its flushes are */
    /* the node's CURVE settings, shared by its processes (lib/service/curve.h) */
    "security\n"
    "    curve = false\n"
    "    server_cert = \"\"\n"
    "    clients_dir = \"\"\n"
    "metrics\n"
    "    endpoint = 127.0.0.1:7483\n"
    "log\n"
    "    level = info\n";

static void usage(FILE *out)
{
    fprintf(out, "usage: strata-compactor [-c FILE] [--print-config] [-h] [--version]\n"
                 "Compacts the node whose writer shares its node/data_dir: picks from the\n"
                 "writer's version, merges into <data_dir>/compaction, and has the writer\n"
                 "install the result.\n");
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-compactor", compactor_version(), usage,
                            &config_file, &print_config);
    if (rc >= 0)
        return rc;
    svc_config_t *cfg = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    if (svc_config_load(default_config, config_file, &cfg, &err) ||
        compactor_check_config(cfg, &err)) {
        fprintf(stderr, "strata-compactor: %s\n", err.msg);
        svc_config_destroy(&cfg);
        return 2;
    }
    if (print_config) {
        svc_config_print(cfg, stdout);
        svc_config_destroy(&cfg);
        return 0;
    }
    zsys_init();
    compactor_t *c = NULL;
    if ((rc = svc_log_init("strata-compactor", svc_config_get(cfg, "log/level"), &err)) == 0)
        rc = compactor_new(cfg, &c, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        fprintf(stderr, "strata-compactor: %s\n", err.msg);
        return 1;
    }
    compactor_run(c);
    compactor_destroy(&c);
    return 0;
}
