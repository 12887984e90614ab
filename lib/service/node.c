/* The node's endpoints files; see node.h. */
#include "node.h"

#include <czmq.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int svc_write_endpoints(const char *path, const char *service, const strata_pair_t *pairs, size_t n,
                        strata_error_t *err)
{
    zconfig_t *root = zconfig_new("root", NULL);
    char key[128], pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(key, sizeof key, "%s/pid", service);
    zconfig_put(root, key, pid);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s/%s", service, pairs[i].name);
        zconfig_put(root, key, pairs[i].value);
    }
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = zconfig_save(root, tmp);
    zconfig_destroy(&root);
    if (rc != 0 || rename(tmp, path) != 0)
        return strata_error_set(err, STRATA_EIO, "cannot write %s", path);
    return 0;
}

int svc_writer_connect(const char *writer_file, int timeout_ms, strata_client_t **client,
                       strata_error_t *err)
{
    if (*client)
        return 0;
    zconfig_t *root = zconfig_load(writer_file);
    const char *ep = root ? zconfig_get(root, "writer/control", "") : "";
    int rc;
    if (!ep || !*ep) {
        rc = strata_error_set(err, STRATA_EIO, "the writer is not running (no %s)", writer_file);
    } else {
        strata_client_options_t co = {.endpoint = ep, .timeout_ms = timeout_ms};
        rc = strata_client_connect(&co, client, err);
    }
    zconfig_destroy(&root);
    return rc;
}

const char *svc_reply_get(const strata_reply_t *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_pairs; i++)
        if (!strcmp(rep->pairs[i].name, name))
            return rep->pairs[i].value;
    return NULL;
}
