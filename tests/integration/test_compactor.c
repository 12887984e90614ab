/* strata-compactor beside a real writer: compactions picked, merged in the
 * compactor's process and installed by the writer keep L0 bounded and every
 * read right; kill -9 of the compactor mid-compaction loses nothing and
 * leaves no file behind; the writer without a compactor keeps serving and
 * says L0 is backing up; stratactl compact; and a whole node (writer,
 * compactor, snapshotter, distributor) under sustained writes. */
#define _GNU_SOURCE
#include <check.h>
#include <cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"
#include "strata/client.h"
#include "support.h"
#include "version.h"

#ifndef STRATACTL_BIN
#error "STRATACTL_BIN must name the stratactl binary"
#endif

/* Small everything, so that a few seconds of writes flush and compact
 * many times. */
static const char *const writer_env[] = {"STRATA_WRITER_MEMTABLE_MB=1", NULL};
static const char *const comp_env[] = {"STRATA_COMPACTOR_LEVEL1_MB=2",
                                       "STRATA_COMPACTOR_TARGET_FILE_MB=1", NULL};
/* Throttled to 2 MB/s, so a compaction lasts long enough to be killed in. */
static const char *const slow_comp_env[] = {"STRATA_COMPACTOR_LEVEL1_MB=2",
                                            "STRATA_COMPACTOR_TARGET_FILE_MB=1",
                                            "STRATA_COMPACTOR_RATE_MB_S=2", NULL};

#define HOT_KEYS    4096 /* the loader overwrites these */
#define VALUE_BYTES 512

/* Write i goes to unique key u<i> and to hot key h<i % HOT_KEYS>, both
 * with a value that names i: so the newest value of every key is known
 * from how many writes were acknowledged. */
static void value_of(uint64_t i, char *value)
{
    memset(value, 'a' + (int)(i % 26), VALUE_BYTES);
    snprintf(value, 24, "%020" PRIu64, i);
    value[20] = ':';
}

static void batch_ops(strata_batch_op_t *ops, const char *unique, const char *hot,
                      const char *value)
{
    const char *keys[2] = {unique, hot};
    for (int k = 0; k < 2; k++)
        ops[k] = (strata_batch_op_t){
            .kind = STRATA_BATCH_PUT,
            .key = {(const uint8_t *)keys[k], strlen(keys[k])},
            .value = {(const uint8_t *)value, VALUE_BYTES},
        };
}

typedef struct {
    const char *endpoint;
    pthread_t thread;
    atomic_bool stop;
    _Atomic uint64_t acked; /* writes 0..acked-1 are acknowledged */
    char failure[1024];
} loader_t;

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    strata_client_options_t opts = {.endpoint = l->endpoint, .timeout_ms = 20000};
    strata_client_t *client = NULL;
    strata_error_t err;
    if (strata_client_connect(&opts, &client, &err) != 0) {
        snprintf(l->failure, sizeof l->failure, "connect: %s", err.msg);
        return NULL;
    }
    char value[VALUE_BYTES];
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        char unique[32], hot[32];
        snprintf(unique, sizeof unique, "u%010" PRIu64, i);
        snprintf(hot, sizeof hot, "h%05" PRIu64, i % HOT_KEYS);
        value_of(i, value);
        strata_batch_op_t ops[2];
        batch_ops(ops, unique, hot, value);
        if (strata_client_batch(client, STRATA_DURABILITY_SYNC, ops, 2, NULL, &err) != 0) {
            snprintf(l->failure, sizeof l->failure, "batch %" PRIu64 ": %s", i, err.msg);
            break;
        }
        atomic_store(&l->acked, i + 1);
    }
    strata_client_destroy(&client);
    return NULL;
}

static void loader_start(loader_t *l, const char *endpoint)
{
    memset(l, 0, sizeof *l);
    l->endpoint = endpoint;
    ck_assert_int_eq(pthread_create(&l->thread, NULL, loader_main, l), 0);
}

static uint64_t loader_stop(loader_t *l)
{
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    ck_assert_msg(!l->failure[0], "the writer stopped serving: %s", l->failure);
    return atomic_load(&l->acked);
}

/* Returns 0 when key holds the value of write i, else a message. */
static int check_key(strata_client_t *client, const char *key, uint64_t i, char *why, size_t cap)
{
    void *got = NULL;
    size_t len = 0;
    strata_error_t err;
    int rc = strata_client_get(client, key, strlen(key), &got, &len, &err);
    if (rc) {
        snprintf(why, cap, "get %s: %s", key, err.msg);
        return -1;
    }
    char want[VALUE_BYTES];
    value_of(i, want);
    int bad = len != VALUE_BYTES || memcmp(got, want, VALUE_BYTES) != 0;
    if (bad)
        snprintf(why, cap, "%s: %zu bytes, starting '%.21s', want write %" PRIu64, key, len,
                 (char *)got, i);
    free(got);
    return bad ? -1 : 0;
}

/* Every acknowledged write is there, and every hot key holds its newest. */
static void check_all(const char *endpoint, uint64_t acked)
{
    strata_client_t *client = ts_connect(endpoint, 20000);
    char key[32], why[256];
    for (uint64_t i = 0; i < acked; i++) {
        snprintf(key, sizeof key, "u%010" PRIu64, i);
        ck_assert_msg(check_key(client, key, i, why, sizeof why) == 0, "%s", why);
    }
    for (uint64_t h = 0; h < HOT_KEYS && h < acked; h++) {
        uint64_t newest = h + (acked - 1 - h) / HOT_KEYS * HOT_KEYS;
        snprintf(key, sizeof key, "h%05" PRIu64, h);
        ck_assert_msg(check_key(client, key, newest, why, sizeof why) == 0, "%s", why);
    }
    strata_client_destroy(&client);
}

static uint64_t writer_stat(const ts_node_t *node, const char *name)
{
    strata_client_t *client = ts_connect(node->control, 10000);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_stats(client, &rep, &err) == 0, "%s", err.msg);
    uint64_t out = strtoull(ts_pair(&rep, name), NULL, 10); /* fails when it is missing */
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
    return out;
}

typedef struct {
    const char *endpoint;
    char state[32];
    uint64_t compactions, written;
} progress_t;

static void progress(progress_t *p)
{
    strata_client_t *client = ts_connect(p->endpoint, 10000);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_control(client, "progress", NULL, 0, &rep, &err) == 0, "%s",
                  err.msg);
    snprintf(p->state, sizeof p->state, "%s", ts_pair(&rep, "state"));
    p->compactions = strtoull(ts_pair(&rep, "compactions"), NULL, 10);
    p->written = strtoull(ts_pair(&rep, "written_bytes"), NULL, 10);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
}

typedef struct {
    const ts_node_t *node;
    const char *comp_endpoint;
    uint64_t want;
} wait_t;

static bool compactions_reached(void *arg)
{
    wait_t *w = arg;
    progress_t p = {.endpoint = w->comp_endpoint};
    progress(&p);
    return p.compactions >= w->want;
}

static bool compacting_with_output(void *arg)
{
    progress_t *p = arg;
    progress(p);
    return !strcmp(p->state, "compacting") && p->written > 0;
}

static bool l0_below_trigger(void *arg)
{
    return writer_stat(((wait_t *)arg)->node, "l0_files") < 4;
}

/* The tables in dir are exactly the live ones of its MANIFEST, and
 * compaction/ holds nothing but its LOCK. Run with every process stopped. */
static void check_no_orphans(const char *data)
{
    vset_t *vset = NULL;
    strata_error_t err;
    ck_assert_msg(vset_open_readonly(data, NULL, NULL, NULL, &vset, &err) == 0, "%s", err.msg);
    version_t *v = vset_current(vset);
    size_t live = 0;
    for (int l = 0; l < STRATA_LEVELS; l++)
        live += v->n_files[l];
    DIR *d = opendir(data);
    ck_assert(d != NULL);
    size_t on_disk = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".sst"))
            continue;
        uint64_t number = strtoull(de->d_name, NULL, 10);
        bool found = false;
        for (int l = 0; l < STRATA_LEVELS && !found; l++)
            for (size_t i = 0; i < v->n_files[l] && !found; i++)
                found = v->files[l][i]->number == number;
        ck_assert_msg(found, "%s/%s is in no version", data, de->d_name);
        on_disk++;
    }
    closedir(d);
    ck_assert_uint_eq(on_disk, live);
    version_unref(&v);
    vset_close(&vset);
    char *work = ts_path(data, "compaction");
    d = opendir(work);
    ck_assert(d != NULL);
    while ((de = readdir(d)) != NULL)
        ck_assert_msg(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
                          !strcmp(de->d_name, "LOCK"),
                      "%s/%s outlived the compactor", work, de->d_name);
    closedir(d);
    free(work);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

START_TEST(compactor_keeps_l0_bounded_and_reads_right)
{
    char *dir = ts_tempdir("comp-basic");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, writer_env);
    ts_comp_t comp;
    ts_comp_start(&comp, data, comp_env);
    loader_t loader;
    loader_start(&loader, node.endpoint);
    wait_t w = {.node = &node, .comp_endpoint = comp.endpoint, .want = 6};
    uint64_t max_l0 = 0;
    uint64_t deadline = ts_now_ns() + 120ull * 1000000000ull;
    while (!compactions_reached(&w) && ts_now_ns() < deadline) {
        uint64_t l0 = writer_stat(&node, "l0_files");
        max_l0 = l0 > max_l0 ? l0 : max_l0;
        usleep(50000); /* a sampling period, not a wait for a condition */
    }
    uint64_t acked = loader_stop(&loader);
    ck_assert_msg(compactions_reached(&w), "fewer than %" PRIu64 " compactions in 120 s", w.want);
    /* The writer stalls nothing on L0; bounded means the compactor keeps up. */
    ck_assert_msg(max_l0 <= 12, "L0 reached %" PRIu64 " files", max_l0);
    ck_assert_uint_ge(writer_stat(&node, "compactions"), w.want);
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    check_no_orphans(data);
    ts_node_start(&node, data, writer_env);
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    printf("compactor: %" PRIu64 " writes, L0 at most %" PRIu64 " files\n", acked, max_l0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* Whether the last compactor's outputs are gone (its pid names them). */
static bool no_outputs_of(const char *data, pid_t pid)
{
    char *work = ts_path(data, "compaction");
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%d-", (int)pid);
    DIR *d = opendir(work);
    bool none = true;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        none &= strncmp(de->d_name, prefix, strlen(prefix)) != 0;
    if (d)
        closedir(d);
    free(work);
    return none;
}

START_TEST(compactor_kill9_mid_compaction)
{
    uint64_t seed = ts_seed("compactor-kill9");
    uint64_t rng = seed;
    char *dir = ts_tempdir("comp-kill9");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, writer_env);
    loader_t loader;
    loader_start(&loader, node.endpoint);
    unsigned cycles = ts_soak() ? 100 : 20, mid = 0;
    ts_comp_t comp;
    for (unsigned cycle = 0; cycle < cycles; cycle++) {
        ts_comp_start(&comp, data, slow_comp_env);
        /* Kill it while it writes outputs, at a random point of that: the
         * throttle makes each compaction last seconds. */
        progress_t p = {.endpoint = comp.endpoint};
        bool busy = ts_wait_for(compacting_with_output, &p, 30000);
        mid += busy;
        usleep((useconds_t)(ts_rand(&rng) % 500000)); /* the kill point, not a wait */
        pid_t pid = comp.pid;
        ts_comp_kill9(&comp);
        ck_assert_msg(!loader.failure[0],
                      "the writer stopped serving: %s (cycle %u, seed %" PRIu64 ")", loader.failure,
                      cycle, seed);
        /* The next start removes what this one left. */
        ts_comp_start(&comp, data, slow_comp_env);
        ck_assert_msg(no_outputs_of(data, pid), "outputs of killed pid %d outlived the restart",
                      (int)pid);
        ts_comp_kill9(&comp);
    }
    /* At least most kills landed mid-compaction, or the test proves little. */
    ck_assert_msg(mid >= cycles * 3 / 4, "only %u of %u kills were mid-compaction", mid, cycles);
    /* A compactor at full speed catches up. */
    ts_comp_start(&comp, data, comp_env);
    wait_t w = {.node = &node, .comp_endpoint = comp.endpoint, .want = 1};
    ck_assert(ts_wait_for(compactions_reached, &w, 60000));
    uint64_t acked = loader_stop(&loader);
    ck_assert_msg(ts_wait_for(l0_below_trigger, &w, 60000), "L0 did not come back under 4 files");
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ts_node_start(&node, data, writer_env);
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    check_no_orphans(data);
    printf("compactor kill -9: %u cycles (%u mid-compaction), %" PRIu64
           " acknowledged writes all present (seed %" PRIu64 ")\n",
           cycles, mid, acked, seed);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static bool l0_at_least(void *arg)
{
    wait_t *w = arg;
    return writer_stat(w->node, "l0_files") >= w->want;
}

START_TEST(writer_without_compactor_serves_and_reports_l0)
{
    char *dir = ts_tempdir("comp-none");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, writer_env);
    loader_t loader;
    loader_start(&loader, node.endpoint);
    wait_t w = {.node = &node, .want = 13};
    ck_assert_msg(ts_wait_for(l0_at_least, &w, 120000), "L0 never reached 13 files");
    ck_assert_msg(!loader.failure[0], "%s", loader.failure);
    /* The writer says so, once per doubling, in its log (one event per line). */
    for (int i = 0; i < 50 && !file_contains(node.log, "event=l0_backlog"); i++)
        usleep(100000); /* the writer checks once a second */
    ck_assert_msg(file_contains(node.log, "event=l0_backlog"), "no l0_backlog in %s", node.log);
    ts_comp_t comp;
    ts_comp_start(&comp, data, comp_env);
    uint64_t acked = loader_stop(&loader);
    ck_assert_msg(ts_wait_for(l0_below_trigger, &w, 60000), "L0 did not drain");
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    check_no_orphans(data);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

static int ctl(char **out, const char *const *args)
{
    const char *argv[16] = {STRATACTL_BIN};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    return ts_run_capture(argv, out);
}

static void flush(const ts_node_t *node)
{
    strata_client_t *client = ts_connect(node->control, 60000);
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_msg(strata_client_control(client, "flush", NULL, 0, &rep, &err) == 0, "%s", err.msg);
    strata_reply_clear(&rep);
    strata_client_destroy(&client);
}

START_TEST(stratactl_compact_moves_everything_down)
{
    char *dir = ts_tempdir("comp-manual");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    /* Three flushes: three L0 tables, under the trigger, so only a manual
     * compaction moves them. */
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    char value[VALUE_BYTES];
    uint64_t i = 0;
    for (int f = 0; f < 3; f++) {
        for (int k = 0; k < 2000; k++, i++) {
            char unique[32], hot[32];
            snprintf(unique, sizeof unique, "u%010" PRIu64, i);
            snprintf(hot, sizeof hot, "h%05" PRIu64, i % HOT_KEYS);
            value_of(i, value);
            strata_batch_op_t ops[2];
            batch_ops(ops, unique, hot, value);
            strata_error_t err;
            ck_assert_int_eq(
                strata_client_batch(client, STRATA_DURABILITY_ASYNC, ops, 2, NULL, &err), 0);
        }
        flush(&node);
    }
    strata_client_destroy(&client);
    ck_assert_uint_eq(writer_stat(&node, "l0_files"), 3);
    ts_comp_t comp;
    ts_comp_start(&comp, data, NULL);
    char *out = NULL;
    /* Bad requests: usage errors naming the fault. */
    ck_assert_int_eq(ctl(&out, (const char *[]){"compact", "--dir", data, "--level", "9", NULL}),
                     2);
    free(out);
    ck_assert_int_eq(ctl(&out, (const char *[]){"compact", "--dir", data, "--range", "b", NULL}),
                     2);
    free(out);
    /* Everything: L0 into L1, and nothing left above it. */
    ck_assert_int_eq(ctl(&out, (const char *[]){"compact", "--dir", data, "--json", NULL}), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "not JSON: %s", out);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "state")), "done");
    ck_assert_double_ge(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "compactions")), 1);
    cJSON_Delete(doc);
    free(out);
    ck_assert_uint_eq(writer_stat(&node, "l0_files"), 0);
    ck_assert_uint_ge(writer_stat(&node, "l1_files"), 1);
    /* One level and a range: L1 into L2 for the unique keys only. */
    ck_assert_int_eq(ctl(&out, (const char *[]){"compact", "--dir", data, "--level", "1", "--range",
                                                "u..v", NULL}),
                     0);
    free(out);
    ck_assert_uint_ge(writer_stat(&node, "l2_files"), 1);
    check_all(node.endpoint, i);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    /* No compactor: a clear "unreachable". */
    ck_assert_int_eq(ctl(&out, (const char *[]){"compact", "--dir", data, NULL}), 4);
    free(out);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    check_no_orphans(data);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* A manual compaction whose outputs cannot be written is one line in the
 * compactor's log (it used to be compaction_failed and then
 * manual_compaction_failed with the same error) and one on stratactl's
 * stderr. */
START_TEST(a_failed_manual_compaction_is_one_line)
{
    char *dir = ts_tempdir("comp-fail-once");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, NULL);
    strata_client_t *client = ts_connect(node.endpoint, 10000);
    char value[VALUE_BYTES];
    for (uint64_t i = 0; i < 200; i++) {
        char unique[32], hot[32];
        snprintf(unique, sizeof unique, "u%010" PRIu64, i);
        snprintf(hot, sizeof hot, "h%05" PRIu64, i);
        value_of(i, value);
        strata_batch_op_t ops[2];
        batch_ops(ops, unique, hot, value);
        strata_error_t err;
        ck_assert_int_eq(strata_client_batch(client, STRATA_DURABILITY_ASYNC, ops, 2, NULL, &err),
                         0);
    }
    strata_client_destroy(&client);
    flush(&node);
    ts_comp_t comp;
    ts_comp_start(&comp, data, NULL);
    /* The compactor writes its outputs into compaction/: make it a file. */
    char *work = ts_path(data, "compaction"), *aside = ts_path(data, "compaction.aside");
    ck_assert_int_eq(rename(work, aside), 0);
    FILE *f = fopen(work, "w");
    ck_assert(f != NULL);
    fclose(f);
    const char *argv[] = {STRATACTL_BIN, "compact", "--dir", data, NULL};
    char *err_out = NULL;
    ck_assert_int_eq(ts_run_output(argv, NULL, TS_STDERR, 120, &err_out), 3);
    ck_assert_msg(!strncmp(err_out, "stratactl: compact: compaction ", 31) &&
                      strchr(err_out, '\n')[1] == '\0' && !strstr(err_out + 1, "stratactl:"),
                  "not one stratactl line: [%s]", err_out);
    free(err_out);
    ck_assert_int_eq(unlink(work), 0);
    ck_assert_int_eq(rename(aside, work), 0);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    ck_assert_uint_eq(ts_lines_with(comp.log, "event=manual_compaction_failed"), 1);
    ck_assert_uint_eq(ts_lines_with(comp.log, "Not a directory"), 1);
    ck_assert_uint_eq(ts_lines_with(node.log, "Not a directory"), 0);
    free(aside);
    free(work);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- a whole node under sustained writes ---------------------------------------- */

typedef struct {
    const char *endpoint;
    loader_t *loader;
    pthread_t thread;
    atomic_bool stop;
    _Atomic uint64_t reads;
    char failure[1024];
} reader_t;

/* Reads unique keys the loader has had acknowledged: each must hold its
 * value, whatever flushes and compactions run meanwhile. */
static void *reader_main(void *arg)
{
    reader_t *r = arg;
    strata_client_options_t opts = {.endpoint = r->endpoint, .timeout_ms = 20000};
    strata_client_t *client = NULL;
    strata_error_t err;
    if (strata_client_connect(&opts, &client, &err) != 0) {
        snprintf(r->failure, sizeof r->failure, "connect: %s", err.msg);
        return NULL;
    }
    uint64_t rng = 0x5EEDull;
    while (!atomic_load(&r->stop)) {
        uint64_t acked = atomic_load(&r->loader->acked);
        if (acked == 0)
            continue;
        uint64_t i = ts_rand(&rng) % acked;
        char key[32];
        snprintf(key, sizeof key, "u%010" PRIu64, i);
        if (check_key(client, key, i, r->failure, sizeof r->failure) != 0)
            break;
        atomic_fetch_add(&r->reads, 1);
    }
    strata_client_destroy(&client);
    return NULL;
}

START_TEST(node_under_sustained_writes)
{
    char *dir = ts_tempdir("comp-node");
    char *data = ts_path(dir, "node");
    ts_node_t node;
    ts_node_start(&node, data, writer_env);
    ts_comp_t comp;
    ts_comp_start(&comp, data, comp_env);
    ts_snap_t snap;
    ts_snap_start(&snap, data, (const char *[]){"STRATA_SNAPSHOTTER_INTERVAL_S=2", NULL});
    ts_dist_t dist;
    ts_dist_start(&dist, data, NULL);
    loader_t loader;
    loader_start(&loader, node.endpoint);
    reader_t reader = {.endpoint = node.endpoint, .loader = &loader};
    ck_assert_int_eq(pthread_create(&reader.thread, NULL, reader_main, &reader), 0);
    unsigned seconds = ts_soak() ? 300 : 20;
    uint64_t end = ts_now_ns() + seconds * 1000000000ull, max_l0 = 0;
    while (ts_now_ns() < end && !reader.failure[0] && !loader.failure[0]) {
        uint64_t l0 = writer_stat(&node, "l0_files");
        max_l0 = l0 > max_l0 ? l0 : max_l0;
        usleep(200000); /* a sampling period */
    }
    atomic_store(&reader.stop, true);
    pthread_join(reader.thread, NULL);
    uint64_t acked = loader_stop(&loader);
    ck_assert_msg(!reader.failure[0], "a read went wrong: %s", reader.failure);
    ck_assert_msg(max_l0 <= 12, "L0 reached %" PRIu64 " files", max_l0);
    ck_assert_uint_gt(atomic_load(&reader.reads), 0);
    ck_assert_uint_ge(writer_stat(&node, "compactions"), 1);
    check_all(node.endpoint, acked);
    ck_assert_int_eq(ts_dist_stop(&dist), 0);
    ck_assert_int_eq(ts_snap_stop(&snap), 0);
    ck_assert_int_eq(ts_comp_stop(&comp), 0);
    ck_assert_int_eq(ts_node_stop(&node), 0);
    check_no_orphans(data);
    printf("node under writes: %u s, %" PRIu64 " writes, %" PRIu64 " reads checked, L0 at most "
           "%" PRIu64 "\n",
           seconds, acked, atomic_load(&reader.reads), max_l0);
    free(data);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compactor");
    TCase *tc = tcase_create("compactor");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, compactor_keeps_l0_bounded_and_reads_right);
    tcase_add_test(tc, compactor_kill9_mid_compaction);
    tcase_add_test(tc, writer_without_compactor_serves_and_reports_l0);
    tcase_add_test(tc, stratactl_compact_moves_everything_down);
    tcase_add_test(tc, a_failed_manual_compaction_is_one_line);
    tcase_add_test(tc, node_under_sustained_writes);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
