/* The documents checked against the code, read from their own text
 * so they cannot drift: PROTOCOL.md's numbered error codes against
 * lib/include/strata/err.h, its control-verb table against what the writer,
 * compactor and snapshotter (in-process) answer, and every example error
 * message of PROTOCOL.md, DISTRIBUTION.md and RECORDS.md against the format
 * strings in lib/ and services/; and that every command block of every
 * Markdown file carries a tag of README.md's table, which names the test that
 * runs it. */
#define _GNU_SOURCE
#include <check.h>
#include <ftw.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compactor.h"
#include "snapshotter.h"
#include "strata/client.h"
#include "support.h"
#include "writer.h"

#ifndef STRATA_SOURCE_DIR
#error "STRATA_SOURCE_DIR must name the source tree"
#endif

static char *slurp(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", STRATA_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* A document as one line: a newline and the indentation after it are one
 * space, so a message wrapped across lines reads whole. */
static char *doc_text(const char *rel)
{
    char *text = slurp(rel), *out = text;
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            *out++ = ' ';
            while (*p == '\n' || *p == ' ')
                p++;
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
    return text;
}

/* ---- error codes ---------------------------------------------------------- */

/* PROTOCOL.md numbers every code ("-4 ECORRUPT") and err.h defines each
 * (STRATA_ECORRUPT = -4): the two lists are the same. */
START_TEST(every_error_code_is_numbered_in_protocol_md)
{
    char *doc = doc_text("proto/PROTOCOL.md"), *header = slurp("lib/include/strata/err.h");
    regex_t in_doc, in_header;
    ck_assert_int_eq(regcomp(&in_doc, "-([0-9]+) (E[A-Z]+)[,;]", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&in_header, "STRATA_(E[A-Z]+) = -([0-9]+)", REG_EXTENDED), 0);
    char documented[64][32] = {{0}}, defined[64][32] = {{0}};
    regmatch_t m[3];
    size_t n_doc = 0, n_header = 0;
    for (const char *p = doc; n_doc < 64 && regexec(&in_doc, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        int code = atoi(p + m[1].rm_so);
        ck_assert_msg(code > 0 && code < 64, "code -%d", code);
        snprintf(documented[code], sizeof documented[code], "%.*s", (int)(m[2].rm_eo - m[2].rm_so),
                 p + m[2].rm_so);
        n_doc++;
    }
    for (const char *p = header; regexec(&in_header, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        int code = atoi(p + m[2].rm_so);
        ck_assert_msg(code > 0 && code < 64, "code -%d", code);
        snprintf(defined[code], sizeof defined[code], "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                 p + m[1].rm_so);
        n_header++;
    }
    ck_assert_uint_ge(n_header, 18);
    for (int code = 1; code < 64; code++) {
        ck_assert_msg(!strcmp(documented[code], defined[code]),
                      "-%d is '%s' in PROTOCOL.md and '%s' in err.h", code, documented[code],
                      defined[code]);
        if (defined[code][0])
            ck_assert_str_ne(strata_strerror(-code), "");
    }
    regfree(&in_doc);
    regfree(&in_header);
    free(doc);
    free(header);
}
END_TEST

/* ---- control verbs ----------------------------------------------------------- */

typedef struct {
    char service[32], verb[64];
    size_t min_args, max_args;
    bool control_only;
} doc_verb_t;

/* The args column: "0", "DEST", "LEVEL RANGE", "[GENERATION WAIT_MS]", "0 (the
 * job is in `install`)": words in capitals are arguments, bracketed ones
 * optional. */
static void parse_args(const char *col, size_t *min_args, size_t *max_args)
{
    *min_args = *max_args = 0;
    bool optional = false;
    for (const char *p = col; *p;) {
        if (*p == '(')
            break;
        if (*p == '[')
            optional = true;
        if (*p >= 'A' && *p <= 'Z') {
            (*max_args)++;
            if (!optional)
                (*min_args)++;
            while (*p && *p != ' ' && *p != ']')
                p++;
            continue;
        }
        if (*p == ']')
            optional = false;
        p++;
    }
}

/* The rows of PROTOCOL.md's control table: | service | `verb` | args | only | what | */
static size_t doc_verbs(doc_verb_t *out, size_t cap)
{
    char *text = slurp("proto/PROTOCOL.md");
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        char service[32], verb[64], args[128], only[64];
        if (sscanf(line, "| %31[a-z] | `%63[a-z_]` | %127[^|]| %63[^|]|", service, verb, args,
                   only) != 4)
            continue;
        doc_verb_t *v = &out[n++];
        snprintf(v->service, sizeof v->service, "%s", service);
        snprintf(v->verb, sizeof v->verb, "%s", verb);
        parse_args(args, &v->min_args, &v->max_args);
        v->control_only = !strncmp(only, "yes", 3);
    }
    free(text);
    return n;
}

/* The error message of control verb with n_args arguments. */
static void control_error(strata_client_t *c, const char *verb, size_t n_args, char *msg,
                          size_t cap)
{
    const char *args[STRATA_PROTO_MAX_ARGS];
    for (size_t i = 0; i < n_args; i++)
        args[i] = "x";
    strata_reply_t rep;
    strata_error_t err;
    ck_assert_int_eq(strata_client_control(c, verb, args, n_args, &rep, &err), STRATA_EINVAL);
    snprintf(msg, cap, "%s", err.msg);
    strata_reply_clear(&rep);
}

/* A service's rows against the service: its unknown-verb error lists the
 * documented verbs in the documented order, each verb's arity error says the
 * documented arity, and on the client endpoint (when it has one) exactly the
 * control-endpoint-only verbs are refused as such. */
static void check_service(const doc_verb_t *rows, size_t n_rows, const char *service,
                          const char *control_ep, const char *client_ep)
{
    strata_client_t *ctl = ts_connect(control_ep, 5000);
    char msg[STRATA_PROTO_MAX_TEXT], want[STRATA_PROTO_MAX_TEXT];
    size_t used = (size_t)snprintf(want, sizeof want, "control.verb: 'no_such_verb' unknown (");
    size_t listed = 0;
    for (size_t i = 0; i < n_rows; i++)
        if (!strcmp(rows[i].service, service))
            used += (size_t)snprintf(want + used, sizeof want - used, "%s%s", listed++ ? ", " : "",
                                     rows[i].verb);
    snprintf(want + used, sizeof want - used, ")");
    ck_assert_uint_gt(listed, 0);
    control_error(ctl, "no_such_verb", 0, msg, sizeof msg);
    ck_assert_str_eq(msg, want);
    for (size_t i = 0; i < n_rows; i++) {
        const doc_verb_t *v = &rows[i];
        if (strcmp(v->service, service))
            continue;
        snprintf(want, sizeof want, "control %s: takes %zu..%zu args, got %zu", v->verb,
                 v->min_args, v->max_args, v->max_args + 1);
        control_error(ctl, v->verb, v->max_args + 1, msg, sizeof msg);
        ck_assert_str_eq(msg, want);
        if (!client_ep)
            continue;
        strata_client_t *c = ts_connect(client_ep, 5000);
        control_error(c, v->verb, v->max_args + 1, msg, sizeof msg);
        if (v->control_only)
            snprintf(want, sizeof want,
                     "control.verb: '%s' is only accepted on the control endpoint", v->verb);
        ck_assert_str_eq(msg, want);
        strata_client_destroy(&c);
    }
    strata_client_destroy(&ctl);
}

static svc_config_t *config_for(const char *dir)
{
    char text[2000];
    snprintf(text, sizeof text,
             "node\n    name = inproc\n    data_dir = %s\n"
             "writer\n    endpoint = tcp://127.0.0.1:*\n    control = \"\"\n"
             "    memtable_mb = 4\n    max_immutable_memtables = 4\n    sync_interval_ms = 10\n"
             "    wal_segment_mb = 4\n    lz4 = false\n    scan_limit = 1000\n    ring = off\n"
             "    ring_mb = 1\n    wal_retain_mb = 0\n    wal_retain_hours = 0\n"
             "    wal_truncation = flush\n    compaction = compactor\n    metrics = off\n"
             "compactor\n    endpoint = tcp://127.0.0.1:*\n    l0_trigger = 4\n"
             "    level1_mb = 64\n    target_file_mb = 8\n    rate_mb_s = 0\n"
             "    cpu_percent = 100\n    metrics = off\n"
             "snapshotter\n    endpoint = tcp://127.0.0.1:*\n    dir = \"\"\n"
             "    interval_s = 0\n    keep = 2\n    truncate_wal = true\n    metrics = off\n"
             "log\n    level = warning\n",
             dir);
    svc_config_t *cfg = NULL;
    strata_error_t err;
    ck_assert_msg(svc_config_load(text, NULL, &cfg, &err) == 0, "config: %s", err.msg);
    return cfg;
}

static void *run_writer(void *arg)
{
    writer_run(arg);
    return NULL;
}

static void *run_compactor(void *arg)
{
    compactor_run(arg);
    return NULL;
}

static void *run_snapshotter(void *arg)
{
    snapshotter_run(arg);
    return NULL;
}

START_TEST(the_control_table_is_what_each_service_answers)
{
    doc_verb_t rows[64];
    size_t n = doc_verbs(rows, 64);
    ck_assert_uint_ge(n, 10);
    char *dir = ts_tempdir("docs");
    writer_t *w = NULL;
    strata_error_t err;
    ck_assert_msg(writer_new(config_for(dir), &w, &err) == 0, "writer_new: %s", err.msg);
    pthread_t writer_loop, comp_loop, snap_loop;
    ck_assert_int_eq(pthread_create(&writer_loop, NULL, run_writer, w), 0);
    compactor_t *comp = NULL;
    ck_assert_msg(compactor_new(config_for(dir), &comp, &err) == 0, "compactor_new: %s", err.msg);
    ck_assert_int_eq(pthread_create(&comp_loop, NULL, run_compactor, comp), 0);
    snapshotter_t *snap = NULL;
    ck_assert_msg(snapshotter_new(config_for(dir), &snap, &err) == 0, "snapshotter_new: %s",
                  err.msg);
    ck_assert_int_eq(pthread_create(&snap_loop, NULL, run_snapshotter, snap), 0);

    check_service(rows, n, "writer", writer_control_endpoint(w), writer_endpoint(w));
    check_service(rows, n, "compactor", compactor_endpoint(comp), NULL);
    check_service(rows, n, "snapshotter", snapshotter_endpoint(snap), NULL);

    snapshotter_stop(snap);
    pthread_join(snap_loop, NULL);
    snapshotter_destroy(&snap);
    compactor_stop(comp);
    pthread_join(comp_loop, NULL);
    compactor_destroy(&comp);
    strata_client_t *ctl = ts_connect(writer_control_endpoint(w), 5000);
    strata_reply_t rep;
    ck_assert_int_eq(strata_client_control(ctl, "terminate", NULL, 0, &rep, &err), 0);
    strata_reply_clear(&rep);
    strata_client_destroy(&ctl);
    pthread_join(writer_loop, NULL);
    writer_destroy(&w);
    ts_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- example messages ---------------------------------------------------------- */

/* Every string literal of the C files under lib/ and services/, adjacent
 * literals and PRIu64-style macros joined, escapes undone, one per line. */
static char *s_literals;
static size_t s_literals_len, s_literals_cap;

static void literals_add(const char *text, size_t len)
{
    if (s_literals_len + len + 2 > s_literals_cap) {
        s_literals_cap = (s_literals_len + len + 2) * 2;
        s_literals = realloc(s_literals, s_literals_cap);
    }
    memcpy(s_literals + s_literals_len, text, len);
    s_literals_len += len;
    s_literals[s_literals_len++] = '\n';
    s_literals[s_literals_len] = '\0';
}

static void literals_of(const char *src)
{
    char lit[8192];
    size_t n = 0;
    bool open = false;
    for (const char *p = src; *p; p++) {
        if (!open) {
            if (*p == '\'' && p[1] && p[2] == '\'') {
                p += 2; /* a char literal such as '"' */
                continue;
            }
            if (*p == '\'' && p[1] == '\\' && p[2] && p[3] == '\'') {
                p += 3;
                continue;
            }
            if (*p != '"')
                continue;
            open = true;
            n = 0;
            continue;
        }
        if (*p == '\\' && p[1]) {
            char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1];
            if (n < sizeof lit)
                lit[n++] = c;
            p++;
            continue;
        }
        if (*p != '"') {
            if (n < sizeof lit)
                lit[n++] = *p == '\n' ? ' ' : *p;
            continue;
        }
        /* The literal ends; one following (after space or a PRI macro) joins it. */
        const char *q = p + 1;
        for (;;) {
            while (*q == ' ' || *q == '\n' || *q == '\t')
                q++;
            if (!strncmp(q, "PRI", 3) && q[3] && !strncmp(q + 4, "64", 2)) {
                if (n + 2 < sizeof lit) {
                    lit[n++] = 'l';
                    lit[n++] = q[3];
                }
                q += 6;
                continue;
            }
            break;
        }
        if (*q == '"') {
            p = q;
            continue;
        }
        open = false;
        literals_add(lit, n);
        p = q - 1;
    }
}

static int literals_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F || len < 2 || strcmp(path + len - 2, ".c"))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    text[got] = '\0';
    fclose(f);
    literals_of(text);
    free(text);
    return 0;
}

/* Appends text to rx with ERE's special characters escaped. */
static size_t rx_literal(char *rx, size_t used, size_t cap, const char *text, size_t len)
{
    for (size_t i = 0; i < len && used + 3 < cap; i++) {
        if (strchr("\\^$.|?*+()[]{}", text[i]))
            rx[used++] = '\\';
        rx[used++] = text[i];
    }
    rx[used] = '\0';
    return used;
}

/* The example as a pattern: a placeholder (a word in capitals such as N,
 * NAME, OP, a number, or "...") matches what a format directive prints. */
static void example_pattern(const char *example, char *rx, size_t cap)
{
    size_t used = 0;
    for (const char *p = example; *p && used + 8 < cap;) {
        bool word_start = p == example || !((p[-1] >= 'a' && p[-1] <= 'z') ||
                                            (p[-1] >= 'A' && p[-1] <= 'Z') || p[-1] == '_');
        size_t caps = 0;
        while (word_start && ((p[caps] >= 'A' && p[caps] <= 'Z') || p[caps] == '_' ||
                              (caps && p[caps] >= '0' && p[caps] <= '9')))
            caps++;
        bool ends = caps && !((p[caps] >= 'a' && p[caps] <= 'z'));
        size_t digits = 0;
        while (word_start && p[digits] >= '0' && p[digits] <= '9')
            digits++;
        size_t skip = ends ? caps : digits ? digits : !strncmp(p, "...", 3) ? 3 : 0;
        if (skip && !(caps == 3 && !strncmp(p, "UTF", 3))) {
            used += (size_t)snprintf(rx + used, cap - used, "(.*|%%[-+ #0-9.*lzhjt]*[a-zA-Z])");
            p += skip;
            continue;
        }
        used = rx_literal(rx, used, cap, p, 1);
        p++;
    }
}

/* Each literal with at least 12 characters besides its directives, as a
 * pattern in which a directive matches anything: it must match the end of
 * an example (a caller may prefix it, as "topic 'T': "). */
static regex_t *s_formats;
static size_t s_n_formats;

static void formats_build(void)
{
    size_t cap = 1024;
    s_formats = malloc(cap * sizeof *s_formats);
    for (char *line = s_literals; *line;) {
        char *end = strchr(line, '\n');
        char rx[4096];
        size_t used = 0, plain = 0;
        for (char *p = line; p < end && used + 8 < sizeof rx;) {
            if (*p == '%' && p + 1 < end && p[1] == '%') {
                used = rx_literal(rx, used, sizeof rx, "%", 1);
                p += 2;
            } else if (*p == '%') {
                p++;
                while (p < end && strchr("-+ #0123456789.*lzhjt", *p))
                    p++;
                p++; /* the conversion */
                used += (size_t)snprintf(rx + used, sizeof rx - used, ".*");
            } else {
                used = rx_literal(rx, used, sizeof rx, p++, 1);
                plain++;
            }
        }
        if (plain >= 12 && used + 2 < sizeof rx) {
            rx[used++] = '$';
            rx[used] = '\0';
            if (s_n_formats == cap)
                s_formats = realloc(s_formats, (cap *= 2) * sizeof *s_formats);
            if (regcomp(&s_formats[s_n_formats], rx, REG_EXTENDED | REG_NOSUB) == 0)
                s_n_formats++;
        }
        line = end + 1;
    }
}

/* An example message is one the code prints when a literal, its directives
 * standing for anything, prints it, or when it is one part of a literal. */
static bool example_found(const char *example)
{
    for (size_t i = 0; i < s_n_formats; i++)
        if (regexec(&s_formats[i], example, 0, NULL, 0) == 0)
            return true;
    char rx[4096];
    example_pattern(example, rx, sizeof rx);
    regex_t re;
    ck_assert_msg(regcomp(&re, rx, REG_EXTENDED | REG_NOSUB | REG_NEWLINE) == 0, "regex %s", rx);
    bool found = regexec(&re, s_literals, 0, NULL, 0) == 0;
    regfree(&re);
    return found;
}

/* Messages a service builds from pieces, each checked by another test. */
static const char *const built_elsewhere[] = {
    "control.verb: 'V' unknown (NAME, NAME, ...)", /* the_control_table_is_what_... */
};

static size_t check_examples(const char *rel, char *failures, size_t cap, size_t *used)
{
    char *doc = doc_text(rel);
    regex_t status_form, field_form;
    /* STATUS EINVAL, `message` | `EINVAL`, "message" | `field.path: message` */
    ck_assert_int_eq(regcomp(&status_form, "E[A-Z]+`?, [`\"]([^`\"]+)[`\"]", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&field_form,
                             "`([a-z_][a-z_.0-9A-Z]*(\\[[A-Z0-9]+\\])?[a-z_.]*: [^`]+)`",
                             REG_EXTENDED),
                     0);
    size_t checked = 0;
    regex_t *forms[] = {&status_form, &field_form};
    for (int f = 0; f < 2; f++) {
        regmatch_t m[2];
        for (const char *p = doc; regexec(forms[f], p, 2, m, 0) == 0; p += m[0].rm_eo) {
            char example[1024];
            snprintf(example, sizeof example, "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                     p + m[1].rm_so);
            bool known = false;
            for (size_t i = 0; i < sizeof built_elsewhere / sizeof built_elsewhere[0]; i++)
                known |= !strcmp(example, built_elsewhere[i]);
            checked++;
            if (!known && !example_found(example))
                *used +=
                    (size_t)snprintf(failures + *used, cap - *used, "\n  %s: %s", rel, example);
        }
    }
    regfree(&status_form);
    regfree(&field_form);
    free(doc);
    return checked;
}

START_TEST(every_example_message_is_one_the_code_prints)
{
    char root[1024];
    static const char *const trees[] = {"lib", "services"};
    for (int i = 0; i < 2; i++) {
        snprintf(root, sizeof root, "%s/%s", STRATA_SOURCE_DIR, trees[i]);
        ck_assert_int_eq(nftw(root, literals_visit, 16, FTW_PHYS), 0);
    }
    ck_assert_uint_gt(s_literals_len, 10000);
    formats_build();
    /* The matcher itself: a message the code prints, one it does not. */
    ck_assert(example_found("subscribe.window: W, cap 65536 (distributor/max_window)"));
    ck_assert(!example_found("subscribe.window: W, cap 65536 (distributor/no_such_key)"));
    char failures[8192] = "";
    size_t used = 0, checked = 0;
    static const char *const docs[] = {"proto/PROTOCOL.md", "proto/DISTRIBUTION.md",
                                       "proto/RECORDS.md"};
    for (int i = 0; i < 3; i++)
        checked += check_examples(docs[i], failures, sizeof failures, &used);
    ck_assert_uint_ge(checked, 50);
    ck_assert_msg(used == 0, "examples no format string prints:%s", failures);
    for (size_t i = 0; i < s_n_formats; i++)
        regfree(&s_formats[i]);
    free(s_formats);
    free(s_literals);
}
END_TEST

/* ---- every command block is run by a test ----------------------------------- */

#define MAX_TAGS 16
static char s_tags[MAX_TAGS][32];
static size_t s_n_tags;
static bool s_tag_used[MAX_TAGS];
static char s_fence_failures[8192];
static size_t s_fence_used, s_sh_blocks;

/* The tags README.md's "Examples in the documents" table lists: rows
 * "| `tag` | ..." until the table ends. */
static void tags_from_readme(void)
{
    char *readme = slurp("README.md");
    char *at = strstr(readme, "\n## Examples in the documents\n");
    ck_assert_msg(at != NULL, "README.md has no section Examples in the documents");
    at = strstr(at, "\n| tag |");
    ck_assert_msg(at != NULL, "README.md's Examples in the documents has no tag table");
    for (char *line = strchr(at + 1, '\n'); line && line[1] == '|'; line = strchr(line + 1, '\n')) {
        char tag[32];
        if (sscanf(line + 1, "| `%31[^`]`", tag) == 1) {
            ck_assert_uint_lt(s_n_tags, MAX_TAGS);
            snprintf(s_tags[s_n_tags++], sizeof s_tags[0], "%s", tag);
        }
    }
    free(readme);
}

static void fence_failure(const char *path, int line, const char *what)
{
    s_fence_used +=
        (size_t)snprintf(s_fence_failures + s_fence_used, sizeof s_fence_failures - s_fence_used,
                         "%s:%d: %s\n", path + strlen(STRATA_SOURCE_DIR) + 1, line, what);
    ck_assert_uint_lt(s_fence_used, sizeof s_fence_failures - 256);
}

/* Each fenced block of a Markdown file: one whose info string starts with
 * "sh" must be "sh TAG" with a tag of the table, and a config example is
 * "cfg strata-PROCESS" of a service; other shells' names are not used, so no
 * block of commands escapes the rule. */
static int fences_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    const char *base = path + ftw->base;
    if (type == FTW_D && (!strncmp(base, "build", 5) || !strcmp(base, ".git") ||
                          !strcmp(base, "bench-data") || !strcmp(base, "corpus")))
        return FTW_SKIP_SUBTREE;
    size_t len = strlen(path);
    if (type != FTW_F || len < 3 || strcmp(path + len - 3, ".md"))
        return 0;
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    char line[4096];
    int number = 0;
    bool open = false;
    while (fgets(line, sizeof line, f)) {
        number++;
        line[strcspn(line, "\n")] = '\0';
        const char *text = line + strspn(line, " ");
        if (strncmp(text, "```", 3))
            continue;
        if (open) {
            open = false;
            continue;
        }
        open = true;
        const char *info = text + 3;
        if (!strncmp(info, "bash", 4) || !strncmp(info, "console", 7) ||
            !strncmp(info, "shell", 5)) {
            fence_failure(path, number, "a block of commands is tagged sh TAG");
            continue;
        }
        if (!strncmp(info, "cfg", 3)) {
            char main_c[1024];
            snprintf(main_c, sizeof main_c, "%s/services/%s/main.c", STRATA_SOURCE_DIR,
                     strncmp(info, "cfg strata-", 11) ? "" : info + 11);
            size_t i = 0;
            while (i < s_n_tags && strcmp(s_tags[i], "cfg strata-PROCESS"))
                i++;
            if (i == s_n_tags || access(main_c, F_OK) != 0)
                fence_failure(path, number,
                              "a cfg block not tagged cfg strata-PROCESS of a service");
            else
                s_tag_used[i] = true;
            continue;
        }
        if (strncmp(info, "sh", 2))
            continue;
        s_sh_blocks++;
        size_t i = 0;
        while (i < s_n_tags && (info[2] != ' ' || strcmp(info + 3, s_tags[i])))
            i++;
        if (i == s_n_tags)
            fence_failure(path, number, "an sh block without a tag of README.md's table");
        else
            s_tag_used[i] = true;
    }
    fclose(f);
    if (open)
        fence_failure(path, number, "a fenced block is not closed");
    return 0;
}

START_TEST(every_command_block_names_the_test_that_runs_it)
{
    tags_from_readme();
    ck_assert_uint_ge(s_n_tags, 5);
    ck_assert_int_eq(nftw(STRATA_SOURCE_DIR, fences_visit, 16, FTW_PHYS | FTW_ACTIONRETVAL), 0);
    ck_assert_uint_ge(s_sh_blocks, 10);
    for (size_t i = 0; i < s_n_tags; i++)
        if (!s_tag_used[i])
            fence_failure(STRATA_SOURCE_DIR "/README.md", 0, s_tags[i]);
    ck_assert_msg(s_fence_used == 0, "command blocks (a tag alone: listed, used by no block):\n%s",
                  s_fence_failures);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_error_code_is_numbered_in_protocol_md);
    tcase_add_test(tc, the_control_table_is_what_each_service_answers);
    tcase_add_test(tc, every_example_message_is_one_the_code_prints);
    tcase_add_test(tc, every_command_block_names_the_test_that_runs_it);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
