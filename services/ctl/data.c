/* stratactl's data verbs: put, get, del, scan, typed records (record put,
 * record get) and tail (live, delayed, from history, durable), plus where the
 * distributor listens. Rows of main.c's verb table. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "strata/client.h"
#include "strata/memtable.h"
#include "strata/record.h"
#include "strata/snapshot.h"
#include "strata/verify.h"
#include "strata/subscriber.h"
#include "stratactl.h"

/* ---- typed records ------------------------------------------------------ */

/* Builds, validates and encodes a record from "field=value" pairs; *msgpack
 * is malloc'd. topic and key get what the server will derive from it. */
static int s_record_build(const char *type_name, const char *const *pairs, size_t n_pairs,
                          uint8_t **msgpack, size_t *len, char *topic, size_t topic_cap, char *key,
                          size_t key_cap, size_t *key_len, strata_error_t *err)
{
    strata_record_t rec;
    int rc = strata_record_from_fields(type_name, pairs, n_pairs, &rec, err);
    if (rc)
        return rc;
    ssize_t built = strata_record_key(&rec, key, key_cap);
    if (built < 0) {
        rc = strata_error_set(err, (int)built, "%s: key does not fit in %zu bytes", type_name,
                              key_cap);
    } else {
        *key_len = (size_t)built;
        const char *derived = strata_record_topic(&rec);
        snprintf(topic, topic_cap, "%s", derived ? derived : "");
        rc = strata_record_encode(&rec, msgpack, len, err);
    }
    strata_record_clear(&rec);
    return rc;
}

/* Decodes leniently, as a subscriber does (a newer writer's added fields are
 * skipped), and renders pretty JSON into *json (malloc'd). */
static int s_record_json(const void *value, size_t len, char **json, strata_error_t *err)
{
    strata_record_t rec;
    int rc = strata_record_decode(value, len, true, &rec, err);
    if (rc)
        return rc;
    rc = strata_record_to_json(&rec, json);
    if (rc)
        strata_error_set(err, rc, "record: cannot render as JSON");
    strata_record_clear(&rec);
    return rc;
}

/* ---- verbs --------------------------------------------------------------- */

/* What put and del print: the seq the write got. */
static int s_print_write(ctl_t *ctl, const char *key, uint64_t seq)
{
    if (ctl->json) {
        cJSON_AddItemToObject(ctl_doc(ctl), "key", ctl_json_bytes(key, strlen(key)));
        ctl_json_add_u64(ctl->doc, "seq", seq);
    } else if (!ctl->quiet) {
        printf("seq %" PRIu64 "\n", seq);
    }
    return CTL_OK;
}

int verb_put(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_put(ctl->client, ctl->durability, argv[0], strlen(argv[0]), argv[1],
                               strlen(argv[1]), &seq, &err);
    if (rc)
        return ctl_fail_call(ctl, rc, &err);
    return s_print_write(ctl, argv[0], seq);
}

int verb_del(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    uint64_t seq = 0;
    int rc =
        strata_client_delete(ctl->client, ctl->durability, argv[0], strlen(argv[0]), &seq, &err);
    if (rc)
        return ctl_fail_call(ctl, rc, &err);
    return s_print_write(ctl, argv[0], seq);
}

/* get and record get. want_record: the value must decode as a record, which
 * is printed instead of the raw bytes. With --json, a value that happens to
 * decode as a record gets a "record" member either way. */
static int s_get_value(ctl_t *ctl, const char *key, bool want_record)
{
    strata_error_t err;
    void *value = NULL;
    size_t len = 0;
    int rc = strata_client_get(ctl->client, key, strlen(key), &value, &len, &err);
    if (rc == STRATA_ENOTFOUND) {
        char shown[256];
        return ctl_fail(ctl, CTL_NOT_FOUND, rc, "%s: not found",
                        ctl_escape(shown, sizeof shown, key, strlen(key)));
    }
    if (rc)
        return ctl_fail_call(ctl, rc, &err);

    char *record_json = NULL;
    if (want_record || ctl->json) {
        rc = s_record_json(value, len, &record_json, &err);
        if (rc && want_record) {
            free(value);
            return ctl_fail(ctl, CTL_FAILED, rc, "value is not a record: %s", err.msg);
        }
    }
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddItemToObject(doc, "key", ctl_json_bytes(key, strlen(key)));
        cJSON_AddItemToObject(doc, "value", ctl_json_bytes(value, len));
        if (record_json)
            cJSON_AddItemToObject(doc, "record", cJSON_Parse(record_json));
    } else if (want_record) {
        size_t len_json = strlen(record_json);
        fputs(record_json, stdout);
        if (len_json == 0 || record_json[len_json - 1] != '\n')
            putchar('\n');
    } else {
        ctl_print_bytes(stdout, value, len);
        putchar('\n');
    }
    free(record_json);
    free(value);
    return CTL_OK;
}

int verb_get(ctl_t *ctl, int argc, char **argv)
{
    return s_get_value(ctl, argv[0], ctl->record);
}

int verb_record_get(ctl_t *ctl, int argc, char **argv)
{
    return s_get_value(ctl, argv[0], true);
}

int verb_scan(ctl_t *ctl, int argc, char **argv)
{
    strata_bytes_t start = ctl_arg_bytes(argc > 0 ? argv[0] : "");
    strata_bytes_t end = ctl_arg_bytes(argc > 1 ? argv[1] : "");
    cJSON *entries = ctl->json ? cJSON_AddArrayToObject(ctl_doc(ctl), "entries") : NULL;
    uint64_t count = 0;
    /* The cursor lives in the previous page's reply, so two replies are kept. */
    strata_reply_t page = {0}, previous = {0};
    strata_bytes_t cursor = {0};
    bool more = true;
    int exit_code = CTL_OK;
    while (more && (ctl->limit == 0 || count < ctl->limit)) {
        uint32_t want = ctl->page; /* 0: the server's page size */
        if (ctl->limit && ctl->limit - count < (want ? want : MAX_SCAN_PAGE))
            want = (uint32_t)(ctl->limit - count);
        strata_error_t err;
        int rc = strata_client_scan(ctl->client, start, end, want, cursor, &page, &err);
        if (rc) {
            exit_code = ctl_fail_call(ctl, rc, &err);
            break;
        }
        for (size_t i = 0; i < page.n_entries && (!ctl->limit || count < ctl->limit); i++) {
            const strata_entry_t *e = &page.entries[i];
            if (entries) {
                cJSON *item = cJSON_CreateObject();
                cJSON_AddItemToObject(item, "key", ctl_json_bytes(e->key.data, e->key.len));
                cJSON_AddItemToObject(item, "value", ctl_json_bytes(e->value.data, e->value.len));
                cJSON_AddItemToArray(entries, item);
            } else {
                ctl_print_bytes(stdout, e->key.data, e->key.len);
                putchar('\t');
                ctl_print_bytes(stdout, e->value.data, e->value.len);
                putchar('\n');
            }
            count++;
        }
        more = page.next_cursor.len > 0;
        /* A server handing back the cursor it was given would page forever. */
        if (more && cursor.len == page.next_cursor.len &&
            memcmp(cursor.data, page.next_cursor.data, cursor.len) == 0) {
            exit_code = ctl_fail(ctl, CTL_FAILED, STRATA_EINVAL, "server repeated its scan cursor");
            break;
        }
        strata_reply_clear(&previous);
        previous = page;
        memset(&page, 0, sizeof page);
        cursor = previous.next_cursor;
    }
    if (exit_code == CTL_OK && ctl->json) {
        ctl_json_add_u64(ctl->doc, "count", count);
        cJSON_AddBoolToObject(ctl->doc, "more", more);
    }
    strata_reply_clear(&page);
    strata_reply_clear(&previous);
    return exit_code;
}

int verb_record_put(ctl_t *ctl, int argc, char **argv)
{
    if (!strata_record_type_from_name(argv[0]))
        return ctl_fail(ctl, CTL_USAGE, STRATA_EINVAL, "unknown record type '%s'", argv[0]);
    uint8_t *msgpack = NULL;
    size_t len = 0, key_len = 0;
    char topic[STRATA_TOPIC_MAX + 1], key[STRATA_RECORD_KEY_MAX];
    strata_error_t err;
    int rc = s_record_build(argv[0], (const char *const *)argv + 1, (size_t)argc - 1, &msgpack,
                            &len, topic, sizeof topic, key, sizeof key, &key_len, &err);
    if (rc)
        return ctl_fail(ctl, CTL_FAILED, rc, "%s", err.msg);
    uint64_t seq = 0;
    rc = strata_client_record_put(ctl->client, ctl->durability, msgpack, len, &seq, &err);
    free(msgpack);
    if (rc)
        return ctl_fail_call(ctl, rc, &err);
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "type", argv[0]);
        cJSON_AddStringToObject(doc, "topic", topic);
        cJSON_AddItemToObject(doc, "key", ctl_json_bytes(key, key_len));
        ctl_json_add_u64(doc, "seq", seq);
    } else if (!ctl->quiet) {
        printf("seq %" PRIu64 " topic %s key ", seq, topic);
        ctl_print_bytes(stdout, key, key_len);
        putchar('\n');
    }
    return CTL_OK;
}

/* ---- the distributor: tail and subscribers ------------------------------- */

/* Where the distributor listens: the flags, else what it wrote into
 * DATADIR/distributor.endpoints (--dir), else the defaults. */
int ctl_distributor_endpoints(ctl_t *ctl, dist_endpoints_t *eps)
{
    const char *live = STRATA_SUB_DEFAULT_LIVE, *delayed = STRATA_SUB_DEFAULT_DELAYED,
               *history = STRATA_SUB_DEFAULT_HISTORY;
    zconfig_t *root = NULL;
    if (ctl->dir) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/distributor.endpoints", ctl->dir);
        /* The distributor writes it once ready and removes it when it stops. */
        if (!(root = zconfig_load(path)))
            return ctl_fail(ctl, CTL_UNREACHABLE, 0,
                            "cannot read %s (is strata-distributor running on that data dir?)",
                            path);
        live = zconfig_get(root, "distributor/live", live);
        delayed = zconfig_get(root, "distributor/delayed", delayed);
        history = zconfig_get(root, "distributor/history", history);
    }
    snprintf(eps->live, sizeof eps->live, "%s", ctl->live_ep ? ctl->live_ep : live);
    snprintf(eps->delayed, sizeof eps->delayed, "%s", ctl->delayed_ep ? ctl->delayed_ep : delayed);
    snprintf(eps->history, sizeof eps->history, "%s", ctl->history_ep ? ctl->history_ep : history);
    zconfig_destroy(&root);
    return CTL_OK;
}

/* A typed record's JSON on one line (strata_record_to_json indents), or NULL
 * when value is not a record. Malloc'd. */
static char *s_record_line(const void *value, size_t len)
{
    char *json = NULL;
    strata_error_t err;
    if (len == 0 || s_record_json(value, len, &json, &err) != 0)
        return NULL;
    size_t out = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; json[i]; i++) {
        char c = json[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        json[out++] = c;
    }
    json[out] = '\0';
    return json;
}

static bool s_printable(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

/* One record, one line: "seq<TAB>topic<TAB>key<TAB>value", or with --json
 * one JSON object. Flushed, so a pipe sees each record as it comes. */
static void s_print_record(ctl_t *ctl, const strata_wal_entry_t *e)
{
    bool deleted = e->type == STRATA_VALUE_DELETE;
    char *record = deleted ? NULL : s_record_line(e->value, e->value_len);
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        ctl_json_add_u64(obj, "seq", e->seq);
        cJSON_AddItemToObject(obj, "topic", ctl_json_bytes(e->topic, e->topic_len));
        cJSON_AddItemToObject(obj, "key", ctl_json_bytes(e->key, e->key_len));
        cJSON_AddStringToObject(obj, "op", deleted ? "delete" : "put");
        if (!deleted)
            cJSON_AddItemToObject(obj, "value", ctl_json_bytes(e->value, e->value_len));
        if (record)
            cJSON_AddItemToObject(obj, "record", cJSON_CreateRaw(record));
        ctl_json_add_u64(obj, "timestamp_ns", e->timestamp_ns);
        char *text = cJSON_PrintUnformatted(obj);
        puts(text);
        free(text);
        cJSON_Delete(obj);
    } else {
        printf("%" PRIu64 "\t", e->seq);
        ctl_print_bytes(stdout, e->topic, e->topic_len);
        putchar('\t');
        ctl_print_bytes(stdout, e->key, e->key_len);
        putchar('\t');
        if (deleted) {
            fputs("(deleted)", stdout);
        } else if (record) {
            fputs(record, stdout);
        } else if (s_printable(e->value, e->value_len)) {
            fwrite(e->value, 1, e->value_len, stdout);
        } else {
            fputs("0x", stdout);
            for (uint32_t i = 0; i < e->value_len; i++)
                printf("%02x", e->value[i]);
        }
        putchar('\n');
    }
    fflush(stdout);
    free(record);
}

/* Ctrl-C and SIGTERM end tail cleanly: the subscriber's wait sees
 * zsys_interrupted (as with czmq's own handler) and returns ECLOSED. */
static void s_on_signal(int signum)
{
    zsys_interrupted = 1;
}

static void s_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Durable: waits up to --timeout for the distributor to store the last ack,
 * so the next tail under the name starts after it. What arrives meanwhile
 * stays unacked and comes again. */
static void s_tail_settle(ctl_t *ctl, strata_sub_t *sub, uint64_t acked)
{
    zsys_interrupted = 0;
    uint64_t deadline = (uint64_t)zclock_mono() + (uint64_t)ctl->timeout_ms;
    while (strata_sub_durable_seq(sub) < acked && (uint64_t)zclock_mono() < deadline) {
        strata_wal_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 50, &e, NULL, NULL, &err);
        if (rc && rc != STRATA_ETIMEDOUT)
            break;
    }
    if (strata_sub_durable_seq(sub) < acked)
        fprintf(stderr, "stratactl: tail: ack %" PRIu64 " not confirmed stored within %d ms\n",
                acked, ctl->timeout_ms);
}

/* Errors next() reports about one message or one repair: tail says so on
 * stderr and goes on (the subscriber repairs what a dropped message leaves). */
static bool s_tail_recoverable(const ctl_t *ctl, int rc)
{
    switch (rc) {
    case STRATA_EINVAL:
    case STRATA_EVERSION:
    case STRATA_ECORRUPT:
    case STRATA_ETOOBIG:
        return true;
    case STRATA_ETRUNCATED: /* a repair given up; for a durable session, its start */
        return !ctl->durable;
    default:
        return false;
    }
}

int verb_tail(ctl_t *ctl, int argc, char **argv)
{
    if (ctl->from_seq && ctl->from_time_ns)
        return ctl_fail(ctl, CTL_USAGE, 0, "--from and --from-time exclude each other");
    if (ctl->durable && (ctl->delayed || ctl->from_time_ns))
        return ctl_fail(ctl, CTL_USAGE, 0, "--durable takes neither --delayed nor --from-time");
    for (int i = 0; i < argc; i++)
        if (!argv[i][0] || strlen(argv[i]) > STRATA_PROTO_MAX_TOPIC)
            return ctl_fail(ctl, CTL_USAGE, 0, "topic %d: 1 to %u bytes", i + 1,
                            STRATA_PROTO_MAX_TOPIC);
    dist_endpoints_t eps;
    int exit_code = ctl_distributor_endpoints(ctl, &eps);
    if (exit_code)
        return exit_code;
    strata_sub_options_t opts = {
        .stream_endpoint = ctl->delayed ? eps.delayed : eps.live,
        .history_endpoint = eps.history,
        .topics = (const char *const *)argv,
        .n_topics = (size_t)argc,
        .from_seq = ctl->from_seq,
        .from_time_ns = ctl->from_time_ns,
        .durable = ctl->durable,
        .timeout_ms = ctl->timeout_ms,
    };
    strata_sub_t *sub = NULL;
    strata_error_t err;
    s_catch_signals();
    int rc = strata_sub_open(&opts, &sub, &err);
    if (rc) {
        bool bad_endpoint = rc == STRATA_EINVAL && strstr(err.msg, "endpoint '") != NULL;
        exit_code = rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE
                    : bad_endpoint         ? CTL_USAGE
                    : rc == STRATA_ECLOSED ? CTL_OK
                                           : CTL_FAILED;
        return exit_code == CTL_OK ? CTL_OK : ctl_fail(ctl, exit_code, rc, "%s", err.msg);
    }
    uint64_t printed = 0, acked = 0;
    while (exit_code == CTL_OK && (ctl->count == 0 || printed < ctl->count)) {
        strata_wal_entry_t e;
        rc = strata_sub_next(sub, -1, &e, NULL, NULL, &err);
        if (rc == 0) {
            s_print_record(ctl, &e);
            printed++;
            if (ctl->durable && (rc = strata_sub_ack(sub, e.seq, &err)) == 0)
                acked = e.seq;
        }
        if (rc == 0)
            continue;
        if (rc == STRATA_ECLOSED && zsys_interrupted)
            break;
        if (s_tail_recoverable(ctl, rc))
            fprintf(stderr, "stratactl: tail: %s\n", err.msg);
        else
            exit_code = ctl_fail(ctl, rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE : CTL_FAILED, rc,
                                 "%s", err.msg);
    }
    if (exit_code == CTL_OK && acked)
        s_tail_settle(ctl, sub, acked);
    strata_sub_close(&sub);
    return exit_code;
}
