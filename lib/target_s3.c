/*
 * target_s3 — the S3 backend: libcurl's multi-socket API driven by the
 * target's uv loop (CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION
 * -> uv_timer, as in curl's docs/examples/multi-uv.c), SigV4 by curl.
 *
 * This file holds the target (create, tune, close) and the life of a request
 * from its entry point to its callback. The rest of the backend, by concern:
 *   target_s3_curl.c   curl <-> uv glue, the bandwidth bucket, attempts and retries
 *   target_s3_http.c   one HTTP exchange: URL, headers, SigV4, the body callbacks
 *   target_s3_error.c  what a failed attempt means: errno, retry, message (a table)
 *   target_s3_put.c    put_fd / put_buf: single PUT and multipart upload
 *   target_s3_get.c    get_range / get_fd, head, delete, create_bucket
 *   target_s3_list.c   list, and cleanup_stale (abort forgotten uploads)
 * and target_s3_int.h what they share.
 *
 * Threading: loop thread only, except the reads of upload sources, which run on
 * libuv's thread pool (target_s3_put.c says how).
 *
 * Ownership: a target owns its multi handle, its timers, one uv_poll per socket
 * curl opens, and every request (struct s3_req) until the request's callback has
 * run. A request owns its HTTP exchanges (struct s3_http: one easy handle, a
 * retry timer, the request's response buffer). Memory is bounded: a multipart
 * upload holds at most max_connections part buffers, response bodies are capped
 * (lists 4 MiB, errors 64 KiB), and an upload's part list is capped at 10,000.
 *
 * Callbacks: an entry point that returns an error has undone its request
 * (s3__req_started) and never calls back; otherwise the callback runs exactly
 * once, from a 0 ms timer (s3__req_finish), never from inside the call.
 *
 * Bandwidth: bandwidth_limit is one token bucket per target (burst: 1/8 s of
 * the rate, at least 64 KiB) shared by every transfer's body bytes, up and down:
 * a transfer without tokens is paused (CURL_READFUNC_PAUSE / CURL_WRITEFUNC_PAUSE)
 * and resumed from a uv timer when the bucket has refilled.
 *
 * curl_global_init: programs call curl_global_init(CURL_GLOBAL_DEFAULT) once at
 * start-up (tierd, tierctl and the tests do). libcurl 7.88 documents it as
 * thread-safe only when built with a thread-safe init; we do not call it here.
 */
#include "target_s3_int.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void close_step(struct s3_target *t);

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3__err_set(struct td_target_error *e, int http, const char *code, const char *reqid,
                 const char *fmt, ...)
{
	va_list ap;

	memset(e, 0, sizeof(*e));
	e->http_status = http;
	if (code)
		scpy(e->code, sizeof(e->code), code);
	if (reqid)
		scpy(e->request_id, sizeof(e->request_id), reqid);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void s3__handle_gone(struct s3_target *t)
{
	t->n_open--;
	if (t->closing)
		close_step(t);
}

/* ---- requests ---- */

static void on_req_closed(uv_handle_t *hd)
{
	struct s3_req *r = hd->data;
	struct s3_target *t = r->t;

	free(r);
	t->n_reqs--;
	s3__handle_gone(t);
}

static void req_free_fields(struct s3_req *r)
{
	free(r->full_key);
	curl_slist_free_all(r->put_hdrs);
	td_hash_free(r->sha);
	free(r->upload_id);
	free(r->part_etags);
	if (r->slots) {
		for (unsigned i = 0; i < r->n_slots; i++)
			free(r->slots[i].buf);
		free(r->slots);
	}
	free(r->complete_body);
	free(r->token);
	s3__uploads_clear(r);
	free(r->key_marker);
	free(r->id_marker);
}

static void req_unlink(struct s3_req *r)
{
	struct s3_target *t = r->t;

	if (r->prev)
		r->prev->next = r->next;
	else
		t->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static void on_defer(uv_timer_t *tm)
{
	struct s3_req *r = tm->data;

	req_unlink(r);
	r->cb(r->data, &r->base, r->status, r->status < 0 ? &r->err : NULL);
	req_free_fields(r);
	uv_close((uv_handle_t *)&r->defer, on_req_closed);
}

void s3__req_finish(struct s3_req *r)
{
	if (r->finishing)
		return;
	r->finishing = true;
	r->phase = PH_DONE;
	uv_timer_start(&r->defer, on_defer, 0, 0);
}

void s3__req_fail(struct s3_req *r, int status, const struct td_target_error *e)
{
	if (!r->failed) {
		r->failed = true;
		r->status = status;
		if (e)
			r->err = *e;
		else
			s3__err_set(&r->err, 0, NULL, NULL, "%s", strerror(-status));
	}
	/* An initiate in flight is let finish, so the upload it opens can be aborted. */
	if (r->phase != PH_INIT || r->no_network || r->t->closing)
		while (r->https)
			s3__http_destroy(r->https);
	s3__req_step(r);
}

void s3__req_end(struct s3_req *r, int status, const struct td_target_error *e)
{
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	r->status = 0;
	s3__req_finish(r);
}

int s3__req_open(struct s3_req **out, struct s3_target *t, enum req_kind kind, const char *key,
                 td_target_cb cb, void *data)
{
	struct s3_req *r;

	if (t->closing)
		return -ECANCELED;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->base.target = &t->base;
	r->t = t;
	r->kind = kind;
	r->cb = cb;
	r->data = data;
	r->fd = -1;
	if (key && asprintf(&r->full_key, "%s%s", t->prefix, key) < 0) {
		free(r);
		return -ENOMEM;
	}
	uv_timer_init(t->base.loop, &r->defer);
	r->defer.data = r;
	t->n_open++;
	t->n_reqs++;
	r->next = t->reqs;
	if (t->reqs)
		t->reqs->prev = r;
	t->reqs = r;
	*out = r;
	return 0;
}

int s3__req_started(struct s3_req *r, int rc, struct td_target_req **req_out)
{
	if (rc < 0) {
		/* Nothing has run yet that could call back: undo the request. */
		while (r->https)
			s3__http_destroy(r->https);
		req_unlink(r);
		req_free_fields(r);
		uv_close((uv_handle_t *)&r->defer, on_req_closed);
		return rc;
	}
	if (req_out)
		*req_out = &r->base;
	return 0;
}

static void on_abort_done(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	(void)status;
	(void)e;
	s3__http_destroy(h);
	free(r->upload_id);
	r->upload_id = NULL;
	s3__req_finish(r);
}

/* Drives a failed request to its end: waits for thread-pool reads, aborts an
 * open multipart upload, then calls back. */
void s3__req_step(struct s3_req *r)
{
	if (!r->failed || r->finishing || r->phase == PH_ABORT)
		return;
	if (r->pending_work > 0 || r->https)
		return;
	if (r->upload_id && !r->no_network && !r->t->closing &&
	    s3__upload_abort(r, r->full_key, r->upload_id, on_abort_done) == 0) {
		r->phase = PH_ABORT;
		return;
	}
	s3__req_finish(r);
}

/* ---- cancel, new, close ---- */

static void s3_cancel(struct td_target_req *base)
{
	struct s3_req *r = (struct s3_req *)base;
	struct td_target_error e;

	if (r->finishing || r->failed)
		return;
	s3__err_set(&e, 0, NULL, NULL, "cancelled");
	s3__req_fail(r, -ECANCELED, &e);
}

void td_target_s3_tuning_default(struct td_s3_tuning *tu)
{
	tu->max_attempts = 6;
	tu->backoff_base_ms = 200;
	tu->backoff_max_ms = 10000;
	tu->retry_budget_ms = 120000;
	tu->connect_timeout_s = 10;
	tu->low_speed_time_s = 30;
}

int td_target_s3_tune(struct td_target *tt, const struct td_s3_tuning *tu)
{
	struct s3_target *t = (struct s3_target *)tt;

	if (tt->ops != &td_target_s3_ops || !tu || tu->max_attempts == 0 ||
	    tu->backoff_base_ms < 0 || tu->connect_timeout_s <= 0 || tu->low_speed_time_s <= 0)
		return -EINVAL;
	t->tu = *tu;
	return 0;
}

bool td_target_is_plaintext(const struct td_target *tt)
{
	return tt->ops == &td_target_s3_ops && ((const struct s3_target *)tt)->plaintext;
}

static void free_target(struct s3_target *t)
{
	free(t->endpoint);
	free(t->scheme);
	free(t->hostport);
	free(t->region);
	free(t->bucket);
	free(t->prefix);
	free_secret(t->access_key);
	free_secret(t->secret_key);
	free(t->sigv4);
	free(t->storage_class);
	free(t->ca_file);
	curl_slist_free_all(t->connect_to);
	free(t);
}

static void on_close_timer_closed(uv_handle_t *hd)
{
	s3__handle_gone(hd->data);
}

static void close_step(struct s3_target *t)
{
	if (t->n_reqs > 0)
		return;
	if (!t->multi_gone) {
		s3__curl_stop(t);
		uv_close((uv_handle_t *)&t->close_timer, on_close_timer_closed);
		return;
	}
	if (t->n_open > 0)
		return;
	if (t->close_cb) {
		void (*cb)(void *) = t->close_cb;
		void *d = t->close_data;

		t->close_cb = NULL;
		free_target(t);
		cb(d);
		return;
	}
	free_target(t);
}

static void on_close_timer(uv_timer_t *tm)
{
	close_step(tm->data);
}

static void s3_close(struct td_target *tt, void (*close_cb)(void *data), void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct td_target_error e;

	if (t->closing)
		return;
	t->closing = true;
	t->close_cb = close_cb;
	t->close_data = data;
	s3__err_set(&e, 0, NULL, NULL, "cancelled: the target is closing");
	for (struct s3_req *r = t->reqs; r; r = r->next) {
		r->no_network = true;
		if (!r->finishing && !r->failed)
			s3__req_fail(r, -ECANCELED, &e);
		else if (r->phase == PH_ABORT) {
			while (r->https)
				s3__http_destroy(r->https);
			s3__req_finish(r);
		}
	}
	/* Deferred, so a close from inside a callback never frees what the caller
	 * is still using. */
	uv_timer_start(&t->close_timer, on_close_timer, 0, 0);
}

/* The checks s3_new makes before it allocates anything. */
static int conf_check(const struct td_target_conf *conf, struct td_target_error *err)
{
	const char *sep;

	if (!conf->endpoint || !conf->bucket || !*conf->bucket) {
		td_target_error_set(err, "s3 target needs an endpoint and a bucket");
		return -EINVAL;
	}
	if (!conf->access_key || !conf->secret_key || !*conf->access_key) {
		td_target_error_set(err, "s3 target has no credentials (credentials_file or "
		                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
		return -EACCES;
	}
	sep = strstr(conf->endpoint, "://");
	if (!sep || !sep[3] ||
	    (strncmp(conf->endpoint, "http://", 7) != 0 &&
	     strncmp(conf->endpoint, "https://", 8) != 0)) {
		td_target_error_set(err,
		                    "endpoint must be http://HOST[:PORT] or https://HOST[:PORT]");
		return -EINVAL;
	}
	return 0;
}

static void strip_slashes(char *s)
{
	size_t l = strlen(s);

	while (l > 0 && s[l - 1] == '/')
		s[--l] = '\0';
}

/* Copies the configuration's strings into t; -ENOMEM. */
static int conf_copy(struct s3_target *t, const struct td_target_conf *conf)
{
	const char *sep = strstr(conf->endpoint, "://");

	t->endpoint = strdup(conf->endpoint);
	t->scheme = strndup(conf->endpoint, (size_t)(sep - conf->endpoint));
	t->hostport = strdup(sep + 3);
	t->region = strdup(conf->region && *conf->region ? conf->region : "us-east-1");
	t->bucket = strdup(conf->bucket);
	t->prefix = strdup(conf->prefix ? conf->prefix : "");
	t->storage_class = xstrdup(conf->storage_class);
	t->ca_file = conf->ca_file && *conf->ca_file ? strdup(conf->ca_file) : NULL;
	if (!t->endpoint || !t->scheme || !t->hostport || !t->region || !t->bucket || !t->prefix ||
	    (conf->storage_class && !t->storage_class) ||
	    (conf->ca_file && *conf->ca_file && !t->ca_file))
		return -ENOMEM;
	strip_slashes(t->endpoint);
	strip_slashes(t->hostport);
	/* Kept apart, never joined as "key:secret": curl splits that string at its
	 * first ':', and keys such as Swift's "account:user" contain one. */
	t->access_key = strdup(conf->access_key);
	t->secret_key = strdup(conf->secret_key);
	if (!t->access_key || !t->secret_key)
		return -ENOMEM;
	if (asprintf(&t->sigv4, "aws:amz:%s:s3", t->region) < 0) {
		t->sigv4 = NULL;
		return -ENOMEM;
	}
	t->virtual_host = conf->addressing == TD_ADDRESSING_VIRTUAL;
	t->delete_versions = conf->delete_versions;
	if (conf->connect_to && *conf->connect_to) {
		char *line;

		/* Any host and port of a URL (endpoint or bucket.endpoint): there. */
		if (asprintf(&line, "::%s", conf->connect_to) < 0)
			return -ENOMEM;
		t->connect_to = curl_slist_append(NULL, line);
		free(line);
		if (!t->connect_to)
			return -ENOMEM;
	}
	t->plaintext = strcmp(t->scheme, "http") == 0;
	return 0;
}

/* Part size, threshold, connections and bandwidth, with their defaults and
 * the limits S3 sets. */
static void conf_sizes(struct s3_target *t, const struct td_target_conf *conf)
{
	t->part_size = conf->part_size_bytes ? conf->part_size_bytes : 16ull << 20;
	if (t->part_size < (5ull << 20))
		t->part_size = 5ull << 20;
	if (t->part_size > PART_SIZE_MAX)
		t->part_size = PART_SIZE_MAX;
	t->threshold =
	    conf->multipart_threshold_bytes ? conf->multipart_threshold_bytes : 64ull << 20;
	t->max_conn = conf->max_connections ? conf->max_connections : 8;
	if (t->max_conn > 64)
		t->max_conn = 64;
	t->bw_limit = conf->bandwidth_limit_bytes;
}

static int s3_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                  struct td_target_error *err)
{
	struct s3_target *t;
	int rc = conf_check(conf, err);

	if (rc < 0)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t) {
		td_target_error_set(err, "out of memory");
		return -ENOMEM;
	}
	t->base.loop = loop;
	rc = conf_copy(t, conf);
	if (rc < 0)
		goto fail;
	conf_sizes(t, conf);
	td_target_s3_tuning_default(&t->tu);
	if (td_random_bytes(&t->rng, sizeof(t->rng)) < 0 || t->rng == 0)
		t->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)td_monotonic_ns();
	rc = s3__curl_init(t);
	if (rc < 0)
		goto fail;
	uv_timer_init(loop, &t->close_timer);
	t->close_timer.data = t;
	t->n_open++;
	*out = &t->base;
	return 0;
fail:
	td_target_error_set(err, "out of memory");
	free_target(t);
	return rc;
}

const struct td_target_ops td_target_s3_ops = {
	.type = "s3",
	.new_ = s3_new,
	.close = s3_close,
	.put_fd = s3__put_fd,
	.put_buf = s3__put_buf,
	.get_range = s3__get_range,
	.get_fd = s3__get_fd,
	.head = s3__head,
	.delete_ = s3__delete,
	.list = s3__list,
	.cleanup_stale = s3__cleanup_stale,
	.stale_uploads = s3__stale_uploads,
	.cancel = s3_cancel,
};
