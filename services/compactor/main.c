/* strata-compactor: arguments and the node's config, then the server object
 * (compactor.h) until SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>

#include "compactor.h"
#include "config.h"
#include "log.h"
#include "node.h"

/* What this process reads of the node config (svc_node_defaults). */
static const char *const uses[] = {"node", "compactor", "writer/lz4", "security", "log", NULL};

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
    if ((rc = svc_config_start("strata-compactor", config_file, print_config,
                               compactor_check_config, uses, &cfg)) >= 0)
        return rc;
    strata_error_t err;
    strata_error_clear(&err);
    zsys_init();
    compactor_t *c = NULL;
    if ((rc = svc_log_init("strata-compactor", svc_config_get(cfg, "log/level"),
                           svc_config_get(cfg, "log/format"), &err)) == 0)
        rc = compactor_new(cfg, &c, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        return 1;
    }
    compactor_run(c);
    svc_notify_stopping();
    compactor_destroy(&c);
    return 0;
}
