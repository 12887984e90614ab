/* zsys-backed logging; see log.h. */
#include "log.h"

#include <czmq.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

static strata_log_level_t max_level = STRATA_LOG_INFO;

/* zsys formats its timestamp with localtime(), whose static result two
 * threads would overwrite under each other (the writer's sync and job
 * threads and the distributor's pump log beside the main loop). */
static pthread_mutex_t s_emit_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit(strata_log_level_t level, const char *line)
{
    if (level > max_level)
        return;
    pthread_mutex_lock(&s_emit_lock);
    switch (level) {
    case STRATA_LOG_ERROR:
        zsys_error("%s", line);
        break;
    case STRATA_LOG_WARNING:
        zsys_warning("%s", line);
        break;
    case STRATA_LOG_INFO:
        zsys_info("%s", line);
        break;
    case STRATA_LOG_DEBUG:
        zsys_debug("%s", line);
        break;
    }
    pthread_mutex_unlock(&s_emit_lock);
}

static int parse_level(const char *level, strata_error_t *err)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (level && !strcmp(level, names[i]))
            return i;
    strata_error_set(err, STRATA_EINVAL, "log/level: '%s' unknown (error, warning, info, debug)",
                     level ? level : "");
    return -1;
}

int svc_log_check(const char *level, strata_error_t *err)
{
    return parse_level(level, err) < 0 ? STRATA_EINVAL : 0;
}

int svc_log_init(const char *ident, const char *level, strata_error_t *err)
{
    int found = parse_level(level, err);
    if (found < 0)
        return STRATA_EINVAL;
    max_level = (strata_log_level_t)found;
    zsys_set_logident(ident);
    zsys_set_logstream(stderr);
    zsys_set_logsystem(false);
    strata_set_log(emit);
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
