/* The engine's state, shared by db.c (open, close, writes, reads, flush and
 * compaction threads), db_commit.c (append, commit, apply), db_iter.c (the
 * user iterator) and db_batch.c. Private to lib/engine. */
#ifndef STRATA_DB_IMPL_H
#define STRATA_DB_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "compaction.h"
#include "strata/db.h"
#include "strata/memtable.h"
#include "strata/sstable.h"
#include "version.h"

struct strata_db {
    strata_db_options_t opts;
    char *dir;
    int lock_fd;
    strata_wal_t *wal;
    strata_wal_recovery_t recovery;

    vset_t *vset;
    strata_table_options_t table_opts;

    /* Held by whoever inserts into the active memtable (the group-commit
     * leader, replay) and by strata_db_flush to switch it. */
    pthread_mutex_t write_mu;
    pthread_mutex_t mu; /* guards the memtable list and the flush state */
    strata_memtable_t *active;
    strata_memtable_t **immutables; /* oldest first */
    uint64_t *immutable_last_seq;   /* the last seq each immutable holds */
    size_t n_immutables;
    size_t cap_immutables;
    uint64_t last_inserted_seq; /* inserting thread only */

    /* The flush thread waits here for work, and stalled writers for room. */
    pthread_cond_t flush_cv;
    pthread_t flush_thread;
    bool flush_running;
    bool stopping;
    uint64_t flushes, stalls, stall_ns;
    uint64_t user_bytes, flush_bytes;

    /* Flush and compaction both change the version; one at a time. */
    pthread_mutex_t vset_mu;
    compaction_options_t compaction_opts;
    compaction_cursor_t cursor; /* compaction thread only */
    pthread_cond_t compact_cv;  /* work for the compaction thread */
    pthread_t compact_thread;
    bool compact_running;
    bool compact_forced;     /* strata_db_compact is waiting */
    uint64_t compact_rounds; /* bumped whenever the thread finds nothing to do */
    uint64_t compactions, compaction_read, compaction_written, compaction_cpu_ns;
    uint64_t *snapshots; /* live snapshot seqs, unordered */
    size_t n_snapshots, cap_snapshots;

    /* Append, commit, apply (lib/log/wal.md): under write_mu, entries the
     * WAL appended wait in pending, as their exact bytes, until commit_seq
     * covers them; applying inserts them into the memtable, moves
     * visible_seq and tells on_committed. LOCAL mode commits each group as
     * it is appended and never queues. */
    strata_commit_mode_t commit_mode;
    uint8_t *pending; /* entries from pending_off to pending_len */
    size_t pending_off, pending_len, pending_cap;
    uint64_t pending_first; /* seq at pending_off; 0 when nothing is pending */
    uint64_t pending_last;
    uint64_t commit_seq;          /* as the owner last said (EXTERNAL) */
    _Atomic uint64_t visible_seq; /* applied: every write up to here is readable */
    _Atomic int failed;           /* sticky: a memtable insert or a flush failed */
    strata_error_t failure;       /* its detail, under mu */
};

typedef struct {
    size_t topic_off, key_off, value_off;
    uint16_t topic_len;
    uint32_t key_len, value_len;
    uint8_t type;
} batch_op_t;

struct strata_batch {
    batch_op_t *ops;
    size_t n_ops, cap_ops;
    uint8_t *bytes; /* keys and values, addressed by offset so growth is safe */
    size_t n_bytes, cap_bytes;
};

/* Inserts one entry into the active memtable, switching it when full (and
 * waiting for room: a write stall). write_mu held. */
int db_insert(strata_db_t *self, uint64_t seq, uint8_t type, const void *key, size_t key_len,
              const void *value, size_t value_len);
int db_switch_memtable(strata_db_t *self);
/* Stops writes for good with err as the reason (sticky, logged once). */
void db_set_failure(strata_db_t *self, const strata_error_t *err);

/* The WAL's on_appended observer: the commit policy's entry point. */
void db_on_appended(void *arg, const uint8_t *entries, size_t len, uint64_t first_seq,
                    uint64_t last_seq, bool synced);
/* Refuses an append while the uncommitted entries fill their cap. */
int db_check_room(strata_db_t *self, strata_error_t *err);
/* Recovery in STRATA_COMMIT_EXTERNAL: keeps a replayed entry pending. */
int db_keep_pending(strata_db_t *self, const strata_entry_t *e);
void db_pending_free(strata_db_t *self);

#endif
