/* The client protocol's reply decoder, as the C client runs it on whatever
 * a server (or anything on the port) sends. */
#include "strata/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strata_reply_t rep;
    strata_error_t err;
    strata_reply_decode(data, size, &rep, &err);
    strata_reply_clear(&rep);
    return 0;
}
