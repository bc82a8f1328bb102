/*
 * test_s3_target — the s3 backend against the real radosgw (label s3): every
 * operation on sizes around the part size, awkward keys, listing with
 * pagination, errors (wrong secret, missing bucket, unreachable endpoint, a
 * source that is too short) and that no multipart upload is left open.
 */
#include "s3t.h"

static struct td_test_s3 s3;
static uv_loop_t loop;
static char prefix[64];
static const char *tmp;

static struct td_target *open_target(struct td_target_conf *c)
{
	struct td_target_error err;
	struct td_target *t = NULL;
	int r = td_target_new(&t, &loop, c, &err);

	if (r < 0) {
		printf("td_target_new: %s\n", err.message);
		return NULL;
	}
	return t;
}

static struct td_target *default_target(void)
{
	struct td_target_conf c;

	s3t_conf(&c, &s3, prefix);
	return open_target(&c);
}

static int do_put_fd(struct td_target *t, const char *key, int fd, uint64_t n,
                     struct td_put_result *res, struct td_target_error *err)
{
	struct td_target_kv meta[] = { { "tierd-id", "abc123" }, { "tierd-mode", "0644" } };
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(
	    &loop, &s, td_target_put_fd(t, NULL, key, fd, n, meta, 2, res, td_target_sync_cb, &s),
	    err);
}

static int do_head(struct td_target *t, const char *key, struct td_object_info *info,
                   struct td_target_error *err)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&loop, &s,
	                           td_target_head(t, NULL, key, info, td_target_sync_cb, &s), err);
}

static int do_get_range(struct td_target *t, const char *key, uint64_t off, uint64_t len, void *buf,
                        size_t *got, struct td_target_error *err)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(
	    &loop, &s, td_target_get_range(t, NULL, key, off, len, buf, got, td_target_sync_cb, &s),
	    err);
}

static int do_delete(struct td_target *t, const char *key)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&loop, &s, td_target_delete(t, NULL, key, td_target_sync_cb, &s),
	                           NULL);
}

/* td_target_list hands the same data to `each` and to the callback, so the sync
 * context comes first. */
struct listed {
	struct td_target_sync s;
	unsigned n;
	bool found;
	const char *want;
	uint64_t want_size;
	unsigned stop_after;
};

static int on_each(void *data, const struct td_object_info *info)
{
	struct listed *l = data;

	l->n++;
	if (l->want && strcmp(info->key, l->want) == 0 && info->size_bytes == l->want_size)
		l->found = true;
	return l->stop_after && l->n >= l->stop_after;
}

static int do_list(struct td_target *t, const char *pfx, struct listed *l)
{
	int r;

	memset(&l->s, 0, sizeof(l->s));
	r = td_target_list(t, NULL, pfx, on_each, td_target_sync_cb, l);
	return td_target_sync_wait(&loop, &l->s, r, NULL);
}

static unsigned cleanup(struct td_target *t, int *status)
{
	struct td_target_sync s = { 0 };
	unsigned n = 99;

	*status = td_target_sync_wait(
	    &loop, &s, td_target_cleanup_stale(t, NULL, &n, td_target_sync_cb, &s), NULL);
	return n;
}

/* Upload a file of `size`, read it back every way, delete it. */
static void roundtrip(struct td_target *t, const char *key, uint64_t size)
{
	char path[512], path2[512], want[TD_SHA256_HEX], got_hex[TD_SHA256_HEX];
	struct td_put_result res;
	struct td_object_info info;
	struct td_target_error err;
	struct td_target_sync s = { 0 };
	int fd, fd2, r;

	printf("  roundtrip %s (%" PRIu64 " bytes)\n", key, size);
	fd = s3t_make_file(tmp, "src", size, (unsigned)size + 7, path, sizeof(path));
	REQUIRE(fd >= 0);
	REQUIRE(td_sha256_fd_hex(fd, want) == 0);
	r = do_put_fd(t, key, fd, size, &res, &err);
	if (r < 0)
		printf("put: %s (%s)\n", err.message, err.code);
	REQUIRE(r == 0);
	CHECK_STR(res.sha256_hex, want);
	CHECK_INT(res.size_bytes, size);
	CHECK(res.etag[0] != '\0');

	r = do_head(t, key, &info, &err);
	REQUIRE(r == 0);
	CHECK_INT(info.size_bytes, size);
	CHECK_STR(info.key, key);
	CHECK_STR(info.etag, res.etag);
	CHECK(info.mtime_s > 0);
	CHECK(info.server_time_s > 0);
	CHECK_INT(info.n_meta, 2);
	{
		bool id = false, mode = false;

		for (size_t i = 0; i < info.n_meta; i++) {
			id |= strcmp(info.meta[i].key, "tierd-id") == 0 &&
			      strcmp(info.meta[i].value, "abc123") == 0;
			mode |= strcmp(info.meta[i].key, "tierd-mode") == 0 &&
			        strcmp(info.meta[i].value, "0644") == 0;
		}
		CHECK(id && mode);
	}

	/* Whole object to a file, verified. */
	snprintf(path2, sizeof(path2), "%s/dst", tmp);
	fd2 = open(path2, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd2 >= 0);
	r = td_target_sync_wait(
	    &loop, &s,
	    td_target_get_fd(t, NULL, key, 0, UINT64_MAX, fd2, 0, want, td_target_sync_cb, &s),
	    &err);
	if (r < 0)
		printf("get_fd: %s\n", err.message);
	CHECK_INT(r, 0);
	CHECK(td_sha256_fd_hex(fd2, got_hex) == 0);
	CHECK_STR(got_hex, want);
	close(fd2);

	/* A wrong expected hash fails with -EIO. */
	fd2 = open(path2, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	memset(&s, 0, sizeof(s));
	r = td_target_sync_wait(
	    &loop, &s,
	    td_target_get_fd(t, NULL, key, 0, UINT64_MAX, fd2, 0,
	                     "0000000000000000000000000000000000000000000000000000000000000000",
	                     td_target_sync_cb, &s),
	    &err);
	CHECK_INT(r, -EIO);
	close(fd2);

	/* Ranges: the tail across the end, and one in the middle. */
	{
		uint64_t off = size > 10 ? size - 10 : 0;
		char buf[64], ref[64];
		size_t got = 999;

		r = do_get_range(t, key, off, 64, buf, &got, &err);
		if (r < 0)
			printf("get_range: %s (HTTP %d %s)\n", err.message, err.http_status,
			       err.code);
		CHECK_INT(r, 0);
		CHECK_INT(got, size - off);
		CHECK(td_pread_full(fd, ref, got, off) == 0);
		CHECK(memcmp(buf, ref, got) == 0);
		if (size > 100) {
			r = do_get_range(t, key, size / 2, 50, buf, &got, &err);
			CHECK_INT(r, 0);
			CHECK_INT(got, 50);
			CHECK(td_pread_full(fd, ref, 50, size / 2) == 0);
			CHECK(memcmp(buf, ref, 50) == 0);
		}
	}
	close(fd);
	CHECK_INT(do_delete(t, key), 0);
	CHECK_INT(do_head(t, key, &info, &err), -ENOENT);
	CHECK_INT(do_delete(t, key), 0); /* missing: still success */
	unlink(path);
	unlink(path2);
}

static void test_sizes(void)
{
	struct td_target *t = default_target();
	uint64_t ps = 5 * MIB;
	uint64_t sizes[] = { 0, 1, ps - 1, ps, ps + 1, 7 * ps + 12345 };
	int st;

	REQUIRE(t);
	for (size_t i = 0; i < TD_ARRAY_SIZE(sizes); i++) {
		char key[64];

		snprintf(key, sizeof(key), "sizes/obj-%zu", i);
		roundtrip(t, key, sizes[i]);
	}
	CHECK_INT(cleanup(t, &st), 0);
	CHECK_INT(st, 0);
	s3t_close(&loop, t);
}

static void test_keys(void)
{
	struct td_target *t = default_target();
	char longkey[1001];
	const char *keys[] = { "with space/a b c", "unicode/üñï ☃ 日本.bin",
		               "punct/a+b=c&d?e%f#g;h,i:j@k!l'm(n)*o", "dots/./x/../y", longkey };

	REQUIRE(t);
	memset(longkey, 'k', 1000);
	longkey[0] = 'L';
	longkey[500] = '/';
	longkey[1000] = '\0';
	for (size_t i = 0; i < TD_ARRAY_SIZE(keys); i++) {
		struct listed l = { .want = keys[i], .want_size = 1000 };
		char path[512];
		struct td_put_result res;
		struct td_target_error err;
		int fd;

		roundtrip(t, keys[i], 1000);
		/* And listed back under its own name. */
		fd = s3t_make_file(tmp, "k", 1000, 1, path, sizeof(path));
		CHECK_INT(do_put_fd(t, keys[i], fd, 1000, &res, &err), 0);
		close(fd);
		CHECK_INT(do_list(t, keys[i], &l), 0);
		CHECK(l.found);
		CHECK_INT(l.n, 1);
		CHECK_INT(do_delete(t, keys[i]), 0);
	}
	s3t_close(&loop, t);
}

static void test_errors(void)
{
	struct td_target_conf c;
	struct td_target *t;
	struct td_object_info info;
	struct td_target_error err;
	struct td_s3_tuning tu;
	char buf[8];
	size_t got;
	int64_t t0;
	int r;

	/* Wrong secret: a clear authentication error, not retried. */
	s3t_conf(&c, &s3, prefix);
	c.secret_key = (char *)"wrong-secret-wrong-secret";
	t = open_target(&c);
	REQUIRE(t);
	r = do_head(t, "x", &info, &err);
	CHECK_INT(r, -EACCES);
	r = do_get_range(t, "x", 0, 8, buf, &got, &err);
	CHECK_INT(r, -EACCES);
	CHECK_STR(err.code, "SignatureDoesNotMatch");
	CHECK_CONTAINS(err.message, "secret key is wrong");
	CHECK_INT(err.http_status, 403);
	CHECK(strstr(err.message, "wrong-secret") == NULL);
	printf("  wrong secret: %s\n", err.message);
	s3t_close(&loop, t);

	/* Unknown access key. */
	s3t_conf(&c, &s3, prefix);
	c.access_key = (char *)"NOSUCHACCESSKEY";
	t = open_target(&c);
	REQUIRE(t);
	r = do_get_range(t, "x", 0, 8, buf, &got, &err);
	CHECK_INT(r, -EACCES);
	/* Swift's tempauth does not tell an unknown key from a wrong secret. */
	if (!s3t_is_swift())
		CHECK_STR(err.code, "InvalidAccessKeyId");
	printf("  unknown key: %s\n", err.message);
	s3t_close(&loop, t);

	/* Missing bucket. */
	s3t_conf(&c, &s3, prefix);
	c.bucket = (char *)"tierd-no-such-bucket-here";
	t = open_target(&c);
	REQUIRE(t);
	{
		struct listed l = { 0 };

		memset(&l.s, 0, sizeof(l.s));
		r = td_target_sync_wait(
		    &loop, &l.s, td_target_list(t, NULL, "", on_each, td_target_sync_cb, &l), &err);
		CHECK_INT(r, -ENOENT);
		CHECK_STR(l.s.err.code, "NoSuchBucket");
		CHECK_CONTAINS(l.s.err.message, "does not exist");
		printf("  missing bucket: %s\n", l.s.err.message);
	}
	s3t_close(&loop, t);

	/* Unreachable endpoint: a closed port on localhost, bounded retries. */
	s3t_conf(&c, &s3, prefix);
	c.endpoint = (char *)"http://127.0.0.1:9";
	t = open_target(&c);
	REQUIRE(t);
	td_target_s3_tuning_default(&tu);
	tu.max_attempts = 3;
	tu.backoff_base_ms = 50;
	CHECK_INT(td_target_s3_tune(t, &tu), 0);
	t0 = td_monotonic_ns();
	r = do_head(t, "x", &info, &err);
	CHECK_INT(r, -ECONNREFUSED);
	CHECK_CONTAINS(err.message, "127.0.0.1:9");
	CHECK((td_monotonic_ns() - t0) / 1000000 < 5000);
	printf("  unreachable: %s\n", err.message);
	s3t_close(&loop, t);
}

/* A source shorter or longer than announced fails with -EIO and leaves no
 * object and no open multipart upload. */
static void test_short_source(void)
{
	struct td_target *t = default_target();
	struct td_put_result res;
	struct td_target_error err;
	struct td_object_info info;
	char path[512];
	int fd, st;

	REQUIRE(t);
	fd = s3t_make_file(tmp, "short", 12 * MIB, 3, path, sizeof(path));
	REQUIRE(fd >= 0);
	CHECK_INT(do_put_fd(t, "short/multi", fd, 13 * MIB, &res, &err), -EIO);
	printf("  short (multipart): %s\n", err.message);
	CHECK_INT(do_put_fd(t, "short/multi-grown", fd, 11 * MIB, &res, &err), -EIO);
	printf("  grown (multipart): %s\n", err.message);
	CHECK_INT(do_put_fd(t, "short/single", fd, 12 * MIB + 1, &res, &err), -EIO);
	/* below the threshold: single PUT */
	close(fd);
	fd = s3t_make_file(tmp, "short2", 1000, 3, path, sizeof(path));
	CHECK_INT(do_put_fd(t, "short/single", fd, 999, &res, &err), -EIO);
	CHECK_INT(do_put_fd(t, "short/single", fd, 1001, &res, &err), -EIO);
	close(fd);
	CHECK_INT(do_head(t, "short/multi", &info, &err), -ENOENT);
	CHECK_INT(do_head(t, "short/single", &info, &err), -ENOENT);
	CHECK_INT(cleanup(t, &st), 0); /* nothing was left open */
	CHECK_INT(st, 0);
	s3t_close(&loop, t);
}

/* A target closed in the middle of a multipart upload (what a crash leaves):
 * cleanup_stale finds and aborts it; a second pass finds nothing. */
static void test_stale_multipart(void)
{
	struct td_target_conf c;
	struct td_target *t;
	struct td_put_result res;
	struct td_target_sync s = { 0 };
	char path[512];
	int fd, st, r;
	unsigned n;

	/* Slowed down by the bandwidth limit so it is still running when closed. */
	s3t_conf(&c, &s3, prefix);
	c.bandwidth_limit_bytes = 10 * MIB;
	t = open_target(&c);
	REQUIRE(t);
	fd = s3t_make_file(tmp, "stale", 30 * MIB, 4, path, sizeof(path));
	REQUIRE(fd >= 0);
	r = td_target_put_fd(t, NULL, "stale/obj", fd, 30 * MIB, NULL, 0, &res, td_target_sync_cb,
	                     &s);
	REQUIRE(r == 0);
	/* Run until at least the initiate has been answered and a part is moving. */
	{
		int64_t t0 = td_monotonic_ns();

		while (!s.done && td_monotonic_ns() - t0 < 300 * 1000000LL)
			uv_run(&loop, UV_RUN_ONCE);
	}
	REQUIRE(!s.done);
	s3t_close(&loop, t);
	CHECK(s.done);
	CHECK_INT(s.status, -ECANCELED);
	close(fd);

	t = default_target();
	REQUIRE(t);
	n = cleanup(t, &st);
	CHECK_INT(st, 0);
	CHECK(n >= 1);
	printf("  cleaned %u stale upload(s)\n", n);
	CHECK_INT(cleanup(t, &st), 0);
	s3t_close(&loop, t);
}

static void test_cancel(void)
{
	struct td_target *t = default_target();
	struct td_put_result res;
	struct td_target_sync s = { 0 };
	struct td_target_req *req = NULL;
	char path[512];
	int fd, st;

	REQUIRE(t);
	fd = s3t_make_file(tmp, "cancel", 20 * MIB, 5, path, sizeof(path));
	REQUIRE(fd >= 0);
	REQUIRE(td_target_put_fd(t, &req, "cancel/obj", fd, 20 * MIB, NULL, 0, &res,
	                         td_target_sync_cb, &s) == 0);
	uv_run(&loop, UV_RUN_ONCE);
	td_target_cancel(req);
	CHECK(!s.done); /* the callback comes later, from the loop */
	CHECK_INT(td_target_sync_wait(&loop, &s, 0, NULL), -ECANCELED);
	close(fd);
	CHECK_INT(cleanup(t, &st), 0); /* the cancelled upload was aborted */
	s3t_close(&loop, t);
}

struct many {
	struct td_target_sync s;
	unsigned left;
	int failed;
};

static void on_many(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err)
{
	struct many *m = data;

	(void)req;
	(void)err;
	if (status < 0)
		m->failed++;
	m->left--;
}

/* More objects than one ListObjectsV2 page holds; an early stop; JSON. */
static void test_list_and_json(void)
{
	struct td_target *t = default_target();
	struct td_put_result *res;
	struct many m = { 0 };
	struct listed l = { 0 };
	const unsigned n = 1010;
	json_t *doc, *back = NULL;
	struct td_target_sync s = { 0 };

	REQUIRE(t);
	res = calloc(n, sizeof(*res));
	m.left = n;
	for (unsigned i = 0; i < n; i++) {
		char key[64];

		snprintf(key, sizeof(key), "many/%05u", i);
		CHECK_INT(
		    td_target_put_buf(t, NULL, key, "x", 1, NULL, NULL, 0, &res[i], on_many, &m),
		    0);
	}
	while (m.left)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_INT(m.failed, 0);
	l.want = "many/01009";
	l.want_size = 1;
	CHECK_INT(do_list(t, "many/", &l), 0);
	CHECK_INT(l.n, n);
	CHECK(l.found);
	memset(&l, 0, sizeof(l));
	l.stop_after = 5;
	CHECK_INT(do_list(t, "many/", &l), 0);
	CHECK_INT(l.n, 5);
	memset(&l, 0, sizeof(l));
	CHECK_INT(do_list(t, "nothing-here/", &l), 0);
	CHECK_INT(l.n, 0);

	doc = json_pack("{s:s, s:i}", "path", "/srv/ü x", "size", 42);
	CHECK_INT(td_target_sync_wait(
	              &loop, &s,
	              td_target_put_json(t, NULL, "many.json", doc, td_target_sync_cb, &s), NULL),
	          0);
	memset(&s, 0, sizeof(s));
	CHECK_INT(td_target_sync_wait(
	              &loop, &s,
	              td_target_get_json(t, NULL, "many.json", &back, td_target_sync_cb, &s), NULL),
	          0);
	CHECK(back && json_equal(doc, back));
	json_decref(doc);
	json_decref(back);

	m.left = n;
	for (unsigned i = 0; i < n; i++) {
		char key[64];

		snprintf(key, sizeof(key), "many/%05u", i);
		td_target_delete(t, NULL, key, on_many, &m);
	}
	while (m.left)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_INT(do_delete(t, "many.json"), 0);
	free(res);
	s3t_close(&loop, t);
}

/* bandwidth_limit holds a whole upload and download to about its rate. */
static void test_bandwidth(void)
{
	struct td_target_conf c;
	struct td_target *t;
	struct td_put_result res;
	struct td_target_error err;
	struct td_target_sync s = { 0 };
	char path[512];
	int64_t t0, ms;
	int fd, fd2;

	s3t_conf(&c, &s3, prefix);
	c.bandwidth_limit_bytes = 8 * MIB;
	t = open_target(&c);
	REQUIRE(t);
	fd = s3t_make_file(tmp, "bw", 16 * MIB, 6, path, sizeof(path));
	REQUIRE(fd >= 0);
	t0 = td_monotonic_ns();
	CHECK_INT(do_put_fd(t, "bw/obj", fd, 16 * MIB, &res, &err), 0);
	ms = (td_monotonic_ns() - t0) / 1000000;
	printf("  16 MiB up at 8 MiB/s: %" PRId64 " ms\n", ms);
	CHECK(ms >= 1500);
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	t0 = td_monotonic_ns();
	CHECK_INT(td_target_sync_wait(&loop, &s,
	                              td_target_get_fd(t, NULL, "bw/obj", 0, UINT64_MAX, fd2, 0,
	                                               res.sha256_hex, td_target_sync_cb, &s),
	                              NULL),
	          0);
	ms = (td_monotonic_ns() - t0) / 1000000;
	printf("  16 MiB down at 8 MiB/s: %" PRId64 " ms\n", ms);
	CHECK(ms >= 1500);
	close(fd);
	close(fd2);
	CHECK_INT(do_delete(t, "bw/obj"), 0);
	s3t_close(&loop, t);
}

int main(void)
{
	unsigned char rnd[6];
	char hex[13];

	td_test_require_s3(&s3);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	uv_loop_init(&loop);
	td_random_bytes(rnd, sizeof(rnd));
	td_hex(hex, rnd, sizeof(rnd));
	snprintf(prefix, sizeof(prefix), "test-s3-%s/", hex);
	tmp = td_test_tmpdir("target_s3");
	printf("prefix %s\n", prefix);
	TD_RUN(test_sizes);
	TD_RUN(test_keys);
	TD_RUN(test_errors);
	TD_RUN(test_short_source);
	TD_RUN(test_stale_multipart);
	TD_RUN(test_cancel);
	TD_RUN(test_bandwidth);
	TD_RUN(test_list_and_json);
	td_test_rmtree(tmp);
	uv_loop_close(&loop);
	curl_global_cleanup();
	return td_test_done();
}
