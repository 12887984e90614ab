/* stratactl's output: bytes escaped for a terminal or as JSON strings, the
 * --json document, and the one error path (message, exit code, JSON error)
 * every verb in data.c and node.c uses. */
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

/* Bytes for a terminal: printable ASCII as is, everything else as \xNN (and
 * the backslash doubled), so one entry stays on one line. */
void ctl_print_bytes(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\')
            fputs("\\\\", out);
        else if (p[i] >= 0x20 && p[i] < 0x7f)
            fputc(p[i], out);
        else
            fprintf(out, "\\x%02x", p[i]);
    }
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

/* Bytes as a JSON string: each byte becomes the code point of the same value
 * (the convention of strata_record_to_json), so any bytes, NULs included,
 * survive and ASCII stays readable. Written by hand because a cJSON string
 * ends at the first NUL. */
cJSON *ctl_json_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *text = ctl_xmalloc(6 * len + 3);
    size_t n = 0;
    text[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            text[n++] = '\\';
            text[n++] = (char)p[i];
        } else if (p[i] < 0x20 || p[i] >= 0x7f) {
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
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *verb = ctl->verb ? ctl->verb->name : ctl->verb_word;
    /* -q: a missing key is an answer, not a problem; the exit code says it. */
    bool silent = ctl->quiet && exit_code == CTL_NOT_FOUND;
    if (!silent)
        fprintf(stderr, "stratactl: %s%s%s\n", verb ? verb : "", verb ? ": " : "", message);
    if (ctl->json) {
        cJSON_Delete(ctl->doc);
        ctl->doc = cJSON_CreateObject();
        cJSON_AddStringToObject(ctl->doc, "error", message);
        cJSON_AddNumberToObject(ctl->doc, "code", exit_code);
        if (status)
            cJSON_AddNumberToObject(ctl->doc, "status", status);
        if (verb)
            cJSON_AddStringToObject(ctl->doc, "verb", verb);
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
