/* The distributor's PUB frames (proto/DISTRIBUTION.md) as a subscriber
 * reads them: the first byte splits the input into a topic, the next 32
 * bytes are the meta frame, the rest a heartbeat body. */
#include "strata/pubframe.h"

static int visit(void *arg, const uint8_t *topic, size_t len, uint64_t last_seq,
                 strata_error_t *err)
{
    (void)arg, (void)topic, (void)len, (void)last_seq, (void)err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t topic_len = data[0] % 16;
    if (1 + topic_len > size)
        return 0;
    const uint8_t *topic = data + 1, *rest = data + 1 + topic_len;
    size_t rest_len = size - 1 - topic_len;
    size_t meta_len = rest_len < STRATA_PUB_META_BYTES ? rest_len : STRATA_PUB_META_BYTES;
    strata_pub_meta_t meta;
    strata_error_t err;
    strata_pub_meta_decode(topic, topic_len, rest, meta_len, &meta, &err);
    uint64_t covered;
    uint32_t n;
    strata_pub_hb_decode(rest + meta_len, rest_len - meta_len, &covered, &n, visit, NULL, &err);
    char text[STRATA_PUB_TOPIC_TEXT_MAX * 4 + 16];
    strata_pub_topic_text(text, sizeof text, topic, topic_len);
    return 0;
}
