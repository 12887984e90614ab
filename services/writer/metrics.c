/* The writer's figures: the stats reply pairs and the Prometheus page. */
#define _GNU_SOURCE
#include "writer.h"

void pair_add(pairs_t *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pair_add(pairs_t *p, const char *name, const char *fmt, ...)
{
    if (p->n == p->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->values[p->n], sizeof p->values[p->n], fmt, ap);
    va_end(ap);
    p->pairs[p->n].name = name;
    p->pairs[p->n].value = p->values[p->n];
    p->n++;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void stats_pairs(writer_t *w, pairs_t *p)
{
    strata_db_stats_t db;
    strata_db_stats(w->db, &db);
    pthread_mutex_lock(&w->stats_mu);
    stats_t *s = &w->stats;
    pair_add(p, "requests_total", "%" PRIu64, s->requests);
    pair_add(p, "writes_total", "%" PRIu64, s->writes);
    pair_add(p, "write_ops_total", "%" PRIu64, s->write_ops);
    pair_add(p, "reads_total", "%" PRIu64, s->reads);
    pair_add(p, "errors_total", "%" PRIu64, s->errors);
    pair_add(p, "malformed_total", "%" PRIu64, s->malformed);
    pair_add(p, "syncs_total", "%" PRIu64, s->syncs);
    pair_add(p, "sync_failures_total", "%" PRIu64, s->sync_failures);
    pair_add(p, "sync_batch_mean", "%.2f", strata_histogram_mean(s->sync_batch));
    pair_add(p, "sync_p50_us", "%.1f", us(strata_histogram_percentile(s->sync_ns, 50)));
    pair_add(p, "sync_p99_us", "%.1f", us(strata_histogram_percentile(s->sync_ns, 99)));
    pair_add(p, "write_sync_p50_us", "%.1f", us(strata_histogram_percentile(s->write_sync_ns, 50)));
    pair_add(p, "write_sync_p99_us", "%.1f", us(strata_histogram_percentile(s->write_sync_ns, 99)));
    pair_add(p, "write_async_p99_us", "%.1f",
             us(strata_histogram_percentile(s->write_async_ns, 99)));
    pair_add(p, "read_p50_us", "%.1f", us(strata_histogram_percentile(s->read_ns, 50)));
    pair_add(p, "read_p99_us", "%.1f", us(strata_histogram_percentile(s->read_ns, 99)));
    pair_add(p, "pending_replies", "%zu", s->pending);
    pthread_mutex_unlock(&w->stats_mu);
    pair_add(p, "last_seq", "%" PRIu64, db.last_seq);
    pair_add(p, "durable_seq", "%" PRIu64, db.durable_seq);
    pair_add(p, "flushed_seq", "%" PRIu64, db.flushed_seq);
    pair_add(p, "memtable_bytes", "%zu", db.active_memtable_bytes);
    pair_add(p, "immutable_memtables", "%u", db.immutable_memtables);
    pair_add(p, "flushes_total", "%" PRIu64, db.flushes);
    pair_add(p, "stalls_total", "%" PRIu64, db.stalls);
    pair_add(p, "stall_ms_total", "%.3f", (double)db.stall_ns / 1e6);
    pair_add(p, "recovery_ms", "%.1f", (double)w->recovery_ns / 1e6);
    pair_add(p, "recovery_wal_bytes", "%" PRIu64, db.recovery.bytes_scanned);
    pair_add(p, "recovery_wal_entries", "%" PRIu64, db.recovery.entries_replayed);
    pair_add(p, "compactions", "%" PRIu64, db.compactions);
    pair_add(p, "compaction_read_bytes", "%" PRIu64, db.compaction_bytes_read);
    pair_add(p, "compaction_written_bytes", "%" PRIu64, db.compaction_bytes_written);
    pair_add(p, "compaction_cpu_ns", "%" PRIu64, db.compaction_cpu_ns);
    pair_add(p, "flush_written_bytes", "%" PRIu64, db.flush_bytes);
    pair_add(p, "user_bytes", "%" PRIu64, db.user_bytes);
    pair_add(p, "wal_segments", "%u", db.wal.segments);
    pair_add(p, "wal_bytes_total", "%" PRIu64, db.wal.bytes);
    static const char *const level_names[7] = {"l0_files", "l1_files", "l2_files", "l3_files",
                                               "l4_files", "l5_files", "l6_files"};
    for (int i = 0; i < 7; i++)
        pair_add(p, level_names[i], "%u", db.level_files[i]);
}

void write_metrics(void *arg, FILE *out)
{
    writer_t *w = arg;
    strata_db_stats_t db;
    strata_db_stats(w->db, &db);
    pthread_mutex_lock(&w->stats_mu);
    stats_t *s = &w->stats;
    prom_counter(out, "writer_requests_total", "Requests received, any op.", s->requests);
    prom_counter(out, "writer_writes_total", "Write requests applied.", s->writes);
    prom_counter(out, "writer_write_ops_total", "Keys written (batch ops count each).",
                 s->write_ops);
    prom_counter(out, "writer_reads_total", "Read requests served.", s->reads);
    prom_counter(out, "writer_errors_total", "Error replies sent.", s->errors);
    prom_counter(out, "writer_malformed_total", "Frames that did not decode.", s->malformed);
    prom_counter(out, "wal_syncs_total", "Group-commit fdatasync rounds.", s->syncs);
    prom_counter(out, "wal_sync_failures_total", "Failed fdatasyncs (writes stop).",
                 s->sync_failures);
    prom_latency(out, "wal_sync_seconds", "One group-commit fdatasync round.", s->sync_ns);
    prom_sizes(out, "wal_sync_batch_replies", "Sync replies released by one fdatasync.",
               s->sync_batch);
    prom_latency(out, "writer_write_seconds", "Sync-durability write, request to reply.",
                 s->write_sync_ns);
    prom_latency(out, "writer_write_async_seconds", "Async-durability write, request to reply.",
                 s->write_async_ns);
    prom_latency(out, "writer_read_seconds", "Read request to reply.", s->read_ns);
    prom_gauge(out, "writer_pending_replies", "Sync replies waiting for their fdatasync.",
               (double)s->pending);
    pthread_mutex_unlock(&w->stats_mu);
    prom_gauge(out, "last_seq", "Last sequence number written.", (double)db.last_seq);
    prom_gauge(out, "durable_seq", "Last sequence number covered by fdatasync.",
               (double)db.durable_seq);
    prom_gauge(out, "flushed_seq", "Every seq at or below this is in SSTables.",
               (double)db.flushed_seq);
    prom_gauge(out, "memtable_bytes", "Bytes in the active memtable.",
               (double)db.active_memtable_bytes);
    prom_gauge(out, "immutable_memtables", "Memtables waiting for flush.",
               (double)db.immutable_memtables);
    prom_counter(out, "write_stalls_total", "Writes that waited for a flush.", db.stalls);
    prom_gauge(out, "write_stall_seconds_total", "Total time writes waited for flushes.",
               (double)db.stall_ns / 1e9);
    prom_gauge(out, "wal_segments", "Live WAL segment files.", (double)db.wal.segments);
    prom_gauge(out, "recovery_seconds", "How long the open at start took, WAL replay included.",
               (double)w->recovery_ns / 1e9);
    prom_gauge(out, "recovery_wal_bytes", "WAL bytes the open at start replayed.",
               (double)db.recovery.bytes_scanned);
    prom_counter(out, "compactions_total", "Compactions installed (by the compactor or in here).",
                 db.compactions);
    prom_counter(out, "compaction_read_bytes_total", "Input table bytes of installed compactions.",
                 db.compaction_bytes_read);
    prom_counter(out, "compaction_written_bytes_total", "Table bytes compactions installed.",
                 db.compaction_bytes_written);
    prom_counter(out, "flush_written_bytes_total", "Table bytes flushes wrote to L0.",
                 db.flush_bytes);
    prom_counter(out, "user_bytes_total", "Key and value bytes written since open.", db.user_bytes);
    fprintf(out,
            "# HELP strata_level_files SSTables per level.\n# TYPE strata_level_files gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_files{level=\"%d\"} %u\n", i, db.level_files[i]);
    fprintf(out, "# HELP strata_level_bytes SSTable bytes per level.\n"
                 "# TYPE strata_level_bytes gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_bytes{level=\"%d\"} %" PRIu64 "\n", i, db.level_bytes[i]);
    fprintf(out, "# HELP strata_role Role of this node (1 for the current one).\n"
                 "# TYPE strata_role gauge\nstrata_role{role=\"standalone\"} 1\n");
}

bool is_ready(void *arg)
{
    writer_t *w = arg;
    return __atomic_load_n(&w->ready, __ATOMIC_ACQUIRE);
}
