/*
 * target_s3_int — what the files of the s3 backend share; private to
 * lib/target_s3*.c. Loop thread only, except what a struct slot's comment says.
 *
 * The backend's objects, and who frees them:
 * - struct s3_target (target_s3.c): owns the curl multi handle, the timers, the
 *   sockets' uv_polls and every request; freed after the last handle closed.
 * - struct s3_req (target_s3.c): one td_target_* call; lives until its callback
 *   has run (s3__req_finish, then a 0 ms timer), or is undone by
 *   s3__req_started when its start failed, and then no callback runs.
 * - struct s3_http (target_s3_http.c): one HTTP exchange of a request, retried
 *   in place (target_s3_curl.c); freed by s3__http_destroy, which never calls
 *   its done callback.
 *
 * Internal names that cross files take the prefix s3__ (libuv's uv__ rule).
 */
#pragma once

#include "target_impl.h"
#include "target_s3.h"

#include <curl/curl.h>
#include <string.h>

#define ERR_BODY_MAX   (64u << 10)
#define LIST_BODY_MAX  (4u << 20)
#define SMALL_BODY_MAX (1u << 20)
#define MAX_PARTS      10000u
#define SINGLE_PUT_MAX (512ull << 20) /* larger objects always go multipart */
#define PART_SIZE_MAX  (5ull << 30)

struct s3_target;
struct s3_req;
struct s3_http;

/* An exchange's end, once its attempts are over: status 0, or -errno with the
 * detail in err. It must destroy the exchange (s3__http_destroy). */
typedef void (*s3_done_fn)(struct s3_http *h, int status, const struct td_target_error *err);

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
	bool if_match_first; /* if_match was the caller's: sent on the first attempt too */
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
	s3_done_fn done;
};

enum req_kind { K_PUT, K_GET, K_HEAD, K_DELETE, K_LIST, K_CLEANUP, K_MKBUCKET };
enum phase { PH_START, PH_INIT, PH_PARTS, PH_COMPLETE, PH_HEAD, PH_ABORT, PH_DONE };

/* One part of an upload and its buffer. Between uv_queue_work and its after
 * callback a thread-pool job owns the slot (work_read: buf, md5, rc; work_sha:
 * reads buf); the loop thread touches it only outside those windows. */
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
	/* stale_uploads: only uploads initiated before older_than_s (0: all);
	 * without stale_abort they are only counted, in *n_found */
	int64_t older_than_s;
	bool stale_abort;
	unsigned *n_found;
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
	char *region, *bucket, *prefix, *access_key, *secret_key, *sigv4, *storage_class, *ca_file;
	bool virtual_host, plaintext;
	bool delete_versions;          /* delete: every version of the key (versioned buckets) */
	struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO "::HOST:PORT", or NULL */
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

/* ---- small helpers (inline: every file uses them) ---- */

/* Copies with truncation and a NUL, like strlcpy. */
static inline void scpy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static inline char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Fills an error detail (all of it: the rest is zeroed). */
void s3__err_set(struct td_target_error *e, int http, const char *code, const char *reqid,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- target_s3.c: the target, and requests from start to callback ---- */

/* Counts a closed uv handle of the target; the last one may finish a close. */
void s3__handle_gone(struct s3_target *t);
/* Starts a request (-ECANCELED once the target is closing, -ENOMEM). */
int s3__req_open(struct s3_req **out, struct s3_target *t, enum req_kind kind, const char *key,
                 td_target_cb cb, void *data);
/* The end of an entry point: with rc < 0 the request is undone and no callback
 * will run; otherwise it is handed out through req_out. Returns rc. */
int s3__req_started(struct s3_req *r, int rc, struct td_target_req **req_out);
/* Ends a request with status 0; its callback runs from the loop, never from
 * the caller. */
void s3__req_finish(struct s3_req *r);
/* Fails a request (the first failure is the one reported; e NULL: strerror)
 * and drives it to its end. */
void s3__req_fail(struct s3_req *r, int status, const struct td_target_error *e);
/* s3__req_fail for status < 0, s3__req_finish otherwise. */
void s3__req_end(struct s3_req *r, int status, const struct td_target_error *e);
/* Drives a failed request on once the work it waits for has ended. */
void s3__req_step(struct s3_req *r);

/* ---- target_s3_curl.c: curl <-> uv, the bandwidth bucket, attempts, retries ---- */

int s3__curl_init(struct s3_target *t);
/* Cleans up the multi handle and closes the sockets and curl's timers. */
void s3__curl_stop(struct s3_target *t);
/* Takes up to `want` bytes of tokens; 0 means "pause now". */
size_t s3__bw_take(struct s3_http *h, size_t want);
/* Sends an exchange's first attempt; later ones are retries, started here too. */
int s3__http_submit(struct s3_http *h);

/* ---- target_s3_http.c: building an exchange (URL, headers, SigV4) ---- */

/* A new exchange of r on full_key (NULL: the bucket) with a canonical query
 * (NULL, or sorted and encoded). NULL when out of memory. */
struct s3_http *s3__http_new(struct s3_req *r, const char *method, const char *full_key,
                             const char *query, s3_done_fn done);
/* Stops and frees an exchange; its done callback is not called. */
void s3__http_destroy(struct s3_http *h);
int s3__http_add_header(struct s3_http *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int s3__http_add_headers(struct s3_http *h, const struct curl_slist *from);
/* Sets the easy handle up for the next attempt (resuming a download where the
 * last one broke). */
int s3__http_setup(struct s3_http *h);
/* "params&uploadId=ID" (params may be NULL), the ID percent-encoded. */
int s3__upload_query(char *q, size_t cap, const char *params, const char *upload_id);
/* Trims blanks and one pair of quotes, copying with truncation. */
void s3__copy_trim(char *dst, size_t cap, const char *v, size_t n);

/* ---- target_s3_error.c: what a finished attempt means ---- */

/* Maps a finished attempt to 0 or -errno with detail; *retry says whether it
 * is worth another attempt. */
int s3__classify(struct s3_http *h, CURLcode cc, struct td_target_error *e, bool *retry);
/* Parses an S3 <Error> body into e. Returns true if one was found. */
bool s3__parse_error_body(struct s3_http *h, struct td_target_error *e);
/* The row s3__classify applies to an HTTP error answer, by status and S3 error
 * code (NULL: none), for the tests. Returns -errno; *retry as above. */
int s3__classify_http(long status, const char *code, bool *retry);

/* ---- the entry points (target_s3_put.c, _get.c, _list.c) ---- */

int s3__put_fd(struct td_target *tt, struct td_target_req **req_out, const char *key, int fd,
               uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
               struct td_put_result *res, td_target_cb cb, void *data);
int s3__put_buf(struct td_target *tt, struct td_target_req **req_out, const char *key,
                const void *buf, size_t n, const char *content_type,
                const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                td_target_cb cb, void *data);
/* Aborts the multipart upload upload_id of full_key (a missing one is done). */
int s3__upload_abort(struct s3_req *r, const char *full_key, const char *upload_id,
                     s3_done_fn done);
int s3__get_range(struct td_target *tt, struct td_target_req **req_out, const char *key,
                  uint64_t off, const struct iovec *iov, unsigned iovcnt, const char *expect_etag,
                  size_t *got, td_target_cb cb, void *data);
int s3__get_fd(struct td_target *tt, struct td_target_req **req_out, const char *key, uint64_t off,
               uint64_t len, int fd, uint64_t fd_off, const char *expect_sha256_hex,
               td_target_cb cb, void *data);
int s3__head(struct td_target *tt, struct td_target_req **req_out, const char *key,
             struct td_object_info *info, td_target_cb cb, void *data);
int s3__delete(struct td_target *tt, struct td_target_req **req_out, const char *key,
               td_target_cb cb, void *data);
int s3__list(struct td_target *tt, struct td_target_req **req_out, const char *prefix,
             td_target_list_each each, td_target_cb cb, void *data);
/* Frees the uploads cleanup_stale holds (one page's). */
void s3__uploads_clear(struct s3_req *r);
/* Deletes every version and delete marker of `key` (delete_versions = yes). */
int s3__delete_versions(struct s3_target *t, struct td_target_req **req_out, const char *key,
                        td_target_cb cb, void *data);
int s3__stale_uploads(struct td_target *tt, struct td_target_req **req_out, int64_t older_than_s,
                      bool abort, unsigned *n_found, unsigned *n_aborted, td_target_cb cb,
                      void *data);
int s3__cleanup_stale(struct td_target *tt, struct td_target_req **req_out, unsigned *n_cleaned,
                      td_target_cb cb, void *data);
