/* strata-writer: arguments, the node's config, logging, then the server
 * (server.c) until SIGINT/SIGTERM or the terminate verb. */
#define _GNU_SOURCE
#include "writer.h"

static const char default_config[] = "node\n"
                                     "    name = node1\n"
                                     "    data_dir = ./strata-data\n"
                                     "writer\n"
                                     "    endpoint = tcp://127.0.0.1:7400\n"
                                     "    control = \"\"\n" /* empty: ipc://<data_dir>/writer.ctl */
                                     "    memtable_mb = 128\n"
                                     "    max_immutable_memtables = 4\n"
                                     "    sync_interval_ms = 10\n"
                                     "    wal_segment_mb = 64\n"
                                     "    lz4 = false\n"
                                     "    scan_limit = 1000\n"
                                     /* empty: /dev/shm/strata-<name>-<hash of data_dir>.ring */
                                     "    ring = \"\"\n"
                                     "    ring_mb = 64\n"
                                     "    wal_retain_mb = 1024\n"
                                     "    wal_retain_hours = 24\n"
                                     /* snapshot: only the snapshotter's truncate_wal deletes
                                        the WAL; flush: each flush does (no snapshotter) */
                                     "    wal_truncation = snapshot\n"
                                     /* compactor: strata-compactor compacts and installs its
                                        results here; internal: a thread of this process */
                                     "    compaction = compactor\n"
                                     /* client connections, at most the fd limit less 256 */
                                     "    max_clients = 10000\n"
                                     /* reply bytes queued for clients, all together */
                                     "    reply_queue_mb = 64\n"
                                     /* CURVE on the client endpoint: see lib/service/curve.h */
                                     "security\n"
                                     "    curve = false\n"
                                     "    server_cert = \"\"\n"
                                     "    clients_dir = \"\"\n"
                                     "metrics\n"
                                     "    endpoint = 127.0.0.1:7480\n"
                                     "log\n"
                                     "    level = info\n";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: strata-writer [-c FILE] [--print-config] [-h] [--version]\n"
            "  -c, --config FILE  ZPL config (also $STRATA_CONFIG); every key can be\n"
            "                     overridden by STRATA_<SECTION>_<KEY>, e.g.\n"
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
    svc_config_t *cfg = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    if (svc_config_load(default_config, config_file, &cfg, &err)) {
        fprintf(stderr, "strata-writer: %s\n", err.msg);
        return 2;
    }
    if (print_config) {
        svc_config_print(cfg, stdout);
        svc_config_destroy(&cfg);
        return 0;
    }
    zsys_init();
    writer_t *w = NULL;
    if ((rc = svc_log_init("strata-writer", svc_config_get(cfg, "log/level"), &err)) == 0)
        rc = writer_new(cfg, &w, &err); /* takes cfg */
    else
        svc_config_destroy(&cfg);
    if (rc) {
        log_error("event=start_failed error=\"%s\"", err.msg);
        fprintf(stderr, "strata-writer: %s\n", err.msg);
        return 1;
    }
    writer_run(w);
    writer_destroy(&w);
    return 0;
}
