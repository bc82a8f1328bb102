/*
 * target_s3_http — one HTTP exchange of the s3 backend (struct s3_http): its
 * URL (path or virtual-host style, SigV4's percent-encoding), its headers, the
 * easy handle set up for each attempt (SigV4 signing is curl's, from
 * CURLOPT_AWS_SIGV4), and the callbacks that feed a body to curl and take the
 * response apart: headers into the exchange, a body into memory, the caller's
 * buffers or a file.
 *
 * Threading: loop thread only (curl calls back from curl_multi_socket_action).
 *
 * Ownership: an exchange belongs to its request (on r->https) and owns its easy
 * handle, header lists, URL, response buffer and retry timer; it is freed once
 * that timer has closed. It never owns the body it sends (the request does).
 */
#include "target_s3_int.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

int s3__upload_query(char *q, size_t cap, const char *params, const char *upload_id)
{
	char id[1100];
	int n;

	if (td_s3_uri_encode(id, sizeof(id), upload_id, 0) < 0)
		return -EPROTO;
	n = snprintf(q, cap, "%s%suploadId=%s", params ? params : "", params ? "&" : "", id);
	return n < 0 || (size_t)n >= cap ? -EPROTO : 0;
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

static size_t on_read_body(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_http *h = userp;
	size_t n = TD_MIN(size * nitems, h->body_len - h->body_off);

	if (n && s3__bw_take(h, n) == 0)
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

void s3__copy_trim(char *dst, size_t cap, const char *v, size_t n)
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
	s3__copy_trim(val, sizeof(val), colon + 1, n - kl - 1);
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

/* An error body (its head is kept for the <Error>), or a small answer kept in
 * memory (SINK_MEM), up to its cap. */
static size_t write_mem(struct s3_http *h, const char *buf, size_t n, bool ok)
{
	size_t max = ok ? h->resp_max : ERR_BODY_MAX;

	if (h->resp_len + n > max) {
		if (ok)
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

/* Into the caller's buffers (SINK_BUF), where the bytes so far end. */
static size_t write_iov(struct s3_http *h, const char *buf, size_t n)
{
	struct td_target_req *base = &h->req->base;

	if (h->received + n > h->out_cap)
		return sink_fail(h, -EPROTO, "server sent more bytes than asked for");
	for (size_t done = 0, avail; done < n; done += avail) {
		char *p = td_iov_at(h->out_iov, h->out_iovcnt, h->received + done, &avail);

		avail = TD_MIN(avail, n - done);
		memcpy(p, buf + done, avail);
	}
	h->received += n;
	if (base->progress)
		base->progress(base->progress_data, (size_t)h->received);
	return n;
}

/* Into a file (SINK_FD) at its offset, hashed on the way when asked. */
static size_t write_fd(struct s3_http *h, const char *buf, size_t n)
{
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
	h->received += n;
	return n;
}

static size_t on_write(char *buf, size_t size, size_t nitems, void *userp)
{
	struct s3_http *h = userp;
	size_t n = size * nitems;
	long code = 0;

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code / 100 != 2 || h->sink == SINK_MEM)
		return write_mem(h, buf, n, code / 100 == 2);
	if (n && s3__bw_take(h, n) == 0)
		return CURL_WRITEFUNC_PAUSE;
	if (h->first_write) {
		h->first_write = false;
		/* A 200 to a ranged request from a non-zero offset would be the wrong bytes. */
		if (code == 200 && h->sent_range && h->range_off + h->received > 0)
			return sink_fail(h, -EPROTO, "server ignored the Range header");
	}
	if (h->has_range && h->range_len != UINT64_MAX && h->received + n > h->range_len)
		return sink_fail(h, -EPROTO, "server sent more bytes than asked for");
	if (h->sink == SINK_BUF)
		return write_iov(h, buf, n);
	return write_fd(h, buf, n);
}

struct s3_http *s3__http_new(struct s3_req *r, const char *method, const char *full_key,
                             const char *query, s3_done_fn done)
{
	struct s3_target *t = r->t;
	struct s3_http *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->t = t;
	h->req = r;
	h->method = method;
	h->done = done;
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
	s3__handle_gone(t);
}

void s3__http_destroy(struct s3_http *h)
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

int s3__http_add_header(struct s3_http *h, const char *fmt, ...)
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

int s3__http_add_headers(struct s3_http *h, const struct curl_slist *from)
{
	for (; from; from = from->next) {
		struct curl_slist *l = curl_slist_append(h->base_hdrs, from->data);

		if (!l)
			return -ENOMEM;
		h->base_hdrs = l;
	}
	return 0;
}

/* The header list of one attempt: the request's own headers, and a Range and
 * If-Match that resume a download where the last attempt broke (or, when the
 * caller named the ETag the object must have, pin every attempt to it). */
static int attempt_headers(struct s3_http *h, struct curl_slist **out)
{
	struct curl_slist *l = NULL;
	char line[300];

#define APPEND(s)                                                                                  \
	do {                                                                                       \
		struct curl_slist *n_ = curl_slist_append(l, (s));                                 \
		if (!n_)                                                                           \
			goto oom;                                                                  \
		l = n_;                                                                            \
	} while (0)

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
	if ((h->received > 0 || h->if_match_first) && h->if_match[0]) {
		snprintf(line, sizeof(line), "If-Match: \"%s\"", h->if_match);
		APPEND(line);
	}
#undef APPEND
	*out = l;
	return 0;
oom:
	curl_slist_free_all(l);
	return -ENOMEM;
}

/* What every attempt sets: the URL, SigV4 credentials, the callbacks, TLS
 * verification, and the time-outs that catch a stalled transfer. */
static void attempt_options(struct s3_http *h)
{
	struct s3_target *t = h->t;
	CURL *e = h->easy;

	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, h);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERNAME, t->access_key);
	curl_easy_setopt(e, CURLOPT_PASSWORD, t->secret_key);
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
	if (t->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, t->connect_to);
	if (t->ca_file) {
		/* CAINFO replaces the default bundle; CAPATH keeps the system's too. */
		curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
}

/* The method, and for PUT and POST the body, rewound. */
static void attempt_method(struct s3_http *h)
{
	CURL *e = h->easy;

	if (strcmp(h->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(h->method, "DELETE") == 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
		return;
	}
	if (strcmp(h->method, "PUT") == 0) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)h->body_len);
	} else if (strcmp(h->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
	} else {
		return;
	}
	h->body_off = 0;
	curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read_body);
	curl_easy_setopt(e, CURLOPT_READDATA, h);
	curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek_body);
	curl_easy_setopt(e, CURLOPT_SEEKDATA, h);
}

int s3__http_setup(struct s3_http *h)
{
	struct curl_slist *l;
	int r;

	curl_easy_reset(h->easy);
	r = attempt_headers(h, &l);
	if (r < 0)
		return r;
	curl_slist_free_all(h->hdrs);
	h->hdrs = l;
	attempt_options(h);
	attempt_method(h);
	return 0;
}
