/*
 * target — where tiered bytes live. One asynchronous interface, two backends:
 * "s3" (libcurl multi-socket API driven by uv_poll/uv_timer, SigV4) and "dir"
 * (a local or NFS directory, blocking I/O on libuv's thread pool).
 *
 * Threading: loop thread only. Every function here and every callback runs on
 * the uv loop passed to td_target_new().
 *
 * Callback contract (libuv's): when a function that takes a callback returns an
 * error, the callback is never called, and neither is any other callback it was
 * given (td_target_list's `each`); the call has undone whatever it started.
 * Otherwise the callback is called exactly once, later, never from inside the
 * call that started the operation, with status 0 or a negative errno, and on
 * failure an error detail that is valid only during the callback. Result
 * structs passed in are filled before the callback runs and must stay valid
 * until it has. Every callback takes the caller's data pointer first.
 * Each entry point below, and each backend's (s3__req_started in
 * target_s3.c, submit in target_dir.c), keeps to this.
 *
 * Keys are relative to the target's `prefix`; the backend adds it. A key is at
 * most TD_TARGET_KEY_MAX bytes of UTF-8 and may hold any character but NUL.
 *
 * errno mapping (done once, in the backend): -ENOENT missing object or bucket,
 * -EACCES bad credentials or denied, -EIO checksum/size mismatch or a short
 * source file, -ETIMEDOUT stalls and time-outs, -ECONNREFUSED/-EHOSTUNREACH
 * unreachable, -EAGAIN retries exhausted on 5xx/SlowDown, -ECANCELED cancelled,
 * -EPROTO malformed responses, -ENOSPC target full.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "config.h"
#include "hash.h"

#define TD_TARGET_KEY_MAX  1024
#define TD_TARGET_META_MAX 16          /* user metadata pairs on one object */
#define TD_TARGET_JSON_MAX (1u << 20)  /* largest manifest we get */
#define TD_TARGET_BUF_MAX  (64u << 20) /* largest range read into memory */

struct td_target;     /* opaque */
struct td_target_req; /* opaque: one operation in flight */

/* What went wrong, for the log and for tierctl. Never contains secrets. */
struct td_target_error {
	int http_status; /* 0 when no HTTP response was had */
	char code[64];   /* S3 error code ("SignatureDoesNotMatch"), or "" */
	char request_id[128];
	char message[512]; /* one human sentence, e.g. the server's <Message> */
};

/* One user-metadata pair. Keys go without "x-amz-meta-" (e.g. "tierd-sha256"),
 * lowercase. Values are printable ASCII. */
struct td_target_kv {
	const char *key;
	const char *value;
};

struct td_object_info {
	char key[TD_TARGET_KEY_MAX + 1]; /* relative to the prefix */
	uint64_t size_bytes;
	char etag[132]; /* without quotes */
	int64_t mtime_s;
	char version_id[132];
	int64_t server_time_s; /* head only: the server's Date header (clock-skew checks), or 0 */
	size_t n_meta;         /* head only; list leaves it 0 */
	struct {
		char key[64];
		char value[512];
	} meta[TD_TARGET_META_MAX];
};

struct td_put_result {
	uint64_t size_bytes;
	char sha256_hex[TD_SHA256_HEX]; /* of the bytes sent, computed in the same pass */
	char etag[132];
	char version_id[132];
};

/* A request's completion. Every callback in tierd takes the caller's data
 * pointer first, then what it reports; a call that returns an error never
 * calls its callback. */
typedef void (*td_target_cb)(void *data, struct td_target_req *req, int status,
                             const struct td_target_error *err);

/* Called for each listed object, in key order; return nonzero to stop early
 * (the operation then ends with status 0). */
typedef int (*td_target_list_each)(void *data, const struct td_object_info *info);

/*
 * Creates a target from its configuration. Does no I/O beyond local checks
 * (a dir target's path must exist). Returns 0 or -errno with `err` filled.
 */
int td_target_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                  struct td_target_error *err);

/* Cancels every request in flight (each callback gets -ECANCELED), releases the
 * target's handles, and calls close_cb (may be NULL) once everything is closed,
 * later, never from inside this call. The target must not be used after this
 * call. */
void td_target_close(struct td_target *t, void (*close_cb)(void *data), void *data);

const char *td_target_name(const struct td_target *t);

/*
 * Uploads `size_bytes` bytes read by pread from `fd` (offset 0), streaming,
 * hashing SHA-256 in the same pass, with a Content-MD5 on every request body.
 * Above the multipart threshold it uses a multipart upload (aborted on failure).
 * A source that ends early, or grows, fails with -EIO and nothing is left on the
 * target. `meta` is stored as user metadata. `req_out` may be NULL.
 */
int td_target_put_fd(struct td_target *t, struct td_target_req **req_out, const char *key, int fd,
                     uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
                     struct td_put_result *res, td_target_cb cb, void *data);

/* Uploads a small in-memory object (at most TD_TARGET_BUF_MAX bytes). */
int td_target_put_buf(struct td_target *t, struct td_target_req **req_out, const char *key,
                      const void *buf, size_t n, const char *content_type,
                      const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                      td_target_cb cb, void *data);

/* Reads bytes [off, off+len) into buf (len <= TD_TARGET_BUF_MAX); *got receives
 * how many were read (fewer only at the end of the object). */
int td_target_get_range(struct td_target *t, struct td_target_req **req_out, const char *key,
                        uint64_t off, uint64_t len, void *buf, size_t *got, td_target_cb cb,
                        void *data);

/* The same into several buffers, filled in order (at most TD_TARGET_IOV_MAX,
 * TD_TARGET_BUF_MAX bytes in all): one request for bytes that go to
 * separate places. */
#define TD_TARGET_IOV_MAX 16
int td_target_get_range_v(struct td_target *t, struct td_target_req **req_out, const char *key,
                          uint64_t off, const struct iovec *iov, unsigned iovcnt, size_t *got,
                          td_target_cb cb, void *data);

/* The same, tied to the object that was tiered: with expect_etag (the ETag its
 * put returned, without quotes) a read of an object that has since been
 * replaced fails with -EIO ("object changed on the target") and never
 * returns other bytes. s3 sends it as If-Match on every attempt; dir compares
 * it with the object's stored SHA-256. NULL or "" checks nothing. */
int td_target_get_range_etag(struct td_target *t, struct td_target_req **req_out, const char *key,
                             uint64_t off, const struct iovec *iov, unsigned iovcnt,
                             const char *expect_etag, size_t *got, td_target_cb cb, void *data);

/*
 * Progress of a get_range: `got` leading bytes of buf hold the object's bytes
 * (it only grows). Called on the loop as they arrive (a backend may call it
 * only at the end); the request must not be cancelled from inside it.
 */
typedef void (*td_target_progress_cb)(void *data, size_t got);
void td_target_req_on_progress(struct td_target_req *req, td_target_progress_cb fn, void *data);

/*
 * Writes bytes [off, off+len) of the object to `fd` at fd_off onwards (len =
 * UINT64_MAX: to the end). With expect_sha256_hex (only for off = 0 and the
 * whole object) the bytes are hashed as they arrive and a mismatch fails with
 * -EIO. The fd is not fsynced.
 */
int td_target_get_fd(struct td_target *t, struct td_target_req **req_out, const char *key,
                     uint64_t off, uint64_t len, int fd, uint64_t fd_off,
                     const char *expect_sha256_hex, td_target_cb cb, void *data);

/* Size, ETag, mtime and user metadata of an object; -ENOENT when missing. */
int td_target_head(struct td_target *t, struct td_target_req **req_out, const char *key,
                   struct td_object_info *info, td_target_cb cb, void *data);

/* Deletes an object; a missing object is success. */
int td_target_delete(struct td_target *t, struct td_target_req **req_out, const char *key,
                     td_target_cb cb, void *data);

/* Lists objects whose key starts with `prefix` (relative), following pagination. */
int td_target_list(struct td_target *t, struct td_target_req **req_out, const char *prefix,
                   td_target_list_each each, td_target_cb cb, void *data);

/* A small JSON document (a manifest) beside an object. get_json refuses
 * documents over TD_TARGET_JSON_MAX and malformed JSON (-EPROTO). *out is a new
 * reference owned by the caller. */
int td_target_put_json(struct td_target *t, struct td_target_req **req_out, const char *key,
                       const json_t *doc, td_target_cb cb, void *data);
int td_target_get_json(struct td_target *t, struct td_target_req **req_out, const char *key,
                       json_t **out, td_target_cb cb, void *data);

/* Cleans up after a crash: s3 aborts every multipart upload under the prefix,
 * dir removes temp files; *n_cleaned receives how many. */
int td_target_cleanup_stale(struct td_target *t, struct td_target_req **req_out,
                            unsigned *n_cleaned, td_target_cb cb, void *data);

/* Finds the multipart uploads under the prefix started before older_than_s
 * (epoch seconds) and, with `abort`, aborts them; *n_found and *n_aborted
 * receive the counts. Unlike cleanup_stale it leaves younger uploads (a running
 * tierd's) alone. -ENOTSUP for a backend without multipart uploads (dir). */
int td_target_stale_uploads(struct td_target *t, struct td_target_req **req_out,
                            int64_t older_than_s, bool abort, unsigned *n_found,
                            unsigned *n_aborted, td_target_cb cb, void *data);
/* Cancels one operation; its callback runs later with -ECANCELED (unless it had
 * already completed). */
void td_target_cancel(struct td_target_req *req);

/*
 * Synchronous use, for tools and tests: runs `loop` until the operation started
 * by `start` calls back. td_target_sync_start() returns a context whose cb/data
 * are passed to any td_target_* call; td_target_sync_wait() runs the loop and
 * returns the operation's status, copying the error detail into *err.
 */
struct td_target_sync {
	bool done;
	int status;
	struct td_target_error err;
};
void td_target_sync_cb(void *data, struct td_target_req *req, int status,
                       const struct td_target_error *err);
int td_target_sync_wait(uv_loop_t *loop, struct td_target_sync *s, int start_status,
                        struct td_target_error *err);
