/* The distributor's verbs: tail (history, live, durable) and subscribers. */
#define _GNU_SOURCE
#include "ctl.h"

/* ---- the distributor: tail and subscribers ------------------------------- */

typedef struct {
    char live[256], delayed[256], history[256];
} dist_endpoints_t;

/* Where the distributor listens: the flags, else what it wrote into
 * DATADIR/distributor.endpoints (--dir), else the defaults. */
static int s_distributor_endpoints(ctl_t *ctl, dist_endpoints_t *eps)
{
    const char *live = STRATA_SUB_DEFAULT_LIVE, *delayed = STRATA_SUB_DEFAULT_DELAYED,
               *history = STRATA_SUB_DEFAULT_HISTORY;
    zconfig_t *root = NULL;
    if (ctl->dir) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/distributor.endpoints", ctl->dir);
        /* The distributor writes it once ready and removes it when it stops. */
        if (!(root = zconfig_load(path)))
            return ctl_fail(ctl, CTL_UNREACHABLE, 0,
                            "cannot read %s (is strata-distributor running on that data dir?)",
                            path);
        live = zconfig_get(root, "distributor/live", live);
        delayed = zconfig_get(root, "distributor/delayed", delayed);
        history = zconfig_get(root, "distributor/history", history);
    }
    snprintf(eps->live, sizeof eps->live, "%s", ctl->live_ep ? ctl->live_ep : live);
    snprintf(eps->delayed, sizeof eps->delayed, "%s", ctl->delayed_ep ? ctl->delayed_ep : delayed);
    snprintf(eps->history, sizeof eps->history, "%s", ctl->history_ep ? ctl->history_ep : history);
    zconfig_destroy(&root);
    return CTL_OK;
}

/* Ctrl-C and SIGTERM end tail cleanly: the subscriber's wait sees
 * zsys_interrupted (as with czmq's own handler) and returns ECLOSED. */
static void s_on_signal(int signum)
{
    zsys_interrupted = 1;
}

static void s_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Durable: waits up to --timeout for the distributor to store the last ack,
 * so the next tail under the name starts after it. What arrives meanwhile
 * stays unacked and comes again. */
static void s_tail_settle(ctl_t *ctl, strata_sub_t *sub, uint64_t acked)
{
    zsys_interrupted = 0;
    uint64_t deadline = (uint64_t)zclock_mono() + (uint64_t)ctl->timeout_ms;
    while (strata_sub_durable_seq(sub) < acked && (uint64_t)zclock_mono() < deadline) {
        strata_entry_t e;
        strata_error_t err;
        int rc = strata_sub_next(sub, 50, &e, NULL, NULL, &err);
        if (rc && rc != STRATA_ETIMEDOUT)
            break;
    }
    if (strata_sub_durable_seq(sub) < acked)
        fprintf(stderr, "stratactl: tail: ack %" PRIu64 " not confirmed stored within %d ms\n",
                acked, ctl->timeout_ms);
}

/* Errors next() reports about one message or one repair: tail says so on
 * stderr and goes on (the subscriber repairs what a dropped message leaves). */
static bool s_tail_recoverable(const ctl_t *ctl, int rc)
{
    switch (rc) {
    case STRATA_EINVAL:
    case STRATA_EVERSION:
    case STRATA_ECORRUPT:
    case STRATA_ETOOBIG:
        return true;
    case STRATA_ETRUNCATED: /* a repair given up; for a durable session, its start */
        return !ctl->durable;
    default:
        return false;
    }
}

int ctl_tail(ctl_t *ctl, int argc, char **argv)
{
    if (ctl->from_seq && ctl->from_time_ns)
        return ctl_fail(ctl, CTL_USAGE, 0, "--from and --from-time exclude each other");
    if (ctl->durable && (ctl->delayed || ctl->from_time_ns))
        return ctl_fail(ctl, CTL_USAGE, 0, "--durable takes neither --delayed nor --from-time");
    for (int i = 0; i < argc; i++)
        if (!argv[i][0] || strlen(argv[i]) > STRATA_PROTO_MAX_TOPIC)
            return ctl_fail(ctl, CTL_USAGE, 0, "topic %d: 1 to %u bytes", i + 1,
                            STRATA_PROTO_MAX_TOPIC);
    if (ctl->to_word)
        return ctl_fail(ctl, CTL_USAGE, 0,
                        "--to %s is for subscribers reset; tail takes a seq or a time",
                        ctl->to_word);
    if (ctl->to_seq && ctl->from_seq > ctl->to_seq)
        return ctl_fail(ctl, CTL_USAGE, 0, "--to %" PRIu64 " is before --from %" PRIu64,
                        ctl->to_seq, ctl->from_seq);
    if (ctl->to_time_ns && ctl->from_time_ns > ctl->to_time_ns)
        return ctl_fail(ctl, CTL_USAGE, 0, "--to is before --from-time");
    dist_endpoints_t eps;
    int exit_code = s_distributor_endpoints(ctl, &eps);
    if (exit_code)
        return exit_code;
    strata_sub_options_t opts = {
        .stream_endpoint = ctl->delayed ? eps.delayed : eps.live,
        .history_endpoint = eps.history,
        .topics = (const char *const *)argv,
        .n_topics = (size_t)argc,
        .from_seq = ctl->from_seq,
        .from_time_ns = ctl->from_time_ns,
        .durable = ctl->durable,
        .timeout_ms = ctl->timeout_ms,
        .curve_server_key = ctl->server_key,
        .curve_cert = ctl->cert,
    };
    strata_sub_t *sub = NULL;
    strata_error_t err;
    s_catch_signals();
    int rc = strata_sub_open(&opts, &sub, &err);
    if (rc) {
        bool bad_endpoint = rc == STRATA_EINVAL && strstr(err.msg, "endpoint '") != NULL;
        exit_code = rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE
                    : bad_endpoint         ? CTL_USAGE
                    : rc == STRATA_ECLOSED ? CTL_OK
                                           : CTL_FAILED;
        return exit_code == CTL_OK ? CTL_OK : ctl_fail(ctl, exit_code, rc, "%s", err.msg);
    }
    uint64_t printed = 0, acked = 0;
    while (exit_code == CTL_OK && (ctl->count == 0 || printed < ctl->count)) {
        strata_entry_t e;
        rc = strata_sub_next(sub, -1, &e, NULL, NULL, &err);
        if (rc == 0) {
            /* --to: the first record past it ends tail unprinted (and unacked). */
            if ((ctl->to_seq && e.seq > ctl->to_seq) ||
                (ctl->to_time_ns && e.timestamp_ns > ctl->to_time_ns))
                break;
            ctl_print_record(ctl, &e);
            printed++;
            if (ctl->durable && (rc = strata_sub_ack(sub, e.seq, &err)) == 0)
                acked = e.seq;
            if (rc == 0 && ctl->to_seq && e.seq == ctl->to_seq)
                break;
        }
        if (rc == 0)
            continue;
        if (rc == STRATA_ECLOSED && zsys_interrupted)
            break;
        if (s_tail_recoverable(ctl, rc))
            fprintf(stderr, "stratactl: tail: %s\n", err.msg);
        else
            exit_code = ctl_fail(ctl, rc == STRATA_ETIMEDOUT ? CTL_UNREACHABLE : CTL_FAILED, rc,
                                 "%s", err.msg);
    }
    if (exit_code == CTL_OK && acked)
        s_tail_settle(ctl, sub, acked);
    strata_sub_close(&sub);
    return exit_code;
}

int ctl_subscribers(ctl_t *ctl, int argc, char **argv)
{
    dist_endpoints_t eps;
    int exit_code = s_distributor_endpoints(ctl, &eps);
    if (exit_code)
        return exit_code;
    strata_client_options_t opts = {.endpoint = eps.history,
                                    .timeout_ms = ctl->timeout_ms,
                                    .curve_server_key = ctl->server_key,
                                    .curve_cert = ctl->cert};
    strata_error_t err;
    int rc = strata_client_connect(&opts, &ctl->client, &err);
    if (rc)
        return ctl_fail(ctl, rc == STRATA_EINVAL ? CTL_USAGE : CTL_FAILED, rc, "%s", err.msg);
    if (argc > 0)
        return ctl_subscribers_admin(ctl, argc, argv);
    strata_request_t req = {.op = STRATA_OP_SUBSCRIBERS};
    strata_reply_t reply;
    if ((rc = strata_client_call(ctl->client, &req, &reply, &err))) {
        strata_reply_clear(&reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    /* Topics as one column: comma-joined, "*" for all. */
    char **topics = ctl_xmalloc((reply.n_subscribers + 1) * sizeof *topics);
    int name_width = 4, topics_width = 6;
    for (size_t i = 0; i < reply.n_subscribers; i++) {
        const strata_subscriber_info_t *s = &reply.subscribers[i];
        size_t len = 2;
        for (size_t t = 0; t < s->n_topics; t++)
            len += strlen(s->topics[t]) + 1;
        topics[i] = ctl_xmalloc(len);
        strcpy(topics[i], s->n_topics ? "" : "*");
        for (size_t t = 0; t < s->n_topics; t++)
            strcat(strcat(topics[i], t ? "," : ""), s->topics[t]);
        if ((int)strlen(s->name) > name_width)
            name_width = (int)strlen(s->name);
        if ((int)strlen(topics[i]) > topics_width)
            topics_width = (int)strlen(topics[i]);
    }
    cJSON *rows = ctl->json ? cJSON_AddArrayToObject(ctl_doc(ctl), "subscribers") : NULL;
    if (!ctl->json)
        printf("%-*s  %-*s  %12s  %12s  %10s  %8s  %8s  %s\n", name_width, "NAME", topics_width,
               "TOPICS", "ACKED", "LAG", "LAG_MS", "UNACKED", "RESENDS", "CONNECTED");
    for (size_t i = 0; i < reply.n_subscribers; i++) {
        const strata_subscriber_info_t *s = &reply.subscribers[i];
        if (rows) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "name", s->name);
            cJSON *list = cJSON_AddArrayToObject(row, "topics");
            for (size_t t = 0; t < s->n_topics; t++)
                cJSON_AddItemToArray(list, cJSON_CreateString(s->topics[t]));
            ctl_json_add_u64(row, "acked_seq", s->acked_seq);
            ctl_json_add_u64(row, "lag_records", s->lag_records);
            ctl_json_add_u64(row, "lag_ms", s->lag_ms);
            ctl_json_add_u64(row, "unacked", s->unacked);
            ctl_json_add_u64(row, "resends", s->resends);
            cJSON_AddBoolToObject(row, "connected", s->connected);
            cJSON_AddItemToArray(rows, row);
        } else {
            printf("%-*s  %-*s  %12" PRIu64 "  %12" PRIu64 "  %10" PRIu64 "  %8" PRIu64
                   "  %8" PRIu64 "  %s\n",
                   name_width, s->name, topics_width, topics[i], s->acked_seq, s->lag_records,
                   s->lag_ms, s->unacked, s->resends, s->connected ? "yes" : "no");
        }
        free(topics[i]);
    }
    if (rows)
        ctl_json_add_u64(ctl->doc, "count", reply.n_subscribers);
    free(topics);
    strata_reply_clear(&reply);
    return CTL_OK;
}
