/* strata-bench: Strata's WAL and memtable against RocksDB on the same machine,
 * disk and keys. Parses the options, makes a fresh data directory on a real
 * disk, and runs one verb of the table below (or all of them). */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

static int s_bench_all(bench_t *b);

static const bench_verb_t s_verbs[] = {
    {"wal", bench_wal,
     "disk fdatasync floor; WAL append async (1 thread) and sync (1, 2, 8 threads), vs RocksDB"},
    {"memtable", bench_memtable,
     "memtable insert and get of 1M random keys, vs RocksDB with the WAL off"},
    {"engine", bench_engine,
     "the whole engine vs RocksDB and LevelDB: fills, reads after reopen, seek+100, overwrite "
     "under compaction, write-amp, peak RSS (--quick: under two minutes)"},
    {"service", bench_service,
     "the writer service vs Redis over TCP loopback: sync and async puts, gets, 1/16/64 "
     "requests in flight (--quick: under two minutes)"},
    {"fanout", bench_fanout,
     "publish-to-receive latency and msg/s of 64 and 512-byte entries: the shm ring to 1 and 4 "
     "reader processes vs a raw SPSC shm ring, distributor vs raw libzmq PUB/SUB over TCP "
     "loopback (--quick: under two minutes)"},
    {"recovery", bench_recovery,
     "restart after a crash: open time replaying an unflushed WAL of 1 GiB (--quick: 256 MiB) "
     "from the page cache, vs RocksDB (--quick: under two minutes)"},
    {"compaction", bench_compaction,
     "a paced 50k writes/s for a fixed time, with and without compaction: compactor CPU share, "
     "write amplification and p99 write latency, vs RocksDB (--quick: under two minutes)"},
    {"cluster", bench_cluster,
     "sync puts, 64, 16 and 1 in flight: one writer alone, the master of a 3-node cluster of "
     "real processes on loopback (writer, election, replicator per node), and Redis with two "
     "replicas (SET+WAIT 1); async replication vs Redis without WAIT; kill -9 of the master "
     "under writes, vs Redis Sentinel: failover time and acknowledged writes lost; the "
     "followers' lag behind a master written at 100k records/s (--quick: under three "
     "minutes)"},
    {"all", s_bench_all, "every verb above, in order"},
};
#define VERB_COUNT (sizeof s_verbs / sizeof s_verbs[0])

static int s_bench_all(bench_t *b)
{
    int failed = 0;
    for (size_t i = 0; i < VERB_COUNT; i++)
        if (s_verbs[i].run != s_bench_all && s_verbs[i].run(b) != 0)
            failed = 1;
    return failed;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: strata-bench [options] <verb>\n"
            "\n"
            "The storage verbs use %d-byte keys and %d-byte values (fanout: 64 and 512-byte "
            "entries). Prints a table to stdout.\n"
            "\n"
            "verbs:\n",
            BENCH_KEY_BYTES, BENCH_VALUE_BYTES);
    for (size_t i = 0; i < VERB_COUNT; i++)
        fprintf(out, "  %-10s %s\n", s_verbs[i].name, s_verbs[i].help);
    fprintf(out, "\n"
                 "options:\n"
                 "  --quick      shorter cases: each verb finishes in under two minutes (cluster:\n"
                 "               three)\n"
                 "  --json FILE  also append one JSON line per metric to FILE\n"
                 "  --dir DIR    put data in a fresh directory under DIR (default ./bench-data,\n"
                 "               else $TMPDIR); use a real disk: on tmpfs fdatasync is free\n"
                 "  --seed N     key generator seed (default fixed, so runs are comparable)\n"
                 "  --keep       do not delete the data directory at the end\n"
                 "  --only TEXT  service: run only the cases whose name holds TEXT (get.p64,\n"
                 "               put_sync), to profile one\n"
                 "  -h, --help   this text\n"
                 "\n"
                 "exit codes: 0 ok, 1 a case failed, 2 usage or setup error\n");
}

/* Names for the file systems a bench is likely to land on. */
static const char *s_fs_name(long type)
{
    switch ((unsigned long)type) {
    case 0xEF53:
        return "ext2/3/4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x01021994:
        return "tmpfs";
    case 0x858458F6:
        return "ramfs";
    case 0x794C7630:
        return "overlayfs";
    case 0x2FC12FC1:
        return "zfs";
    case 0xF2F52010:
        return "f2fs";
    case 0x6969:
        return "nfs";
    case 0x01021997:
        return "9p";
    case 0x65735546:
        return "fuse";
    default:
        return "unknown";
    }
}

/* The parent of this run's directory: --dir, else ./bench-data on the disk
 * we are run from, else $TMPDIR. Returns NULL when none can be made. */
static const char *s_parent_dir(const char *requested)
{
    if (requested)
        return mkdir(requested, 0755) == 0 || errno == EEXIST ? requested : NULL;
    if (mkdir("bench-data", 0755) == 0 || errno == EEXIST)
        return "bench-data";
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

/* Back-to-back clock reads: the floor under every latency in the table. */
static uint64_t s_timer_overhead_ns(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = bench_now_ns();
        uint64_t d = bench_now_ns() - a;
        if (d < best)
            best = d;
    }
    return best;
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"quick", no_argument, NULL, 'q'},     {"json", required_argument, NULL, 'j'},
        {"dir", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
        {"keep", no_argument, NULL, 'k'},      {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    bench_t b = {.seed = UINT64_C(0x5742A7A5EED), .case_seconds = 10.0};
    const char *json_path = NULL, *dir_option = NULL;
    bool keep = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'q':
            b.quick = true;
            b.case_seconds = 2.0;
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'd':
            dir_option = optarg;
            break;
        case 's': {
            char *end;
            errno = 0;
            b.seed = strtoull(optarg, &end, 0);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "strata-bench: --seed wants a number, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'k':
            keep = true;
            break;
        case 'o':
            b.only = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    const bench_verb_t *verb = NULL;
    for (size_t i = 0; i < VERB_COUNT; i++)
        if (strcmp(argv[optind], s_verbs[i].name) == 0)
            verb = &s_verbs[i];
    if (!verb) {
        fprintf(stderr, "strata-bench: unknown verb '%s' (see -h)\n", argv[optind]);
        return 2;
    }

    const char *parent = s_parent_dir(dir_option);
    if (!parent) {
        fprintf(stderr, "strata-bench: cannot create %s: %s\n", dir_option, strerror(errno));
        return 2;
    }
    char *run_dir = NULL;
    if (asprintf(&run_dir, "%s/run-XXXXXX", parent) < 0 || !mkdtemp(run_dir)) {
        fprintf(stderr, "strata-bench: cannot make a directory under %s: %s\n", parent,
                strerror(errno));
        return 2;
    }
    b.dir = run_dir;
    char *real_dir = realpath(run_dir, NULL);
    struct statfs fs;
    const char *fs_name = statfs(run_dir, &fs) == 0 ? s_fs_name((long)fs.f_type) : "unknown";

    if (json_path) {
        b.json = fopen(json_path, "a");
        if (!b.json) {
            fprintf(stderr, "strata-bench: cannot open %s: %s\n", json_path, strerror(errno));
            bench_rmtree(run_dir);
            return 2;
        }
    }

    printf("strata-bench %s%s: dir %s (%s), seed 0x%" PRIx64 ", %.0f s per timed case, "
           "timer overhead %" PRIu64 " ns\n",
           verb->name, b.quick ? " --quick" : "", real_dir ? real_dir : run_dir, fs_name, b.seed,
           b.case_seconds, s_timer_overhead_ns());
#ifndef __OPTIMIZE__
    printf("warning: built without optimization (set CMAKE_BUILD_TYPE=Release or "
           "RelWithDebInfo); the numbers mean little\n");
#endif
    if (strcmp(fs_name, "tmpfs") == 0 || strcmp(fs_name, "ramfs") == 0)
        printf("warning: %s keeps data in memory, so fdatasync costs nothing here; pass --dir on "
               "a real disk\n",
               fs_name);

    int failed = verb->run(&b);

    if (b.json)
        fclose(b.json);
    if (!keep)
        bench_rmtree(run_dir);
    free(real_dir);
    free(run_dir);
    return failed ? 1 : 0;
}
