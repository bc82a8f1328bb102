/*
 * tcheck — see tcheck.h. A check owns its private loop, the two targets it
 * opens on it (closed before td_tcheck_run returns) and the scratch keys'
 * names; the result is the caller's. Runs on the calling thread only.
 */
#include "tcheck.h"
#include "hash.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SMALL_BYTES     (64u * 1024u)
#define MULTIPART_PART  (5ull * 1024 * 1024)
#define MULTIPART_BYTES (11ull * 1024 * 1024 + 12345) /* three parts, the last short */
#define SKEW_WARN_S     60
#define SKEW_FAIL_S     (15 * 60)
#define LATENCY_SAMPLES 3

struct check {
	const struct td_tcheck_opts *o;
	struct td_tcheck_result *res;
	uv_loop_t loop;
	struct td_target *t;  /* the target as configured */
	struct td_target *mp; /* the same with 5 MiB parts, for the multipart step */
	bool is_s3;
	char key[96];    /* small scratch object */
	char mp_key[96]; /* multipart scratch object */
	char list_prefix[64];
};

static void warn(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct check *c, const char *fmt, ...)
{
	struct td_tcheck_result *res = c->res;
	va_list ap;

	if (res->n_warnings >= TD_ARRAY_SIZE(res->warnings))
		return;
	va_start(ap, fmt);
	vsnprintf(res->warnings[res->n_warnings], sizeof(res->warnings[0]), fmt, ap);
	va_end(ap);
	if (c->o->on_warning)
		c->o->on_warning(c->o->data, res->warnings[res->n_warnings]);
	res->n_warnings++;
}

static int errset(struct td_target_error *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills a local error detail; returns status. */
static int errset(struct td_target_error *e, int status, const char *fmt, ...)
{
	va_list ap;

	memset(e, 0, sizeof(*e));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return status;
}

/* The error as an admin wants it: the server's words, then its codes. */
static void format_error(char *out, size_t n, int status, const struct td_target_error *e)
{
	size_t len;

	snprintf(out, n, "%s", e && e->message[0] ? e->message : strerror(-status));
	len = strlen(out);
	if (e && e->code[0] && !strstr(out, e->code) && len < n)
		len += (size_t)snprintf(out + len, n - len, " [%s]", e->code);
	if (e && e->http_status && len < n)
		len += (size_t)snprintf(out + len, n - len, " (HTTP %d)", e->http_status);
	if (e && e->request_id[0] && len < n)
		snprintf(out + len, n - len, " request id %s", e->request_id);
}

static struct td_tcheck_step *step_done(struct check *c, const char *name, double ms, int status,
                                        const struct td_target_error *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static double ms_since(int64_t start_ns)
{
	return (double)(td_monotonic_ns() - start_ns) / 1e6;
}

/* Records a step; a NULL fmt with status < 0 takes the text from err. */
static struct td_tcheck_step *step_done(struct check *c, const char *name, double ms, int status,
                                        const struct td_target_error *err, const char *fmt, ...)
{
	struct td_tcheck_step *s;
	va_list ap;

	if (c->res->n_steps >= TD_TCHECK_MAX_STEPS)
		return NULL;
	s = &c->res->steps[c->res->n_steps++];
	s->name = name;
	s->ok = status >= 0;
	s->ms = ms;
	s->error[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(s->error, sizeof(s->error), fmt, ap);
		va_end(ap);
	} else if (status < 0) {
		format_error(s->error, sizeof(s->error), status, err);
	}
	if (c->o->on_step)
		c->o->on_step(c->o->data, s);
	return s;
}

/* ---- synchronous wrappers over the async API ---- */

static int put_buf(struct check *c, struct td_target *t, const char *key, const void *buf, size_t n,
                   const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                   struct td_target_error *err)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&c->loop, &s,
	                           td_target_put_buf(t, NULL, key, buf, n,
	                                             "application/octet-stream", meta, n_meta, res,
	                                             td_target_sync_cb, &s),
	                           err);
}

static int head(struct check *c, struct td_target *t, const char *key, struct td_object_info *info,
                struct td_target_error *err)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&c->loop, &s,
	                           td_target_head(t, NULL, key, info, td_target_sync_cb, &s), err);
}

static int del(struct check *c, struct td_target *t, const char *key, struct td_target_error *err)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&c->loop, &s,
	                           td_target_delete(t, NULL, key, td_target_sync_cb, &s), err);
}

struct list_ctx {
	struct td_target_sync s; /* first: td_target_sync_cb gets this struct */
	const char *want;
	uint64_t want_size;
	bool found;
	bool size_ok;
	unsigned n;
};

static int list_each(void *data, const struct td_object_info *info)
{
	struct list_ctx *l = data;

	l->n++;
	if (strcmp(info->key, l->want) == 0) {
		l->found = true;
		l->size_ok = info->size_bytes == l->want_size;
	}
	return 0;
}

/* ---- the steps ---- */

static const char *meta_get(const struct td_object_info *info, const char *key)
{
	for (size_t i = 0; i < info->n_meta; i++)
		if (strcmp(info->meta[i].key, key) == 0)
			return info->meta[i].value;
	return NULL;
}

/*
 * Clock skew. S3: the server's Date (head) against our clock; S3 refuses
 * signatures more than 15 minutes off, so that fails. dir: the mtime the file
 * server gave the object we just wrote, against the interval (our clock) in
 * which we wrote it; that only warns (an NFS server with a wrong clock skews
 * the ages tierd sees on the target, not the data).
 */
static void check_clock(struct check *c, bool is_s3, const struct td_object_info *info,
                        int64_t put_start_s, int64_t put_end_s)
{
	int64_t now = td_now_ns() / 1000000000, skew, abs_skew;

	if (is_s3 && !info->server_time_s) {
		step_done(c, "clock", 0, 0, NULL, "the server sent no time; skew not checked");
		return;
	}
	if (is_s3)
		skew = info->server_time_s - now;
	else if (info->mtime_s < put_start_s - 1)
		skew = info->mtime_s - put_start_s;
	else if (info->mtime_s > put_end_s + 1)
		skew = info->mtime_s - put_end_s;
	else
		skew = 0;
	abs_skew = skew < 0 ? -skew : skew;
	c->res->skew_s = skew;
	c->res->have_skew = true;
	if (is_s3 && abs_skew > SKEW_FAIL_S) {
		step_done(c, "clock", 0, -ERANGE, NULL,
		          "server clock is %+lld s off ours: S3 refuses signatures beyond 15 "
		          "minutes; fix NTP on this host or the server",
		          (long long)skew);
		return;
	}
	if (abs_skew > SKEW_WARN_S)
		warn(c, "%s clock is %+lld s off ours%s", is_s3 ? "server" : "file server",
		     (long long)skew, is_s3 ? " (S3 refuses more than 15 minutes)" : "");
	step_done(c, "clock", 0, 0, NULL, "skew %+lld s%s", (long long)skew,
	          is_s3 ? "" : " (from the written file's mtime)");
}

static int step_put(struct check *c, const unsigned char *data, const char *sha, int64_t *start_s,
                    int64_t *end_s)
{
	static const struct td_target_kv meta[] = { { "tierd-check", "1" } };
	struct td_target_error err;
	struct td_put_result res;
	int64_t t0 = td_monotonic_ns();
	int r;

	*start_s = td_now_ns() / 1000000000;
	r = put_buf(c, c->t, c->key, data, SMALL_BYTES, meta, 1, &res, &err);
	*end_s = td_now_ns() / 1000000000;
	if (r == 0 && strcmp(res.sha256_hex, sha) != 0)
		r = errset(&err, -EIO, "stored checksum %s differs from ours %s", res.sha256_hex,
		           sha);
	step_done(c, "put", ms_since(t0), r, &err, NULL);
	return r;
}

/* head, a few times: the fastest is the round-trip latency. */
static int step_head(struct check *c, struct td_object_info *info)
{
	struct td_target_error err;
	int64_t t0 = 0;
	int r = 0;

	c->res->latency_ms = -1;
	for (int i = 0; i < LATENCY_SAMPLES; i++) {
		double ms;

		t0 = td_monotonic_ns();
		r = head(c, c->t, c->key, info, &err);
		ms = (double)(td_monotonic_ns() - t0) / 1e6;
		if (r < 0)
			break;
		if (c->res->latency_ms < 0 || ms < c->res->latency_ms)
			c->res->latency_ms = ms;
	}
	if (r == 0 && info->size_bytes != SMALL_BYTES)
		r = errset(&err, -EIO, "head says %llu bytes, we put %u",
		           (unsigned long long)info->size_bytes, SMALL_BYTES);
	else if (r == 0 && !meta_get(info, "tierd-check"))
		r = errset(&err, -EIO, "user metadata did not come back");
	step_done(c, "head", ms_since(t0), r, &err, NULL);
	return r;
}

static int step_range_get(struct check *c, const unsigned char *data)
{
	unsigned char *back = malloc(SMALL_BYTES);
	struct td_target_error err;
	struct td_target_sync s = { 0 };
	size_t got = 0;
	int64_t t0;
	int r;

	if (!back) {
		step_done(c, "range get", 0, -ENOMEM, NULL, "out of memory");
		return -ENOMEM;
	}
	t0 = td_monotonic_ns();
	r = td_target_sync_wait(
	    &c->loop, &s,
	    td_target_get_range(c->t, NULL, c->key, 1000, 4096, back, &got, td_target_sync_cb, &s),
	    &err);
	if (r == 0 && (got != 4096 || memcmp(back, data + 1000, 4096) != 0))
		r = errset(&err, -EIO, "bytes 1000..5095 came back wrong (%zu bytes)", got);
	step_done(c, "range get", ms_since(t0), r, &err, NULL);
	free(back);
	return r;
}

static int step_get_verified(struct check *c, const char *sha)
{
	int fd = memfd_create("tierctl-check", MFD_CLOEXEC);
	struct td_target_error err;
	struct td_target_sync s = { 0 };
	int64_t t0 = td_monotonic_ns();
	int r;

	r = fd < 0 ? -errno
	           : td_target_sync_wait(&c->loop, &s,
	                                 td_target_get_fd(c->t, NULL, c->key, 0, UINT64_MAX, fd, 0,
	                                                  sha, td_target_sync_cb, &s),
	                                 &err);
	step_done(c, "get (sha256 verified)", ms_since(t0), r, fd < 0 ? NULL : &err, NULL);
	if (fd >= 0)
		close(fd);
	return r;
}

static int step_list(struct check *c)
{
	struct list_ctx l = { .want = c->key, .want_size = SMALL_BYTES };
	struct td_target_error err;
	int64_t t0 = td_monotonic_ns();
	int r;

	r = td_target_sync_wait(
	    &c->loop, &l.s,
	    td_target_list(c->t, NULL, c->list_prefix, list_each, td_target_sync_cb, &l), &err);
	if (r == 0 && !l.found)
		r = errset(&err, -EIO,
		           "the scratch key is missing from the listing (%u keys listed)", l.n);
	else if (r == 0 && !l.size_ok)
		r = errset(&err, -EIO, "the listing shows the wrong size");
	step_done(c, "list", ms_since(t0), r, &err, NULL);
	return r;
}

/* put, head (+clock, latency), range get, verified get, list on the small
 * object; each step only after the one before it passed. */
static bool small_object_steps(struct check *c, bool *put_tried)
{
	unsigned char *data = malloc(SMALL_BYTES);
	struct td_object_info *info = malloc(sizeof(*info));
	unsigned char digest[TD_SHA256_LEN];
	char sha[TD_SHA256_HEX];
	int64_t put_start_s, put_end_s;
	bool ok = false;

	if (!data || !info) {
		step_done(c, "put", 0, -ENOMEM, NULL, "out of memory");
		goto out;
	}
	td_random_bytes(data, SMALL_BYTES);
	td_sha256(data, SMALL_BYTES, digest);
	td_hex(sha, digest, TD_SHA256_LEN);
	*put_tried = true;
	if (step_put(c, data, sha, &put_start_s, &put_end_s) < 0 || step_head(c, info) < 0)
		goto out;
	check_clock(c, c->is_s3, info, put_start_s, put_end_s);
	step_done(c, "latency", c->res->latency_ms, 0, NULL, "%.2f ms round trip (best of %d)",
	          c->res->latency_ms, LATENCY_SAMPLES);
	ok = step_range_get(c, data) == 0 && step_get_verified(c, sha) == 0 && step_list(c) == 0;
out:
	free(info);
	free(data);
	return ok;
}

static bool multipart_step(struct check *c, bool *tried)
{
	unsigned char *chunk = malloc(1 << 20);
	unsigned char digest[TD_SHA256_LEN];
	char sha[TD_SHA256_HEX];
	struct td_target_error err;
	struct td_put_result res;
	struct td_object_info *info = malloc(sizeof(*info));
	struct td_target_sync s = { 0 };
	struct td_hash *h = NULL;
	uint64_t done = 0;
	int64_t t0 = td_monotonic_ns();
	int fd = memfd_create("tierctl-check-mp", MFD_CLOEXEC), r;

	if (!chunk || !info || fd < 0 || td_hash_new(&h, TD_HASH_SHA256) < 0) {
		r = errset(&err, -ENOMEM, "cannot prepare the test object");
		goto out;
	}
	while (done < MULTIPART_BYTES) {
		size_t n = (size_t)TD_MIN((uint64_t)(1 << 20), MULTIPART_BYTES - done);
		td_random_bytes(chunk, n);
		td_hash_update(h, chunk, n);
		r = td_write_full(fd, chunk, n);
		if (r < 0) {
			errset(&err, r, "cannot write the test object: %s", strerror(-r));
			goto out;
		}
		done += n;
	}
	td_hash_final(h, digest);
	td_hex(sha, digest, TD_SHA256_LEN);

	*tried = true;
	t0 = td_monotonic_ns();
	r = td_target_sync_wait(&c->loop, &s,
	                        td_target_put_fd(c->mp, NULL, c->mp_key, fd, MULTIPART_BYTES, NULL,
	                                         0, &res, td_target_sync_cb, &s),
	                        &err);
	if (r == 0 && strcmp(res.sha256_hex, sha) != 0)
		r = errset(&err, -EIO, "upload checksum differs");
	if (r == 0)
		r = head(c, c->mp, c->mp_key, info, &err);
	if (r == 0 && info->size_bytes != MULTIPART_BYTES)
		r = errset(&err, -EIO, "head says %llu bytes, we put %llu",
		           (unsigned long long)info->size_bytes,
		           (unsigned long long)MULTIPART_BYTES);
	if (r == 0) {
		int out_fd = memfd_create("tierctl-check-mp-back", MFD_CLOEXEC);

		memset(&s, 0, sizeof(s));
		r = out_fd < 0 ? -errno
		               : td_target_sync_wait(&c->loop, &s,
		                                     td_target_get_fd(c->mp, NULL, c->mp_key, 0,
		                                                      UINT64_MAX, out_fd, 0, sha,
		                                                      td_target_sync_cb, &s),
		                                     &err);
		if (out_fd >= 0)
			close(out_fd);
	}
out:
	step_done(c, "multipart (11 MiB)", ms_since(t0), r, &err, NULL);
	if (fd >= 0)
		close(fd);
	td_hash_free(h);
	free(info);
	free(chunk);
	return r == 0;
}

static void on_closed(void *data)
{
	*(bool *)data = true;
}

static void close_target(struct check *c, struct td_target **t)
{
	bool closed = false;

	if (!*t)
		return;
	td_target_close(*t, on_closed, &closed);
	while (!closed)
		uv_run(&c->loop, UV_RUN_ONCE);
	*t = NULL;
}

/* The parser reads credentials_file, and td_config_apply_env_credentials()
 * fills in the environment's keys: either way they end up in the conf. */
static bool has_credentials(const struct td_target_conf *tc)
{
	return tc->access_key && tc->access_key[0] && tc->secret_key && tc->secret_key[0];
}

static void scratch_keys(struct check *c)
{
	unsigned char rnd[8];
	char hex[17];

	td_random_bytes(rnd, sizeof(rnd));
	td_hex(hex, rnd, sizeof(rnd));
	snprintf(c->list_prefix, sizeof(c->list_prefix), ".tierd-check/%s/", hex);
	snprintf(c->key, sizeof(c->key), "%ssmall", c->list_prefix);
	snprintf(c->mp_key, sizeof(c->mp_key), "%smultipart", c->list_prefix);
}

/* S3 only: plain http warns, missing keys fail. */
static bool step_credentials(struct check *c, const struct td_target_conf *tc)
{
	if (tc->type != TD_TARGET_S3)
		return true;
	if (tc->endpoint && strncmp(tc->endpoint, "http://", 7) == 0)
		warn(c, "endpoint %s is plain http: object data travels unencrypted", tc->endpoint);
	if (!has_credentials(tc)) {
		step_done(c, "credentials", 0, -EACCES, NULL,
		          "no credentials: set credentials_file (lines \"access_key = ...\", "
		          "\"secret_key = ...\", mode 0600) or AWS_ACCESS_KEY_ID and "
		          "AWS_SECRET_ACCESS_KEY");
		return false;
	}
	step_done(c, "credentials", 0, 0, NULL, "%s",
	          tc->credentials_file ? tc->credentials_file
	          : tc->creds_from_env ? "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
	                               : "from the configuration");
	return true;
}

/* Opens the target, then lists the (empty) scratch prefix: a missing bucket,
 * refused credentials or an unreachable endpoint show here with their own
 * message. */
static bool step_open_and_reach(struct check *c, const struct td_target_conf *tc)
{
	struct list_ctx l = { .want = "" };
	struct td_target_error err;
	int64_t t0 = td_monotonic_ns();
	int r;

	r = td_target_new(&c->t, &c->loop, tc, &err);
	step_done(c, "open", ms_since(t0), r, &err, NULL);
	if (r < 0)
		return false;
	t0 = td_monotonic_ns();
	r = td_target_sync_wait(
	    &c->loop, &l.s,
	    td_target_list(c->t, NULL, c->list_prefix, list_each, td_target_sync_cb, &l), &err);
	step_done(c, tc->type == TD_TARGET_S3 ? "bucket reachable" : "directory readable",
	          ms_since(t0), r, &err, NULL);
	return r == 0;
}

/* Multipart with small parts (S3 minimum 5 MiB); a dir target gets a bigger put. */
static bool multipart_phase(struct check *c, const struct td_target_conf *tc, bool *tried)
{
	struct td_target_conf mpconf = *tc;
	struct td_target_error err;
	int64_t t0 = td_monotonic_ns();
	int r;

	mpconf.part_size_bytes = MULTIPART_PART;
	mpconf.multipart_threshold_bytes = MULTIPART_PART;
	r = td_target_new(&c->mp, &c->loop, &mpconf, &err);
	if (r < 0) {
		step_done(c, "multipart (11 MiB)", ms_since(t0), r, &err, NULL);
		return false;
	}
	return multipart_step(c, tried);
}

/* Deletes whatever may have been written; the small object's delete is
 * verified by a head. */
static bool cleanup_phase(struct check *c, bool put_tried, bool mp_tried)
{
	struct td_target_error err;
	bool ok = true;
	int64_t t0;
	int r;

	if (put_tried) {
		t0 = td_monotonic_ns();
		r = del(c, c->t, c->key, &err);
		if (r == 0) {
			struct td_object_info *info = malloc(sizeof(*info));
			int h = info ? head(c, c->t, c->key, info, &err) : -ENOMEM;
			if (h == 0)
				r = errset(&err, -EIO, "the object is still there");
			else if (h != -ENOENT)
				r = h;
			free(info);
		}
		step_done(c, "delete", ms_since(t0), r, &err, NULL);
		ok = r == 0;
	}
	if (mp_tried) {
		t0 = td_monotonic_ns();
		r = del(c, c->mp, c->mp_key, &err);
		if (r < 0) {
			step_done(c, "delete multipart", ms_since(t0), r, &err, NULL);
			ok = false;
		}
	}
	return ok;
}

static bool run_checks(struct check *c, const struct td_target_conf *tc)
{
	bool put_tried = false, mp_tried = false, all_ok;

	scratch_keys(c);
	if (!step_credentials(c, tc) || !step_open_and_reach(c, tc))
		return false;
	all_ok = small_object_steps(c, &put_tried);
	if (all_ok && !multipart_phase(c, tc, &mp_tried))
		all_ok = false;
	if (!cleanup_phase(c, put_tried, mp_tried))
		all_ok = false;
	return all_ok;
}

int td_tcheck_run(struct td_tcheck_result *res, const struct td_target_conf *tc,
                  const struct td_tcheck_opts *o)
{
	struct check *c = calloc(1, sizeof(*c));
	bool ok;
	int r;

	if (!c)
		return -ENOMEM;
	r = uv_loop_init(&c->loop);
	if (r < 0) {
		free(c);
		return r;
	}
	memset(res, 0, sizeof(*res));
	res->latency_ms = -1;
	c->o = o;
	c->res = res;
	c->is_s3 = tc->type == TD_TARGET_S3;
	ok = run_checks(c, tc);
	close_target(c, &c->mp);
	close_target(c, &c->t);
	uv_loop_close(&c->loop);
	for (size_t i = 0; i < res->n_steps; i++)
		if (!res->steps[i].ok)
			ok = false;
	res->ok = ok;
	free(c);
	return 0;
}
