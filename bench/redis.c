/* redis-server as a child of strata-bench: started on a loopback port in its
 * own directory and waited for until it answers PING. The service verb runs
 * it as a single server, the cluster verb as a master with replicas and as
 * Sentinels. */
#define _GNU_SOURCE
#include "bench.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define START_DEADLINE_S 15.0
#define START_ATTEMPTS   3
#define MAX_ARGS         32

redisContext *bench_redis_connect(int port, long connect_timeout_ms, long reply_timeout_ms)
{
    struct timeval timeout = {connect_timeout_ms / 1000, (connect_timeout_ms % 1000) * 1000};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, timeout);
    if (ctx && !ctx->err) {
        struct timeval reply_timeout = {reply_timeout_ms / 1000, (reply_timeout_ms % 1000) * 1000};
        redisSetTimeout(ctx, reply_timeout);
    }
    return ctx;
}

/* PING until PONG or START_DEADLINE_S. 1 when ready, 0 when the child
 * ended first (it is reaped; the reason is in how), -1 when the time ran out. */
static int s_wait_ready(pid_t pid, int port, char *version, size_t version_size, char *how,
                        size_t how_size)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(START_DEADLINE_S * 1e9);
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            bench_describe_status(status, how, how_size);
            return 0;
        }
        redisContext *ctx = bench_redis_connect(port, 200, 1000);
        bool ready = false;
        if (ctx && !ctx->err) {
            redisReply *reply = redisCommand(ctx, "PING");
            ready = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
            freeReplyObject(reply);
            reply = ready && version ? redisCommand(ctx, "INFO server") : NULL;
            const char *field = reply && reply->type == REDIS_REPLY_STRING
                                    ? strstr(reply->str, "redis_version:")
                                    : NULL;
            if (field)
                snprintf(version, version_size, "%.*s", (int)strcspn(field + 14, "\r\n"),
                         field + 14);
            freeReplyObject(reply);
        }
        redisFree(ctx);
        if (ready)
            return 1;
        if (bench_now_ns() >= deadline)
            return -1;
        bench_sleep_ms(10);
    }
}

pid_t bench_redis_start(const char *bin, const char *dir, const char *log_path,
                        const char *config_file, const char *const args[], int *port, char *version,
                        size_t version_size)
{
    /* A port picked here can be taken before redis binds it; redis then
     * exits at once and a fresh port is tried. A port given is kept. */
    bool fixed_port = *port > 0;
    for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
        if (!fixed_port && bench_free_ports(port, 1) != 0)
            return -1;
        char port_arg[16];
        snprintf(port_arg, sizeof port_arg, "%d", *port);
        const char *argv[MAX_ARGS];
        size_t n = 0;
        argv[n++] = bin;
        if (config_file)
            argv[n++] = config_file;
        const char *const fixed[] = {"--port", port_arg, "--bind",      "127.0.0.1",
                                     "--dir",  dir,      "--daemonize", "no"};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
            argv[n++] = fixed[i];
        for (size_t i = 0; args && args[i]; i++) {
            if (n + 1 >= MAX_ARGS) {
                fprintf(stderr, "strata-bench: redis-server: more than %d arguments\n", MAX_ARGS);
                return -1;
            }
            argv[n++] = args[i];
        }
        argv[n] = NULL;
        const char *const env[] = {NULL};
        pid_t pid = bench_spawn((char *const *)argv, env, log_path);
        if (pid < 0)
            return -1;
        char how[64] = "";
        int ready = s_wait_ready(pid, *port, version, version_size, how, sizeof how);
        if (ready == 1)
            return pid;
        if (ready < 0) {
            fprintf(stderr,
                    "strata-bench: redis-server on port %d not answering PING after %.0f s\n",
                    *port, START_DEADLINE_S);
            bench_show_log_tail(log_path);
            bench_stop_child(pid, "redis-server", 5.0, log_path);
            return -1;
        }
        fprintf(stderr, "strata-bench: redis-server on port %d ended (%s) before it was ready\n",
                *port, how);
        bench_show_log_tail(log_path);
        if (fixed_port)
            return -1;
    }
    return -1;
}
