/* Service logging: one event per line on stderr (a supervisor, systemd or
 * Docker, collects it), filtered by level, every line with its time (RFC
 * 3339, milliseconds, zone) and process name. The event itself is
 * logfmt-like `event=x key=value key="quoted value"`; log/format = text
 * prints it as it is after the prefix, json turns the line into one object
 * with time, process, level and each key as a field. The engine's own lines
 * (strata_log) are routed here. */
#ifndef STRATA_SVC_LOG_H
#define STRATA_SVC_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "strata/err.h"

/* ident: the program (strata-writer; the process is named writer). level:
 * "error", "warning", "info" or "debug"; format: "text" or "json". The
 * name is taken first, so a line about a refused level still carries it. */
int svc_log_init(const char *ident, const char *level, const char *format, strata_error_t *err);
/* svc_log_init's checks of level and format alone, for --print-config. */
int svc_log_check(const char *level, const char *format, strata_error_t *err);
void svc_log(strata_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line as svc_log would print it, into out, at the given time (ms since
 * the epoch): what the tests pin. */
void svc_log_format(FILE *out, bool json, const char *process, strata_log_level_t level,
                    long long epoch_ms, const char *line);

/* A failure that persists across retries (a writer down, a disk that
 * refuses writes) is one line when it begins, not one per retry: the loop
 * that retries logs when svc_episode_failed says so, and once more, with
 * the count, when svc_episode_cleared ends the episode. A different error
 * code is a new condition, logged again. One owner thread per episode. */
typedef struct {
    int code;          /* of the failure being repeated; 0 when none is */
    uint64_t failures; /* in this episode, the logged ones included */
} svc_episode_t;

/* Counts a failure; true when it is to be logged: the first of an episode,
 * or one with a code other than the last one's. */
bool svc_episode_failed(svc_episode_t *episode, int code);
/* A success: returns how many failures the episode it ends had (0 when
 * none was going on), for the one line saying the condition cleared. */
uint64_t svc_episode_cleared(svc_episode_t *episode);

#define log_error(...)   svc_log(STRATA_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) svc_log(STRATA_LOG_WARNING, __VA_ARGS__)
#define log_info(...)    svc_log(STRATA_LOG_INFO, __VA_ARGS__)
#define log_debug(...)   svc_log(STRATA_LOG_DEBUG, __VA_ARGS__)

#endif
