/* strata_err_t names and the error-detail helper shared by every module. */
#include "strata/err.h"

#include <stdio.h>

static strata_log_fn log_hook;

const char *strata_strerror(int code)
{
    switch (code) {
    case STRATA_OK:
        return "ok";
    case STRATA_EINVAL:
        return "invalid argument";
    case STRATA_ENOTFOUND:
        return "not found";
    case STRATA_EIO:
        return "I/O error";
    case STRATA_ECORRUPT:
        return "corruption";
    case STRATA_ENOMEM:
        return "out of memory";
    case STRATA_ETOOBIG:
        return "too big";
    case STRATA_EREADONLY:
        return "read-only after an earlier failure";
    case STRATA_EVERSION:
        return "unsupported format version";
    case STRATA_ECLOSED:
        return "closed";
    case STRATA_EEXIST:
        return "already exists";
    case STRATA_ETIMEDOUT:
        return "timed out";
    case STRATA_ELAPPED:
        return "lapped by the producer";
    case STRATA_ESTALE:
        return "stale (replaced or closed by its producer)";
    case STRATA_ETRUNCATED:
        return "no longer retained";
    case STRATA_ECONFLICT:
        return "log mismatch";
    case STRATA_EBUSY:
        return "busy: queue full";
    case STRATA_EPERM:
        return "not permitted for this key's role";
    case STRATA_ENOTMASTER:
        return "not the master";
    }
    return "unknown error";
}

int strata_error_set(strata_error_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void strata_set_log(strata_log_fn fn)
{
    log_hook = fn;
}

void strata_log(strata_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    strata_log_fn fn = log_hook;
    if (fn)
        fn(level, line);
    else
        fprintf(stderr, "strata: %s\n", line);
}
