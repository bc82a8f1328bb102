/*
 * tierctl check-target NAME — tests a target's settings the way an admin needs
 * before enabling it, without the daemon: reads the config, then runs put /
 * head / range get / verified get / list / multipart / delete on scratch keys
 * under "<prefix>.tierd-check/<random>", checks the server's clock and
 * measures the round trip. Each step prints ok or FAILED with the server's own
 * error text and its time; --json prints one document. The scratch keys are
 * deleted even when a step fails.
 *
 * Exit: 0 every step passed, 1 a step failed, 2 usage or configuration error.
 */
#include "config.h"
#include "hash.h"
#include "target.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SMALL_BYTES     (64u * 1024u)
#define MULTIPART_PART  (5ull * 1024 * 1024)
#define MULTIPART_BYTES (11ull * 1024 * 1024 + 12345) /* three parts, the last short */
#define SKEW_WARN_S     60
#define SKEW_FAIL_S     (15 * 60)
#define LATENCY_SAMPLES 3
#define MAX_STEPS       16

struct step {
	const char *name;
	bool ok;
	double ms;
	char error[768];
};

struct check {
	const struct tierctl_opts *o;
	uv_loop_t loop;
	struct td_target *t;  /* the target as configured */
	struct td_target *mp; /* the same with 5 MiB parts, for the multipart step */
	struct step steps[MAX_STEPS];
	size_t n_steps;
	char warnings[4][256];
	size_t n_warnings;
	int64_t skew_s;
	bool have_skew;
	double latency_ms;
	bool is_s3;
	char key[96];    /* small scratch object */
	char mp_key[96]; /* multipart scratch object */
	char list_prefix[64];
};

static void warn(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->n_warnings >= TD_ARRAY_SIZE(c->warnings))
		return;
	va_start(ap, fmt);
	vsnprintf(c->warnings[c->n_warnings], sizeof(c->warnings[0]), fmt, ap);
	va_end(ap);
	if (!c->o->json)
		printf("warning: %s\n", c->warnings[c->n_warnings]);
	c->n_warnings++;
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

static struct step *step_done(struct check *c, const char *name, double ms, int status,
                              const struct td_target_error *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static double ms_since(int64_t start_ns)
{
	return (double)(td_monotonic_ns() - start_ns) / 1e6;
}

/* Records a step; a NULL fmt with status < 0 takes the text from err. */
static struct step *step_done(struct check *c, const char *name, double ms, int status,
                              const struct td_target_error *err, const char *fmt, ...)
{
	struct step *s;
	va_list ap;

	if (c->n_steps >= MAX_STEPS)
		return NULL;
	s = &c->steps[c->n_steps++];
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
	if (!c->o->json) {
		printf("  %-7s %-22s %8.1f ms", s->ok ? "ok" : "FAILED", name, s->ms);
		if (s->error[0])
			printf("  %s", s->error);
		printf("\n");
		fflush(stdout);
	}
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
	c->skew_s = skew;
	c->have_skew = true;
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

/* put, head (+clock, latency), range get, verified get, list on the small object. */
static bool small_object_steps(struct check *c, bool *put_tried)
{
	static const struct td_target_kv meta[] = { { "tierd-check", "1" } };
	unsigned char *data = malloc(SMALL_BYTES), *back = NULL;
	struct td_object_info *info = malloc(sizeof(*info));
	struct td_target_error err;
	struct td_put_result res;
	struct td_target_sync s;
	char sha[TD_SHA256_HEX];
	unsigned char digest[TD_SHA256_LEN];
	int64_t t0, put_start_s, put_end_s;
	size_t got = 0;
	bool ok = false;
	int r, fd = -1;

	if (!data || !info) {
		step_done(c, "put", 0, -ENOMEM, NULL, "out of memory");
		goto out;
	}
	td_random_bytes(data, SMALL_BYTES);
	td_sha256(data, SMALL_BYTES, digest);
	td_hex(sha, digest, TD_SHA256_LEN);

	*put_tried = true;
	t0 = td_monotonic_ns();
	put_start_s = td_now_ns() / 1000000000;
	r = put_buf(c, c->t, c->key, data, SMALL_BYTES, meta, 1, &res, &err);
	put_end_s = td_now_ns() / 1000000000;
	if (r == 0 && strcmp(res.sha256_hex, sha) != 0)
		r = errset(&err, -EIO, "stored checksum %s differs from ours %s", res.sha256_hex,
		           sha);
	step_done(c, "put", ms_since(t0), r, &err, NULL);
	if (r < 0)
		goto out;

	/* head, a few times: the fastest is the round-trip latency. */
	c->latency_ms = -1;
	for (int i = 0; i < LATENCY_SAMPLES; i++) {
		double ms;

		t0 = td_monotonic_ns();
		r = head(c, c->t, c->key, info, &err);
		ms = (double)(td_monotonic_ns() - t0) / 1e6;
		if (r < 0)
			break;
		if (c->latency_ms < 0 || ms < c->latency_ms)
			c->latency_ms = ms;
	}
	if (r == 0 && info->size_bytes != SMALL_BYTES)
		r = errset(&err, -EIO, "head says %llu bytes, we put %u",
		           (unsigned long long)info->size_bytes, SMALL_BYTES);
	else if (r == 0 && !meta_get(info, "tierd-check"))
		r = errset(&err, -EIO, "user metadata did not come back");
	step_done(c, "head", ms_since(t0), r, &err, NULL);
	if (r < 0)
		goto out;
	check_clock(c, c->is_s3, info, put_start_s, put_end_s);
	step_done(c, "latency", c->latency_ms, 0, NULL, "%.2f ms round trip (best of %d)",
	          c->latency_ms, LATENCY_SAMPLES);

	back = malloc(SMALL_BYTES);
	if (!back) {
		step_done(c, "range get", 0, -ENOMEM, NULL, "out of memory");
		goto out;
	}
	memset(&s, 0, sizeof(s));
	t0 = td_monotonic_ns();
	r = td_target_sync_wait(
	    &c->loop, &s,
	    td_target_get_range(c->t, NULL, c->key, 1000, 4096, back, &got, td_target_sync_cb, &s),
	    &err);
	if (r == 0 && (got != 4096 || memcmp(back, data + 1000, 4096) != 0))
		r = errset(&err, -EIO, "bytes 1000..5095 came back wrong (%zu bytes)", got);
	step_done(c, "range get", ms_since(t0), r, &err, NULL);
	if (r < 0)
		goto out;

	fd = memfd_create("tierctl-check", MFD_CLOEXEC);
	memset(&s, 0, sizeof(s));
	t0 = td_monotonic_ns();
	r = fd < 0 ? -errno
	           : td_target_sync_wait(&c->loop, &s,
	                                 td_target_get_fd(c->t, NULL, c->key, 0, UINT64_MAX, fd, 0,
	                                                  sha, td_target_sync_cb, &s),
	                                 &err);
	step_done(c, "get (sha256 verified)", ms_since(t0), r, fd < 0 ? NULL : &err, NULL);
	if (r < 0)
		goto out;

	{
		struct list_ctx l = { .want = c->key, .want_size = SMALL_BYTES };

		t0 = td_monotonic_ns();
		r = td_target_sync_wait(
		    &c->loop, &l.s,
		    td_target_list(c->t, NULL, c->list_prefix, list_each, td_target_sync_cb, &l),
		    &err);
		if (r == 0 && !l.found)
			r = errset(&err, -EIO,
			           "the scratch key is missing from the "
			           "listing (%u keys listed)",
			           l.n);
		else if (r == 0 && !l.size_ok)
			r = errset(&err, -EIO, "the listing shows the wrong size");
		step_done(c, "list", ms_since(t0), r, &err, NULL);
		if (r < 0)
			goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	free(back);
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

/* ---- printing ---- */

static const char *type_name(const struct td_target_conf *tc)
{
	return tc->type == TD_TARGET_S3 ? "s3" : "dir";
}

static int print_json(struct check *c, const struct td_target_conf *tc, bool all_ok)
{
	json_t *doc = json_object(), *steps = json_array(), *warns = json_array();
	char *text;

	if (!doc || !steps || !warns)
		return -ENOMEM;
	json_object_set_new(doc, "target", json_string(tc->name));
	json_object_set_new(doc, "type", json_string(type_name(tc)));
	if (tc->type == TD_TARGET_S3) {
		json_object_set_new(doc, "endpoint", json_string(tc->endpoint ? tc->endpoint : ""));
		json_object_set_new(doc, "bucket", json_string(tc->bucket ? tc->bucket : ""));
	} else {
		json_object_set_new(doc, "path", json_string(tc->path ? tc->path : ""));
	}
	json_object_set_new(doc, "prefix", json_string(tc->prefix ? tc->prefix : ""));
	json_object_set_new(doc, "ok", json_boolean(all_ok));
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct step *s = &c->steps[i];
		json_array_append_new(
		    steps, json_pack("{s:s, s:b, s:f, s:o}", "name", s->name, "ok", s->ok, "ms",
		                     s->ms, "error",
		                     !s->ok && s->error[0] ? json_string(s->error) : json_null()));
		if (s->ok && s->error[0])
			json_object_set_new(json_array_get(steps, json_array_size(steps) - 1),
			                    "note", json_string(s->error));
	}
	json_object_set_new(doc, "steps", steps);
	for (size_t i = 0; i < c->n_warnings; i++)
		json_array_append_new(warns, json_string(c->warnings[i]));
	json_object_set_new(doc, "warnings", warns);
	json_object_set_new(doc, "clock_skew_s",
	                    c->have_skew ? json_integer(c->skew_s) : json_null());
	json_object_set_new(doc, "latency_ms",
	                    c->latency_ms >= 0 ? json_real(c->latency_ms) : json_null());
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	printf("%s\n", text);
	free(text);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tierctl [-c FILE] [--json] check-target NAME\n");
}

static void list_targets(const struct td_config *cfg, FILE *f)
{
	if (cfg->n_targets == 0) {
		fprintf(f, "no targets are defined in %s\n", cfg->path ? cfg->path : "the config");
		return;
	}
	fprintf(f, "defined targets:");
	for (size_t i = 0; i < cfg->n_targets; i++)
		fprintf(f, " %s", cfg->targets[i].name);
	fprintf(f, "\n");
}

/* The parser reads credentials_file, and td_config_apply_env_credentials()
 * fills in the environment's keys: either way they end up in the conf. */
static bool has_credentials(const struct td_target_conf *tc)
{
	return tc->access_key && tc->access_key[0] && tc->secret_key && tc->secret_key[0];
}

static int run_checks(struct check *c, const struct td_target_conf *tc)
{
	struct td_target_conf mpconf = *tc;
	struct td_target_error err;
	unsigned char rnd[8];
	char hex[17];
	bool put_tried = false, mp_tried = false, all_ok = true;
	int64_t t0;
	int r;

	td_random_bytes(rnd, sizeof(rnd));
	td_hex(hex, rnd, sizeof(rnd));
	snprintf(c->list_prefix, sizeof(c->list_prefix), ".tierd-check/%s/", hex);
	snprintf(c->key, sizeof(c->key), "%ssmall", c->list_prefix);
	snprintf(c->mp_key, sizeof(c->mp_key), "%smultipart", c->list_prefix);

	if (!c->o->json) {
		if (tc->type == TD_TARGET_S3)
			printf("checking target \"%s\" (s3, %s, bucket %s, prefix \"%s\")\n",
			       tc->name, tc->endpoint ? tc->endpoint : "?",
			       tc->bucket ? tc->bucket : "?", tc->prefix ? tc->prefix : "");
		else
			printf("checking target \"%s\" (dir, %s)\n", tc->name,
			       tc->path ? tc->path : "?");
	}
	if (tc->type == TD_TARGET_S3) {
		if (tc->endpoint && strncmp(tc->endpoint, "http://", 7) == 0)
			warn(c, "endpoint %s is plain http: object data travels unencrypted",
			     tc->endpoint);
		if (has_credentials(tc)) {
			step_done(c, "credentials", 0, 0, NULL, "%s",
			          tc->credentials_file ? tc->credentials_file
			          : tc->creds_from_env
			              ? "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
			              : "from the configuration");
		} else {
			step_done(
			    c, "credentials", 0, -EACCES, NULL,
			    "no credentials: set credentials_file (lines \"access_key = ...\", "
			    "\"secret_key = ...\", mode 0600) or AWS_ACCESS_KEY_ID and "
			    "AWS_SECRET_ACCESS_KEY");
			return TIERCTL_FAILED;
		}
	}

	t0 = td_monotonic_ns();
	r = td_target_new(&c->t, &c->loop, tc, &err);
	step_done(c, "open", ms_since(t0), r, &err, NULL);
	if (r < 0)
		return TIERCTL_FAILED;

	/* Reachability first, with an empty listing: a missing bucket, refused
	 * credentials or an unreachable endpoint show here with their own message. */
	{
		struct list_ctx l = { .want = "" };

		t0 = td_monotonic_ns();
		r = td_target_sync_wait(
		    &c->loop, &l.s,
		    td_target_list(c->t, NULL, c->list_prefix, list_each, td_target_sync_cb, &l),
		    &err);
		step_done(c, tc->type == TD_TARGET_S3 ? "bucket reachable" : "directory readable",
		          ms_since(t0), r, &err, NULL);
		if (r < 0)
			return TIERCTL_FAILED;
	}
	if (!small_object_steps(c, &put_tried))
		all_ok = false;

	/* Multipart with small parts (S3 minimum 5 MiB); a dir target gets a bigger put. */
	mpconf.part_size_bytes = MULTIPART_PART;
	mpconf.multipart_threshold_bytes = MULTIPART_PART;
	if (all_ok) {
		t0 = td_monotonic_ns();
		r = td_target_new(&c->mp, &c->loop, &mpconf, &err);
		if (r < 0)
			step_done(c, "multipart (11 MiB)", ms_since(t0), r, &err, NULL);
		else if (!multipart_step(c, &mp_tried))
			all_ok = false;
		if (r < 0)
			all_ok = false;
	}

	/* delete: always, for whatever may have been written; verified by a head. */
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
		if (r < 0)
			all_ok = false;
	}
	if (mp_tried) {
		t0 = td_monotonic_ns();
		r = del(c, c->mp, c->mp_key, &err);
		if (r < 0) {
			step_done(c, "delete multipart", ms_since(t0), r, &err, NULL);
			all_ok = false;
		}
	}
	return all_ok ? TIERCTL_OK : TIERCTL_FAILED;
}

int tierctl_check_target(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct td_config_report rep = { 0 };
	struct td_config *cfg = NULL;
	const struct td_target_conf *tc = NULL;
	struct check *c = NULL;
	bool all_ok;
	int opt, r, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return TIERCTL_OK;
		default:
			usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return TIERCTL_USAGE;
	}
	/* As the daemon does: s3 targets without a credentials_file take the keys
	 * from the environment. A target without keys is a failed step here. */
	const struct td_config_load_opts lo = {
		.creds = TD_CONFIG_CREDS_ENV,
		.access_key = getenv("AWS_ACCESS_KEY_ID"),
		.secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
	};
	r = td_config_load_report(&cfg, o->config_path, &lo, &rep);
	td_config_errors_print(&rep.errors, stderr);
	td_config_report_clear(&rep);
	if (r < 0)
		return r == -ENOMEM ? TIERCTL_FAILED : TIERCTL_USAGE;
	tc = td_config_target(cfg, argv[optind]);
	if (!tc) {
		fprintf(stderr, "tierctl: no target \"%s\" in %s; ", argv[optind], o->config_path);
		list_targets(cfg, stderr);
		rc = TIERCTL_USAGE;
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c || uv_loop_init(&c->loop) < 0) {
		fprintf(stderr, "tierctl: out of memory\n");
		free(c);
		c = NULL;
		rc = TIERCTL_FAILED;
		goto out;
	}
	c->o = o;
	c->latency_ms = -1;
	c->is_s3 = tc->type == TD_TARGET_S3;
	rc = run_checks(c, tc);
	close_target(c, &c->mp);
	close_target(c, &c->t);
	uv_loop_close(&c->loop);
	for (size_t i = 0; i < c->n_steps; i++)
		if (!c->steps[i].ok)
			rc = TIERCTL_FAILED;
	all_ok = rc == TIERCTL_OK;
	if (o->json) {
		if (print_json(c, tc, all_ok) < 0)
			rc = TIERCTL_FAILED;
	} else {
		size_t failed = 0;
		for (size_t i = 0; i < c->n_steps; i++)
			failed += !c->steps[i].ok;
		if (all_ok)
			printf("target \"%s\": all %zu checks passed\n", tc->name, c->n_steps);
		else
			printf("target \"%s\": %zu of %zu checks FAILED\n", tc->name, failed,
			       c->n_steps);
	}
out:
	free(c);
	td_config_free(cfg);
	return rc;
}
