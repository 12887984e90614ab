/* The client protocol's request decoder (lib/wire/codec.c): any bytes give
 * a request or an error, never a crash; a request that decodes encodes
 * again and decodes to the same op and id. */
#include <stdlib.h>

#include "strata/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strata_request_t req;
    strata_error_t err;
    if (strata_request_decode(data, size, &req, &err) == 0) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (strata_request_encode(&req, &buf, &len, &err) == 0) {
            strata_request_t again;
            if (strata_request_decode(buf, len, &again, &err) != 0 || again.op != req.op ||
                again.request_id != req.request_id)
                abort();
            strata_request_clear(&again);
            free(buf);
        }
    }
    strata_request_clear(&req);
    return 0;
}
