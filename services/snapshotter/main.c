/* strata-snapshotter: arguments and the node's config, then the server
 * object (snapshotter.h) until SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <czmq.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "snapshotter.h"

/* What this process reads of the node config (svc_node_defaults). */
static const char *const uses[] = {"node", "snapshotter", "security", "log", NULL};

static void usage(FILE *out)
{
    fprintf(out, "usage: strata-snapshotter [-c FILE] [--print-config] [-h] [--version]\n"
                 "Snapshots the node whose writer shares its node/data_dir, every\n"
                 "snapshotter/interval_s and on request, and truncates the WAL they cover.\n");
}

int main(int argc, char **argv)
{
    const char *config_file;
    bool print_config;
    int rc = svc_parse_args(argc, argv, "strata-snapshotter", SNAPSHOTTER_VERSION, usage,
                            &config_file, &print_config);
    if (rc >= 0)
        return rc;
    svc_config_t *cfg = NULL;
    if ((rc = svc_config_start("strata-snapshotter", config_file, print_config,
                               snapshotter_check_config, uses, &cfg)) >= 0)
        return rc;
    strata_error_t err;
    strata_error_clear(&err);
    zsys_init();
    snapshotter_t *s = NULL;
    if ((rc = svc_log_init("strata-snapshotter", svc_config_get(cfg, "log/level"),
                           svc_config_get(cfg, "log/format"), &err)) == 0)
        rc = snapshotter_new(cfg, &s, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        return 1;
    }
    snapshotter_run(s);
    svc_notify_stopping();
    snapshotter_destroy(&s);
    return 0;
}
