/* Service configuration: the node registry's default ZPL tree (czmq
 * zconfig), then the node's ZPL file, then STRATA_<SECTION>_<KEY>
 * environment variables, later sources winning. One file serves every
 * process of a node: each loads all of it and reads its own section and the
 * shared ones. Every key must exist in the defaults, and every STRATA_
 * variable must name one of the registry's keys or be one of
 * svc_env_allowed, so a typo is an error naming the file and the key (or
 * the variable) rather than a silently ignored setting. */
#ifndef STRATA_SVC_CONFIG_H
#define STRATA_SVC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "strata/err.h"

typedef struct svc_config svc_config_t;

/* Every section and key a node's config may hold, with its default: the
 * shared `node`, `security` and `log`, then one section per process. */
extern const char svc_node_defaults[];
/* STRATA_ environment variables that are not config keys but are read
 * elsewhere (the CLI, the launcher, the tests); NULL-terminated. */
extern const char *const svc_env_allowed[];

/* defaults: ZPL text, two levels (section/key): svc_node_defaults for a
 * process; a test embedding a server may pass a tree of its own. file: NULL
 * for none. STRATA_ variables are checked against svc_node_defaults and
 * defaults together. */
int svc_config_load(const char *defaults, const char *file, svc_config_t **cfg_p,
                    strata_error_t *err);
void svc_config_destroy(svc_config_t **cfg_p);

/* "section/key" -> value; the key must be one the defaults declare. */
const char *svc_config_get(const svc_config_t *cfg, const char *path);
/* Parses a whole unsigned number; the error names the key, its value and
 * where the value came from. */
int svc_config_u64(const svc_config_t *cfg, const char *path, uint64_t *out, strata_error_t *err);
int svc_config_bool(const svc_config_t *cfg, const char *path, bool *out, strata_error_t *err);

/* The effective configuration, one "section/key = value  # source" per line.
 * only: NULL-terminated "section" or "section/key" entries limiting what is
 * printed to what the process reads; NULL prints everything. */
void svc_config_print(const svc_config_t *cfg, FILE *out, const char *const *only);

/* A service's config at start: loads the node's (svc_node_defaults and
 * file), checks it with check and the log level, and with print_config
 * prints what the process reads (only). Returns -1 with *cfg_p to go on,
 * else the exit code: 0 after printing, 2 for a bad config (said on stderr
 * as "prog: why"), so --print-config refuses what a start would. */
int svc_config_start(const char *prog, const char *file, bool print_config,
                     int (*check)(svc_config_t *cfg, strata_error_t *err), const char *const *only,
                     svc_config_t **cfg_p);

/* The command line every service takes: -c/--config FILE (default
 * $STRATA_CONFIG; empty means none), --print-config, -h/--help, --version.
 * Returns -1 to go on with *config_file and *print_config set, else the exit
 * code (0 after --help or --version, 2 on a usage error, having printed why). */
int svc_parse_args(int argc, char **argv, const char *prog, const char *version,
                   void (*usage)(FILE *), const char **config_file, bool *print_config);

#endif
