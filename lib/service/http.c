/* Admin HTTP on libmicrohttpd; see http.h. Chosen over czmq's means because
 * czmq has no HTTP server, and MHD is small, packaged and runs its own
 * thread. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "procstat.h"

struct svc_http {
    struct MHD_Daemon *daemon;
    int listen_fd;    /* bound and listening, until the daemon takes it */
    char process[32]; /* the process label every sample gets */
    svc_metrics_fn *metrics;
    svc_ready_fn *ready;
    void *arg;
};

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, char *body,
                                 size_t len, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Copies page to out with process="<name>" as the first label of every
 * sample, so that two processes of a node never export one series: the
 * writer's and the compactor's compactions, or process_* of each. */
static void label_samples(const char *page, size_t len, const char *process, FILE *out)
{
    const char *end = page + len;
    for (const char *line = page; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t n = eol ? (size_t)(eol - line) + 1 : (size_t)(end - line);
        size_t name = strcspn(line, "{ \n");
        if (line[0] == '#' || line[0] == '\n' || name >= n)
            fwrite(line, 1, n, out);
        else if (line[name] == '{')
            fprintf(out, "%.*sprocess=\"%s\",%.*s", (int)name + 1, line, process,
                    (int)(n - name - 1), line + name + 1);
        else
            fprintf(out, "%.*s{process=\"%s\"}%.*s", (int)name, line, process, (int)(n - name),
                    line + name);
        line += n;
    }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    svc_http_t *self = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET only\n"), 9, "text/plain");
    if (!strcmp(url, "/metrics")) {
        char *page = NULL, *body = NULL;
        size_t page_len = 0, len = 0;
        FILE *out = open_memstream(&page, &page_len);
        if (!out)
            return MHD_NO;
        self->metrics(self->arg, out);
        svc_procstat_write(out);
        fclose(out);
        out = open_memstream(&body, &len);
        if (!out) {
            free(page);
            return MHD_NO;
        }
        label_samples(page, page_len, self->process, out);
        fclose(out);
        free(page);
        return send_text(conn, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4");
    }
    if (!strcmp(url, "/healthz"))
        return send_text(conn, MHD_HTTP_OK, strdup("ok\n"), 3, "text/plain");
    if (!strcmp(url, "/readyz")) {
        bool ready = self->ready ? self->ready(self->arg) : true;
        return send_text(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         strdup(ready ? "ready\n" : "not ready\n"), ready ? 6 : 10, "text/plain");
    }
    return send_text(conn, MHD_HTTP_NOT_FOUND, strdup("not found\n"), 10, "text/plain");
}

static int parse(const char *key, const char *endpoint, char *host, size_t host_cap,
                 struct sockaddr_in *sa, strata_error_t *err)
{
    if (!endpoint)
        return strata_error_set(err, STRATA_EINVAL, "config: no key '%s'", key);
    unsigned long p = 0;
    const char *colon = strrchr(endpoint, ':');
    char *end = NULL;
    if (colon)
        p = strtoul(colon + 1, &end, 10);
    if (!colon || (size_t)(colon - endpoint) >= host_cap || !end || *end || colon[1] == '\0' ||
        p > 65535)
        return strata_error_set(err, STRATA_EINVAL, "%s: '%s' is not host:port or off", key,
                                endpoint);
    memcpy(host, endpoint, (size_t)(colon - endpoint));
    host[colon - endpoint] = '\0';
    *sa = (struct sockaddr_in){.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return strata_error_set(err, STRATA_EINVAL, "%s: '%s' is not an IPv4 address", key, host);
    sa->sin_port = htons((uint16_t)p);
    return 0;
}

int svc_http_check(const char *key, const char *endpoint, strata_error_t *err)
{
    char host[64];
    struct sockaddr_in sa;
    return endpoint && !strcmp(endpoint, "off") ? 0
                                                : parse(key, endpoint, host, sizeof host, &sa, err);
}

int svc_http_listen(const char *key, const char *endpoint, svc_http_t **http_p, char *url,
                    size_t url_cap, strata_error_t *err)
{
    *http_p = NULL;
    snprintf(url, url_cap, "off");
    if (endpoint && !strcmp(endpoint, "off"))
        return 0;
    char host[64];
    struct sockaddr_in sa;
    int rc = parse(key, endpoint, host, sizeof host, &sa, err);
    if (rc)
        return rc;
    svc_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return strata_error_set(err, STRATA_ENOMEM, "out of memory");
    snprintf(self->process, sizeof self->process, "%.*s", (int)strcspn(key, "/"), key);
    int one = 1;
    self->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* SO_REUSEADDR as MHD's own sockets have it: a restart must not wait
     * out TIME_WAIT. */
    if (self->listen_fd < 0 ||
        setsockopt(self->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(self->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(self->listen_fd, 64) != 0) {
        rc = strata_error_set(err, STRATA_EIO, "%s: cannot listen on %s: %s", key, endpoint,
                              strerror(errno));
        if (self->listen_fd >= 0)
            close(self->listen_fd);
        free(self);
        return rc;
    }
    socklen_t len = sizeof sa;
    getsockname(self->listen_fd, (struct sockaddr *)&sa, &len);
    snprintf(url, url_cap, "http://%s:%u/metrics", host, (unsigned)ntohs(sa.sin_port));
    *http_p = self;
    return 0;
}

int svc_http_serve(svc_http_t *self, svc_metrics_fn *metrics, svc_ready_fn *ready, void *arg,
                   strata_error_t *err)
{
    if (!self)
        return 0;
    self->metrics = metrics;
    self->ready = ready;
    self->arg = arg;
    /* MHD owns the socket from here: its stop closes it. */
    self->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                    NULL, handle, self, MHD_OPTION_LISTEN_SOCKET, self->listen_fd,
                                    MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
                                    10u, MHD_OPTION_END);
    if (!self->daemon)
        return strata_error_set(err, STRATA_EIO, "cannot start the metrics HTTP server");
    self->listen_fd = -1;
    return 0;
}

int svc_http_start(const char *key, const char *endpoint, svc_metrics_fn *metrics,
                   svc_ready_fn *ready, void *arg, svc_http_t **http_p, char *url, size_t url_cap,
                   strata_error_t *err)
{
    int rc = svc_http_listen(key, endpoint, http_p, url, url_cap, err);
    if (!rc && (rc = svc_http_serve(*http_p, metrics, ready, arg, err)))
        svc_http_stop(http_p);
    return rc;
}

void svc_http_stop(svc_http_t **http_p)
{
    if (!http_p || !*http_p)
        return;
    if ((*http_p)->daemon)
        MHD_stop_daemon((*http_p)->daemon);
    if ((*http_p)->listen_fd >= 0)
        close((*http_p)->listen_fd);
    free(*http_p);
    *http_p = NULL;
}

void prom_counter(FILE *out, const char *name, const char *help, uint64_t value)
{
    fprintf(out, "# HELP strata_%s %s\n# TYPE strata_%s counter\nstrata_%s %llu\n", name, help,
            name, name, (unsigned long long)value);
}

void prom_gauge(FILE *out, const char *name, const char *help, double value)
{
    fprintf(out, "# HELP strata_%s %s\n# TYPE strata_%s gauge\nstrata_%s %.17g\n", name, help, name,
            name, value);
}

static void histogram(FILE *out, const char *name, const char *help, const strata_histogram_t *h,
                      const double *bounds, size_t n, double scale)
{
    fprintf(out, "# HELP strata_%s %s\n# TYPE strata_%s histogram\n", name, help, name);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "strata_%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                (unsigned long long)strata_histogram_count_at_or_below(
                    h, (uint64_t)(bounds[i] * scale)));
    uint64_t count = strata_histogram_count(h);
    fprintf(out, "strata_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    fprintf(out, "strata_%s_sum %.9g\n", name, (double)strata_histogram_sum(h) / scale);
    fprintf(out, "strata_%s_count %llu\n", name, (unsigned long long)count);
}

void prom_latency(FILE *out, const char *name, const char *help, const strata_histogram_t *h)
{
    static const double bounds[] = {10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
                                    5e-3,  10e-3, 25e-3, 50e-3,  100e-3, 250e-3, 1,    10};
    histogram(out, name, help, h, bounds, sizeof bounds / sizeof bounds[0], 1e9);
}

void prom_sizes(FILE *out, const char *name, const char *help, const strata_histogram_t *h)
{
    static const double bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    histogram(out, name, help, h, bounds, sizeof bounds / sizeof bounds[0], 1);
}
