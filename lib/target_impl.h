/*
 * target_impl — what a target backend implements. Private to lib/target*.c.
 * Each backend embeds struct td_target first in its own struct and each of its
 * requests embeds struct td_target_req first.
 */
#pragma once

#include "target.h"

struct td_target_ops {
	const char *type;
	int (*new_)(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
	            struct td_target_error *err);
	void (*close)(struct td_target *t, void (*close_cb)(void *data), void *data);
	int (*put_fd)(struct td_target *t, struct td_target_req **req_out, const char *key, int fd,
	              uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
	              struct td_put_result *res, td_target_cb cb, void *data);
	int (*put_buf)(struct td_target *t, struct td_target_req **req_out, const char *key,
	               const void *buf, size_t n, const char *content_type,
	               const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
	               td_target_cb cb, void *data);
	/* iov: 1..TD_TARGET_IOV_MAX buffers, copied by the backend */
	/* expect_etag: NULL, or the ETag the object must still have (-EIO if not) */
	int (*get_range)(struct td_target *t, struct td_target_req **req_out, const char *key,
	                 uint64_t off, const struct iovec *iov, unsigned iovcnt,
	                 const char *expect_etag, size_t *got, td_target_cb cb, void *data);
	int (*get_fd)(struct td_target *t, struct td_target_req **req_out, const char *key,
	              uint64_t off, uint64_t len, int fd, uint64_t fd_off,
	              const char *expect_sha256_hex, td_target_cb cb, void *data);
	int (*head)(struct td_target *t, struct td_target_req **req_out, const char *key,
	            struct td_object_info *info, td_target_cb cb, void *data);
	int (*delete_)(struct td_target *t, struct td_target_req **req_out, const char *key,
	               td_target_cb cb, void *data);
	int (*list)(struct td_target *t, struct td_target_req **req_out, const char *prefix,
	            td_target_list_each each, td_target_cb cb, void *data);
	int (*cleanup_stale)(struct td_target *t, struct td_target_req **req_out,
	                     unsigned *n_cleaned, td_target_cb cb, void *data);
	/* NULL: the backend has no multipart uploads (td_target_stale_uploads) */
	int (*stale_uploads)(struct td_target *t, struct td_target_req **req_out,
	                     int64_t older_than_s, bool abort, unsigned *n_found,
	                     unsigned *n_aborted, td_target_cb cb, void *data);
	void (*cancel)(struct td_target_req *req);
};

struct td_target {
	const struct td_target_ops *ops;
	uv_loop_t *loop;
	char *name;
};

struct td_target_req {
	struct td_target *target;
	td_target_progress_cb progress; /* get_range: leading bytes in buf so far */
	void *progress_data;
};

extern const struct td_target_ops td_target_s3_ops;
extern const struct td_target_ops td_target_dir_ops;

/* Fills an error detail with a printf-style message (and http_status 0). */
void td_target_error_set(struct td_target_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
