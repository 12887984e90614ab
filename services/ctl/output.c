/* Printing for stratactl: bytes as text, hex or JSON, errors with their exit codes, typed
 * records as text and JSON. */
#define _GNU_SOURCE
#include "ctl.h"

/* ---- output helpers ------------------------------------------------------ */

/* cJSON allocations cannot fail from here on: stratactl's policy on memory
 * is the services' one, abort with a message. */
void *ctl_xmalloc(size_t size)
{
    void *p = malloc(size);
    if (!p) {
        fprintf(stderr, "stratactl: out of memory\n");
        abort();
    }
    return p;
}

/* The length (1..4) of the well-formed UTF-8 sequence at p, with its code
 * point in *cp, or 0 when p does not start one: overlong forms, surrogates
 * and code points past U+10FFFF are not well-formed (RFC 3629). */
static size_t s_utf8_sequence(const unsigned char *p, size_t left, uint32_t *cp)
{
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > left)
        return 0;
    uint32_t value = p[0] & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        value = value << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (value < min_for_len[len] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 0;
    *cp = value;
    return len;
}

bool ctl_utf8_valid(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = s_utf8_sequence(p + i, len - i, &cp)))
            return false;
    return true;
}

/* C0 and C1 controls and DEL: a terminal acts on them rather than showing them. */
static bool s_is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

bool ctl_is_text(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = s_utf8_sequence(p + i, len - i, &cp)) || s_is_control(cp))
            return false;
    return true;
}

/* Bytes for a terminal: well-formed UTF-8 as is, but controls and bytes
 * that are not UTF-8 as \xNN (and the backslash doubled), so one entry
 * stays on one line and the escapes read back unambiguously. */
void ctl_print_bytes(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        n = s_utf8_sequence(p + i, len - i, &cp);
        if (n && p[i] == '\\') {
            fputs("\\\\", out);
        } else if (n && !s_is_control(cp)) {
            fwrite(p + i, 1, n, out);
        } else {
            n = n ? n : 1;
            for (size_t j = 0; j < n; j++)
                fprintf(out, "\\x%02x", p[i + j]);
        }
    }
}

void ctl_print_hex(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        fprintf(out, "%02x", p[i]);
}

/* A key or value in text output: hex with --hex, else escaped as above. */
void ctl_print_field(const ctl_t *ctl, FILE *out, const void *data, size_t len)
{
    if (ctl->hex)
        ctl_print_hex(out, data, len);
    else
        ctl_print_bytes(out, data, len);
}

/* The same escaping into a string for a message; cut short when it fills
 * buf, which is always NUL-terminated. */
const char *ctl_escape(char *buf, size_t cap, const void *data, size_t len)
{
    FILE *out = fmemopen(buf, cap, "w");
    if (!out)
        return "?";
    setbuf(out, NULL);
    ctl_print_bytes(out, data, len);
    fclose(out);
    buf[cap - 1] = '\0';
    return buf;
}

/* RFC 4648 base64 with padding; malloc'd and NUL-terminated. */
static char *s_base64(const unsigned char *p, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *text = ctl_xmalloc((len + 2) / 3 * 4 + 1), *t = text;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t group = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            group |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            group |= p[i + 2];
        *t++ = alphabet[group >> 18 & 63];
        *t++ = alphabet[group >> 12 & 63];
        *t++ = i + 1 < len ? alphabet[group >> 6 & 63] : '=';
        *t++ = i + 2 < len ? alphabet[group & 63] : '=';
    }
    *t = '\0';
    return text;
}

/* Bytes for JSON (services/ctl/README.md, "JSON"): well-formed UTF-8 is a
 * JSON string of the same characters; anything else is the object
 * {"base64": "..."}, so no reader mistakes bytes for text. The string is
 * escaped by hand because a cJSON string ends at the first NUL. */
cJSON *ctl_json_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (!ctl_utf8_valid(p, len)) {
        char *base64 = s_base64(p, len);
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "base64", base64);
        free(base64);
        return obj;
    }
    char *text = ctl_xmalloc(6 * len + 3);
    size_t n = 0;
    text[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            text[n++] = '\\';
            text[n++] = (char)p[i];
        } else if (p[i] < 0x20) {
            n += (size_t)sprintf(text + n, "\\u%04x", p[i]);
        } else {
            text[n++] = (char)p[i];
        }
    }
    text[n++] = '"';
    text[n] = '\0';
    cJSON *item = cJSON_CreateRaw(text);
    free(text);
    return item;
}

/* A server's figure as JSON: a number when the text is one (an integer or
 * a decimal, in JSON's grammar, kept digit for digit), else a string. */
cJSON *ctl_json_scalar(const char *text)
{
    const char *p = text;
    p += *p == '-';
    bool number = *p >= '0' && *p <= '9';
    if (number && *p == '0')
        p++;
    else
        while (*p >= '0' && *p <= '9')
            p++;
    if (number && *p == '.') {
        number = p[1] >= '0' && p[1] <= '9';
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    if (number && (*p == 'e' || *p == 'E')) {
        p += p[1] == '+' || p[1] == '-' ? 2 : 1;
        number = *p >= '0' && *p <= '9';
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return number && *p == '\0' ? cJSON_CreateRaw(text) : cJSON_CreateString(text);
}

/* A uint64 printed exactly: cJSON numbers are doubles and lose digits past 2^53. */
void ctl_json_add_u64(cJSON *obj, const char *name, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON_AddItemToObject(obj, name, cJSON_CreateRaw(text));
}

cJSON *ctl_doc(ctl_t *ctl)
{
    if (!ctl->doc)
        ctl->doc = cJSON_CreateObject();
    return ctl->doc;
}

/* The one error line, and with --json the error document. Returns exit_code. */
int ctl_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ctl_fail(ctl_t *ctl, int exit_code, int status, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *verb = ctl->verb ? ctl->verb->name : ctl->verb_word;
    /* A monitor reads check's exit code as Nagios's: 2 would be CRITICAL. */
    bool check = verb && !strcmp(verb, "check");
    if (check && exit_code != CTL_OK)
        exit_code = CTL_CHECK_UNKNOWN;
    /* -q: a missing key is an answer, not a problem; the exit code says it. */
    bool silent = ctl->quiet && exit_code == CTL_NOT_FOUND;
    if (!silent)
        fprintf(stderr, "stratactl: %s%s%s\n", verb ? verb : "", verb ? ": " : "", message);
    if (ctl->json) {
        /* Problems reported before the failure (restore's bad files) are
         * its detail: the error names only their count. */
        cJSON *problems =
            ctl->doc ? cJSON_DetachItemFromObjectCaseSensitive(ctl->doc, "problems") : NULL;
        cJSON_Delete(ctl->doc);
        ctl->doc = cJSON_CreateObject();
        cJSON_AddStringToObject(ctl->doc, "error", message);
        if (problems)
            cJSON_AddItemToObject(ctl->doc, "problems", problems);
        cJSON_AddNumberToObject(ctl->doc, "code", exit_code);
        if (status)
            cJSON_AddNumberToObject(ctl->doc, "status", status);
        if (verb)
            cJSON_AddStringToObject(ctl->doc, "verb", verb);
        if (check)
            cJSON_AddStringToObject(ctl->doc, "state", "UNKNOWN");
    }
    return exit_code;
}

/* A failed client call: no reply is "unreachable", a missing key "not found",
 * anything else the server (or a reply we cannot read) refusing. */
int ctl_fail_call(ctl_t *ctl, int rc, const strata_error_t *err)
{
    int exit_code = rc == STRATA_ETIMEDOUT   ? CTL_UNREACHABLE
                    : rc == STRATA_ENOTFOUND ? CTL_NOT_FOUND
                                             : CTL_FAILED;
    return ctl_fail(ctl, exit_code, rc, "%s", err->msg[0] ? err->msg : strata_strerror(rc));
}

strata_bytes_t ctl_arg_bytes(const char *arg)
{
    return (strata_bytes_t){.data = (const uint8_t *)arg, .len = strlen(arg)};
}

/* ---- typed records ------------------------------------------------------ */

/* Builds, validates and encodes a record from "field=value" pairs; *msgpack
 * is malloc'd. topic and key get what the server will derive from it. */
int ctl_record_build(const char *type_name, const char *const *pairs, size_t n_pairs,
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
int ctl_record_json(const void *value, size_t len, char **json, strata_error_t *err)
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

/* A typed record's JSON on one line (strata_record_to_json indents), or NULL
 * when value is not a record. Malloc'd. */
static char *s_record_line(const void *value, size_t len)
{
    char *json = NULL;
    strata_error_t err;
    if (len == 0 || ctl_record_json(value, len, &json, &err) != 0)
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

/* One record, one line: "seq<TAB>topic<TAB>key<TAB>value", or with --json
 * one JSON object. Flushed, so a pipe sees each record as it comes. */
void ctl_print_record(ctl_t *ctl, const strata_entry_t *e)
{
    ctl_print_entry(ctl, e, CTL_ENTRY_TOPIC | CTL_ENTRY_TIME);
}

/* One entry, one line: seq, then the fields asked for (term, topic), key
 * and value, tab-separated; or with --json one JSON object. */
void ctl_print_entry(ctl_t *ctl, const strata_entry_t *e, unsigned fields)
{
    bool deleted = e->type == STRATA_VALUE_DELETE;
    char *record = deleted ? NULL : s_record_line(e->value, e->value_len);
    if (ctl->json) {
        cJSON *obj = cJSON_CreateObject();
        ctl_json_add_u64(obj, "seq", e->seq);
        if (fields & CTL_ENTRY_TERM)
            ctl_json_add_u64(obj, "term", e->term);
        if (fields & CTL_ENTRY_TOPIC)
            cJSON_AddItemToObject(obj, "topic", ctl_json_bytes(e->topic, e->topic_len));
        cJSON_AddItemToObject(obj, "key", ctl_json_bytes(e->key, e->key_len));
        cJSON_AddStringToObject(obj, "op", deleted ? "delete" : "put");
        if (!deleted)
            cJSON_AddItemToObject(obj, "value", ctl_json_bytes(e->value, e->value_len));
        if (record)
            cJSON_AddItemToObject(obj, "record", cJSON_CreateRaw(record));
        if (fields & CTL_ENTRY_TIME)
            ctl_json_add_u64(obj, "timestamp_ns", e->timestamp_ns);
        char *text = cJSON_PrintUnformatted(obj);
        puts(text);
        free(text);
        cJSON_Delete(obj);
    } else {
        printf("%" PRIu64 "\t", e->seq);
        if (fields & CTL_ENTRY_TERM)
            printf("%" PRIu64 "\t", e->term);
        if (fields & CTL_ENTRY_TOPIC) {
            ctl_print_bytes(stdout, e->topic, e->topic_len);
            putchar('\t');
        }
        ctl_print_field(ctl, stdout, e->key, e->key_len);
        putchar('\t');
        if (deleted) {
            fputs("(deleted)", stdout);
        } else if (ctl->hex) {
            ctl_print_hex(stdout, e->value, e->value_len);
        } else if (record) {
            fputs(record, stdout);
        } else if (ctl_is_text(e->value, e->value_len)) {
            fwrite(e->value, 1, e->value_len, stdout);
        } else {
            fputs("0x", stdout);
            ctl_print_hex(stdout, e->value, e->value_len);
        }
        putchar('\n');
    }
    fflush(stdout);
    free(record);
}
