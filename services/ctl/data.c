/* The data verbs: put, get, mget, del, batch, scan, status, stats, record
 * put/get. */
#define _GNU_SOURCE
#include "ctl.h"

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

/* Reads all of in (named for messages) into *data (malloc'd), refusing more
 * than cap bytes: the protocol's value cap, said in the message. */
static int s_read_all(ctl_t *ctl, FILE *in, const char *name, size_t cap, char **data, size_t *len)
{
    size_t size = 0, allocated = 64 << 10;
    char *buf = ctl_xmalloc(allocated);
    for (;;) {
        if (size == allocated) {
            allocated *= 2;
            char *grown = realloc(buf, allocated);
            if (!grown) {
                free(buf);
                return ctl_fail(ctl, CTL_FAILED, STRATA_ENOMEM, "%s: out of memory", name);
            }
            buf = grown;
        }
        size_t got = fread(buf + size, 1, allocated - size, in);
        size += got;
        if (size > cap) {
            free(buf);
            return ctl_fail(ctl, CTL_FAILED, STRATA_ETOOBIG,
                            "%s: more than %zu bytes, the protocol's cap for a value (%zu KiB)",
                            name, cap, cap >> 10);
        }
        if (got == 0)
            break;
    }
    if (ferror(in)) {
        free(buf);
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "%s: %s", name, strerror(errno));
    }
    *data = buf;
    *len = size;
    return CTL_OK;
}

/* put's value: the second argument, stdin's bytes (-x) or a file's (--file). */
static int s_put_value(ctl_t *ctl, int argc, char **argv, char **owned, strata_bytes_t *value)
{
    int sources = (argc == 2) + ctl->from_stdin + (ctl->file != NULL);
    if (sources != 1)
        return ctl_fail(ctl, CTL_USAGE, 0,
                        "the value comes from one of: the VALUE argument, -x/--stdin, --file");
    *owned = NULL;
    if (argc == 2) {
        *value = ctl_arg_bytes(argv[1]);
        return CTL_OK;
    }
    size_t len = 0;
    int exit_code;
    if (ctl->from_stdin) {
        exit_code = s_read_all(ctl, stdin, "stdin", STRATA_PROTO_MAX_VALUE, owned, &len);
    } else {
        FILE *in = fopen(ctl->file, "rb");
        if (!in)
            return ctl_fail(ctl, CTL_USAGE, STRATA_EIO, "--file %s: %s", ctl->file,
                            strerror(errno));
        exit_code = s_read_all(ctl, in, ctl->file, STRATA_PROTO_MAX_VALUE, owned, &len);
        fclose(in);
    }
    *value = (strata_bytes_t){.data = (const uint8_t *)*owned, .len = len};
    return exit_code;
}

int ctl_put(ctl_t *ctl, int argc, char **argv)
{
    char *owned = NULL;
    strata_bytes_t value = {0};
    int exit_code = s_put_value(ctl, argc, argv, &owned, &value);
    if (exit_code)
        return exit_code;
    strata_error_t err;
    uint64_t seq = 0;
    int rc = strata_client_put(ctl->client, ctl->durability, argv[0], strlen(argv[0]), value.data,
                               value.len, &seq, &err);
    free(owned);
    if (rc)
        return ctl_fail_call(ctl, rc, &err);
    return s_print_write(ctl, argv[0], seq);
}

int ctl_del(ctl_t *ctl, int argc, char **argv)
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
        rc = ctl_record_json(value, len, &record_json, &err);
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
    } else if (ctl->raw) {
        fwrite(value, 1, len, stdout);
    } else {
        ctl_print_field(ctl, stdout, value, len);
        putchar('\n');
    }
    free(record_json);
    free(value);
    return CTL_OK;
}

int ctl_get(ctl_t *ctl, int argc, char **argv)
{
    if (ctl->record && (ctl->raw || ctl->hex))
        return ctl_fail(ctl, CTL_USAGE, 0, "--record excludes --raw and --hex");
    return s_get_value(ctl, argv[0], ctl->record);
}

/* One multi_get for every key; "KEY<TAB>VALUE" per key in order, a missing
 * one "KEY<TAB>(not found)". Exit 1 when any is missing. */
int ctl_mget(ctl_t *ctl, int argc, char **argv)
{
    strata_bytes_t *keys = ctl_xmalloc((size_t)argc * sizeof *keys);
    for (int i = 0; i < argc; i++)
        keys[i] = ctl_arg_bytes(argv[i]);
    strata_error_t err;
    strata_reply_t reply;
    int rc = strata_client_multi_get(ctl->client, keys, (size_t)argc, &reply, &err);
    free(keys);
    if (rc == 0 && reply.n_values != (size_t)argc)
        rc = strata_error_set(&err, STRATA_EINVAL, "multi_get: %zu values for %d keys",
                              reply.n_values, argc);
    if (rc) {
        strata_reply_clear(&reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    cJSON *entries = ctl->json ? cJSON_AddArrayToObject(ctl_doc(ctl), "entries") : NULL;
    size_t missing = 0;
    for (int i = 0; i < argc; i++) {
        const strata_value_t *v = &reply.values[i];
        missing += !v->found;
        if (entries) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddItemToObject(item, "key", ctl_json_bytes(argv[i], strlen(argv[i])));
            cJSON_AddItemToObject(item, "value",
                                  v->found ? ctl_json_bytes(v->value.data, v->value.len)
                                           : cJSON_CreateNull());
            cJSON_AddItemToArray(entries, item);
            continue;
        }
        ctl_print_field(ctl, stdout, argv[i], strlen(argv[i]));
        putchar('\t');
        if (v->found)
            ctl_print_field(ctl, stdout, v->value.data, v->value.len);
        else
            fputs("(not found)", stdout);
        putchar('\n');
    }
    if (entries) {
        ctl_json_add_u64(ctl->doc, "count", (uint64_t)argc);
        ctl_json_add_u64(ctl->doc, "missing", missing);
    }
    strata_reply_clear(&reply);
    /* The values found are the answer; the exit code says some are not. */
    if (missing && !ctl->quiet)
        fprintf(stderr, "stratactl: mget: %zu of %d keys not found\n", missing, argc);
    return missing ? CTL_NOT_FOUND : CTL_OK;
}

int ctl_record_get(ctl_t *ctl, int argc, char **argv)
{
    return s_get_value(ctl, argv[0], true);
}

int ctl_scan(ctl_t *ctl, int argc, char **argv)
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
            const strata_kv_t *e = &page.entries[i];
            if (entries) {
                cJSON *item = cJSON_CreateObject();
                cJSON_AddItemToObject(item, "key", ctl_json_bytes(e->key.data, e->key.len));
                cJSON_AddItemToObject(item, "value", ctl_json_bytes(e->value.data, e->value.len));
                cJSON_AddItemToArray(entries, item);
            } else {
                ctl_print_field(ctl, stdout, e->key.data, e->key.len);
                putchar('\t');
                ctl_print_field(ctl, stdout, e->value.data, e->value.len);
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

int ctl_status(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    strata_reply_t reply;
    int rc = strata_client_status(ctl->client, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    const char *role = reply.role ? reply.role : "";
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "endpoint", ctl->endpoint);
        cJSON_AddStringToObject(doc, "role", role);
        ctl_json_add_u64(doc, "term", reply.term);
        ctl_json_add_u64(doc, "last_seq", reply.last_seq);
        ctl_json_add_u64(doc, "durable_seq", reply.durable_seq);
    } else {
        printf("endpoint     %s\nrole         %s\nterm         %" PRIu64 "\nlast_seq     %" PRIu64
               "\ndurable_seq  %" PRIu64 "\n",
               ctl->endpoint, role, reply.term, reply.last_seq, reply.durable_seq);
    }
    strata_reply_clear(&reply);
    return CTL_OK;
}

int ctl_stats(ctl_t *ctl, int argc, char **argv)
{
    strata_error_t err;
    strata_reply_t reply;
    int rc = strata_client_stats(ctl->client, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    int width = 0;
    for (size_t i = 0; i < reply.n_pairs; i++) {
        int len = (int)strlen(reply.pairs[i].name);
        width = len > width ? len : width;
    }
    for (size_t i = 0; i < reply.n_pairs; i++) {
        if (ctl->json)
            cJSON_AddItemToObject(ctl_doc(ctl), reply.pairs[i].name,
                                  ctl_json_scalar(reply.pairs[i].value));
        else
            printf("%-*s  %s\n", width, reply.pairs[i].name, reply.pairs[i].value);
    }
    if (ctl->json)
        ctl_doc(ctl); /* no pairs is still one document: {} */
    strata_reply_clear(&reply);
    return CTL_OK;
}

int ctl_record_put(ctl_t *ctl, int argc, char **argv)
{
    if (!strata_record_type_from_name(argv[0]))
        return ctl_fail(ctl, CTL_USAGE, STRATA_EINVAL, "unknown record type '%s'", argv[0]);
    uint8_t *msgpack = NULL;
    size_t len = 0, key_len = 0;
    char topic[STRATA_TOPIC_MAX + 1], key[STRATA_RECORD_KEY_MAX];
    strata_error_t err;
    int rc = ctl_record_build(argv[0], (const char *const *)argv + 1, (size_t)argc - 1, &msgpack,
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
