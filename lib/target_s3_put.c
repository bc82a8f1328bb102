/*
 * target_s3_put — uploads of the s3 backend: put_buf (one PUT of a copy of the
 * caller's bytes) and put_fd (one PUT up to the multipart threshold, else a
 * multipart upload: initiate, parts, complete, then a HEAD for the real ETag
 * and size; aborted on failure), and the abort that cleanup_stale reuses.
 *
 * Threading: the loop thread, and libuv's thread pool for the reads of upload
 * sources: each part is read once into its slot's buffer by pread and its MD5
 * computed there (several parts at once); the object's SHA-256 is fed from the
 * same buffers by one job at a time, strictly in part order (sha_pump), so the
 * file is read once and hashed in file order even when parts are read and sent
 * out of order. A thread-pool job touches only its slot and, for the SHA-256,
 * r->sha, which no other job holds meanwhile.
 *
 * Ownership: the request owns its slots (at most max_connections buffers),
 * the part ETags, the complete body and the upload id. A slot is free again
 * once its part is both sent and hashed. A failed upload waits for its jobs
 * (pending_work) before s3__req_step aborts it.
 */
#include "target_s3_int.h"
#include "s3_xml.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_part_put(struct s3_http *h, int status, const struct td_target_error *e);

/* The base64 MD5 of buf, for a Content-MD5 header; -ENOMEM. */
static int md5_b64(char out[32], const void *buf, size_t n)
{
	unsigned char md5[TD_MD5_LEN];
	unsigned int len = 0;

	if (!EVP_Digest(buf, n, md5, &len, EVP_md5(), NULL))
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out, md5, (int)sizeof(md5));
	return 0;
}

/* Thread pool: reads one part (or the whole small object), hashes it. */
static void work_read(uv_work_t *w)
{
	struct slot *s = w->data;
	struct s3_req *r = s->req;
	int rc;

	rc = td_pread_full(r->fd, s->buf, s->len, s->off);
	if (rc < 0) {
		s->rc = rc; /* -EIO: the file ended early */
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
	if (md5_b64(s->md5, s->buf, s->len) < 0) {
		s->rc = -ENOMEM;
		return;
	}
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
	s3__req_finish(r);
}

static void on_single_put(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	char etag[132], ver[132];

	scpy(etag, sizeof(etag), h->etag);
	scpy(ver, sizeof(ver), h->version_id);
	s3__http_destroy(h);
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	if (r->slots)
		r->slots[0].busy = false;
	finish_put(r, etag, ver);
}

static int start_part_http(struct s3_req *r, struct slot *s)
{
	char q[1200], part[32];
	struct s3_http *h;
	int n;

	if (r->upload_id) {
		snprintf(part, sizeof(part), "partNumber=%u", s->part + 1);
		if (s3__upload_query(q, sizeof(q), part, r->upload_id) < 0)
			return -EPROTO;
	}
	h = s3__http_new(r, "PUT", r->full_key, r->upload_id ? q : NULL,
	                 r->upload_id ? on_part_put : on_single_put);
	if (!h)
		return -ENOMEM;
	h->body = s->buf;
	h->body_len = s->len;
	h->part = s->part;
	if (s3__http_add_header(h, "Content-MD5: %s", s->md5) < 0 ||
	    (!r->upload_id && s3__http_add_headers(h, r->put_hdrs) < 0)) {
		s3__http_destroy(h);
		return -ENOMEM;
	}
	n = s3__http_submit(h);
	if (n < 0)
		s3__http_destroy(h);
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
		s3__req_step(r);
		return;
	}
	if (status < 0 || s->rc < 0) {
		rc = status < 0 ? status : s->rc;
		s->busy = false;
		if (rc == -EIO || rc == -EFBIG) {
			s3__err_set(&e, 0, NULL, NULL,
			            "the source file is %s than the %" PRIu64
			            " bytes announced; upload abandoned",
			            rc == -EIO ? "shorter" : "longer", r->size);
			rc = -EIO;
		} else {
			s3__err_set(&e, 0, NULL, NULL, "cannot read the source file: %s",
			            strerror(-rc));
		}
		s3__req_fail(r, rc, &e);
		return;
	}
	s->read_done = true;
	rc = start_part_http(r, s);
	if (rc < 0) {
		s->busy = false;
		s3__err_set(&e, 0, NULL, NULL, "cannot start an upload request: %s", strerror(-rc));
		s3__req_fail(r, rc, &e);
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
		s3__req_step(r);
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
				s3__req_fail(r, -ENOMEM, NULL);
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
	char q[1200];
	char md5b[32];
	size_t cap = 128 + (size_t)r->n_parts * 200, o = 0;
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
	if (md5_b64(md5b, r->complete_body, o) < 0)
		goto fail;
	if (s3__upload_query(q, sizeof(q), NULL, r->upload_id) < 0) {
		rc = -EPROTO;
		goto fail;
	}
	h = s3__http_new(r, "POST", r->full_key, q, on_complete);
	if (!h)
		goto fail;
	h->body = (const unsigned char *)r->complete_body;
	h->body_len = r->complete_len;
	if (s3__http_add_header(h, "Content-MD5: %s", md5b) < 0 ||
	    s3__http_add_header(h, "Content-Type: application/xml") < 0) {
		s3__http_destroy(h);
		goto fail;
	}
	rc = s3__http_submit(h);
	if (rc < 0) {
		s3__http_destroy(h);
		goto fail;
	}
	return;
fail:
	s3__err_set(&e, 0, NULL, NULL, "cannot complete the multipart upload: %s", strerror(-rc));
	s3__req_fail(r, rc, &e);
}

static void on_part_put(struct s3_http *h, int status, const struct td_target_error *e)
{
	struct s3_req *r = h->req;
	unsigned part = h->part;
	struct td_target_error pe;

	if (status == 0 && !h->etag[0]) {
		s3__err_set(&pe, h->status > 0 ? (int)h->status : 0, NULL, h->amz_request_id,
		            "the server gave no ETag for part %u", part + 1);
		status = -EPROTO;
		e = &pe;
	}
	if (status == 0)
		scpy(r->part_etags[part], sizeof(r->part_etags[part]), h->etag);
	s3__http_destroy(h);
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
		s3__req_fail(r, status, e);
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
			s3__err_set(&e, 0, NULL, NULL, "cannot read the source file: %s",
			            strerror(-rc));
			s3__req_fail(r, rc, &e);
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

		s3__err_set(&pe, 0, NULL, NULL,
		            "the completed object has %" PRIu64 " bytes, not %" PRIu64,
		            h->content_length, r->size);
		s3__http_destroy(h);
		/* The upload is complete: nothing to abort; the caller deletes. */
		free(r->upload_id);
		r->upload_id = NULL;
		s3__req_fail(r, -EIO, &pe);
		return;
	}
	s3__http_destroy(h);
	free(r->upload_id);
	r->upload_id = NULL;
	if (status < 0) {
		s3__req_fail(r, status, e);
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
			s3__err_set(&pe, (int)h->status, NULL, h->amz_request_id,
			            "malformed CompleteMultipartUpload response");
			status = -EPROTO;
			e = &pe;
		} else if (strcmp(td_s3_xml_root(doc)->name, "Error") == 0) {
			memset(&pe, 0, sizeof(pe));
			s3__parse_error_body(h, &pe);
			pe.http_status = (int)h->status;
			status = strcmp(pe.code, "InternalError") == 0 ||
			                 strcmp(pe.code, "SlowDown") == 0
			             ? -EAGAIN
			             : -EIO;
			e = &pe;
		}
		td_s3_xml_free(doc);
	}
	s3__http_destroy(h);
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	/* radosgw leaves <ETag> empty here: HEAD for the real "...-N" one. */
	r->phase = PH_HEAD;
	hh = s3__http_new(r, "HEAD", r->full_key, NULL, on_head_after_complete);
	rc = hh ? 0 : -ENOMEM;
	if (hh) {
		rc = s3__http_submit(hh);
		if (rc < 0)
			s3__http_destroy(hh);
	}
	if (rc < 0) {
		s3__err_set(&pe, 0, NULL, NULL, "cannot check the completed object: %s",
		            strerror(-rc));
		free(r->upload_id);
		r->upload_id = NULL;
		s3__req_fail(r, rc, &pe);
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
			s3__err_set(&pe, (int)h->status, NULL, h->amz_request_id,
			            "malformed InitiateMultipartUpload response");
			status = -EPROTO;
			e = &pe;
		}
		td_s3_xml_free(doc);
	}
	s3__http_destroy(h);
	r->phase = PH_PARTS;
	if (r->failed) { /* cancelled meanwhile: s3__req_step aborts the new upload */
		s3__req_step(r);
		return;
	}
	if (status < 0) {
		s3__req_fail(r, status, e);
		return;
	}
	pump_parts(r);
}

int s3__upload_abort(struct s3_req *r, const char *full_key, const char *upload_id, s3_done_fn done)
{
	char q[1200];
	struct s3_http *h;
	int rc;

	if (s3__upload_query(q, sizeof(q), NULL, upload_id) < 0)
		return -EPROTO;
	h = s3__http_new(r, "DELETE", full_key, q, done);
	if (!h)
		return -ENOMEM;
	h->ok404 = true;
	rc = s3__http_submit(h);
	if (rc < 0)
		s3__http_destroy(h);
	return rc;
}

static int slist_add(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);

	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* The object's own headers, sent with a single PUT or the initiate:
 * x-amz-meta-* (checked: S3 would mangle other bytes), storage class,
 * content type. -EINVAL for metadata S3 cannot carry. */
static int build_put_headers(struct s3_req *r, const struct td_target_kv *meta, size_t n_meta,
                             const char *content_type)
{
	struct s3_target *t = r->t;
	char line[1200];

	for (size_t i = 0; i < n_meta; i++) {
		const char *k = meta[i].key, *v = meta[i].value;

		if (!k || !*k || !v || strlen(k) > 60 || strlen(v) > 500 || !printable(v))
			return -EINVAL;
		for (const char *p = k; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			      *p == '_'))
				return -EINVAL;
		snprintf(line, sizeof(line), "x-amz-meta-%s: %s", k, v);
		if (slist_add(&r->put_hdrs, line) < 0)
			return -ENOMEM;
	}
	if (t->storage_class && *t->storage_class) {
		snprintf(line, sizeof(line), "x-amz-storage-class: %s", t->storage_class);
		if (slist_add(&r->put_hdrs, line) < 0)
			return -ENOMEM;
	}
	snprintf(line, sizeof(line), "Content-Type: %s",
	         content_type && *content_type ? content_type : "application/octet-stream");
	if (!printable(line))
		return -EINVAL;
	return slist_add(&r->put_hdrs, line);
}

/* What both puts start with: the request, its headers and its SHA-256. */
static int put_open(struct s3_req **out, struct td_target *tt, const char *key, uint64_t size,
                    const struct td_target_kv *meta, size_t n_meta, const char *content_type,
                    struct td_put_result *res, td_target_cb cb, void *data)
{
	struct s3_req *r;
	int rc = s3__req_open(&r, (struct s3_target *)tt, K_PUT, key, cb, data);

	if (rc < 0)
		return rc;
	r->res = res;
	r->size = size;
	rc = build_put_headers(r, meta, n_meta, content_type);
	if (rc == 0)
		rc = td_hash_new(&r->sha, TD_HASH_SHA256);
	if (rc == 0) {
		*out = r;
		return 0;
	}
	return s3__req_started(r, rc, NULL);
}

/* put_fd of an object small enough for one PUT: one slot, read on the pool. */
static int put_fd_single(struct s3_req *r)
{
	int rc;

	r->part_size = TD_MAX(r->size, 1);
	r->n_parts = 1;
	r->n_slots = 1;
	r->slots = calloc(1, sizeof(*r->slots));
	if (!r->slots)
		return -ENOMEM;
	rc = start_read(r, &r->slots[0], 0);
	if (rc == 0)
		r->next_read = 1;
	return rc;
}

/* put_fd of a larger object: parts within S3's limits (at most MAX_PARTS,
 * each at most PART_SIZE_MAX), then the initiate. */
static int put_fd_multipart(struct s3_req *r)
{
	struct s3_target *t = r->t;
	struct s3_http *h;
	int rc;

	r->part_size = t->part_size;
	if ((r->size + r->part_size - 1) / r->part_size > MAX_PARTS)
		r->part_size = (r->size + MAX_PARTS - 1) / MAX_PARTS;
	if (r->part_size > PART_SIZE_MAX)
		return -EFBIG;
	r->n_parts = (unsigned)((r->size + r->part_size - 1) / r->part_size);
	r->n_slots = TD_MIN(t->max_conn, r->n_parts);
	r->slots = calloc(r->n_slots, sizeof(*r->slots));
	r->part_etags = calloc(r->n_parts, sizeof(*r->part_etags));
	if (!r->slots || !r->part_etags)
		return -ENOMEM;
	r->phase = PH_INIT;
	h = s3__http_new(r, "POST", r->full_key, "uploads=", on_initiate);
	if (!h)
		return -ENOMEM;
	rc = s3__http_add_headers(h, r->put_hdrs);
	return rc == 0 ? s3__http_submit(h) : rc;
}

int s3__put_fd(struct td_target *tt, struct td_target_req **req_out, const char *key, int fd,
               uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
               struct td_put_result *res, td_target_cb cb, void *data)
{
	struct s3_target *t = (struct s3_target *)tt;
	struct s3_req *r;
	int rc = put_open(&r, tt, key, size_bytes, meta, n_meta, NULL, res, cb, data);

	if (rc < 0)
		return rc;
	r->fd = fd;
	r->from_fd = true;
	if (size_bytes <= TD_MIN(t->threshold, SINGLE_PUT_MAX))
		rc = put_fd_single(r);
	else
		rc = put_fd_multipart(r);
	return s3__req_started(r, rc, req_out);
}

int s3__put_buf(struct td_target *tt, struct td_target_req **req_out, const char *key,
                const void *buf, size_t n, const char *content_type,
                const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                td_target_cb cb, void *data)
{
	struct s3_req *r;
	struct slot *s;
	int rc = put_open(&r, tt, key, n, meta, n_meta, content_type, res, cb, data);

	if (rc < 0)
		return rc;
	r->n_parts = 1;
	r->n_slots = 1;
	r->slots = calloc(1, sizeof(*r->slots));
	if (!r->slots)
		return s3__req_started(r, -ENOMEM, req_out);
	s = &r->slots[0];
	/* The caller's buffer is only guaranteed during this call: copy it. */
	s->buf = malloc(TD_MAX(n, (size_t)1));
	if (!s->buf)
		return s3__req_started(r, -ENOMEM, req_out);
	if (n)
		memcpy(s->buf, buf, n);
	s->cap = s->len = n;
	s->req = r;
	s->busy = true;
	td_hash_update(r->sha, s->buf, n);
	rc = md5_b64(s->md5, s->buf, n);
	if (rc == 0)
		rc = start_part_http(r, s);
	return s3__req_started(r, rc, req_out);
}
