/* process_* figures from /proc/self, as the Prometheus client libraries
 * define them (client_golang's process collector); see procstat.h. */
#include "procstat.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void family(FILE *out, const char *name, const char *type, const char *help, double value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

/* The fields of /proc/self/stat after the command name, which may hold
 * spaces and parentheses, so the parse starts after its last ')'. field[0]
 * is the state (field 3 of proc(5)). */
static int stat_fields(unsigned long long *field, int n)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* ") " */
    int i = 0;
    for (char *save = NULL, *tok = strtok_r(p, " ", &save); tok && i < n;
         tok = strtok_r(NULL, " ", &save))
        field[i++] = strtoull(tok, NULL, 10);
    return i == n ? 0 : -1;
}

static double boot_time(void)
{
    char line[256];
    double btime = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "btime ", 6)) {
            btime = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return btime;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

void svc_procstat_write(FILE *out)
{
    /* proc(5) fields 3..24: utime 14, stime 15, starttime 22, vsize 23, rss 24. */
    unsigned long long f[22];
    double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    if (tick > 0 && stat_fields(f, 22) == 0) {
        family(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.", (double)(f[11] + f[12]) / tick);
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
               (double)f[21] * page);
        family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
               (double)f[20]);
        double btime = boot_time();
        if (btime >= 0)
            family(out, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.",
                   btime + (double)f[19] / tick);
    }
    long fds = open_fds();
    if (fds >= 0)
        family(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
        family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
               lim.rlim_cur == RLIM_INFINITY ? -1 : (double)lim.rlim_cur);
    fprintf(out,
            "# HELP strata_build_info The version and git commit this binary was built from.\n"
            "# TYPE strata_build_info gauge\n"
            "strata_build_info{version=\"%s\",commit=\"%s\"} 1\n",
            svc_build_version, svc_build_commit);
}
