/*
 * target_s3_get — the s3 backend's reads and small requests: get_range (into
 * the caller's buffers) and get_fd (into a file, optionally hashed as the
 * bytes arrive), head, delete, and create_bucket. A download that breaks is
 * resumed by the next attempt with a Range from where it stopped, pinned to
 * the first answer's ETag by If-Match (target_s3_http.c builds those headers).
 *
 * Threading: loop thread only. Ownership: a read owns nothing of the caller's
 * but writes into the buffers, fd and result structs it was given, until its
 * callback has run.
 */
#include "target_s3_int.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
			s3__err_set(&pe, 0, NULL, NULL,
			            "SHA-256 mismatch: the object's bytes hash to %s, expected %s",
			            hex, r->expect_sha);
			status = -EIO;
			e = &pe;
		}
	}
	if (status == 0 && r->got)
		*r->got = (size_t)h->received;
	s3__http_destroy(h);
	s3__req_end(r, status, e);
}

/* Where a GET's body goes: the caller's buffers (iov), or a file (fd). */
static int get_sink(struct s3_http *h, const struct iovec *iov, unsigned iovcnt, uint64_t len,
                    int fd, uint64_t fd_off, const char *expect)
{
	struct s3_req *r = h->req;

	if (iov) {
		h->sink = SINK_BUF;
		memcpy(h->out_iov, iov, iovcnt * sizeof(*iov));
		h->out_iovcnt = iovcnt;
		h->out_cap = len;
		return 0;
	}
	h->sink = SINK_FD;
	h->out_fd = fd;
	h->out_fd_off = fd_off;
	if (!expect)
		return 0;
	r->verify = true;
	scpy(r->expect_sha, sizeof(r->expect_sha), expect);
	return td_hash_new(&h->sha, TD_HASH_SHA256);
}

static int start_get(struct s3_target *t, struct td_target_req **req_out, const char *key,
                     uint64_t off, uint64_t len, const struct iovec *iov, unsigned iovcnt,
                     size_t *got, int fd, uint64_t fd_off, const char *expect,
                     const char *expect_etag, td_target_cb cb, void *data)
{
	struct s3_req *r;
	struct s3_http *h;
	int rc;

	if (expect && strlen(expect) != TD_SHA256_HEX - 1)
		return -EINVAL;
	rc = s3__req_open(&r, t, K_GET, key, cb, data);
	if (rc < 0)
		return rc;
	r->got = got;
	if (len == 0) {
		if (got)
			*got = 0;
		s3__req_finish(r);
		return s3__req_started(r, 0, req_out);
	}
	h = s3__http_new(r, "GET", r->full_key, NULL, on_get);
	if (!h)
		return s3__req_started(r, -ENOMEM, req_out);
	h->ok416 = true; /* asking past the end reads nothing */
	/* The first response's ETag pins the object for resumed attempts; the
	 * caller's pins every attempt (a 412 is "object changed"). */
	if (expect_etag) {
		scpy(h->if_match, sizeof(h->if_match), expect_etag);
		h->if_match_first = true;
	}
	h->has_range = off > 0 || len != UINT64_MAX;
	h->range_off = off;
	h->range_len = len;
	rc = get_sink(h, iov, iovcnt, len, fd, fd_off, expect);
	if (rc == 0)
		rc = s3__http_submit(h);
	return s3__req_started(r, rc, req_out);
}

int s3__get_range(struct td_target *tt, struct td_target_req **req_out, const char *key,
                  uint64_t off, const struct iovec *iov, unsigned iovcnt, const char *expect_etag,
                  size_t *got, td_target_cb cb, void *data)
{
	uint64_t len = 0;

	for (unsigned i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return start_get((struct s3_target *)tt, req_out, key, off, len, iov, iovcnt, got, -1, 0,
	                 NULL, expect_etag, cb, data);
}

int s3__get_fd(struct td_target *tt, struct td_target_req **req_out, const char *key, uint64_t off,
               uint64_t len, int fd, uint64_t fd_off, const char *expect_sha256_hex,
               td_target_cb cb, void *data)
{
	return start_get((struct s3_target *)tt, req_out, key, off, len, NULL, 0, NULL, fd, fd_off,
	                 expect_sha256_hex, NULL, cb, data);
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
	s3__http_destroy(h);
	s3__req_end(r, status, e);
}

int s3__head(struct td_target *tt, struct td_target_req **req_out, const char *key,
             struct td_object_info *info, td_target_cb cb, void *data)
{
	struct s3_req *r;
	struct s3_http *h;
	int rc = s3__req_open(&r, (struct s3_target *)tt, K_HEAD, key, cb, data);

	if (rc < 0)
		return rc;
	memset(info, 0, sizeof(*info));
	r->info = info;
	h = s3__http_new(r, "HEAD", r->full_key, NULL, on_head);
	if (!h)
		return s3__req_started(r, -ENOMEM, req_out);
	h->info = info;
	return s3__req_started(r, s3__http_submit(h), req_out);
}

static void on_simple(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;

	s3__http_destroy(h);
	s3__req_end(r, status, e);
}

static int simple_req(struct s3_target *t, enum req_kind kind, const char *method, const char *key,
                      struct td_target_req **req_out, td_target_cb cb, void *data)
{
	struct s3_req *r;
	struct s3_http *h;
	int rc = s3__req_open(&r, t, kind, key, cb, data);

	if (rc < 0)
		return rc;
	h = s3__http_new(r, method, r->full_key, NULL, on_simple);
	if (!h)
		return s3__req_started(r, -ENOMEM, req_out);
	h->ok404 = kind == K_DELETE;
	h->ok409 = kind == K_MKBUCKET;
	return s3__req_started(r, s3__http_submit(h), req_out);
}

int s3__delete(struct td_target *tt, struct td_target_req **req_out, const char *key,
               td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;

	if (t->delete_versions)
		return s3__delete_versions(t, req_out, key, cb, data);
	return simple_req(t, K_DELETE, "DELETE", key, req_out, cb, data);
}

int td_target_s3_create_bucket(struct td_target *tt, struct td_target_req **req_out,
                               td_target_cb cb, void *data)
{
	if (tt->ops != &td_target_s3_ops || !cb)
		return -EINVAL;
	return simple_req((struct s3_target *)tt, K_MKBUCKET, "PUT", NULL, req_out, cb, data);
}
