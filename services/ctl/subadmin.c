/* stratactl subscribers delete NAME and subscribers reset NAME --to
 * earliest|latest|SEQ: the distributor's subscriber_delete and
 * subscriber_reset requests (proto/DISTRIBUTION.md), as kafka-consumer-groups
 * --delete and --reset-offsets. ctl_subscribers connects, then calls here. */
#define _GNU_SOURCE
#include "ctl.h"

int ctl_subscribers_admin(ctl_t *ctl, int argc, char **argv)
{
    bool del = !strcmp(argv[0], "delete"), reset = !strcmp(argv[0], "reset");
    if ((!del && !reset) || argc != 2)
        return ctl_fail(ctl, CTL_USAGE, 0,
                        "'%s': expected 'delete NAME' or 'reset NAME --to earliest|latest|SEQ'",
                        argv[0]);
    strata_request_t req = {.op = del ? STRATA_OP_SUBSCRIBER_DELETE : STRATA_OP_SUBSCRIBER_RESET,
                            .name = argv[1]};
    if (reset) {
        if (ctl->to_word && !strcmp(ctl->to_word, "earliest"))
            req.reset_to = STRATA_RESET_TO_EARLIEST;
        else if (ctl->to_word && !strcmp(ctl->to_word, "latest"))
            req.reset_to = STRATA_RESET_TO_LATEST;
        else if (ctl->to_seq && !ctl->to_time_ns)
            req.seq = ctl->to_seq;
        else
            return ctl_fail(ctl, CTL_USAGE, 0, "reset takes --to earliest, latest or a SEQ");
    } else if (ctl->flags_given & FLAG_TO) {
        return ctl_fail(ctl, CTL_USAGE, 0, "delete takes no --to");
    }
    strata_reply_t reply;
    strata_error_t err;
    int rc = strata_client_call(ctl->client, &req, &reply, &err);
    if (rc) {
        strata_reply_clear(&reply);
        return ctl_fail_call(ctl, rc, &err);
    }
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "name", argv[1]);
        cJSON_AddBoolToObject(doc, del ? "deleted" : "reset", true);
        ctl_json_add_u64(doc, "acked_seq", reply.acked_seq);
        ctl_json_add_u64(doc, "published_seq", reply.published_seq);
    } else if (del) {
        printf("deleted %s (acked seq %" PRIu64 ")\n", argv[1], reply.acked_seq);
    } else {
        printf("%s: acked seq %" PRIu64 ", next delivered %" PRIu64 " (published %" PRIu64 ")\n",
               argv[1], reply.acked_seq, reply.acked_seq + 1, reply.published_seq);
    }
    strata_reply_clear(&reply);
    return CTL_OK;
}
