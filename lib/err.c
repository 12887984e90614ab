/* strata_err_t names and the error-detail helper shared by every module. */
#include "strata/err.h"

#include <stdio.h>

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
