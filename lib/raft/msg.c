/* The Raft peer codec (proto/RAFT.md): the only code that sees the
 * protobuf-c structs of raft.proto. Decode checks the size before
 * protobuf-c parses anything, then the version, the type, the node ids and,
 * for an append, every frame, so a hostile peer costs one bounded parse and
 * gets an error naming the field. */
#include "strata/raft_msg.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "raft.pb-c.h"
#include "strata/entry.h"

/* Body cases are the message type shifted by this (raft.proto numbers the
 * bodies from 10 in strata_raft_msg_type_t's order). */
#define BODY_CASE_BASE 9

static const char *const type_names[] = {
    [STRATA_RAFT_MSG_VOTE] = "vote",
    [STRATA_RAFT_MSG_VOTE_REPLY] = "vote_reply",
    [STRATA_RAFT_MSG_APPEND] = "append",
    [STRATA_RAFT_MSG_APPEND_REPLY] = "append_reply",
    [STRATA_RAFT_MSG_TIMEOUT_NOW] = "timeout_now",
    [STRATA_RAFT_MSG_SNAPSHOT_OFFER] = "snapshot_offer",
};

static bool type_known(int type)
{
    return type >= STRATA_RAFT_MSG_VOTE && type <= STRATA_RAFT_MSG_SNAPSHOT_OFFER;
}

static int check_node(const char *field, uint32_t id, strata_error_t *err)
{
    if (id >= 1 && id <= STRATA_RAFT_MSG_MAX_NODE)
        return 0;
    return strata_error_set(err, STRATA_EINVAL, "message.%s: %u, not a node id (1..%u)", field, id,
                            STRATA_RAFT_MSG_MAX_NODE);
}

/* Walks frames as RAFT.md, "Frames", says, in its order of checks; fills
 * entries (when not NULL) and counts into *count. The same walk serves
 * encode, so a sender never sends what its peer refuses. */
static int check_frames(const uint8_t *f, size_t flen, uint64_t prev_seq, uint64_t prev_term,
                        uint64_t msg_term, strata_raft_entry_t *entries, size_t cap,
                        uint32_t *count, strata_error_t *err)
{
    uint32_t i = 0;
    uint64_t last_term = prev_term;
    for (size_t off = 0; off < flen; i++) {
        if (i == STRATA_RAFT_MAX_ENTRIES)
            return strata_error_set(err, STRATA_ETOOBIG,
                                    "append.frames: more than %u entries (entry %u at byte %zu)",
                                    STRATA_RAFT_MAX_ENTRIES, i, off);
        if (i == cap)
            return strata_error_set(
                err, STRATA_ETOOBIG,
                "append.frames: more than %zu entries, the receiver's capacity (entry %u at byte "
                "%zu)",
                cap, i, off);
        strata_entry_t e;
        size_t used = 0;
        strata_error_t inner;
        int rc = strata_entry_decode(f + off, flen - off, STRATA_RAFT_MSG_MAX, &e, &used, &inner);
        if (rc)
            return strata_error_set(err, rc, "append.frames entry %u at byte %zu: %s", i, off,
                                    inner.msg);
        uint64_t want = prev_seq + 1 + i;
        if (e.seq <= prev_seq || e.seq - prev_seq != (uint64_t)i + 1)
            return strata_error_set(err, STRATA_EINVAL,
                                    "append.frames entry %u at byte %zu: seq %" PRIu64
                                    ", expected %" PRIu64,
                                    i, off, e.seq, want);
        if (e.term < last_term)
            return strata_error_set(
                err, STRATA_EINVAL,
                "append.frames entry %u at byte %zu: term %" PRIu64 " below %s %" PRIu64, i, off,
                e.term, i ? "the previous entry's term" : "prev_term", last_term);
        if (e.term > msg_term)
            return strata_error_set(err, STRATA_EINVAL,
                                    "append.frames entry %u at byte %zu: term %" PRIu64
                                    " above the message's term %" PRIu64,
                                    i, off, e.term, msg_term);
        if (entries)
            entries[i] = (strata_raft_entry_t){.seq = e.seq, .term = e.term, .data = off};
        last_term = e.term;
        off += used;
    }
    *count = i;
    return 0;
}

int strata_raft_msg_encode(const strata_raft_msg_t *m, const uint8_t *frames, size_t frames_len,
                           uint8_t **out, size_t *out_len, strata_error_t *err)
{
    if (!m || !out || !out_len || (!frames && frames_len))
        return strata_error_set(err, STRATA_EINVAL, "raft message encode: needs m, out, out_len");
    *out = NULL;
    *out_len = 0;
    if (!type_known((int)m->type))
        return strata_error_set(err, STRATA_EINVAL, "message.type: %d unknown", (int)m->type);
    int rc = check_node("from", m->from, err);
    if (!rc)
        rc = check_node("to", m->to, err);
    if (rc)
        return rc;
    if (m->type != STRATA_RAFT_MSG_APPEND && frames_len)
        return strata_error_set(err, STRATA_EINVAL,
                                "message.frames: %zu bytes on a %s message, only append has "
                                "entries",
                                frames_len, type_names[m->type]);

    Strata__Raft__Message msg = STRATA__RAFT__MESSAGE__INIT;
    Strata__Raft__Vote vote = STRATA__RAFT__VOTE__INIT;
    Strata__Raft__VoteReply vote_reply = STRATA__RAFT__VOTE_REPLY__INIT;
    Strata__Raft__Append append = STRATA__RAFT__APPEND__INIT;
    Strata__Raft__AppendReply append_reply = STRATA__RAFT__APPEND_REPLY__INIT;
    Strata__Raft__TimeoutNow timeout_now = STRATA__RAFT__TIMEOUT_NOW__INIT;
    Strata__Raft__SnapshotOffer offer = STRATA__RAFT__SNAPSHOT_OFFER__INIT;
    msg.version = STRATA_RAFT_MSG_VERSION;
    msg.from = m->from;
    msg.to = m->to;
    msg.term = m->term;
    msg.incarnation = m->incarnation;
    msg.body_case = (Strata__Raft__Message__BodyCase)(m->type + BODY_CASE_BASE);
    switch (m->type) {
    case STRATA_RAFT_MSG_VOTE:
        vote.last_seq = m->last_seq;
        vote.last_term = m->last_term;
        vote.pre_vote = m->pre_vote;
        vote.transfer = m->transfer;
        msg.vote = &vote;
        break;
    case STRATA_RAFT_MSG_VOTE_REPLY:
        vote_reply.granted = m->granted;
        vote_reply.pre_vote = m->pre_vote;
        msg.vote_reply = &vote_reply;
        break;
    case STRATA_RAFT_MSG_APPEND: {
        if (frames_len > STRATA_RAFT_MSG_MAX)
            return strata_error_set(err, STRATA_ETOOBIG, "append.frames: %zu bytes, cap %u",
                                    frames_len, STRATA_RAFT_MSG_MAX);
        uint32_t n = 0;
        rc = check_frames(frames, frames_len, m->prev_seq, m->prev_term, m->term, NULL,
                          STRATA_RAFT_MAX_ENTRIES, &n, err);
        if (rc)
            return rc;
        if (n != m->n_entries)
            return strata_error_set(err, STRATA_EINVAL, "append.n_entries: %u, frames hold %u",
                                    m->n_entries, n);
        append.prev_seq = m->prev_seq;
        append.prev_term = m->prev_term;
        append.commit_seq = m->commit_seq;
        append.ctx = m->ctx;
        append.frames = (ProtobufCBinaryData){.len = frames_len, .data = (uint8_t *)frames};
        msg.append = &append;
        break;
    }
    case STRATA_RAFT_MSG_APPEND_REPLY:
        append_reply.ok = m->ok;
        append_reply.match_seq = m->match_seq;
        append_reply.hint_seq = m->hint_seq;
        append_reply.hint_term = m->hint_term;
        append_reply.ctx = m->ctx;
        msg.append_reply = &append_reply;
        break;
    case STRATA_RAFT_MSG_TIMEOUT_NOW:
        msg.timeout_now = &timeout_now;
        break;
    case STRATA_RAFT_MSG_SNAPSHOT_OFFER:
        offer.snap_seq = m->snap_seq;
        offer.snap_term = m->snap_term;
        offer.ctx = m->ctx;
        msg.snapshot_offer = &offer;
        break;
    }
    size_t size = strata__raft__message__get_packed_size(&msg);
    if (size > STRATA_RAFT_MSG_MAX)
        return strata_error_set(err, STRATA_ETOOBIG, "raft message: %zu bytes, cap %u", size,
                                STRATA_RAFT_MSG_MAX);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return strata_error_set(err, STRATA_ENOMEM, "raft message: %zu bytes", size);
    strata__raft__message__pack(&msg, buf);
    *out = buf;
    *out_len = size;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Locating the frames in the input                                    */

static bool read_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && *off < len; shift += 7) {
        uint8_t b = p[(*off)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Finds each occurrence of the length-delimited field `number` in
 * p[0..len): the last one's place and how many there were. false when the
 * bytes are not a walkable protobuf message. */
static bool find_field(const uint8_t *p, size_t len, uint32_t number, size_t *at, size_t *flen,
                       unsigned *seen)
{
    *seen = 0;
    size_t off = 0;
    while (off < len) {
        uint64_t key, n;
        if (!read_varint(p, len, &off, &key))
            return false;
        switch (key & 7) {
        case 0:
            if (!read_varint(p, len, &off, &n))
                return false;
            break;
        case 1:
        case 5: {
            size_t w = (key & 7) == 1 ? 8 : 4;
            if (len - off < w)
                return false;
            off += w;
            break;
        }
        case 2:
            if (!read_varint(p, len, &off, &n) || n > len - off)
                return false;
            if (key >> 3 == number) {
                (*seen)++;
                *at = off;
                *flen = (size_t)n;
            }
            off += (size_t)n;
            break;
        default:
            return false;
        }
    }
    return true;
}

/* protobuf-c copies bytes fields out of the input, and merges a repeated
 * embedded message; a conforming sender writes append and frames once, and
 * only then is the place in buf unambiguous, so anything else is refused. */
static int locate_frames(const uint8_t *buf, size_t len, const ProtobufCBinaryData *parsed,
                         const uint8_t **frames, strata_error_t *err)
{
    size_t a_at = 0, a_len = 0, f_at = 0, f_len = 0;
    unsigned a_seen = 0, f_seen = 0;
    if (!find_field(buf, len, STRATA__RAFT__MESSAGE__BODY_APPEND, &a_at, &a_len, &a_seen) ||
        a_seen != 1)
        return strata_error_set(err, STRATA_EINVAL, "message.append: appears %u times, not once",
                                a_seen);
    if (!find_field(buf + a_at, a_len, 5, &f_at, &f_len, &f_seen) || f_seen > 1)
        return strata_error_set(err, STRATA_EINVAL, "append.frames: appears %u times, not once",
                                f_seen);
    if (f_seen == 0) {
        *frames = NULL;
        return parsed->len ? strata_error_set(err, STRATA_EINVAL, "append.frames: not found") : 0;
    }
    if (f_len != parsed->len || (f_len && memcmp(buf + a_at + f_at, parsed->data, f_len) != 0))
        return strata_error_set(err, STRATA_EINVAL, "append.frames: not found");
    *frames = buf + a_at + f_at;
    return 0;
}

int strata_raft_msg_decode(const uint8_t *buf, size_t len, strata_raft_msg_t *m,
                           strata_raft_entry_t *entries, size_t cap, const uint8_t **frames,
                           size_t *frames_len, strata_error_t *err)
{
    if ((!buf && len) || !m || (!entries && cap) || !frames || !frames_len)
        return strata_error_set(err, STRATA_EINVAL,
                                "raft message decode: needs buf, m, entries for cap, frames");
    memset(m, 0, sizeof *m);
    *frames = NULL;
    *frames_len = 0;
    if (len > STRATA_RAFT_MSG_MAX)
        return strata_error_set(err, STRATA_ETOOBIG, "raft message: %zu bytes, cap %u", len,
                                STRATA_RAFT_MSG_MAX);
    Strata__Raft__Message *msg = strata__raft__message__unpack(NULL, len, buf);
    if (!msg)
        return strata_error_set(err, STRATA_EINVAL, "raft message: malformed (%zu bytes)", len);
    int rc = 0;
    if (msg->version != STRATA_RAFT_MSG_VERSION) {
        rc = strata_error_set(err, STRATA_EVERSION,
                              "message.version: %u unknown, this side speaks %u", msg->version,
                              STRATA_RAFT_MSG_VERSION);
        goto out;
    }
    int type = (int)msg->body_case - BODY_CASE_BASE;
    if (msg->body_case == STRATA__RAFT__MESSAGE__BODY__NOT_SET || !type_known(type)) {
        rc = strata_error_set(err, STRATA_EINVAL, "message.body: no known type");
        goto out;
    }
    if ((rc = check_node("from", msg->from, err)) || (rc = check_node("to", msg->to, err)))
        goto out;
    m->type = (strata_raft_msg_type_t)type;
    m->from = msg->from;
    m->to = msg->to;
    m->term = msg->term;
    m->incarnation = msg->incarnation;
    switch (msg->body_case) {
    case STRATA__RAFT__MESSAGE__BODY_VOTE:
        m->last_seq = msg->vote->last_seq;
        m->last_term = msg->vote->last_term;
        m->pre_vote = msg->vote->pre_vote;
        m->transfer = msg->vote->transfer;
        break;
    case STRATA__RAFT__MESSAGE__BODY_VOTE_REPLY:
        m->granted = msg->vote_reply->granted;
        m->pre_vote = msg->vote_reply->pre_vote;
        break;
    case STRATA__RAFT__MESSAGE__BODY_APPEND: {
        const Strata__Raft__Append *a = msg->append;
        m->prev_seq = a->prev_seq;
        m->prev_term = a->prev_term;
        m->commit_seq = a->commit_seq;
        m->ctx = a->ctx;
        const uint8_t *f = NULL;
        if ((rc = locate_frames(buf, len, &a->frames, &f, err)))
            break;
        uint32_t n = 0;
        rc = check_frames(f, a->frames.len, a->prev_seq, a->prev_term, msg->term, entries, cap, &n,
                          err);
        if (rc)
            break;
        m->entries = n ? entries : NULL;
        m->n_entries = n;
        *frames = f;
        *frames_len = a->frames.len;
        break;
    }
    case STRATA__RAFT__MESSAGE__BODY_APPEND_REPLY:
        m->ok = msg->append_reply->ok;
        m->match_seq = msg->append_reply->match_seq;
        m->hint_seq = msg->append_reply->hint_seq;
        m->hint_term = msg->append_reply->hint_term;
        m->ctx = msg->append_reply->ctx;
        break;
    case STRATA__RAFT__MESSAGE__BODY_SNAPSHOT_OFFER:
        m->snap_seq = msg->snapshot_offer->snap_seq;
        m->snap_term = msg->snapshot_offer->snap_term;
        m->ctx = msg->snapshot_offer->ctx;
        break;
    default: /* timeout_now: the envelope says it all */
        break;
    }
out:
    if (rc) {
        memset(m, 0, sizeof *m);
        *frames = NULL;
        *frames_len = 0;
    }
    strata__raft__message__free_unpacked(msg, NULL);
    return rc;
}
