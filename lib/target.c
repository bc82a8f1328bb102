/*
 * target — the backend-independent half of the target interface: dispatch to
 * the backend, the JSON manifest helpers built on put_buf/get_range, and the
 * synchronous wrapper for tools and tests. Loop thread only.
 */
#include "target_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_target_error_set(struct td_target_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

static int check_key(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > TD_TARGET_KEY_MAX)
		return -EINVAL;
	return 0;
}

int td_target_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                  struct td_target_error *err)
{
	const struct td_target_ops *ops;
	struct td_target *t = NULL;
	int r;

	switch (conf->type) {
	case TD_TARGET_S3:
		ops = &td_target_s3_ops;
		break;
	case TD_TARGET_DIR:
		ops = &td_target_dir_ops;
		break;
	default:
		td_target_error_set(err, "unknown target type");
		return -EINVAL;
	}
	r = ops->new_(&t, loop, conf, err);
	if (r < 0)
		return r;
	t->ops = ops;
	t->loop = loop;
	t->name = strdup(conf->name ? conf->name : "");
	if (!t->name) {
		ops->close(t, NULL, NULL);
		td_target_error_set(err, "out of memory");
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

struct close_ctx {
	char *name;
	void (*close_cb)(void *data);
	void *data;
};

static void on_backend_closed(void *data)
{
	struct close_ctx *c = data;

	free(c->name);
	if (c->close_cb)
		c->close_cb(c->data);
	free(c);
}

void td_target_close(struct td_target *t, void (*close_cb)(void *data), void *data)
{
	struct close_ctx *c = malloc(sizeof(*c));

	if (!c) {
		/* Without memory for the context, free the name now; the backend owns t. */
		free(t->name);
		t->name = NULL;
		t->ops->close(t, close_cb, data);
		return;
	}
	c->name = t->name;
	t->name = NULL;
	c->close_cb = close_cb;
	c->data = data;
	t->ops->close(t, on_backend_closed, c);
}

const char *td_target_name(const struct td_target *t)
{
	return t->name ? t->name : "";
}

int td_target_put_fd(struct td_target *t, struct td_target_req **req_out, const char *key, int fd,
                     uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
                     struct td_put_result *res, td_target_cb cb, void *data)
{
	if (check_key(key) < 0 || fd < 0 || !res || !cb || n_meta > TD_TARGET_META_MAX)
		return -EINVAL;
	return t->ops->put_fd(t, req_out, key, fd, size_bytes, meta, n_meta, res, cb, data);
}

int td_target_put_buf(struct td_target *t, struct td_target_req **req_out, const char *key,
                      const void *buf, size_t n, const char *content_type,
                      const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                      td_target_cb cb, void *data)
{
	if (check_key(key) < 0 || (!buf && n) || n > TD_TARGET_BUF_MAX || !res || !cb ||
	    n_meta > TD_TARGET_META_MAX)
		return -EINVAL;
	return t->ops->put_buf(t, req_out, key, buf, n, content_type, meta, n_meta, res, cb, data);
}

int td_target_get_range(struct td_target *t, struct td_target_req **req_out, const char *key,
                        uint64_t off, uint64_t len, void *buf, size_t *got, td_target_cb cb,
                        void *data)
{
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)len };

	if (!buf || len > TD_TARGET_BUF_MAX)
		return -EINVAL;
	return td_target_get_range_v(t, req_out, key, off, &iov, 1, got, cb, data);
}

int td_target_get_range_v(struct td_target *t, struct td_target_req **req_out, const char *key,
                          uint64_t off, const struct iovec *iov, unsigned iovcnt, size_t *got,
                          td_target_cb cb, void *data)
{
	return td_target_get_range_etag(t, req_out, key, off, iov, iovcnt, NULL, got, cb, data);
}

int td_target_get_range_etag(struct td_target *t, struct td_target_req **req_out, const char *key,
                             uint64_t off, const struct iovec *iov, unsigned iovcnt,
                             const char *expect_etag, size_t *got, td_target_cb cb, void *data)
{
	uint64_t len = 0;

	if (check_key(key) < 0 || !iov || iovcnt == 0 || iovcnt > TD_TARGET_IOV_MAX || !got || !cb)
		return -EINVAL;
	for (unsigned i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_base && iov[i].iov_len)
			return -EINVAL;
		len += iov[i].iov_len;
	}
	if (len > TD_TARGET_BUF_MAX || (expect_etag && strlen(expect_etag) >= 132))
		return -EINVAL;
	if (expect_etag && !expect_etag[0])
		expect_etag = NULL;
	return t->ops->get_range(t, req_out, key, off, iov, iovcnt, expect_etag, got, cb, data);
}

int td_target_get_fd(struct td_target *t, struct td_target_req **req_out, const char *key,
                     uint64_t off, uint64_t len, int fd, uint64_t fd_off,
                     const char *expect_sha256_hex, td_target_cb cb, void *data)
{
	if (check_key(key) < 0 || fd < 0 || !cb)
		return -EINVAL;
	if (expect_sha256_hex && (off != 0 || len != UINT64_MAX))
		return -EINVAL;
	return t->ops->get_fd(t, req_out, key, off, len, fd, fd_off, expect_sha256_hex, cb, data);
}

int td_target_head(struct td_target *t, struct td_target_req **req_out, const char *key,
                   struct td_object_info *info, td_target_cb cb, void *data)
{
	if (check_key(key) < 0 || !info || !cb)
		return -EINVAL;
	return t->ops->head(t, req_out, key, info, cb, data);
}

int td_target_delete(struct td_target *t, struct td_target_req **req_out, const char *key,
                     td_target_cb cb, void *data)
{
	if (check_key(key) < 0 || !cb)
		return -EINVAL;
	return t->ops->delete_(t, req_out, key, cb, data);
}

int td_target_list(struct td_target *t, struct td_target_req **req_out, const char *prefix,
                   td_target_list_each each, td_target_cb cb, void *data)
{
	if (!prefix || strlen(prefix) > TD_TARGET_KEY_MAX || !each || !cb)
		return -EINVAL;
	return t->ops->list(t, req_out, prefix, each, cb, data);
}

int td_target_cleanup_stale(struct td_target *t, struct td_target_req **req_out,
                            unsigned *n_cleaned, td_target_cb cb, void *data)
{
	if (!n_cleaned || !cb)
		return -EINVAL;
	return t->ops->cleanup_stale(t, req_out, n_cleaned, cb, data);
}

int td_target_stale_uploads(struct td_target *t, struct td_target_req **req_out,
                            int64_t older_than_s, bool abort, unsigned *n_found,
                            unsigned *n_aborted, td_target_cb cb, void *data)
{
	if (!n_found || !n_aborted || !cb)
		return -EINVAL;
	if (!t->ops->stale_uploads)
		return -ENOTSUP;
	return t->ops->stale_uploads(t, req_out, older_than_s, abort, n_found, n_aborted, cb, data);
}

void td_target_req_on_progress(struct td_target_req *req, td_target_progress_cb fn, void *data)
{
	if (req) {
		req->progress = fn;
		req->progress_data = data;
	}
}

void td_target_cancel(struct td_target_req *req)
{
	if (req && req->target)
		req->target->ops->cancel(req);
}

/* JSON manifests: serialized in memory and sent with put_buf; fetched with a
 * bounded get_range one byte past the cap, so an oversized document is caught. */

struct json_put {
	char *text;
	struct td_put_result res;
	td_target_cb cb;
	void *data;
};

static void on_json_put(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err)
{
	struct json_put *j = data;

	j->cb(j->data, req, status, err);
	free(j->text);
	free(j);
}

int td_target_put_json(struct td_target *t, struct td_target_req **req_out, const char *key,
                       const json_t *doc, td_target_cb cb, void *data)
{
	struct json_put *j;
	int r;

	if (!doc || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!j->text) {
		free(j);
		return -ENOMEM;
	}
	j->cb = cb;
	j->data = data;
	r = td_target_put_buf(t, req_out, key, j->text, strlen(j->text), "application/json", NULL,
	                      0, &j->res, on_json_put, j);
	if (r < 0) {
		free(j->text);
		free(j);
	}
	return r;
}

struct json_get {
	char *buf;
	size_t got;
	json_t **out;
	td_target_cb cb;
	void *data;
};

static void on_json_get(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err)
{
	struct json_get *j = data;
	struct td_target_error perr;
	json_error_t jerr;
	json_t *doc;

	if (status == 0 && j->got > TD_TARGET_JSON_MAX) {
		td_target_error_set(&perr, "manifest larger than %u bytes", TD_TARGET_JSON_MAX);
		status = -EPROTO;
		err = &perr;
	} else if (status == 0) {
		doc = json_loadb(j->buf, j->got, JSON_REJECT_DUPLICATES, &jerr);
		if (!doc) {
			td_target_error_set(&perr, "malformed manifest: %s (line %d)", jerr.text,
			                    jerr.line);
			status = -EPROTO;
			err = &perr;
		} else {
			*j->out = doc;
		}
	}
	j->cb(j->data, req, status, err);
	free(j->buf);
	free(j);
}

int td_target_get_json(struct td_target *t, struct td_target_req **req_out, const char *key,
                       json_t **out, td_target_cb cb, void *data)
{
	struct json_get *j;
	int r;

	if (!out || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->buf = malloc(TD_TARGET_JSON_MAX + 1);
	if (!j->buf) {
		free(j);
		return -ENOMEM;
	}
	j->out = out;
	j->cb = cb;
	j->data = data;
	r = td_target_get_range(t, req_out, key, 0, TD_TARGET_JSON_MAX + 1, j->buf, &j->got,
	                        on_json_get, j);
	if (r < 0) {
		free(j->buf);
		free(j);
	}
	return r;
}

void td_target_sync_cb(void *data, struct td_target_req *req, int status,
                       const struct td_target_error *err)
{
	struct td_target_sync *s = data;

	(void)req;
	s->done = true;
	s->status = status;
	if (err)
		s->err = *err;
	else
		memset(&s->err, 0, sizeof(s->err));
}

int td_target_sync_wait(uv_loop_t *loop, struct td_target_sync *s, int start_status,
                        struct td_target_error *err)
{
	if (start_status < 0) {
		if (err)
			td_target_error_set(err, "could not start: %s", strerror(-start_status));
		return start_status;
	}
	while (!s->done)
		uv_run(loop, UV_RUN_ONCE);
	if (err)
		*err = s->err;
	return s->status;
}
