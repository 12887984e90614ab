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

static int open_ring(writer_t *w, uint64_t last_seq, strata_error_t *err)
{
    uint64_t ring_mb;
    int rc = svc_config_u64(w->cfg, "writer/ring_mb", &ring_mb, err);
    if (rc)
        return rc;
    const char *path = svc_config_get(w->cfg, "writer/ring");
    if (!strcmp(path, "off"))
        return 0;
    if (ring_mb < 1 || ring_mb > 65536 || (ring_mb & (ring_mb - 1)))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/ring_mb: %" PRIu64 ", needs a power of two in 1..65536",
                                ring_mb);
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
    if ((rc = strata_ring_create(w->ring_path, &ro, &ring, err)))
        return rc;
    atomic_store(&w->ring, ring);
    return 0;
}

int open_db(writer_t *w, strata_error_t *err)
{
    uint64_t memtable_mb, max_imm, interval, segment_mb, scan_limit, retain_mb, retain_hours;
    bool lz4;
    int rc;
    if ((rc = svc_config_u64(w->cfg, "writer/memtable_mb", &memtable_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/max_immutable_memtables", &max_imm, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/sync_interval_ms", &interval, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_segment_mb", &segment_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/scan_limit", &scan_limit, err)) ||
        (rc = svc_config_bool(w->cfg, "writer/lz4", &lz4, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_retain_mb", &retain_mb, err)) ||
        (rc = svc_config_u64(w->cfg, "writer/wal_retain_hours", &retain_hours, err)))
        return rc;
    const char *truncation = svc_config_get(w->cfg, "writer/wal_truncation");
    if (strcmp(truncation, "snapshot") && strcmp(truncation, "flush"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/wal_truncation: '%s', needs snapshot or flush", truncation);
    const char *compaction = svc_config_get(w->cfg, "writer/compaction");
    if (strcmp(compaction, "compactor") && strcmp(compaction, "internal"))
        return strata_error_set(err, STRATA_EINVAL,
                                "writer/compaction: '%s', needs compactor or internal", compaction);
    if (memtable_mb < 1 || memtable_mb > 16384 || max_imm < 1 || max_imm > 64 || interval < 1 ||
        interval > 60000 || segment_mb < 1 || segment_mb > 4096 || scan_limit < 1 ||
        scan_limit > STRATA_PROTO_MAX_SCAN_LIMIT)
        return strata_error_set(
            err, STRATA_EINVAL,
            "writer config out of range: memtable_mb 1..16384, max_immutable_memtables 1..64, "
            "sync_interval_ms 1..60000, wal_segment_mb 1..4096, scan_limit 1..%u",
            STRATA_PROTO_MAX_SCAN_LIMIT);
    w->scan_limit = (uint32_t)scan_limit;
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = w->data_dir;
    opts.memtable_bytes = (size_t)memtable_mb << 20;
    opts.max_immutable_memtables = (uint32_t)max_imm;
    opts.async_sync_interval_ms = (uint32_t)interval;
    opts.wal_segment_bytes = segment_mb << 20;
    opts.lz4 = lz4;
    opts.on_committed = ring_on_committed;
    opts.wal_on_durable = ring_on_durable;
    opts.wal_observer_arg = w;
    opts.wal_retain_bytes = retain_mb << 20;
    opts.wal_retain_ms = retain_hours * 3600 * 1000;
    opts.manual_wal_truncation = !strcmp(truncation, "snapshot");
    w->external_compaction = !strcmp(compaction, "compactor");
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
    if ((rc = open_ring(w, st.last_seq, err)))
        return rc;
    w->batch = strata_batch_new();
    return w->batch ? 0 : strata_error_set(err, STRATA_ENOMEM, "out of memory");
}
