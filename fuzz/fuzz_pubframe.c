/* The distributor's PUB frames (proto/DISTRIBUTION.md) as a subscriber
 * reads them: the first byte splits the input into a topic, then comes the
 * meta frame, as long as its version byte says (40 bytes for version 2, 32
 * for 1, else 40: the decoder must refuse an unknown version whatever its
 * size), the rest a heartbeat body. */
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
    size_t want = rest_len ? strata_pub_meta_size(rest[0]) : 0;
    if (want == 0)
        want = STRATA_PUB_META_BYTES;
    size_t meta_len = rest_len < want ? rest_len : want;
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
