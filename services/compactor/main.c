/* strata-compactor: arguments, then the server (compactor.c) with the node's config until
 * SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* compactor.c: loads the config over default_config, runs until interrupted;
 * the process's exit code. */
int compactor_main(const char *default_config, const char *config_file, bool print_config);
const char *compactor_version(void);

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
    return compactor_main(default_config, config_file, print_config);
}
