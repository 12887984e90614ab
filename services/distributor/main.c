/* strata-distributor: fans the node's committed records out to remote
 * subscribers (proto/DISTRIBUTION.md). Parses arguments and config, then
 * runs the server object of distributor.c until interrupted. */
#include <stdio.h>

#include "distributor.h"
#include "log.h"

static const char default_config[] =
    "node\n"
    "    name = node1\n"
    "    data_dir = ./strata-data\n"
    "distributor\n"
    "    live = tcp://127.0.0.1:7410\n"
    "    delayed = tcp://127.0.0.1:7411\n"
    "    history = tcp://127.0.0.1:7412\n"
    "    delay_ms = 100\n"
    "    heartbeat_ms = 100\n"
    "    sndhwm = 100000\n"
    /* entry bytes ZeroMQ may hold for the subscribers of one stream */
    "    pub_queue_mb = 64\n"
    /* connections to each stream, at most the fd limit less 256 */
    "    max_subscribers = 10000\n"
    "    window = 1000\n"
    "    max_window = 65536\n"
    "    max_unacked_mb = 16\n"
    "    max_sessions = 1024\n"
    "    session_expire_s = 604800\n"
    "    ack_timeout_ms = 2000\n"
    "    ack_flush_ms = 5\n"
    "    session_timeout_ms = 10000\n"
    /* the node's CURVE settings, shared by its processes (lib/service/curve.h) */
    "security\n"
    "    curve = false\n"
    "    server_cert = \"\"\n"
    "    clients_dir = \"\"\n"
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
    rc = svc_config_load(default_config, config_file, &cfg, &err);
    if (rc == 0 && (rc = dist_check_config(cfg, &err)) == 0 && print_config) {
        svc_config_print(cfg, stdout);
        svc_config_destroy(&cfg);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "strata-distributor: %s\n", err.msg);
        svc_config_destroy(&cfg);
        return 2;
    }
    zsys_init();
    dist_t *dist = NULL;
    if ((rc = svc_log_init("strata-distributor", svc_config_get(cfg, "log/level"), &err)) ||
        (rc = dist_new(&cfg, &dist, &err))) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        fprintf(stderr, "strata-distributor: %s\n", err.msg);
        svc_config_destroy(&cfg);
        return 1;
    }
    dist_run(dist, NULL);
    dist_destroy(&dist);
    log_info("event=stopped");
    return 0;
}
