/* strata-distributor: arguments, the node's config, logging, then the server
 * (server.c) until SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include "dist.h"

static const char default_config[] = "node\n"
                                     "    name = node1\n"
                                     "    data_dir = ./strata-data\n"
                                     "distributor\n"
                                     "    live = tcp://127.0.0.1:7410\n"
                                     "    delayed = tcp://127.0.0.1:7411\n"
                                     "    history = tcp://127.0.0.1:7412\n"
                                     "    delay_ms = 100\n"
                                     "    heartbeat_ms = 100\n"
                                     "    sndhwm = 100000\n"
                                     "    window = 1000\n"
                                     "    ack_timeout_ms = 2000\n"
                                     "    ack_flush_ms = 5\n"
                                     "    session_timeout_ms = 10000\n"
                                     "metrics\n"
                                     "    endpoint = 127.0.0.1:7481\n"
                                     "log\n"
                                     "    level = info\n";

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
    strata_error_t err;
    strata_error_clear(&err);
    if (svc_config_load(default_config, config_file, &cfg, &err) || dist_config_check(cfg, &err)) {
        fprintf(stderr, "strata-distributor: %s\n", err.msg);
        svc_config_destroy(&cfg);
        return 2;
    }
    if (print_config) {
        svc_config_print(cfg, stdout);
        svc_config_destroy(&cfg);
        return 0;
    }
    zsys_init();
    dist_t *d = NULL;
    if ((rc = svc_log_init("strata-distributor", svc_config_get(cfg, "log/level"), &err)) == 0)
        rc = dist_new(cfg, &d, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        fprintf(stderr, "strata-distributor: %s\n", err.msg);
        return 1;
    }
    dist_run(d);
    dist_destroy(&d);
    return 0;
}
