/* The writer's figures: one table (lib/service/metrics.h) feeds both the
 * stats reply and the Prometheus page. */
#define _GNU_SOURCE
#include "metrics.h"
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

/* Everything the stats reply and /metrics show, read at one moment. */
typedef struct {
    uint64_t requests, writes, write_ops, reads, errors, malformed, syncs, sync_failures;
    double sync_batch_mean, sync_p50_us, sync_p99_us, write_sync_p50_us, write_sync_p99_us,
        write_async_p99_us, read_p50_us, read_p99_us;
    uint64_t pending, last_seq, durable_seq, flushed_seq, memtable_bytes, immutables, flushes,
        stalls;
    double stall_ms, recovery_ms;
    uint64_t stall_ns, recovery_ns, recovery_wal_bytes, recovery_wal_entries, compactions,
        compaction_read, compaction_written, compaction_cpu_ns, flush_written, user_bytes,
        wal_segments, wal_bytes, clients, clients_refused, reply_queue, replies_refused,
        clients_shed;
} figures_t;

/* The last four members of a row: a uint64_t field, a double field shown with
 * that many decimals in stats, a uint64_t field /metrics scales. */
#define U(field)           offsetof(figures_t, field), false, 0, 0
#define F(field, decimals) offsetof(figures_t, field), true, 0, decimals
#define S(field, scale)    offsetof(figures_t, field), false, scale, 0
static const svc_metric_t rows[] = {
    {"requests_total", "writer_requests_total", "Requests received, any op.", SVC_COUNTER,
     U(requests)},
    {"writes_total", "writer_writes_total", "Write requests applied.", SVC_COUNTER, U(writes)},
    {"write_ops_total", "writer_write_ops_total", "Keys written (batch ops count each).",
     SVC_COUNTER, U(write_ops)},
    {"reads_total", "writer_reads_total", "Read requests served.", SVC_COUNTER, U(reads)},
    {"errors_total", "writer_errors_total", "Error replies sent.", SVC_COUNTER, U(errors)},
    {"malformed_total", "writer_malformed_total", "Frames that did not decode.", SVC_COUNTER,
     U(malformed)},
    {"syncs_total", "wal_syncs_total", "Group-commit fdatasync rounds.", SVC_COUNTER, U(syncs)},
    {"sync_failures_total", "wal_sync_failures_total", "Failed fdatasyncs (writes stop).",
     SVC_COUNTER, U(sync_failures)},
    {"sync_batch_mean", NULL, "Sync replies one fdatasync released, on average.", SVC_GAUGE,
     F(sync_batch_mean, 2)},
    {"sync_p50_us", NULL, "One fdatasync round, median.", SVC_GAUGE, F(sync_p50_us, 1)},
    {"sync_p99_us", NULL, "One fdatasync round, p99.", SVC_GAUGE, F(sync_p99_us, 1)},
    {"write_sync_p50_us", NULL, "Sync write, request to reply, median.", SVC_GAUGE,
     F(write_sync_p50_us, 1)},
    {"write_sync_p99_us", NULL, "Sync write, request to reply, p99.", SVC_GAUGE,
     F(write_sync_p99_us, 1)},
    {"write_async_p99_us", NULL, "Async write, request to reply, p99.", SVC_GAUGE,
     F(write_async_p99_us, 1)},
    {"read_p50_us", NULL, "Read, request to reply, median.", SVC_GAUGE, F(read_p50_us, 1)},
    {"read_p99_us", NULL, "Read, request to reply, p99.", SVC_GAUGE, F(read_p99_us, 1)},
    {"pending_replies", "writer_pending_replies", "Sync replies waiting for their fdatasync.",
     SVC_GAUGE, U(pending)},
    {"last_seq", "last_seq", "Last sequence number written.", SVC_GAUGE, U(last_seq)},
    {"durable_seq", "durable_seq", "Last sequence number covered by fdatasync.", SVC_GAUGE,
     U(durable_seq)},
    {"flushed_seq", "flushed_seq", "Every seq at or below this is in SSTables.", SVC_GAUGE,
     U(flushed_seq)},
    {"memtable_bytes", "memtable_bytes", "Bytes in the active memtable.", SVC_GAUGE,
     U(memtable_bytes)},
    {"immutable_memtables", "immutable_memtables", "Memtables waiting for flush.", SVC_GAUGE,
     U(immutables)},
    {"flushes_total", NULL, "Memtables written to L0 since open.", SVC_COUNTER, U(flushes)},
    {"stalls_total", "write_stalls_total", "Writes that waited for a flush.", SVC_COUNTER,
     U(stalls)},
    {"clients", "writer_clients", "TCP connections to the client endpoint.", SVC_GAUGE, U(clients)},
    {"clients_refused_total", "writer_clients_refused_total",
     "Connections closed at once past writer/max_clients.", SVC_COUNTER, U(clients_refused)},
    {"reply_queue_bytes", "writer_reply_queue_bytes",
     "Reply bytes ZeroMQ holds for clients that have not taken them yet.", SVC_GAUGE,
     U(reply_queue)},
    {"replies_refused_total", "writer_busy_refusals_total",
     "Requests answered EBUSY because writer/reply_queue_mb was reached.", SVC_COUNTER,
     U(replies_refused)},
    {"clients_shed_total", "writer_clients_shed_total",
     "Connections closed for not reading while the reply queue was full.", SVC_COUNTER,
     U(clients_shed)},
    {"stall_ms_total", NULL, "Total time writes waited for flushes.", SVC_GAUGE, F(stall_ms, 3)},
    {NULL, "write_stall_seconds_total", "Total time writes waited for flushes.", SVC_COUNTER,
     S(stall_ns, 1e-9)},
    {"recovery_ms", NULL, "How long the open at start took, WAL replay included.", SVC_GAUGE,
     F(recovery_ms, 1)},
    {NULL, "recovery_seconds", "How long the open at start took, WAL replay included.", SVC_GAUGE,
     S(recovery_ns, 1e-9)},
    {"recovery_wal_bytes", "recovery_wal_bytes", "WAL bytes the open at start replayed.", SVC_GAUGE,
     U(recovery_wal_bytes)},
    {"recovery_wal_entries", NULL, "WAL entries the open at start replayed.", SVC_GAUGE,
     U(recovery_wal_entries)},
    {"compactions", "compactions_total", "Compactions installed (by the compactor or in here).",
     SVC_COUNTER, U(compactions)},
    {"compaction_read_bytes", "compaction_read_bytes_total",
     "Input table bytes of installed compactions.", SVC_COUNTER, U(compaction_read)},
    {"compaction_written_bytes", "compaction_written_bytes_total",
     "Table bytes compactions installed.", SVC_COUNTER, U(compaction_written)},
    {"compaction_cpu_ns", NULL, "CPU time of the in-process compaction thread.", SVC_COUNTER,
     U(compaction_cpu_ns)},
    {"flush_written_bytes", "flush_written_bytes_total", "Table bytes flushes wrote to L0.",
     SVC_COUNTER, U(flush_written)},
    {"user_bytes", "user_bytes_total", "Key and value bytes written since open.", SVC_COUNTER,
     U(user_bytes)},
    {"wal_segments", "wal_segments", "Live WAL segment files.", SVC_GAUGE, U(wal_segments)},
    {"wal_bytes_total", NULL, "Entry bytes the WAL wrote since open.", SVC_COUNTER, U(wal_bytes)},
};
#undef U
#undef F
#undef S

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* Reads every figure, under the stats lock for the loop's counters. */
static void figures(writer_t *w, figures_t *f, strata_db_stats_t *db)
{
    strata_db_stats(w->db, db);
    pthread_mutex_lock(&w->stats_mu);
    const stats_t *s = &w->stats;
    *f = (figures_t){
        .requests = s->requests,
        .writes = s->writes,
        .write_ops = s->write_ops,
        .reads = s->reads,
        .errors = s->errors,
        .malformed = s->malformed,
        .syncs = s->syncs,
        .sync_failures = s->sync_failures,
        .sync_batch_mean = strata_histogram_mean(s->sync_batch),
        .sync_p50_us = us(strata_histogram_percentile(s->sync_ns, 50)),
        .sync_p99_us = us(strata_histogram_percentile(s->sync_ns, 99)),
        .write_sync_p50_us = us(strata_histogram_percentile(s->write_sync_ns, 50)),
        .write_sync_p99_us = us(strata_histogram_percentile(s->write_sync_ns, 99)),
        .write_async_p99_us = us(strata_histogram_percentile(s->write_async_ns, 99)),
        .read_p50_us = us(strata_histogram_percentile(s->read_ns, 50)),
        .read_p99_us = us(strata_histogram_percentile(s->read_ns, 99)),
        .pending = s->pending,
    };
    pthread_mutex_unlock(&w->stats_mu);
    f->last_seq = db->last_seq;
    f->durable_seq = db->durable_seq;
    f->flushed_seq = db->flushed_seq;
    f->memtable_bytes = db->active_memtable_bytes;
    f->immutables = db->immutable_memtables;
    f->flushes = db->flushes;
    f->stalls = db->stalls;
    f->clients = w->conncap ? svc_conncap_open(w->conncap) : 0;
    f->clients_refused = w->conncap ? svc_conncap_refused(w->conncap) : 0;
    f->clients_shed = w->conncap ? svc_conncap_shed_count(w->conncap) : 0;
    f->reply_queue = w->outq ? svc_outq_bytes(w->outq) : 0;
    f->replies_refused = atomic_load(&w->replies_refused);
    f->stall_ns = db->stall_ns;
    f->stall_ms = (double)db->stall_ns / 1e6;
    f->recovery_ns = w->recovery_ns;
    f->recovery_ms = (double)w->recovery_ns / 1e6;
    f->recovery_wal_bytes = db->recovery.bytes_scanned;
    f->recovery_wal_entries = db->recovery.entries_replayed;
    f->compactions = db->compactions;
    f->compaction_read = db->compaction_bytes_read;
    f->compaction_written = db->compaction_bytes_written;
    f->compaction_cpu_ns = db->compaction_cpu_ns;
    f->flush_written = db->flush_bytes;
    f->user_bytes = db->user_bytes;
    f->wal_segments = db->wal.segments;
    f->wal_bytes = db->wal.bytes;
}

static void add_pair(void *sink, const char *name, const char *value)
{
    pair_add(sink, name, "%s", value);
}

void stats_pairs(writer_t *w, pairs_t *p)
{
    figures_t f;
    strata_db_stats_t db;
    figures(w, &f, &db);
    svc_metrics_pairs(rows, sizeof rows / sizeof rows[0], &f, add_pair, p);
    static const char *const level_names[7] = {"l0_files", "l1_files", "l2_files", "l3_files",
                                               "l4_files", "l5_files", "l6_files"};
    for (int i = 0; i < 7; i++)
        pair_add(p, level_names[i], "%u", db.level_files[i]);
    consensus_stats_t cs;
    consensus_stats(w, &cs);
    pair_add(p, "role", "%s", cs.id ? cs.role : "standalone");
    if (!cs.id)
        return;
    pair_add(p, "node_id", "%u", cs.id);
    pair_add(p, "term", "%" PRIu64, cs.term);
    pair_add(p, "leader", "%u", cs.leader);
    pair_add(p, "commit_seq", "%" PRIu64, cs.commit_seq);
    pair_add(p, "raft_received_total", "%" PRIu64, cs.received);
    pair_add(p, "raft_sent_total", "%" PRIu64, cs.sent);
    pair_add(p, "raft_dropped_total", "%" PRIu64, cs.dropped);
    pair_add(p, "raft_refused_total", "%" PRIu64, cs.refused);
    uint64_t copied = 0;
    pair_add(p, "bootstrap", "%s", bootstrap_progress(w, &copied));
    pair_add(p, "bootstrap_bytes", "%" PRIu64, copied);
    consensus_peer_pairs(w, p);
}

void write_metrics(void *arg, FILE *out)
{
    writer_t *w = arg;
    figures_t f;
    strata_db_stats_t db;
    figures(w, &f, &db);
    svc_metrics_prom(rows, sizeof rows / sizeof rows[0], &f, out);
    /* The distributions behind the percentiles above, as histograms. */
    pthread_mutex_lock(&w->stats_mu);
    stats_t *s = &w->stats;
    prom_latency(out, "wal_sync_seconds", "One group-commit fdatasync round.", s->sync_ns);
    prom_sizes(out, "wal_sync_batch_replies", "Sync replies released by one fdatasync.",
               s->sync_batch);
    prom_latency(out, "writer_write_seconds", "Sync-durability write, request to reply.",
                 s->write_sync_ns);
    prom_latency(out, "writer_write_async_seconds", "Async-durability write, request to reply.",
                 s->write_async_ns);
    prom_latency(out, "writer_read_seconds", "Read request to reply.", s->read_ns);
    pthread_mutex_unlock(&w->stats_mu);
    fprintf(out,
            "# HELP strata_level_files SSTables per level.\n# TYPE strata_level_files gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_files{level=\"%d\"} %u\n", i, db.level_files[i]);
    fprintf(out, "# HELP strata_level_bytes SSTable bytes per level.\n"
                 "# TYPE strata_level_bytes gauge\n");
    for (int i = 0; i < 7; i++)
        fprintf(out, "strata_level_bytes{level=\"%d\"} %" PRIu64 "\n", i, db.level_bytes[i]);
    consensus_stats_t cs;
    consensus_stats(w, &cs);
    fprintf(out,
            "# HELP strata_role Role of this node (1 for the current one).\n"
            "# TYPE strata_role gauge\nstrata_role{role=\"%s\"} 1\n",
            cs.id ? cs.role : "standalone");
    if (!cs.id)
        return;
    fprintf(out,
            "# HELP strata_raft_term The node's current term.\n# TYPE strata_raft_term gauge\n"
            "strata_raft_term %" PRIu64 "\n"
            "# HELP strata_raft_leader The master's node id, 0 when none is known.\n"
            "# TYPE strata_raft_leader gauge\nstrata_raft_leader %u\n"
            "# HELP strata_raft_commit_seq Every entry up to this seq is committed.\n"
            "# TYPE strata_raft_commit_seq gauge\nstrata_raft_commit_seq %" PRIu64 "\n"
            "# HELP strata_raft_messages_received_total Peer messages taken by the core.\n"
            "# TYPE strata_raft_messages_received_total counter\n"
            "strata_raft_messages_received_total %" PRIu64 "\n"
            "# HELP strata_raft_messages_sent_total Peer messages handed to a transport.\n"
            "# TYPE strata_raft_messages_sent_total counter\n"
            "strata_raft_messages_sent_total %" PRIu64 "\n"
            "# HELP strata_raft_messages_dropped_total Peer messages with no transport to take "
            "them.\n# TYPE strata_raft_messages_dropped_total counter\n"
            "strata_raft_messages_dropped_total %" PRIu64 "\n"
            "# HELP strata_raft_messages_refused_total Frames on the raft endpoint that were "
            "refused.\n# TYPE strata_raft_messages_refused_total counter\n"
            "strata_raft_messages_refused_total %" PRIu64 "\n",
            cs.term, cs.leader, cs.commit_seq, cs.received, cs.sent, cs.dropped, cs.refused);
    consensus_write_metrics(w, out);
}

/* Ready means writes are taken: a writer whose WAL or flush failed still
 * serves reads but refuses every write until restarted, so it is not. */
bool is_ready(void *arg)
{
    writer_t *w = arg;
    return __atomic_load_n(&w->ready, __ATOMIC_ACQUIRE) && strata_db_write_status(w->db, NULL) == 0;
}
