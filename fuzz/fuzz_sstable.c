/* An SSTable file (lib/engine/sstable.md): opened (footer, index and
 * properties checked), walked forwards and backwards, probed and verified.
 * Damage must be an error, never a crash or a read past the mapping. */
#include <stdlib.h>

#include "fuzz.h"
#include "strata/sstable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("000001.sst", data, size);
    strata_table_options_t opts;
    strata_table_options_init(&opts);
    strata_table_t *table = NULL;
    strata_error_t err;
    if (strata_table_open(&opts, path, &table, &err) != 0)
        return 0;
    strata_table_iter_t *it = strata_table_iter_new(table);
    if (it) {
        int n = 0;
        for (strata_table_iter_seek_first(it); strata_table_iter_valid(it) && n < 10000;
             strata_table_iter_next(it), n++)
            ;
        n = 0;
        for (strata_table_iter_seek_last(it); strata_table_iter_valid(it) && n < 10000;
             strata_table_iter_prev(it), n++)
            ;
        strata_table_iter_seek(it, "k", 1, UINT64_MAX);
        strata_table_iter_status(it, &err);
        strata_table_iter_destroy(&it);
    }
    void *value = NULL;
    size_t len = 0;
    strata_table_may_contain(table, "k", 1);
    strata_table_get(table, "k", 1, UINT64_MAX, NULL, &value, &len, NULL, &err);
    free(value);
    strata_table_verify(table, &err);
    strata_table_close(&table);
    return 0;
}
