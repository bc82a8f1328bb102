/*
 * The daemon's metrics: `tierctl metrics` and the optional /metrics listener
 * (metrics_listen). Both print the same Prometheus text: the gauges of the
 * daemon's state, gathered now (catalog counts on the thread pool), then the
 * counters and histograms of lib/metrics.c.
 *
 * The listener is a minimal HTTP/1.0 server for a scraper on a trusted
 * network: one request per connection, at most MAX_CONNS at once, each with
 * a deadline for its request, which may be at most REQ_MAX bytes. Loop thread.
 */
#include "cache.h"
#include "catalog.h"
#include "log.h"
#include "metrics.h"
#include "service_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_CONNS   16
#define REQ_MAX     8192
#define DEADLINE_MS 10000

/* ---- gathering and printing ------------------------------------------------ */

struct render {
	uv_work_t work;
	struct service *s;
	struct td_catalog_stats st;
	int r;
	uint64_t cache_fs_bytes;
	svc_metrics_cb cb;
	void *data;
};

static void w_gather(uv_work_t *w)
{
	struct render *j = w->data;
	struct td_catalog_error ce;
	struct statvfs vfs;

	uv_mutex_lock(&j->s->rcat_lock);
	j->r = td_catalog_stats(&j->st, j->s->rcat, &ce);
	uv_mutex_unlock(&j->s->rcat_lock);
	if (statvfs(j->s->conf->c->cache_dir, &vfs) == 0)
		j->cache_fs_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
	td_metrics_family(f, name, "gauge", help);
	td_metrics_sample(f, name, v, NULL);
}

static void print_state(FILE *f, const struct render *j)
{
	struct service *s = j->s;
	const struct td_config *conf = s->conf->c;
	const char *l[5] = { NULL };

	td_metrics_family(f, "tierd_build_info", "gauge", "Always 1; the version in a label.");
	l[0] = "version";
	l[1] = TD_VERSION;
	td_metrics_sample(f, "tierd_build_info", 1, l);
	gauge(f, "tierd_start_time_seconds", "When this tierd started, in seconds since the epoch.",
	      (double)(td_now_ns() - (td_monotonic_ns() - s->start_ns)) / 1e9);
	if (j->r >= 0) {
		td_metrics_family(f, "tierd_files", "gauge", "Files in the catalog, by state.");
		for (int st = 0; st < TD_CATALOG_STATE_COUNT; st++) {
			l[0] = "state";
			l[1] = td_catalog_state_name((enum td_catalog_state)st);
			td_metrics_sample(f, "tierd_files", (double)j->st.files[st], l);
		}
		td_metrics_family(f, "tierd_file_bytes", "gauge",
		                  "Bytes of the files in the catalog, by state.");
		for (int st = 0; st < TD_CATALOG_STATE_COUNT; st++) {
			l[0] = "state";
			l[1] = td_catalog_state_name((enum td_catalog_state)st);
			td_metrics_sample(f, "tierd_file_bytes", (double)j->st.bytes[st], l);
		}
		gauge(f, "tierd_cache_used_bytes",
		      "Bytes of the cache copies, dirty ones included.",
		      (double)td_cache_used_bytes(&j->st));
	}
	gauge(f, "tierd_cache_limit_bytes", "The cache's size limit (cache_size).",
	      (double)td_cache_limit_of(&conf->cache_size, j->cache_fs_bytes));
	gauge(f, "tierd_queued_files", "Files waiting for a transfer slot.",
	      s->mover ? (double)td_mover_queued(s->mover) : 0);
	gauge(f, "tierd_in_flight_files", "Files being migrated or recalled now.",
	      s->mover ? (double)td_mover_in_flight(s->mover) : 0);
	td_metrics_family(f, "tierd_target_up", "gauge",
	                  "1 when the target answers tierd's requests, 0 when not.");
	for (size_t i = 0; i < s->n_targets; i++) {
		const struct td_reach_state *rs = td_reach_get(s->reach, s->targets[i].name);

		l[0] = "target";
		l[1] = s->targets[i].name;
		td_metrics_sample(f, "tierd_target_up", s->targets[i].t && rs->reachable ? 1 : 0,
		                  l);
	}
	td_metrics_family(f, "tierd_last_run_timestamp_seconds", "gauge",
	                  "When each policy's last run ended, in seconds since the epoch.");
	for (size_t i = 0; i < s->n_last_runs; i++) {
		l[0] = "policy";
		l[1] = s->last_runs[i].policy;
		td_metrics_sample(f, "tierd_last_run_timestamp_seconds",
		                  (double)s->last_runs[i].ended_ns / 1e9, l);
	}
	if (s->rview) {
		struct td_rview_stats rs;

		td_rview_stats(s->rview, &rs);
		td_metrics_family(f, "tierd_cache_evictions_total", "counter",
		                  "Cache copies evicted to keep the cache under its limit.");
		td_metrics_sample(f, "tierd_cache_evictions_total", (double)rs.evictions, NULL);
		gauge(f, "tierd_chunk_memory_peak_bytes",
		      "The most memory the remote view's read buffers have held at once.",
		      (double)rs.chunk_mem_peak_bytes);
	}
}

static void a_gather(uv_work_t *w, int status)
{
	struct render *j = w->data;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r = 0;

	(void)status;
	if (!f) {
		r = -errno;
	} else {
		print_state(f, j);
		r = td_metrics_write(f);
		if (fclose(f) != 0 && r == 0)
			r = -EIO;
	}
	j->cb(j->data, r < 0 ? NULL : text, r < 0 ? 0 : len, r);
	free(text);
	free(j);
}

int svc_metrics_render(struct service *s, svc_metrics_cb cb, void *data)
{
	struct render *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	j->s = s;
	j->cb = cb;
	j->data = data;
	j->work.data = j;
	r = uv_queue_work(s->loop, &j->work, w_gather, a_gather);
	if (r < 0)
		free(j);
	return r;
}

/* ---- tierctl metrics ---------------------------------------------------------- */

static void on_cmd_text(void *data, const char *text, size_t len, int err)
{
	struct client *c = data;

	if (err < 0)
		client_send(c, td_ctl_error_reply(err, "cannot print the metrics"));
	else
		client_send(c, json_pack("{s:b, s:s%}", "ok", 1, "text", text, len));
	svc_work_done(c);
	client_unref(c);
}

static void w_nothing(uv_work_t *w)
{
	(void)w;
}

/* The client's pool slot is taken by a no-op so svc_work_done balances. */
static void a_cmd(uv_work_t *w, int status)
{
	struct client *c = w->data;
	int r;

	free(w);
	(void)status;
	r = svc_metrics_render(c->svc, on_cmd_text, c);
	if (r < 0) {
		client_send(c, td_ctl_error_reply(r, "cannot print the metrics"));
		svc_work_done(c);
		client_unref(c);
	}
}

void cmd_metrics(struct service *s, struct client *c, json_t *args)
{
	uv_work_t *w = calloc(1, sizeof(*w));

	(void)s;
	(void)args;
	if (!w) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	w->data = c;
	client_ref(c);
	if (svc_queue_work(c, w, w_nothing, a_cmd) < 0) {
		client_unref(c);
		free(w);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}

/* ---- the /metrics listener ---------------------------------------------------- */

struct mconn {
	struct metrics_http *mh;
	struct mconn *next, *prev;
	uv_tcp_t tcp;
	uv_timer_t deadline;
	uv_write_t wr;
	int open_handles;
	char req[REQ_MAX];
	size_t req_len;
	char *resp;
	bool answered, closing;
};

struct metrics_http {
	struct service *s;
	uv_tcp_t server;
	char *listen; /* what it is bound to */
	struct mconn *conns;
	unsigned n_conns;
	bool closing;
};

static void mh_free_if_done(struct metrics_http *mh)
{
	if (mh->closing && !mh->conns && !mh->server.data) {
		free(mh->listen);
		free(mh);
	}
}

/* Drops one of the connection's holds (its two handles, a render); the last
 * frees it. */
static void conn_release(struct mconn *c)
{
	struct metrics_http *mh = c->mh;

	if (--c->open_handles > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		mh->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	mh->n_conns--;
	free(c->resp);
	free(c);
	mh_free_if_done(mh);
}

static void conn_closed(uv_handle_t *h)
{
	conn_release(h->data);
}

static void conn_close(struct mconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->deadline);
	uv_close((uv_handle_t *)&c->deadline, conn_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

static void respond(struct mconn *c, int code, const char *reason, const char *ctype,
                    const char *body, size_t len)
{
	uv_buf_t b;
	int n;

	if (c->answered || c->closing)
		return;
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	n = asprintf(&c->resp,
	             "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n\r\n%.*s",
	             code, reason, ctype, len, (int)len, body);
	if (n < 0) {
		c->resp = NULL;
		conn_close(c);
		return;
	}
	b = uv_buf_init(c->resp, (unsigned)n);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
		conn_close(c);
}

static void on_http_text(void *data, const char *text, size_t len, int err)
{
	struct mconn *c = data;

	if (c->closing) {
		conn_release(c); /* the render's hold */
		return;
	}
	c->open_handles--;
	if (err < 0) {
		respond(c, 500, "Internal Server Error", "text/plain", "metrics failed\n", 15);
		return;
	}
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static void on_request(struct mconn *c)
{
	static const char nf[] = "tierd serves GET /metrics only\n";
	char method[8], path[64];

	if (sscanf(c->req, "%7s %63s", method, path) != 2) {
		respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
		return;
	}
	if (strcmp(method, "GET") != 0) {
		respond(c, 405, "Method Not Allowed", "text/plain", nf, sizeof(nf) - 1);
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strncmp(path, "/metrics?", 9) != 0) {
		respond(c, 404, "Not Found", "text/plain", nf, sizeof(nf) - 1);
		return;
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->open_handles++; /* held by the render until on_http_text */
	if (svc_metrics_render(c->mh->s, on_http_text, c) < 0) {
		c->open_handles--;
		respond(c, 503, "Service Unavailable", "text/plain", "busy\n", 5);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mconn *c = h->data;

	(void)suggested;
	buf->base = c->req + c->req_len;
	buf->len = REQ_MAX - 1 - c->req_len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct mconn *c = st->data;

	(void)buf;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->req_len += (size_t)n;
	c->req[c->req_len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
		on_request(c);
	else if (c->req_len >= REQ_MAX - 1)
		respond(c, 431, "Request Header Fields Too Large", "text/plain", "too long\n", 9);
}

static void on_deadline(uv_timer_t *t)
{
	struct mconn *c = t->data;

	if (!c->answered)
		conn_close(c);
}

static void on_conn(uv_stream_t *server, int status)
{
	struct metrics_http *mh = server->data;
	struct mconn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c || uv_tcp_init(mh->s->loop, &c->tcp) < 0) {
		free(c);
		return;
	}
	c->mh = mh;
	c->tcp.data = c;
	c->open_handles = 2;
	uv_timer_init(mh->s->loop, &c->deadline);
	c->deadline.data = c;
	c->next = mh->conns;
	if (mh->conns)
		mh->conns->prev = c;
	mh->conns = c;
	mh->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || mh->n_conns > MAX_CONNS) {
		conn_close(c); /* over the cap: closed at once, scrapers retry */
		return;
	}
	uv_timer_start(&c->deadline, on_deadline, DEADLINE_MS, 0);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

static void server_closed(uv_handle_t *h)
{
	struct metrics_http *mh = h->data;

	mh->server.data = NULL;
	mh_free_if_done(mh);
}

static void mh_close(struct metrics_http *mh)
{
	struct mconn *c, *next;

	if (!mh)
		return;
	mh->closing = true;
	for (c = mh->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	uv_close((uv_handle_t *)&mh->server, server_closed);
}

/* Parses "A.B.C.D:P" or "[v6]:P" (validated by the config already). */
static int parse_listen(const char *v, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon = strrchr(v, ':');
	size_t hl = colon ? (size_t)(colon - v) : 0;
	int port = colon ? atoi(colon + 1) : 0;

	if (!colon || hl + 1 > sizeof(host))
		return -EINVAL;
	if (v[0] == '[') {
		memcpy(host, v + 1, hl - 2);
		host[hl - 2] = '\0';
		return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
	}
	memcpy(host, v, hl);
	host[hl] = '\0';
	return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

int svc_metrics_listen(struct service *s)
{
	const char *want = s->conf->c->metrics_listen;
	struct metrics_http *mh;
	struct sockaddr_storage ss;
	int r;

	if (s->metrics && want && strcmp(s->metrics->listen, want) == 0)
		return 0; /* unchanged */
	mh_close(s->metrics);
	s->metrics = NULL;
	if (!want || s->stopping)
		return 0;
	mh = calloc(1, sizeof(*mh));
	if (!mh || !(mh->listen = strdup(want))) {
		free(mh);
		return -ENOMEM;
	}
	mh->s = s;
	r = parse_listen(want, &ss);
	if (r == 0)
		r = uv_tcp_init(s->loop, &mh->server);
	if (r < 0) {
		free(mh->listen);
		free(mh);
		svc_error(s, "metrics_listen = %s: %s", want, uv_strerror(r));
		return r;
	}
	mh->server.data = mh;
	r = uv_tcp_bind(&mh->server, (const struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&mh->server, 64, on_conn);
	if (r < 0) {
		svc_error(s, "metrics_listen = %s: cannot listen: %s", want, uv_strerror(r));
		mh_close(mh);
		return r;
	}
	s->metrics = mh;
	log_notice("serving metrics at http://%s/metrics", want);
	return 0;
}

void svc_metrics_stop(struct service *s)
{
	mh_close(s->metrics);
	s->metrics = NULL;
}
