/* See history.h and history.md. The reader is a small strict parser for the
 * one flat object a line holds rather than cJSON: cJSON keeps numbers as
 * doubles, exact only to 2^53, and t (ns since boot) passes that after 104
 * days of uptime, while seq and term are 64-bit in the log. */
#define _GNU_SOURCE
#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ts_history {
    FILE *file;
    pthread_mutex_t lock;
};

static const char *const type_names[] = {"invoke", "ok", "fail", "info"};
static const char *const f_names[] = {"append", "read", "write"};

const char *ts_op_type_name(ts_op_type_t type)
{
    return (unsigned)type < 4 ? type_names[type] : "?";
}

const char *ts_op_f_name(ts_op_f_t f)
{
    return (unsigned)f < 3 ? f_names[f] : "?";
}

ts_history_t *ts_history_open(const char *path)
{
    ts_history_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->file = fopen(path, "w");
    if (!self->file) {
        int saved = errno;
        free(self);
        errno = saved;
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

int ts_history_log(ts_history_t *self, const ts_op_t *op)
{
    pthread_mutex_lock(&self->lock);
    FILE *f = self->file;
    uint64_t t = op->t;
    if (!t) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        t = (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec;
    }
    fprintf(f, "{\"p\":%d,\"type\":\"%s\",\"f\":\"%s\",\"k\":", op->process,
            ts_op_type_name(op->type), ts_op_f_name(op->f));
    write_string(f, op->key ? op->key : "");
    switch (op->vkind) {
    case TS_V_NONE:
        break;
    case TS_V_INT:
        fprintf(f, ",\"v\":%" PRId64, op->value);
        break;
    case TS_V_NULL:
        fputs(",\"v\":null", f);
        break;
    case TS_V_LIST:
        fputs(",\"v\":[", f);
        for (size_t i = 0; i < op->list_len; i++)
            fprintf(f, "%s%" PRId64, i ? "," : "", op->list[i]);
        fputc(']', f);
        break;
    }
    fprintf(f, ",\"t\":%" PRIu64 ",\"node\":%d,\"term\":%" PRIu64 ",\"seq\":%" PRIu64 "}\n", t,
            op->node, op->term, op->seq);
    int rc = fflush(f) == 0 && !ferror(f) ? 0 : -1;
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int ts_history_close(ts_history_t **self_p)
{
    ts_history_t *self = *self_p;
    if (!self)
        return 0;
    int rc = fclose(self->file) == 0 ? 0 : -1;
    int saved = errno;
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
    errno = saved;
    return rc;
}

/* ---- Reader ---- */

enum { F_P, F_TYPE, F_F, F_K, F_V, F_T, F_NODE, F_TERM, F_SEQ, N_FIELDS };
static const char *const field_names[N_FIELDS] = {"p", "type", "f",    "k",  "v",
                                                  "t", "node", "term", "seq"};

/* A value of v as parsed, before the op's type and f say what it must be. */
typedef enum { V_ABSENT, V_NULL, V_INT, V_LIST } raw_v_t;

typedef struct {
    const char *s;
    size_t len, pos;
    const char *field; /* the field being parsed, for messages; NULL between fields */
    char *msg;
    size_t cap;
} parser_t;

static int fail(parser_t *p, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->field)
        snprintf(p->msg, p->cap, "field \"%s\": %s", p->field, what);
    else
        snprintf(p->msg, p->cap, "column %zu: %s", p->pos + 1, what);
    return -1;
}

static void skip_ws(parser_t *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int peek(parser_t *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int expect(parser_t *p, char c)
{
    skip_ws(p);
    if (peek(p) != c)
        return fail(p, "expected '%c'", c);
    p->pos++;
    return 0;
}

static int hex4(parser_t *p, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++, p->pos++) {
        int c = peek(p);
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return fail(p, "bad \\u escape");
        *out = *out << 4 | d;
    }
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON string into a malloc'd NUL-terminated *out; a decoded string is
 * never longer than its encoding, so the rest of the line bounds it. */
static int parse_string(parser_t *p, char **out)
{
    skip_ws(p);
    if (peek(p) != '"')
        return fail(p, "expected a string");
    p->pos++;
    char *buf = malloc(p->len - p->pos + 1);
    if (!buf)
        return fail(p, "out of memory");
    size_t n = 0;
    for (;;) {
        int c = peek(p);
        if (c < 0) {
            free(buf);
            return fail(p, "unterminated string");
        }
        p->pos++;
        if (c == '"')
            break;
        if (c < 0x20) {
            free(buf);
            return fail(p, "control character in a string");
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            continue;
        }
        static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        c = peek(p);
        const char *simple = c > 0 ? strchr(escapes, c) : NULL;
        if (simple) {
            p->pos++;
            buf[n++] = decoded[simple - escapes];
            continue;
        }
        unsigned cp, low;
        if (c != 'u') {
            free(buf);
            return fail(p, "bad escape in a string");
        }
        p->pos++;
        if (hex4(p, &cp) < 0) {
            free(buf);
            return -1;
        }
        if (cp >= 0xD800 && cp < 0xDC00) {
            if (peek(p) != '\\' || p->pos + 1 >= p->len || p->s[p->pos + 1] != 'u') {
                free(buf);
                return fail(p, "unpaired surrogate in a string");
            }
            p->pos += 2;
            if (hex4(p, &low) < 0 || low < 0xDC00 || low > 0xDFFF) {
                free(buf);
                return fail(p, "unpaired surrogate in a string");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if ((cp >= 0xDC00 && cp < 0xE000) || cp == 0) {
            free(buf);
            return fail(p, cp ? "unpaired surrogate in a string" : "NUL in a string");
        }
        n += put_utf8(buf + n, cp);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* A JSON number that must be an integer in [min, max] (max as unsigned so
 * one routine serves int, int64 and uint64 fields). */
static int parse_integer(parser_t *p, int64_t min, uint64_t max, bool *negative, uint64_t *abs)
{
    skip_ws(p);
    *negative = peek(p) == '-';
    if (*negative)
        p->pos++;
    int c = peek(p);
    if (c < '0' || c > '9')
        return fail(p, "expected an integer");
    uint64_t v = 0;
    bool overflow = false;
    size_t first = p->pos;
    while ((c = peek(p)) >= '0' && c <= '9') {
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
        p->pos++;
    }
    if (p->s[first] == '0' && p->pos - first > 1)
        return fail(p, "leading zero in a number");
    if (c == '.' || c == 'e' || c == 'E')
        return fail(p, "not an integer");
    uint64_t limit = !*negative ? max : min < 0 ? (uint64_t)(-(min + 1)) + 1 : 0;
    if (overflow || v > limit)
        return fail(p, "out of range");
    *abs = v;
    return 0;
}

static int parse_int64(parser_t *p, int64_t min, uint64_t max, int64_t *out)
{
    bool negative;
    uint64_t abs;
    if (parse_integer(p, min, max, &negative, &abs) < 0)
        return -1;
    *out = negative ? (int64_t)(0 - abs) : (int64_t)abs;
    return 0;
}

static int parse_uint64(parser_t *p, uint64_t *out)
{
    bool negative;
    return parse_integer(p, 0, UINT64_MAX, &negative, out);
}

static bool parse_literal(parser_t *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
        return false;
    p->pos += n;
    return true;
}

static int parse_v(parser_t *p, ts_op_t *op, raw_v_t *raw)
{
    skip_ws(p);
    int c = peek(p);
    if (parse_literal(p, "null")) {
        *raw = V_NULL;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *raw = V_INT;
        return parse_int64(p, INT64_MIN, INT64_MAX, &op->value);
    }
    if (c != '[')
        return fail(p, "expected an integer, null or a list of integers");
    p->pos++;
    *raw = V_LIST;
    size_t cap = 0;
    int64_t *list = NULL;
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        op->list = list;
        return 0;
    }
    for (;;) {
        int64_t v;
        if (parse_int64(p, INT64_MIN, INT64_MAX, &v) < 0)
            goto bad;
        if (op->list_len == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *grown = realloc(list, cap * sizeof *list);
            if (!grown) {
                fail(p, "out of memory");
                goto bad;
            }
            list = grown;
        }
        list[op->list_len++] = v;
        skip_ws(p);
        if (peek(p) == ']') {
            p->pos++;
            op->list = list;
            return 0;
        }
        if (peek(p) != ',') {
            fail(p, "expected ',' or ']' in the list");
            goto bad;
        }
        p->pos++;
    }
bad:
    free(list);
    op->list_len = 0;
    return -1;
}

static int parse_name(parser_t *p, const char *const *names, int n, int *out)
{
    char *s;
    if (parse_string(p, &s) < 0)
        return -1;
    for (*out = 0; *out < n && strcmp(s, names[*out]); (*out)++)
        ;
    int rc = *out < n ? 0 : fail(p, "unknown value \"%s\"", s);
    free(s);
    return rc;
}

/* The op's v, checked against its f and type (history.md, "v"). */
static int settle_v(parser_t *p, ts_op_t *op, raw_v_t raw)
{
    p->field = "v";
    if (op->f != TS_READ) {
        if (raw != V_INT)
            return fail(p, "%s's %s needs an integer", op->f == TS_APPEND ? "an append" : "a write",
                        ts_op_type_name(op->type));
        op->vkind = TS_V_INT;
        return 0;
    }
    if (op->type != TS_OK) {
        if (raw != V_ABSENT && raw != V_NULL)
            return fail(p, "a read's %s carries no value", ts_op_type_name(op->type));
        op->vkind = TS_V_NONE;
        return 0;
    }
    static const ts_value_kind_t kinds[] = {
        [V_NULL] = TS_V_NULL, [V_INT] = TS_V_INT, [V_LIST] = TS_V_LIST};
    if (raw == V_ABSENT)
        return fail(p, "a read's ok needs what was read");
    op->vkind = kinds[raw];
    return 0;
}

static int parse_line(parser_t *p, ts_op_t *op)
{
    bool seen[N_FIELDS] = {false};
    raw_v_t raw = V_ABSENT;
    int64_t num = 0;
    if (expect(p, '{') < 0)
        return -1;
    skip_ws(p);
    bool empty = peek(p) == '}';
    if (empty)
        p->pos++;
    while (!empty) {
        char *name;
        if (parse_string(p, &name) < 0)
            return -1;
        int field;
        for (field = 0; field < N_FIELDS && strcmp(name, field_names[field]); field++)
            ;
        if (field == N_FIELDS) {
            fail(p, "unknown field \"%s\"", name);
            free(name);
            return -1;
        }
        free(name);
        p->field = field_names[field];
        if (seen[field])
            return fail(p, "given twice");
        seen[field] = true;
        if (expect(p, ':') < 0)
            return -1;
        int rc = 0, name_idx = 0;
        switch (field) {
        case F_P:
        case F_NODE:
            rc = parse_int64(p, 0, INT_MAX, &num);
            *(field == F_P ? &op->process : &op->node) = (int)num;
            break;
        case F_TYPE:
            rc = parse_name(p, type_names, 4, &name_idx);
            op->type = (ts_op_type_t)name_idx;
            break;
        case F_F:
            rc = parse_name(p, f_names, 3, &name_idx);
            op->f = (ts_op_f_t)name_idx;
            break;
        case F_K: {
            char *key;
            rc = parse_string(p, &key);
            if (rc == 0 && !key[0]) {
                free(key);
                rc = fail(p, "empty key");
            } else if (rc == 0) {
                op->key = key;
            }
            break;
        }
        case F_V:
            rc = parse_v(p, op, &raw);
            break;
        case F_T:
            rc = parse_uint64(p, &op->t);
            break;
        case F_TERM:
            rc = parse_uint64(p, &op->term);
            break;
        case F_SEQ:
            rc = parse_uint64(p, &op->seq);
            break;
        }
        if (rc < 0)
            return -1;
        p->field = NULL;
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == '}')
            break;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or '}'");
        }
    }
    skip_ws(p);
    if (p->pos < p->len)
        return fail(p, "trailing characters after the object");
    static const int required[] = {F_P, F_TYPE, F_F, F_K, F_T};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!seen[required[i]]) {
            p->field = field_names[required[i]];
            return fail(p, "missing");
        }
    return settle_v(p, op, raw);
}

static void op_free(ts_op_t *op)
{
    free((char *)op->key);
    free((int64_t *)op->list);
}

int ts_history_load(const char *path, ts_op_t **ops, size_t *n, char *errbuf, size_t errcap)
{
    *ops = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    ts_op_t *all = NULL;
    size_t count = 0, cap = 0, line_cap = 0, line_no = 0;
    char *line = NULL, msg[TS_HISTORY_ERRMAX];
    ssize_t got;
    int rc = 0;
    errno = 0;
    while ((got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        if (count == cap) {
            cap = cap ? 2 * cap : 1024;
            ts_op_t *grown = realloc(all, cap * sizeof *all);
            if (!grown) {
                snprintf(errbuf, errcap, "%s:%zu: out of memory", path, line_no);
                rc = -1;
                break;
            }
            all = grown;
        }
        ts_op_t *op = &all[count];
        *op = (ts_op_t){0};
        parser_t p = {.s = line, .len = len, .msg = msg, .cap = sizeof msg};
        if (parse_line(&p, op) < 0) {
            op_free(op);
            snprintf(errbuf, errcap, "%s:%zu: %s", path, line_no, msg);
            rc = -1;
            break;
        }
        count++;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(errbuf, errcap, "%s:%zu: %s", path, line_no + 1, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc < 0) {
        ts_history_free(all, count);
        return -1;
    }
    *ops = all;
    *n = count;
    return 0;
}

void ts_history_free(ts_op_t *ops, size_t n)
{
    for (size_t i = 0; ops && i < n; i++)
        op_free(&ops[i]);
    free(ops);
}
