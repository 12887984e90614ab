/* Helpers every test shares: temporary directories, seeds, polling. */
#ifndef STRATA_TEST_SUPPORT_H
#define STRATA_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strata/client.h"

/* A fresh directory under $TMPDIR (or /tmp) named after tag; caller frees
 * the string and removes the tree with ts_rmtree. Aborts the test on error. */
char *ts_tempdir(const char *tag);
void ts_rmtree(const char *path);
/* Joins dir and name into a static-free malloc'd path. */
char *ts_path(const char *dir, const char *name);
/* A client of endpoint with a timeout per call; fails the test when it
 * cannot be made. */
strata_client_t *ts_connect(const char *endpoint, int timeout_ms);
/* How many lines of the file at path hold needle (a log's lines of one event). */
unsigned ts_lines_with(const char *path, const char *needle);

/* The run's seed: $STRATA_TEST_SEED if set, else from the clock. Printed
 * once per tag so a failure can be replayed. */
uint64_t ts_seed(const char *tag);
/* xorshift64*: deterministic for a seed. */
uint64_t ts_rand(uint64_t *state);

/* True when STRATA_SOAK is set to a non-zero value: longer variants. */
bool ts_soak(void);

uint64_t ts_now_ns(void);

/* File helpers for the damage tests. */
uint64_t ts_file_size(const char *path);
void ts_file_truncate(const char *path, uint64_t size);
void ts_file_write_at(const char *path, uint64_t off, const void *buf, size_t len);
void ts_file_read_at(const char *path, uint64_t off, void *buf, size_t len);

/* Runs a Check suite and returns the process exit code. */
typedef struct Suite Suite;
/* Rewrites <wal_dir>/LOGSTATE as a crash would have left it (not a clean
 * close; durable only up to the newest segment's first seq), so damage at
 * the tail afterwards reads as a torn tail rather than as loss. */
void ts_wal_as_crashed(const char *wal_dir);

int ts_run(Suite *suite);

/* Polls cond(arg) until it holds or timeout_ms passes; returns whether it held. */
bool ts_wait_for(bool (*cond)(void *arg), void *arg, unsigned timeout_ms);

/* GET url (http://127.0.0.1:PORT/PATH, as an admin port reports itself)
 * over a plain socket: the whole response, status line and headers too,
 * malloc'd; at most 1 MiB. Aborts the test when it cannot connect. */
char *ts_http_get(const char *url);
/* A TCP port on 127.0.0.1 that nothing holds now, from 61000..65535, for
 * a config that must name its ports before any process binds them (a
 * cluster's peer lists). Aborts the test when none is found. */
int ts_free_port(void);
/* A process's private resident memory (RssAnon), KiB: what it allocated,
 * not the files and shared rings it maps. */
uint64_t ts_rss_kib(int pid);
/* Built with AddressSanitizer: freed memory sits in its quarantine, so a
 * process's RSS says nothing about what it holds. */
bool ts_sanitized(void);

#endif
