/* Writes the seed corpus of every fuzz target under DIR/<target>/, each
 * seed a well-formed input made by the project's own encoders, so the
 * fuzzers start from the formats rather than from nothing. Run by
 * `make fuzz-seeds`; the seeds are committed in fuzz/corpus/. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strata/codec.h"
#include "strata/db.h"
#include "strata/entry.h"
#include "strata/pubframe.h"
#include "strata/raft_msg.h"
#include "strata/record.h"
#include "strata/snapshot.h"
#include "strata/sstable.h"
#include "strata/wal.h"

static const char *out_dir;

static void die(const char *what, const strata_error_t *err)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void put_seed(const char *target, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        die(path, NULL);
}

static void copy_seed(const char *target, const char *name, const char *from)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        die(from, NULL);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put_seed(target, name, buf, n);
}

static void requests(void)
{
    strata_batch_op_t ops[2] = {{.kind = STRATA_BATCH_PUT,
                                 .key = {(const uint8_t *)"k1", 2},
                                 .value = {(const uint8_t *)"v", 1}},
                                {.kind = STRATA_BATCH_DELETE, .key = {(const uint8_t *)"k2", 2}}};
    const char *args[] = {"1000"};
    const char *topics[] = {"orders", "trades"};
    uint64_t in0[] = {4, 5};
    const char *outs[] = {"1-1-1.sst"};
    strata_install_t install = {
        .level = 0, .inputs = {in0, NULL}, .n_inputs = {2, 0}, .outputs = outs, .n_outputs = 1};
    strata_request_t reqs[] = {
        {.request_id = 1,
         .op = STRATA_OP_PUT,
         .key = {(const uint8_t *)"key", 3},
         .value = {(const uint8_t *)"value", 5}},
        {.request_id = 2, .op = STRATA_OP_BATCH, .ops = ops, .n_ops = 2},
        {.request_id = 3,
         .op = STRATA_OP_SCAN,
         .scan_start = {(const uint8_t *)"a", 1},
         .scan_limit = 10},
        {.request_id = 4,
         .op = STRATA_OP_CONTROL,
         .verb = "truncate_wal",
         .args = args,
         .n_args = 1},
        {.request_id = 5,
         .op = STRATA_OP_CONTROL,
         .verb = "install_compaction",
         .install = &install},
        {.request_id = 6, .op = STRATA_OP_SUBSCRIBE, .name = "s1", .topics = topics, .n_topics = 2},
        {.request_id = 7, .op = STRATA_OP_REPLAY, .topics = topics, .n_topics = 1, .seq = 5},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        uint8_t *buf;
        size_t len;
        strata_error_t err;
        if (strata_request_encode(&reqs[i], &buf, &len, &err))
            die("request", &err);
        char name[32];
        snprintf(name, sizeof name, "req-%zu", i);
        put_seed("request", name, buf, len);
        free(buf);
    }
}

static void replies(void)
{
    strata_pair_t pairs[] = {{"seq", "42"}, {"path", "/data"}};
    strata_value_t value = {.found = true, .value = {(const uint8_t *)"v", 1}};
    strata_reply_t reps[] = {
        {.request_id = 1, .status = STRATA_EINVAL, .message = "put.key: empty"},
        {.request_id = 2, .op = STRATA_OP_CONTROL, .pairs = pairs, .n_pairs = 2},
        {.request_id = 3, .op = STRATA_OP_GET, .values = &value, .n_values = 1},
        {.request_id = 4, .op = STRATA_OP_PUT, .seq = 9},
    };
    for (size_t i = 0; i < sizeof reps / sizeof reps[0]; i++) {
        uint8_t *buf;
        size_t len;
        strata_error_t err;
        if (strata_reply_encode(&reps[i], &buf, &len, &err))
            die("reply", &err);
        char name[32];
        snprintf(name, sizeof name, "rep-%zu", i);
        put_seed("reply", name, buf, len);
        free(buf);
    }
}

static void records(void)
{
    const char *order[] = {"order_id=o1",
                           "user_id=u1",
                           "instrument_id=rb2410",
                           "direction=buy",
                           "offset=open",
                           "price=3500.5",
                           "volume=2",
                           "timestamp_ns=1700000000000000000"};
    const char *raw[] = {"topic=fills", "key=k1", "data=payload"};
    struct {
        const char *type;
        const char *const *pairs;
        size_t n;
    } cases[] = {{"OrderInsert", order, 8}, {"Raw", raw, 3}};
    for (size_t i = 0; i < 2; i++) {
        strata_record_t rec;
        strata_error_t err;
        if (strata_record_from_fields(cases[i].type, cases[i].pairs, cases[i].n, &rec, &err))
            die(cases[i].type, &err);
        uint8_t *buf;
        size_t len;
        if (strata_record_encode(&rec, &buf, &len, &err))
            die(cases[i].type, &err);
        put_seed("record", cases[i].type, buf, len);
        free(buf);
        strata_record_clear(&rec);
    }
}

static void entries(void)
{
    uint8_t buf[1024];
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        strata_entry_t e = {.seq = (uint64_t)i + 1,
                            .term = 1,
                            .timestamp_ns = 1700000000000000000ull,
                            .type = i == 2 ? STRATA_VALUE_DELETE : STRATA_VALUE_PUT,
                            .flags = i == 0 ? STRATA_ENTRY_GROUP_CONT : 0,
                            .topic = (const uint8_t *)"orders",
                            .topic_len = 6,
                            .key = (const uint8_t *)"o/1",
                            .key_len = 3,
                            .value = (const uint8_t *)(i == 2 ? "" : "value"),
                            .value_len = i == 2 ? 0 : 5};
        strata_entry_encode(buf + off, &e);
        off += strata_entry_size(6, 3, e.value_len);
    }
    put_seed("entry", "three", buf, off);
    /* The same entries after a topic length byte, a meta frame and a
     * heartbeat body, as fuzz_pubframe splits its input. */
    uint8_t frame[512];
    size_t n = 0;
    frame[n++] = 6;
    memcpy(frame + n, "orders", 6);
    n += 6;
    strata_pub_meta_t meta = {
        .kind = STRATA_PUB_ENTRIES, .count = 3, .instance = 7, .start_seq = 1, .term = 1};
    n += strata_pub_meta_encode(&meta, frame + n);
    put_seed("pubframe", "entries", frame, n);
    /* What distributors before meta version 2 send. */
    meta.version = 1;
    put_seed("pubframe", "entries-v1", frame, 7 + strata_pub_meta_encode(&meta, frame + 7));
    n = 0;
    frame[n++] = 3;
    memcpy(frame + n, STRATA_PUB_HB_TOPIC, 3);
    n += 3;
    meta =
        (strata_pub_meta_t){.kind = STRATA_PUB_HEARTBEAT, .instance = 7, .start_seq = 1, .term = 1};
    n += strata_pub_meta_encode(&meta, frame + n);
    size_t body = n;
    n += 12;
    n += strata_pub_hb_put_topic(frame + n, "orders", 6, 3);
    strata_pub_hb_put_header(frame + body, 3, 1);
    put_seed("pubframe", "heartbeat", frame, n);
}

/* One message of each type; the append carries three entries. */
static void raft_messages(void)
{
    uint8_t frames[1024];
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        strata_entry_t e = {.seq = (uint64_t)i + 11,
                            .term = i ? 3 : 2,
                            .timestamp_ns = 1700000000000000000ull,
                            .type = STRATA_VALUE_PUT,
                            .flags = i == 0 ? STRATA_ENTRY_GROUP_CONT : 0,
                            .topic = (const uint8_t *)"orders",
                            .topic_len = 6,
                            .key = (const uint8_t *)"o/1",
                            .key_len = 3,
                            .value = (const uint8_t *)"value",
                            .value_len = 5};
        strata_entry_encode(frames + off, &e);
        off += strata_entry_size(6, 3, 5);
    }
    strata_raft_msg_t msgs[] = {
        {.type = STRATA_RAFT_MSG_VOTE,
         .from = 1,
         .to = 2,
         .term = 3,
         .incarnation = 9,
         .last_seq = 10,
         .last_term = 2,
         .pre_vote = true},
        {.type = STRATA_RAFT_MSG_VOTE_REPLY,
         .from = 2,
         .to = 1,
         .term = 3,
         .incarnation = 8,
         .granted = true},
        {.type = STRATA_RAFT_MSG_APPEND,
         .from = 1,
         .to = 2,
         .term = 3,
         .incarnation = 9,
         .prev_seq = 10,
         .prev_term = 2,
         .commit_seq = 10,
         .ctx = 5,
         .n_entries = 3},
        {.type = STRATA_RAFT_MSG_APPEND_REPLY,
         .from = 2,
         .to = 1,
         .term = 3,
         .incarnation = 8,
         .ok = true,
         .match_seq = 13,
         .ctx = 5},
        {.type = STRATA_RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 3, .term = 3, .incarnation = 9},
        {.type = STRATA_RAFT_MSG_SNAPSHOT_OFFER,
         .from = 1,
         .to = 3,
         .term = 3,
         .incarnation = 9,
         .snap_seq = 100,
         .snap_term = 2},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        uint8_t *buf;
        size_t len;
        strata_error_t err;
        bool append = msgs[i].type == STRATA_RAFT_MSG_APPEND;
        if (strata_raft_msg_encode(&msgs[i], append ? frames : NULL, append ? off : 0, &buf, &len,
                                   &err))
            die("raft message", &err);
        char name[32];
        snprintf(name, sizeof name, "msg-%zu", i);
        put_seed("raftmsg", name, buf, len);
        free(buf);
    }
}

static void files(void)
{
    char dir[] = "/tmp/strata-seeds-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char path[1024];
    strata_error_t err;
    /* A database: its WAL segment and MANIFEST. */
    snprintf(path, sizeof path, "%s/db", dir);
    strata_db_options_t opts;
    strata_db_options_init(&opts);
    opts.dir = path;
    strata_db_t *db = NULL;
    if (strata_db_open(&opts, &db, &err))
        die("db open", &err);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        if (strata_db_put(db, NULL, key, strlen(key), "value", 5, NULL, &err))
            die("put", &err);
        if (i == 9 && strata_db_flush(db, &err))
            die("flush", &err);
    }
    if (strata_db_close(&db, &err))
        die("db close", &err);
    snprintf(path, sizeof path, "%s/db/wal/0000000000000001.wal", dir);
    copy_seed("wal", "segment", path);
    snprintf(path, sizeof path, "%s/db/MANIFEST-000001", dir);
    if (access(path, F_OK) != 0)
        snprintf(path, sizeof path, "%s/db/MANIFEST-000002", dir);
    copy_seed("manifest", "manifest", path);
    /* A table. */
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    strata_table_options_t topts;
    strata_table_options_init(&topts);
    strata_table_builder_t *b = NULL;
    if (strata_table_builder_new(&topts, path, &b, &err))
        die("table", &err);
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        if (strata_table_builder_add(b, key, strlen(key), (uint64_t)i + 1,
                                     i % 7 ? STRATA_VALUE_PUT : STRATA_VALUE_DELETE, "v", 1, &err))
            die("table add", &err);
    }
    strata_table_props_t props;
    memset(&props, 0, sizeof props);
    if (strata_table_builder_finish(&b, &props, &err))
        die("table finish", &err);
    strata_table_props_clear(&props);
    copy_seed("sstable", "table", path);
    /* A snapshot's SNAPSHOT file, over that table. */
    snprintf(path, sizeof path, "%s", dir);
    strata_snapshot_meta_t meta;
    memset(&meta, 0, sizeof meta);
    snprintf(path, sizeof path, "%s/db", dir);
    if (strata_snapshot_seal(path, 20, 1, "node1", &meta, &err))
        die("seal", &err);
    strata_snapshot_meta_free(&meta);
    snprintf(path, sizeof path, "%s/db/" STRATA_SNAPSHOT_FILE, dir);
    copy_seed("snapshot", "snapshot", path);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        die("rm", NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    requests();
    replies();
    records();
    entries();
    raft_messages();
    files();
    return 0;
}
