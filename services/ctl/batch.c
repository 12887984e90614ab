/* batch: several puts and deletes written atomically, from the arguments
 * and (--stdin) from lines in the format services/ctl/README.md, "batch",
 * defines: put KEY VALUE / del KEY, words bare or "quoted" with escapes. */
#define _GNU_SOURCE
#include "ctl.h"

/* Whole stdin, for the lines: the ops must fit one 8 MiB message, and an
 * escaped byte takes at most four characters. */
#define MAX_BATCH_INPUT (4 * (size_t)STRATA_PROTO_MAX_MESSAGE)

typedef struct {
    strata_batch_op_t ops[STRATA_PROTO_MAX_BATCH_OPS];
    size_t n_ops;
    char *input; /* stdin; the lines' words are decoded in place */
} batch_t;

static int s_hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The word at *at (before end), decoded in place: the bytes land at its
 * start, which *word points to. Bare: every byte up to a blank, as is.
 * Quoted: up to the closing quote, with \\ \" \n \r \t \0 \xHH. Moves *at
 * past the word; NULL on success, else what is wrong. */
static const char *s_word(char **at, char *end, strata_bytes_t *word)
{
    char *p = *at, *out = *at;
    word->data = (const uint8_t *)out;
    if (*p != '"') {
        while (p < end && !s_blank(*p))
            p++;
        word->len = (size_t)(p - out);
        *at = p;
        return NULL;
    }
    for (p++;; p++) {
        if (p == end)
            return "no closing quote";
        if (*p == '"')
            break;
        if (*p != '\\') {
            *out++ = *p;
            continue;
        }
        if (++p == end)
            return "a backslash ends the line";
        switch (*p) {
        case '\\':
        case '"':
            *out++ = *p;
            break;
        case 'n':
            *out++ = '\n';
            break;
        case 'r':
            *out++ = '\r';
            break;
        case 't':
            *out++ = '\t';
            break;
        case '0':
            *out++ = '\0';
            break;
        case 'x':
            if (end - p < 3 || s_hex_digit(p[1]) < 0 || s_hex_digit(p[2]) < 0)
                return "\\x needs two hex digits";
            *out++ = (char)(s_hex_digit(p[1]) << 4 | s_hex_digit(p[2]));
            p += 2;
            break;
        default:
            return "unknown escape (\\\\ \\\" \\n \\r \\t \\0 \\xHH)";
        }
    }
    p++;
    if (p < end && !s_blank(*p))
        return "a closing quote must end the word";
    word->len = (size_t)(out - (char *)word->data);
    *at = p;
    return NULL;
}

static int s_add_op(ctl_t *ctl, batch_t *b, strata_batch_kind_t kind, strata_bytes_t key,
                    strata_bytes_t value, const char *where)
{
    if (b->n_ops == STRATA_PROTO_MAX_BATCH_OPS)
        return ctl_fail(ctl, CTL_USAGE, 0, "%s: more than %u ops, the protocol's cap for a batch",
                        where, STRATA_PROTO_MAX_BATCH_OPS);
    if (value.len > STRATA_PROTO_MAX_VALUE)
        return ctl_fail(ctl, CTL_FAILED, STRATA_ETOOBIG,
                        "%s: a value of %zu bytes, over the protocol's cap of %u bytes (%u KiB)",
                        where, value.len, STRATA_PROTO_MAX_VALUE, STRATA_PROTO_MAX_VALUE >> 10);
    b->ops[b->n_ops++] = (strata_batch_op_t){.kind = kind, .key = key, .value = value};
    return CTL_OK;
}

/* The ops of the arguments: put KEY VALUE, del KEY, ... (bytes as given). */
static int s_parse_args(ctl_t *ctl, batch_t *b, int argc, char **argv)
{
    for (int i = 0; i < argc;) {
        char where[64];
        snprintf(where, sizeof where, "argument %d", i + 1);
        bool put = !strcmp(argv[i], "put"), del = !strcmp(argv[i], "del");
        int words = put ? 3 : 2;
        if (!put && !del)
            return ctl_fail(ctl, CTL_USAGE, 0, "%s: '%s' is neither put nor del", where, argv[i]);
        if (i + words > argc)
            return ctl_fail(ctl, CTL_USAGE, 0, "%s: %s needs %s", where, argv[i],
                            put ? "KEY VALUE" : "KEY");
        int exit_code = s_add_op(ctl, b, put ? STRATA_BATCH_PUT : STRATA_BATCH_DELETE,
                                 ctl_arg_bytes(argv[i + 1]),
                                 put ? ctl_arg_bytes(argv[i + 2]) : (strata_bytes_t){0}, where);
        if (exit_code)
            return exit_code;
        i += words;
    }
    return CTL_OK;
}

/* One line of stdin (without its newline); blank and '#' lines add nothing. */
static int s_parse_line(ctl_t *ctl, batch_t *b, char *line, char *end, size_t number)
{
    char where[64];
    snprintf(where, sizeof where, "stdin line %zu", number);
    if (end > line && end[-1] == '\r')
        end--;
    strata_bytes_t words[4];
    size_t n = 0;
    for (char *p = line;;) {
        while (p < end && s_blank(*p))
            p++;
        if (p == end)
            break;
        if (n == 0 && *p == '#')
            return CTL_OK;
        if (n == 3)
            return ctl_fail(ctl, CTL_USAGE, 0, "%s: more words than put KEY VALUE", where);
        const char *why = s_word(&p, end, &words[n++]);
        if (why)
            return ctl_fail(ctl, CTL_USAGE, 0, "%s, word %zu: %s", where, n, why);
    }
    if (n == 0)
        return CTL_OK;
    bool put = words[0].len == 3 && !memcmp(words[0].data, "put", 3);
    bool del = words[0].len == 3 && !memcmp(words[0].data, "del", 3);
    if (!put && !del)
        return ctl_fail(ctl, CTL_USAGE, 0, "%s: the first word is neither put nor del", where);
    if (n != (put ? 3u : 2u))
        return ctl_fail(ctl, CTL_USAGE, 0, "%s: %s takes %s", where, put ? "put" : "del",
                        put ? "KEY VALUE" : "KEY alone");
    return s_add_op(ctl, b, put ? STRATA_BATCH_PUT : STRATA_BATCH_DELETE, words[1],
                    put ? words[2] : (strata_bytes_t){0}, where);
}

static int s_parse_stdin(ctl_t *ctl, batch_t *b)
{
    size_t len = 0, allocated = 64 << 10;
    b->input = ctl_xmalloc(allocated);
    for (size_t got = 1; got > 0;) {
        if (len == allocated) {
            if (allocated >= MAX_BATCH_INPUT)
                return ctl_fail(ctl, CTL_USAGE, STRATA_ETOOBIG, "stdin: more than %zu MiB",
                                MAX_BATCH_INPUT >> 20);
            allocated *= 2;
            char *grown = realloc(b->input, allocated);
            if (!grown)
                return ctl_fail(ctl, CTL_FAILED, STRATA_ENOMEM, "stdin: out of memory");
            b->input = grown;
        }
        got = fread(b->input + len, 1, allocated - len, stdin);
        len += got;
    }
    if (ferror(stdin))
        return ctl_fail(ctl, CTL_FAILED, STRATA_EIO, "stdin: %s", strerror(errno));
    char *p = b->input, *end = b->input + len;
    for (size_t number = 1; p < end; number++) {
        char *newline = memchr(p, '\n', (size_t)(end - p));
        char *line_end = newline ? newline : end;
        int exit_code = s_parse_line(ctl, b, p, line_end, number);
        if (exit_code)
            return exit_code;
        p = line_end + 1;
    }
    return CTL_OK;
}

int ctl_batch(ctl_t *ctl, int argc, char **argv)
{
    batch_t *b = ctl_xmalloc(sizeof *b);
    b->n_ops = 0;
    b->input = NULL;
    int exit_code = s_parse_args(ctl, b, argc, argv);
    if (!exit_code && ctl->from_stdin)
        exit_code = s_parse_stdin(ctl, b);
    if (!exit_code && b->n_ops == 0)
        exit_code = ctl_fail(ctl, CTL_USAGE, 0, "no ops: give put/del arguments or --stdin lines");
    uint64_t seq = 0;
    strata_error_t err;
    int rc = exit_code
                 ? 0
                 : strata_client_batch(ctl->client, ctl->durability, b->ops, b->n_ops, &seq, &err);
    if (rc) {
        exit_code = ctl_fail_call(ctl, rc, &err);
    } else if (!exit_code && ctl->json) {
        ctl_json_add_u64(ctl_doc(ctl), "seq", seq);
        ctl_json_add_u64(ctl->doc, "ops", b->n_ops);
    } else if (!exit_code && !ctl->quiet) {
        printf("seq %" PRIu64 " ops %zu\n", seq, b->n_ops);
    }
    free(b->input);
    free(b);
    return exit_code;
}
