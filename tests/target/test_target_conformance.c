/*
 * Target conformance: the contract of lib/target.h, checked the same way on
 * every backend. `test_target_conformance dir` runs it on a fresh temp
 * directory (plus the dir-only safety cases); `... s3` on the radosgw named by
 * TD_S3_* with 5 MiB parts, under a fresh random prefix ("cf-XXXXXXXX/") that
 * is emptied at the end. Every operation goes through the asynchronous API; the callback checks
 * that it was not called from inside the starting call and only once.
 */
#include "hash.h"
#include "target.h"
#include "testlib.h"
#include "util.h"

#ifdef TD_TEST_DIR_SIDECAR
/* A second copy of the dir backend that always stores metadata in sidecar
 * files (as on filesystems without user xattrs), under its own ops name. */
#define TD_DIR_FORCE_SIDECAR 1
#define td_target_dir_ops    td_target_dir_sidecar_ops
#include "target_dir.c"
#undef td_target_dir_ops
#endif

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MIB  (1024u * 1024u)
#define PART (5u * MIB)

static uv_loop_t loop;
static struct td_target *tgt;
static struct td_target_conf conf;
static bool is_dir;
static char root[4096]; /* dir: the target directory */
static char tmpbase[2048];
static bool starting;    /* set around every starting call */
static int sync_calls;   /* callbacks seen, overall */
static int early_calls;  /* callbacks run from inside a starting call */
static int double_calls; /* callbacks run twice for one operation */

static void conf_cb(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err)
{
	struct td_target_sync *s = data;

	sync_calls++;
	if (starting)
		early_calls++;
	if (s->done)
		double_calls++;
	if (status < 0 && err && getenv("TD_TEST_VERBOSE"))
		printf("  (status %d: %s)\n", status, err->message);
	td_target_sync_cb(data, req, status, err);
}

/* Finishes an operation started with `start`; when the start failed, checks the
 * callback never comes. */
static int finish(struct td_target_sync *s, int start, struct td_target_error *err)
{
	starting = false;
	if (start < 0) {
		uv_run(&loop, UV_RUN_NOWAIT);
		CHECK(!s->done);
		return start;
	}
	CHECK(!s->done);
	return td_target_sync_wait(&loop, s, start, err);
}

#define RUN_SYNC(s, err, call) (starting = true, finish((s), (call), (err)))

/* ---- small synchronous wrappers ---- */

static int memfd_with(const void *data, size_t n)
{
	int fd = memfd_create("conformance", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (n && td_write_full(fd, data, n) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static int put_fd(const char *key, const void *data, size_t n, uint64_t declared,
                  const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res)
{
	struct td_target_sync s = { 0 };
	struct td_target_error err;
	struct td_put_result tmp;
	int fd = memfd_with(data, n), r;

	if (fd < 0)
		return fd;
	r = RUN_SYNC(&s, &err,
	             td_target_put_fd(tgt, NULL, key, fd, declared, meta, n_meta, res ? res : &tmp,
	                              conf_cb, &s));
	close(fd);
	return r;
}

static int put_buf(const char *key, const void *data, size_t n, struct td_put_result *res)
{
	struct td_target_sync s = { 0 };
	struct td_put_result tmp;

	return RUN_SYNC(&s, NULL,
	                td_target_put_buf(tgt, NULL, key, data, n, "application/octet-stream", NULL,
	                                  0, res ? res : &tmp, conf_cb, &s));
}

static int get_range(const char *key, uint64_t off, uint64_t len, void *buf, size_t *got)
{
	struct td_target_sync s = { 0 };

	return RUN_SYNC(&s, NULL,
	                td_target_get_range(tgt, NULL, key, off, len, buf, got, conf_cb, &s));
}

struct progress {
	size_t last, calls;
	bool backwards;
};

static void on_progress(void *data, size_t got)
{
	struct progress *p = data;

	p->backwards |= got < p->last;
	p->last = got;
	p->calls++;
}

/* [off, off+len) into three buffers of uneven sizes (the last may be cut
 * short by the object's end), with progress reports. */
static int get_range_v(const char *key, uint64_t off, uint64_t len, char *bufs[3], size_t *got,
                       struct progress *pg)
{
	struct td_target_sync s = { 0 };
	struct td_target_req *req = NULL;
	struct iovec iov[3];
	size_t part = (size_t)len / 3;

	iov[0] = (struct iovec){ bufs[0], part / 2 };
	iov[1] = (struct iovec){ bufs[1], part + part / 2 };
	iov[2] = (struct iovec){ bufs[2], (size_t)len - 2 * part };
	int r;

	starting = true;
	r = td_target_get_range_v(tgt, &req, key, off, iov, 3, got, conf_cb, &s);
	if (r == 0)
		td_target_req_on_progress(req, on_progress, pg);
	return finish(&s, r, NULL);
}

/* Gets [off, off+len) through an fd; *out is malloc'd (caller frees). */
static int get_fd(const char *key, uint64_t off, uint64_t len, const char *sha, char **out,
                  size_t *n_out)
{
	struct td_target_sync s = { 0 };
	struct stat st;
	int fd = memfd_create("conformance-get", MFD_CLOEXEC), r;

	*out = NULL;
	*n_out = 0;
	if (fd < 0)
		return -errno;
	/* Written at fd_off 7 onwards: the offset must be honoured. */
	r = RUN_SYNC(&s, NULL, td_target_get_fd(tgt, NULL, key, off, len, fd, 7, sha, conf_cb, &s));
	if (r == 0 && fstat(fd, &st) == 0) {
		size_t n = st.st_size > 7 ? (size_t)st.st_size - 7 : 0;
		*out = malloc(n + 1);
		if (*out && n)
			r = td_pread_full(fd, *out, n, 7);
		*n_out = n;
	}
	close(fd);
	return r;
}

static int head(const char *key, struct td_object_info *info)
{
	struct td_target_sync s = { 0 };

	return RUN_SYNC(&s, NULL, td_target_head(tgt, NULL, key, info, conf_cb, &s));
}

static int del(const char *key)
{
	struct td_target_sync s = { 0 };

	return RUN_SYNC(&s, NULL, td_target_delete(tgt, NULL, key, conf_cb, &s));
}

struct listing {
	char **keys;
	uint64_t *sizes;
	size_t n, cap;
	size_t stop_after; /* 0: never stop */
};

/* One data pointer serves both `each` and the callback. */
struct list_ctx {
	struct td_target_sync s; /* first: conf_cb sees a td_target_sync */
	struct listing *l;
};

static int collect(void *data, const struct td_object_info *info)
{
	struct listing *l = ((struct list_ctx *)data)->l;

	if (starting)
		early_calls++;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->keys = realloc(l->keys, l->cap * sizeof(*l->keys));
		l->sizes = realloc(l->sizes, l->cap * sizeof(*l->sizes));
		if (!l->keys || !l->sizes)
			abort();
	}
	l->keys[l->n] = strdup(info->key);
	l->sizes[l->n] = info->size_bytes;
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
	free(l->sizes);
	memset(l, 0, sizeof(*l));
}

static int list(const char *prefix, struct listing *l)
{
	struct list_ctx c = { .l = l };

	return RUN_SYNC(&c.s, NULL, td_target_list(tgt, NULL, prefix, collect, conf_cb, &c));
}

/* How many objects a listing of prefix finds (checking that it succeeds). */
static size_t list_count(const char *prefix)
{
	struct listing l = { 0 };
	size_t n;

	CHECK_INT(list(prefix, &l), 0);
	n = l.n;
	listing_free(&l);
	return n;
}

static void sha_hex(const void *data, size_t n, char out[TD_SHA256_HEX])
{
	unsigned char d[TD_SHA256_LEN];

	td_sha256(data, n, d);
	td_hex(out, d, TD_SHA256_LEN);
}

static const char *meta_get(const struct td_object_info *info, const char *key)
{
	for (size_t i = 0; i < info->n_meta; i++)
		if (strcmp(info->meta[i].key, key) == 0)
			return info->meta[i].value;
	return NULL;
}

static char *random_data(size_t n)
{
	char *p = malloc(n ? n : 1);

	if (p && n && td_random_bytes(p, n) < 0)
		abort();
	return p;
}

/* ---- the cases ---- */

static void one_size(size_t n)
{
	char key[64], key2[64], sha[TD_SHA256_HEX], bad[TD_SHA256_HEX];
	struct td_target_kv meta[2];
	struct td_put_result res = { 0 };
	struct td_object_info info;
	char *data = random_data(n), *back = NULL, *buf;
	size_t got = 0, nback = 0;

	REQUIRE(data);
	sha_hex(data, n, sha);
	meta[0] = (struct td_target_kv){ "tierd-sha256", sha };
	meta[1] = (struct td_target_kv){ "tierd-test", "size check" };
	snprintf(key, sizeof(key), "sizes/%zu", n);
	snprintf(key2, sizeof(key2), "sizes/buf-%zu", n);

	CHECK_INT(put_fd(key, data, n, n, meta, 2, &res), 0);
	CHECK_INT(res.size_bytes, n);
	CHECK_STR(res.sha256_hex, sha);

	memset(&info, 0, sizeof(info));
	CHECK_INT(head(key, &info), 0);
	CHECK_STR(info.key, key);
	CHECK_INT(info.size_bytes, n);
	CHECK(info.etag[0] != '\0');
	CHECK(info.etag[0] != '"');
	if (res.etag[0])
		CHECK_STR(info.etag, res.etag);
	CHECK_STR(meta_get(&info, "tierd-sha256"), sha);
	CHECK_STR(meta_get(&info, "tierd-test"), "size check");

	/* Whole object through an fd, verified. */
	CHECK_INT(get_fd(key, 0, UINT64_MAX, sha, &back, &nback), 0);
	CHECK_INT(nback, n);
	CHECK(back && memcmp(back, data, n) == 0);
	free(back);
	/* A wrong checksum is -EIO. */
	memcpy(bad, sha, sizeof(bad));
	bad[0] = bad[0] == '0' ? '1' : '0';
	CHECK_INT(get_fd(key, 0, UINT64_MAX, bad, &back, &nback), -EIO);
	free(back);

	if (n > 0) {
		uint64_t off = n / 3, len = n - n / 3;

		buf = malloc(len + 16);
		REQUIRE(buf);
		/* A range in the middle, one past the end, and the last byte alone. */
		CHECK_INT(get_range(key, off, len, buf, &got), 0);
		CHECK_INT(got, len);
		CHECK(memcmp(buf, data + off, len) == 0);
		CHECK_INT(get_range(key, off, len + 16, buf, &got), 0);
		CHECK_INT(got, len);
		CHECK_INT(get_range(key, n - 1, 1, buf, &got), 0);
		CHECK_INT(got, 1);
		CHECK(buf[0] == data[n - 1]);
		free(buf);
		/* Into three buffers: each gets its bytes, in order; progress, if
		 * reported, only grows and ends at the total. */
		{
			char *bufs[3] = { malloc(len), malloc(len), malloc(len + 16) };
			struct progress pg = { 0 };
			size_t p = (size_t)len / 3, l0 = p / 2, l1 = p + p / 2;

			REQUIRE(bufs[0] && bufs[1] && bufs[2]);
			CHECK_INT(get_range_v(key, off, len, bufs, &got, &pg), 0);
			CHECK_INT(got, len);
			CHECK(memcmp(bufs[0], data + off, l0) == 0);
			CHECK(memcmp(bufs[1], data + off + l0, l1) == 0);
			CHECK(memcmp(bufs[2], data + off + l0 + l1, len - l0 - l1) == 0);
			CHECK(!pg.backwards);
			CHECK(pg.calls == 0 || pg.last == len);
			for (int i = 0; i < 3; i++)
				free(bufs[i]);
		}
		/* A sub-range through an fd. */
		CHECK_INT(get_fd(key, off, len, NULL, &back, &nback), 0);
		CHECK_INT(nback, len);
		CHECK(back && memcmp(back, data + off, len) == 0);
		free(back);
	}

	/* The same bytes from memory. */
	if (n <= PART + 1) {
		memset(&res, 0, sizeof(res));
		CHECK_INT(put_buf(key2, data, n, &res), 0);
		CHECK_STR(res.sha256_hex, sha);
		CHECK_INT(head(key2, &info), 0);
		CHECK_INT(info.size_bytes, n);
		CHECK_INT(get_fd(key2, 0, UINT64_MAX, sha, &back, &nback), 0);
		CHECK_INT(nback, n);
		free(back);
		CHECK_INT(del(key2), 0);
	}

	CHECK_INT(del(key), 0);
	CHECK_INT(head(key, &info), -ENOENT);
	CHECK_INT(del(key), 0); /* missing: still success */
	free(data);
}

static void test_sizes(void)
{
	static const size_t sizes[] = { 0, 1, PART - 1, PART, PART + 1, 3 * PART + 12345 };

	for (size_t i = 0; i < TD_ARRAY_SIZE(sizes); i++)
		one_size(sizes[i]);
}

static void test_keys(void)
{
	char longkey[1001];
	const char *keys[] = {
		"keys/with space/and more spaces ",
		"keys/unicode/h\xc3\xa9llo-\xc3\xb1-\xe6\x97\xa5\xe6\x9c\xac",
		"keys/chars/a+b=c&d?e%f",
		"keys/chars/%2F%41%",
		"keys/chars/~!@$()*,;:'[]#",
		longkey,
	};
	struct td_object_info info;
	struct listing l = { 0 };
	char buf[1100];
	size_t got;

	/* 1,000 bytes, in components a directory can hold. */
	memset(longkey, 'k', 1000);
	longkey[1000] = '\0';
	memcpy(longkey, "keys/long/", 10);
	for (size_t i = 200; i < 1000; i += 200)
		longkey[i] = '/';
	for (size_t i = 0; i < TD_ARRAY_SIZE(keys); i++) {
		size_t n = strlen(keys[i]);

		CHECK_INT(put_buf(keys[i], keys[i], n, NULL), 0);
		memset(&info, 0, sizeof(info));
		CHECK_INT(head(keys[i], &info), 0);
		CHECK_STR(info.key, keys[i]);
		CHECK_INT(info.size_bytes, n);
		CHECK_INT(get_range(keys[i], 0, sizeof(buf), buf, &got), 0);
		CHECK(got == n && memcmp(buf, keys[i], n) == 0);
		CHECK_INT(list(keys[i], &l), 0);
		CHECK_INT(l.n, 1);
		if (l.n == 1)
			CHECK_STR(l.keys[0], keys[i]);
		listing_free(&l);
		CHECK_INT(del(keys[i]), 0);
		CHECK_INT(head(keys[i], &info), -ENOENT);
	}
}

static void test_list(void)
{
	/* In key (byte) order; "a-b" < "a/b" < "a0" crosses a directory boundary. */
	static const char *keys[] = {
		"list/a-b", "list/a/b", "list/a/c/d", "list/a0", "list/ab", "list/b",
	};
	static const char *put_order[] = {
		"list/b", "list/a/c/d", "list/a0", "list/a-b", "list/ab", "list/a/b",
	};
	struct listing l = { 0 };
	char key[64];
	size_t i;

	for (i = 0; i < TD_ARRAY_SIZE(put_order); i++)
		CHECK_INT(put_buf(put_order[i], put_order[i], strlen(put_order[i]), NULL), 0);

	CHECK_INT(list("list/", &l), 0);
	CHECK_INT(l.n, TD_ARRAY_SIZE(keys));
	for (i = 0; i < l.n && i < TD_ARRAY_SIZE(keys); i++) {
		CHECK_STR(l.keys[i], keys[i]);
		CHECK_INT(l.sizes[i], strlen(keys[i]));
	}
	listing_free(&l);

	/* A prefix that ends inside a name. */
	CHECK_INT(list("list/a", &l), 0);
	CHECK_INT(l.n, 5);
	if (l.n == 5) {
		CHECK_STR(l.keys[0], "list/a-b");
		CHECK_STR(l.keys[4], "list/ab");
	}
	listing_free(&l);
	CHECK_INT(list_count("list/a/"), 2);
	CHECK_INT(list_count("list/a/c/d"), 1);
	CHECK_INT(list_count("list/nothing"), 0);
	CHECK_INT(list_count("nothing/at/all/"), 0);

	/* Stopping early ends the listing with status 0. */
	l.stop_after = 2;
	CHECK_INT(list("list/", &l), 0);
	CHECK_INT(l.n, 2);
	listing_free(&l);

	for (i = 0; i < TD_ARRAY_SIZE(keys); i++)
		CHECK_INT(del(keys[i]), 0);
	CHECK_INT(list_count("list/"), 0);
	/* With every "list/..." key gone, "list" itself is an ordinary key. */
	CHECK_INT(put_buf("list", "x", 1, NULL), 0);
	CHECK_INT(list_count("list"), 1);
	CHECK_INT(del("list"), 0);

	/* More keys than one page (S3 and dir both page at 1,000): put them many at a
	 * time, in batches, then list them all, in order. */
	enum { N = 1005, BATCH = 32 };
	struct td_target_sync s[BATCH];
	struct td_put_result res[BATCH];
	char names[BATCH][32];
	for (i = 0; i < N; i += BATCH) {
		size_t b, nb = TD_MIN((size_t)BATCH, N - i);
		for (b = 0; b < nb; b++) {
			int r;
			memset(&s[b], 0, sizeof(s[b]));
			snprintf(names[b], sizeof(names[b]), "page/%05zu", i + b);
			starting = true;
			r = td_target_put_buf(tgt, NULL, names[b], names[b], strlen(names[b]), NULL,
			                      NULL, 0, &res[b], conf_cb, &s[b]);
			starting = false;
			CHECK_INT(r, 0);
			if (r < 0)
				s[b].done = true;
		}
		for (b = 0; b < nb; b++)
			CHECK_INT(td_target_sync_wait(&loop, &s[b], 0, NULL), 0);
	}
	CHECK_INT(list("page/", &l), 0);
	CHECK_INT(l.n, N);
	for (i = 0; i < l.n; i++) {
		snprintf(key, sizeof(key), "page/%05zu", i);
		if (strcmp(l.keys[i], key) != 0) {
			CHECK_STR(l.keys[i], key);
			break;
		}
	}
	for (i = 0; i < l.n; i++)
		CHECK_INT(del(l.keys[i]), 0);
	listing_free(&l);
}

static void test_json(void)
{
	struct td_target_sync s = { 0 };
	json_t *doc = json_pack("{s:i, s:s, s:[i,i]}", "size", 42, "path", "/srv/a b", "x", 1, 2);
	json_t *got = NULL;
	size_t big = TD_TARGET_JSON_MAX + 10;
	char *text;

	REQUIRE(doc);
	CHECK_INT(
	    RUN_SYNC(&s, NULL, td_target_put_json(tgt, NULL, "json/m.json", doc, conf_cb, &s)), 0);
	memset(&s, 0, sizeof(s));
	CHECK_INT(
	    RUN_SYNC(&s, NULL, td_target_get_json(tgt, NULL, "json/m.json", &got, conf_cb, &s)), 0);
	CHECK(got && json_equal(doc, got));
	json_decref(got);
	got = NULL;

	CHECK_INT(put_buf("json/bad.json", "{\"a\": ", 6, NULL), 0);
	memset(&s, 0, sizeof(s));
	CHECK_INT(
	    RUN_SYNC(&s, NULL, td_target_get_json(tgt, NULL, "json/bad.json", &got, conf_cb, &s)),
	    -EPROTO);
	CHECK(got == NULL);

	text = malloc(big);
	REQUIRE(text);
	memset(text, ' ', big);
	text[0] = '[';
	text[big - 1] = ']';
	CHECK_INT(put_buf("json/big.json", text, big, NULL), 0);
	memset(&s, 0, sizeof(s));
	CHECK_INT(
	    RUN_SYNC(&s, NULL, td_target_get_json(tgt, NULL, "json/big.json", &got, conf_cb, &s)),
	    -EPROTO);
	CHECK(got == NULL);
	free(text);

	memset(&s, 0, sizeof(s));
	CHECK_INT(RUN_SYNC(&s, NULL,
	                   td_target_get_json(tgt, NULL, "json/missing.json", &got, conf_cb, &s)),
	          -ENOENT);
	CHECK_INT(del("json/m.json"), 0);
	CHECK_INT(del("json/bad.json"), 0);
	CHECK_INT(del("json/big.json"), 0);
	json_decref(doc);
}

static void short_source(const char *key, size_t have, uint64_t declared)
{
	struct td_object_info info;
	char *data = random_data(have);

	REQUIRE(data);
	CHECK_INT(put_fd(key, data, have, declared, NULL, 0, NULL), -EIO);
	CHECK_INT(head(key, &info), -ENOENT);
	CHECK_INT(list_count(key), 0);
	free(data);
}

static void test_short_source(void)
{
	short_source("short/small", 100, 200);
	short_source("short/multipart", PART + 10, 3 * PART);
	short_source("short/empty", 0, 1);
	/* A source larger than declared (it grew) is refused as well. */
	short_source("short/grew", 100, 50);
}

static int get_range_etag(const char *key, uint64_t off, uint64_t len, const char *etag, void *buf,
                          size_t *got, struct td_target_error *err)
{
	struct td_target_sync s = { 0 };
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return RUN_SYNC(
	    &s, err,
	    td_target_get_range_etag(tgt, NULL, key, off, &iov, 1, etag, got, conf_cb, &s));
}

/* A range GET tied to an ETag reads the object that has it, and fails with
 * -EIO "object changed on the target" (never other bytes) once the key holds
 * another object, on the first attempt as on resumed ones. */
static void test_expect_etag(void)
{
	struct td_put_result res = { 0 }, res2 = { 0 };
	struct td_target_error err;
	char buf[64], wrong[132];
	size_t got = 0;

	CHECK_INT(put_buf("etag/obj", "the bytes that were tiered", 26, &res), 0);
	REQUIRE(res.etag[0]);
	memset(buf, 0, sizeof(buf));
	CHECK_INT(get_range_etag("etag/obj", 4, 5, res.etag, buf, &got, &err), 0);
	CHECK_INT(got, 5);
	CHECK(memcmp(buf, "bytes", 5) == 0);
	/* No ETag (NULL or "") checks nothing. */
	CHECK_INT(get_range_etag("etag/obj", 0, 3, "", buf, &got, &err), 0);
	CHECK_INT(get_range_etag("etag/obj", 0, 3, NULL, buf, &got, &err), 0);

	snprintf(wrong, sizeof(wrong), "%s", res.etag);
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	memset(buf, 0, sizeof(buf));
	got = 0;
	CHECK_INT(get_range_etag("etag/obj", 0, 10, wrong, buf, &got, &err), -EIO);
	CHECK(strstr(err.message, "object changed on the target") != NULL);
	CHECK_INT(got, 0);

	/* The key now holds other bytes of the same size: the old ETag no
	 * longer reads it. */
	CHECK_INT(put_buf("etag/obj", "THE BYTES THAT WERE TIERED", 26, &res2), 0);
	CHECK(strcmp(res.etag, res2.etag) != 0);
	memset(buf, 0, sizeof(buf));
	CHECK_INT(get_range_etag("etag/obj", 0, 26, res.etag, buf, &got, &err), -EIO);
	CHECK(strstr(err.message, "object changed on the target") != NULL);
	CHECK(memcmp(buf, "THE", 3) != 0);
	CHECK_INT(get_range_etag("etag/obj", 0, 26, res2.etag, buf, &got, &err), 0);
	CHECK_INT(got, 26);
	CHECK(memcmp(buf, "THE BYTES THAT WERE TIERED", 26) == 0);
	CHECK_INT(del("etag/obj"), 0);
}

static void test_errors(void)
{
	struct td_target_sync s = { 0 };
	struct td_object_info info;
	struct td_put_result res;
	char buf[16];
	size_t got;

	CHECK_INT(head("errors/missing", &info), -ENOENT);
	CHECK_INT(get_range("errors/missing", 0, 10, buf, &got), -ENOENT);
	CHECK_INT(del("errors/missing"), 0);
	/* Refused at the start: the callback must never come. */
	CHECK(RUN_SYNC(&s, NULL,
	               td_target_put_buf(tgt, NULL, "", "x", 1, NULL, NULL, 0, &res, conf_cb, &s)) <
	      0);
	CHECK(!s.done);
}

static void test_cleanup_stale(void)
{
	struct td_target_sync s = { 0 };
	unsigned n = 12345;

	CHECK_INT(RUN_SYNC(&s, NULL, td_target_cleanup_stale(tgt, NULL, &n, conf_cb, &s)), 0);
	CHECK(n != 12345);
}

static void test_cancel(void)
{
	enum { N = 24 };
	size_t n = 3 * PART + 1;
	char *data = random_data(n);
	struct td_target_sync s[N];
	struct td_target_req *req[N];
	struct td_put_result res[N];
	struct td_object_info info;
	char key[32];
	int fd = memfd_with(data, n), r, cancelled = 0;

	REQUIRE(data && fd >= 0);
	/* Many uploads at once; cancel all of them straight away. Each must call
	 * back once, with -ECANCELED or (if it won the race) success. */
	for (int i = 0; i < N; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		snprintf(key, sizeof(key), "cancel/%d", i);
		starting = true;
		r = td_target_put_fd(tgt, &req[i], key, fd, n, NULL, 0, &res[i], conf_cb, &s[i]);
		starting = false;
		CHECK_INT(r, 0);
		if (r < 0)
			s[i].done = true;
	}
	for (int i = 0; i < N; i++)
		if (!s[i].done)
			td_target_cancel(req[i]);
	for (int i = 0; i < N; i++) {
		r = td_target_sync_wait(&loop, &s[i], 0, NULL);
		CHECK(r == 0 || r == -ECANCELED);
		cancelled += r == -ECANCELED;
		snprintf(key, sizeof(key), "cancel/%d", i);
		if (r == -ECANCELED) {
			/* A cancelled upload leaves nothing, or (if it won the race to the
			 * rename) a complete object. */
			if (head(key, &info) == 0)
				CHECK_INT(info.size_bytes, n);
		}
		CHECK_INT(del(key), 0);
	}
	CHECK(cancelled > 0);
	close(fd);
	free(data);
}

/* ---- dir-only: containment and hostile keys ---- */

static int write_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r;

	if (fd < 0)
		return -errno;
	r = td_write_full(fd, data, n);
	close(fd);
	return r;
}

/* Runs a shell pipeline that prints one number; -1 when it does not. */
static int run_count(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	int n = -1;

	if (!p)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

static int count_entries(const char *path)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 | wc -l", path);
	return run_count(cmd);
}

static int count_named(const char *path, const char *name)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "find '%s' -name '%s' | wc -l", path, name);
	return run_count(cmd);
}

static void test_dir_symlink(void)
{
	char outside[4096], path[8192];
	struct td_object_info info;
	struct td_put_result res;
	struct stat st;
	char buf[8];
	size_t got;

	snprintf(outside, sizeof(outside), "%s/outside", tmpbase);
	REQUIRE(mkdir(outside, 0700) == 0);
	/* <root>/ab -> outside: a put to ab/x must not write outside. */
	snprintf(path, sizeof(path), "%s/ab", root);
	REQUIRE(symlink(outside, path) == 0);
	CHECK(put_buf("ab/x", "evil", 4, &res) < 0);
	CHECK(put_buf("ab/c/d", "evil", 4, &res) < 0);
	CHECK_INT(count_entries(outside), 0);
	CHECK_INT(head("ab/x", &info), -ENOENT);
	/* A symlink as the object itself is not followed when reading... */
	snprintf(path, sizeof(path), "%s/secret", outside);
	REQUIRE(write_file(path, "s", 1) == 0);
	snprintf(path, sizeof(path), "%s/f", root);
	snprintf(outside + strlen(outside), sizeof(outside) - strlen(outside), "/secret");
	REQUIRE(symlink(outside, path) == 0);
	CHECK_INT(head("f", &info), -ENOENT);
	CHECK_INT(get_range("f", 0, sizeof(buf), buf, &got), -ENOENT);
	/* ...nor when writing: it is replaced, the file it points to is untouched. */
	CHECK_INT(put_buf("f", "new", 3, &res), 0);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(stat(outside, &st) == 0 && st.st_size == 1);
	CHECK_INT(del("f"), 0);
	CHECK(stat(outside, &st) == 0);
	/* list does not descend through the symlink. */
	struct listing l = { 0 };
	CHECK_INT(list("", &l), 0);
	for (size_t i = 0; i < l.n; i++)
		CHECK(strncmp(l.keys[i], "ab/", 3) != 0);
	listing_free(&l);
	snprintf(path, sizeof(path), "%s/ab", root);
	unlink(path);
}

static void test_dir_hostile_keys(void)
{
	static const char *bad[] = {
		"../x",           "a/../../x",       "..",     ".",  "./a",
		"a/./b",          "/etc/passwd",     "a//b",   "a/", ".tierd-tmp.0.1",
		"a/.tierd-tmp.x", "a/.tierd-meta.y", "a/../b",
	};
	char longname[300];
	struct td_put_result res;
	struct td_object_info info;
	struct listing l = { 0 };
	struct td_target_sync s;

	for (size_t i = 0; i < TD_ARRAY_SIZE(bad); i++) {
		memset(&s, 0, sizeof(s));
		CHECK_INT(RUN_SYNC(&s, NULL,
		                   td_target_put_buf(tgt, NULL, bad[i], "x", 1, NULL, NULL, 0, &res,
		                                     conf_cb, &s)),
		          -EINVAL);
		CHECK(!s.done);
		CHECK_INT(head(bad[i], &info), -EINVAL);
		CHECK_INT(del(bad[i]), -EINVAL);
	}
	/* One component longer than a directory entry can be. */
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_INT(put_buf(longname, "x", 1, &res), -ENAMETOOLONG);
	CHECK_INT(list("../", &l), -EINVAL);
	CHECK_INT(list("a/../", &l), -EINVAL);
	CHECK_INT(count_named(tmpbase, "x"), 0);
	CHECK_INT(count_named(tmpbase, "b"), 0);
	CHECK_INT(count_named(tmpbase, "passwd"), 0);
}

static void test_dir_cleanup_planted(void)
{
	char path[8192];
	struct td_target_sync s = { 0 };
	unsigned n = 0;
	int fd;

	/* Left by an earlier run (another run id): all go at start-up. */
	snprintf(path, sizeof(path), "%s/.tierd-tmp.0123456789abcdef.0000000000000001", root);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/sub", root);
	REQUIRE(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/sub/.tierd-tmp.fedcba9876543210.02", root);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	CHECK_INT(RUN_SYNC(&s, NULL, td_target_cleanup_stale(tgt, NULL, &n, conf_cb, &s)), 0);
	CHECK_INT(n, 2);
	CHECK(access(path, F_OK) < 0);
	snprintf(path, sizeof(path), "%s/sub", root);
	CHECK(rmdir(path) == 0);
}

#ifdef TD_TEST_DIR_SIDECAR
/* The sidecar copy keeps no user.tierd.* xattrs, and a stale sidecar (one for
 * other bytes, left by a crash before the rename) is not believed. */
static void test_dir_sidecar(void)
{
	static const struct td_target_kv meta[] = { { "tierd-x", "y" } };
	char path[8192], other[8192], names[4096], sha[TD_SHA256_HEX];
	struct td_object_info info;

	CHECK_INT(put_fd("side/a", "hello", 5, 5, meta, 1, NULL), 0);
	snprintf(path, sizeof(path), "%s/side/a", root);
	CHECK(listxattr(path, names, sizeof(names)) <= 0 || !strstr(names, "user.tierd"));
	CHECK_INT(count_named(root, ".tierd-meta.*"), 1);
	memset(&info, 0, sizeof(info));
	CHECK_INT(head("side/a", &info), 0);
	sha_hex("hello", 5, sha);
	CHECK_STR(info.etag, sha);
	CHECK_STR(meta_get(&info, "tierd-x"), "y");
	CHECK_INT(list_count("side/"), 1);
	/* Other bytes renamed over it (as the old object is, when a put crashes
	 * between its sidecar and its data renames): the sidecar no longer matches. */
	snprintf(other, sizeof(other), "%s/side/other", root);
	REQUIRE(write_file(other, "other", 5) == 0);
	REQUIRE(rename(other, path) == 0);
	memset(&info, 0, sizeof(info));
	CHECK_INT(head("side/a", &info), 0);
	CHECK(strcmp(info.etag, sha) != 0);
	CHECK(meta_get(&info, "tierd-x") == NULL);
	CHECK_INT(del("side/a"), 0);
	CHECK_INT(count_named(root, ".tierd-meta.*"), 0);
}
#endif

/* The queue is bounded: far more requests than it holds are refused with
 * -EAGAIN at the start (no callback); every accepted one calls back once. */
static void test_dir_queue_bound(void)
{
	enum { N = 6000 };
	struct td_target_sync *s = calloc(N, sizeof(*s));
	struct td_object_info *info = malloc(sizeof(*info));
	int refused = 0, r;
	char key[32];

	REQUIRE(s && info);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "queue/%d", i);
		starting = true;
		r = td_target_head(tgt, NULL, key, info, conf_cb, &s[i]);
		starting = false;
		if (r == -EAGAIN) {
			refused++;
			s[i].done = true; /* never called back */
			s[i].status = -EAGAIN;
		} else {
			CHECK_INT(r, 0);
		}
	}
	CHECK(refused > 0);
	for (int i = 0; i < N; i++)
		if (s[i].status != -EAGAIN)
			CHECK_INT(td_target_sync_wait(&loop, &s[i], 0, NULL), -ENOENT);
	uv_run(&loop, UV_RUN_NOWAIT);
	free(info);
	free(s);
}

/* Deletes that empty a directory race with puts into it: the puts must still
 * succeed (they walk again when their directory is pruned under them). */
static void test_dir_prune_race(void)
{
	enum { ROUNDS = 200, W = 8 };
	struct td_target_sync s[2 * W];
	struct td_put_result res[W];
	char keys[W][32];
	int r;

	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < W; i++) {
			/* Every put goes into a directory that a delete is emptying. */
			snprintf(keys[i], sizeof(keys[i]), "race/%d/k%d", i % 2,
			         round % 2 ? i : W - i);
			memset(&s[2 * i], 0, sizeof(s[0]));
			memset(&s[2 * i + 1], 0, sizeof(s[0]));
			r = td_target_put_buf(tgt, NULL, keys[i], "r", 1, NULL, NULL, 0, &res[i],
			                      conf_cb, &s[2 * i]);
			CHECK_INT(r, 0);
			r = td_target_delete(tgt, NULL, keys[i], conf_cb, &s[2 * i + 1]);
			CHECK_INT(r, 0);
		}
		for (int i = 0; i < 2 * W; i++)
			CHECK_INT(td_target_sync_wait(&loop, &s[i], 0, NULL), 0);
	}
	for (int i = 0; i < W; i++)
		for (int k = 0; k <= W; k++) {
			char key[32];
			snprintf(key, sizeof(key), "race/%d/k%d", i % 2, k);
			CHECK_INT(del(key), 0);
		}
	CHECK_INT(count_entries(root), 0);
}

/* Things that are not regular files are not objects, and never hang a worker. */
static void test_dir_special_files(void)
{
	char path[8192], buf[8];
	struct td_object_info info;
	size_t got = 99;

	snprintf(path, sizeof(path), "%s/fifo", root);
	REQUIRE(mkfifo(path, 0600) == 0);
	CHECK_INT(head("fifo", &info), -ENOENT);
	CHECK_INT(get_range("fifo", 0, sizeof(buf), buf, &got), -ENOENT);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/adir", root);
	REQUIRE(mkdir(path, 0700) == 0);
	CHECK_INT(head("adir", &info), -ENOENT);
	CHECK_INT(del("adir"), 0);
	CHECK(rmdir(path) == 0);
	/* A range that starts at or past the end reads nothing. */
	CHECK_INT(put_buf("short", "abc", 3, NULL), 0);
	CHECK_INT(get_range("short", 3, sizeof(buf), buf, &got), 0);
	CHECK_INT(got, 0);
	CHECK_INT(del("short"), 0);
}

/* ---- setup ---- */

static void on_closed(void *data)
{
	(*(int *)data)++;
}

static int open_target(void)
{
	struct td_target_error err;
	int r;

#ifdef TD_TEST_DIR_SIDECAR
	/* What td_target_new does, with the sidecar copy of the backend. */
	r = td_target_dir_sidecar_ops.new_(&tgt, &loop, &conf, &err);
	if (r == 0) {
		tgt->ops = &td_target_dir_sidecar_ops;
		tgt->loop = &loop;
		tgt->name = strdup(conf.name);
	}
#else
	r = td_target_new(&tgt, &loop, &conf, &err);
#endif

	if (r < 0)
		printf("td_target_new: %s (%s)\n", strerror(-r), err.message);
	return r;
}

static int close_target(void)
{
	int closed = 0;

	starting = true;
	td_target_close(tgt, on_closed, &closed);
	starting = false;
	CHECK_INT(closed, 0); /* never from inside td_target_close */
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_INT(closed, 1);
	tgt = NULL;
	return 0;
}

/* Closing with operations in flight: each calls back, then close_cb. */
static void test_close_in_flight(void)
{
	enum { N = 8 };
	struct td_target_sync s[N];
	struct td_put_result res[N];
	char key[32], data[4096];
	int r;

	memset(data, 'c', sizeof(data));
	for (int i = 0; i < N; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		snprintf(key, sizeof(key), "closing/%d", i);
		starting = true;
		r = td_target_put_buf(tgt, NULL, key, data, sizeof(data), NULL, NULL, 0, &res[i],
		                      conf_cb, &s[i]);
		starting = false;
		CHECK_INT(r, 0);
	}
	close_target();
	for (int i = 0; i < N; i++) {
		CHECK(s[i].done);
		CHECK(s[i].status == 0 || s[i].status == -ECANCELED);
	}
	REQUIRE(open_target() == 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "closing/%d", i);
		CHECK_INT(del(key), 0);
	}
}

static void setup_s3(void)
{
	struct td_test_s3 s3;
	unsigned char rnd[4];
	char hex[9], prefix[64], cmd[2048];

	td_test_require_s3(&s3);
	/* Short: S3 caps the whole key (prefix included) at 1,024 bytes, and the
	 * 1,000-byte key case must fit under it. */
	td_random_bytes(rnd, sizeof(rnd));
	td_hex(hex, rnd, sizeof(rnd));
	snprintf(prefix, sizeof(prefix), "cf-%s/", hex);
	conf.name = "conformance";
	conf.type = TD_TARGET_S3;
	conf.endpoint = (char *)s3.endpoint;
	conf.region = (char *)s3.region;
	conf.bucket = (char *)s3.bucket;
	conf.prefix = strdup(prefix);
	conf.addressing = TD_ADDRESSING_PATH;
	conf.access_key = (char *)s3.access_key;
	conf.secret_key = (char *)s3.secret_key;
	conf.storage_class = "STANDARD";
	conf.multipart_threshold_bytes = PART;
	conf.part_size_bytes = PART;
	conf.max_connections = 4;
	/* The bucket may not exist yet; creating an existing one is harmless. The
	 * keys reach aws through its environment, never its command line. */
	setenv("AWS_ACCESS_KEY_ID", s3.access_key, 1);
	setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key, 1);
	setenv("AWS_DEFAULT_REGION", s3.region, 1);
	snprintf(cmd, sizeof(cmd),
	         "aws --endpoint-url '%s' s3api create-bucket --bucket '%s' >/dev/null 2>&1",
	         s3.endpoint, s3.bucket);
	if (system(cmd) != 0)
		printf("note: create-bucket failed (it may exist already)\n");
}

static void setup_dir(void)
{
	snprintf(tmpbase, sizeof(tmpbase), "%s", td_test_tmpdir("conformance"));
	snprintf(root, sizeof(root), "%s/root", tmpbase);
	if (mkdir(root, 0700) < 0) {
		perror("mkdir");
		exit(1);
	}
	conf.name = "conformance";
	conf.type = TD_TARGET_DIR;
	conf.path = root;
	conf.max_connections = 4;
}

int main(int argc, char **argv)
{
	const char *backend = argc > 1 ? argv[1] : "dir";
	struct listing l = { 0 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	is_dir = strcmp(backend, "dir") == 0;
	if (is_dir)
		setup_dir();
	else if (strcmp(backend, "s3") == 0)
		setup_s3();
	else {
		fprintf(stderr, "usage: %s dir|s3\n", argv[0]);
		return 2;
	}
	uv_loop_init(&loop);
	if (open_target() < 0) {
		td_test_fail(__FILE__, __LINE__, "cannot create the %s target", backend);
		return td_test_done();
	}
	if (is_dir)
		TD_RUN(test_dir_cleanup_planted);
	TD_RUN(test_errors);
	TD_RUN(test_expect_etag);
	TD_RUN(test_sizes);
	TD_RUN(test_keys);
	TD_RUN(test_list);
	TD_RUN(test_json);
	TD_RUN(test_short_source);
	TD_RUN(test_cleanup_stale);
	TD_RUN(test_cancel);
	TD_RUN(test_close_in_flight);
	if (is_dir) {
		/* These plant files in the root: run them on an empty target. */
		CHECK_INT(list("", &l), 0);
		CHECK_INT(l.n, 0);
		listing_free(&l);
		TD_RUN(test_dir_symlink);
		TD_RUN(test_dir_hostile_keys);
		TD_RUN(test_dir_special_files);
		TD_RUN(test_dir_queue_bound);
		TD_RUN(test_dir_prune_race);
	}
#ifdef TD_TEST_DIR_SIDECAR
	TD_RUN(test_dir_sidecar);
#endif
	/* Leave nothing behind under the prefix. */
	if (list("", &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			del(l.keys[i]);
	listing_free(&l);
	/* Deletes prune the directories they empty: nothing is left at all. */
	if (is_dir)
		CHECK_INT(count_entries(root), 0);
	close_target();
	CHECK_INT(early_calls, 0);
	CHECK_INT(double_calls, 0);
	CHECK(sync_calls > 0);
	CHECK_INT(uv_loop_close(&loop), 0);
	if (is_dir && td_test_failures == 0)
		td_test_rmtree(tmpbase);
	return td_test_done();
}
