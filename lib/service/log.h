/* Service logging: one key=value event per line on stderr through zsys,
 * filtered by level. The engine's own lines (strata_log) are routed here. */
#ifndef STRATA_SVC_LOG_H
#define STRATA_SVC_LOG_H

#include "strata/err.h"

/* level: "error", "warning", "info" or "debug". */
int svc_log_init(const char *ident, const char *level, strata_error_t *err);
/* svc_log_init's check of level alone, for --print-config. */
int svc_log_check(const char *level, strata_error_t *err);
void svc_log(strata_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   svc_log(STRATA_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) svc_log(STRATA_LOG_WARNING, __VA_ARGS__)
#define log_info(...)    svc_log(STRATA_LOG_INFO, __VA_ARGS__)
#define log_debug(...)   svc_log(STRATA_LOG_DEBUG, __VA_ARGS__)

#endif
