/* A MANIFEST (lib/engine/manifest.md) as a read-only open reads it beside
 * a live writer: CURRENT names MANIFEST-000001, which holds the input. The
 * tables it may name do not exist; that must be an error too. */
#include "fuzz.h"
#include "version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file("CURRENT", (const uint8_t *)"MANIFEST-000001\n", 16);
    fuzz_file("MANIFEST-000001", data, size);
    vset_t *vset = NULL;
    manifest_report_t report;
    strata_error_t err;
    if (vset_open_readonly(fuzz_dir(), NULL, NULL, &report, &vset, &err) == 0)
        vset_close(&vset);
    return 0;
}
