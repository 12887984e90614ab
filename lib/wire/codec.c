/* The protocol codec (proto/PROTOCOL.md): the only code that sees the
 * protobuf-c structs. Decode checks the frame size before protobuf-c parses
 * it and every field cap before it allocates anything of its own, so hostile
 * input costs at most one bounded parse and gets an error naming the field. */
#include "strata/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_fast.h"
#include "strata.pb-c.h"

/* Body cases are the op numbers shifted by this, in both Request and Reply. */
#define BODY_CASE_BASE 9

static const char *const op_names[] = {
    [STRATA_OP_NONE] = "none",
    [STRATA_OP_PUT] = "put",
    [STRATA_OP_DELETE] = "delete",
    [STRATA_OP_BATCH] = "batch",
    [STRATA_OP_GET] = "get",
    [STRATA_OP_MULTI_GET] = "multi_get",
    [STRATA_OP_SCAN] = "scan",
    [STRATA_OP_STATUS] = "status",
    [STRATA_OP_STATS] = "stats",
    [STRATA_OP_CONTROL] = "control",
    [STRATA_OP_RECORD] = "record",
    [STRATA_OP_REPLAY] = "replay",
    [STRATA_OP_SUBSCRIBE] = "subscribe",
    [STRATA_OP_ACK] = "ack",
    [STRATA_OP_SUBSCRIBERS] = "subscribers",
    [STRATA_OP_DELIVER] = "deliver",
    [STRATA_OP_SUBSCRIBER_DELETE] = "subscriber_delete",
    [STRATA_OP_SUBSCRIBER_RESET] = "subscriber_reset",
};

const char *strata_op_name(strata_op_t op)
{
    if ((unsigned)op < sizeof op_names / sizeof op_names[0])
        return op_names[op];
    return "unknown";
}

/* DELIVER exists only as a reply: the server pushes it. */
static bool op_is_known(strata_op_t op)
{
    return (op > STRATA_OP_NONE && op <= STRATA_OP_SUBSCRIBERS) ||
           op == STRATA_OP_SUBSCRIBER_DELETE || op == STRATA_OP_SUBSCRIBER_RESET;
}

static bool reply_op_is_known(strata_op_t op)
{
    return op_is_known(op) || op == STRATA_OP_DELIVER;
}

static ProtobufCBinaryData to_pb(strata_bytes_t bytes)
{
    return (ProtobufCBinaryData){.len = bytes.len, .data = (uint8_t *)bytes.data};
}

static strata_bytes_t from_pb(ProtobufCBinaryData bytes)
{
    return (strata_bytes_t){.data = bytes.data, .len = bytes.len};
}

static char *to_pb_string(const char *text)
{
    return (char *)(text ? text : "");
}

/* index < 0: the field is not an element of a repeated field. */
static int check_len(strata_error_t *err, const char *field, long index, size_t len, size_t cap)
{
    if (len <= cap)
        return 0;
    if (index < 0)
        return strata_error_set(err, STRATA_ETOOBIG, "%s: %zu bytes, cap %zu", field, len, cap);
    return strata_error_set(err, STRATA_ETOOBIG, "%s[%ld]: %zu bytes, cap %zu", field, index, len,
                            cap);
}

static int check_count(strata_error_t *err, const char *field, size_t count, size_t cap)
{
    if (count <= cap)
        return 0;
    return strata_error_set(err, STRATA_ETOOBIG, "%s: %zu items, cap %zu", field, count, cap);
}

/* The offset of the first byte that does not continue valid UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF), or len. */
static size_t utf8_bad(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint32_t min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

/* Protobuf strings must be UTF-8: strict readers (Python, Go, Java) refuse
 * a message that carries anything else. */
static int check_utf8(strata_error_t *err, const char *field, long index, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    size_t bad = utf8_bad((const uint8_t *)text, len);
    if (bad == len)
        return 0;
    if (index < 0)
        return strata_error_set(err, STRATA_EINVAL, "%s: not UTF-8 at byte %zu", field, bad);
    return strata_error_set(err, STRATA_EINVAL, "%s[%ld]: not UTF-8 at byte %zu", field, index,
                            bad);
}

static int check_text(strata_error_t *err, const char *field, long index, const char *text)
{
    int rc = check_len(err, field, index, text ? strlen(text) : 0, STRATA_PROTO_MAX_TEXT);
    return rc ? rc : check_utf8(err, field, index, text);
}

static int check_name(strata_error_t *err, const char *field, const char *name)
{
    int rc = check_len(err, field, -1, name ? strlen(name) : 0, STRATA_PROTO_MAX_NAME);
    return rc ? rc : check_utf8(err, field, -1, name);
}

static int check_topics(strata_error_t *err, const char *field, size_t n, char **topics)
{
    int rc = check_count(err, field, n, STRATA_PROTO_MAX_TOPICS);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = check_len(err, field, (long)i, strlen(topics[i]), STRATA_PROTO_MAX_TOPIC);
        if (!rc)
            rc = check_utf8(err, field, (long)i, topics[i]);
    }
    return rc;
}

/* Copies of outgoing strings made valid UTF-8, freed with the frame. */
typedef struct {
    char **items;
    size_t n, cap;
} fixes_t;

static bool fixes_room(fixes_t *f)
{
    if (f->n < f->cap)
        return true;
    size_t cap = f->cap * 2 + 8;
    char **grown = realloc(f->items, cap * sizeof *grown);
    if (!grown)
        return false;
    f->items = grown;
    f->cap = cap;
    return true;
}

/* text itself when it is UTF-8, else a copy with each offending byte
 * written as \xNN: a reply never carries bytes a strict reader refuses,
 * whatever a client sent or a file held. */
static const char *text_out(fixes_t *f, const char *text)
{
    if (!text)
        return "";
    size_t len = strlen(text);
    if (utf8_bad((const uint8_t *)text, len) == len)
        return text;
    if (!fixes_room(f))
        return "?";
    char *fixed = malloc(4 * len + 1);
    if (!fixed)
        return "?";
    size_t o = 0;
    const uint8_t *p = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        size_t good = utf8_bad(p + i, len - i);
        memcpy(fixed + o, p + i, good);
        o += good;
        i += good;
        if (i < len)
            o += (size_t)snprintf(fixed + o, 5, "\\x%02X", p[i++]);
    }
    fixed[o] = '\0';
    f->items[f->n++] = fixed;
    return fixed;
}

static void fixes_free(fixes_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->items[i]);
    free(f->items);
}

/* Packs msg into a fresh buffer once its size is known to fit the cap. */
static int pack_frame(const ProtobufCMessage *msg, const char *what, uint8_t **buf, size_t *len,
                      strata_error_t *err)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > STRATA_PROTO_MAX_MESSAGE)
        return strata_error_set(err, STRATA_ETOOBIG, "%s: %zu bytes, cap %u", what, size,
                                STRATA_PROTO_MAX_MESSAGE);
    uint8_t *out = malloc(size ? size : 1);
    if (!out)
        return strata_error_set(err, STRATA_ENOMEM, "%s: %zu bytes", what, size);
    protobuf_c_message_pack(msg, out);
    *buf = out;
    *len = size;
    return 0;
}

static int check_frame_size(size_t len, const char *what, strata_error_t *err)
{
    if (len > STRATA_PROTO_MAX_MESSAGE)
        return strata_error_set(err, STRATA_ETOOBIG, "%s: %zu bytes, cap %u", what, len,
                                STRATA_PROTO_MAX_MESSAGE);
    return 0;
}

static int check_version(uint32_t version, const char *what, strata_error_t *err)
{
    if (version != STRATA_PROTO_VERSION)
        return strata_error_set(err, STRATA_EVERSION, "%s.version: %u unknown, this side speaks %u",
                                what, version, STRATA_PROTO_VERSION);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

int strata_request_encode(const strata_request_t *req, uint8_t **buf, size_t *len,
                          strata_error_t *err)
{
    if (!op_is_known(req->op))
        return strata_error_set(err, STRATA_EINVAL, "request.op: %d unknown", (int)req->op);
    if (req->durability != STRATA_DURABILITY_SYNC && req->durability != STRATA_DURABILITY_ASYNC)
        return strata_error_set(err, STRATA_EINVAL, "request.durability: %d unknown",
                                (int)req->durability);
    if ((unsigned)req->replication > STRATA_REPLICATION_ASYNC)
        return strata_error_set(err, STRATA_EINVAL, "request.replication: %d unknown",
                                (int)req->replication);

    Strata__Request msg = STRATA__REQUEST__INIT;
    msg.version = req->version ? req->version : STRATA_PROTO_VERSION;
    msg.request_id = req->request_id;
    msg.durability = (Strata__Durability)req->durability;
    msg.replication = (Strata__Replication)req->replication;
    msg.min_seq = req->min_seq;
    msg.session = req->session;
    msg.body_case = (Strata__Request__BodyCase)(req->op + BODY_CASE_BASE);

    Strata__PutRequest put = STRATA__PUT_REQUEST__INIT;
    Strata__DeleteRequest del = STRATA__DELETE_REQUEST__INIT;
    Strata__BatchRequest batch = STRATA__BATCH_REQUEST__INIT;
    Strata__GetRequest get = STRATA__GET_REQUEST__INIT;
    Strata__MultiGetRequest multi_get = STRATA__MULTI_GET_REQUEST__INIT;
    Strata__ScanRequest scan = STRATA__SCAN_REQUEST__INIT;
    Strata__StatusRequest status = STRATA__STATUS_REQUEST__INIT;
    Strata__StatsRequest stats = STRATA__STATS_REQUEST__INIT;
    Strata__ControlRequest control = STRATA__CONTROL_REQUEST__INIT;
    Strata__InstallCompaction install = STRATA__INSTALL_COMPACTION__INIT;
    Strata__RecordRequest record = STRATA__RECORD_REQUEST__INIT;
    Strata__ReplayRequest replay = STRATA__REPLAY_REQUEST__INIT;
    Strata__SubscribeRequest subscribe = STRATA__SUBSCRIBE_REQUEST__INIT;
    Strata__AckRequest ack = STRATA__ACK_REQUEST__INIT;
    Strata__SubscribersRequest subscribers = STRATA__SUBSCRIBERS_REQUEST__INIT;
    Strata__SubscriberDeleteRequest sub_delete = STRATA__SUBSCRIBER_DELETE_REQUEST__INIT;
    Strata__SubscriberResetRequest sub_reset = STRATA__SUBSCRIBER_RESET_REQUEST__INIT;
    Strata__BatchOp *ops = NULL;
    Strata__BatchOp **op_ptrs = NULL;
    ProtobufCBinaryData *keys = NULL;
    int rc = 0;

    switch (req->op) {
    case STRATA_OP_PUT:
        put.key = to_pb(req->key);
        put.value = to_pb(req->value);
        msg.put = &put;
        break;
    case STRATA_OP_DELETE:
        del.key = to_pb(req->key);
        msg.delete_ = &del;
        break;
    case STRATA_OP_BATCH:
        ops = calloc(req->n_ops ? req->n_ops : 1, sizeof *ops);
        op_ptrs = calloc(req->n_ops ? req->n_ops : 1, sizeof *op_ptrs);
        if (!ops || !op_ptrs) {
            rc = strata_error_set(err, STRATA_ENOMEM, "batch: %zu ops", req->n_ops);
            goto done;
        }
        for (size_t i = 0; i < req->n_ops; i++) {
            const strata_batch_op_t *op = &req->ops[i];
            if (op->kind != STRATA_BATCH_PUT && op->kind != STRATA_BATCH_DELETE) {
                rc = strata_error_set(err, STRATA_EINVAL, "batch.ops[%zu].kind: %d unknown", i,
                                      (int)op->kind);
                goto done;
            }
            strata__batch_op__init(&ops[i]);
            ops[i].kind = (Strata__BatchOpKind)op->kind;
            ops[i].key = to_pb(op->key);
            ops[i].value = to_pb(op->value);
            op_ptrs[i] = &ops[i];
        }
        batch.n_ops = req->n_ops;
        batch.ops = op_ptrs;
        msg.batch = &batch;
        break;
    case STRATA_OP_GET:
        get.key = to_pb(req->key);
        msg.get = &get;
        break;
    case STRATA_OP_MULTI_GET:
        keys = calloc(req->n_keys ? req->n_keys : 1, sizeof *keys);
        if (!keys) {
            rc = strata_error_set(err, STRATA_ENOMEM, "multi_get: %zu keys", req->n_keys);
            goto done;
        }
        for (size_t i = 0; i < req->n_keys; i++)
            keys[i] = to_pb(req->keys[i]);
        multi_get.n_keys = req->n_keys;
        multi_get.keys = keys;
        msg.multi_get = &multi_get;
        break;
    case STRATA_OP_SCAN:
        scan.start = to_pb(req->scan_start);
        scan.end = to_pb(req->scan_end);
        scan.cursor = to_pb(req->scan_cursor);
        scan.limit = req->scan_limit;
        msg.scan = &scan;
        break;
    case STRATA_OP_STATUS:
        msg.status = &status;
        break;
    case STRATA_OP_STATS:
        msg.stats = &stats;
        break;
    case STRATA_OP_CONTROL:
        control.verb = to_pb_string(req->verb);
        /* protobuf-c's pack only reads the strings: the cast drops const, not ownership. */
        control.n_args = req->n_args;
        control.args = (char **)req->args;
        if (req->install) {
            /* As for args: pack only reads the lists. */
            install.level = req->install->level;
            install.n_inputs = req->install->n_inputs[0];
            install.inputs = (uint64_t *)req->install->inputs[0];
            install.n_next_inputs = req->install->n_inputs[1];
            install.next_inputs = (uint64_t *)req->install->inputs[1];
            install.n_outputs = req->install->n_outputs;
            install.outputs = (char **)req->install->outputs;
            install.cpu_ns = req->install->cpu_ns;
            control.install = &install;
        }
        msg.control = &control;
        break;
    case STRATA_OP_RECORD:
        record.value = to_pb(req->value);
        msg.record = &record;
        break;
    /* As for control args: pack reads the topic strings, the casts drop const only. */
    case STRATA_OP_REPLAY:
        replay.n_topics = req->n_topics;
        replay.topics = (char **)req->topics;
        replay.from_seq = req->seq;
        replay.from_time_ns = req->from_time_ns;
        replay.to_seq = req->to_seq;
        replay.max_entries = req->max_entries;
        replay.max_bytes = req->max_bytes;
        msg.replay = &replay;
        break;
    case STRATA_OP_SUBSCRIBE:
        subscribe.name = to_pb_string(req->name);
        subscribe.n_topics = req->n_topics;
        subscribe.topics = (char **)req->topics;
        subscribe.window = req->window;
        subscribe.from_seq = req->seq;
        msg.subscribe = &subscribe;
        break;
    case STRATA_OP_ACK:
        ack.name = to_pb_string(req->name);
        ack.seq = req->seq;
        msg.ack = &ack;
        break;
    case STRATA_OP_SUBSCRIBERS:
        msg.subscribers = &subscribers;
        break;
    case STRATA_OP_SUBSCRIBER_DELETE:
        sub_delete.name = to_pb_string(req->name);
        msg.subscriber_delete = &sub_delete;
        break;
    case STRATA_OP_SUBSCRIBER_RESET:
        sub_reset.name = to_pb_string(req->name);
        sub_reset.to = (Strata__ResetTo)req->reset_to;
        sub_reset.seq = req->seq;
        msg.subscriber_reset = &sub_reset;
        break;
    case STRATA_OP_DELIVER:
    case STRATA_OP_NONE:
        break;
    }
    rc = pack_frame(&msg.base, "request", buf, len, err);
done:
    free(ops);
    free(op_ptrs);
    free(keys);
    return rc;
}

/* Every cap of a parsed request, checked before we allocate anything. */
static int check_request_caps(const Strata__Request *msg, strata_error_t *err)
{
    int rc = 0;
    switch (msg->body_case) {
    case STRATA__REQUEST__BODY_PUT:
        if ((rc = check_len(err, "put.key", -1, msg->put->key.len, STRATA_PROTO_MAX_KEY)))
            return rc;
        return check_len(err, "put.value", -1, msg->put->value.len, STRATA_PROTO_MAX_VALUE);
    case STRATA__REQUEST__BODY_DELETE:
        return check_len(err, "delete.key", -1, msg->delete_->key.len, STRATA_PROTO_MAX_KEY);
    case STRATA__REQUEST__BODY_BATCH:
        if ((rc = check_count(err, "batch.ops", msg->batch->n_ops, STRATA_PROTO_MAX_BATCH_OPS)))
            return rc;
        for (size_t i = 0; i < msg->batch->n_ops; i++) {
            const Strata__BatchOp *op = msg->batch->ops[i];
            if (op->kind != STRATA__BATCH_OP_KIND__BATCH_OP_PUT &&
                op->kind != STRATA__BATCH_OP_KIND__BATCH_OP_DELETE)
                return strata_error_set(err, STRATA_EINVAL, "batch.ops[%zu].kind: %d unknown", i,
                                        (int)op->kind);
            if ((rc = check_len(err, "batch.ops.key", (long)i, op->key.len, STRATA_PROTO_MAX_KEY)))
                return rc;
            if ((rc = check_len(err, "batch.ops.value", (long)i, op->value.len,
                                STRATA_PROTO_MAX_VALUE)))
                return rc;
        }
        return 0;
    case STRATA__REQUEST__BODY_GET:
        return check_len(err, "get.key", -1, msg->get->key.len, STRATA_PROTO_MAX_KEY);
    case STRATA__REQUEST__BODY_MULTI_GET:
        if ((rc = check_count(err, "multi_get.keys", msg->multi_get->n_keys,
                              STRATA_PROTO_MAX_MULTI_GET)))
            return rc;
        for (size_t i = 0; i < msg->multi_get->n_keys; i++)
            if ((rc = check_len(err, "multi_get.keys", (long)i, msg->multi_get->keys[i].len,
                                STRATA_PROTO_MAX_KEY)))
                return rc;
        return 0;
    case STRATA__REQUEST__BODY_SCAN:
        if ((rc = check_len(err, "scan.start", -1, msg->scan->start.len, STRATA_PROTO_MAX_KEY)) ||
            (rc = check_len(err, "scan.end", -1, msg->scan->end.len, STRATA_PROTO_MAX_KEY)) ||
            (rc =
                 check_len(err, "scan.cursor", -1, msg->scan->cursor.len, STRATA_PROTO_MAX_CURSOR)))
            return rc;
        if (msg->scan->limit > STRATA_PROTO_MAX_SCAN_LIMIT)
            return strata_error_set(err, STRATA_ETOOBIG, "scan.limit: %u, cap %u", msg->scan->limit,
                                    STRATA_PROTO_MAX_SCAN_LIMIT);
        return 0;
    case STRATA__REQUEST__BODY_STATUS:
    case STRATA__REQUEST__BODY_STATS:
        return 0;
    case STRATA__REQUEST__BODY_CONTROL:
        if ((rc = check_text(err, "control.verb", -1, msg->control->verb)) ||
            (rc = check_count(err, "control.args", msg->control->n_args, STRATA_PROTO_MAX_ARGS)))
            return rc;
        for (size_t i = 0; i < msg->control->n_args; i++)
            if ((rc = check_text(err, "control.args", (long)i, msg->control->args[i])))
                return rc;
        const Strata__InstallCompaction *in = msg->control->install;
        if (!in)
            return 0;
        if ((rc = check_count(err, "control.install.inputs", in->n_inputs,
                              STRATA_PROTO_MAX_INSTALL)) ||
            (rc = check_count(err, "control.install.next_inputs", in->n_next_inputs,
                              STRATA_PROTO_MAX_INSTALL)) ||
            (rc = check_count(err, "control.install.outputs", in->n_outputs,
                              STRATA_PROTO_MAX_INSTALL)))
            return rc;
        for (size_t i = 0; i < in->n_outputs; i++)
            if ((rc = check_text(err, "control.install.outputs", (long)i, in->outputs[i])))
                return rc;
        return 0;
    case STRATA__REQUEST__BODY_RECORD:
        return check_len(err, "record.value", -1, msg->record->value.len, STRATA_PROTO_MAX_VALUE);
    case STRATA__REQUEST__BODY_REPLAY:
        return check_topics(err, "replay.topics", msg->replay->n_topics, msg->replay->topics);
    case STRATA__REQUEST__BODY_SUBSCRIBE:
        if ((rc = check_name(err, "subscribe.name", msg->subscribe->name)))
            return rc;
        return check_topics(err, "subscribe.topics", msg->subscribe->n_topics,
                            msg->subscribe->topics);
    case STRATA__REQUEST__BODY_ACK:
        return check_name(err, "ack.name", msg->ack->name);
    case STRATA__REQUEST__BODY_SUBSCRIBERS:
        return 0;
    case STRATA__REQUEST__BODY_SUBSCRIBER_DELETE:
        return check_name(err, "subscriber_delete.name", msg->subscriber_delete->name);
    case STRATA__REQUEST__BODY_SUBSCRIBER_RESET:
        if ((unsigned)msg->subscriber_reset->to > STRATA__RESET_TO__RESET_TO_LATEST)
            return strata_error_set(err, STRATA_EINVAL, "subscriber_reset.to: %d unknown",
                                    (int)msg->subscriber_reset->to);
        return check_name(err, "subscriber_reset.name", msg->subscriber_reset->name);
    default:
        return strata_error_set(err, STRATA_EINVAL, "request: no body (case %d)",
                                (int)msg->body_case);
    }
}

int strata_request_decode(const void *buf, size_t len, strata_request_t *out, strata_error_t *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_frame_size(len, "request", err);
    if (rc)
        return rc;
    Strata__Request *msg = strata__request__unpack(NULL, len, buf);
    if (!msg)
        return strata_error_set(err, STRATA_EINVAL, "request: malformed frame (%zu bytes)", len);
    out->decoded_ = msg;
    out->version = msg->version;
    out->request_id = msg->request_id;
    if ((rc = check_version(msg->version, "request", err)))
        return rc;
    if (msg->durability != STRATA__DURABILITY__DURABILITY_SYNC &&
        msg->durability != STRATA__DURABILITY__DURABILITY_ASYNC)
        return strata_error_set(err, STRATA_EINVAL, "request.durability: %d unknown",
                                (int)msg->durability);
    if ((unsigned)msg->replication > STRATA__REPLICATION__REPLICATION_ASYNC)
        return strata_error_set(err, STRATA_EINVAL, "request.replication: %d unknown",
                                (int)msg->replication);
    if ((rc = check_request_caps(msg, err)))
        return rc;

    out->durability = (strata_durability_t)msg->durability;
    out->replication = (strata_replication_t)msg->replication;
    out->min_seq = msg->min_seq;
    out->session = msg->session;
    out->op = (strata_op_t)(msg->body_case - BODY_CASE_BASE);
    switch (msg->body_case) {
    case STRATA__REQUEST__BODY_PUT:
        out->key = from_pb(msg->put->key);
        out->value = from_pb(msg->put->value);
        break;
    case STRATA__REQUEST__BODY_DELETE:
        out->key = from_pb(msg->delete_->key);
        break;
    case STRATA__REQUEST__BODY_BATCH: {
        size_t n = msg->batch->n_ops;
        strata_batch_op_t *ops = calloc(n ? n : 1, sizeof *ops);
        if (!ops)
            return strata_error_set(err, STRATA_ENOMEM, "batch: %zu ops", n);
        for (size_t i = 0; i < n; i++) {
            ops[i].kind = (strata_batch_kind_t)msg->batch->ops[i]->kind;
            ops[i].key = from_pb(msg->batch->ops[i]->key);
            ops[i].value = from_pb(msg->batch->ops[i]->value);
        }
        out->ops = ops;
        out->n_ops = n;
        break;
    }
    case STRATA__REQUEST__BODY_GET:
        out->key = from_pb(msg->get->key);
        break;
    case STRATA__REQUEST__BODY_MULTI_GET: {
        size_t n = msg->multi_get->n_keys;
        strata_bytes_t *keys = calloc(n ? n : 1, sizeof *keys);
        if (!keys)
            return strata_error_set(err, STRATA_ENOMEM, "multi_get: %zu keys", n);
        for (size_t i = 0; i < n; i++)
            keys[i] = from_pb(msg->multi_get->keys[i]);
        out->keys = keys;
        out->n_keys = n;
        break;
    }
    case STRATA__REQUEST__BODY_SCAN:
        out->scan_start = from_pb(msg->scan->start);
        out->scan_end = from_pb(msg->scan->end);
        out->scan_cursor = from_pb(msg->scan->cursor);
        out->scan_limit = msg->scan->limit;
        break;
    case STRATA__REQUEST__BODY_CONTROL:
        out->verb = msg->control->verb;
        out->args = (const char *const *)msg->control->args;
        out->n_args = msg->control->n_args;
        if (msg->control->install) {
            const Strata__InstallCompaction *in = msg->control->install;
            strata_install_t *install = calloc(1, sizeof *install);
            if (!install)
                return strata_error_set(err, STRATA_ENOMEM, "request: out of memory");
            install->level = in->level;
            install->inputs[0] = in->inputs;
            install->n_inputs[0] = in->n_inputs;
            install->inputs[1] = in->next_inputs;
            install->n_inputs[1] = in->n_next_inputs;
            install->outputs = (const char *const *)in->outputs;
            install->n_outputs = in->n_outputs;
            install->cpu_ns = in->cpu_ns;
            out->install = install;
        }
        break;
    case STRATA__REQUEST__BODY_RECORD:
        out->value = from_pb(msg->record->value);
        break;
    case STRATA__REQUEST__BODY_REPLAY:
        out->topics = (const char *const *)msg->replay->topics;
        out->n_topics = msg->replay->n_topics;
        out->seq = msg->replay->from_seq;
        out->from_time_ns = msg->replay->from_time_ns;
        out->to_seq = msg->replay->to_seq;
        out->max_entries = msg->replay->max_entries;
        out->max_bytes = msg->replay->max_bytes;
        break;
    case STRATA__REQUEST__BODY_SUBSCRIBE:
        out->name = msg->subscribe->name;
        out->topics = (const char *const *)msg->subscribe->topics;
        out->n_topics = msg->subscribe->n_topics;
        out->window = msg->subscribe->window;
        out->seq = msg->subscribe->from_seq;
        break;
    case STRATA__REQUEST__BODY_ACK:
        out->name = msg->ack->name;
        out->seq = msg->ack->seq;
        break;
    case STRATA__REQUEST__BODY_SUBSCRIBER_DELETE:
        out->name = msg->subscriber_delete->name;
        break;
    case STRATA__REQUEST__BODY_SUBSCRIBER_RESET:
        out->name = msg->subscriber_reset->name;
        out->reset_to = (strata_reset_to_t)msg->subscriber_reset->to;
        out->seq = msg->subscriber_reset->seq;
        break;
    default:
        break;
    }
    return 0;
}

int strata_request_decode_view(const void *buf, size_t len, strata_request_t *out,
                               strata_error_t *err)
{
    if (codec_fast_request(buf, len, out))
        return 0;
    return strata_request_decode(buf, len, out, err);
}

void strata_request_clear(strata_request_t *req)
{
    if (!req)
        return;
    if (req->decoded_) {
        /* Only decode sets decoded_, and then ops/keys/install are ours too. */
        free((void *)req->ops);
        free((void *)req->keys);
        free((void *)req->install);
        strata__request__free_unpacked(req->decoded_, NULL);
    }
    memset(req, 0, sizeof *req);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

/* A success carries its op's body; an error carries its reason. Both make a
 * truncated reply fail to decode instead of reading as an empty success. */
static int check_reply_shape(int32_t status, bool has_body, const char *message,
                             strata_error_t *err)
{
    if (status == 0 && !has_body)
        return strata_error_set(err, STRATA_EINVAL, "reply: status 0 without a body");
    if (status > 0)
        return strata_error_set(err, STRATA_EINVAL, "reply.status: %d is not an error code",
                                (int)status);
    if (status < 0 && (!message || !message[0]))
        return strata_error_set(err, STRATA_EINVAL, "reply.message: empty for status %d",
                                (int)status);
    return 0;
}

static void to_pb_value(Strata__Value *pb, const strata_value_t *value)
{
    strata__value__init(pb);
    pb->found = value->found;
    pb->value = to_pb(value->value);
}

int strata_reply_encode(const strata_reply_t *rep, uint8_t **buf, size_t *len, strata_error_t *err)
{
    int rc;
    if (codec_fast_reply(rep, buf, len, &rc, err))
        return rc;
    return codec_reply_encode_pb(rep, buf, len, err);
}

int codec_reply_encode_pb(const strata_reply_t *rep, uint8_t **buf, size_t *len,
                          strata_error_t *err)
{
    if (rep->op != STRATA_OP_NONE && !reply_op_is_known(rep->op))
        return strata_error_set(err, STRATA_EINVAL, "reply.op: %d unknown", (int)rep->op);
    int rc = check_reply_shape(rep->status, rep->op != STRATA_OP_NONE, rep->message, err);
    if (rc)
        return rc;
    if (rep->op == STRATA_OP_GET && rep->n_values != 1)
        return strata_error_set(err, STRATA_EINVAL, "get reply: %zu values, needs 1",
                                rep->n_values);

    Strata__Reply msg = STRATA__REPLY__INIT;
    msg.version = rep->version ? rep->version : STRATA_PROTO_VERSION;
    msg.request_id = rep->request_id;
    msg.status = rep->status;
    msg.applied_seq = rep->applied_seq;
    fixes_t fixes = {0};
    msg.message = (char *)text_out(&fixes, rep->message);
    msg.body_case = rep->op == STRATA_OP_NONE ? STRATA__REPLY__BODY__NOT_SET
                                              : (Strata__Reply__BodyCase)(rep->op + BODY_CASE_BASE);

    Strata__WriteReply write = STRATA__WRITE_REPLY__INIT;
    Strata__GetReply get = STRATA__GET_REPLY__INIT;
    Strata__MultiGetReply multi_get = STRATA__MULTI_GET_REPLY__INIT;
    Strata__ScanReply scan = STRATA__SCAN_REPLY__INIT;
    Strata__StatusReply status = STRATA__STATUS_REPLY__INIT;
    Strata__StatsReply stats = STRATA__STATS_REPLY__INIT;
    Strata__ControlReply control = STRATA__CONTROL_REPLY__INIT;
    Strata__ReplayReply replay = STRATA__REPLAY_REPLY__INIT;
    Strata__SubscribeReply subscribe = STRATA__SUBSCRIBE_REPLY__INIT;
    Strata__AckReply ack = STRATA__ACK_REPLY__INIT;
    Strata__SubscribersReply subscribers = STRATA__SUBSCRIBERS_REPLY__INIT;
    Strata__DeliverReply deliver = STRATA__DELIVER_REPLY__INIT;
    Strata__SubscriberInfo *infos = NULL;
    Strata__SubscriberInfo **info_ptrs = NULL;
    Strata__Value get_value;
    Strata__Value *values = NULL;
    Strata__Value **value_ptrs = NULL;
    Strata__Entry *entries = NULL;
    Strata__Entry **entry_ptrs = NULL;
    Strata__Pair *pairs = NULL;
    Strata__Pair **pair_ptrs = NULL;

    switch (rep->op) {
    case STRATA_OP_PUT:
    case STRATA_OP_DELETE:
    case STRATA_OP_BATCH:
    case STRATA_OP_RECORD:
        write.seq = rep->seq;
        msg.put = &write; /* the union's members share one slot */
        break;
    case STRATA_OP_GET:
        to_pb_value(&get_value, &rep->values[0]);
        get.value = &get_value;
        msg.get = &get;
        break;
    case STRATA_OP_MULTI_GET: {
        size_t n = rep->n_values;
        values = calloc(n ? n : 1, sizeof *values);
        value_ptrs = calloc(n ? n : 1, sizeof *value_ptrs);
        if (!values || !value_ptrs) {
            rc = strata_error_set(err, STRATA_ENOMEM, "multi_get reply: %zu values", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            to_pb_value(&values[i], &rep->values[i]);
            value_ptrs[i] = &values[i];
        }
        multi_get.n_values = n;
        multi_get.values = value_ptrs;
        msg.multi_get = &multi_get;
        break;
    }
    case STRATA_OP_SCAN: {
        size_t n = rep->n_entries;
        entries = calloc(n ? n : 1, sizeof *entries);
        entry_ptrs = calloc(n ? n : 1, sizeof *entry_ptrs);
        if (!entries || !entry_ptrs) {
            rc = strata_error_set(err, STRATA_ENOMEM, "scan reply: %zu entries", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            strata__entry__init(&entries[i]);
            entries[i].key = to_pb(rep->entries[i].key);
            entries[i].value = to_pb(rep->entries[i].value);
            entry_ptrs[i] = &entries[i];
        }
        scan.n_entries = n;
        scan.entries = entry_ptrs;
        scan.next_cursor = to_pb(rep->next_cursor);
        msg.scan = &scan;
        break;
    }
    case STRATA_OP_STATUS:
        status.role = (char *)text_out(&fixes, rep->role);
        status.term = rep->term;
        status.last_seq = rep->last_seq;
        status.durable_seq = rep->durable_seq;
        msg.status_info = &status;
        break;
    case STRATA_OP_STATS:
    case STRATA_OP_CONTROL: {
        size_t n = rep->n_pairs;
        pairs = calloc(n ? n : 1, sizeof *pairs);
        pair_ptrs = calloc(n ? n : 1, sizeof *pair_ptrs);
        if (!pairs || !pair_ptrs) {
            rc = strata_error_set(err, STRATA_ENOMEM, "%s reply: %zu pairs",
                                  strata_op_name(rep->op), n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            strata__pair__init(&pairs[i]);
            pairs[i].name = (char *)text_out(&fixes, rep->pairs[i].name);
            pairs[i].value = (char *)text_out(&fixes, rep->pairs[i].value);
            pair_ptrs[i] = &pairs[i];
        }
        if (rep->op == STRATA_OP_STATS) {
            stats.n_pairs = n;
            stats.pairs = pair_ptrs;
            msg.stats = &stats;
        } else {
            control.n_pairs = n;
            control.pairs = pair_ptrs;
            msg.control = &control;
        }
        break;
    }
    case STRATA_OP_REPLAY:
        replay.entries = to_pb(rep->entries_blob);
        replay.count = rep->count;
        replay.next_seq = rep->next_seq;
        replay.published_seq = rep->published_seq;
        replay.done = rep->done;
        msg.replay = &replay;
        break;
    case STRATA_OP_SUBSCRIBE:
    case STRATA_OP_SUBSCRIBER_DELETE:
    case STRATA_OP_SUBSCRIBER_RESET:
        subscribe.acked_seq = rep->acked_seq;
        subscribe.published_seq = rep->published_seq;
        if (rep->op == STRATA_OP_SUBSCRIBE)
            msg.subscribe = &subscribe;
        else if (rep->op == STRATA_OP_SUBSCRIBER_DELETE)
            msg.subscriber_delete = &subscribe;
        else
            msg.subscriber_reset = &subscribe;
        break;
    case STRATA_OP_ACK:
        ack.durable_seq = rep->durable_seq;
        msg.ack = &ack;
        break;
    case STRATA_OP_DELIVER:
        deliver.entries = to_pb(rep->entries_blob);
        deliver.count = rep->count;
        deliver.first_seq = rep->first_seq;
        deliver.last_seq = rep->last_seq;
        msg.deliver = &deliver;
        break;
    case STRATA_OP_SUBSCRIBERS: {
        size_t n = rep->n_subscribers;
        infos = calloc(n ? n : 1, sizeof *infos);
        info_ptrs = calloc(n ? n : 1, sizeof *info_ptrs);
        if (!infos || !info_ptrs) {
            rc = strata_error_set(err, STRATA_ENOMEM, "subscribers reply: %zu", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const strata_subscriber_info_t *in = &rep->subscribers[i];
            strata__subscriber_info__init(&infos[i]);
            infos[i].name = (char *)text_out(&fixes, in->name);
            infos[i].n_topics = in->n_topics;
            infos[i].topics = (char **)in->topics;
            for (size_t t = 0; t < in->n_topics; t++)
                if (text_out(&fixes, in->topics[t]) != in->topics[t]) {
                    /* A name stored before names were checked: show it fixed. */
                    char **fixed = calloc(in->n_topics, sizeof *fixed);
                    if (!fixed || !fixes_room(&fixes)) {
                        free(fixed);
                        infos[i].n_topics = 0;
                        break;
                    }
                    fixes.items[fixes.n++] = (char *)fixed;
                    for (size_t u = 0; u < in->n_topics; u++)
                        fixed[u] = (char *)text_out(&fixes, in->topics[u]);
                    infos[i].topics = fixed;
                    break;
                }
            infos[i].acked_seq = in->acked_seq;
            infos[i].lag_records = in->lag_records;
            infos[i].lag_ms = in->lag_ms;
            infos[i].connected = in->connected;
            infos[i].unacked = in->unacked;
            infos[i].resends = in->resends;
            info_ptrs[i] = &infos[i];
        }
        subscribers.n_subscribers = n;
        subscribers.subscribers = info_ptrs;
        msg.subscribers = &subscribers;
        break;
    }
    case STRATA_OP_NONE:
        break;
    }
    rc = pack_frame(&msg.base, "reply", buf, len, err);
done:
    fixes_free(&fixes);
    free(infos);
    free(info_ptrs);
    free(values);
    free(value_ptrs);
    free(entries);
    free(entry_ptrs);
    free(pairs);
    free(pair_ptrs);
    return rc;
}

static int check_value(strata_error_t *err, const char *field, long index,
                       const Strata__Value *value)
{
    return check_len(err, field, index, value ? value->value.len : 0, STRATA_PROTO_MAX_VALUE);
}

static int check_pairs(strata_error_t *err, const char *field, size_t n, Strata__Pair **pairs)
{
    int rc = check_count(err, field, n, STRATA_PROTO_MAX_PAIRS);
    for (size_t i = 0; !rc && i < n; i++)
        if (!(rc = check_text(err, field, (long)i, pairs[i]->name)))
            rc = check_text(err, field, (long)i, pairs[i]->value);
    return rc;
}

static int check_reply_caps(const Strata__Reply *msg, strata_error_t *err)
{
    int rc = check_text(err, "reply.message", -1, msg->message);
    if (rc || (rc = check_reply_shape(msg->status, msg->body_case != STRATA__REPLY__BODY__NOT_SET,
                                      msg->message, err)))
        return rc;
    switch (msg->body_case) {
    case STRATA__REPLY__BODY__NOT_SET:
    case STRATA__REPLY__BODY_PUT:
    case STRATA__REPLY__BODY_DELETE:
    case STRATA__REPLY__BODY_BATCH:
    case STRATA__REPLY__BODY_RECORD:
        return 0;
    case STRATA__REPLY__BODY_GET:
        return check_value(err, "get.value", -1, msg->get->value);
    case STRATA__REPLY__BODY_MULTI_GET:
        rc = check_count(err, "multi_get.values", msg->multi_get->n_values,
                         STRATA_PROTO_MAX_MULTI_GET);
        for (size_t i = 0; !rc && i < msg->multi_get->n_values; i++)
            rc = check_value(err, "multi_get.values", (long)i, msg->multi_get->values[i]);
        return rc;
    case STRATA__REPLY__BODY_SCAN:
        rc = check_count(err, "scan.entries", msg->scan->n_entries, STRATA_PROTO_MAX_SCAN_LIMIT);
        if (!rc)
            rc = check_len(err, "scan.next_cursor", -1, msg->scan->next_cursor.len,
                           STRATA_PROTO_MAX_CURSOR);
        for (size_t i = 0; !rc && i < msg->scan->n_entries; i++)
            if (!(rc = check_len(err, "scan.entries.key", (long)i, msg->scan->entries[i]->key.len,
                                 STRATA_PROTO_MAX_KEY)))
                rc = check_len(err, "scan.entries.value", (long)i, msg->scan->entries[i]->value.len,
                               STRATA_PROTO_MAX_VALUE);
        return rc;
    case STRATA__REPLY__BODY_STATUS_INFO:
        return check_text(err, "status.role", -1, msg->status_info->role);
    case STRATA__REPLY__BODY_STATS:
        return check_pairs(err, "stats.pairs", msg->stats->n_pairs, msg->stats->pairs);
    case STRATA__REPLY__BODY_CONTROL:
        return check_pairs(err, "control.pairs", msg->control->n_pairs, msg->control->pairs);
    case STRATA__REPLY__BODY_REPLAY:
    case STRATA__REPLY__BODY_SUBSCRIBE:
    case STRATA__REPLY__BODY_SUBSCRIBER_DELETE:
    case STRATA__REPLY__BODY_SUBSCRIBER_RESET:
    case STRATA__REPLY__BODY_ACK:
    case STRATA__REPLY__BODY_DELIVER:
        /* The entries blob is bounded by the frame cap checked before the parse. */
        return 0;
    case STRATA__REPLY__BODY_SUBSCRIBERS:
        rc = check_count(err, "subscribers", msg->subscribers->n_subscribers,
                         STRATA_PROTO_MAX_SUBSCRIBERS);
        for (size_t i = 0; !rc && i < msg->subscribers->n_subscribers; i++) {
            const Strata__SubscriberInfo *in = msg->subscribers->subscribers[i];
            if (!(rc = check_name(err, "subscribers.name", in->name)))
                rc = check_topics(err, "subscribers.topics", in->n_topics, in->topics);
        }
        return rc;
    default:
        return strata_error_set(err, STRATA_EINVAL, "reply: unknown body (case %d)",
                                (int)msg->body_case);
    }
}

static strata_value_t from_pb_value(const Strata__Value *pb)
{
    if (!pb)
        return (strata_value_t){.found = false};
    return (strata_value_t){.found = pb->found, .value = from_pb(pb->value)};
}

static strata_pair_t *from_pb_pairs(size_t n, Strata__Pair **pb)
{
    strata_pair_t *pairs = calloc(n ? n : 1, sizeof *pairs);
    for (size_t i = 0; pairs && i < n; i++)
        pairs[i] = (strata_pair_t){.name = pb[i]->name, .value = pb[i]->value};
    return pairs;
}

int strata_reply_decode(const void *buf, size_t len, strata_reply_t *out, strata_error_t *err)
{
    if (codec_fast_reply_decode(buf, len, out))
        return 0;
    return codec_reply_decode_pb(buf, len, out, err);
}

int codec_reply_decode_pb(const void *buf, size_t len, strata_reply_t *out, strata_error_t *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_frame_size(len, "reply", err);
    if (rc)
        return rc;
    Strata__Reply *msg = strata__reply__unpack(NULL, len, buf);
    if (!msg)
        return strata_error_set(err, STRATA_EINVAL, "reply: malformed frame (%zu bytes)", len);
    out->decoded_ = msg;
    out->version = msg->version;
    out->request_id = msg->request_id;
    if ((rc = check_version(msg->version, "reply", err)) || (rc = check_reply_caps(msg, err)))
        return rc;

    out->status = msg->status;
    out->message = msg->message;
    out->applied_seq = msg->applied_seq;
    out->op = msg->body_case == STRATA__REPLY__BODY__NOT_SET
                  ? STRATA_OP_NONE
                  : (strata_op_t)(msg->body_case - BODY_CASE_BASE);
    switch (msg->body_case) {
    case STRATA__REPLY__BODY_PUT:
    case STRATA__REPLY__BODY_DELETE:
    case STRATA__REPLY__BODY_BATCH:
    case STRATA__REPLY__BODY_RECORD:
        out->seq = msg->put->seq;
        break;
    case STRATA__REPLY__BODY_GET:
    case STRATA__REPLY__BODY_MULTI_GET: {
        bool single = msg->body_case == STRATA__REPLY__BODY_GET;
        size_t n = single ? 1 : msg->multi_get->n_values;
        strata_value_t *values = calloc(n ? n : 1, sizeof *values);
        if (!values)
            return strata_error_set(err, STRATA_ENOMEM, "reply: %zu values", n);
        for (size_t i = 0; i < n; i++)
            values[i] = from_pb_value(single ? msg->get->value : msg->multi_get->values[i]);
        out->values = values;
        out->n_values = n;
        break;
    }
    case STRATA__REPLY__BODY_SCAN: {
        size_t n = msg->scan->n_entries;
        strata_kv_t *entries = calloc(n ? n : 1, sizeof *entries);
        if (!entries)
            return strata_error_set(err, STRATA_ENOMEM, "scan reply: %zu entries", n);
        for (size_t i = 0; i < n; i++) {
            entries[i].key = from_pb(msg->scan->entries[i]->key);
            entries[i].value = from_pb(msg->scan->entries[i]->value);
        }
        out->entries = entries;
        out->n_entries = n;
        out->next_cursor = from_pb(msg->scan->next_cursor);
        break;
    }
    case STRATA__REPLY__BODY_STATUS_INFO:
        out->role = msg->status_info->role;
        out->term = msg->status_info->term;
        out->last_seq = msg->status_info->last_seq;
        out->durable_seq = msg->status_info->durable_seq;
        break;
    case STRATA__REPLY__BODY_STATS:
    case STRATA__REPLY__BODY_CONTROL: {
        bool stats = msg->body_case == STRATA__REPLY__BODY_STATS;
        size_t n = stats ? msg->stats->n_pairs : msg->control->n_pairs;
        out->pairs = from_pb_pairs(n, stats ? msg->stats->pairs : msg->control->pairs);
        if (!out->pairs)
            return strata_error_set(err, STRATA_ENOMEM, "reply: %zu pairs", n);
        out->n_pairs = n;
        break;
    }
    case STRATA__REPLY__BODY_REPLAY:
        out->entries_blob = from_pb(msg->replay->entries);
        out->count = msg->replay->count;
        out->next_seq = msg->replay->next_seq;
        out->published_seq = msg->replay->published_seq;
        out->done = msg->replay->done;
        break;
    case STRATA__REPLY__BODY_SUBSCRIBE:
        out->acked_seq = msg->subscribe->acked_seq;
        out->published_seq = msg->subscribe->published_seq;
        break;
    case STRATA__REPLY__BODY_SUBSCRIBER_DELETE:
        out->acked_seq = msg->subscriber_delete->acked_seq;
        out->published_seq = msg->subscriber_delete->published_seq;
        break;
    case STRATA__REPLY__BODY_SUBSCRIBER_RESET:
        out->acked_seq = msg->subscriber_reset->acked_seq;
        out->published_seq = msg->subscriber_reset->published_seq;
        break;
    case STRATA__REPLY__BODY_ACK:
        out->durable_seq = msg->ack->durable_seq;
        break;
    case STRATA__REPLY__BODY_DELIVER:
        out->entries_blob = from_pb(msg->deliver->entries);
        out->count = msg->deliver->count;
        out->first_seq = msg->deliver->first_seq;
        out->last_seq = msg->deliver->last_seq;
        break;
    case STRATA__REPLY__BODY_SUBSCRIBERS: {
        size_t n = msg->subscribers->n_subscribers;
        strata_subscriber_info_t *infos = calloc(n ? n : 1, sizeof *infos);
        if (!infos)
            return strata_error_set(err, STRATA_ENOMEM, "reply: %zu subscribers", n);
        for (size_t i = 0; i < n; i++) {
            const Strata__SubscriberInfo *in = msg->subscribers->subscribers[i];
            infos[i] = (strata_subscriber_info_t){
                .name = in->name,
                .topics = (const char *const *)in->topics,
                .n_topics = in->n_topics,
                .acked_seq = in->acked_seq,
                .lag_records = in->lag_records,
                .lag_ms = in->lag_ms,
                .unacked = in->unacked,
                .resends = in->resends,
                .connected = in->connected,
            };
        }
        out->subscribers = infos;
        out->n_subscribers = n;
        break;
    }
    default:
        break;
    }
    return 0;
}

void strata_reply_clear(strata_reply_t *rep)
{
    if (!rep)
        return;
    if (rep->decoded_ == &codec_fast_marker) {
        free((void *)rep->values);
    } else if (rep->decoded_) {
        free((void *)rep->values);
        free((void *)rep->entries);
        free((void *)rep->pairs);
        free((void *)rep->subscribers);
        strata__reply__free_unpacked(rep->decoded_, NULL);
    }
    memset(rep, 0, sizeof *rep);
}

/* ------------------------------------------------------------------ */
/* The node's reserved keys and topics                                 */

bool strata_is_sys_key(strata_bytes_t key)
{
    return key.len >= STRATA_SYS_KEY_PREFIX_LEN &&
           !memcmp(key.data, STRATA_SYS_KEY_PREFIX, STRATA_SYS_KEY_PREFIX_LEN);
}

int strata_check_client_write(const char *field, strata_bytes_t key, const char *topic,
                              strata_error_t *err)
{
    if (strata_is_sys_key(key))
        return strata_error_set(err, STRATA_EINVAL, "%s.key: the \\0strata/ prefix is reserved",
                                field);
    if (topic && topic[0] == STRATA_SYS_TOPIC_PREFIX)
        return strata_error_set(err, STRATA_EINVAL,
                                "%s.topic: '%.64s' is reserved ($-prefixed topics are the node's)",
                                field, topic);
    return 0;
}
