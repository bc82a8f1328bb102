/*
 * test_catalog_life — catalog_life.c: lifecycle records, gc's claim (a
 * compare-and-set that refuses rows that changed or must be kept) and its
 * journal; and that a further handle's open does not drop the POSIX locks of
 * the process's other connections (an outside reader then deleted the WAL).
 */
#include "catalog.h"
#include "catalog_life.h"
#include "testlib.h"
#include "util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void row(struct td_catalog_entry *e, unsigned n, enum td_catalog_state st)
{
	static char paths[16][64];

	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%032x", n);
	snprintf(paths[n % 16], sizeof(paths[0]), "/srv/data/f%u", n);
	e->state = st;
	e->path = paths[n % 16];
	e->path_len = strlen(e->path);
	e->name = strrchr(e->path, '/') + 1;
	e->name_len = strlen(e->name);
	e->target = "t";
	snprintf(paths[(n + 8) % 16], sizeof(paths[0]), "%.2s/%s", e->id, e->id);
	e->object_key = paths[(n + 8) % 16];
	e->tiered_ns = 1;
}

static void test_records(void)
{
	char p[4200], *v = NULL;
	struct td_catalog *cat = NULL;
	struct td_catalog_error ce;
	int64_t when = 0;

	path_of(p, sizeof(p), "rec.db");
	REQUIRE(td_catalog_open(&cat, p, TD_CATALOG_CREATE, &ce) == 0);
	CHECK_INT(td_catalog_life_get(&v, NULL, cat, "gc.last", &ce), -ENOENT);
	CHECK_INT(td_catalog_life_put(cat, "gc.last", "{\"deleted\":1}", &ce), 0);
	CHECK_INT(td_catalog_life_put(cat, "gc.last", "{\"deleted\":2}", &ce), 0);
	REQUIRE(td_catalog_life_get(&v, &when, cat, "gc.last", &ce) == 0);
	CHECK_STR(v, "{\"deleted\":2}");
	CHECK(when > 0);
	free(v);
	CHECK_INT(td_catalog_life_del(cat, "gc.last", &ce), 0);
	CHECK_INT(td_catalog_life_get(&v, NULL, cat, "gc.last", &ce), -ENOENT);
	td_catalog_close(cat);
}

struct seen {
	unsigned n;
	char id[TD_CATALOG_ID_HEX];
	char key[64];
};

static int collect(void *data, const struct td_catalog_gc_item *it)
{
	struct seen *s = data;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", it->id);
	snprintf(s->key, sizeof(s->key), "%s", it->object_key ? it->object_key : "");
	return 0;
}

static void test_claim(void)
{
	char p[4200];
	struct td_catalog *cat = NULL;
	struct td_catalog_entry e, *got = NULL, *keep[4] = { 0 };
	struct td_catalog_error ce;
	struct seen s = { 0 };

	path_of(p, sizeof(p), "claim.db");
	REQUIRE(td_catalog_open(&cat, p, TD_CATALOG_CREATE, &ce) == 0);
	/* 1 tiered, 2 pinned, 3 dirty, 4 cached, 5 local (recalled) */
	for (unsigned i = 1; i <= 5; i++) {
		enum td_catalog_state st[] = { 0,
			                       TD_CATALOG_TIERED,
			                       TD_CATALOG_TIERED,
			                       TD_CATALOG_DIRTY,
			                       TD_CATALOG_CACHED,
			                       TD_CATALOG_LOCAL };
		row(&e, i, st[i]);
		e.pinned = i == 2;
		e.cache_state = i == 3   ? TD_CATALOG_CACHE_DIRTY
		                : i == 4 ? TD_CATALOG_CACHE_CACHED
		                         : TD_CATALOG_CACHE_NONE;
		REQUIRE(td_catalog_insert(cat, &e, &ce) == 0);
	}
	for (unsigned i = 2; i <= 4; i++) {
		char id[TD_CATALOG_ID_HEX];

		snprintf(id, sizeof(id), "%032x", i);
		REQUIRE(td_catalog_get(&keep[i - 2], cat, id, &ce) == 0);
		CHECK_INT(td_catalog_gc_claim(cat, keep[i - 2], &ce), -ESTALE);
		td_catalog_entry_free(keep[i - 2]);
	}
	REQUIRE(td_catalog_get(&got, cat, "00000000000000000000000000000001", &ce) == 0);
	/* A sighting after the row was read: the claim must fail. */
	CHECK_INT(td_catalog_link_seen(cat, got->id, "/srv/data/moved", 15, td_now_ns(), &ce), 0);
	CHECK_INT(td_catalog_gc_claim(cat, got, &ce), -ESTALE);
	td_catalog_entry_free(got);
	REQUIRE(td_catalog_get(&got, cat, "00000000000000000000000000000001", &ce) == 0);
	CHECK_INT(td_catalog_gc_claim(cat, got, &ce), 0);
	CHECK_INT(td_catalog_get(&keep[0], cat, got->id, &ce), -ENOENT);
	CHECK_INT(td_catalog_gc_pending(cat, got->id, &ce), 1);
	CHECK_INT(td_catalog_gc_foreach(cat, 0, collect, &s, &ce), 0);
	CHECK_INT(s.n, 1);
	CHECK_STR(s.id, got->id);
	CHECK_STR(s.key, got->object_key);
	CHECK_INT(td_catalog_gc_done(cat, got->id, &ce), 0);
	CHECK_INT(td_catalog_gc_pending(cat, got->id, &ce), 0);
	td_catalog_entry_free(got);
	/* A recalled file's object may go too. */
	REQUIRE(td_catalog_get(&got, cat, "00000000000000000000000000000005", &ce) == 0);
	CHECK_INT(td_catalog_gc_claim(cat, got, &ce), 0);
	td_catalog_entry_free(got);
	td_catalog_close(cat);
}

/* The daemon holds its first handle and opens more (NO_CHECK); a reader in
 * another process then comes and goes. The WAL must survive: before, the
 * second open's precheck closed an fd of the file, which released the first
 * handle's locks, so the reader took itself for the last connection and
 * checkpointed and deleted the WAL. */
static void test_locks_kept(void)
{
	char p[4200], wal[4300], cmd[9000];
	struct td_catalog *a = NULL, *b = NULL;
	struct td_catalog_error ce;
	struct td_catalog_entry e;
	struct stat st;

	path_of(p, sizeof(p), "locks.db");
	snprintf(wal, sizeof(wal), "%s-wal", p);
	REQUIRE(td_catalog_open(&a, p, TD_CATALOG_CREATE, &ce) == 0);
	row(&e, 7, TD_CATALOG_TIERED);
	REQUIRE(td_catalog_insert(a, &e, &ce) == 0);
	REQUIRE(td_catalog_open(&b, p, TD_CATALOG_NO_CHECK, &ce) == 0);
	CHECK(stat(wal, &st) == 0);
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'SELECT count(*) FROM files' >/dev/null", p);
	REQUIRE(system(cmd) == 0);
	CHECK(stat(wal, &st) == 0); /* still ours: the reader knew it was not alone */
	row(&e, 8, TD_CATALOG_TIERED);
	CHECK_INT(td_catalog_insert(b, &e, &ce), 0);
	td_catalog_close(b);
	td_catalog_close(a);
	REQUIRE(td_catalog_open(&a, p, 0, &ce) == 0); /* quick_check passes */
	td_catalog_close(a);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "%s", td_test_tmpdir("catalog_life"));
	TD_RUN(test_records);
	TD_RUN(test_claim);
	TD_RUN(test_locks_kept);
	if (td_test_failures == 0)
		td_test_rmtree(dir);
	return td_test_done();
}
