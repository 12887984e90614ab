/* The admin HTTP port: GET /metrics (Prometheus text 0.0.4), /healthz and
 * /readyz. libmicrohttpd with its internal polling thread, so a scrape
 * never runs on a service's event loop; the callbacks must be thread-safe. */
#ifndef STRATA_SVC_HTTP_H
#define STRATA_SVC_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "strata/err.h"
#include "strata/histogram.h"

typedef struct svc_http svc_http_t;

/* Writes the whole metrics page into out. */
typedef void(svc_metrics_fn)(void *arg, FILE *out);
/* true when the service is ready for traffic (/readyz 200, else 503). */
typedef bool(svc_ready_fn)(void *arg);

/* endpoint: "host:port" (IPv4 host, port 0 picks a free one) or "off", the
 * value of the config key named key (which errors name). The page is what
 * metrics writes followed by the process_* families and strata_build_info
 * (procstat.h), every sample labelled process="<key's section>" (writer for
 * "writer/metrics"): the rule that keeps one figure of two processes of a
 * node apart. url gets
 * "http://host:PORT/metrics" with the bound port, or "off". */
int svc_http_start(const char *key, const char *endpoint, svc_metrics_fn *metrics,
                   svc_ready_fn *ready, void *arg, svc_http_t **http_p, char *url, size_t url_cap,
                   strata_error_t *err);
/* svc_http_start in two steps, so that a service can bind its port before it
 * creates anything on disk and serve once its callbacks have something to
 * read: listen binds (a clash fails here) and queues connections; serve
 * starts answering them. *http_p stays NULL for "off"; serve and stop
 * accept that. */
int svc_http_listen(const char *key, const char *endpoint, svc_http_t **http_p, char *url,
                    size_t url_cap, strata_error_t *err);
int svc_http_serve(svc_http_t *http, svc_metrics_fn *metrics, svc_ready_fn *ready, void *arg,
                   strata_error_t *err);
/* The syntax checks of svc_http_start without listening: what a service's
 * --print-config runs so that it refuses what a start would. */
int svc_http_check(const char *key, const char *endpoint, strata_error_t *err);
void svc_http_stop(svc_http_t **http_p);

/* Prometheus helpers. name without the strata_ prefix. */
void prom_counter(FILE *out, const char *name, const char *help, uint64_t value);
void prom_gauge(FILE *out, const char *name, const char *help, double value);
/* A histogram of nanosecond samples exported in seconds, with fixed `le`
 * buckets from 10 us to 10 s. */
void prom_latency(FILE *out, const char *name, const char *help, const strata_histogram_t *h);
/* A histogram of counts (e.g. batch sizes) with power-of-two buckets; the
 * samples were recorded as plain numbers. */
void prom_sizes(FILE *out, const char *name, const char *help, const strata_histogram_t *h);

#endif
