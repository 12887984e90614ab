/* stratactl check: a node's health for container healthchecks and
 * monitoring, in Nagios's terms (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
 * Every process is reached through what it published in
 * DATADIR/<process>.endpoints, never through its pid: in a container per
 * process the pid namespace is not shared, and a stale file of a killed
 * process must come out CRITICAL. */
#define _GNU_SOURCE
#include "ctl.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

typedef enum { STATE_OK, STATE_WARNING, STATE_CRITICAL, STATE_UNKNOWN } state_t;

static const char *const s_state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

/* The node's processes, in start order; the first two of a cluster node's
 * consensus pair come right after the writer. */
static const char *const s_processes[] = {"writer",    "election",    "replicator",
                                          "compactor", "distributor", "snapshotter"};
enum { N_PROCESSES = sizeof s_processes / sizeof s_processes[0] };

/* A process each, then role, replication, disk and writable. */
enum { MAX_CHECKS = N_PROCESSES + 4 };

typedef struct {
    char name[32];
    state_t state;
    char detail[512];
    cJSON *numbers; /* the figures behind detail, added to its JSON row; may be NULL */
} check_t;

typedef struct {
    ctl_t *ctl;
    int timeout_ms;
    check_t checks[MAX_CHECKS];
    size_t n;
} checker_t;

static check_t *s_add(checker_t *c, const char *name, state_t state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static check_t *s_add(checker_t *c, const char *name, state_t state, const char *fmt, ...)
{
    check_t *k = &c->checks[c->n++];
    snprintf(k->name, sizeof k->name, "%s", name);
    k->state = state;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->detail, sizeof k->detail, fmt, ap);
    va_end(ap);
    k->numbers = NULL;
    return k;
}

static void s_number(check_t *k, const char *name, double value)
{
    if (!k->numbers)
        k->numbers = cJSON_CreateObject();
    cJSON_AddNumberToObject(k->numbers, name, value);
}

static long s_ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- HTTP /readyz ----------------------------------------------------------- */

/* GET path on the host:port of url ("http://HOST:PORT/metrics", as the
 * services publish it) within timeout_ms. Returns the HTTP status, or 0 with
 * why filled when nothing answered. */
static int s_http_status(const char *url, const char *path, int timeout_ms, char *why,
                         size_t why_cap)
{
    char host[64];
    unsigned port = 0;
    if (sscanf(url, "http://%63[^:/]:%u", host, &port) != 2 || port == 0 || port > 65535) {
        snprintf(why, why_cap, "'%.200s' is not http://HOST:PORT/...", url);
        return 0;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    /* A service bound to every interface publishes 0.0.0.0. */
    if (inet_pton(AF_INET, strcmp(host, "0.0.0.0") ? host : "127.0.0.1", &sa.sin_addr) != 1) {
        snprintf(why, why_cap, "'%s' is not an IPv4 address", host);
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_cap, "socket: %s", strerror(errno));
        return 0;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status = 0;
    char reply[256];
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        snprintf(why, why_cap, "connect %s:%u: %s", host, port, strerror(errno));
        goto done;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    long left = timeout_ms - s_ms_since(&t0);
    if (poll(&pfd, 1, left > 0 ? (int)left : 0) != 1) {
        snprintf(why, why_cap, "connect %s:%u: no answer within %d ms", host, port, timeout_ms);
        goto done;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr) {
        snprintf(why, why_cap, "connect %s:%u: %s", host, port, strerror(soerr));
        goto done;
    }
    char request[160];
    int n = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s:%u\r\n\r\n", path, host,
                     port);
    if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(why, why_cap, "send to %s:%u: %s", host, port, strerror(errno));
        goto done;
    }
    /* The status line is all we need: "HTTP/1.x NNN ...". */
    while (got < sizeof reply - 1 && !memchr(reply, '\n', got)) {
        pfd.events = POLLIN;
        left = timeout_ms - s_ms_since(&t0);
        if (left <= 0 || poll(&pfd, 1, (int)left) != 1) {
            snprintf(why, why_cap, "GET %s from %s:%u: no reply within %d ms", path, host, port,
                     timeout_ms);
            goto done;
        }
        ssize_t r = recv(fd, reply + got, sizeof reply - 1 - got, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            break;
        }
        got += (size_t)r;
    }
    reply[got] = '\0';
    if (sscanf(reply, "HTTP/%*d.%*d %d", &status) != 1 || status < 100) {
        snprintf(why, why_cap, "GET %s from %s:%u: no HTTP status in the reply", path, host, port);
        status = 0;
    }
done:
    close(fd);
    return status;
}

/* ---- processes ---------------------------------------------------------------- */

/* What a process published, or nothing (root NULL) when it has no file. */
typedef struct {
    char path[PATH_MAX];
    zconfig_t *root;
    char pid[32], metrics[512], control[PATH_MAX + 32];
} published_t;

static void s_read_published(const char *dir, const char *name, published_t *p)
{
    snprintf(p->path, sizeof p->path, "%s/%s.endpoints", dir, name);
    p->root = zconfig_load(p->path);
    char key[64];
    snprintf(key, sizeof key, "%s/pid", name);
    snprintf(p->pid, sizeof p->pid, "%s", p->root ? zconfig_get(p->root, key, "?") : "?");
    snprintf(key, sizeof key, "%s/metrics", name);
    snprintf(p->metrics, sizeof p->metrics, "%s", p->root ? zconfig_get(p->root, key, "off") : "");
    /* The endpoint that speaks the client protocol: the writer's and the
     * relays' control, the others' one endpoint. */
    bool has_control =
        !strcmp(name, "writer") || !strcmp(name, "election") || !strcmp(name, "replicator");
    snprintf(key, sizeof key, "%s/%s", name, has_control ? "control" : "endpoint");
    snprintf(p->control, sizeof p->control, "%s", p->root ? zconfig_get(p->root, key, "") : "");
}

static int s_client(checker_t *c, const char *endpoint, strata_client_t **client,
                    strata_error_t *err)
{
    strata_client_options_t opts = {.endpoint = endpoint,
                                    .timeout_ms = c->timeout_ms,
                                    .curve_server_key = c->ctl->server_key,
                                    .curve_cert = c->ctl->cert};
    return strata_client_connect(&opts, client, err);
}

/* A process without an HTTP port: any reply on its client-protocol endpoint
 * (stats for the writer and the distributor, the ping verb for the others). */
static void s_probe_control(checker_t *c, const char *name, const published_t *p)
{
    if (!p->control[0]) {
        s_add(c, name, STATE_CRITICAL, "%s names no endpoint to reach it at (metrics off)",
              p->path);
        return;
    }
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    strata_reply_t reply;
    memset(&reply, 0, sizeof reply);
    int rc = s_client(c, p->control, &client, &err);
    if (rc) {
        s_add(c, name, STATE_CRITICAL, "cannot connect to %s: %s", p->control, err.msg);
        return;
    }
    if (!strcmp(name, "writer") || !strcmp(name, "distributor"))
        rc = strata_client_stats(client, &reply, &err);
    else
        rc = strata_client_control(client, "ping", NULL, 0, &reply, &err);
    strata_reply_clear(&reply);
    strata_client_destroy(&client);
    if (rc == 0)
        s_add(c, name, STATE_OK, "answers on %s, pid %s", p->control, p->pid);
    else if (rc == STRATA_ETIMEDOUT)
        s_add(c, name, STATE_CRITICAL,
              "no answer on %s within %d ms: %s is stale (left by pid %s?) or the process hangs",
              p->control, c->timeout_ms, p->path, p->pid);
    else
        s_add(c, name, STATE_WARNING, "answers on %s with an error: %s", p->control, err.msg);
}

static void s_probe(checker_t *c, const char *name, const char *dir, bool required)
{
    published_t p;
    s_read_published(dir, name, &p);
    if (!p.root) {
        if (required)
            s_add(c, name, STATE_CRITICAL, "not running: no %s (%s)", p.path,
                  access(p.path, F_OK) == 0 ? "unreadable" : "missing");
        return;
    }
    if (strncmp(p.metrics, "http://", 7)) {
        s_probe_control(c, name, &p);
    } else {
        char why[400] = "";
        char url[600];
        snprintf(url, sizeof url, "%s", p.metrics);
        char *tail = strstr(url + 7, "/");
        if (tail)
            *tail = '\0';
        int status = s_http_status(p.metrics, "/readyz", c->timeout_ms, why, sizeof why);
        if (status == 200)
            s_add(c, name, STATE_OK, "ready (%s/readyz), pid %s", url, p.pid);
        else if (status == 0)
            s_add(c, name, STATE_CRITICAL, "not answering: %s; %s is stale (left by pid %s?)", why,
                  p.path, p.pid);
        else
            s_add(c, name, STATE_CRITICAL, "answering but not ready: %s/readyz gave %d, pid %s",
                  url, status, p.pid);
    }
    char *end = NULL;
    long pid = strtol(p.pid, &end, 10);
    if (pid > 0 && !*end)
        s_number(&c->checks[c->n - 1], "pid", (double)pid);
    zconfig_destroy(&p.root);
}

/* ---- the writer's role and replication ------------------------------------- */

static const char *s_pair(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    return NULL;
}

static uint64_t s_pair_u64(const strata_reply_t *rep, const char *name)
{
    const char *v = s_pair(rep, name);
    return v ? strtoull(v, NULL, 10) : 0;
}

/* A follower's lag is what the cluster committed that this node does not
 * hold durably, and how long ago it last heard from its master (its view of
 * the commit is only as fresh as that). The master's is its worst peer's
 * lag_ms: how long ago its log first held what that peer still lacks. */
static void s_replication(checker_t *c, const strata_reply_t *rep, const char *role,
                          uint64_t leader, uint64_t max_lag_ms)
{
    uint64_t commit = s_pair_u64(rep, "commit_seq"), durable = s_pair_u64(rep, "durable_seq");
    if (!strcmp(role, "leader")) {
        uint64_t worst_ms = 0, worst_records = 0;
        unsigned worst_peer = 0;
        for (size_t i = 0; i < rep->n_pairs; i++) {
            unsigned peer;
            char tail[16];
            if (sscanf(rep->pairs[i].name, "peer_%u_lag_%15s", &peer, tail) != 2 ||
                strcmp(tail, "ms"))
                continue;
            uint64_t ms = strtoull(rep->pairs[i].value, NULL, 10);
            if (ms >= worst_ms) {
                char name[48];
                snprintf(name, sizeof name, "peer_%u_lag", peer);
                worst_ms = ms;
                worst_records = s_pair_u64(rep, name);
                worst_peer = peer;
            }
        }
        check_t *k = s_add(c, "replication", worst_ms > max_lag_ms ? STATE_WARNING : STATE_OK,
                           "master; slowest follower node %u: %" PRIu64 " records, %" PRIu64
                           " ms behind (limit %" PRIu64 " ms)",
                           worst_peer, worst_records, worst_ms, max_lag_ms);
        s_number(k, "lag_records", (double)worst_records);
        s_number(k, "lag_ms", (double)worst_ms);
        s_number(k, "max_lag_ms", (double)max_lag_ms);
        return;
    }
    uint64_t behind = commit > durable ? commit - durable : 0;
    char name[48];
    snprintf(name, sizeof name, "peer_%" PRIu64 "_contact_ms", leader);
    const char *contact = leader ? s_pair(rep, name) : NULL;
    bool heard = contact && strcmp(contact, "never");
    uint64_t contact_ms = heard ? strtoull(contact, NULL, 10) : 0;
    state_t state = leader && heard && contact_ms <= max_lag_ms ? STATE_OK : STATE_WARNING;
    check_t *k;
    if (!leader)
        k = s_add(c, "replication", state,
                  "no master known: %" PRIu64 " committed records not durable here", behind);
    else if (!heard)
        k = s_add(c, "replication", state, "never heard from master node %" PRIu64, leader);
    else
        k = s_add(c, "replication", state,
                  "%" PRIu64 " records behind commit %" PRIu64 ", master node %" PRIu64
                  " heard %" PRIu64 " ms ago (limit %" PRIu64 " ms)",
                  behind, commit, leader, contact_ms, max_lag_ms);
    s_number(k, "lag_records", (double)behind);
    if (heard)
        s_number(k, "contact_ms", (double)contact_ms);
    s_number(k, "max_lag_ms", (double)max_lag_ms);
}

/* The writer's role and term from its stats, over its control endpoint (the
 * node's own, which needs no CURVE key), and a cluster node's replication. */
static void s_role(checker_t *c, const char *dir, uint64_t max_lag_ms)
{
    published_t p;
    s_read_published(dir, "writer", &p);
    if (!p.root)
        return; /* the writer's own check says so */
    zconfig_destroy(&p.root);
    strata_client_t *client = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    strata_reply_t rep;
    memset(&rep, 0, sizeof rep);
    int rc = p.control[0] ? s_client(c, p.control, &client, &err) : STRATA_EINVAL;
    if (!p.control[0])
        snprintf(err.msg, sizeof err.msg, "%.400s names no control endpoint", p.path);
    if (!rc)
        rc = strata_client_stats(client, &rep, &err);
    strata_client_destroy(&client);
    if (rc) {
        s_add(c, "role", STATE_CRITICAL, "no stats from the writer at %s: %s", p.control,
              err.msg[0] ? err.msg : strata_strerror(rc));
        strata_reply_clear(&rep);
        return;
    }
    const char *role = s_pair(&rep, "role");
    role = role ? role : "unknown";
    bool cluster = s_pair(&rep, "node_id") != NULL;
    uint64_t term = s_pair_u64(&rep, "term"), leader = s_pair_u64(&rep, "leader");
    check_t *k;
    if (!cluster)
        k = s_add(c, "role", STATE_OK, "standalone, last_seq %" PRIu64 ", durable_seq %" PRIu64,
                  s_pair_u64(&rep, "last_seq"), s_pair_u64(&rep, "durable_seq"));
    else if (!strcmp(role, "leader"))
        k = s_add(c, "role", STATE_OK, "leader (master), node %" PRIu64 ", term %" PRIu64,
                  s_pair_u64(&rep, "node_id"), term);
    else if (!strcmp(role, "follower") && leader)
        k = s_add(c, "role", STATE_OK,
                  "follower, node %" PRIu64 ", term %" PRIu64 ", master node %" PRIu64,
                  s_pair_u64(&rep, "node_id"), term, leader);
    else if (!strcmp(role, "learner"))
        k = s_add(c, "role", STATE_WARNING,
                  "learner, node %" PRIu64 ", term %" PRIu64 ": copying the log, not voting yet",
                  s_pair_u64(&rep, "node_id"), term);
    else
        k = s_add(c, "role", STATE_WARNING,
                  "%s, node %" PRIu64 ", term %" PRIu64 ": no master known", role,
                  s_pair_u64(&rep, "node_id"), term);
    s_number(k, "term", (double)term);
    cJSON_AddStringToObject(k->numbers, "role", role); /* the one string among the figures */
    if (cluster) {
        s_number(k, "node_id", (double)s_pair_u64(&rep, "node_id"));
        s_number(k, "leader", (double)leader);
    }
    s_number(k, "last_seq", (double)s_pair_u64(&rep, "last_seq"));
    s_number(k, "durable_seq", (double)s_pair_u64(&rep, "durable_seq"));
    if (cluster)
        s_replication(c, &rep, role, leader, max_lag_ms);
    strata_reply_clear(&rep);
}

/* ---- the data dir's disk ---------------------------------------------------- */

static void s_disk(checker_t *c, const char *dir, unsigned warn_pct, unsigned crit_pct)
{
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        s_add(c, "disk", STATE_CRITICAL, "statvfs %s: %s", dir, strerror(errno));
        return;
    }
    /* Used as df counts it: the blocks reserved for root are not free to us. */
    double total = (double)vfs.f_blocks * vfs.f_frsize;
    double avail = (double)vfs.f_bavail * vfs.f_frsize;
    double used = (double)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    double used_pct = used + avail > 0 ? 100.0 * used / (used + avail) : 0;
    unsigned pct = (unsigned)(used_pct + 0.999); /* rounded up, as df does */
    state_t state = pct >= crit_pct ? STATE_CRITICAL : pct >= warn_pct ? STATE_WARNING : STATE_OK;
    check_t *k = s_add(c, "disk", state,
                       "%u%% used, %.1f GiB free of %.1f GiB (warning at %u%%, critical at %u%%)",
                       pct, avail / (1 << 30), total / (1 << 30), warn_pct, crit_pct);
    s_number(k, "used_percent", pct);
    s_number(k, "free_bytes", avail);
    s_number(k, "total_bytes", total);
    s_number(k, "warn_percent", warn_pct);
    s_number(k, "crit_percent", crit_pct);
}

/* Creating a file is what every process of the node does there. */
static void s_writable(checker_t *c, const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.stratactl-check-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        s_add(c, "writable", STATE_CRITICAL, "cannot create a file in %s: %s", dir,
              strerror(errno));
        return;
    }
    bool wrote = write(fd, "x", 1) == 1;
    int saved = errno;
    close(fd);
    unlink(path);
    if (wrote)
        s_add(c, "writable", STATE_OK, "%s", dir);
    else
        s_add(c, "writable", STATE_CRITICAL, "cannot write to %s: %s", dir, strerror(saved));
}

/* ---- the verb --------------------------------------------------------------- */

/* --process NAME[,NAME...] into want[]; false with the bad name in bad. */
static bool s_parse_processes(const char *list, bool want[N_PROCESSES], char *bad, size_t cap)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    char *save = NULL;
    bool any = false;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < N_PROCESSES && strcmp(s_processes[i], name))
            i++;
        if (i == N_PROCESSES) {
            snprintf(bad, cap, "%s", name);
            return false;
        }
        want[i] = any = true;
    }
    snprintf(bad, cap, "%s", list);
    return any;
}

static void s_report(checker_t *c, const char *dir, state_t overall)
{
    ctl_t *ctl = c->ctl;
    char summary[1024] = "";
    size_t used = 0;
    size_t processes = 0;
    for (size_t i = 0; i < c->n; i++) {
        const check_t *k = &c->checks[i];
        for (size_t p = 0; p < N_PROCESSES; p++)
            processes += !strcmp(k->name, s_processes[p]);
        if (k->state != STATE_OK && used < sizeof summary)
            used += (size_t)snprintf(summary + used, sizeof summary - used, "%s%s: %s",
                                     used ? "; " : "", k->name, k->detail);
    }
    if (overall == STATE_OK)
        snprintf(summary, sizeof summary, "%zu process%s ready, %zu checks passed in %s", processes,
                 processes == 1 ? "" : "es", c->n, dir);
    if (ctl->json) {
        cJSON *doc = ctl_doc(ctl);
        cJSON_AddStringToObject(doc, "state", s_state_names[overall]);
        cJSON_AddNumberToObject(doc, "code", overall);
        cJSON_AddStringToObject(doc, "dir", dir);
        cJSON_AddStringToObject(doc, "summary", summary);
        cJSON *rows = cJSON_AddArrayToObject(doc, "checks");
        for (size_t i = 0; i < c->n; i++) {
            check_t *k = &c->checks[i];
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "name", k->name);
            cJSON_AddStringToObject(row, "state", s_state_names[k->state]);
            cJSON_AddStringToObject(row, "detail", k->detail);
            if (k->numbers)
                for (cJSON *item = k->numbers->child; item; item = item->next)
                    cJSON_AddItemToObject(row, item->string, cJSON_Duplicate(item, true));
            cJSON_AddItemToArray(rows, row);
        }
        return;
    }
    printf("%s: %s\n", s_state_names[overall], summary);
    for (size_t i = 0; i < c->n; i++)
        printf("%s: %s: %s\n", c->checks[i].name, s_state_names[c->checks[i].state],
               c->checks[i].detail);
}

int ctl_check(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *env_dir = getenv("STRATA_NODE_DATA_DIR");
    const char *dir = ctl->dir ? ctl->dir : env_dir && env_dir[0] ? env_dir : CTL_CHECK_DEFAULT_DIR;
    bool want[N_PROCESSES] = {false};
    bool scoped = ctl->processes != NULL;
    char bad[256];
    if (scoped && !s_parse_processes(ctl->processes, want, bad, sizeof bad))
        return ctl_fail(ctl, CTL_USAGE, 0,
                        "--process: '%s' is not a process of the node (writer, election, "
                        "replicator, compactor, distributor, snapshotter)",
                        bad);
    checker_t c = {.ctl = ctl,
                   .timeout_ms = ctl->timeout_given ? ctl->timeout_ms : CTL_CHECK_TIMEOUT_MS};
    struct stat st;
    int stat_rc = stat(dir, &st);
    if (stat_rc != 0 || !S_ISDIR(st.st_mode)) {
        s_add(&c, "dir", STATE_CRITICAL, "%s: %s", dir,
              stat_rc ? strerror(errno) : "not a directory");
    } else {
        /* The writer publishes its raft endpoint only on a cluster node. */
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/writer.endpoints", dir);
        zconfig_t *writer = zconfig_load(path);
        bool cluster = writer && zconfig_locate(writer, "writer/raft");
        zconfig_destroy(&writer);
        /* The writer always; a cluster node's consensus pair too; the others
         * when they published a file, since a node may run without them. */
        for (size_t i = 0; i < N_PROCESSES; i++) {
            if (scoped && !want[i])
                continue;
            bool consensus = i == 1 || i == 2;
            s_probe(&c, s_processes[i], dir, scoped || i == 0 || (consensus && cluster));
        }
        if (!scoped || want[0])
            s_role(&c, dir, ctl->max_lag_ms);
        s_disk(&c, dir, ctl->disk_warn_pct, ctl->disk_crit_pct);
        s_writable(&c, dir);
    }
    state_t overall = STATE_OK;
    for (size_t i = 0; i < c.n; i++)
        overall = c.checks[i].state > overall ? c.checks[i].state : overall;
    s_report(&c, dir, overall);
    for (size_t i = 0; i < c.n; i++)
        cJSON_Delete(c.checks[i].numbers);
    return (int)overall;
}
