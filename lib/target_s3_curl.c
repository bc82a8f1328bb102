/*
 * target_s3_curl — the machinery under every HTTP exchange of the s3 backend:
 * libcurl's multi-socket API on the target's uv loop (a uv_poll per socket curl
 * opens, one uv_timer for curl's time-outs, as in curl's docs/examples/
 * multi-uv.c), the bandwidth token bucket that pauses and resumes transfers,
 * and the attempts of an exchange: the first one, and the retries with capped,
 * fully jittered exponential backoff inside a time budget.
 *
 * Threading: loop thread only.
 *
 * Ownership: the multi handle, the sockets (struct s3_sock, freed when their
 * poll has closed), curl's timer and the bandwidth timer of a target, created
 * by s3__curl_init and closed by s3__curl_stop. An exchange is the request's
 * (target_s3_http.c); this file only adds it to and takes it off the multi.
 */
#include "metrics.h"
#include "target_s3_int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_multi_info(struct s3_target *t);

static uint64_t rng_next(struct s3_target *t)
{
	/* xorshift64*: jitter only, not security. */
	uint64_t x = t->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ---- the curl <-> uv glue (multi-uv.c) ---- */

static void on_handle_closed(uv_handle_t *hd)
{
	s3__handle_gone(hd->data);
}

static void on_sock_closed(uv_handle_t *hd)
{
	struct s3_sock *s = (struct s3_sock *)hd;
	struct s3_target *t = s->t;

	free(s);
	s3__handle_gone(t);
}

static void sock_close(struct s3_sock *s)
{
	struct s3_target *t = s->t;

	if (s->prev)
		s->prev->next = s->next;
	else
		t->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct s3_sock *s = (struct s3_sock *)p;
	struct s3_target *t = s->t;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(t->multi, s->fd, flags, &running);
	check_multi_info(t);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int action, void *userp, void *socketp)
{
	struct s3_target *t = userp;
	struct s3_sock *s = socketp;
	int events = 0;

	(void)e;
	if (action == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(t->multi, fd, NULL);
			sock_close(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->t = t;
		s->fd = fd;
		if (uv_poll_init_socket(t->base.loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		t->n_open++;
		s->next = t->socks;
		if (t->socks)
			t->socks->prev = s;
		t->socks = s;
		curl_multi_assign(t->multi, fd, s);
	}
	if (action & CURL_POLL_IN)
		events |= UV_READABLE;
	if (action & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

static void on_curl_timer_fire(uv_timer_t *tm)
{
	struct s3_target *t = tm->data;
	int running;

	curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_multi_info(t);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct s3_target *t = userp;

	(void)m;
	if (t->multi_gone)
		return 0;
	if (timeout_ms < 0) {
		uv_timer_stop(&t->curl_timer);
	} else {
		/* 0 means "now": a 0 ms timer fires on the loop's next turn, which
		 * also keeps curl from being called back from inside curl (the
		 * 1 ms of curl's multi-uv example delayed every request by 1-2 ms:
		 * the loop's clock is cached, so 1 ms is often 2). */
		uv_timer_start(&t->curl_timer, on_curl_timer_fire, (uint64_t)timeout_ms, 0);
	}
	return 0;
}

static int64_t bw_burst(const struct s3_target *t)
{
	return TD_MAX((int64_t)(t->bw_limit / 8), (int64_t)64 << 10);
}

static void bw_refill(struct s3_target *t)
{
	int64_t now = td_monotonic_ns();

	t->bw_tokens += (int64_t)((double)(now - t->bw_last_ns) * (double)t->bw_limit / 1e9);
	t->bw_last_ns = now;
	if (t->bw_tokens > bw_burst(t))
		t->bw_tokens = bw_burst(t);
}

static void on_bw_timer(uv_timer_t *tm)
{
	struct s3_target *t = tm->data;
	struct s3_http *list = t->paused;

	t->paused = NULL;
	bw_refill(t);
	/* Unpausing may run the callbacks at once, and they may pause again. */
	while (list) {
		struct s3_http *h = list;

		list = h->next_paused;
		h->next_paused = NULL;
		h->paused = false;
		curl_easy_pause(h->easy, CURLPAUSE_CONT);
	}
	check_multi_info(t);
}

size_t s3__bw_take(struct s3_http *h, size_t want)
{
	struct s3_target *t = h->t;
	size_t n;

	if (!t->bw_limit)
		return want;
	bw_refill(t);
	if (t->bw_tokens <= 0) {
		int64_t wait_ms = (-t->bw_tokens + (bw_burst(t) / 4)) * 1000 / (int64_t)t->bw_limit;

		h->paused = true;
		h->next_paused = t->paused;
		t->paused = h;
		if (!uv_is_active((uv_handle_t *)&t->bw_timer))
			uv_timer_start(&t->bw_timer, on_bw_timer, (uint64_t)TD_MAX(wait_ms, 1), 0);
		return 0;
	}
	n = want;
	t->bw_tokens -= (int64_t)n; /* may go negative: the debt is paid by waiting */
	return n;
}

/* ---- attempts and retries ---- */

/* Starts one attempt of an exchange: a fresh response, the request headers
 * for where it stands (a resumed range), onto the multi handle. */
static int attempt_add(struct s3_http *h)
{
	int r;

	h->resp_len = 0;
	h->sink_err = 0;
	h->first_write = true;
	h->status = 0;
	r = s3__http_setup(h);
	if (r < 0)
		return r;
	if (curl_multi_add_handle(h->t->multi, h->easy) != CURLM_OK)
		return -ENOMEM;
	h->attempt++;
	h->t->n_active++;
	h->counted_active = true;
	h->in_multi = true;
	return 0;
}

int s3__http_submit(struct s3_http *h)
{
	h->start_ns = td_monotonic_ns();
	h->attempt = 0;
	return attempt_add(h);
}

static void on_retry_timer(uv_timer_t *tm)
{
	struct s3_http *h = tm->data;
	struct td_target_error e;
	int r = attempt_add(h);

	if (r < 0) {
		s3__err_set(&e, 0, NULL, NULL, "cannot start a request: %s", strerror(-r));
		h->done(h, r, &e);
	}
}

/* The delay before the next attempt, or -1 when no retry is left: the cap
 * doubles per attempt up to backoff_max_ms, the delay is uniform below it
 * (full jitter), and no retry starts past the time budget. */
static int64_t retry_delay_ms(struct s3_http *h)
{
	struct s3_target *t = h->t;
	int64_t cap = t->tu.backoff_base_ms << TD_MIN(h->attempt - 1, 20u);
	int64_t delay, elapsed_ms = (td_monotonic_ns() - h->start_ns) / 1000000;

	if (h->attempt >= t->tu.max_attempts || t->closing)
		return -1;
	if (cap > t->tu.backoff_max_ms)
		cap = t->tu.backoff_max_ms;
	delay = (int64_t)(rng_next(t) % (uint64_t)(cap + 1));
	return elapsed_ms + delay <= t->tu.retry_budget_ms ? delay : -1;
}

/* The S3 API's name of what this request does, for the metrics. */
static const char *op_name(const struct s3_http *h)
{
	const struct s3_req *r = h->req;
	const char *m = h->method;

	if (!r)
		return m;
	switch (r->kind) {
	case K_PUT:
		if (strcmp(m, "POST") == 0)
			return r->phase == PH_INIT ? "CreateMultipartUpload"
			                           : "CompleteMultipartUpload";
		if (strcmp(m, "HEAD") == 0)
			return "HeadObject";
		if (strcmp(m, "DELETE") == 0)
			return "AbortMultipartUpload";
		return r->phase == PH_PARTS ? "UploadPart" : "PutObject";
	case K_GET:
		return "GetObject";
	case K_HEAD:
		return "HeadObject";
	case K_DELETE:
		return "DeleteObject";
	case K_LIST:
		return "ListObjectsV2";
	case K_CLEANUP:
		return strcmp(m, "DELETE") == 0 ? "AbortMultipartUpload" : "ListMultipartUploads";
	case K_MKBUCKET:
		return "CreateBucket";
	}
	return m;
}

/* One attempt's count, status code and times, by target and operation. */
static void count_attempt(const struct s3_http *h)
{
	const char *tname = td_target_name(&h->t->base), *op = op_name(h);
	curl_off_t first = 0, total = 0;
	long code = 0;
	char cs[16];

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
	snprintf(cs, sizeof(cs), "%ld", code);
	td_metrics_add(TD_M_S3_REQUESTS, 1, tname, op, cs);
	if (code == 0)
		return; /* no answer: no times to speak of */
	curl_easy_getinfo(h->easy, CURLINFO_STARTTRANSFER_TIME_T, &first);
	curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME_T, &total);
	td_metrics_observe(TD_M_S3_FIRST_BYTE, (double)first / 1e6, tname, op);
	td_metrics_observe(TD_M_S3_DURATION, (double)total / 1e6, tname, op);
}

static void http_finished(struct s3_http *h, CURLcode cc)
{
	struct td_target_error e;
	bool retry;
	int r;

	count_attempt(h);

	if (h->counted_active) {
		h->t->n_active--;
		h->counted_active = false;
	}
	r = s3__classify(h, cc, &e, &retry);
	/* A resumed download must continue the same object. */
	if (!h->if_match[0] && h->etag[0])
		scpy(h->if_match, sizeof(h->if_match), h->etag);
	if (r < 0 && retry) {
		int64_t delay = retry_delay_ms(h);

		if (delay >= 0) {
			uv_timer_start(&h->timer, on_retry_timer, (uint64_t)delay, 0);
			return;
		}
	}
	if (r < 0 && h->attempt > 1) {
		size_t l = strlen(e.message);

		snprintf(e.message + l, sizeof(e.message) - l, " (after %u attempts)", h->attempt);
	}
	h->done(h, r, r < 0 ? &e : NULL);
}

static void check_multi_info(struct s3_target *t)
{
	CURLMsg *msg;
	int left;

	while (!t->multi_gone && (msg = curl_multi_info_read(t->multi, &left))) {
		struct s3_http *h = NULL;
		CURLcode cc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		cc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&h);
		curl_multi_remove_handle(t->multi, msg->easy_handle);
		h->in_multi = false;
		http_finished(h, cc);
	}
}

/* ---- the multi handle and the target's timers ---- */

int s3__curl_init(struct s3_target *t)
{
	uv_loop_t *loop = t->base.loop;

	t->multi = curl_multi_init();
	if (!t->multi)
		return -ENOMEM;
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)t->max_conn);
	curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)t->max_conn);
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->max_conn);
	uv_timer_init(loop, &t->curl_timer);
	uv_timer_init(loop, &t->bw_timer);
	t->curl_timer.data = t;
	t->bw_timer.data = t;
	t->bw_last_ns = td_monotonic_ns();
	t->bw_tokens = bw_burst(t);
	t->n_open += 2;
	return 0;
}

void s3__curl_stop(struct s3_target *t)
{
	t->multi_gone = true;
	/* May call on_curl_socket(REMOVE) for cached connections. */
	curl_multi_cleanup(t->multi);
	t->multi = NULL;
	while (t->socks)
		sock_close(t->socks);
	uv_timer_stop(&t->curl_timer);
	uv_close((uv_handle_t *)&t->curl_timer, on_handle_closed);
	uv_timer_stop(&t->bw_timer);
	uv_close((uv_handle_t *)&t->bw_timer, on_handle_closed);
}
