/*
 * target_s3 — the S3 backend: libcurl's multi-socket API driven by the
 * target's uv loop (CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION
 * -> uv_timer, as in curl's docs/examples/multi-uv.c), SigV4 by curl.
 *
 * Threading: loop thread only, except the reads of upload sources, which run on
 * libuv's thread pool: each part is read once into its buffer by pread and its
 * MD5 computed (several parts at once), and the object's SHA-256 is fed from the
 * same buffers by one job at a time, strictly in part order, so the file is read
 * once and hashed in file order even when parts are read and sent out of order.
 *
 * Ownership: a target owns its multi handle, its timers, one uv_poll per socket
 * curl opens, and every request (struct s3_req) until the request's callback has
 * run. A request owns its HTTP exchanges (struct s3_http: one easy handle, a
 * retry timer, the request's response buffer). Memory is bounded: a multipart
 * upload holds at most max_connections part buffers, response bodies are capped
 * (lists 4 MiB, errors 64 KiB), and an upload's part list is capped at 10,000.
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
#include "target_s3.h"
#include "target_impl.h"
#include "s3_xml.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ERR_BODY_MAX   (64u << 10)
#define LIST_BODY_MAX  (4u << 20)
#define SMALL_BODY_MAX (1u << 20)
#define MAX_PARTS      10000u
#define SINGLE_PUT_MAX (512ull << 20) /* larger objects always go multipart */
#define PART_SIZE_MAX  (5ull << 30)

struct s3_target;
struct s3_req;

enum sink { SINK_MEM, SINK_BUF, SINK_FD };

struct s3_http {
	struct s3_target *t;
	struct s3_req *req;
	struct s3_http *next; /* in req->https */
	CURL *easy;
	struct curl_slist *hdrs;      /* built per attempt */
	struct curl_slist *base_hdrs; /* owned: the request's own headers */
	uv_timer_t timer;
	bool in_multi;
	bool counted_active;
	char errbuf[CURL_ERROR_SIZE];

	const char *method;
	char *url;
	const unsigned char *body;
	size_t body_len, body_off;

	/* response */
	long status;
	char *resp;
	size_t resp_len, resp_max;
	enum sink sink;
	struct iovec out_iov[TD_TARGET_IOV_MAX];
	unsigned out_iovcnt;
	uint64_t out_cap;
	int out_fd;
	uint64_t out_fd_off;
	struct td_hash *sha;
	bool has_range, sent_range;
	size_t resp_cap;
	uint64_t range_off, range_len; /* range_len UINT64_MAX: to the end */
	uint64_t received;             /* body bytes delivered, over all attempts */
	bool first_write;
	int sink_err;
	char sink_msg[128];
	struct td_object_info *info; /* head: filled from the headers */
	char etag[132];
	char if_match[132];
	char version_id[132];
	char amz_request_id[128];
	int64_t date_s, last_modified_s;
	uint64_t content_length;
	bool have_cl;
	bool ok404, ok416, ok409;

	unsigned attempt;
	int64_t start_ns;
	bool paused;
	struct s3_http *next_paused;
	unsigned part; /* multipart: index of the part */
	void (*done)(struct s3_http *h, int status, const struct td_target_error *err);
};

enum req_kind { K_PUT, K_GET, K_HEAD, K_DELETE, K_LIST, K_CLEANUP, K_MKBUCKET };
enum phase { PH_START, PH_INIT, PH_PARTS, PH_COMPLETE, PH_HEAD, PH_ABORT, PH_DONE };

struct slot {
	struct s3_req *req;
	uv_work_t work, sha_work;
	unsigned char *buf;
	size_t cap, len;
	unsigned part;
	uint64_t off;
	bool busy;
	bool read_done, sha_done, up_done;
	bool last;
	int rc;
	char md5[32];
};

struct upload_ref {
	char *key;
	char *id;
};

struct s3_req {
	struct td_target_req base;
	struct s3_target *t;
	struct s3_req *prev, *next;
	enum req_kind kind;
	td_target_cb cb;
	void *data;
	uv_timer_t defer;
	int status;
	struct td_target_error err;
	bool failed, finishing, no_network;
	unsigned pending_work;
	struct s3_http *https;
	char *full_key;
	enum phase phase;

	/* put */
	struct td_put_result *res;
	int fd;
	uint64_t size;
	bool from_fd;
	struct curl_slist *put_hdrs; /* x-amz-meta-*, storage class, content type */
	struct td_hash *sha;
	char *upload_id;
	uint64_t part_size;
	unsigned n_parts, next_read, n_done;
	bool sha_busy;
	unsigned next_sha; /* multipart: the part whose bytes the SHA-256 wants next */
	char (*part_etags)[132];
	struct slot *slots;
	unsigned n_slots;
	char *complete_body;
	size_t complete_len;

	/* get */
	void *gbuf;
	size_t *got;
	char expect_sha[TD_SHA256_HEX];
	bool verify;

	/* head */
	struct td_object_info *info;

	/* list and cleanup */
	td_target_list_each each;
	char *token;
	size_t strip;
	unsigned *n_cleaned;
	struct upload_ref *uploads;
	size_t n_uploads, next_upload;
	char *key_marker, *id_marker;
	bool more_pages;
};

struct s3_sock {
	uv_poll_t poll;
	struct s3_target *t;
	curl_socket_t fd;
	struct s3_sock *prev, *next;
};

struct s3_target {
	struct td_target base;
	CURLM *multi;
	uv_timer_t curl_timer;
	uv_timer_t close_timer;
	unsigned n_open; /* uv handles not yet closed (polls, timers) */
	bool closing, multi_gone;
	void (*close_cb)(void *data);
	void *close_data;
	char *endpoint; /* scheme://host[:port] */
	char *scheme;
	char *hostport;
	char *region, *bucket, *prefix, *userpwd, *sigv4, *storage_class, *ca_file;
	bool virtual_host, plaintext;
	uint64_t part_size, threshold, bw_limit;
	unsigned max_conn;
	struct td_s3_tuning tu;
	unsigned n_active;
	struct s3_req *reqs;
	unsigned n_reqs;
	struct s3_sock *socks;
	/* bandwidth_limit: one token bucket per target, bytes */
	uv_timer_t bw_timer;
	int64_t bw_tokens, bw_last_ns;
	struct s3_http *paused;
	uint64_t rng;
};

static void http_start_attempt(struct s3_http *h);
static void on_part_put(struct s3_http *h, int status, const struct td_target_error *e);
static int http_submit(struct s3_http *h);
static void req_step(struct s3_req *r);
static void close_step(struct s3_target *t);

/* ---- small helpers ---- */

/* Copies with truncation and a NUL, like strlcpy. */
static void scpy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void err_set(struct td_target_error *e, int http, const char *code, const char *reqid,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void err_set(struct td_target_error *e, int http, const char *code, const char *reqid,
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

int td_s3_uri_encode(char *out, size_t cap, const char *in, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		unsigned char c = *p;
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		             (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		             c == '~' || (keep_slash && c == '/');

		if (o + (plain ? 1 : 3) >= cap)
			return -ENAMETOOLONG;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return (int)o;
}

/* Builds the URL for a full key (NULL: the bucket) and a canonical query (NULL
 * or already sorted and encoded). */
static char *make_url(struct s3_target *t, const char *full_key, const char *query)
{
	char enc[3 * (TD_TARGET_KEY_MAX + 1024) + 1];
	char *url = NULL;
	int r;

	enc[0] = '\0';
	if (full_key && td_s3_uri_encode(enc, sizeof(enc), full_key, 1) < 0)
		return NULL;
	if (t->virtual_host)
		r = asprintf(&url, "%s://%s.%s/%s%s%s", t->scheme, t->bucket, t->hostport, enc,
		             query ? "?" : "", query ? query : "");
	else
		r = asprintf(&url, "%s/%s%s%s%s%s", t->endpoint, t->bucket, full_key ? "/" : "",
		             enc, query ? "?" : "", query ? query : "");
	return r < 0 ? NULL : url;
}

/* ---- the curl <-> uv glue (multi-uv.c) ---- */

static void on_handle_closed(uv_handle_t *hd)
{
	struct s3_target *t = hd->data;

	t->n_open--;
	if (t->closing)
		close_step(t);
}

static void on_sock_closed(uv_handle_t *hd)
{
	struct s3_sock *s = (struct s3_sock *)hd;
	struct s3_target *t = s->t;

	free(s);
	t->n_open--;
	if (t->closing)
		close_step(t);
}

static void check_multi_info(struct s3_target *t);

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

/* ---- HTTP exchanges ---- */

static void check_multi_info(struct s3_target *t);

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

/* Takes up to `want` bytes of tokens; 0 means "pause now". */
static size_t bw_take(struct s3_http *h, size_t want)
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

static size_t on_read_body(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_http *h = userp;
	size_t n = TD_MIN(size * nitems, h->body_len - h->body_off);

	if (n && bw_take(h, n) == 0)
		return CURL_READFUNC_PAUSE;

	if (n)
		memcpy(buf, h->body + h->body_off, n);
	h->body_off += n;
	return n;
}

static int on_seek_body(void *userp, curl_off_t off, int origin)
{
	struct s3_http *h = userp;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > h->body_len)
		return CURL_SEEKFUNC_FAIL;
	h->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static void copy_trim(char *dst, size_t cap, const char *v, size_t n)
{
	while (n && (v[0] == ' ' || v[0] == '\t'))
		v++, n--;
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		v++, n -= 2;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_http *h = userp;
	size_t n = size * nitems;
	const char *colon = memchr(buf, ':', n);
	char val[1024];
	size_t kl;

	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the last one's headers. */
		h->etag[0] = h->version_id[0] = h->amz_request_id[0] = '\0';
		h->date_s = h->last_modified_s = 0;
		h->have_cl = false;
		if (h->info)
			h->info->n_meta = 0;
		return n;
	}
	if (!colon)
		return n;
	kl = (size_t)(colon - buf);
	copy_trim(val, sizeof(val), colon + 1, n - kl - 1);
	if (kl == 4 && strncasecmp(buf, "ETag", 4) == 0) {
		scpy(h->etag, sizeof(h->etag), val);
	} else if (kl == 14 && strncasecmp(buf, "Content-Length", 14) == 0) {
		char *end;
		unsigned long long v = strtoull(val, &end, 10);

		h->have_cl = end != val && *end == '\0';
		h->content_length = v;
	} else if (kl == 13 && strncasecmp(buf, "Last-Modified", 13) == 0) {
		h->last_modified_s = (int64_t)curl_getdate(val, NULL);
	} else if (kl == 4 && strncasecmp(buf, "Date", 4) == 0) {
		h->date_s = (int64_t)curl_getdate(val, NULL);
	} else if (kl == 16 && strncasecmp(buf, "x-amz-version-id", 16) == 0) {
		scpy(h->version_id, sizeof(h->version_id), val);
	} else if (kl == 16 && strncasecmp(buf, "x-amz-request-id", 16) == 0) {
		scpy(h->amz_request_id, sizeof(h->amz_request_id), val);
	} else if (h->info && kl > 11 && kl - 11 < sizeof(h->info->meta[0].key) &&
	           strncasecmp(buf, "x-amz-meta-", 11) == 0 &&
	           h->info->n_meta < TD_TARGET_META_MAX) {
		size_t i = h->info->n_meta++;

		for (size_t k = 0; k < kl - 11; k++) {
			char c = buf[11 + k];

			h->info->meta[i].key[k] =
			    (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		h->info->meta[i].key[kl - 11] = '\0';
		/* Values keep their quotes, unlike the ETag. */
		{
			const char *v = colon + 1;
			size_t vn = n - kl - 1;

			while (vn && (*v == ' ' || *v == '\t'))
				v++, vn--;
			while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
				vn--;
			if (vn >= sizeof(h->info->meta[i].value))
				vn = sizeof(h->info->meta[i].value) - 1;
			memcpy(h->info->meta[i].value, v, vn);
			h->info->meta[i].value[vn] = '\0';
		}
	}
	return n;
}

static size_t sink_fail(struct s3_http *h, int err, const char *msg)
{
	h->sink_err = err;
	scpy(h->sink_msg, sizeof(h->sink_msg), msg);
	return 0; /* makes curl stop with CURLE_WRITE_ERROR */
}

static size_t on_write(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_http *h = userp;
	size_t n = size * nitems;
	long code = 0;

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code / 100 != 2 || h->sink == SINK_MEM) {
		size_t max = code / 100 == 2 ? h->resp_max : ERR_BODY_MAX;

		if (h->resp_len + n > max) {
			if (code / 100 == 2)
				return sink_fail(h, -EPROTO, "response body over its size cap");
			return n; /* an error body: keep the head of it */
		}
		if (h->resp_len + n > h->resp_cap) {
			size_t want = TD_MIN(TD_MAX(h->resp_len + n, 2 * h->resp_cap), max);
			char *nb = realloc(h->resp, want + 1);

			if (!nb)
				return sink_fail(h, -ENOMEM, "out of memory");
			h->resp = nb;
			h->resp_cap = want;
		}
		memcpy(h->resp + h->resp_len, buf, n);
		h->resp_len += n;
		return n;
	}
	if (n && bw_take(h, n) == 0)
		return CURL_WRITEFUNC_PAUSE;
	if (h->first_write) {
		h->first_write = false;
		/* A 200 to a ranged request from a non-zero offset would be the wrong bytes. */
		if (code == 200 && h->sent_range && h->range_off + h->received > 0)
			return sink_fail(h, -EPROTO, "server ignored the Range header");
	}
	if (h->has_range && h->range_len != UINT64_MAX && h->received + n > h->range_len)
		return sink_fail(h, -EPROTO, "server sent more bytes than asked for");
	if (h->sink == SINK_BUF) {
		if (h->received + n > h->out_cap)
			return sink_fail(h, -EPROTO, "server sent more bytes than asked for");
		for (size_t done = 0, avail; done < n; done += avail) {
			char *p = td_iov_at(h->out_iov, h->out_iovcnt, h->received + done, &avail);

			avail = TD_MIN(avail, n - done);
			memcpy(p, buf + done, avail);
		}
		if (h->req->base.progress) {
			h->received += n;
			h->req->base.progress(h->req->base.progress_data, (size_t)h->received);
			return n;
		}
	} else {
		const char *p = buf;
		size_t left = n;
		uint64_t off = h->out_fd_off + h->received;

		while (left) {
			ssize_t w = pwrite(h->out_fd, p, left, (off_t)off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int e = w < 0 ? errno : EIO;

				return sink_fail(h, -e, "cannot write the destination file");
			}
			p += w;
			left -= (size_t)w;
			off += (uint64_t)w;
		}
		if (h->sha)
			td_hash_update(h->sha, buf, n);
	}
	h->received += n;
	return n;
}

static struct s3_http *http_new(struct s3_req *r, const char *method, const char *full_key,
                                const char *query)
{
	struct s3_target *t = r->t;
	struct s3_http *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->t = t;
	h->req = r;
	h->method = method;
	h->out_fd = -1;
	h->resp_max = SMALL_BODY_MAX;
	h->range_len = UINT64_MAX;
	h->url = make_url(t, full_key, query);
	h->easy = curl_easy_init();
	if (!h->url || !h->easy) {
		free(h->url);
		if (h->easy)
			curl_easy_cleanup(h->easy);
		free(h);
		return NULL;
	}
	uv_timer_init(t->base.loop, &h->timer);
	h->timer.data = h;
	t->n_open++;
	h->next = r->https;
	r->https = h;
	return h;
}

static void on_http_timer_closed(uv_handle_t *hd)
{
	struct s3_http *h = hd->data;
	struct s3_target *t = h->t;

	free(h);
	t->n_open--;
	if (t->closing)
		close_step(t);
}

/* Stops and frees an exchange; its done callback is not called. */
static void http_destroy(struct s3_http *h)
{
	struct s3_req *r = h->req;

	for (struct s3_http **pp = &r->https; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	if (h->paused) {
		for (struct s3_http **pp = &h->t->paused; *pp; pp = &(*pp)->next_paused) {
			if (*pp == h) {
				*pp = h->next_paused;
				break;
			}
		}
		h->paused = false;
	}
	if (h->in_multi) {
		curl_multi_remove_handle(h->t->multi, h->easy);
		h->in_multi = false;
	}
	if (h->counted_active) {
		h->t->n_active--;
		h->counted_active = false;
	}
	curl_easy_cleanup(h->easy);
	curl_slist_free_all(h->hdrs);
	curl_slist_free_all(h->base_hdrs);
	td_hash_free(h->sha);
	free(h->resp);
	free(h->url);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, on_http_timer_closed);
}

static int http_add_header(struct s3_http *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int http_add_header(struct s3_http *h, const char *fmt, ...)
{
	char line[2048];
	struct curl_slist *l;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	l = curl_slist_append(h->base_hdrs, line);
	if (!l)
		return -ENOMEM;
	h->base_hdrs = l;
	return 0;
}

static int http_add_headers(struct s3_http *h, const struct curl_slist *from)
{
	for (; from; from = from->next) {
		struct curl_slist *l = curl_slist_append(h->base_hdrs, from->data);

		if (!l)
			return -ENOMEM;
		h->base_hdrs = l;
	}
	return 0;
}

static int http_setup(struct s3_http *h)
{
	struct s3_target *t = h->t;
	CURL *e = h->easy;
	struct curl_slist *l = NULL;
	char line[300];

#define APPEND(s)                                                                                  \
	do {                                                                                       \
		struct curl_slist *n_ = curl_slist_append(l, (s));                                 \
		if (!n_)                                                                           \
			goto oom;                                                                  \
		l = n_;                                                                            \
	} while (0)

	curl_easy_reset(e);
	APPEND("x-amz-content-sha256: UNSIGNED-PAYLOAD");
	for (const struct curl_slist *b = h->base_hdrs; b; b = b->next)
		APPEND(b->data);
	h->sent_range = h->has_range || h->received > 0;
	if (h->sent_range) {
		uint64_t start = h->range_off + h->received;

		if (h->range_len == UINT64_MAX)
			snprintf(line, sizeof(line), "Range: bytes=%" PRIu64 "-", start);
		else
			snprintf(line, sizeof(line), "Range: bytes=%" PRIu64 "-%" PRIu64, start,
			         h->range_off + h->range_len - 1);
		APPEND(line);
	}
	if (h->received > 0 && h->if_match[0]) {
		snprintf(line, sizeof(line), "If-Match: \"%s\"", h->if_match);
		APPEND(line);
	}
#undef APPEND
	curl_slist_free_all(h->hdrs);
	h->hdrs = l;

	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, h);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERPWD, t->userpwd);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, t->sigv4);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)t->tu.connect_timeout_s);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)t->tu.low_speed_time_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L << 10);
	curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 0L);
	if (t->ca_file) {
		/* CAINFO replaces the default bundle; CAPATH keeps the system's too. */
		curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (strcmp(h->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(h->method, "PUT") == 0) {
		h->body_off = 0;
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)h->body_len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, h);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek_body);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, h);
	} else if (strcmp(h->method, "POST") == 0) {
		h->body_off = 0;
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, h);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek_body);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, h);
	} else if (strcmp(h->method, "DELETE") == 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	return 0;
oom:
	curl_slist_free_all(l);
	return -ENOMEM;
}

static int http_submit(struct s3_http *h)
{
	int r;

	h->start_ns = td_monotonic_ns();
	h->attempt = 0;
	h->first_write = true;
	r = http_setup(h);
	if (r < 0)
		return r;
	h->attempt = 1;
	h->t->n_active++;
	h->counted_active = true;
	if (curl_multi_add_handle(h->t->multi, h->easy) != CURLM_OK) {
		h->t->n_active--;
		h->counted_active = false;
		return -ENOMEM;
	}
	h->in_multi = true;
	return 0;
}

static void on_retry_timer(uv_timer_t *tm)
{
	http_start_attempt(tm->data);
}

static void http_start_attempt(struct s3_http *h)
{
	struct td_target_error e;
	int r;

	h->resp_len = 0;
	h->sink_err = 0;
	h->first_write = true;
	h->status = 0;
	r = http_setup(h);
	if (r == 0 && curl_multi_add_handle(h->t->multi, h->easy) != CURLM_OK)
		r = -ENOMEM;
	if (r < 0) {
		err_set(&e, 0, NULL, NULL, "cannot start a request: %s", strerror(-r));
		h->done(h, r, &e);
		return;
	}
	h->attempt++;
	h->t->n_active++;
	h->counted_active = true;
	h->in_multi = true;
}

/* Parses an S3 <Error> body into e. Returns true if one was found. */
static bool parse_error_body(struct s3_http *h, struct td_target_error *e)
{
	struct td_s3_xml *doc = NULL;
	const struct td_s3_xml_node *root;
	bool found = false;

	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0)
		return false;
	root = td_s3_xml_root(doc);
	if (strcmp(root->name, "Error") == 0) {
		const char *code = td_s3_xml_child_text(root, "Code");
		const char *msg = td_s3_xml_child_text(root, "Message");
		const char *rid = td_s3_xml_child_text(root, "RequestId");

		if (code)
			scpy(e->code, sizeof(e->code), code);
		if (rid)
			scpy(e->request_id, sizeof(e->request_id), rid);
		if (msg && *msg)
			scpy(e->message, sizeof(e->message), msg);
		found = true;
	}
	td_s3_xml_free(doc);
	return found;
}

/* Maps a finished attempt to 0 or -errno with detail; *retry says whether it
 * is worth another attempt. */
static int classify(struct s3_http *h, CURLcode cc, struct td_target_error *e, bool *retry)
{
	struct s3_target *t = h->t;
	long code = 0;
	char smsg[512];
	const char *c;

	*retry = false;
	memset(e, 0, sizeof(*e));
	if (h->sink_err) {
		err_set(e, 0, NULL, NULL, "%s", h->sink_msg);
		return h->sink_err;
	}
	if (cc != CURLE_OK) {
		long oserr = 0;

		curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &oserr);
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
			*retry = true;
			err_set(e, 0, NULL, NULL, "cannot connect to %s: %s", t->endpoint,
			        oserr ? strerror((int)oserr) : h->errbuf);
			return oserr == EHOSTUNREACH || oserr == ENETUNREACH ? -EHOSTUNREACH
			                                                     : -ECONNREFUSED;
		case CURLE_COULDNT_RESOLVE_HOST:
			*retry = true;
			err_set(e, 0, NULL, NULL, "cannot resolve the host of %s", t->endpoint);
			return -EHOSTUNREACH;
		case CURLE_OPERATION_TIMEDOUT:
			*retry = true;
			err_set(e, 0, NULL, NULL, "%s timed out or stalled: %s", t->endpoint,
			        h->errbuf);
			return -ETIMEDOUT;
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			*retry = true;
			err_set(e, 0, NULL, NULL, "connection to %s broken: %s", t->endpoint,
			        h->errbuf);
			return -ECONNRESET;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
			err_set(e, 0, NULL, NULL,
			        "TLS with %s failed (certificates are always "
			        "verified; ca_file adds a bundle): %s",
			        t->endpoint, h->errbuf);
			return -EPROTO;
		default:
			err_set(e, 0, NULL, NULL, "request to %s failed: %s", t->endpoint,
			        h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
			return -EIO;
		}
	}
	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
	h->status = code;
	if (code / 100 == 2)
		return 0;
	if ((code == 404 && h->ok404) || (code == 416 && h->ok416))
		return 0;
	if (parse_error_body(h, e) == false)
		e->code[0] = '\0';
	e->http_status = (int)code;
	if (!e->request_id[0])
		scpy(e->request_id, sizeof(e->request_id), h->amz_request_id);
	if (code == 409 && h->ok409 &&
	    (strcmp(e->code, "BucketAlreadyOwnedByYou") == 0 ||
	     strcmp(e->code, "BucketAlreadyExists") == 0))
		return 0;
	scpy(smsg, sizeof(smsg), e->message);
	c = e->code;
	if (code >= 500 || code == 408 || code == 429 || strcmp(c, "SlowDown") == 0 ||
	    strcmp(c, "RequestTimeout") == 0 || strcmp(c, "InternalError") == 0) {
		*retry = true;
		snprintf(e->message, sizeof(e->message),
		         "server busy or failing (HTTP %ld%s%s)%s%.400s", code, *c ? " " : "", c,
		         smsg[0] ? ": " : "", smsg);
		return -EAGAIN;
	}
	if (strcmp(c, "InvalidAccessKeyId") == 0) {
		snprintf(e->message, sizeof(e->message),
		         "authentication failed: %s does not know this access key "
		         "(InvalidAccessKeyId)",
		         t->endpoint);
		return -EACCES;
	}
	if (strcmp(c, "SignatureDoesNotMatch") == 0) {
		snprintf(e->message, sizeof(e->message),
		         "authentication failed: the secret key is wrong for this access key "
		         "(SignatureDoesNotMatch)");
		return -EACCES;
	}
	if (strcmp(c, "RequestTimeTooSkewed") == 0) {
		snprintf(e->message, sizeof(e->message),
		         "clock skew: this host's clock differs too much from %s's "
		         "(RequestTimeTooSkewed); check NTP",
		         t->endpoint);
		return -EACCES;
	}
	if (strcmp(c, "NoSuchBucket") == 0) {
		snprintf(e->message, sizeof(e->message), "bucket \"%s\" does not exist on %s",
		         t->bucket, t->endpoint);
		return -ENOENT;
	}
	if (code == 404) {
		if (!smsg[0])
			snprintf(e->message, sizeof(e->message), "no such object");
		return -ENOENT;
	}
	if (code == 401 || code == 403) {
		if (!smsg[0])
			snprintf(e->message, sizeof(e->message),
			         "access denied (HTTP %ld): wrong credentials or no permission on "
			         "bucket \"%s\"",
			         code, t->bucket);
		return -EACCES;
	}
	if (strcmp(c, "BadDigest") == 0 || strcmp(c, "InvalidDigest") == 0) {
		snprintf(e->message, sizeof(e->message),
		         "the server received other bytes than were sent (%s)", c);
		return -EIO;
	}
	if (code == 507 || strcmp(c, "EntityTooLarge") == 0 || strcmp(c, "QuotaExceeded") == 0) {
		if (!smsg[0])
			snprintf(e->message, sizeof(e->message), "target full (HTTP %ld)", code);
		return -ENOSPC;
	}
	if (code == 412) {
		snprintf(e->message, sizeof(e->message), "the object changed during the download");
		return -EIO;
	}
	if (!smsg[0])
		snprintf(e->message, sizeof(e->message), "HTTP %ld from %s", code, t->endpoint);
	return code == 409 ? -EEXIST : -EIO;
}

static void http_finished(struct s3_http *h, CURLcode cc)
{
	struct s3_target *t = h->t;
	struct td_target_error e;
	bool retry;
	int r;

	if (h->counted_active) {
		t->n_active--;
		h->counted_active = false;
	}
	r = classify(h, cc, &e, &retry);
	/* A resumed download must continue the same object. */
	if (!h->if_match[0] && h->etag[0])
		scpy(h->if_match, sizeof(h->if_match), h->etag);
	if (r < 0 && retry && h->attempt < t->tu.max_attempts && !t->closing) {
		int64_t cap = t->tu.backoff_base_ms << TD_MIN(h->attempt - 1, 20u);
		int64_t delay, elapsed_ms = (td_monotonic_ns() - h->start_ns) / 1000000;

		if (cap > t->tu.backoff_max_ms)
			cap = t->tu.backoff_max_ms;
		delay = (int64_t)(rng_next(t) % (uint64_t)(cap + 1)); /* full jitter */
		if (elapsed_ms + delay <= t->tu.retry_budget_ms) {
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

/* ---- requests ---- */

static void on_req_closed(uv_handle_t *hd)
{
	struct s3_req *r = hd->data;
	struct s3_target *t = r->t;

	free(r);
	t->n_open--;
	t->n_reqs--;
	if (t->closing)
		close_step(t);
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
	for (size_t i = 0; i < r->n_uploads; i++) {
		free(r->uploads[i].key);
		free(r->uploads[i].id);
	}
	free(r->uploads);
	free(r->key_marker);
	free(r->id_marker);
}

static void on_defer(uv_timer_t *tm)
{
	struct s3_req *r = tm->data;
	struct s3_target *t = r->t;

	if (r->prev)
		r->prev->next = r->next;
	else
		t->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->cb(r->data, &r->base, r->status, r->status < 0 ? &r->err : NULL);
	req_free_fields(r);
	uv_close((uv_handle_t *)&r->defer, on_req_closed);
}

/* Ends a request: its callback runs from the loop, never from the caller. */
static void req_finish(struct s3_req *r)
{
	if (r->finishing)
		return;
	r->finishing = true;
	r->phase = PH_DONE;
	uv_timer_start(&r->defer, on_defer, 0, 0);
}

static void req_fail(struct s3_req *r, int status, const struct td_target_error *e)
{
	if (!r->failed) {
		r->failed = true;
		r->status = status;
		if (e)
			r->err = *e;
		else
			err_set(&r->err, 0, NULL, NULL, "%s", strerror(-status));
	}
	/* An initiate in flight is let finish, so the upload it opens can be aborted. */
	if (r->phase != PH_INIT || r->no_network || r->t->closing)
		while (r->https)
			http_destroy(r->https);
	req_step(r);
}

static struct s3_req *req_new(struct s3_target *t, enum req_kind kind, const char *key,
                              td_target_cb cb, void *data)
{
	struct s3_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->base.target = &t->base;
	r->t = t;
	r->kind = kind;
	r->cb = cb;
	r->data = data;
	r->fd = -1;
	if (key && asprintf(&r->full_key, "%s%s", t->prefix, key) < 0) {
		free(r);
		return NULL;
	}
	uv_timer_init(t->base.loop, &r->defer);
	r->defer.data = r;
	t->n_open++;
	t->n_reqs++;
	r->next = t->reqs;
	if (t->reqs)
		t->reqs->prev = r;
	t->reqs = r;
	return r;
}

/* Undoes req_new for a request whose start failed (no callback will run). */
static void req_abandon(struct s3_req *r)
{
	struct s3_target *t = r->t;

	while (r->https)
		http_destroy(r->https);
	if (r->prev)
		r->prev->next = r->next;
	else
		t->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	req_free_fields(r);
	uv_close((uv_handle_t *)&r->defer, on_req_closed);
}

static int start_checks(struct s3_target *t)
{
	return t->closing ? -ECANCELED : 0;
}

/* ---- put ---- */

static void b64(char *out, const unsigned char *in, size_t n)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Thread pool: reads one part (or the whole small object), hashes it. */
static void work_read(uv_work_t *w)
{
	struct slot *s = w->data;
	struct s3_req *r = s->req;
	unsigned char md5[TD_MD5_LEN];
	struct td_hash *m = NULL;
	int rc;

	rc = td_pread_full(r->fd, s->buf, s->len, s->off);
	if (rc == -EIO) {
		s->rc = -EIO;
		return;
	}
	if (rc < 0) {
		s->rc = rc;
		return;
	}
	if (s->last) {
		unsigned char extra;
		ssize_t n;

		do
			n = pread(r->fd, &extra, 1, (off_t)(s->off + s->len));
		while (n < 0 && errno == EINTR);
		if (n != 0) {
			s->rc = n > 0 ? -EFBIG : -errno;
			return;
		}
	}
	if (td_hash_new(&m, TD_HASH_MD5) < 0) {
		s->rc = -ENOMEM;
		return;
	}
	td_hash_update(m, s->buf, s->len);
	td_hash_final(m, md5);
	td_hash_free(m);
	b64(s->md5, md5, sizeof(md5));
	/* A single PUT hashes here; multipart parts go through work_sha, in order. */
	if (!r->upload_id)
		td_hash_update(r->sha, s->buf, s->len);
	s->rc = 0;
}

static void pump_parts(struct s3_req *r);
static void sha_pump(struct s3_req *r);

static void finish_put(struct s3_req *r, const char *etag, const char *version)
{
	unsigned char d[TD_SHA256_LEN];

	td_hash_final(r->sha, d);
	td_hex(r->res->sha256_hex, d, sizeof(d));
	r->res->size_bytes = r->size;
	scpy(r->res->etag, sizeof(r->res->etag), etag);
	scpy(r->res->version_id, sizeof(r->res->version_id), version);
	r->status = 0;
	req_finish(r);
}

static void on_single_put(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	char etag[132], ver[132];

	scpy(etag, sizeof(etag), h->etag);
	scpy(ver, sizeof(ver), h->version_id);
	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	if (r->slots)
		r->slots[0].busy = false;
	finish_put(r, etag, ver);
}

static int start_part_http(struct s3_req *r, struct slot *s)
{
	char q[1200];
	struct s3_http *h;
	int n;

	if (r->upload_id) {
		char id[1100];

		if (td_s3_uri_encode(id, sizeof(id), r->upload_id, 0) < 0)
			return -EPROTO;
		n = snprintf(q, sizeof(q), "partNumber=%u&uploadId=%s", s->part + 1, id);
		if (n < 0 || (size_t)n >= sizeof(q))
			return -EPROTO;
	}
	h = http_new(r, "PUT", r->full_key, r->upload_id ? q : NULL);
	if (!h)
		return -ENOMEM;
	h->body = s->buf;
	h->body_len = s->len;
	h->part = s->part;
	if (http_add_header(h, "Content-MD5: %s", s->md5) < 0 ||
	    (!r->upload_id && http_add_headers(h, r->put_hdrs) < 0)) {
		http_destroy(h);
		return -ENOMEM;
	}
	h->done = r->upload_id ? on_part_put : on_single_put;
	n = http_submit(h);
	if (n < 0)
		http_destroy(h);
	return n;
}

static void after_read(uv_work_t *w, int status)
{
	struct slot *s = w->data;
	struct s3_req *r = s->req;
	struct td_target_error e;
	int rc;

	r->pending_work--;
	if (r->failed) {
		s->busy = false;
		req_step(r);
		return;
	}
	if (status < 0 || s->rc < 0) {
		rc = status < 0 ? status : s->rc;
		s->busy = false;
		if (rc == -EIO || rc == -EFBIG) {
			err_set(&e, 0, NULL, NULL,
			        "the source file is %s than the %" PRIu64
			        " bytes announced; upload abandoned",
			        rc == -EIO ? "shorter" : "longer", r->size);
			rc = -EIO;
		} else {
			err_set(&e, 0, NULL, NULL, "cannot read the source file: %s",
			        strerror(-rc));
		}
		req_fail(r, rc, &e);
		return;
	}
	s->read_done = true;
	rc = start_part_http(r, s);
	if (rc < 0) {
		s->busy = false;
		err_set(&e, 0, NULL, NULL, "cannot start an upload request: %s", strerror(-rc));
		req_fail(r, rc, &e);
		return;
	}
	if (r->upload_id) {
		sha_pump(r);
		pump_parts(r);
	}
}

static void work_sha(uv_work_t *w)
{
	struct slot *s = w->data;

	td_hash_update(s->req->sha, s->buf, s->len);
}

static void maybe_complete(struct s3_req *r);

static void after_sha(uv_work_t *w, int status)
{
	struct slot *s = w->data;
	struct s3_req *r = s->req;

	(void)status; /* never cancelled: it is queued only behind a finished read */
	r->pending_work--;
	r->sha_busy = false;
	s->sha_done = true;
	r->next_sha++;
	if (s->up_done || r->failed)
		s->busy = false;
	if (r->failed) {
		req_step(r);
		return;
	}
	maybe_complete(r);
	sha_pump(r);
	pump_parts(r);
}

/* Feeds the next part, in file order, to the object's SHA-256. */
static void sha_pump(struct s3_req *r)
{
	if (r->failed || r->sha_busy || r->next_sha >= r->n_parts)
		return;
	for (unsigned i = 0; i < r->n_slots; i++) {
		struct slot *s = &r->slots[i];

		if (s->busy && s->part == r->next_sha && s->read_done && !s->sha_done) {
			s->sha_work.data = s;
			if (uv_queue_work(r->t->base.loop, &s->sha_work, work_sha, after_sha) < 0) {
				req_fail(r, -ENOMEM, NULL);
				return;
			}
			r->sha_busy = true;
			r->pending_work++;
			return;
		}
	}
}

static int start_read(struct s3_req *r, struct slot *s, unsigned part)
{
	uint64_t off = (uint64_t)part * r->part_size;
	size_t len = (size_t)TD_MIN(r->part_size, r->size - off);
	int rc;

	if (!s->buf || s->cap < len) {
		free(s->buf);
		s->cap = TD_MAX(len, (size_t)1);
		s->buf = malloc(s->cap);
		if (!s->buf) {
			s->cap = 0;
			return -ENOMEM;
		}
	}
	s->req = r;
	s->part = part;
	s->off = off;
	s->len = len;
	s->last = part + 1 == r->n_parts;
	s->busy = true;
	s->read_done = s->sha_done = s->up_done = false;
	s->work.data = s;
	rc = uv_queue_work(r->t->base.loop, &s->work, work_read, after_read);
	if (rc < 0) {
		s->busy = false;
		return rc;
	}
	r->pending_work++;
	return 0;
}

static void on_complete(struct s3_http *h, int status, const struct td_target_error *e);

static void send_complete(struct s3_req *r)
{
	struct td_target_error e;
	struct s3_http *h;
	char q[1200], id[1100];
	unsigned char md5[TD_MD5_LEN];
	char md5b[32];
	size_t cap = 128 + (size_t)r->n_parts * 200, o = 0;
	unsigned int mdlen = 0;
	int rc = -ENOMEM;

	r->phase = PH_COMPLETE;
	r->complete_body = malloc(cap);
	if (!r->complete_body)
		goto fail;
	o += (size_t)snprintf(r->complete_body + o, cap - o, "<CompleteMultipartUpload>");
	for (unsigned i = 0; i < r->n_parts; i++)
		o += (size_t)snprintf(r->complete_body + o, cap - o,
		                      "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>",
		                      i + 1, r->part_etags[i]);
	o += (size_t)snprintf(r->complete_body + o, cap - o, "</CompleteMultipartUpload>");
	r->complete_len = o;
	EVP_Digest(r->complete_body, o, md5, &mdlen, EVP_md5(), NULL);
	b64(md5b, md5, sizeof(md5));
	if (td_s3_uri_encode(id, sizeof(id), r->upload_id, 0) < 0) {
		rc = -EPROTO;
		goto fail;
	}
	snprintf(q, sizeof(q), "uploadId=%s", id);
	h = http_new(r, "POST", r->full_key, q);
	if (!h)
		goto fail;
	h->body = (const unsigned char *)r->complete_body;
	h->body_len = r->complete_len;
	h->done = on_complete;
	if (http_add_header(h, "Content-MD5: %s", md5b) < 0 ||
	    http_add_header(h, "Content-Type: application/xml") < 0) {
		http_destroy(h);
		goto fail;
	}
	rc = http_submit(h);
	if (rc < 0) {
		http_destroy(h);
		goto fail;
	}
	return;
fail:
	err_set(&e, 0, NULL, NULL, "cannot complete the multipart upload: %s", strerror(-rc));
	req_fail(r, rc, &e);
}

static void on_part_put(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	unsigned part = h->part;
	struct td_target_error pe;

	if (status == 0 && !h->etag[0]) {
		err_set(&pe, h->status > 0 ? (int)h->status : 0, NULL, h->amz_request_id,
		        "the server gave no ETag for part %u", part + 1);
		status = -EPROTO;
		e = &pe;
	}
	if (status == 0)
		scpy(r->part_etags[part], sizeof(r->part_etags[part]), h->etag);
	http_destroy(h);
	/* The slot that held this part is free once its bytes are also hashed. */
	for (unsigned i = 0; i < r->n_slots; i++) {
		struct slot *sl = &r->slots[i];

		if (sl->busy && sl->part == part && sl->read_done) {
			sl->up_done = true;
			if (sl->sha_done)
				sl->busy = false;
		}
	}
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	r->n_done++;
	maybe_complete(r);
	pump_parts(r);
}

static void maybe_complete(struct s3_req *r)
{
	if (r->phase == PH_PARTS && r->n_done == r->n_parts && r->next_sha == r->n_parts)
		send_complete(r);
}

static void pump_parts(struct s3_req *r)
{
	struct td_target_error e;

	while (!r->failed && r->phase == PH_PARTS && r->next_read < r->n_parts) {
		struct slot *s = NULL;
		int rc;

		for (unsigned i = 0; i < r->n_slots; i++) {
			if (!r->slots[i].busy) {
				s = &r->slots[i];
				break;
			}
		}
		if (!s)
			return;
		rc = start_read(r, s, r->next_read);
		if (rc < 0) {
			err_set(&e, 0, NULL, NULL, "cannot read the source file: %s",
			        strerror(-rc));
			req_fail(r, rc, &e);
			return;
		}
		r->next_read++;
	}
}

static void on_head_after_complete(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	char etag[132], ver[132];

	scpy(etag, sizeof(etag), h->etag);
	scpy(ver, sizeof(ver), h->version_id);
	if (status == 0 && h->have_cl && h->content_length != r->size) {
		struct td_target_error pe;

		err_set(&pe, 0, NULL, NULL,
		        "the completed object has %" PRIu64 " bytes, not %" PRIu64,
		        h->content_length, r->size);
		http_destroy(h);
		/* The upload is complete: nothing to abort; the caller deletes. */
		free(r->upload_id);
		r->upload_id = NULL;
		req_fail(r, -EIO, &pe);
		return;
	}
	http_destroy(h);
	free(r->upload_id);
	r->upload_id = NULL;
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	finish_put(r, etag, ver);
}

static void on_complete(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_target_error pe;
	struct td_s3_xml *doc = NULL;
	struct s3_http *hh;
	int rc;

	if (status == 0) {
		/* S3 may answer 200 and put an <Error> in the body. */
		if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0) {
			err_set(&pe, (int)h->status, NULL, h->amz_request_id,
			        "malformed CompleteMultipartUpload response");
			status = -EPROTO;
			e = &pe;
		} else if (strcmp(td_s3_xml_root(doc)->name, "Error") == 0) {
			memset(&pe, 0, sizeof(pe));
			parse_error_body(h, &pe);
			pe.http_status = (int)h->status;
			status = strcmp(pe.code, "InternalError") == 0 ||
			                 strcmp(pe.code, "SlowDown") == 0
			             ? -EAGAIN
			             : -EIO;
			e = &pe;
		}
		td_s3_xml_free(doc);
	}
	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	/* radosgw leaves <ETag> empty here: HEAD for the real "...-N" one. */
	r->phase = PH_HEAD;
	hh = http_new(r, "HEAD", r->full_key, NULL);
	rc = hh ? 0 : -ENOMEM;
	if (hh) {
		hh->done = on_head_after_complete;
		rc = http_submit(hh);
		if (rc < 0)
			http_destroy(hh);
	}
	if (rc < 0) {
		err_set(&pe, 0, NULL, NULL, "cannot check the completed object: %s", strerror(-rc));
		free(r->upload_id);
		r->upload_id = NULL;
		req_fail(r, rc, &pe);
	}
}

static void on_initiate(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_target_error pe;
	struct td_s3_xml *doc = NULL;
	const char *id = NULL;

	if (status == 0) {
		if (h->resp_len && td_s3_xml_parse(&doc, h->resp, h->resp_len) == 0)
			id = td_s3_xml_child_text(td_s3_xml_root(doc), "UploadId");
		if (id && *id && strlen(id) < 1024)
			r->upload_id = strdup(id);
		if (!r->upload_id) {
			err_set(&pe, (int)h->status, NULL, h->amz_request_id,
			        "malformed InitiateMultipartUpload response");
			status = -EPROTO;
			e = &pe;
		}
		td_s3_xml_free(doc);
	}
	http_destroy(h);
	r->phase = PH_PARTS;
	if (r->failed) { /* cancelled meanwhile: req_step aborts the new upload */
		req_step(r);
		return;
	}
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	pump_parts(r);
}

static void on_abort_done(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	(void)status;
	(void)e;
	http_destroy(h);
	free(r->upload_id);
	r->upload_id = NULL;
	req_finish(r);
}

/* Drives a failed request to its end: waits for thread-pool reads, aborts an
 * open multipart upload, then calls back. */
static void req_step(struct s3_req *r)
{
	struct s3_http *h;
	char q[1200], id[1100];

	if (!r->failed || r->finishing || r->phase == PH_ABORT)
		return;
	if (r->pending_work > 0 || r->https)
		return;
	if (r->upload_id && !r->no_network && !r->t->closing &&
	    td_s3_uri_encode(id, sizeof(id), r->upload_id, 0) >= 0) {
		snprintf(q, sizeof(q), "uploadId=%s", id);
		h = http_new(r, "DELETE", r->full_key, q);
		if (h) {
			h->ok404 = true;
			h->done = on_abort_done;
			if (http_submit(h) == 0) {
				r->phase = PH_ABORT;
				return;
			}
			http_destroy(h);
		}
	}
	req_finish(r);
}

static int build_put_headers(struct s3_req *r, const struct td_target_kv *meta, size_t n_meta,
                             const char *content_type)
{
	struct s3_target *t = r->t;
	char line[1200];
	struct curl_slist *l;

	for (size_t i = 0; i < n_meta; i++) {
		const char *k = meta[i].key, *v = meta[i].value;

		if (!k || !*k || !v || strlen(k) > 60 || strlen(v) > 500)
			return -EINVAL;
		for (const char *p = k; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			      *p == '_'))
				return -EINVAL;
		for (const char *p = v; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				return -EINVAL;
		snprintf(line, sizeof(line), "x-amz-meta-%s: %s", k, v);
		l = curl_slist_append(r->put_hdrs, line);
		if (!l)
			return -ENOMEM;
		r->put_hdrs = l;
	}
	if (t->storage_class && *t->storage_class) {
		snprintf(line, sizeof(line), "x-amz-storage-class: %s", t->storage_class);
		l = curl_slist_append(r->put_hdrs, line);
		if (!l)
			return -ENOMEM;
		r->put_hdrs = l;
	}
	snprintf(line, sizeof(line), "Content-Type: %s",
	         content_type && *content_type ? content_type : "application/octet-stream");
	for (const char *p = line; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -EINVAL;
	l = curl_slist_append(r->put_hdrs, line);
	if (!l)
		return -ENOMEM;
	r->put_hdrs = l;
	return 0;
}

static int s3_put_fd(struct td_target *tt, struct td_target_req **req_out, const char *key, int fd,
                     uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
                     struct td_put_result *res, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, K_PUT, key, cb, data);
	if (!r)
		return -ENOMEM;
	r->res = res;
	r->fd = fd;
	r->size = size_bytes;
	r->from_fd = true;
	rc = build_put_headers(r, meta, n_meta, NULL);
	if (rc == 0)
		rc = td_hash_new(&r->sha, TD_HASH_SHA256);
	if (rc < 0)
		goto fail;
	if (size_bytes <= TD_MIN(t->threshold, SINGLE_PUT_MAX)) {
		r->part_size = TD_MAX(size_bytes, 1);
		r->n_parts = 1;
		r->n_slots = 1;
		r->slots = calloc(1, sizeof(*r->slots));
		if (!r->slots) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = start_read(r, &r->slots[0], 0);
		if (rc < 0)
			goto fail;
		r->next_read = 1;
	} else {
		struct s3_http *h;

		r->part_size = t->part_size;
		if ((size_bytes + r->part_size - 1) / r->part_size > MAX_PARTS)
			r->part_size = (size_bytes + MAX_PARTS - 1) / MAX_PARTS;
		if (r->part_size > PART_SIZE_MAX) {
			rc = -EFBIG;
			goto fail;
		}
		r->n_parts = (unsigned)((size_bytes + r->part_size - 1) / r->part_size);
		r->n_slots = TD_MIN(t->max_conn, r->n_parts);
		r->slots = calloc(r->n_slots, sizeof(*r->slots));
		r->part_etags = calloc(r->n_parts, sizeof(*r->part_etags));
		if (!r->slots || !r->part_etags) {
			rc = -ENOMEM;
			goto fail;
		}
		r->phase = PH_INIT;
		h = http_new(r, "POST", r->full_key, "uploads=");
		if (!h) {
			rc = -ENOMEM;
			goto fail;
		}
		h->done = on_initiate;
		rc = http_add_headers(h, r->put_hdrs);
		if (rc == 0)
			rc = http_submit(h);
		if (rc < 0)
			goto fail;
	}
	if (req_out)
		*req_out = &r->base;
	return 0;
fail:
	req_abandon(r);
	return rc;
}

static int s3_put_buf(struct td_target *tt, struct td_target_req **req_out, const char *key,
                      const void *buf, size_t n, const char *content_type,
                      const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                      td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	struct slot *s;
	unsigned char md5[TD_MD5_LEN];
	unsigned int mdlen = 0;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, K_PUT, key, cb, data);
	if (!r)
		return -ENOMEM;
	r->res = res;
	r->size = n;
	rc = build_put_headers(r, meta, n_meta, content_type);
	if (rc == 0)
		rc = td_hash_new(&r->sha, TD_HASH_SHA256);
	if (rc < 0)
		goto fail;
	r->n_parts = 1;
	r->n_slots = 1;
	r->slots = calloc(1, sizeof(*r->slots));
	if (!r->slots) {
		rc = -ENOMEM;
		goto fail;
	}
	s = &r->slots[0];
	/* The caller's buffer is only guaranteed during this call: copy it. */
	s->buf = malloc(TD_MAX(n, (size_t)1));
	if (!s->buf) {
		rc = -ENOMEM;
		goto fail;
	}
	if (n)
		memcpy(s->buf, buf, n);
	s->cap = s->len = n;
	s->req = r;
	s->busy = true;
	td_hash_update(r->sha, s->buf, n);
	EVP_Digest(s->buf, n, md5, &mdlen, EVP_md5(), NULL);
	b64(s->md5, md5, sizeof(md5));
	rc = start_part_http(r, s);
	if (rc < 0)
		goto fail;
	if (req_out)
		*req_out = &r->base;
	return 0;
fail:
	req_abandon(r);
	return rc;
}

/* ---- get ---- */

static void on_get(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct td_target_error pe;

	if (status == 0 && r->verify) {
		unsigned char d[TD_SHA256_LEN];
		char hex[TD_SHA256_HEX];

		td_hash_final(h->sha, d);
		td_hex(hex, d, sizeof(d));
		if (strcasecmp(hex, r->expect_sha) != 0) {
			err_set(&pe, 0, NULL, NULL,
			        "SHA-256 mismatch: the object's bytes hash to %s, expected %s", hex,
			        r->expect_sha);
			status = -EIO;
			e = &pe;
		}
	}
	if (status == 0 && r->got)
		*r->got = (size_t)h->received;
	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	r->status = 0;
	req_finish(r);
}

static int start_get(struct s3_target *t, struct td_target_req **req_out, const char *key,
                     uint64_t off, uint64_t len, const struct iovec *iov, unsigned iovcnt,
                     size_t *got, int fd, uint64_t fd_off, const char *expect, td_target_cb cb,
                     void *data)
{
	struct s3_req *r;
	struct s3_http *h;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	if (expect && strlen(expect) != TD_SHA256_HEX - 1)
		return -EINVAL;
	r = req_new(t, K_GET, key, cb, data);
	if (!r)
		return -ENOMEM;
	r->got = got;
	if (len == 0) {
		if (got)
			*got = 0;
		req_finish(r);
		goto out;
	}
	h = http_new(r, "GET", r->full_key, NULL);
	if (!h) {
		rc = -ENOMEM;
		goto fail;
	}
	h->done = on_get;
	h->ok416 = true; /* asking past the end reads nothing */
	/* The first response's ETag pins the object for resumed attempts. */
	h->has_range = off > 0 || len != UINT64_MAX;
	h->range_off = off;
	h->range_len = len;
	if (iov) {
		h->sink = SINK_BUF;
		memcpy(h->out_iov, iov, iovcnt * sizeof(*iov));
		h->out_iovcnt = iovcnt;
		h->out_cap = len;
	} else {
		h->sink = SINK_FD;
		h->out_fd = fd;
		h->out_fd_off = fd_off;
		if (expect) {
			r->verify = true;
			scpy(r->expect_sha, sizeof(r->expect_sha), expect);
			rc = td_hash_new(&h->sha, TD_HASH_SHA256);
			if (rc < 0)
				goto fail;
		}
	}
	rc = http_submit(h);
	if (rc < 0)
		goto fail;
out:
	if (req_out)
		*req_out = &r->base;
	return 0;
fail:
	req_abandon(r);
	return rc;
}

static int s3_get_range(struct td_target *tt, struct td_target_req **req_out, const char *key,
                        uint64_t off, const struct iovec *iov, unsigned iovcnt, size_t *got,
                        td_target_cb cb, void *data)
{
	uint64_t len = 0;

	for (unsigned i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return start_get((struct s3_target *)tt, req_out, key, off, len, iov, iovcnt, got, -1, 0,
	                 NULL, cb, data);
}

static int s3_get_fd(struct td_target *tt, struct td_target_req **req_out, const char *key,
                     uint64_t off, uint64_t len, int fd, uint64_t fd_off,
                     const char *expect_sha256_hex, td_target_cb cb, void *data)
{
	return start_get((struct s3_target *)tt, req_out, key, off, len, NULL, 0, NULL, fd, fd_off,
	                 expect_sha256_hex, cb, data);
}

/* ---- head, delete, bucket ---- */

static void on_head(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct s3_target *t = r->t;
	struct td_object_info *info = r->info;

	if (status == 0) {
		scpy(info->key, sizeof(info->key), r->full_key + strlen(t->prefix));
		info->size_bytes = h->have_cl ? h->content_length : 0;
		scpy(info->etag, sizeof(info->etag), h->etag);
		scpy(info->version_id, sizeof(info->version_id), h->version_id);
		info->mtime_s = h->last_modified_s > 0 ? h->last_modified_s : 0;
		info->server_time_s = h->date_s > 0 ? h->date_s : 0;
	}
	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	r->status = 0;
	req_finish(r);
}

static int s3_head(struct td_target *tt, struct td_target_req **req_out, const char *key,
                   struct td_object_info *info, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	struct s3_http *h;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, K_HEAD, key, cb, data);
	if (!r)
		return -ENOMEM;
	memset(info, 0, sizeof(*info));
	r->info = info;
	h = http_new(r, "HEAD", r->full_key, NULL);
	if (!h) {
		rc = -ENOMEM;
		goto fail;
	}
	h->info = info;
	h->done = on_head;
	rc = http_submit(h);
	if (rc < 0)
		goto fail;
	if (req_out)
		*req_out = &r->base;
	return 0;
fail:
	req_abandon(r);
	return rc;
}

static void on_simple(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	r->status = 0;
	req_finish(r);
}

static int simple_req(struct s3_target *t, enum req_kind kind, const char *method, const char *key,
                      struct td_target_req **req_out, td_target_cb cb, void *data)
{
	struct s3_req *r;
	struct s3_http *h;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, kind, key, cb, data);
	if (!r)
		return -ENOMEM;
	h = http_new(r, method, r->full_key, NULL);
	if (!h) {
		rc = -ENOMEM;
		goto fail;
	}
	h->done = on_simple;
	h->ok404 = kind == K_DELETE;
	h->ok409 = kind == K_MKBUCKET;
	rc = http_submit(h);
	if (rc < 0)
		goto fail;
	if (req_out)
		*req_out = &r->base;
	return 0;
fail:
	req_abandon(r);
	return rc;
}

static int s3_delete(struct td_target *tt, struct td_target_req **req_out, const char *key,
                     td_target_cb cb, void *data)
{
	return simple_req((struct s3_target *)tt, K_DELETE, "DELETE", key, req_out, cb, data);
}

int td_target_s3_create_bucket(struct td_target *tt, struct td_target_req **req_out,
                               td_target_cb cb, void *data)
{
	if (tt->ops != &td_target_s3_ops || !cb)
		return -EINVAL;
	return simple_req((struct s3_target *)tt, K_MKBUCKET, "PUT", NULL, req_out, cb, data);
}

/* ---- list ---- */

static int list_page(struct s3_req *r);

static void on_list(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct s3_target *t = r->t;
	struct td_target_error pe;
	struct td_s3_xml *doc = NULL;
	const struct td_s3_xml_node *root, *c;
	const char *trunc, *next;
	bool stop = false;
	int rc;

	if (status < 0) {
		http_destroy(h);
		req_fail(r, status, e);
		return;
	}
	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0 ||
	    strcmp(td_s3_xml_root(doc)->name, "ListBucketResult") != 0) {
		err_set(&pe, (int)h->status, NULL, h->amz_request_id,
		        "malformed ListObjectsV2 response");
		td_s3_xml_free(doc);
		http_destroy(h);
		req_fail(r, -EPROTO, &pe);
		return;
	}
	http_destroy(h);
	root = td_s3_xml_root(doc);
	for (c = root->child; c && !stop; c = c->next) {
		struct td_object_info *info;
		const char *key, *size, *etag, *lm;
		char *end;

		if (strcmp(c->name, "Contents") != 0)
			continue;
		key = td_s3_xml_child_text(c, "Key");
		size = td_s3_xml_child_text(c, "Size");
		etag = td_s3_xml_child_text(c, "ETag");
		lm = td_s3_xml_child_text(c, "LastModified");
		if (!key || strncmp(key, t->prefix, r->strip) != 0 ||
		    strlen(key) - r->strip > TD_TARGET_KEY_MAX || !size) {
			err_set(&pe, 0, NULL, NULL, "malformed entry in a ListObjectsV2 response");
			td_s3_xml_free(doc);
			req_fail(r, -EPROTO, &pe);
			return;
		}
		info = calloc(1, sizeof(*info));
		if (!info) {
			td_s3_xml_free(doc);
			req_fail(r, -ENOMEM, NULL);
			return;
		}
		scpy(info->key, sizeof(info->key), key + r->strip);
		info->size_bytes = strtoull(size, &end, 10);
		if (etag)
			copy_trim(info->etag, sizeof(info->etag), etag, strlen(etag));
		if (lm) {
			/* ISO 8601 "2026-11-21T22:03:04.000Z" */
			struct tm tmv;

			memset(&tmv, 0, sizeof(tmv));
			if (strptime(lm, "%Y-%m-%dT%H:%M:%S", &tmv))
				info->mtime_s = (int64_t)timegm(&tmv);
		}
		stop = r->each(r->data, info) != 0;
		free(info);
		if (r->t->closing || r->failed) {
			td_s3_xml_free(doc);
			return;
		}
	}
	trunc = td_s3_xml_child_text(root, "IsTruncated");
	next = td_s3_xml_child_text(root, "NextContinuationToken");
	free(r->token);
	r->token = NULL;
	if (!stop && trunc && strcmp(trunc, "true") == 0) {
		if (!next || !*next || strlen(next) > 4096) {
			err_set(&pe, 0, NULL, NULL,
			        "truncated listing without a continuation token");
			td_s3_xml_free(doc);
			req_fail(r, -EPROTO, &pe);
			return;
		}
		r->token = strdup(next);
		td_s3_xml_free(doc);
		rc = r->token ? list_page(r) : -ENOMEM;
		if (rc < 0)
			req_fail(r, rc, NULL);
		return;
	}
	td_s3_xml_free(doc);
	r->status = 0;
	req_finish(r);
}

static int list_page(struct s3_req *r)
{
	char *q = NULL, *tok = NULL, *pfx = NULL;
	struct s3_http *h;
	size_t cap = 3 * (strlen(r->full_key) + (r->token ? strlen(r->token) : 0)) + 16;
	int rc = -ENOMEM, n;

	pfx = malloc(cap);
	tok = malloc(cap);
	if (!pfx || !tok)
		goto out;
	if (td_s3_uri_encode(pfx, cap, r->full_key, 0) < 0 ||
	    (r->token && td_s3_uri_encode(tok, cap, r->token, 0) < 0)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	/* Canonical: parameters sorted by name. */
	if (r->token)
		n = asprintf(&q, "continuation-token=%s&list-type=2&max-keys=1000&prefix=%s", tok,
		             pfx);
	else
		n = asprintf(&q, "list-type=2&max-keys=1000&prefix=%s", pfx);
	if (n < 0) {
		q = NULL;
		goto out;
	}
	h = http_new(r, "GET", NULL, q);
	if (!h)
		goto out;
	h->sink = SINK_MEM;
	h->resp_max = LIST_BODY_MAX;
	h->done = on_list;
	rc = http_submit(h);
	if (rc < 0)
		http_destroy(h);
out:
	free(q);
	free(tok);
	free(pfx);
	return rc;
}

static int s3_list(struct td_target *tt, struct td_target_req **req_out, const char *prefix,
                   td_target_list_each each, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, K_LIST, prefix, cb, data);
	if (!r)
		return -ENOMEM;
	r->each = each;
	r->strip = strlen(t->prefix);
	rc = list_page(r);
	if (rc < 0) {
		req_abandon(r);
		return rc;
	}
	if (req_out)
		*req_out = &r->base;
	return 0;
}

/* ---- cleanup_stale ---- */

static int uploads_page(struct s3_req *r);
static void abort_next(struct s3_req *r);

static void on_stale_abort(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	http_destroy(h);
	if (status < 0) {
		req_fail(r, status, e);
		return;
	}
	(*r->n_cleaned)++;
	abort_next(r);
}

static void abort_next(struct s3_req *r)
{
	struct s3_http *h;
	char q[1200], id[1100];
	int rc;

	if (r->next_upload < r->n_uploads) {
		struct upload_ref *u = &r->uploads[r->next_upload++];

		if (td_s3_uri_encode(id, sizeof(id), u->id, 0) < 0) {
			req_fail(r, -EPROTO, NULL);
			return;
		}
		snprintf(q, sizeof(q), "uploadId=%s", id);
		h = http_new(r, "DELETE", u->key, q);
		if (!h) {
			req_fail(r, -ENOMEM, NULL);
			return;
		}
		h->ok404 = true;
		h->done = on_stale_abort;
		rc = http_submit(h);
		if (rc < 0) {
			http_destroy(h);
			req_fail(r, rc, NULL);
		}
		return;
	}
	if (r->more_pages) {
		rc = uploads_page(r);
		if (rc < 0)
			req_fail(r, rc, NULL);
		return;
	}
	r->status = 0;
	req_finish(r);
}

static void on_uploads(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	struct s3_target *t = r->t;
	struct td_target_error pe;
	struct td_s3_xml *doc = NULL;
	const struct td_s3_xml_node *root, *c;
	const char *trunc;
	size_t n = 0;

	if (status < 0) {
		http_destroy(h);
		req_fail(r, status, e);
		return;
	}
	if (h->resp_len == 0 || td_s3_xml_parse(&doc, h->resp, h->resp_len) < 0 ||
	    strcmp(td_s3_xml_root(doc)->name, "ListMultipartUploadsResult") != 0) {
		err_set(&pe, (int)h->status, NULL, h->amz_request_id,
		        "malformed ListMultipartUploads response");
		td_s3_xml_free(doc);
		http_destroy(h);
		req_fail(r, -EPROTO, &pe);
		return;
	}
	http_destroy(h);
	root = td_s3_xml_root(doc);
	for (size_t i = 0; i < r->n_uploads; i++) {
		free(r->uploads[i].key);
		free(r->uploads[i].id);
	}
	free(r->uploads);
	r->uploads = NULL;
	r->n_uploads = r->next_upload = 0;
	for (c = root->child; c; c = c->next)
		if (strcmp(c->name, "Upload") == 0)
			n++;
	if (n > 10000)
		n = 10000;
	r->uploads = calloc(n ? n : 1, sizeof(*r->uploads));
	if (!r->uploads) {
		td_s3_xml_free(doc);
		req_fail(r, -ENOMEM, NULL);
		return;
	}
	for (c = root->child; c && r->n_uploads < n; c = c->next) {
		const char *key, *id;

		if (strcmp(c->name, "Upload") != 0)
			continue;
		key = td_s3_xml_child_text(c, "Key");
		id = td_s3_xml_child_text(c, "UploadId");
		if (!key || !id || !*id || strlen(id) > 1000 ||
		    strncmp(key, t->prefix, strlen(t->prefix)) != 0 ||
		    strlen(key) > TD_TARGET_KEY_MAX + strlen(t->prefix))
			continue;
		r->uploads[r->n_uploads].key = strdup(key);
		r->uploads[r->n_uploads].id = strdup(id);
		if (!r->uploads[r->n_uploads].key || !r->uploads[r->n_uploads].id) {
			free(r->uploads[r->n_uploads].key);
			free(r->uploads[r->n_uploads].id);
			td_s3_xml_free(doc);
			req_fail(r, -ENOMEM, NULL);
			return;
		}
		r->n_uploads++;
	}
	trunc = td_s3_xml_child_text(root, "IsTruncated");
	r->more_pages = trunc && strcmp(trunc, "true") == 0;
	free(r->key_marker);
	free(r->id_marker);
	r->key_marker = xstrdup(td_s3_xml_child_text(root, "NextKeyMarker"));
	r->id_marker = xstrdup(td_s3_xml_child_text(root, "NextUploadIdMarker"));
	if (r->more_pages && (!r->key_marker || !*r->key_marker)) {
		err_set(&pe, 0, NULL, NULL, "truncated upload listing without a marker");
		td_s3_xml_free(doc);
		req_fail(r, -EPROTO, &pe);
		return;
	}
	td_s3_xml_free(doc);
	abort_next(r);
}

static int uploads_page(struct s3_req *r)
{
	struct s3_target *t = r->t;
	char km[3 * 2100], im[3 * 1100], pf[3 * 1100];
	char *q = NULL;
	struct s3_http *h;
	int n;

	if (td_s3_uri_encode(pf, sizeof(pf), t->prefix, 0) < 0)
		return -ENAMETOOLONG;
	if (r->key_marker && *r->key_marker) {
		if (td_s3_uri_encode(km, sizeof(km), r->key_marker, 0) < 0 ||
		    td_s3_uri_encode(im, sizeof(im), r->id_marker ? r->id_marker : "", 0) < 0)
			return -ENAMETOOLONG;
		n = asprintf(&q, "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=", km, pf,
		             im);
	} else {
		n = asprintf(&q, "prefix=%s&uploads=", pf);
	}
	if (n < 0)
		return -ENOMEM;
	h = http_new(r, "GET", NULL, q);
	free(q);
	if (!h)
		return -ENOMEM;
	h->sink = SINK_MEM;
	h->resp_max = LIST_BODY_MAX;
	h->done = on_uploads;
	n = http_submit(h);
	if (n < 0)
		http_destroy(h);
	return n;
}

static int s3_cleanup_stale(struct td_target *tt, struct td_target_req **req_out,
                            unsigned *n_cleaned, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	int rc = start_checks(t);

	if (rc < 0)
		return rc;
	r = req_new(t, K_CLEANUP, NULL, cb, data);
	if (!r)
		return -ENOMEM;
	*n_cleaned = 0;
	r->n_cleaned = n_cleaned;
	rc = uploads_page(r);
	if (rc < 0) {
		req_abandon(r);
		return rc;
	}
	if (req_out)
		*req_out = &r->base;
	return 0;
}

/* ---- cancel, new, close ---- */

static void s3_cancel(struct td_target_req *base)
{
	struct s3_req *r = (struct s3_req *)base;
	struct td_target_error e;

	if (r->finishing || r->failed)
		return;
	err_set(&e, 0, NULL, NULL, "cancelled");
	req_fail(r, -ECANCELED, &e);
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
	free_secret(t->userpwd);
	free(t->sigv4);
	free(t->storage_class);
	free(t->ca_file);
	free(t);
}

static void close_step(struct s3_target *t)
{
	if (t->n_reqs > 0)
		return;
	if (!t->multi_gone) {
		t->multi_gone = true;
		/* May call on_curl_socket(REMOVE) for cached connections. */
		curl_multi_cleanup(t->multi);
		t->multi = NULL;
		while (t->socks)
			sock_close(t->socks);
		uv_timer_stop(&t->curl_timer);
		uv_close((uv_handle_t *)&t->curl_timer, on_handle_closed);
		uv_close((uv_handle_t *)&t->close_timer, on_handle_closed);
		uv_timer_stop(&t->bw_timer);
		uv_close((uv_handle_t *)&t->bw_timer, on_handle_closed);
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
	err_set(&e, 0, NULL, NULL, "cancelled: the target is closing");
	for (struct s3_req *r = t->reqs; r; r = r->next) {
		r->no_network = true;
		if (!r->finishing && !r->failed)
			req_fail(r, -ECANCELED, &e);
		else if (r->phase == PH_ABORT) {
			while (r->https)
				http_destroy(r->https);
			req_finish(r);
		}
	}
	/* Deferred, so a close from inside a callback never frees what the caller
	 * is still using. */
	uv_timer_start(&t->close_timer, on_close_timer, 0, 0);
}

static int s3_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                  struct td_target_error *err)
{
	struct s3_target *t;
	const char *sep;
	int rc = -ENOMEM;

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
	t = calloc(1, sizeof(*t));
	if (!t) {
		td_target_error_set(err, "out of memory");
		return -ENOMEM;
	}
	t->base.loop = loop;
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
		goto fail;
	{
		size_t l = strlen(t->endpoint);

		while (l > 0 && t->endpoint[l - 1] == '/')
			t->endpoint[--l] = '\0';
		l = strlen(t->hostport);
		while (l > 0 && t->hostport[l - 1] == '/')
			t->hostport[--l] = '\0';
	}
	if (asprintf(&t->userpwd, "%s:%s", conf->access_key, conf->secret_key) < 0) {
		t->userpwd = NULL;
		goto fail;
	}
	if (asprintf(&t->sigv4, "aws:amz:%s:s3", t->region) < 0) {
		t->sigv4 = NULL;
		goto fail;
	}
	t->virtual_host = conf->addressing == TD_ADDRESSING_VIRTUAL;
	t->plaintext = strcmp(t->scheme, "http") == 0;
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
	td_target_s3_tuning_default(&t->tu);
	if (td_random_bytes(&t->rng, sizeof(t->rng)) < 0 || t->rng == 0)
		t->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)td_monotonic_ns();
	t->multi = curl_multi_init();
	if (!t->multi)
		goto fail;
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)t->max_conn);
	curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)t->max_conn);
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->max_conn);
	uv_timer_init(loop, &t->curl_timer);
	uv_timer_init(loop, &t->close_timer);
	uv_timer_init(loop, &t->bw_timer);
	t->curl_timer.data = t;
	t->close_timer.data = t;
	t->bw_timer.data = t;
	t->bw_last_ns = td_monotonic_ns();
	t->bw_tokens = bw_burst(t);
	t->n_open = 3;
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
	.put_fd = s3_put_fd,
	.put_buf = s3_put_buf,
	.get_range = s3_get_range,
	.get_fd = s3_get_fd,
	.head = s3_head,
	.delete_ = s3_delete,
	.list = s3_list,
	.cleanup_stale = s3_cleanup_stale,
	.cancel = s3_cancel,
};
