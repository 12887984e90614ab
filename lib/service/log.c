/* Service logging; see log.h. Written here rather than through zsys, whose
 * prefix has a two-digit year, no milliseconds and no zone. */
#include "log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static strata_log_level_t max_level = STRATA_LOG_INFO;
static bool json_format;
static char process_name[32] = "strata";

/* One write per line, and localtime_r's zone state, under one lock: the
 * writer's sync and job threads and the distributor's pump log beside the
 * main loop. */
static pthread_mutex_t s_emit_lock = PTHREAD_MUTEX_INITIALIZER;

/* 2026-12-04T23:41:32.123+01:00 */
static void rfc3339(long long epoch_ms, char *out, size_t cap)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char date[32], zone[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm); /* +0100 */
    snprintf(out, cap, "%s.%03lld%.3s:%.2s", date, epoch_ms % 1000, zone, zone + 3);
}

/* Adds the logfmt pairs of line to obj; text that is not key=value goes
 * into "msg". A key that would hide time, process or level gets a '_'. */
static void add_pairs(cJSON *obj, const char *line)
{
    char *msg = calloc(1, strlen(line) + 1), *value = malloc(strlen(line) + 1);
    if (!msg || !value)
        goto done;
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *key = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
            p++;
        if (p == key || *p != '=') { /* not a pair: the word goes to msg */
            while (*p && *p != ' ')
                p++;
            if (p > key)
                sprintf(msg + strlen(msg), "%s%.*s", msg[0] ? " " : "", (int)(p - key), key);
            continue;
        }
        size_t key_len = (size_t)(p - key);
        size_t n = 0;
        p++;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                value[n++] = (*p == '\\' && p[1]) ? *++p : *p;
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ')
                value[n++] = *p++;
        }
        value[n] = '\0';
        char name[72];
        bool reserved = (key_len == 4 && !strncmp(key, "time", 4)) ||
                        (key_len == 5 && !strncmp(key, "level", 5)) ||
                        (key_len == 7 && !strncmp(key, "process", 7));
        snprintf(name, sizeof name, "%s%.*s", reserved ? "_" : "", (int)key_len, key);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, name); /* the last one stands */
        cJSON_AddStringToObject(obj, name, value);
    }
    if (msg[0])
        cJSON_AddStringToObject(obj, "msg", msg);
done:
    free(msg);
    free(value);
}

void svc_log_format(FILE *out, bool json, const char *process, strata_log_level_t level,
                    long long epoch_ms, const char *line)
{
    char when[48];
    rfc3339(epoch_ms, when, sizeof when);
    const char *name = level_names[level];
    if (!json) {
        fprintf(out, "%s %s %s %s\n", when, process, name, line);
        return;
    }
    cJSON *obj = cJSON_CreateObject();
    char *text = NULL;
    if (obj) {
        cJSON_AddStringToObject(obj, "time", when);
        cJSON_AddStringToObject(obj, "process", process);
        cJSON_AddStringToObject(obj, "level", name);
        add_pairs(obj, line);
        text = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
    }
    if (text)
        fprintf(out, "%s\n", text);
    else /* out of memory: the line still goes out, as text */
        fprintf(out, "%s %s %s %s\n", when, process, name, line);
    cJSON_free(text);
}

static void emit(strata_log_level_t level, const char *line)
{
    if (level > max_level)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    char *text = NULL;
    size_t len = 0;
    FILE *buf = open_memstream(&text, &len);
    pthread_mutex_lock(&s_emit_lock);
    if (buf) { /* built whole, then one write: lines of two processes on one pipe stay whole */
        svc_log_format(buf, json_format, process_name, level, ms, line);
        fclose(buf);
        fwrite(text, 1, len, stderr);
    } else {
        svc_log_format(stderr, json_format, process_name, level, ms, line);
    }
    fflush(stderr);
    pthread_mutex_unlock(&s_emit_lock);
    free(text);
}

static int parse_level(const char *level, strata_error_t *err)
{
    for (int i = 0; i < 4; i++)
        if (level && !strcmp(level, level_names[i]))
            return i;
    strata_error_set(err, STRATA_EINVAL, "log/level: '%s' unknown (error, warning, info, debug)",
                     level ? level : "");
    return -1;
}

/* 0 text, 1 json, -1 neither. NULL is text: a config without the key. */
static int parse_format(const char *format, strata_error_t *err)
{
    if (!format || !strcmp(format, "text"))
        return 0;
    if (!strcmp(format, "json"))
        return 1;
    strata_error_set(err, STRATA_EINVAL, "log/format: '%s' unknown (text, json)", format);
    return -1;
}

int svc_log_check(const char *level, const char *format, strata_error_t *err)
{
    return parse_level(level, err) < 0 || parse_format(format, err) < 0 ? STRATA_EINVAL : 0;
}

int svc_log_init(const char *ident, const char *level, const char *format, strata_error_t *err)
{
    const char *name = strncmp(ident, "strata-", 7) ? ident : ident + 7;
    snprintf(process_name, sizeof process_name, "%s", name);
    strata_set_log(emit);
    int found = parse_level(level, err), json = parse_format(format, err);
    if (found < 0 || json < 0)
        return STRATA_EINVAL;
    max_level = (strata_log_level_t)found;
    json_format = json == 1;
    return 0;
}

void svc_log(strata_log_level_t level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(level, line);
}

bool svc_episode_failed(svc_episode_t *episode, int code)
{
    bool news = episode->failures == 0 || episode->code != code;
    episode->code = code;
    episode->failures++;
    return news;
}

uint64_t svc_episode_cleared(svc_episode_t *episode)
{
    uint64_t failures = episode->failures;
    *episode = (svc_episode_t){0};
    return failures;
}
