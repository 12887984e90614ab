/* The node registry: one ZPL tree that every process of a node loads, so a
 * single file can configure all of them and a misspelling in any section is
 * caught by whichever process reads it. */
#include "config.h"

#include <stddef.h>

const char svc_node_defaults[] =
    /* shared by every process */
    "node\n"
    "    name = node1\n"
    "    data_dir = ./strata-data\n"
    /* CURVE on the node's TCP endpoints (lib/service/curve.h) */
    "security\n"
    "    curve = false\n"
    "    server_cert = \"\"\n"
    "    clients_dir = \"\"\n"
    "log\n"
    "    level = info\n"
    "    format = text\n"
    "writer\n"
    "    endpoint = tcp://127.0.0.1:7400\n"
    "    control = \"\"\n" /* empty: ipc://<data_dir>/writer.ctl */
    "    memtable_mb = 128\n"
    "    max_immutable_memtables = 4\n"
    "    sync_interval_ms = 10\n"
    "    wal_segment_mb = 64\n"
    /* also the compactor's: its outputs are compressed as the flushes are */
    "    lz4 = false\n"
    "    scan_limit = 1000\n"
    /* empty: /dev/shm/strata-<name>-<hash of data_dir>.ring */
    "    ring = \"\"\n"
    "    ring_mb = 64\n"
    "    wal_retain_mb = 1024\n"
    "    wal_retain_hours = 24\n"
    /* snapshot: only the snapshotter's truncate_wal deletes the WAL;
       flush: each flush does (no snapshotter) */
    "    wal_truncation = snapshot\n"
    /* compactor: strata-compactor compacts and installs its results here;
       internal: a thread of the writer */
    "    compaction = compactor\n"
    /* client connections, at most the fd limit less 256 */
    "    max_clients = 10000\n"
    /* reply bytes queued for clients, all together */
    "    reply_queue_mb = 64\n"
    "    metrics = 127.0.0.1:7480\n"
    /* the node's election and replicator connect here (proto/TRANSPORT.md);
       empty: ipc://<data_dir>/writer.raft */
    "    raft = \"\"\n"
    "compactor\n"
    "    endpoint = \"\"\n" /* empty: ipc://<data_dir>/compactor.ctl */
    "    l0_trigger = 4\n"
    "    level1_mb = 64\n"
    "    target_file_mb = 8\n"
    "    rate_mb_s = 0\n"     /* bytes written per second; 0: unlimited */
    "    cpu_percent = 100\n" /* of one core, while compacting */
    "    metrics = 127.0.0.1:7483\n"
    "snapshotter\n"
    "    endpoint = \"\"\n" /* empty: ipc://<data_dir>/snapshotter.ctl */
    "    dir = \"\"\n"      /* empty: <data_dir>/snapshots (same file system: hard links) */
    "    interval_s = 1800\n"
    "    keep = 3\n"
    "    truncate_wal = true\n"
    "    metrics = 127.0.0.1:7482\n"
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
    "    metrics = 127.0.0.1:7481\n"
    /* consensus (lib/raft/raft.md, proto/TRANSPORT.md); id 0: a single node
       without it. Lists: "1,2,3"; peer lists: "1=tcp://host:port,2=..." with
       every node, this one too */
    "cluster\n"
    "    id = 0\n"
    "    voters = \"\"\n"
    "    learners = \"\"\n"
    "    election_peers = \"\"\n"
    "    replicator_peers = \"\"\n"
    "    client_peers = \"\"\n"
    "    heartbeat_ms = 50\n"
    "    election_min_ms = 500\n"
    "    election_max_ms = 1000\n"
    "    lease_ms = 400\n"
    /* true: an empty data dir is a new cluster's first start, not a wiped
       node (which rejoins as a learner) */
    "    bootstrap = false\n"
    /* writes that do not say: quorum (acknowledged once durable on a
       majority) or async (once durable on the master) */
    "    replication = quorum\n"
    /* async writes are refused while the nearest follower lags this long */
    "    max_lag_ms = 1000\n"
    /* the master keeps WAL a follower still needs up to this many MiB; a
       follower further behind copies the master's newest snapshot */
    "    follower_retain_mb = 4096\n"
    "election\n"
    /* empty: all interfaces, the port of this node's election_peers entry */
    "    bind = \"\"\n"
    /* where the node's role is published (XPUB); empty:
       ipc://<data_dir>/election.roles */
    "    roles = \"\"\n"
    "    metrics = 127.0.0.1:7484\n"
    "replicator\n"
    "    bind = \"\"\n"
    "    metrics = 127.0.0.1:7485\n";

/* STRATA_ variables that are not config overrides but are read elsewhere:
 * the CLI's, the launcher's, the tests'. Without this list a process would
 * refuse to start in the environment they set. */
const char *const svc_env_allowed[] = {"STRATA_CONFIG",     /* every service: the config file */
                                       "STRATA_SERVER",     /* stratactl */
                                       "STRATA_SERVER_KEY", /* stratactl */
                                       "STRATA_CERT",       /* stratactl */
                                       "STRATA_NODE_START_TIMEOUT", /* deploy/strata-node */
                                       "STRATA_NODE_STOP_TIMEOUT",  /* deploy/strata-node */
                                       "STRATA_NODE_LOG_MAX_KB",    /* deploy/strata-node */
                                       "STRATA_TEST_SEED",          /* tests */
                                       "STRATA_TEST_TRACE",         /* tests */
                                       "STRATA_SOAK",               /* tests */
                                       "STRATA_STABILITY_S",        /* tests */
                                       "STRATA_WRITER_BIN", /* tests and benchmarks: the binaries */
                                       "STRATA_COMPACTOR_BIN",
                                       "STRATA_SNAPSHOTTER_BIN",
                                       "STRATA_DISTRIBUTOR_BIN",
                                       "STRATA_ELECTION_BIN",
                                       "STRATA_REPLICATOR_BIN",
                                       NULL};
