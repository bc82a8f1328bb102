/* Unit tests for the catalog: fields, compare-and-set, transactions, crash
 * safety under SIGKILL, refusal of damaged/foreign/newer files, migrations. */
#include "catalog.h"
#include "catalog_internal.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[4096];

static int count_rows(struct td_catalog *cat);

static const char *tpath(const char *name)
{
	/* A ring, so a few results may be used at once; copy one to keep it. */
	static char p[8][4200];
	static int k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static bool exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

/* Reads a whole file; *len receives its size. NULL if it cannot be read. */
static char *slurp(const char *p, size_t *len)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;

	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && td_pread_full(fd, buf, (size_t)st.st_size, 0) < 0) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static int spit(const char *p, const void *data, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return -errno;
	r = td_write_full(fd, data, len);
	close(fd);
	return r;
}

/* Runs SQL on a file with plain SQLite, bypassing the catalog's checks. */
static int raw_sql(const char *p, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static int64_t raw_int(const char *p, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	/* Read-write: a read-only connection cannot create the WAL index. */
	if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void make_id(char id[TD_CATALOG_ID_HEX], unsigned n)
{
	snprintf(id, TD_CATALOG_ID_HEX, "%032x", n);
}

/* A minimal valid entry. */
static void basic(struct td_catalog_entry *e, unsigned n, const char *path)
{
	memset(e, 0, sizeof(*e));
	make_id(e->id, n);
	e->state = TD_CATALOG_LOCAL;
	e->path = path;
	e->path_len = strlen(path);
	e->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	e->name_len = strlen(e->name);
}

static struct td_catalog *open_new(const char *name)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	int r = td_catalog_open(&cat, tpath(name), TD_CATALOG_CREATE, &err);

	if (r < 0)
		printf("  open %s: %d %s\n", name, r, err.message);
	return cat;
}

/* Creates catalog `name`, empty, and closes it: returns its path (tpath's
 * ring: copy it to keep it), or NULL when it cannot be created. */
static const char *make_closed(const char *name)
{
	struct td_catalog *cat = open_new(name);

	if (!cat)
		return NULL;
	td_catalog_close(cat);
	return tpath(name);
}

static bool opt_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool bytes_eq(const char *a, size_t al, const char *b, size_t bl)
{
	return al == bl && (al == 0 || (a && b && memcmp(a, b, al) == 0)) &&
	       (!a || a[al] == '\0' || a == b);
}

static void check_same(const struct td_catalog_entry *a, const struct td_catalog_entry *b)
{
	CHECK_STR(a->id, b->id);
	CHECK_INT(a->state, b->state);
	CHECK_INT(a->step, b->step);
	CHECK(opt_eq(a->policy, b->policy));
	CHECK(bytes_eq(a->path, a->path_len, b->path, b->path_len));
	CHECK(bytes_eq(a->name, a->name_len, b->name, b->name_len));
	CHECK(a->dev == b->dev);
	CHECK(a->ino == b->ino);
	CHECK(a->size == b->size);
	CHECK_INT(a->mode, b->mode);
	CHECK_INT(a->uid, b->uid);
	CHECK_INT(a->gid, b->gid);
	CHECK_INT(a->atime_ns, b->atime_ns);
	CHECK_INT(a->mtime_ns, b->mtime_ns);
	CHECK_INT(a->ctime_ns, b->ctime_ns);
	CHECK_STR(a->sha256, b->sha256);
	CHECK(opt_eq(a->target, b->target));
	CHECK(opt_eq(a->object_key, b->object_key));
	CHECK(opt_eq(a->etag, b->etag));
	CHECK(opt_eq(a->version_id, b->version_id));
	CHECK_INT(a->created_ns, b->created_ns);
	CHECK_INT(a->tiered_ns, b->tiered_ns);
	CHECK_INT(a->cache_state, b->cache_state);
	CHECK(a->cached_bytes == b->cached_bytes);
	CHECK_INT(a->pinned, b->pinned);
	CHECK_INT(a->cache_atime_ns, b->cache_atime_ns);
	CHECK_INT(a->link_seen_ns, b->link_seen_ns);
	CHECK(bytes_eq(a->link_seen_path, a->link_seen_path_len, b->link_seen_path,
	               b->link_seen_path_len));
	CHECK_INT(a->error_count, b->error_count);
	CHECK(opt_eq(a->last_error, b->last_error));
	CHECK_INT(a->last_error_ns, b->last_error_ns);
}

static void test_create_and_missing(void)
{
	const char *p = tpath("new.db");
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct stat st;
	int r;

	r = td_catalog_open(&cat, p, 0, &err);
	CHECK_INT(r, -ENOENT);
	CHECK(cat == NULL);
	CHECK_CONTAINS(err.message, p);
	CHECK_CONTAINS(err.message, "does not exist");
	CHECK(!exists(p));

	r = td_catalog_open(&cat, tpath("no/such/dir.db"), TD_CATALOG_CREATE, &err);
	CHECK_INT(r, -ENOENT);
	CHECK_CONTAINS(err.message, "no/such/dir.db");

	r = td_catalog_open(&cat, p, TD_CATALOG_CREATE, &err);
	REQUIRE(r == 0);
	REQUIRE(stat(p, &st) == 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK(!exists(tpath("new.db.new")));
	td_catalog_close(cat);
	CHECK(!exists(tpath("new.db-wal"))); /* a clean close checkpoints the WAL away */

	CHECK_INT(raw_int(p, "PRAGMA user_version"), TD_CATALOG_SCHEMA_VERSION);
	CHECK_INT(raw_int(p, "PRAGMA application_id"), 0x74696572);
	CHECK_INT(raw_int(p, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'"),
	          1);

	/* Reopening, with or without CREATE, keeps the same catalog. */
	cat = NULL;
	r = td_catalog_open(&cat, p, TD_CATALOG_CREATE, &err);
	REQUIRE(r == 0);
	{
		struct td_catalog_entry e;
		basic(&e, 1, "/srv/a");
		CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	}
	td_catalog_close(cat);
	cat = NULL;
	r = td_catalog_open(&cat, p, 0, &err);
	REQUIRE(r == 0);
	{
		struct td_catalog_entry *g = NULL;
		char id[TD_CATALOG_ID_HEX];
		make_id(id, 1);
		CHECK_INT(td_catalog_get(&g, cat, id, &err), 0);
		td_catalog_entry_free(g);
	}
	td_catalog_close(cat);
}

/* A crashed creation's leftover is discarded; racing creators share one catalog. */
static void test_create_race(void)
{
	char p[4200], stale[4300];
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	pid_t pids[4];
	int status;

	snprintf(p, sizeof(p), "%s", tpath("race.db"));
	snprintf(stale, sizeof(stale), "%s.new", p);
	REQUIRE(spit(stale, "half-made garbage", 17) == 0);
	fflush(stdout);
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		REQUIRE(pids[i] >= 0);
		if (pids[i] == 0) {
			struct td_catalog_entry e;
			char path[32];
			snprintf(path, sizeof(path), "/child/%d", i);
			basic(&e, (unsigned)i + 1, path);
			if (td_catalog_open(&cat, p, TD_CATALOG_CREATE, &err) < 0) {
				printf("  child %d: %s\n", i, err.message);
				fflush(stdout);
				_exit(1);
			}
			if (td_catalog_insert(cat, &e, &err) < 0) {
				printf("  child %d: insert: %s\n", i, err.message);
				fflush(stdout);
				_exit(2);
			}
			_exit(0);
		}
	}
	for (int i = 0; i < 4; i++) {
		CHECK_INT(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			printf("  child %d: %s %d\n", i, WIFEXITED(status) ? "exit" : "signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK(!exists(stale));
	REQUIRE(td_catalog_open(&cat, p, 0, &err) == 0);
	CHECK_INT(count_rows(cat), 4);
	td_catalog_close(cat);
}

static void test_round_trip(void)
{
	struct td_catalog *cat = open_new("rt.db");
	struct td_catalog_entry e, *g = NULL, *m = NULL;
	struct td_catalog_error err;
	char *longpath = malloc(4001);
	int64_t before = td_now_ns();
	/* A newline, invalid UTF-8 and a tab: paths are bytes. */
	static const char weird[] = "/srv/data/bad\nname\xff\xfe\tx.dat";
	static const char seen[] = "/home/u/copy\xc3\x28\n.lnk";

	REQUIRE(cat && longpath);
	memset(&e, 0, sizeof(e));
	REQUIRE(td_catalog_new_id(e.id) == 0);
	CHECK_INT(strlen(e.id), 32);
	e.state = TD_CATALOG_MIGRATING;
	e.step = 4;
	e.policy = "projects";
	e.path = weird;
	e.path_len = sizeof(weird) - 1;
	e.name = "bad\nname\xff\xfe\tx.dat";
	e.name_len = strlen(e.name);
	e.dev = 0xfedcba9876543210ull;
	e.ino = UINT64_MAX;
	e.size = (1ull << 40) + 3;
	e.mode = 0100640;
	e.uid = 4000000000u;
	e.gid = 100000;
	e.atime_ns = -5; /* before 1970 */
	e.mtime_ns = 1700000000123456789;
	e.ctime_ns = 1700000001987654321;
	snprintf(e.sha256, sizeof(e.sha256), "%s",
	         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	e.target = "archive";
	e.object_key = "host1/ab/0123456789abcdef0123456789abcdef";
	e.etag = "\"9b2cf535f27731c974343645a3985328-3\"";
	e.version_id = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY";
	e.created_ns = 1600000000000000001;
	e.tiered_ns = 1600000000000000002;
	e.cache_state = TD_CATALOG_CACHE_DIRTY;
	e.cached_bytes = (1ull << 40) + 1;
	e.pinned = true;
	e.cache_atime_ns = 1600000000000000003;
	e.link_seen_ns = 1600000000000000004;
	e.link_seen_path = seen;
	e.link_seen_path_len = sizeof(seen) - 1;
	e.error_count = 7;
	e.last_error = "upload: 503 SlowDown";
	e.last_error_ns = 1600000000000000005;
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);

	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	check_same(g, &e);
	CHECK(g->updated_ns >= before && g->updated_ns <= td_now_ns());
	td_catalog_entry_free(g);
	g = NULL;

	/* The other lookups find the same row. */
	REQUIRE(td_catalog_get_by_path(&g, cat, weird, sizeof(weird) - 1, &err) == 0);
	CHECK_STR(g->id, e.id);
	td_catalog_entry_free(g);
	g = NULL;
	CHECK_INT(td_catalog_get_by_path(&g, cat, weird, 5, &err), -ENOENT);
	REQUIRE(td_catalog_get_by_inode(&g, cat, e.dev, e.ino, &err) == 0);
	CHECK_STR(g->id, e.id);
	td_catalog_entry_free(g);
	g = NULL;
	REQUIRE(td_catalog_get_by_object(&g, cat, "archive", e.object_key, &err) == 0);
	CHECK_STR(g->id, e.id);
	td_catalog_entry_free(g);
	g = NULL;
	CHECK_INT(td_catalog_get_by_object(&g, cat, "nas", e.object_key, &err), -ENOENT);

	/* A 4000-byte path, and a row with every optional field empty. */
	memset(longpath, 'p', 4000);
	for (int i = 0; i < 4000; i += 100)
		longpath[i] = '/';
	longpath[4000] = '\0';
	basic(&e, 42, longpath);
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	REQUIRE(td_catalog_get(&m, cat, e.id, &err) == 0);
	CHECK_INT(m->path_len, 4000);
	CHECK(memcmp(m->path, longpath, 4000) == 0);
	CHECK(m->policy == NULL && m->target == NULL && m->object_key == NULL && m->etag == NULL &&
	      m->version_id == NULL && m->link_seen_path == NULL && m->last_error == NULL);
	CHECK_STR(m->sha256, "");
	CHECK(m->created_ns >= before);
	e.created_ns = m->created_ns;
	check_same(m, &e);
	td_catalog_entry_free(m);

	/* Durable across close and reopen. */
	td_catalog_close(cat);
	cat = NULL;
	REQUIRE(td_catalog_open(&cat, tpath("rt.db"), 0, &err) == 0);
	REQUIRE(td_catalog_get_by_path(&g, cat, longpath, 4000, &err) == 0);
	CHECK_STR(g->id, e.id);
	td_catalog_entry_free(g);
	td_catalog_close(cat);
	free(longpath);
}

static void test_validation(void)
{
	struct td_catalog *cat = open_new("val.db");
	struct td_catalog_entry e;
	struct td_catalog_error err;
	char *huge = malloc(TD_CATALOG_PATH_MAX + 2);

	REQUIRE(cat && huge);
	basic(&e, 1, "/a/b");
	strcpy(e.id, "0123456789ABCDEF0123456789abcdef"); /* uppercase: not ours */
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);
	CHECK_CONTAINS(err.message, "invalid id");
	make_id(e.id, 1);
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EEXIST);
	CHECK(err.sqlite_code == SQLITE_CONSTRAINT_PRIMARYKEY);
	CHECK_CONTAINS(err.message, tpath("val.db"));

	basic(&e, 2, "/a/b");
	e.path = "/a\0b";
	e.path_len = 4;
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);
	basic(&e, 2, "/a/b");
	e.name = "x/y";
	e.name_len = 3;
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);
	basic(&e, 2, "/a/b");
	e.path_len = 0;
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);
	memset(huge, 'x', TD_CATALOG_PATH_MAX + 1);
	huge[0] = '/';
	huge[TD_CATALOG_PATH_MAX + 1] = '\0';
	basic(&e, 2, huge);
	e.name = "x";
	e.name_len = 1;
	CHECK_INT(td_catalog_insert(cat, &e, &err), -ENAMETOOLONG);
	basic(&e, 2, "/a/b");
	strcpy(e.sha256, "abc");
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);
	basic(&e, 2, "/a/b");
	e.state = TD_CATALOG_STATE_COUNT;
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EINVAL);

	/* One object belongs to one row. */
	basic(&e, 3, "/a/c");
	e.target = "t";
	e.object_key = "k";
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	basic(&e, 4, "/a/d");
	e.target = "t";
	e.object_key = "k";
	CHECK_INT(td_catalog_insert(cat, &e, &err), -EEXIST);
	e.target = "u";
	CHECK_INT(td_catalog_insert(cat, &e, &err), 0);
	td_catalog_close(cat);
	free(huge);
}

static void test_cas(void)
{
	struct td_catalog *cat = open_new("cas.db");
	struct td_catalog_entry e, *g = NULL;
	struct td_catalog_error err;
	struct td_catalog_expect x;
	char missing[TD_CATALOG_ID_HEX];
	int64_t t0;

	REQUIRE(cat);
	basic(&e, 7, "/srv/x");
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	t0 = g->updated_ns;
	td_catalog_entry_free(g);
	g = NULL;

	/* Wrong expected state: nothing changes. */
	CHECK_INT(td_catalog_set_state(cat, e.id, TD_CATALOG_TIERED, TD_CATALOG_CACHED, 0, &err),
	          -ESTALE);
	CHECK_CONTAINS(err.message, e.id);
	CHECK_CONTAINS(err.message, "it is local");
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK_INT(g->state, TD_CATALOG_LOCAL);
	td_catalog_entry_free(g);
	g = NULL;

	CHECK_INT(td_catalog_set_state(cat, e.id, TD_CATALOG_LOCAL, TD_CATALOG_MIGRATING, 1, &err),
	          0);
	/* Steps within a state: the step is part of the condition. */
	e.state = TD_CATALOG_MIGRATING;
	e.step = 3;
	x = (struct td_catalog_expect){ TD_CATALOG_MIGRATING, 2 };
	CHECK_INT(td_catalog_update(cat, &e, TD_CATALOG_F_STATE, &x, &err), -ESTALE);
	x.step = 1;
	CHECK_INT(td_catalog_update(cat, &e, TD_CATALOG_F_STATE, &x, &err), 0);
	CHECK_INT(td_catalog_update(cat, &e, TD_CATALOG_F_STATE, &x, &err), -ESTALE);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK_INT(g->state, TD_CATALOG_MIGRATING);
	CHECK_INT(g->step, 3);
	CHECK(g->updated_ns >= t0);
	td_catalog_entry_free(g);
	g = NULL;
	x = (struct td_catalog_expect){ TD_CATALOG_MIGRATING, TD_CATALOG_ANY };
	e.state = TD_CATALOG_TIERED;
	e.step = 0;
	CHECK_INT(td_catalog_update(cat, &e, TD_CATALOG_F_STATE, &x, &err), 0);

	make_id(missing, 999);
	CHECK_INT(td_catalog_set_state(cat, missing, TD_CATALOG_LOCAL, TD_CATALOG_TIERED, 0, &err),
	          -ENOENT);
	CHECK_INT(td_catalog_set_state(cat, "nope", TD_CATALOG_LOCAL, TD_CATALOG_TIERED, 0, &err),
	          -EINVAL);

	/* Delete is conditional too. */
	x = (struct td_catalog_expect){ TD_CATALOG_LOCAL, TD_CATALOG_ANY };
	CHECK_INT(td_catalog_delete(cat, e.id, &x, &err), -ESTALE);
	x.state = TD_CATALOG_TIERED;
	CHECK_INT(td_catalog_delete(cat, e.id, &x, &err), 0);
	CHECK_INT(td_catalog_delete(cat, e.id, NULL, &err), -ENOENT);
	CHECK_INT(td_catalog_get(&g, cat, e.id, &err), -ENOENT);
	td_catalog_close(cat);
}

static void test_update_fields(void)
{
	struct td_catalog *cat = open_new("upd.db");
	struct td_catalog_entry e, u, *g = NULL;
	struct td_catalog_error err;
	char longerr[3000];

	REQUIRE(cat);
	basic(&e, 5, "/srv/y");
	e.size = 1234;
	e.policy = "p";
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);

	/* Only the named groups change. */
	u = (struct td_catalog_entry){ 0 };
	strcpy(u.id, e.id);
	u.size = 999; /* F_STAT not requested: must stay 1234 */
	u.cache_state = TD_CATALOG_CACHE_CACHED;
	u.cached_bytes = 1234;
	u.cache_atime_ns = 77;
	u.target = "nas";
	u.object_key = "k/5";
	u.etag = "e";
	u.tiered_ns = 55;
	CHECK_INT(td_catalog_update(cat, &u,
	                            TD_CATALOG_F_CACHE | TD_CATALOG_F_OBJECT | TD_CATALOG_F_TIERED,
	                            NULL, &err),
	          0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK_INT(g->size, 1234);
	CHECK_STR(g->policy, "p");
	CHECK_INT(g->cache_state, TD_CATALOG_CACHE_CACHED);
	CHECK_INT(g->cached_bytes, 1234);
	CHECK_INT(g->cache_atime_ns, 77);
	CHECK_INT(g->pinned, 0);
	CHECK_STR(g->target, "nas");
	CHECK_STR(g->object_key, "k/5");
	CHECK_STR(g->etag, "e");
	CHECK(g->version_id == NULL);
	CHECK_INT(g->tiered_ns, 55);
	td_catalog_entry_free(g);
	g = NULL;

	u.pinned = true;
	CHECK_INT(td_catalog_update(cat, &u, TD_CATALOG_F_PIN, NULL, &err), 0);
	CHECK_INT(td_catalog_link_seen(cat, e.id, "/srv/moved\n", 11, 123456, &err), 0);
	CHECK_INT(td_catalog_add_error(cat, e.id, "first", &err), 0);
	memset(longerr, 'e', sizeof(longerr) - 1);
	longerr[sizeof(longerr) - 1] = '\0';
	CHECK_INT(td_catalog_add_error(cat, e.id, longerr, &err), 0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK_INT(g->pinned, 1);
	CHECK_INT(g->cache_state, TD_CATALOG_CACHE_CACHED);
	CHECK_INT(g->link_seen_ns, 123456);
	CHECK(bytes_eq(g->link_seen_path, g->link_seen_path_len, "/srv/moved\n", 11));
	CHECK_INT(g->error_count, 2);
	CHECK_INT(strlen(g->last_error), TD_CATALOG_ERROR_MAX);
	CHECK(g->last_error_ns > 0);
	td_catalog_entry_free(g);

	CHECK_INT(td_catalog_update(cat, &u, 0, NULL, &err), -EINVAL);
	CHECK_INT(td_catalog_update(cat, &u, 1u << 20, NULL, &err), -EINVAL);
	td_catalog_close(cat);
}

struct tally {
	int n;
	int per_state[TD_CATALOG_STATE_COUNT];
	char last[TD_CATALOG_ID_HEX];
	bool ordered;
	int stop_at;
};

static int count_cb(void *u, const struct td_catalog_entry *e)
{
	struct tally *t = u;

	if (t->last[0] && strcmp(t->last, e->id) >= 0)
		t->ordered = false;
	memcpy(t->last, e->id, TD_CATALOG_ID_HEX);
	t->per_state[e->state]++;
	t->n++;
	return t->stop_at && t->n == t->stop_at ? 42 : 0;
}

static void test_iterate_and_stats(void)
{
	struct td_catalog *cat = open_new("iter.db");
	struct td_catalog_entry e;
	struct td_catalog_error err;
	struct td_catalog_stats s;
	struct td_catalog_filter f = TD_CATALOG_FILTER_ALL;
	struct tally t;
	uint64_t bytes[TD_CATALOG_STATE_COUNT] = { 0 };
	int files[TD_CATALOG_STATE_COUNT] = { 0 };
	char path[64], after[TD_CATALOG_ID_HEX];
	int pages = 0;

	REQUIRE(cat);
	REQUIRE(td_catalog_begin(cat, &err) == 0);
	for (unsigned i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), "/srv/f%u", i);
		basic(&e, i * 7919 % 1000 + 1, path); /* ids not in insertion order */
		e.state = (enum td_catalog_state)(i % TD_CATALOG_STATE_COUNT);
		e.size = i * 1000ull;
		e.policy = i % 3 ? "a" : "b";
		e.link_seen_ns = i < 10 ? 0 : 1000;
		files[e.state]++;
		bytes[e.state] += e.size;
		REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	}
	REQUIRE(td_catalog_commit(cat, &err) == 0);

	REQUIRE(td_catalog_stats(&s, cat, &err) == 0);
	for (int i = 0; i < TD_CATALOG_STATE_COUNT; i++) {
		CHECK_INT(s.files[i], files[i]);
		CHECK_INT(s.bytes[i], bytes[i]);
	}

	memset(&t, 0, sizeof(t));
	t.ordered = true;
	CHECK_INT(td_catalog_foreach(cat, NULL, count_cb, &t, &err), 0);
	CHECK_INT(t.n, 300);
	CHECK(t.ordered);

	memset(&t, 0, sizeof(t));
	f.state = TD_CATALOG_TIERED;
	CHECK_INT(td_catalog_foreach(cat, &f, count_cb, &t, &err), 0);
	CHECK_INT(t.n, files[TD_CATALOG_TIERED]);
	CHECK_INT(t.per_state[TD_CATALOG_TIERED], t.n);

	memset(&t, 0, sizeof(t));
	f = (struct td_catalog_filter)TD_CATALOG_FILTER_ALL;
	f.policy = "b";
	CHECK_INT(td_catalog_foreach(cat, &f, count_cb, &t, &err), 0);
	CHECK_INT(t.n, 100);

	memset(&t, 0, sizeof(t));
	f = (struct td_catalog_filter)TD_CATALOG_FILTER_ALL;
	f.link_seen_before_ns = 500;
	CHECK_INT(td_catalog_foreach(cat, &f, count_cb, &t, &err), 0);
	CHECK_INT(t.n, 10);

	/* Stopping early returns the callback's value. */
	memset(&t, 0, sizeof(t));
	t.stop_at = 5;
	CHECK_INT(td_catalog_foreach(cat, NULL, count_cb, &t, &err), 42);
	CHECK_INT(t.n, 5);

	/* Paging visits every row exactly once, in order. */
	memset(&t, 0, sizeof(t));
	t.ordered = true;
	f = (struct td_catalog_filter)TD_CATALOG_FILTER_ALL;
	f.limit = 7;
	while (pages <= 100) {
		int before = t.n;
		REQUIRE(td_catalog_foreach(cat, &f, count_cb, &t, &err) == 0);
		if (t.n == before)
			break;
		CHECK(t.n - before <= 7);
		/* after_id is read during the call only; t.last changes in the next. */
		memcpy(after, t.last, sizeof(after));
		f.after_id = after;
		pages++;
	}
	CHECK_INT(t.n, 300);
	CHECK(t.ordered);
	CHECK_INT(pages, 43);
	td_catalog_close(cat);
}

static int count_rows(struct td_catalog *cat)
{
	struct tally t = { 0 };
	struct td_catalog_error err;

	if (td_catalog_foreach(cat, NULL, count_cb, &t, &err) != 0)
		return -1;
	return t.n;
}

static void test_transactions(void)
{
	struct td_catalog *a = open_new("txn.db"), *b = NULL;
	struct td_catalog_entry e;
	struct td_catalog_error err;
	char path[32];

	REQUIRE(a);
	REQUIRE(td_catalog_open(&b, tpath("txn.db"), TD_CATALOG_NO_CHECK, &err) == 0);
	CHECK_INT(td_catalog_commit(a, &err), -EINVAL);
	CHECK_INT(td_catalog_rollback(a, &err), 0);

	REQUIRE(td_catalog_begin(a, &err) == 0);
	CHECK_INT(td_catalog_begin(a, &err), -EALREADY);
	for (unsigned i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "/r/%u", i);
		basic(&e, i + 1, path);
		CHECK_INT(td_catalog_insert(a, &e, &err), 0);
	}
	CHECK_INT(count_rows(a), 10); /* a sees its own changes */
	CHECK_INT(count_rows(b), 0);  /* b does not see uncommitted ones */
	CHECK_INT(td_catalog_rollback(a, &err), 0);
	CHECK_INT(count_rows(a), 0);

	REQUIRE(td_catalog_begin(a, &err) == 0);
	for (unsigned i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "/c/%u", i);
		basic(&e, i + 1, path);
		CHECK_INT(td_catalog_insert(a, &e, &err), 0);
	}
	CHECK_INT(td_catalog_commit(a, &err), 0);
	CHECK_INT(count_rows(b), 10);

	/* Closing with an open transaction rolls it back. */
	REQUIRE(td_catalog_begin(a, &err) == 0);
	basic(&e, 100, "/lost");
	CHECK_INT(td_catalog_insert(a, &e, &err), 0);
	td_catalog_close(a);
	CHECK_INT(count_rows(b), 10);
	td_catalog_close(b);
}

/* ---- one handle per thread ----------------------------------------------------- */

struct worker {
	const char *path;
	int n;
	int failures;
};

/* Each thread opens its own handle (the documented rule) and writes in small
 * transactions; concurrent writers wait on each other through the busy timeout. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct td_catalog_entry e;
	char path[64];

	if (td_catalog_open(&cat, w->path, TD_CATALOG_NO_CHECK, &err) < 0) {
		w->failures++;
		return NULL;
	}
	for (int t = 0; t < 20; t++) {
		if (td_catalog_begin(cat, &err) < 0) {
			w->failures++;
			continue;
		}
		for (int i = 0; i < 10; i++) {
			snprintf(path, sizeof(path), "/t%d/%d", w->n, t * 10 + i);
			basic(&e, 0, path);
			if (td_catalog_new_id(e.id) < 0 || td_catalog_insert(cat, &e, &err) < 0)
				w->failures++;
		}
		if (td_catalog_commit(cat, &err) < 0)
			w->failures++;
		/* A CAS on a row the other threads race for: whoever wins puts it back. */
		make_id(e.id, 0xabc);
		if (td_catalog_set_state(cat, e.id, TD_CATALOG_LOCAL, TD_CATALOG_MIGRATING, 1,
		                         &err) == 0 &&
		    td_catalog_set_state(cat, e.id, TD_CATALOG_MIGRATING, TD_CATALOG_LOCAL, 0,
		                         &err) < 0)
			w->failures++;
	}
	td_catalog_close(cat);
	return NULL;
}

static void test_threads(void)
{
	char p[4200];
	struct td_catalog *cat = open_new("threads.db");
	struct td_catalog_entry e;
	struct td_catalog_error err;
	struct worker w[4];
	pthread_t th[4];

	REQUIRE(cat);
	snprintf(p, sizeof(p), "%s", tpath("threads.db"));
	basic(&e, 0xabc, "/shared");
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .path = p, .n = i };
		REQUIRE(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(w[i].failures, 0);
	}
	CHECK_INT(count_rows(cat), 4 * 200 + 1);
	CHECK_INT(td_catalog_check(cat, &err), 0);
	td_catalog_close(cat);
}

/* ---- SIGKILL mid-transaction --------------------------------------------------- */

/* Transaction t of a round inserts this many rows: some small, some big enough
 * (with long paths) that SQLite spills uncommitted pages into the WAL. */
static int group_rows(int t)
{
	return t % 4 == 0 ? 1500 : 40;
}

static void counter_id(char id[TD_CATALOG_ID_HEX], int round)
{
	snprintf(id, TD_CATALOG_ID_HEX, "%032x", 0xc0000 + round);
}

/* The child: transactions of inserts plus an update of the round's counter row
 * (step = number of the last committed transaction). Never returns. */
static void writer(const char *p, int round, int signal_t, int wfd, int hold_fd)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct td_catalog_entry e;
	char path[2100], policy[32];

	if (td_catalog_open(&cat, p, TD_CATALOG_NO_CHECK, &err) < 0)
		_exit(2);
	memset(path, 'q', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	for (int t = 1;; t++) {
		if (td_catalog_begin(cat, &err) < 0)
			_exit(3);
		snprintf(policy, sizeof(policy), "r%dg%d", round, t);
		for (int i = 0; i < group_rows(t); i++) {
			basic(&e, 0, path);
			if (td_catalog_new_id(e.id) < 0)
				_exit(4);
			e.policy = policy;
			e.name = "qqq";
			e.name_len = 3;
			if (td_catalog_insert(cat, &e, &err) < 0)
				_exit(5);
			if (t == signal_t && i == group_rows(t) / 2) {
				char c = 'x';
				if (write(wfd, &c, 1) != 1)
					_exit(6);
				/* Hold the transaction open until killed. */
				if (hold_fd >= 0 && read(hold_fd, &c, 1) >= 0)
					_exit(7);
			}
		}
		memset(&e, 0, sizeof(e));
		counter_id(e.id, round);
		e.state = TD_CATALOG_TIERED;
		e.step = t;
		if (td_catalog_update(cat, &e, TD_CATALOG_F_STATE, NULL, &err) < 0)
			_exit(8);
		if (td_catalog_commit(cat, &err) < 0)
			_exit(9);
	}
}

struct groups {
	int round;
	int count[4096];
};

static int group_cb(void *u, const struct td_catalog_entry *e)
{
	struct groups *g = u;
	int r, t;

	if (e->policy && sscanf(e->policy, "r%dg%d", &r, &t) == 2 && r == g->round && t > 0 &&
	    t < 4096)
		g->count[t]++;
	return 0;
}

static void kill_round(const char *p, int round, int signal_t, bool hold)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct td_catalog_entry e, *g = NULL;
	static struct groups groups;
	int sig[2], holdp[2], status = 0, committed;
	char c;
	pid_t pid;

	REQUIRE(td_catalog_open(&cat, p, 0, &err) == 0);
	basic(&e, 0, "/counter");
	counter_id(e.id, round);
	e.state = TD_CATALOG_TIERED;
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	td_catalog_close(cat);
	cat = NULL;

	REQUIRE(pipe2(sig, O_CLOEXEC) == 0 && pipe2(holdp, O_CLOEXEC) == 0);
	fflush(stdout);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(sig[0]);
		close(holdp[1]);
		writer(p, round, signal_t, sig[1], hold ? holdp[0] : -1);
		_exit(1);
	}
	close(sig[1]);
	close(holdp[0]);
	CHECK_INT(read(sig[0], &c, 1), 1); /* the child is mid-transaction */
	CHECK_INT(kill(pid, SIGKILL), 0);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(sig[0]);
	close(holdp[1]);

	/* Opening runs quick_check; td_catalog_check the full integrity_check. */
	REQUIRE(td_catalog_open(&cat, p, 0, &err) == 0);
	CHECK_INT(td_catalog_check(cat, &err), 0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	committed = g->step;
	td_catalog_entry_free(g);
	memset(&groups, 0, sizeof(groups));
	groups.round = round;
	CHECK_INT(td_catalog_foreach(cat, NULL, group_cb, &groups, &err), 0);
	/* All of every committed transaction, none of any other. */
	CHECK(committed >= signal_t - 1);
	if (hold)
		CHECK_INT(committed, signal_t - 1);
	for (int t = 1; t < 4096; t++)
		if (groups.count[t] != (t <= committed ? group_rows(t) : 0)) {
			printf("  round %d: transaction %d has %d rows, committed %d\n", round, t,
			       groups.count[t], committed);
			CHECK(false);
			break;
		}
	td_catalog_close(cat);
}

static void test_sigkill(void)
{
	const char *p = make_closed("kill.db");

	REQUIRE(p);
	/* Held mid-transaction (a big one, spilled to the WAL), then killed. */
	kill_round(p, 0, 4, true);
	kill_round(p, 1, 3, true);
	/* Killed while still writing: the kill lands wherever the child is. */
	for (int round = 2; round < 8; round++)
		kill_round(p, round, round % 5 + 1, false);
}

/* ---- refusing files ------------------------------------------------------------ */

/* Opening `p` (with and without CREATE) fails with `want`, names the file, and
 * leaves its bytes as they were. */
static void check_refused(const char *p, int want, const char *why)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	size_t n0 = 0, n1 = 0;
	struct stat st;
	bool is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	char *before = is_dir ? NULL : slurp(p, &n0), *after = NULL;
	unsigned flags[] = { 0, TD_CATALOG_CREATE };

	REQUIRE(is_dir || before);
	for (size_t i = 0; i < TD_ARRAY_SIZE(flags); i++) {
		int r = td_catalog_open(&cat, p, flags[i], &err);
		CHECK_INT(r, want);
		CHECK(cat == NULL);
		CHECK_CONTAINS(err.message, p);
		CHECK_CONTAINS(err.message, why);
		CHECK_STR(err.path, p);
		if (i == 0)
			printf("  refused as expected: %s\n", err.message);
	}
	/* No side files left behind either. */
	{
		char side[4300];
		snprintf(side, sizeof(side), "%s-wal", p);
		CHECK(!exists(side));
		snprintf(side, sizeof(side), "%s-shm", p);
		CHECK(!exists(side));
		snprintf(side, sizeof(side), "%s.new", p);
		CHECK(!exists(side));
	}
	if (is_dir) {
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
		return;
	}
	after = slurp(p, &n1);
	CHECK_INT(n1, n0);
	CHECK(n0 == n1 && (n0 == 0 || memcmp(before, after, n0) == 0));
	free(before);
	free(after);
}

static void test_corrupt(void)
{
	char good[4200];
	struct td_catalog *cat = open_new("good.db");
	struct td_catalog_entry e;
	struct td_catalog_error err;
	char path[300], *bytes, garbage[8192];
	size_t n = 0;

	REQUIRE(cat);
	snprintf(good, sizeof(good), "%s", tpath("good.db"));
	REQUIRE(td_catalog_begin(cat, &err) == 0);
	for (unsigned i = 0; i < 2000; i++) {
		snprintf(path, sizeof(path), "/srv/data/projects/some/deeper/dir/%u/file-%u.bin",
		         i % 17, i);
		basic(&e, i + 1, path);
		e.sha256[0] = '\0';
		e.target = "archive";
		REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	}
	REQUIRE(td_catalog_commit(cat, &err) == 0);
	td_catalog_close(cat);
	bytes = slurp(good, &n);
	REQUIRE(bytes && n > 16 * 4096);

	/* Truncated real catalogs: at a page boundary and mid-page. */
	REQUIRE(spit(tpath("trunc.db"), bytes, n / 2 / 4096 * 4096) == 0);
	check_refused(tpath("trunc.db"), -EUCLEAN, "damaged");
	REQUIRE(spit(tpath("trunc2.db"), bytes, n / 2 + 100) == 0);
	check_refused(tpath("trunc2.db"), -EUCLEAN, "damaged");

	/* Pages overwritten with garbage in the middle. */
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(i * 131 + 7);
	memcpy(bytes + 5 * 4096, garbage, sizeof(garbage));
	REQUIRE(spit(tpath("smashed.db"), bytes, n) == 0);
	check_refused(tpath("smashed.db"), -EUCLEAN, "damaged");
	free(bytes);

	REQUIRE(spit(tpath("garbage.db"), garbage, sizeof(garbage)) == 0);
	check_refused(tpath("garbage.db"), -EBADMSG, "not an SQLite database");

	/* The SQLite magic followed by garbage. */
	memcpy(garbage, "SQLite format 3", 16);
	REQUIRE(spit(tpath("magic.db"), garbage, sizeof(garbage)) == 0);
	check_refused(tpath("magic.db"), -EBADMSG, "not a tierd catalog");

	/* Zero bytes: SQLite would take it for a new database; we refuse it. */
	REQUIRE(spit(tpath("empty.db"), "", 0) == 0);
	check_refused(tpath("empty.db"), -EBADMSG, "empty");

	/* A real SQLite database of another program. */
	REQUIRE(raw_sql(tpath("other.db"), "CREATE TABLE t (a); INSERT INTO t VALUES (1)") ==
	        SQLITE_OK);
	check_refused(tpath("other.db"), -EBADMSG, "not a tierd catalog");

	CHECK(mkdir(tpath("adir.db"), 0700) == 0);
	check_refused(tpath("adir.db"), -EISDIR, "directory");

	/* After all that, the good one still opens. */
	cat = NULL;
	CHECK_INT(td_catalog_open(&cat, good, 0, &err), 0);
	td_catalog_close(cat);
}

static void test_newer_version(void)
{
	const char *p = make_closed("newer.db");
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;

	REQUIRE(p);
	REQUIRE(raw_sql(p, "PRAGMA user_version = 99") == SQLITE_OK);
	check_refused(p, -ENOTSUP, "newer tierd");
	CHECK_INT(td_catalog_open(&cat, p, 0, &err), -ENOTSUP);
	CHECK_CONTAINS(err.message, "version 99");
}

static void test_migrations(void)
{
	const char *p = tpath("mig.db");
	const struct td_catalog_migration v1[] = {
		{ 1, "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);" },
	};
	const struct td_catalog_migration v2[] = {
		v1[0],
		{ 2, "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7;"
		     "INSERT INTO t (a) VALUES (2);" },
	};
	const struct td_catalog_migration v4[] = {
		v2[0],
		v2[1],
		{ 3, "CREATE TABLE u (x); INSERT INTO t (a) VALUES (3);" },
		{ 4, "INSERT INTO no_such_table VALUES (1);" },
	};
	const struct td_catalog_migration gap[] = { v1[0], { 3, "SELECT 1" } };
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;

	REQUIRE(td_catalog_open_with(&cat, p, TD_CATALOG_CREATE, v1, 1, &err) == 0);
	td_catalog_close(cat);
	cat = NULL;
	CHECK_INT(raw_int(p, "PRAGMA user_version"), 1);

	/* Version 1 to 2: the new column is there with its default, old rows kept. */
	REQUIRE(td_catalog_open_with(&cat, p, 0, v2, 2, &err) == 0);
	td_catalog_close(cat);
	cat = NULL;
	CHECK_INT(raw_int(p, "PRAGMA user_version"), 2);
	CHECK_INT(raw_int(p, "SELECT b FROM t WHERE a = 1"), 7);
	CHECK_INT(raw_int(p, "SELECT count(*) FROM t"), 2);

	/* A failing step rolls back every step of that open (3 included). */
	CHECK_INT(td_catalog_open_with(&cat, p, 0, v4, 4, &err), -EIO);
	CHECK(cat == NULL);
	CHECK_CONTAINS(err.message, "step 4");
	CHECK_CONTAINS(err.message, p);
	CHECK_INT(raw_int(p, "PRAGMA user_version"), 2);
	CHECK_INT(raw_int(p, "SELECT count(*) FROM t"), 2);
	CHECK_INT(raw_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'u'"), 0);

	/* An older build (knows only version 1) refuses the version-2 file. */
	CHECK_INT(td_catalog_open_with(&cat, p, 0, v1, 1, &err), -ENOTSUP);
	CHECK_INT(td_catalog_open_with(&cat, p, 0, gap, 2, &err), -EINVAL);
}

/* Schema 2: a file's xattrs blob, bytes exact (NULs, 0xff), validated, and a
 * version-1 catalog made by the real first step migrated forward with its rows. */
static void test_xattrs(void)
{
	static const unsigned char blob[] = "user.bin\0\x04\0\0\0\x00\xff\x00\x01"
	                                    "system.posix_acl_access\0\x01\0\0\0\x02";
	const size_t blen = sizeof(blob) - 1;
	struct td_catalog *cat = open_new("xa.db");
	struct td_catalog_entry e, *g = NULL;
	struct td_catalog_error err;
	const struct td_catalog_migration *steps;
	size_t n_steps;
	const char *p = tpath("v1.db");

	REQUIRE(cat);
	basic(&e, 7, "/srv/a");
	e.xattrs = blob;
	e.xattrs_len = blen;
	REQUIRE(td_catalog_insert(cat, &e, &err) == 0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK_INT(g->xattrs_len, blen);
	CHECK(g->xattrs && memcmp(g->xattrs, blob, blen) == 0);
	td_catalog_entry_free(g);
	g = NULL;
	/* Cleared by an update of the field; a malformed blob is refused. */
	e.xattrs = NULL;
	e.xattrs_len = 0;
	REQUIRE(td_catalog_update(cat, &e, TD_CATALOG_F_XATTRS, NULL, &err) == 0);
	REQUIRE(td_catalog_get(&g, cat, e.id, &err) == 0);
	CHECK(g->xattrs == NULL && g->xattrs_len == 0);
	td_catalog_entry_free(g);
	g = NULL;
	e.xattrs = blob;
	e.xattrs_len = blen - 1;
	CHECK_INT(td_catalog_update(cat, &e, TD_CATALOG_F_XATTRS, NULL, &err), -EINVAL);
	CHECK_CONTAINS(err.message, "extended attributes");
	td_catalog_close(cat);

	steps = td_catalog_builtin_migrations(&n_steps);
	REQUIRE(n_steps >= 2 && steps[0].version == 1);
	cat = NULL;
	REQUIRE(td_catalog_open_with(&cat, p, TD_CATALOG_CREATE, steps, 1, &err) == 0);
	td_catalog_close(cat);
	cat = NULL;
	REQUIRE(raw_sql(p, "INSERT INTO files (id, state, path, basename, mode, created_ns, "
	                   "updated_ns) VALUES ('0123456789abcdef0123456789abcdef', 'tiered', "
	                   "x'2f612f62', x'62', 33184, 1, 1)") == SQLITE_OK);
	CHECK_INT(raw_int(p, "PRAGMA user_version"), 1);
	REQUIRE(td_catalog_open(&cat, p, 0, &err) == 0);
	CHECK_INT(raw_int(p, "PRAGMA user_version"), TD_CATALOG_SCHEMA_VERSION);
	REQUIRE(td_catalog_get(&g, cat, "0123456789abcdef0123456789abcdef", &err) == 0);
	CHECK(g->state == TD_CATALOG_TIERED && g->mode == 33184 && g->xattrs == NULL);
	td_catalog_entry_free(g);
	td_catalog_close(cat);
}

static void test_errno_map(void)
{
	CHECK_INT(td_catalog_errno(SQLITE_BUSY, 0), -EBUSY);
	CHECK_INT(td_catalog_errno(SQLITE_BUSY_SNAPSHOT, 0), -EBUSY);
	CHECK_INT(td_catalog_errno(SQLITE_CORRUPT, 0), -EUCLEAN);
	CHECK_INT(td_catalog_errno(SQLITE_NOTADB, 0), -EBADMSG);
	CHECK_INT(td_catalog_errno(SQLITE_FULL, 0), -ENOSPC);
	CHECK_INT(td_catalog_errno(SQLITE_IOERR_FSYNC, 0), -EIO);
	CHECK_INT(td_catalog_errno(SQLITE_IOERR_NOMEM, 0), -ENOMEM);
	CHECK_INT(td_catalog_errno(SQLITE_CANTOPEN, EACCES), -EACCES);
	CHECK_INT(td_catalog_errno(SQLITE_CANTOPEN, ENOENT), -ENOENT);
	CHECK_INT(td_catalog_errno(SQLITE_READONLY, 0), -EROFS);
	CHECK_INT(td_catalog_errno(SQLITE_CONSTRAINT_UNIQUE, 0), -EEXIST);
	CHECK_INT(td_catalog_errno(SQLITE_CONSTRAINT_CHECK, 0), -EINVAL);
	CHECK_INT(td_catalog_errno(SQLITE_OK, 0), 0);
	CHECK_STR(td_catalog_state_name(TD_CATALOG_RECALLING), "recalling");
	CHECK(td_catalog_state_name(TD_CATALOG_STATE_COUNT) == NULL);
	{
		enum td_catalog_state s;
		CHECK_INT(td_catalog_state_parse(&s, "cached"), 0);
		CHECK_INT(s, TD_CATALOG_CACHED);
		CHECK_INT(td_catalog_state_parse(&s, "Cached"), -EINVAL);
	}
}

int main(void)
{
	snprintf(dir, sizeof(dir), "%s", td_test_tmpdir("catalog"));
	TD_RUN(test_errno_map);
	TD_RUN(test_create_and_missing);
	TD_RUN(test_create_race);
	TD_RUN(test_round_trip);
	TD_RUN(test_validation);
	TD_RUN(test_cas);
	TD_RUN(test_update_fields);
	TD_RUN(test_iterate_and_stats);
	TD_RUN(test_transactions);
	TD_RUN(test_threads);
	TD_RUN(test_sigkill);
	TD_RUN(test_corrupt);
	TD_RUN(test_newer_version);
	TD_RUN(test_migrations);
	TD_RUN(test_xattrs);
	if (td_test_failures == 0)
		td_test_rmtree(dir);
	else
		printf("kept %s for inspection\n", dir);
	return td_test_done();
}
