/* strata-snapshotter: arguments, then the server (snapshotter.c) with the node's config until
 * SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* snapshotter.c: loads the config over default_config, runs until interrupted;
 * the process's exit code. */
int snapshotter_main(const char *default_config, const char *config_file, bool print_config);
const char *snapshotter_version(void);

static const char default_config[] =
    "node\n"
    "    name = node1\n"
    "    data_dir = ./strata-data\n"
    "snapshotter\n"
    "    endpoint = \"\"\n" /* empty: ipc://<data_dir>/snapshotter.ctl */
    "    dir = \"\"\n"      /* empty: <data_dir>/snapshots (same file system: hard links) */
    "    interval_s = 1800\n"
    "    keep = 3\n"
    "    truncate_wal = true\n"
    "metrics\n"
    "    endpoint = 127.0.0.1:7482\n"
    "log\n"
    "    level = info\n";

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
    int rc = svc_parse_args(argc, argv, "strata-snapshotter", snapshotter_version(), usage,
                            &config_file, &print_config);
    if (rc >= 0)
        return rc;
    return snapshotter_main(default_config, config_file, print_config);
}
