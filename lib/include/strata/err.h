/* One error space for the whole library: functions return 0 or a negative
 * strata_err_t, and the detail (file, offset, expected vs found) goes into a
 * strata_error_t the caller may pass (or NULL when it does not care). */
#ifndef STRATA_ERR_H
#define STRATA_ERR_H

#include <stdarg.h>

typedef enum {
    STRATA_OK = 0,
    STRATA_EINVAL = -1,    /* bad argument from the caller */
    STRATA_ENOTFOUND = -2, /* key absent or deleted */
    STRATA_EIO = -3,       /* the OS failed an I/O call */
    STRATA_ECORRUPT = -4,  /* data on disk fails a check */
    STRATA_ENOMEM = -5,
    STRATA_ETOOBIG = -6,   /* a length beyond its cap */
    STRATA_EREADONLY = -7, /* an earlier fsync/write failed: no more acks */
    STRATA_EVERSION = -8,  /* a file format version we do not know */
    STRATA_ECLOSED = -9,   /* object is shutting down */
    STRATA_EEXIST = -10,
    STRATA_ETIMEDOUT = -11,  /* no reply within the timeout */
    STRATA_ELAPPED = -12,    /* a ring reader was overwritten: replay from the log */
    STRATA_ESTALE = -13,     /* a ring was replaced or closed by its producer: reopen */
    STRATA_ETRUNCATED = -14, /* the seq asked for is older than what the log retains */
    STRATA_ECONFLICT = -15,  /* a follower append does not match the log: see the hint */
    STRATA_EBUSY = -16,      /* a bounded queue is full: retry once it drains */
    STRATA_EPERM = -17,      /* the caller's role (its CURVE key) may not do this */
    STRATA_ENOTMASTER = -18, /* a cluster node that is not the master: the message names it */
} strata_err_t;

typedef struct {
    int code;
    char msg[512];
} strata_error_t;

const char *strata_strerror(int code);

/* Records code and a printf-style detail into err (if err is non-NULL) and
 * returns code, so a failure path reads `return strata_error_set(err, ...)`. */
int strata_error_set(strata_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void strata_error_clear(strata_error_t *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

/* The library's few log lines (stalls, background errors) go through one
 * hook so a service can route them into its own logger (zsys). The default
 * writes "strata: <line>" to stderr. Lines are key=value events. */
typedef enum {
    STRATA_LOG_ERROR = 0,
    STRATA_LOG_WARNING = 1,
    STRATA_LOG_INFO = 2,
    STRATA_LOG_DEBUG = 3,
} strata_log_level_t;
typedef void (*strata_log_fn)(strata_log_level_t level, const char *line);
/* NULL restores the default. Set it before opening anything. */
void strata_set_log(strata_log_fn fn);
void strata_log(strata_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
