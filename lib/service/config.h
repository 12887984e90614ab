/* Service configuration: an embedded default ZPL tree (czmq zconfig), then
 * the node's ZPL file, then STRATA_<SECTION>_<KEY> environment variables,
 * later sources winning. Every key must exist in the defaults, so a typo in
 * a file is an error naming the file and the key rather than a silently
 * ignored setting. */
#ifndef STRATA_SVC_CONFIG_H
#define STRATA_SVC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "strata/err.h"

typedef struct svc_config svc_config_t;

/* defaults: ZPL text, two levels (section/key). file: NULL for none. */
int svc_config_load(const char *defaults, const char *file, svc_config_t **cfg_p,
                    strata_error_t *err);
void svc_config_destroy(svc_config_t **cfg_p);

/* "section/key" -> value; the key must be one the defaults declare. */
const char *svc_config_get(const svc_config_t *cfg, const char *path);
/* Parses a whole unsigned number; the error names the key, its value and
 * where the value came from. */
int svc_config_u64(const svc_config_t *cfg, const char *path, uint64_t *out, strata_error_t *err);
int svc_config_bool(const svc_config_t *cfg, const char *path, bool *out, strata_error_t *err);

/* The effective configuration, one "section/key = value  # source" per line. */
void svc_config_print(const svc_config_t *cfg, FILE *out);

/* The command line every service takes: -c/--config FILE (default
 * $STRATA_CONFIG; empty means none), --print-config, -h/--help, --version.
 * Returns -1 to go on with *config_file and *print_config set, else the exit
 * code (0 after --help or --version, 2 on a usage error, having printed why). */
int svc_parse_args(int argc, char **argv, const char *prog, const char *version,
                   void (*usage)(FILE *), const char **config_file, bool *print_config);

#endif
