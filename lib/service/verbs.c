/* The control-verb table's checks, shared by every service. */
#include "verbs.h"

#include <stdio.h>
#include <string.h>

const svc_verb_t *svc_verbs_find(const svc_verb_t *verbs, size_t n, const strata_request_t *req,
                                 bool from_control, char *why, size_t why_cap)
{
    const char *name = req->verb ? req->verb : "";
    for (size_t i = 0; i < n; i++) {
        const svc_verb_t *v = &verbs[i];
        if (strcmp(v->name, name))
            continue;
        if (v->control_only && !from_control) {
            snprintf(why, why_cap, "control.verb: '%s' is only accepted on the control endpoint",
                     v->name);
            return NULL;
        }
        if (req->n_args < v->min_args || req->n_args > v->max_args) {
            snprintf(why, why_cap, "control %s: takes %zu..%zu args, got %zu", v->name, v->min_args,
                     v->max_args, req->n_args);
            return NULL;
        }
        return v;
    }
    size_t used = (size_t)snprintf(why, why_cap, "control.verb: '%s' unknown (", name);
    for (size_t i = 0; i < n && used < why_cap; i++)
        used += (size_t)snprintf(why + used, why_cap - used, "%s%s", i ? ", " : "", verbs[i].name);
    if (used < why_cap)
        snprintf(why + used, why_cap - used, ")");
    return NULL;
}

bool svc_verbs_dispatch(const svc_verb_t *verbs, size_t n, const strata_request_t *req,
                        bool from_control, void *call, char *why, size_t why_cap)
{
    const svc_verb_t *v = svc_verbs_find(verbs, n, req, from_control, why, why_cap);
    if (!v)
        return false;
    v->fn(call);
    return true;
}
