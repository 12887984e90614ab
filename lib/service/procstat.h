/* The figures every /metrics page ends with: the standard process_* families
 * of the Prometheus client libraries, read from /proc/self, and
 * strata_build_info. http.c appends them to each service's page. */
#ifndef STRATA_SVC_PROCSTAT_H
#define STRATA_SVC_PROCSTAT_H

#include <stdio.h>

/* Generated at build time (build_info.cmake): the project version and the
 * source tree's git commit, "unknown" outside a git checkout. */
extern const char *const svc_build_version;
extern const char *const svc_build_commit;

/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds and strata_build_info, without the process
 * label (the page gets it as a whole). A figure /proc does not give is left
 * out, never shown as 0. */
void svc_procstat_write(FILE *out);

#endif
