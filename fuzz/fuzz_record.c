/* Typed records (msgpack, proto/RECORDS.md) in both modes: strict, as the
 * writer decodes, and lenient, as subscribers do. A record that decodes
 * strictly encodes again to bytes that decode. */
#include <stdlib.h>

#include "strata/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strata_record_t rec;
    strata_error_t err;
    if (strata_record_decode(data, size, false, &rec, &err) == 0) {
        char key[STRATA_RECORD_KEY_MAX];
        strata_record_key(&rec, key, sizeof key);
        strata_record_topic(&rec);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (strata_record_encode(&rec, &buf, &len, &err) != 0)
            abort();
        strata_record_t again;
        if (strata_record_decode(buf, len, false, &again, &err) != 0)
            abort();
        strata_record_clear(&again);
        free(buf);
        strata_record_clear(&rec);
    }
    if (strata_record_decode(data, size, true, &rec, &err) == 0)
        strata_record_clear(&rec);
    return 0;
}
