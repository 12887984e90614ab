/* Pins the PUB message codec (strata/pubframe.h, proto/DISTRIBUTION.md):
 * meta and heartbeat bodies round-trip, version 1 metas (no term) still
 * decode, and every short frame, bad kind, tier, version or count is
 * rejected with the field named in the error. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/codec.h"
#include "strata/pubframe.h"
#include "support.h"

#define TOPIC(s) (const uint8_t *)(s), strlen(s)

static void encode(uint8_t *m, uint8_t kind, uint8_t tier, uint32_t count, uint64_t prev)
{
    strata_pub_meta_t meta = {.kind = kind,
                              .tier = tier,
                              .count = count,
                              .prev_seq = prev,
                              .instance = 0x1122334455667788ull,
                              .start_seq = 42,
                              .term = 0x2122232425262728ull};
    ck_assert_uint_eq(strata_pub_meta_encode(&meta, m), STRATA_PUB_META_BYTES);
}

static void expect_meta_error(const char *topic, const uint8_t *m, size_t len, int code,
                              const char *want)
{
    strata_pub_meta_t out;
    strata_error_t err;
    strata_error_clear(&err);
    int rc = strata_pub_meta_decode(TOPIC(topic), m, len, &out, &err);
    ck_assert_msg(rc == code, "rc %d, want %d (%s)", rc, code, err.msg);
    ck_assert_msg(strstr(err.msg, want), "error '%s' lacks '%s'", err.msg, want);
}

START_TEST(meta_round_trips_for_entries_and_heartbeats)
{
    uint8_t m[STRATA_PUB_META_BYTES];
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_DELAYED, 7, 41);
    ck_assert_uint_eq(m[0], STRATA_PUB_META_VERSION);
    ck_assert_uint_eq(m[3], 0); /* reserved */
    strata_pub_meta_t out;
    strata_error_t err;
    ck_assert_int_eq(strata_pub_meta_decode(TOPIC("orders"), m, sizeof m, &out, &err), 0);
    ck_assert_uint_eq(out.kind, STRATA_PUB_ENTRIES);
    ck_assert_uint_eq(out.tier, STRATA_PUB_DELAYED);
    ck_assert_uint_eq(out.count, 7);
    ck_assert_uint_eq(out.prev_seq, 41);
    ck_assert_uint_eq(out.instance, 0x1122334455667788ull);
    ck_assert_uint_eq(out.start_seq, 42);
    ck_assert_uint_eq(out.version, 2);
    ck_assert_uint_eq(out.term, 0x2122232425262728ull);

    encode(m, STRATA_PUB_HEARTBEAT, STRATA_PUB_LIVE, 0, 0);
    ck_assert_int_eq(strata_pub_meta_decode(TOPIC(STRATA_PUB_HB_TOPIC), m, sizeof m, &out, &err),
                     0);
    ck_assert_uint_eq(out.kind, STRATA_PUB_HEARTBEAT);
    ck_assert_uint_eq(out.tier, STRATA_PUB_LIVE);
    ck_assert_uint_eq(out.term, 0x2122232425262728ull);
}
END_TEST

/* Revision 6 readers keep reading what distributors before it send. */
START_TEST(version_1_metas_still_decode_with_term_0)
{
    uint8_t m[STRATA_PUB_META_BYTES];
    strata_pub_meta_t v1 = {.version = 1,
                            .kind = STRATA_PUB_ENTRIES,
                            .tier = STRATA_PUB_DELAYED,
                            .count = 3,
                            .prev_seq = 9,
                            .instance = 5,
                            .start_seq = 2,
                            .term = 77};
    ck_assert_uint_eq(strata_pub_meta_encode(&v1, m), STRATA_PUB_META_V1_BYTES);
    ck_assert_uint_eq(m[0], 1);
    strata_pub_meta_t out;
    strata_error_t err;
    ck_assert_int_eq(
        strata_pub_meta_decode(TOPIC("orders"), m, STRATA_PUB_META_V1_BYTES, &out, &err), 0);
    ck_assert_uint_eq(out.version, 1);
    ck_assert_uint_eq(out.count, 3);
    ck_assert_uint_eq(out.prev_seq, 9);
    ck_assert_uint_eq(out.start_seq, 2);
    ck_assert_uint_eq(out.term, 0); /* version 1 has no term: it is not made up */

    /* A version 1 meta has 32 bytes exactly, a version 2 meta 40. */
    expect_meta_error("orders", m, STRATA_PUB_META_BYTES, STRATA_EINVAL,
                      "meta of 40 bytes, expected 32 for version 1");
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 1, 0);
    expect_meta_error("orders", m, STRATA_PUB_META_V1_BYTES, STRATA_EINVAL,
                      "meta of 32 bytes, expected 40 for version 2");
    ck_assert_uint_eq(strata_pub_meta_size(1), 32);
    ck_assert_uint_eq(strata_pub_meta_size(2), 40);
    ck_assert_uint_eq(strata_pub_meta_size(3), 0);
}
END_TEST

START_TEST(meta_layout_is_little_endian_at_the_spec_offsets)
{
    uint8_t m[STRATA_PUB_META_BYTES];
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 0x01020304u, 0x0a0b0c0d0e0f1011ull);
    ck_assert_uint_eq(m[1], 1);
    ck_assert_uint_eq(m[2], 0);
    ck_assert_uint_eq(m[4], 0x04);
    ck_assert_uint_eq(m[7], 0x01);
    ck_assert_uint_eq(m[8], 0x11);
    ck_assert_uint_eq(m[15], 0x0a);
    ck_assert_uint_eq(m[16], 0x88);
    ck_assert_uint_eq(m[24], 42);
    ck_assert_uint_eq(m[32], 0x28); /* term, version 2 */
    ck_assert_uint_eq(m[39], 0x21);
}
END_TEST

START_TEST(every_short_or_long_meta_is_rejected_naming_its_size)
{
    uint8_t m[STRATA_PUB_META_BYTES + 1];
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 1, 0);
    expect_meta_error("orders", m, 0, STRATA_EINVAL,
                      "topic 'orders': meta of 0 bytes, expected 32 (version 1) or 40 (version 2)");
    for (size_t len = 1; len <= sizeof m; len++) {
        if (len == STRATA_PUB_META_BYTES)
            continue;
        char want[80];
        snprintf(want, sizeof want, "topic 'orders': meta of %zu bytes, expected 40 for version 2",
                 len);
        expect_meta_error("orders", m, len, STRATA_EINVAL, want);
    }
}
END_TEST

START_TEST(bad_version_tier_kind_count_and_start_seq_are_named)
{
    uint8_t m[STRATA_PUB_META_BYTES];
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 1, 0);
    m[0] = 3;
    expect_meta_error("orders", m, sizeof m, STRATA_EVERSION,
                      "meta version 3, this build reads 1 and 2");
    m[0] = 0;
    expect_meta_error("orders", m, sizeof m, STRATA_EVERSION, "meta version 0");
    encode(m, STRATA_PUB_ENTRIES, 2, 1, 0);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "tier 2 unknown");
    encode(m, 9, STRATA_PUB_LIVE, 1, 0);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "kind 9 unknown");
    encode(m, 0, STRATA_PUB_LIVE, 1, 0);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "kind 0 unknown");
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 0, 0);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "entries message on topic 'orders'");
    encode(m, STRATA_PUB_ENTRIES, STRATA_PUB_LIVE, 1, 0);
    expect_meta_error(STRATA_PUB_HB_TOPIC, m, sizeof m, STRATA_EINVAL, "entries message on topic");
    encode(m, STRATA_PUB_HEARTBEAT, STRATA_PUB_LIVE, 0, 0);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "heartbeat on topic 'orders'");
    encode(m, STRATA_PUB_HEARTBEAT, STRATA_PUB_LIVE, 3, 0);
    expect_meta_error(STRATA_PUB_HB_TOPIC, m, sizeof m, STRATA_EINVAL, "with count 3");
    strata_pub_meta_t zero = {.kind = STRATA_PUB_ENTRIES, .count = 1, .start_seq = 0};
    strata_pub_meta_encode(&zero, m);
    expect_meta_error("orders", m, sizeof m, STRATA_EINVAL, "start_seq 0");
}
END_TEST

START_TEST(topics_are_quoted_escaped_and_capped)
{
    uint8_t m[STRATA_PUB_META_BYTES];
    encode(m, 9, STRATA_PUB_LIVE, 1, 0);
    const uint8_t odd[] = {'a', 0, '\\', 0xff};
    strata_pub_meta_t out;
    strata_error_t err;
    ck_assert_int_eq(strata_pub_meta_decode(odd, sizeof odd, m, sizeof m, &out, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "topic 'a\\x00\\x5c\\xff'"), "%s", err.msg);
    uint8_t big[STRATA_PROTO_MAX_TOPIC + 1];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(strata_pub_meta_decode(big, sizeof big, m, sizeof m, &out, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "topic of 256 bytes, cap 255"), "%s", err.msg);
}
END_TEST

typedef struct {
    int seen;
    char names[4][16];
    uint64_t last[4];
} visits_t;

static int visit(void *arg, const uint8_t *topic, size_t len, uint64_t last, strata_error_t *err)
{
    (void)err;
    visits_t *v = arg;
    snprintf(v->names[v->seen], sizeof v->names[0], "%.*s", (int)len, (const char *)topic);
    v->last[v->seen++] = last;
    return 0;
}

static size_t heartbeat_body(uint8_t *body)
{
    size_t off = STRATA_PUB_HB_HEADER;
    off += strata_pub_hb_put_topic(body + off, "orders", 6, 17);
    off += strata_pub_hb_put_topic(body + off, "kv", 2, 9);
    strata_pub_hb_put_header(body, 20, 2);
    return off;
}

START_TEST(heartbeat_body_round_trips)
{
    uint8_t body[128];
    size_t len = heartbeat_body(body);
    ck_assert_uint_eq(len, 12 + (2 + 6 + 8) + (2 + 2 + 8));
    visits_t v = {0};
    uint64_t covered;
    uint32_t n;
    strata_error_t err;
    ck_assert_int_eq(strata_pub_hb_decode(body, len, &covered, &n, visit, &v, &err), 0);
    ck_assert_uint_eq(covered, 20);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(v.seen, 2);
    ck_assert_str_eq(v.names[0], "orders");
    ck_assert_uint_eq(v.last[0], 17);
    ck_assert_str_eq(v.names[1], "kv");
    ck_assert_uint_eq(v.last[1], 9);

    /* No topics at all is a whole heartbeat too. */
    strata_pub_hb_put_header(body, 5, 0);
    ck_assert_int_eq(strata_pub_hb_decode(body, 12, &covered, &n, NULL, NULL, &err), 0);
    ck_assert_uint_eq(covered, 5);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(every_truncated_heartbeat_is_rejected_naming_where)
{
    uint8_t body[128];
    size_t len = heartbeat_body(body);
    for (size_t cut = 0; cut < len; cut++) {
        uint64_t covered;
        uint32_t n;
        strata_error_t err;
        int rc = strata_pub_hb_decode(body, cut, &covered, &n, NULL, NULL, &err);
        ck_assert_msg(rc == STRATA_EINVAL, "cut at %zu: rc %d", cut, rc);
        const char *want = cut < 12 ? "at least 12" : "runs past the body";
        ck_assert_msg(strstr(err.msg, want), "cut at %zu: '%s' lacks '%s'", cut, err.msg, want);
    }
}
END_TEST

START_TEST(heartbeat_count_cap_long_topic_and_trailing_bytes_are_named)
{
    uint8_t body[600];
    uint64_t covered;
    uint32_t n;
    strata_error_t err;
    strata_pub_hb_put_header(body, 1, STRATA_PUB_HB_MAX_TOPICS + 1);
    ck_assert_int_eq(strata_pub_hb_decode(body, 12, &covered, &n, NULL, NULL, &err), STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "heartbeat lists 257 topics, cap 256"), "%s", err.msg);

    memset(body, 'x', sizeof body);
    strata_pub_hb_put_header(body, 1, 1);
    body[12] = 0x00;
    body[13] = 0x01; /* 256 bytes */
    ck_assert_int_eq(strata_pub_hb_decode(body, 12 + 2 + 256 + 8, &covered, &n, NULL, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "heartbeat topic of 256 bytes, cap 255"), "%s", err.msg);

    size_t len = heartbeat_body(body);
    ck_assert_int_eq(strata_pub_hb_decode(body, len + 3, &covered, &n, NULL, NULL, &err),
                     STRATA_EINVAL);
    ck_assert_msg(strstr(err.msg, "3 bytes after its topics"), "%s", err.msg);
}
END_TEST

static int refuse(void *arg, const uint8_t *topic, size_t len, uint64_t last, strata_error_t *err)
{
    (void)arg;
    (void)topic;
    (void)len;
    return strata_error_set(err, STRATA_ENOTFOUND, "visitor stops at %llu",
                            (unsigned long long)last);
}

START_TEST(a_visitor_error_stops_the_walk_and_is_returned)
{
    uint8_t body[128];
    size_t len = heartbeat_body(body);
    uint64_t covered;
    uint32_t n;
    strata_error_t err;
    ck_assert_int_eq(strata_pub_hb_decode(body, len, &covered, &n, refuse, NULL, &err),
                     STRATA_ENOTFOUND);
    ck_assert_str_eq(err.msg, "visitor stops at 17");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pubframe");
    TCase *meta = tcase_create("meta");
    tcase_add_test(meta, meta_round_trips_for_entries_and_heartbeats);
    tcase_add_test(meta, meta_layout_is_little_endian_at_the_spec_offsets);
    tcase_add_test(meta, version_1_metas_still_decode_with_term_0);
    tcase_add_test(meta, every_short_or_long_meta_is_rejected_naming_its_size);
    tcase_add_test(meta, bad_version_tier_kind_count_and_start_seq_are_named);
    tcase_add_test(meta, topics_are_quoted_escaped_and_capped);
    suite_add_tcase(s, meta);
    TCase *hb = tcase_create("heartbeat");
    tcase_add_test(hb, heartbeat_body_round_trips);
    tcase_add_test(hb, every_truncated_heartbeat_is_rejected_naming_where);
    tcase_add_test(hb, heartbeat_count_cap_long_topic_and_trailing_bytes_are_named);
    tcase_add_test(hb, a_visitor_error_stops_the_walk_and_is_returned);
    suite_add_tcase(s, hb);
    return ts_run(s);
}
