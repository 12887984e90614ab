/* A WAL segment (lib/log/wal.md) as recovery and verify read it: the input
 * is segment 1 of a log that also has a log state file, checked by
 * strata_wal_verify and then opened (with repair, which keeps the good
 * prefix of anything) and closed. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "strata/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/wal", fuzz_dir());
    mkdir(dir, 0755);
    char name[64];
    snprintf(name, sizeof name, "wal/0000000000000001.wal");
    fuzz_file(name, data, size);
    /* What recovery leaves or makes beside it goes, so every run starts alike. */
    snprintf(name, sizeof name, "%s/LOGSTATE", dir);
    unlink(name);
    snprintf(name, sizeof name, "%s/0000000000000002.wal", dir);
    unlink(name);
    strata_wal_recovery_t report;
    strata_error_t err;
    strata_wal_verify(dir, 1 << 16, NULL, NULL, &report, &err);
    /* A small segment: a default one is preallocated at 64 MiB per run. */
    strata_wal_options_t opts = {
        .dir = dir, .repair = true, .max_entry_bytes = 1 << 16, .segment_bytes = 1 << 20};
    strata_wal_t *wal = NULL;
    if (strata_wal_open(&opts, 1, NULL, NULL, &report, &wal, &err) == 0)
        strata_wal_close(&wal, NULL);
    return 0;
}
