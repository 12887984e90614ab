/* Start-up of the engine and the shared-memory ring from the config. */
#define _GNU_SOURCE
#include "writer.h"

/* Ring feed: each group's bytes go into the ring once committed, and become
 * visible to readers once fdatasync covers them too (the ring publishes up
 * to the smaller of the two), so a subscriber never sees a record that a
 * power cut or a new master could take back. */
static void ring_on_committed(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                              uint64_t last_seq)
{
    writer_t *w = arg;
    strata_ring_t *ring = atomic_load(&w->ring);
    if (!ring)
        return;
    strata_error_t err;
    if (strata_ring_append(ring, entries, len, &err) != 0)
        log_error("event=ring_append_failed first_seq=%" PRIu64 " last_seq=%" PRIu64
                  " error=\"%s\"",
                  first_seq, last_seq, err.msg);
}

static void ring_on_durable(void *arg, uint64_t seq)
{
    writer_t *w = arg;
    strata_ring_t *ring = atomic_load(&w->ring);
    if (ring)
        strata_ring_publish(ring, seq);
}

/* Every value the writer reads from its config, checked before anything
 * is opened, so that --print-config refuses what a start would. */
typedef struct {
    uint64_t memtable_mb, max_imm, interval, segment_mb, scan_limit, retain_mb, retain_hours;
    uint64_t ring_mb, max_clients, reply_mb;
    bool lz4, snapshot_truncation, external_compaction;
    uint32_t cluster_id;
} options_t;

static int read_options(svc_config_t *cfg, options_t *o, strata_error_t *err)
{
    int rc;
    if ((rc = svc_config_u64(cfg, "writer/memtable_mb", &o->memtable_mb, err)) ||
        (rc = svc_config_u64(cfg, "writer/max_immutable_memtables", &o->max_imm, err)) ||
        (rc = svc_config_u64(cfg, "writer/sync_interval_ms", &o->interval, err)) ||
        (rc = svc_config_u64(cfg, "writer/wal_segment_mb", &o->segment_mb, err)) ||
        (rc = svc_config_u64(cfg, "writer/scan_limit", &o->scan_limit, err)) ||
        (rc = svc_config_bool(cfg, "writer/lz4", &o->lz4, err)) ||
        (rc = svc_config_u64(cfg, "writer/wal_retain_mb", &o->retain_mb, err)) ||
        (rc = svc_config_u64(cfg, "writer/wal_retain_hours", &o->retain_hours, err)) ||
        (rc = svc_config_u64(cfg, "writer/ring_mb", &o->ring_mb, err)))
        return rc;
    const char *truncation = svc_config_get(cfg, "writer/wal_truncation");
    if (strcmp(truncation, "snapshot") && strcmp(truncation, "flush"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/wal_truncation: '%s', needs snapshot or flush", truncation);
    const char *compaction = svc_config_get(cfg, "writer/compaction");
    if (strcmp(compaction, "compactor") && strcmp(compaction, "internal"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/compaction: '%s', needs compactor or internal", compaction);
    if (o->memtable_mb < 1 || o->memtable_mb > 16384 || o->max_imm < 1 || o->max_imm > 64 ||
        o->interval < 1 || o->interval > 60000 || o->segment_mb < 1 || o->segment_mb > 4096 ||
        o->scan_limit < 1 || o->scan_limit > STRATA_PROTO_MAX_SCAN_LIMIT)
        return strata_error_set(
            err, STRATA_EINVAL,
            "writer config out of range: memtable_mb 1..16384, max_immutable_memtables 1..64, "
            "sync_interval_ms 1..60000, wal_segment_mb 1..4096, scan_limit 1..%u",
            STRATA_PROTO_MAX_SCAN_LIMIT);
    if (strcmp(svc_config_get(cfg, "writer/ring"), "off") &&
        (o->ring_mb < 1 || o->ring_mb > 65536 || (o->ring_mb & (o->ring_mb - 1))))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/ring_mb: %" PRIu64 ", needs a power of two in 1..65536",
                                o->ring_mb);
    /* A config without these keys (an embedded test's) takes the default. */
    o->max_clients = 10000;
    if (svc_config_get(cfg, "writer/max_clients") &&
        (rc = svc_config_u64(cfg, "writer/max_clients", &o->max_clients, err)))
        return rc;
    o->reply_mb = 64;
    if (svc_config_get(cfg, "writer/reply_queue_mb") &&
        (rc = svc_config_u64(cfg, "writer/reply_queue_mb", &o->reply_mb, err)))
        return rc;
    if (o->reply_mb < 1 || o->reply_mb > 1048576)
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/reply_queue_mb: %" PRIu64 " not in [1, 1048576]",
                                o->reply_mb);
    if ((rc = svc_http_check("writer/metrics", svc_config_get(cfg, "writer/metrics"), err)))
        return rc;
    cluster_options_t *co = malloc(sizeof *co);
    if (!co)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    rc = cluster_read_options(cfg, co, err);
    o->cluster_id = co->id;
    free(co);
    if (rc)
        return rc;
    o->snapshot_truncation = !strcmp(truncation, "snapshot");
    o->external_compaction = !strcmp(compaction, "compactor");
    return 0;
}

int writer_check_config(svc_config_t *cfg, strata_error_t *err)
{
    options_t o;
    return read_options(cfg, &o, err);
}

static int open_ring(writer_t *w, uint64_t ring_mb, uint64_t last_seq, strata_error_t *err)
{
    const char *path = svc_config_get(w->cfg, "writer/ring");
    if (!strcmp(path, "off"))
        return 0;
    if (*path) {
        snprintf(w->ring_path, sizeof w->ring_path, "%s", path);
    } else {
        /* Several nodes may share a host (tests, a laptop): the data dir
         * tells their rings apart. FNV-1a is plenty for that. */
        uint32_t h = 2166136261u;
        for (const char *p = w->data_dir; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(w->ring_path, sizeof w->ring_path, "/dev/shm/strata-%s-%08x.ring",
                 svc_config_get(w->cfg, "node/name"), h);
    }
    strata_ring_options_t ro = {.capacity_bytes = ring_mb << 20, .first_seq = last_seq + 1};
    strata_ring_t *ring = NULL;
    int rc = strata_ring_create(w->ring_path, &ro, &ring, err);
    if (rc)
        return rc;
    atomic_store(&w->ring, ring);
    return 0;
}

int open_db(writer_t *w, strata_error_t *err)
{
    options_t o;
    int rc = read_options(w->cfg, &o, err);
    if (rc)
        return rc;
    w->scan_limit = (uint32_t)o.scan_limit;
    w->max_clients = o.max_clients;
    w->reply_mb = o.reply_mb;
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = w->data_dir;
    opts.memtable_bytes = (size_t)o.memtable_mb << 20;
    opts.max_immutable_memtables = (uint32_t)o.max_imm;
    opts.async_sync_interval_ms = (uint32_t)o.interval;
    opts.wal_segment_bytes = o.segment_mb << 20;
    opts.lz4 = o.lz4;
    opts.on_committed = ring_on_committed;
    opts.wal_on_durable = ring_on_durable;
    opts.wal_observer_arg = w;
    opts.wal_retain_bytes = o.retain_mb << 20;
    opts.wal_retain_ms = o.retain_hours * 3600 * 1000;
    opts.manual_wal_truncation = o.snapshot_truncation;
    /* In a cluster the consensus core says what is committed. */
    opts.commit_mode = o.cluster_id ? STRATA_COMMIT_EXTERNAL : STRATA_COMMIT_LOCAL;
    w->external_compaction = o.external_compaction;
    opts.disable_auto_compaction = w->external_compaction;
    uint64_t start = now_ns();
    rc = strata_db_open(&opts, &w->db, err);
    if (rc)
        return rc;
    w->recovery_ns = now_ns() - start;
    strata_db_stats_t st;
    strata_db_stats(w->db, &st);
    /* Restart time is what operators wait on: its rate says whether the
     * WAL or the disk is to blame for a slow one. */
    log_info(
        "event=recovered dir=%s last_seq=%" PRIu64 " flushed_seq=%" PRIu64 " wal_entries=%" PRIu64
        " wal_bytes=%" PRIu64 " tail_dropped=%" PRIu64 " ms=%.1f wal_mb_s=%.0f",
        w->data_dir, st.last_seq, st.flushed_seq, st.recovery.entries_replayed,
        st.recovery.bytes_scanned, st.recovery.tail_bytes_dropped, (double)w->recovery_ns / 1e6,
        (double)st.recovery.bytes_scanned / 1e6 / ((double)w->recovery_ns / 1e9));
    if ((rc = open_ring(w, o.ring_mb, st.last_seq, err)))
        return rc;
    w->batch = strata_batch_new();
    return w->batch ? 0 : strata_error_set(err, STRATA_ENOMEM, "out of memory");
}
