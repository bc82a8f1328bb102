/* The cache limit (bytes and percent) and the dirty-copy scan: copies that
 * differ from their catalog row in size, mtime or ctime (one written in place
 * with its mtime put back), and rows already marked dirty, are reported;
 * unchanged and absent copies are not. */
#include "cache.h"
#include "hash.h"
#include "catalog.h"
#include "ns.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void test_limit(void)
{
	struct td_size_or_pct bytes = { .is_pct = false, .bytes = 123456789 };
	struct td_size_or_pct pct = { .is_pct = true, .pct = 10 };
	struct td_size_or_pct half = { .is_pct = true, .pct = 50 };
	struct td_config c = { 0 };
	struct statvfs v;

	CHECK_INT(td_cache_limit_of(&bytes, 1000), 123456789); /* the filesystem does not matter */
	CHECK_INT(td_cache_limit_of(&pct, 1000), 100);
	CHECK_INT(td_cache_limit_of(&half, 1ull << 40), 1ull << 39);
	CHECK_INT(td_cache_limit_of(&pct, 0), 0);

	c.cache_dir = (char *)td_test_tmpdir("cache-limit");
	c.cache_size = bytes;
	CHECK_INT(td_cache_limit(&c), 123456789);
	c.cache_size = half;
	REQUIRE(statvfs(c.cache_dir, &v) == 0);
	CHECK_INT(td_cache_limit(&c), (uint64_t)v.f_blocks * v.f_frsize / 2);
	td_test_rmtree(c.cache_dir);
	c.cache_dir = "/nonexistent/tierd-cache";
	CHECK_INT(td_cache_limit(&c), 0);
}

static char CACHE[4200];

/* How a row records its copy's ctime (see td_cache_copy_unchanged). */
enum rec {
	REC_CTIME,      /* ctime_ns: the copy's ctime (as the remote view records it) */
	REC_AFTER,      /* cache_atime_ns after the copy was made (the mover's copies) */
	REC_BEFORE,     /* cache_atime_ns before the copy's last change */
	REC_CTIME_THEN, /* REC_CTIME, then the copy changes in place, mtime put back */
};

static int64_t ctime_of(const char *path)
{
	struct stat st;

	CHECK(stat(path, &st) == 0);
	return (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

/* A row in `state` whose cache copy (when size >= 0) holds `size` bytes with
 * mtime 1e9 + mtime_off ns; the row says 10 bytes at 1e9 ns, and records the
 * copy's ctime as `rec` says. */
static void add_rec(struct td_catalog *cat, unsigned n, enum td_catalog_state state, int size,
                    int mtime_off, enum rec rec, char id_out[TD_CATALOG_ID_HEX])
{
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error err;
	char path[64], cpath[4400];
	struct timespec ts[2] = { { 1, mtime_off }, { 1, mtime_off } };

	snprintf(e.id, sizeof(e.id), "%032x", n);
	snprintf(path, sizeof(path), "/srv/f%u", n);
	e.state = state;
	e.path = path;
	e.path_len = strlen(path);
	e.name = path + 5;
	e.name_len = strlen(e.name);
	e.size = 10;
	e.mtime_ns = 1000000000;
	e.ctime_ns = 500; /* the original's, before it was tiered */
	e.tiered_ns = 1000;
	REQUIRE(td_ns_cache_path(cpath, sizeof(cpath), CACHE, e.id) == 0);
	if (rec == REC_BEFORE)
		e.cache_atime_ns = td_now_ns();
	if (size >= 0) {
		char dir[4400];
		int fd;

		snprintf(dir, sizeof(dir), "%s", cpath);
		*strrchr(dir, '/') = '\0';
		td_ns_mkdirs(dir, 0700); /* copies/<aa>/<id> */
		usleep(20000); /* past the clock's tick: a later change has a later ctime */
		fd = open(cpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		REQUIRE(fd >= 0);
		CHECK_INT(td_write_full(fd, "0123456789abcdef", (size_t)size), 0);
		futimens(fd, ts);
		close(fd);
		if (rec == REC_CTIME || rec == REC_CTIME_THEN)
			e.ctime_ns = ctime_of(cpath);
		if (rec == REC_AFTER) {
			usleep(20000);
			e.cache_atime_ns = td_now_ns();
		}
	}
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	memcpy(id_out, e.id, TD_CATALOG_ID_HEX);
	if (rec == REC_CTIME_THEN) {
		int fd;

		usleep(20000);
		fd = open(cpath, O_WRONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		CHECK_INT(pwrite(fd, "XYZ", 3, 2), 3);
		futimens(fd, ts);
		close(fd);
	}
}

static void add(struct td_catalog *cat, unsigned n, enum td_catalog_state state, int size,
                int mtime_off, char id_out[TD_CATALOG_ID_HEX])
{
	add_rec(cat, n, state, size, mtime_off, REC_CTIME, id_out);
}

struct found {
	int calls;
	char ids[TD_CACHE_DIRTY_BATCH][TD_CATALOG_ID_HEX];
	unsigned n;
};

static void on_dirty(void *data, const char (*ids)[TD_CATALOG_ID_HEX], unsigned n)
{
	struct found *f = data;

	f->calls++;
	f->n = n;
	memcpy(f->ids, ids, n * sizeof(ids[0]));
}

static bool reported(const struct found *f, const char *id)
{
	for (unsigned i = 0; i < f->n; i++)
		if (strcmp(f->ids[i], id) == 0)
			return true;
	return false;
}

static void test_dirty_scan(void)
{
	const char *t = td_test_tmpdir("cache-dirty");
	char db[4200], same[33], grown[33], touched[33], marked[33], gone[33], tiered[33];
	char forged[33], mover[33], mover_changed[33];
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct found f = { 0 };
	uv_mutex_t lock;
	uv_loop_t loop;

	snprintf(CACHE, sizeof(CACHE), "%s/cache", t);
	snprintf(db, sizeof(db), "%s/catalog.db", t);
	mkdir(CACHE, 0700);
	REQUIRE(td_catalog_open(&cat, db, TD_CATALOG_CREATE, &err) == 0);
	add(cat, 1, TD_CATALOG_CACHED, 10, 0, same);
	add(cat, 2, TD_CATALOG_CACHED, 16, 0, grown);
	add(cat, 3, TD_CATALOG_CACHED, 10, 1, touched);
	add(cat, 4, TD_CATALOG_DIRTY, 10, 0, marked);
	add(cat, 5, TD_CATALOG_CACHED, -1, 0, gone);
	add(cat, 6, TD_CATALOG_TIERED, 16, 0, tiered); /* not a cached state: not looked at */
	add_rec(cat, 7, TD_CATALOG_CACHED, 10, 0, REC_CTIME_THEN, forged);
	add_rec(cat, 8, TD_CATALOG_CACHED, 10, 0, REC_AFTER, mover);
	add_rec(cat, 9, TD_CATALOG_CACHED, 10, 0, REC_BEFORE, mover_changed);
	uv_mutex_init(&lock);
	uv_loop_init(&loop);
	CHECK_INT(td_cache_dirty_scan(&loop, cat, &lock, CACHE, on_dirty, &f), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(f.calls, 1);
	CHECK_INT(f.n, 5);
	CHECK(reported(&f, forged)); /* same size and mtime, but its ctime moved */
	CHECK(reported(&f, mover_changed));
	CHECK(!reported(&f, mover));
	CHECK(reported(&f, grown));
	CHECK(reported(&f, touched));
	CHECK(reported(&f, marked));
	CHECK(!reported(&f, same));
	CHECK(!reported(&f, gone));
	CHECK(!reported(&f, tiered));
	CHECK_INT(uv_loop_close(&loop), 0);
	uv_mutex_destroy(&lock);
	td_catalog_close(cat);
	td_test_rmtree(t);
}

/* More dirty copies than one batch: the first TD_CACHE_DIRTY_BATCH come now,
 * the rest on a later scan. */
static void test_dirty_batch(void)
{
	const char *t = td_test_tmpdir("cache-batch");
	char db[4200], id[33];
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct found f = { 0 };
	uv_mutex_t lock;
	uv_loop_t loop;

	snprintf(db, sizeof(db), "%s/catalog.db", t);
	snprintf(CACHE, sizeof(CACHE), "%s/cache", t);
	REQUIRE(td_catalog_open(&cat, db, TD_CATALOG_CREATE, &err) == 0);
	for (unsigned i = 0; i < TD_CACHE_DIRTY_BATCH + 10; i++)
		add(cat, 100 + i, TD_CATALOG_DIRTY, -1, 0, id);
	uv_mutex_init(&lock);
	uv_loop_init(&loop);
	CHECK_INT(td_cache_dirty_scan(&loop, cat, &lock, CACHE, on_dirty, &f), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(f.calls, 1);
	CHECK_INT(f.n, TD_CACHE_DIRTY_BATCH);
	CHECK_INT(uv_loop_close(&loop), 0);
	uv_mutex_destroy(&lock);
	td_catalog_close(cat);
	td_test_rmtree(t);
}

/* One row of the old layout for test_migrate: a copy at objects/<aa>/<id>,
 * its dynamic link bound to it, the links directory 0711 root as before. */
static void old_copy(struct td_catalog *cat, const char *state, const char *data, unsigned n,
                     enum td_catalog_state st_, bool hydrated, char id_out[TD_CATALOG_ID_HEX])
{
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error err;
	char path[4400], cpath[4500], dir[4400];
	int fd;

	snprintf(e.id, sizeof(e.id), "%032x", n);
	snprintf(path, sizeof(path), "%s/f%u", data, n);
	snprintf(dir, sizeof(dir), "%s/objects/%.2s", CACHE, e.id);
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, e.id);
	REQUIRE(td_ns_mkdirs(dir, 0711) == 0);
	fd = open(cpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	CHECK_INT(td_write_full(fd, "0123456789", 10), 0);
	close(fd);
	e.state = st_;
	e.path = path;
	e.path_len = strlen(path);
	e.name = strrchr(path, '/') + 1;
	e.name_len = strlen(e.name);
	e.size = 10;
	e.uid = e.gid = 4321;
	e.mode = 0644;
	e.mtime_ns = 1000000000;
	{
		struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };

		utimensat(AT_FDCWD, cpath, ts, 0);
	}
	e.tiered_ns = 1000;
	if (hydrated) {
		e.ctime_ns = ctime_of(cpath);
	} else {
		e.ctime_ns = 500;
		usleep(20000);
		e.cache_atime_ns = td_now_ns();
	}
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	REQUIRE(td_ns_bind(state, e.id, e.name, e.name_len, cpath) == 0);
	snprintf(dir, sizeof(dir), "%s/links/%.2s/%s", state, e.id, e.id);
	chmod(dir, 0711);
	memcpy(id_out, e.id, TD_CATALOG_ID_HEX);
}

/* Copies of the old layout (objects/<aa>/<id>, reachable by anyone with the
 * id) move into copies/<aa>/<id>/<id> under the fold, their links follow,
 * clean copies stay clean (not recalled for the move's ctime), a dirty one
 * moves too, a copy with no row stays behind an objects/ made 0700, a .part
 * goes; a second call has nothing to do. */
static void test_migrate(void)
{
	const char *t = td_test_tmpdir("cache-migrate");
	char db[4200], state[4200], data[4200], hyd[33], mov[33], dirty[33], orphan[4400];
	char np[4400], ld[4400], cd[4400], bound[4400];
	struct td_catalog *cat = NULL;
	struct td_catalog_entry *e;
	struct td_catalog_error err;
	struct td_access_fold fl, fc;
	struct stat st;
	unsigned moved = 99;
	const char *ids[3];

	chmod(t, 0755);
	snprintf(CACHE, sizeof(CACHE), "%s/cache", t);
	snprintf(state, sizeof(state), "%s/state", t);
	snprintf(data, sizeof(data), "%s/data", t);
	snprintf(db, sizeof(db), "%s/catalog.db", t);
	mkdir(CACHE, 0711);
	mkdir(state, 0711);
	mkdir(data, 0750); /* others may not pass: the fold must say so */
	REQUIRE(td_catalog_open(&cat, db, TD_CATALOG_CREATE, &err) == 0);
	old_copy(cat, state, data, 0x11, TD_CATALOG_CACHED, true, hyd);
	old_copy(cat, state, data, 0x22, TD_CATALOG_CACHED, false, mov);
	old_copy(cat, state, data, 0x33, TD_CATALOG_DIRTY, true, dirty);
	snprintf(orphan, sizeof(orphan), "%s/objects/44/44%030x", CACHE, 0x44);
	snprintf(np, sizeof(np), "%s/objects/44", CACHE);
	REQUIRE(td_ns_mkdirs(np, 0711) == 0);
	REQUIRE(close(open(orphan, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) == 0);
	snprintf(np, sizeof(np), "%s/objects/00/%032x.part", CACHE, 0x11);
	REQUIRE(close(open(np, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) == 0);

	CHECK_INT(td_cache_migrate(cat, state, CACHE, &moved), 0);
	CHECK_INT(moved, 3);
	ids[0] = hyd;
	ids[1] = mov;
	ids[2] = dirty;
	for (int i = 0; i < 3; i++) {
		const char *id = ids[i];

		CHECK_INT(td_ns_cache_path(np, sizeof(np), CACHE, id), 0);
		CHECK_INT(stat(np, &st), 0);
		CHECK_INT(st.st_size, 10);
		REQUIRE(td_catalog_get(&e, cat, id, &err) == 0);
		CHECK_INT(td_ns_read(state, id, e->name, e->name_len, bound, sizeof(bound)) > 0, 1);
		CHECK_STR(bound, np);
		if (e->state == TD_CATALOG_CACHED)
			CHECK(td_cache_copy_unchanged(e, &st));
		td_catalog_entry_free(e);
		snprintf(ld, sizeof(ld), "%s/links/%.2s/%s", state, id, id);
		CHECK_INT(td_ns_cache_dir(cd, sizeof(cd), CACHE, id), 0);
		CHECK_INT(td_ns_fold_of(ld, &fl), 0);
		CHECK_INT(fl.uid, 4321);
		/* data is root:root 0750: only root's group passes (4321, unknown
		 * to the user database, may or may not be in it) */
		CHECK_INT(fl.gid, 0);
		CHECK_INT(fl.mode, 0010);
		CHECK_INT(td_ns_fold_of(cd, &fc), 0);
		CHECK_INT(fc.uid, fl.uid);
		CHECK_INT(fc.gid, fl.gid);
		CHECK_INT(fc.mode, fl.mode);
		snprintf(np, sizeof(np), "%s/objects/%.2s/%s", CACHE, id, id);
		CHECK(access(np, F_OK) < 0);
	}
	CHECK_INT(stat(orphan, &st), 0); /* no row: left, but behind a 0700 objects/ */
	snprintf(np, sizeof(np), "%s/objects", CACHE);
	CHECK_INT(stat(np, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0700);
	snprintf(np, sizeof(np), "%s/objects/00", CACHE);
	CHECK(access(np, F_OK) < 0); /* emptied: removed */
	CHECK_INT(td_cache_migrate(cat, state, CACHE, &moved), 0);
	CHECK_INT(moved, 0);
	td_catalog_close(cat);
	td_test_rmtree(t);
}

/* A tiered row whose dynamic link leads to its copy (a crash between a
 * hydration's rebind and its row): cached when the bytes are the object's,
 * dirty when written to (same size, mtime put back), untouched when the link
 * leads elsewhere. */
static void tiered_bound(struct td_catalog *cat, const char *state, unsigned n, const char *bytes,
                         bool bind_copy, char id_out[TD_CATALOG_ID_HEX])
{
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error err;
	unsigned char d[TD_SHA256_LEN];
	char path[64], cpath[4400], dir[4400];
	int fd;

	snprintf(e.id, sizeof(e.id), "%032x", n);
	snprintf(path, sizeof(path), "/srv/t%u", n);
	e.state = TD_CATALOG_TIERED;
	e.path = path;
	e.path_len = strlen(path);
	e.name = path + 5;
	e.name_len = strlen(e.name);
	e.size = 10;
	e.mtime_ns = 1000000000;
	e.tiered_ns = 1000;
	td_sha256("0123456789", 10, d);
	td_hex(e.sha256, d, sizeof(d));
	REQUIRE(td_ns_cache_path(cpath, sizeof(cpath), CACHE, e.id) == 0);
	snprintf(dir, sizeof(dir), "%s", cpath);
	*strrchr(dir, '/') = '\0';
	td_ns_mkdirs(dir, 0700);
	fd = open(cpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	CHECK_INT(td_write_full(fd, bytes, 10), 0);
	close(fd);
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	CHECK_INT(td_ns_bind(state, e.id, e.name, e.name_len,
	                     bind_copy ? cpath : "/nonexistent/remote/view"),
	          0);
	memcpy(id_out, e.id, TD_CATALOG_ID_HEX);
}

static void test_reconcile(void)
{
	const char *t = td_test_tmpdir("cache-reconcile");
	char db[4200], state[4200], clean[33], written[33], remote[33];
	struct td_catalog *cat = NULL;
	struct td_catalog_entry *e;
	struct td_catalog_error err;
	unsigned fixed = 99;

	snprintf(CACHE, sizeof(CACHE), "%s/cache", t);
	snprintf(state, sizeof(state), "%s/state", t);
	snprintf(db, sizeof(db), "%s/catalog.db", t);
	mkdir(CACHE, 0711);
	mkdir(state, 0711);
	REQUIRE(td_catalog_open(&cat, db, TD_CATALOG_CREATE, &err) == 0);
	tiered_bound(cat, state, 0x51, "0123456789", true, clean);
	tiered_bound(cat, state, 0x52, "01XYZ56789", true, written);
	tiered_bound(cat, state, 0x53, "0123456789", false, remote);
	CHECK_INT(td_cache_reconcile(cat, state, CACHE, &fixed), 0);
	CHECK_INT(fixed, 2);
	REQUIRE(td_catalog_get(&e, cat, clean, &err) == 0);
	CHECK_INT(e->state, TD_CATALOG_CACHED);
	CHECK_INT(e->cache_state, TD_CATALOG_CACHE_CACHED);
	td_catalog_entry_free(e);
	REQUIRE(td_catalog_get(&e, cat, written, &err) == 0);
	CHECK_INT(e->state, TD_CATALOG_DIRTY);
	CHECK_INT(e->cache_state, TD_CATALOG_CACHE_DIRTY);
	td_catalog_entry_free(e);
	REQUIRE(td_catalog_get(&e, cat, remote, &err) == 0);
	CHECK_INT(e->state, TD_CATALOG_TIERED);
	td_catalog_entry_free(e);
	/* Nothing left to do the second time. */
	CHECK_INT(td_cache_reconcile(cat, state, CACHE, &fixed), 0);
	CHECK_INT(fixed, 0);
	td_catalog_close(cat);
}

int main(void)
{
	TD_RUN(test_limit);
	TD_RUN(test_dirty_scan);
	TD_RUN(test_dirty_batch);
	TD_RUN(test_migrate);
	TD_RUN(test_reconcile);
	return td_test_done();
}
