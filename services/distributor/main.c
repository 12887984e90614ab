/* strata-distributor: fans the node's committed records out to remote
 * subscribers (proto/DISTRIBUTION.md). Parses arguments and config, then
 * runs the server object of distributor.c until interrupted. */
#include <stdio.h>

#include "distributor.h"
#include "log.h"
#include "node.h"

/* What this process reads of the node config (svc_node_defaults). */
static const char *const uses[] = {"node", "distributor", "security", "log", NULL};

static void usage(FILE *out)
{
    fprintf(out, "usage: strata-distributor [-c FILE] [--print-config] [-h] [--version]\n"
                 "Reads the ring and WAL of the writer whose node/data_dir it shares.\n");
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-distributor", DISTRIBUTOR_VERSION, usage,
                            &config_file, &print_config);
    if (rc >= 0)
        return rc;

    svc_config_t *cfg = NULL;
    if ((rc = svc_config_start("strata-distributor", config_file, print_config, dist_check_config,
                               uses, &cfg)) >= 0)
        return rc;
    strata_error_t err;
    strata_error_clear(&err);
    zsys_init();
    dist_t *dist = NULL;
    if ((rc = svc_log_init("strata-distributor", svc_config_get(cfg, "log/level"),
                           svc_config_get(cfg, "log/format"), &err)) ||
        (rc = dist_new(&cfg, &dist, &err))) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        svc_config_destroy(&cfg);
        return 1;
    }
    dist_run(dist, NULL);
    svc_notify_stopping();
    dist_destroy(&dist);
    log_info("event=stopped");
    return 0;
}
