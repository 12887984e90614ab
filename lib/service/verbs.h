/* A service's control verbs as rows of one table (Redis's command table):
 * name, arity, whether only the node's own control endpoint may call it,
 * handler and help. The checks live here once: an unknown verb, a wrong
 * number of arguments and a control-only verb from outside each get the same
 * error in every service (proto/PROTOCOL.md, "Control verbs"). */
#ifndef STRATA_SVC_VERBS_H
#define STRATA_SVC_VERBS_H

#include <stdbool.h>
#include <stddef.h>

#include "strata/codec.h"

/* call is the service's own per-request context. */
typedef void svc_verb_fn(void *call);

typedef struct {
    const char *name;
    size_t min_args, max_args;
    bool control_only; /* refused from the client endpoint */
    svc_verb_fn *fn;
    const char *help; /* "ARGS: what it does", listed by `help` */
} svc_verb_t;

/* Finds req's verb among verbs[0..n) and checks it. Returns its row, or
 * NULL with why holding the error message for an STRATA_EINVAL reply:
 *   control.verb: 'V' unknown (ping, ...)
 *   control V: takes MIN..MAX args, got N
 *   control.verb: 'V' is only accepted on the control endpoint */
const svc_verb_t *svc_verbs_find(const svc_verb_t *verbs, size_t n, const strata_request_t *req,
                                 bool from_control, char *why, size_t why_cap);

/* Runs req's verb with call, or returns false with why filled. */
bool svc_verbs_dispatch(const svc_verb_t *verbs, size_t n, const strata_request_t *req,
                        bool from_control, void *call, char *why, size_t why_cap);

#endif
