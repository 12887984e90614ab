/* See netns.h. */
#define _GNU_SOURCE
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int ts_sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int status = system(cmd);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    if (WEXITSTATUS(status))
        fprintf(stderr, "netns: '%s' exited %d\n", cmd, WEXITSTATUS(status));
    return WEXITSTATUS(status);
}

/* Prefix "sn<pid>": "sn<pid>n<i>" namespaces, "sn<pid>v<i>" links,
 * "sn<pid>br" the bridge; at most 11 characters for a 7-digit pid, under
 * the kernel's 15 for an interface name. */
static void names(ts_netns_t *bed, int pid, int n)
{
    bed->pid = pid;
    bed->n = n;
    snprintf(bed->bridge, sizeof bed->bridge, "sn%dbr", pid);
    /* 10.(100 + pid % 100).(pid / 100 % 256).0/24: beds of different runs
     * are on different subnets. */
    int a = 100 + pid % 100, b = pid / 100 % 256;
    snprintf(bed->host_ip, sizeof bed->host_ip, "10.%d.%d.254", a, b);
    for (int i = 0; i < n; i++) {
        snprintf(bed->ns[i], sizeof bed->ns[i], "sn%dn%d", pid, i + 1);
        snprintf(bed->veth[i], sizeof bed->veth[i], "sn%dv%d", pid, i + 1);
        snprintf(bed->ip[i], sizeof bed->ip[i], "10.%d.%d.%d", a, b, i + 1);
    }
}

bool ts_netns_create(ts_netns_t *bed, int n)
{
    memset(bed, 0, sizeof *bed);
    if (n < 1 || n > TS_NETNS_MAX)
        return false;
    names(bed, (int)getpid(), n);
    if (strlen(bed->bridge) > 15 || strlen(bed->veth[n - 1]) > 15)
        return false; /* a pid past 7 digits: interface names are 15 at most */
    bool ok = ts_sh("ip link add %s type bridge && ip addr add %s/24 dev %s && ip link set %s up",
                    bed->bridge, bed->host_ip, bed->bridge, bed->bridge) == 0;
    for (int i = 0; ok && i < n; i++)
        ok = ts_sh("ip netns add %s && ip link add %s type veth peer name eth0 netns %s && "
                   "ip link set %s master %s up && ip -n %s addr add %s/24 dev eth0 && "
                   "ip -n %s link set eth0 up && ip -n %s link set lo up",
                   bed->ns[i], bed->veth[i], bed->ns[i], bed->veth[i], bed->bridge, bed->ns[i],
                   bed->ip[i], bed->ns[i], bed->ns[i]) == 0;
    if (!ok)
        ts_netns_destroy(bed);
    return ok;
}

void ts_netns_destroy(ts_netns_t *bed)
{
    for (int i = 0; i < bed->n; i++) {
        /* Processes left in a namespace would keep it alive. */
        ts_sh("ip netns pids %s 2>/dev/null | xargs -r kill -9; ip netns del %s 2>/dev/null || "
              "true",
              bed->ns[i], bed->ns[i]);
        /* Gone with its namespace as a rule; a half-made bed may hold one. */
        ts_sh("ip link del %s 2>/dev/null || true", bed->veth[i]);
    }
    ts_sh("ip link del %s 2>/dev/null || true", bed->bridge);
}

void ts_netns_sweep(void)
{
    DIR *d = opendir("/var/run/netns");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        int pid = 0, node = 0;
        bool gone = sscanf(de->d_name, "sn%dn%d", &pid, &node) == 2 && pid > 0 &&
                    kill(pid, 0) != 0 && errno == ESRCH;
        if (!gone)
            continue;
        ts_netns_t bed;
        names(&bed, pid, TS_NETNS_MAX);
        ts_netns_destroy(&bed);
    }
    closedir(d);
}

void ts_netns_link(const ts_netns_t *bed, int i, bool up)
{
    ts_sh("ip link set %s %s", bed->veth[i], up ? "up" : "down");
}

/* The table and its two chains, made on first use. */
static void nft_table(const ts_netns_t *bed, int i)
{
    ts_sh("ip netns exec %s nft 'add table inet nemesis; "
          "add chain inet nemesis in { type filter hook input priority 0; policy accept; }; "
          "add chain inet nemesis out { type filter hook output priority 0; policy accept; }'",
          bed->ns[i]);
}

void ts_netns_cut(const ts_netns_t *bed, int i, int j, bool both_ways)
{
    nft_table(bed, i);
    ts_sh("ip netns exec %s nft add rule inet nemesis in ip saddr %s drop", bed->ns[i], bed->ip[j]);
    if (both_ways)
        ts_sh("ip netns exec %s nft add rule inet nemesis out ip daddr %s drop", bed->ns[i],
              bed->ip[j]);
}

void ts_netns_loss(const ts_netns_t *bed, int i, int j, int percent)
{
    nft_table(bed, i);
    ts_sh("ip netns exec %s nft add rule inet nemesis in ip saddr %s numgen random mod 100 "
          "'<' %d drop",
          bed->ns[i], bed->ip[j], percent);
}

void ts_netns_heal(const ts_netns_t *bed, int i)
{
    ts_sh("ip netns exec %s nft delete table inet nemesis 2>/dev/null || true", bed->ns[i]);
}
