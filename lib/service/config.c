/* Layered ZPL configuration; see config.h for the precedence. */
#include "config.h"
#include "curve.h"
#include "log.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct svc_config {
    zconfig_t *root;
    zhashx_t *source; /* "section/key" -> "default" | file path | env name */
};

void svc_config_destroy(svc_config_t **cfg_p)
{
    if (!cfg_p || !*cfg_p)
        return;
    svc_config_t *cfg = *cfg_p;
    zconfig_destroy(&cfg->root);
    zhashx_destroy(&cfg->source);
    free(cfg);
    *cfg_p = NULL;
}

static void env_name(const char *section, const char *key, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "STRATA_%s_%s", section, key);
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = (char)(out[i] == '-' || out[i] == '.' ? '_' : toupper((unsigned char)out[i]));
}

/* Copies the file's values over the defaults, refusing keys the defaults do
 * not have. */
static int apply_file(svc_config_t *cfg, const char *file, strata_error_t *err)
{
    FILE *probe = fopen(file, "r");
    if (!probe)
        return strata_error_set(err, STRATA_EINVAL, "config %s: %s", file, strerror(errno));
    fclose(probe);
    zconfig_t *loaded = zconfig_load(file);
    if (!loaded)
        return strata_error_set(err, STRATA_EINVAL,
                                "config %s: not valid ZPL (sections at column 0, keys indented "
                                "4 spaces as `key = value`)",
                                file);
    int rc = 0;
    for (zconfig_t *sec = zconfig_child(loaded); sec && !rc; sec = zconfig_next(sec)) {
        const char *sname = zconfig_name(sec);
        if (!zconfig_locate(cfg->root, sname)) {
            rc = strata_error_set(err, STRATA_EINVAL, "config %s: unknown section '%s'", file,
                                  sname);
            break;
        }
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char path[256];
            snprintf(path, sizeof path, "%s/%s", sname, zconfig_name(item));
            zconfig_t *target = zconfig_locate(cfg->root, path);
            if (!target || zconfig_child(item)) {
                rc =
                    strata_error_set(err, STRATA_EINVAL, "config %s: unknown key '%s'", file, path);
                break;
            }
            zconfig_set_value(target, "%s", zconfig_value(item) ? zconfig_value(item) : "");
            zhashx_update(cfg->source, path, (void *)file);
        }
    }
    zconfig_destroy(&loaded);
    return rc;
}

static void add_env_names(zhashx_t *names, zconfig_t *root)
{
    for (zconfig_t *sec = zconfig_child(root); sec; sec = zconfig_next(sec))
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char name[256];
            env_name(zconfig_name(sec), zconfig_name(item), name, sizeof name);
            zhashx_update(names, name, (void *)"");
        }
}

/* A misspelled override would otherwise be ignored without a word, which
 * is worse than a typo in the file: nothing on disk shows it. */
static int check_environment(zconfig_t *defaults, strata_error_t *err)
{
    extern char **environ;
    zconfig_t *registry = zconfig_str_load(svc_node_defaults);
    zhashx_t *names = zhashx_new();
    int rc = 0;
    if (!registry || !names) {
        rc = strata_error_set(err, STRATA_ENOMEM, "out of memory");
        goto done;
    }
    add_env_names(names, registry);
    add_env_names(names, defaults);
    for (const char *const *a = svc_env_allowed; *a; a++)
        zhashx_update(names, *a, (void *)"");
    for (char **e = environ; *e && !rc; e++) {
        if (strncmp(*e, "STRATA_", 7))
            continue;
        char name[256];
        size_t len = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), *e);
        if (!zhashx_lookup(names, name))
            rc = strata_error_set(err, STRATA_EINVAL,
                                  "environment variable %s names no config key (overrides are "
                                  "STRATA_<SECTION>_<KEY> of a key deploy/node.cfg lists)",
                                  name);
    }
done:
    zhashx_destroy(&names);
    zconfig_destroy(&registry);
    return rc;
}

int svc_config_load(const char *defaults, const char *file, svc_config_t **cfg_p,
                    strata_error_t *err)
{
    *cfg_p = NULL;
    svc_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    cfg->root = zconfig_str_load(defaults);
    cfg->source = zhashx_new();
    if (!cfg->root || !cfg->source) {
        svc_config_destroy(&cfg);
        return strata_error_set(err, STRATA_EINVAL, "embedded default config does not parse");
    }
    /* Sources are file paths or env names that outlive the hash only if
     * duplicated. */
    zhashx_set_duplicator(cfg->source, (zhashx_duplicator_fn *)strdup);
    zhashx_set_destructor(cfg->source, (zhashx_destructor_fn *)zstr_free);
    int rc = file ? apply_file(cfg, file, err) : 0;
    if (!rc)
        rc = check_environment(cfg->root, err);
    for (zconfig_t *sec = zconfig_child(cfg->root); sec && !rc; sec = zconfig_next(sec))
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char name[256];
            env_name(zconfig_name(sec), zconfig_name(item), name, sizeof name);
            const char *value = getenv(name);
            if (!value)
                continue;
            zconfig_set_value(item, "%s", value);
            char path[256];
            snprintf(path, sizeof path, "%s/%s", zconfig_name(sec), zconfig_name(item));
            zhashx_update(cfg->source, path, name);
        }
    if (rc) {
        svc_config_destroy(&cfg);
        return rc;
    }
    *cfg_p = cfg;
    return 0;
}

const char *svc_config_get(const svc_config_t *cfg, const char *path)
{
    zconfig_t *item = zconfig_locate(cfg->root, path);
    if (!item)
        return NULL;
    const char *value = zconfig_value(item);
    return value ? value : "";
}

static const char *source_of(const svc_config_t *cfg, const char *path)
{
    const char *src = zhashx_lookup(cfg->source, path);
    return src ? src : "default";
}

int svc_config_u64(const svc_config_t *cfg, const char *path, uint64_t *out, strata_error_t *err)
{
    const char *value = svc_config_get(cfg, path);
    if (!value)
        return strata_error_set(err, STRATA_EINVAL, "config: no key '%s'", path);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-')
        return strata_error_set(err, STRATA_EINVAL,
                                "config %s: '%s' is not a whole non-negative number (from %s)",
                                path, value, source_of(cfg, path));
    *out = v;
    return 0;
}

int svc_config_bool(const svc_config_t *cfg, const char *path, bool *out, strata_error_t *err)
{
    const char *value = svc_config_get(cfg, path);
    if (!value)
        return strata_error_set(err, STRATA_EINVAL, "config: no key '%s'", path);
    if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1"))
        *out = true;
    else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0"))
        *out = false;
    else
        return strata_error_set(err, STRATA_EINVAL, "config %s: '%s' is not true/false (from %s)",
                                path, value, source_of(cfg, path));
    return 0;
}

static bool wanted(const char *const *only, const char *section, const char *path)
{
    if (!only)
        return true;
    for (; *only; only++)
        if (!strcmp(*only, section) || !strcmp(*only, path))
            return true;
    return false;
}

void svc_config_print(const svc_config_t *cfg, FILE *out, const char *const *only)
{
    for (zconfig_t *sec = zconfig_child(cfg->root); sec; sec = zconfig_next(sec))
        for (zconfig_t *item = zconfig_child(sec); item; item = zconfig_next(item)) {
            char path[256];
            snprintf(path, sizeof path, "%s/%s", zconfig_name(sec), zconfig_name(item));
            if (!wanted(only, zconfig_name(sec), path))
                continue;
            fprintf(out, "%-32s = %-32s # %s\n", path,
                    zconfig_value(item) ? zconfig_value(item) : "", source_of(cfg, path));
        }
}

int svc_parse_args(int argc, char **argv, const char *prog, const char *version,
                   void (*usage)(FILE *), const char **config_file, bool *print_config)
{
    static const struct option long_opts[] = {{"config", required_argument, NULL, 'c'},
                                              {"print-config", no_argument, NULL, 'p'},
                                              {"help", no_argument, NULL, 'h'},
                                              {"version", no_argument, NULL, 'V'},
                                              {NULL, 0, NULL, 0}};
    *config_file = getenv("STRATA_CONFIG");
    *print_config = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *config_file = optarg;
            break;
        case 'p':
            *print_config = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, version);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr);
        return 2;
    }
    if (*config_file && !**config_file)
        *config_file = NULL;
    return -1;
}

/* The ZeroMQ endpoints a service binds (empty: a default derived at start).
 * Checked for their form here, so that a typo is refused by --print-config
 * as by the bind it would fail. */
static const char *const s_bind_keys[] = {
    "writer/endpoint",      "writer/control",   "writer/raft",         "compactor/endpoint",
    "snapshotter/endpoint", "distributor/live", "distributor/delayed", "distributor/history",
    "election/bind",        "election/roles",   "replicator/bind",     NULL};

static int check_endpoint(const svc_config_t *cfg, const char *path, strata_error_t *err)
{
    const char *value = svc_config_get(cfg, path);
    if (!value || !*value)
        return 0;
    if (!strncmp(value, "tcp://", 6)) {
        const char *colon = strrchr(value + 6, ':');
        const char *port = colon ? colon + 1 : "";
        char *end = NULL;
        unsigned long n = strtoul(port, &end, 10);
        /* czmq's forms too: * or ! for any free port, *[first-last] or
         * ![first-last] for one in a range. */
        bool port_ok = port[0] == '*' || port[0] == '!' || (*port && !*end && n <= 65535);
        if (colon && colon > value + 6 && port_ok)
            return 0;
    } else if (!strncmp(value, "ipc://", 6)) {
        /* A unix socket's path has to fit sockaddr_un. */
        if (value[6] && strlen(value + 6) < sizeof(((struct sockaddr_un *)0)->sun_path))
            return 0;
        if (value[6])
            return strata_error_set(err, STRATA_EINVAL,
                                    "config %s: '%s' is longer than a unix socket path may be "
                                    "(%zu bytes) (from %s)",
                                    path, value, sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
                                    source_of(cfg, path));
    } else if (!strncmp(value, "inproc://", 9) && value[9]) {
        return 0;
    }
    return strata_error_set(err, STRATA_EINVAL,
                            "config %s: '%s' is not tcp://HOST:PORT (PORT a number, * or !), "
                            "ipc://PATH or inproc://NAME (from %s)",
                            path, value, source_of(cfg, path));
}

/* The checks of what several processes read, run by each that reads it. */
static int check_shared(svc_config_t *cfg, const char *const *only, strata_error_t *err)
{
    int rc = 0;
    if (wanted(only, "security", "security/curve"))
        rc = svc_curve_check(cfg, err);
    for (const char *const *key = s_bind_keys; *key && !rc; key++) {
        char section[64];
        snprintf(section, sizeof section, "%.*s", (int)strcspn(*key, "/"), *key);
        if (wanted(only, section, *key))
            rc = check_endpoint(cfg, *key, err);
    }
    return rc;
}

int svc_config_start(const char *prog, const char *file, bool print_config,
                     int (*check)(svc_config_t *cfg, strata_error_t *err), const char *const *only,
                     svc_config_t **cfg_p)
{
    svc_config_t *cfg = NULL;
    strata_error_t err;
    strata_error_clear(&err);
    *cfg_p = NULL;
    if (svc_config_load(svc_node_defaults, file, &cfg, &err) || check(cfg, &err) ||
        check_shared(cfg, only, &err) ||
        svc_log_check(svc_config_get(cfg, "log/level"), svc_config_get(cfg, "log/format"), &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        svc_config_destroy(&cfg);
        return 2;
    }
    if (print_config) {
        svc_config_print(cfg, stdout, only);
        svc_config_destroy(&cfg);
        return 0;
    }
    *cfg_p = cfg;
    return -1;
}
