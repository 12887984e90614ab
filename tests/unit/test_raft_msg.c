/* The Raft peer codec: every message type round trips; every check of
 * proto/RAFT.md refuses with its code and text. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft.pb-c.h"
#include "strata/entry.h"
#include "strata/raft_msg.h"
#include "support.h"

/* Frames of n entries with seqs first.. and the given terms (term_of NULL:
 * all term 1); returns the byte count, offsets of each entry in offs. */
static size_t make_frames(uint8_t *out, uint64_t first, size_t n, const uint64_t *terms,
                          size_t *offs)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "key-%zu", i);
        strata_entry_t e = {.seq = first + i,
                            .term = terms ? terms[i] : 1,
                            .timestamp_ns = 1700000000000000000ull + i,
                            .type = STRATA_VALUE_PUT,
                            .key = (const uint8_t *)key,
                            .key_len = (uint32_t)klen,
                            .value = (const uint8_t *)"value",
                            .value_len = 5};
        if (offs)
            offs[i] = off;
        strata_entry_encode(out + off, &e);
        off += strata_entry_size(0, (size_t)klen, 5);
    }
    return off;
}

static strata_raft_msg_t base(strata_raft_msg_type_t type)
{
    return (strata_raft_msg_t){.type = type, .from = 1, .to = 2, .term = 7, .incarnation = 0xabc};
}

static void encode_ok(const strata_raft_msg_t *m, const uint8_t *f, size_t flen, uint8_t **buf,
                      size_t *len)
{
    strata_error_t err;
    int rc = strata_raft_msg_encode(m, f, flen, buf, len, &err);
    ck_assert_msg(rc == 0, "encode: %s", err.msg);
}

typedef struct {
    strata_raft_msg_t m;
    strata_raft_entry_t entries[STRATA_RAFT_MAX_ENTRIES];
    const uint8_t *frames;
    size_t frames_len;
    strata_error_t err;
} decoded_t;

static int decode(const uint8_t *buf, size_t len, decoded_t *d)
{
    return strata_raft_msg_decode(buf, len, &d->m, d->entries, STRATA_RAFT_MAX_ENTRIES, &d->frames,
                                  &d->frames_len, &d->err);
}

static void expect_err(const uint8_t *buf, size_t len, int code, const char *text)
{
    decoded_t d;
    int rc = decode(buf, len, &d);
    ck_assert_msg(rc == code, "code %d, want %d (%s)", rc, code, d.err.msg);
    ck_assert_str_eq(d.err.msg, text);
    ck_assert_ptr_null(d.frames);
    ck_assert_uint_eq(d.frames_len, 0);
}

/* Field by field: the structs' padding is not theirs to compare. */
static void same(const strata_raft_msg_t *a, const strata_raft_msg_t *b)
{
    ck_assert_int_eq(a->type, b->type);
    ck_assert_uint_eq(a->from, b->from);
    ck_assert_uint_eq(a->to, b->to);
    ck_assert_uint_eq(a->term, b->term);
    ck_assert_uint_eq(a->incarnation, b->incarnation);
    ck_assert_uint_eq(a->last_seq, b->last_seq);
    ck_assert_uint_eq(a->last_term, b->last_term);
    ck_assert_int_eq(a->pre_vote, b->pre_vote);
    ck_assert_int_eq(a->transfer, b->transfer);
    ck_assert_int_eq(a->granted, b->granted);
    ck_assert_uint_eq(a->prev_seq, b->prev_seq);
    ck_assert_uint_eq(a->prev_term, b->prev_term);
    ck_assert_uint_eq(a->commit_seq, b->commit_seq);
    ck_assert_uint_eq(a->n_entries, b->n_entries);
    ck_assert_int_eq(a->ok, b->ok);
    ck_assert_uint_eq(a->match_seq, b->match_seq);
    ck_assert_uint_eq(a->hint_seq, b->hint_seq);
    ck_assert_uint_eq(a->hint_term, b->hint_term);
    ck_assert_uint_eq(a->ctx, b->ctx);
    ck_assert_uint_eq(a->snap_seq, b->snap_seq);
    ck_assert_uint_eq(a->snap_term, b->snap_term);
}

START_TEST(every_type_round_trips)
{
    strata_raft_msg_t cases[6];
    cases[0] = base(STRATA_RAFT_MSG_VOTE);
    cases[0].last_seq = 100, cases[0].last_term = 6, cases[0].pre_vote = true,
    cases[0].transfer = true;
    cases[1] = base(STRATA_RAFT_MSG_VOTE_REPLY);
    cases[1].granted = true, cases[1].pre_vote = true;
    cases[2] = base(STRATA_RAFT_MSG_APPEND);
    cases[2].prev_seq = 41, cases[2].prev_term = 5, cases[2].commit_seq = 40, cases[2].ctx = 999;
    cases[3] = base(STRATA_RAFT_MSG_APPEND_REPLY);
    cases[3].ok = false, cases[3].match_seq = 3, cases[3].hint_seq = 30, cases[3].hint_term = 4,
    cases[3].ctx = 12345;
    cases[4] = base(STRATA_RAFT_MSG_TIMEOUT_NOW);
    cases[5] = base(STRATA_RAFT_MSG_SNAPSHOT_OFFER);
    cases[5].snap_seq = 1 << 20, cases[5].snap_term = 3, cases[5].ctx = 4242;
    for (int i = 0; i < 6; i++) {
        cases[i].from = (uint32_t)i + 1;
        cases[i].to = 255;
        cases[i].term = UINT64_MAX - (uint64_t)i;
        uint8_t *buf;
        size_t len;
        encode_ok(&cases[i], NULL, 0, &buf, &len);
        decoded_t d;
        ck_assert_msg(decode(buf, len, &d) == 0, "%d: %s", i, d.err.msg);
        same(&d.m, &cases[i]);
        ck_assert_ptr_null(d.frames);
        free(buf);
    }
}
END_TEST

START_TEST(append_entries_come_back_with_their_offsets)
{
    static uint8_t frames[1 << 16];
    uint64_t terms[STRATA_RAFT_MAX_ENTRIES];
    size_t offs[STRATA_RAFT_MAX_ENTRIES];
    for (size_t i = 0; i < STRATA_RAFT_MAX_ENTRIES; i++)
        terms[i] = 5 + i / 100;
    size_t counts[] = {1, 3, STRATA_RAFT_MAX_ENTRIES};
    for (int c = 0; c < 3; c++) {
        size_t n = counts[c];
        size_t flen = make_frames(frames, 42, n, terms, offs);
        strata_raft_msg_t m = base(STRATA_RAFT_MSG_APPEND);
        m.prev_seq = 41, m.prev_term = 5, m.commit_seq = 40, m.ctx = 77;
        m.n_entries = (uint32_t)n;
        uint8_t *buf;
        size_t len;
        encode_ok(&m, frames, flen, &buf, &len);
        decoded_t d;
        ck_assert_msg(decode(buf, len, &d) == 0, "%s", d.err.msg);
        ck_assert_uint_eq(d.m.n_entries, n);
        ck_assert_ptr_eq(d.m.entries, d.entries);
        ck_assert_uint_eq(d.m.prev_seq, 41);
        ck_assert_uint_eq(d.m.ctx, 77);
        ck_assert_uint_eq(d.frames_len, flen);
        /* The frames are the sender's bytes, in place in the message. */
        ck_assert(d.frames >= buf && d.frames + d.frames_len <= buf + len);
        ck_assert_mem_eq(d.frames, frames, flen);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_eq(d.entries[i].seq, 42 + i);
            ck_assert_uint_eq(d.entries[i].term, terms[i]);
            ck_assert_uint_eq(d.entries[i].data, offs[i]);
            strata_entry_t e;
            ck_assert_int_eq(strata_entry_decode(d.frames + d.entries[i].data,
                                                 d.frames_len - d.entries[i].data, 0, &e, NULL,
                                                 NULL),
                             0);
            ck_assert_uint_eq(e.seq, 42 + i);
        }
        free(buf);
    }
    /* A heartbeat: an append with no entries. */
    strata_raft_msg_t hb = base(STRATA_RAFT_MSG_APPEND);
    hb.prev_seq = 9;
    uint8_t *buf;
    size_t len;
    encode_ok(&hb, NULL, 0, &buf, &len);
    decoded_t d;
    ck_assert_int_eq(
        strata_raft_msg_decode(buf, len, &d.m, NULL, 0, &d.frames, &d.frames_len, &d.err), 0);
    ck_assert_uint_eq(d.m.n_entries, 0);
    ck_assert_ptr_null(d.m.entries);
    ck_assert_uint_eq(d.frames_len, 0);
    free(buf);
    /* A sender that writes the empty frames field out anyway. */
    const uint8_t empty[] = {0x08, 1, 0x10, 1, 0x18, 2, 0x20, 1, 0x62, 2, 0x2a, 0};
    ck_assert_msg(decode(empty, sizeof empty, &d) == 0, "%s", d.err.msg);
    ck_assert_int_eq(d.m.type, STRATA_RAFT_MSG_APPEND);
    ck_assert_uint_eq(d.m.n_entries, 0);
    ck_assert_uint_eq(d.frames_len, 0);
}
END_TEST

/* Packs an envelope built with the generated structs: how a hostile or
 * broken peer's bytes are made. */
static uint8_t *pack(Strata__Raft__Message *msg, size_t *len)
{
    *len = strata__raft__message__get_packed_size(msg);
    uint8_t *buf = malloc(*len + 1);
    strata__raft__message__pack(msg, buf);
    return buf;
}

static uint8_t *append_with(uint64_t prev_seq, uint64_t prev_term, uint64_t term, const uint8_t *f,
                            size_t flen, size_t *len)
{
    Strata__Raft__Message msg = STRATA__RAFT__MESSAGE__INIT;
    Strata__Raft__Append a = STRATA__RAFT__APPEND__INIT;
    msg.version = 1, msg.from = 1, msg.to = 2, msg.term = term;
    msg.body_case = STRATA__RAFT__MESSAGE__BODY_APPEND;
    msg.append = &a;
    a.prev_seq = prev_seq, a.prev_term = prev_term;
    a.frames = (ProtobufCBinaryData){.len = flen, .data = (uint8_t *)f};
    return pack(&msg, len);
}

START_TEST(envelope_errors_name_the_field)
{
    Strata__Raft__Message msg = STRATA__RAFT__MESSAGE__INIT;
    Strata__Raft__TimeoutNow tn = STRATA__RAFT__TIMEOUT_NOW__INIT;
    msg.from = 1, msg.to = 2, msg.term = 3;
    msg.body_case = STRATA__RAFT__MESSAGE__BODY_TIMEOUT_NOW;
    msg.timeout_now = &tn;
    size_t len;
    uint8_t *buf = pack(&msg, &len);
    expect_err(buf, len, STRATA_EVERSION, "message.version: 0 unknown, this side speaks 1");
    free(buf);
    msg.version = 2;
    buf = pack(&msg, &len);
    expect_err(buf, len, STRATA_EVERSION, "message.version: 2 unknown, this side speaks 1");
    free(buf);
    msg.version = 1;
    msg.from = 0;
    buf = pack(&msg, &len);
    expect_err(buf, len, STRATA_EINVAL, "message.from: 0, not a node id (1..255)");
    free(buf);
    msg.from = 1, msg.to = 256;
    buf = pack(&msg, &len);
    expect_err(buf, len, STRATA_EINVAL, "message.to: 256, not a node id (1..255)");
    free(buf);
    msg.to = 2;
    msg.body_case = STRATA__RAFT__MESSAGE__BODY__NOT_SET;
    buf = pack(&msg, &len);
    expect_err(buf, len, STRATA_EINVAL, "message.body: no known type");
    /* A body of a type this side does not know (field 16) is an unknown
     * field to protobuf: no known type either. */
    uint8_t with[64];
    memcpy(with, buf, len);
    with[len] = 0x82, with[len + 1] = 0x01, with[len + 2] = 0; /* key 16<<3|2 as a varint */
    expect_err(with, len + 3, STRATA_EINVAL, "message.body: no known type");
    free(buf);

    const uint8_t junk[] = {0xff, 0xff, 0xff};
    expect_err(junk, sizeof junk, STRATA_EINVAL, "raft message: malformed (3 bytes)");
    uint8_t *big = calloc(STRATA_RAFT_MSG_MAX + 1, 1);
    expect_err(big, STRATA_RAFT_MSG_MAX + 1, STRATA_ETOOBIG,
               "raft message: 8388609 bytes, cap 8388608");
    free(big);

    /* Append (field 12) twice: protobuf would merge, we refuse. */
    uint8_t f[256];
    size_t flen = make_frames(f, 1, 1, NULL, NULL);
    buf = append_with(0, 0, 1, f, flen, &len);
    uint8_t *twice = malloc(2 * len);
    memcpy(twice, buf, len);
    size_t at = 0; /* the append field is the last: copy it again */
    while (buf[at] != (12 << 3 | 2))
        at++;
    memcpy(twice + len, buf + at, len - at);
    expect_err(twice, len + len - at, STRATA_EINVAL, "message.append: appears 2 times, not once");
    free(twice);
    free(buf);
}
END_TEST

START_TEST(frame_errors_name_the_entry_and_offset)
{
    static uint8_t f[1 << 16];
    size_t offs[300];
    uint64_t terms[300];
    for (int i = 0; i < 300; i++)
        terms[i] = 2;
    size_t len, flen = make_frames(f, 11, 3, terms, offs);
    char want[512];
    uint8_t *buf;

    /* A flipped byte in entry 1's value. */
    f[offs[2] - 1] ^= 1;
    buf = append_with(10, 2, 2, f, flen, &len);
    decoded_t d;
    ck_assert_int_eq(decode(buf, len, &d), STRATA_ECORRUPT);
    snprintf(want, sizeof want, "append.frames entry 1 at byte %zu: WAL entry offset 0: bad crc",
             offs[1]);
    ck_assert_msg(strncmp(d.err.msg, want, strlen(want)) == 0, "%s", d.err.msg);
    free(buf);
    f[offs[2] - 1] ^= 1;

    /* Entry 2 cut short. */
    buf = append_with(10, 2, 2, f, flen - 1, &len);
    snprintf(want, sizeof want,
             "append.frames entry 2 at byte %zu: WAL entry offset 4: torn payload: payload_len "
             "%zu, %zu bytes present",
             offs[2], flen - offs[2] - 40, flen - offs[2] - 41);
    expect_err(buf, len, STRATA_ECORRUPT, want);
    free(buf);

    /* The first seq is not prev_seq + 1. */
    buf = append_with(9, 2, 2, f, flen, &len);
    expect_err(buf, len, STRATA_EINVAL, "append.frames entry 0 at byte 0: seq 11, expected 10");
    free(buf);

    /* A gap: entries 11, 12, 14. */
    size_t two = make_frames(f, 11, 2, terms, NULL);
    size_t glen = two + make_frames(f + two, 14, 1, terms, NULL);
    buf = append_with(10, 2, 2, f, glen, &len);
    snprintf(want, sizeof want, "append.frames entry 2 at byte %zu: seq 14, expected 13", offs[2]);
    expect_err(buf, len, STRATA_EINVAL, want);
    free(buf);

    /* Terms: below prev_term, decreasing, above the message's term. */
    flen = make_frames(f, 11, 3, terms, offs);
    buf = append_with(10, 3, 3, f, flen, &len);
    expect_err(buf, len, STRATA_EINVAL,
               "append.frames entry 0 at byte 0: term 2 below prev_term 3");
    free(buf);
    uint64_t down[3] = {2, 3, 2};
    flen = make_frames(f, 11, 3, down, offs);
    buf = append_with(10, 2, 3, f, flen, &len);
    snprintf(want, sizeof want,
             "append.frames entry 2 at byte %zu: term 2 below the previous entry's term 3",
             offs[2]);
    expect_err(buf, len, STRATA_EINVAL, want);
    free(buf);
    buf = append_with(10, 2, 2, f, flen, &len);
    snprintf(want, sizeof want,
             "append.frames entry 1 at byte %zu: term 3 above the message's term 2", offs[1]);
    expect_err(buf, len, STRATA_EINVAL, want);
    free(buf);

    /* Count: over the protocol's cap, and over the caller's. */
    flen = make_frames(f, 1, STRATA_RAFT_MAX_ENTRIES + 1, terms, offs);
    buf = append_with(0, 0, 2, f, flen, &len);
    snprintf(want, sizeof want, "append.frames: more than 256 entries (entry 256 at byte %zu)",
             offs[256]);
    expect_err(buf, len, STRATA_ETOOBIG, want);
    free(buf);
    flen = make_frames(f, 1, 5, terms, offs);
    buf = append_with(0, 0, 2, f, flen, &len);
    strata_raft_entry_t few[4];
    const uint8_t *fr;
    size_t frl;
    ck_assert_int_eq(strata_raft_msg_decode(buf, len, &d.m, few, 4, &fr, &frl, &d.err),
                     STRATA_ETOOBIG);
    snprintf(want, sizeof want,
             "append.frames: more than 4 entries, the receiver's capacity (entry 4 at byte %zu)",
             offs[4]);
    ck_assert_str_eq(d.err.msg, want);
    free(buf);

    /* An entry whose length is over the message cap. */
    flen = make_frames(f, 1, 1, terms, NULL);
    f[4] = 0xff, f[5] = 0xff, f[6] = 0xff, f[7] = 0x7f;
    buf = append_with(0, 0, 2, f, flen, &len);
    expect_err(buf, len, STRATA_ETOOBIG,
               "append.frames entry 0 at byte 0: WAL entry offset 4: oversize length: payload_len "
               "2147483647 is over the cap 8388608");
    free(buf);
}
END_TEST

START_TEST(encode_refuses_what_the_peer_would)
{
    uint8_t f[1024], *buf = NULL;
    size_t len = 0, flen = make_frames(f, 5, 2, NULL, NULL);
    strata_error_t err;
    strata_raft_msg_t m = base(STRATA_RAFT_MSG_APPEND);
    m.prev_seq = 4;
    m.n_entries = 3;
    ck_assert_int_eq(strata_raft_msg_encode(&m, f, flen, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "append.n_entries: 3, frames hold 2");
    m.n_entries = 2, m.prev_seq = 3;
    ck_assert_int_eq(strata_raft_msg_encode(&m, f, flen, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "append.frames entry 0 at byte 0: seq 5, expected 4");
    m = base(STRATA_RAFT_MSG_VOTE);
    ck_assert_int_eq(strata_raft_msg_encode(&m, f, flen, &buf, &len, &err), STRATA_EINVAL);
    char want[128];
    snprintf(want, sizeof want,
             "message.frames: %zu bytes on a vote message, only append has entries", flen);
    ck_assert_str_eq(err.msg, want);
    m.type = (strata_raft_msg_type_t)7;
    ck_assert_int_eq(strata_raft_msg_encode(&m, NULL, 0, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "message.type: 7 unknown");
    m = base(STRATA_RAFT_MSG_VOTE);
    m.to = 0;
    ck_assert_int_eq(strata_raft_msg_encode(&m, NULL, 0, &buf, &len, &err), STRATA_EINVAL);
    ck_assert_str_eq(err.msg, "message.to: 0, not a node id (1..255)");
    m = base(STRATA_RAFT_MSG_APPEND);
    uint8_t *huge = calloc(STRATA_RAFT_MSG_MAX + 1, 1);
    ck_assert_int_eq(strata_raft_msg_encode(&m, huge, STRATA_RAFT_MSG_MAX + 1, &buf, &len, &err),
                     STRATA_ETOOBIG);
    ck_assert_str_eq(err.msg, "append.frames: 8388609 bytes, cap 8388608");
    free(huge);
    ck_assert_ptr_null(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("raft_msg");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_type_round_trips);
    tcase_add_test(tc, append_entries_come_back_with_their_offsets);
    tcase_add_test(tc, envelope_errors_name_the_field);
    tcase_add_test(tc, frame_errors_name_the_entry_and_offset);
    tcase_add_test(tc, encode_refuses_what_the_peer_would);
    suite_add_tcase(s, tc);
    return ts_run(s);
}
