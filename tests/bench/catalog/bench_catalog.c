/*
 * Catalog benchmark: inserts N rows and then updates all N (the mover's
 * "migrating -> tiered" write: state, object, ETag, tiered_at) in transactions
 * of BATCH rows, then a smaller number of single-row transactions (each one an
 * fsync: the rate the mover sees when it commits one file at a time). The
 * reference is the sqlite3 CLI executing the same rows, same schema, same
 * batching and the same synchronous=FULL, fed SQL text through a pipe.
 *
 * TD_BENCH_SIZE=tiny (default: 5,000 rows) or full (1,000,000). No timing
 * assertions: it fails only when rows are missing or wrong.
 */
#include "catalog.h"
#include "testlib.h"
#include "util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#define BATCH 1000

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Row i's content is a function of i, so nothing needs to be kept in memory. */
struct row {
	struct td_catalog_entry e;
	char path[128], key[64], etag[40];
};

static void make_row(struct row *r, uint64_t i, bool updated)
{
	struct td_catalog_entry *e = &r->e;
	uint64_t h[4] = { mix(i), mix(i ^ 0x5555), mix(i ^ 0xaaaa), mix(i ^ 0xffff) };
	int n;

	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%016llx%016llx", (unsigned long long)h[0],
	         (unsigned long long)h[1]);
	n = snprintf(r->path, sizeof(r->path), "/srv/data/projects/p%03u/d%04u/file-%07llu.dat",
	             (unsigned)(i % 97), (unsigned)(i % 4099), (unsigned long long)i);
	e->path = r->path;
	e->path_len = (size_t)n;
	e->name = strrchr(r->path, '/') + 1;
	e->name_len = strlen(e->name);
	e->policy = "projects";
	e->dev = 2049;
	e->ino = i + 1000;
	e->size = h[2] % (1u << 30);
	e->mode = 0100644;
	e->uid = 1000 + (uint32_t)(i % 50);
	e->gid = 100;
	e->atime_ns = 1600000000000000000 + (int64_t)(h[3] % 1000000000000000);
	e->mtime_ns = e->atime_ns - 1000;
	e->ctime_ns = e->atime_ns - 500;
	snprintf(e->sha256, sizeof(e->sha256), "%016llx%016llx%016llx%016llx",
	         (unsigned long long)h[3], (unsigned long long)h[2], (unsigned long long)h[1],
	         (unsigned long long)h[0]);
	e->target = "archive";
	snprintf(r->key, sizeof(r->key), "host1/%.2s/%s", e->id, e->id);
	e->object_key = r->key;
	e->created_ns = 1700000000000000000 + (int64_t)i;
	e->state = TD_CATALOG_MIGRATING;
	e->step = 2;
	if (updated) {
		e->state = TD_CATALOG_TIERED;
		e->step = 0;
		snprintf(r->etag, sizeof(r->etag), "\"%016llx%016llx\"", (unsigned long long)h[2],
		         (unsigned long long)h[3]);
		e->etag = r->etag;
		e->tiered_ns = e->created_ns + 5;
	}
}

static const unsigned UPDATE_FIELDS =
    TD_CATALOG_F_STATE | TD_CATALOG_F_OBJECT | TD_CATALOG_F_TIERED;
static const struct td_catalog_expect FROM_MIGRATING = { TD_CATALOG_MIGRATING, 2 };

static double secs(int64_t t0)
{
	return (double)(td_monotonic_ns() - t0) / 1e9;
}

static uint64_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Rows [from, to) in transactions of `batch` (1: each its own transaction). */
static int insert_rows(struct td_catalog *cat, uint64_t from, uint64_t to, unsigned batch,
                       bool update)
{
	struct td_catalog_error err;
	struct row r;
	int ret = 0;

	for (uint64_t i = from; i < to && ret == 0; i++) {
		if (batch > 1 && (i - from) % batch == 0)
			ret = td_catalog_begin(cat, &err);
		make_row(&r, i, update);
		if (ret == 0)
			ret = update ? td_catalog_update(cat, &r.e, UPDATE_FIELDS, &FROM_MIGRATING,
			                                 &err)
			             : td_catalog_insert(cat, &r.e, &err);
		if (ret == 0 && batch > 1 && ((i - from) % batch == batch - 1 || i + 1 == to))
			ret = td_catalog_commit(cat, &err);
	}
	if (ret < 0)
		printf("  %s failed: %d %s\n", update ? "update" : "insert", ret, err.message);
	return ret;
}

/* SQL text for the CLI: a blob literal of n bytes. */
static void hexlit(FILE *f, const char *p, size_t n)
{
	fputs("X'", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", (unsigned char)p[i]);
	fputc('\'', f);
}

/* Feeds the sqlite3 CLI the same rows; returns seconds, or < 0 on failure. */
static double cli_run(const char *db, uint64_t n, bool update)
{
	char cmd[4400];
	struct row r;
	int64_t t0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "sqlite3 -batch -bail '%s' >/dev/null", db);
	t0 = td_monotonic_ns();
	f = popen(cmd, "we");
	if (!f)
		return -1;
	fputs("PRAGMA synchronous = FULL;\n", f);
	for (uint64_t i = 0; i < n; i++) {
		const struct td_catalog_entry *e = &r.e;
		if (i % BATCH == 0)
			fputs("BEGIN IMMEDIATE;\n", f);
		make_row(&r, i, update);
		if (update) {
			fprintf(f,
			        "UPDATE files SET updated_ns = %lld, state = 'tiered', step = 0, "
			        "target = '%s', object_key = '%s', etag = '%s', version_id = NULL, "
			        "tiered_ns = %lld WHERE id = '%s' AND state = 'migrating' AND step "
			        "= 2;\n",
			        (long long)td_now_ns(), e->target, e->object_key, e->etag,
			        (long long)e->tiered_ns, e->id);
		} else {
			fprintf(
			    f,
			    "INSERT INTO files (id, state, step, policy, path, basename, dev, ino, "
			    "size, mode, uid, gid, atime_ns, mtime_ns, ctime_ns, sha256, target, "
			    "object_key, created_ns, updated_ns) VALUES ('%s', 'migrating', 2, "
			    "'%s', ",
			    e->id, e->policy);
			hexlit(f, e->path, e->path_len);
			fputs(", ", f);
			hexlit(f, e->name, e->name_len);
			fprintf(
			    f,
			    ", %lld, %lld, %lld, %u, %u, %u, %lld, %lld, %lld, '%s', '%s', '%s', "
			    "%lld, %lld);\n",
			    (long long)e->dev, (long long)e->ino, (long long)e->size, e->mode,
			    e->uid, e->gid, (long long)e->atime_ns, (long long)e->mtime_ns,
			    (long long)e->ctime_ns, e->sha256, e->target, e->object_key,
			    (long long)e->created_ns, (long long)td_now_ns());
		}
		if (i % BATCH == BATCH - 1 || i + 1 == n)
			fputs("COMMIT;\n", f);
	}
	if (pclose(f) != 0)
		return -1;
	return secs(t0);
}

struct verify {
	uint64_t rows, bad;
};

static int verify_cb(void *u, const struct td_catalog_entry *e)
{
	struct verify *v = u;

	v->rows++;
	if (e->state != TD_CATALOG_TIERED || !e->etag || e->etag[0] != '"' || e->tiered_ns == 0)
		v->bad++;
	return 0;
}

int main(void)
{
	const char *size = getenv("TD_BENCH_SIZE");
	bool full = size && strcmp(size, "full") == 0;
	/* TD_BENCH_ROWS overrides the row count, for experiments at other scales. */
	const char *rows = getenv("TD_BENCH_ROWS");
	const uint64_t n = rows && atoll(rows) > 0 ? (uint64_t)atoll(rows) : full ? 1000000 : 5000;
	const uint64_t single = full ? 2000 : 200;
	/* TD_BENCH_REF=0 skips the sqlite3 CLI reference (experiments only). */
	const char *want_ref = getenv("TD_BENCH_REF");
	struct td_catalog *cat = NULL;
	struct td_catalog_error err;
	struct td_catalog_stats st;
	struct verify v = { 0 };
	char base[4096], db[4200], wal[4300], ref[4200];
	double t_ins, t_upd, t_ins1, t_upd1, t_stats, c_ins, c_upd;
	uint64_t bytes = 0, db_bytes, wal_bytes;
	int64_t t0;

	signal(SIGPIPE, SIG_IGN); /* a dead CLI must show as a write error, not kill us */
	snprintf(base, sizeof(base), "%s", td_test_tmpdir("bench-catalog"));
	snprintf(ref, sizeof(ref), "%s/ref.db", base);
	snprintf(db, sizeof(db), "%s/catalog.db", base);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	printf("catalog benchmark: %llu rows (TD_BENCH_SIZE=%s), %d rows per transaction, "
	       "%llu single-row transactions, synchronous=FULL\n",
	       (unsigned long long)n, full ? "full" : "tiny", BATCH, (unsigned long long)single);

	if (td_catalog_open(&cat, db, TD_CATALOG_CREATE, &err) < 0) {
		printf("open: %s\n", err.message);
		return 1;
	}
	t0 = td_monotonic_ns();
	CHECK_INT(insert_rows(cat, 0, n, BATCH, false), 0);
	t_ins = secs(t0);
	t0 = td_monotonic_ns();
	CHECK_INT(insert_rows(cat, 0, n, BATCH, true), 0);
	t_upd = secs(t0);
	t0 = td_monotonic_ns();
	CHECK_INT(insert_rows(cat, n, n + single, 1, false), 0);
	t_ins1 = secs(t0);
	t0 = td_monotonic_ns();
	CHECK_INT(insert_rows(cat, n, n + single, 1, true), 0);
	t_upd1 = secs(t0);
	t0 = td_monotonic_ns();
	CHECK_INT(td_catalog_stats(&st, cat, &err), 0);
	t_stats = secs(t0);
	db_bytes = file_size(db);
	wal_bytes = file_size(wal);

	/* Every row is there, updated, with the right content. */
	CHECK_INT(st.files[TD_CATALOG_TIERED], n + single);
	CHECK_INT(st.files[TD_CATALOG_MIGRATING], 0);
	for (uint64_t i = 0; i < n + single; i++) {
		struct row r;
		make_row(&r, i, true);
		bytes += r.e.size;
	}
	CHECK(st.bytes[TD_CATALOG_TIERED] == bytes);
	CHECK_INT(td_catalog_foreach(cat, NULL, verify_cb, &v, &err), 0);
	CHECK_INT(v.rows, n + single);
	CHECK_INT(v.bad, 0);
	for (uint64_t i = 0; i < n + single; i += (n + single) / 997 + 1) {
		struct td_catalog_entry *g = NULL;
		struct row r;
		make_row(&r, i, true);
		if (td_catalog_get(&g, cat, r.e.id, &err) != 0) {
			CHECK(false);
			continue;
		}
		CHECK(g->path_len == r.e.path_len && memcmp(g->path, r.e.path, g->path_len) == 0);
		CHECK_STR(g->etag, r.e.etag);
		CHECK_STR(g->sha256, r.e.sha256);
		CHECK(g->size == r.e.size && g->ino == r.e.ino);
		td_catalog_entry_free(g);
	}
	td_catalog_close(cat);
	cat = NULL;

	printf("insert: %.0f rows/s (%.2f s)\n", (double)n / t_ins, t_ins);
	printf("update: %.0f rows/s (%.2f s)\n", (double)n / t_upd, t_upd);
	printf("insert, one row per transaction: %.0f rows/s (%llu rows, %.2f s)\n",
	       (double)single / t_ins1, (unsigned long long)single, t_ins1);
	printf("update, one row per transaction: %.0f rows/s (%llu rows, %.2f s)\n",
	       (double)single / t_upd1, (unsigned long long)single, t_upd1);
	printf("stats (count and bytes per state) over %llu rows: %.3f s\n",
	       (unsigned long long)(n + single), t_stats);
	printf("file size: %llu bytes + WAL %llu bytes (%.0f bytes/row); after close %llu bytes\n",
	       (unsigned long long)db_bytes, (unsigned long long)wal_bytes,
	       (double)(db_bytes + wal_bytes) / (double)(n + single),
	       (unsigned long long)file_size(db));

	/* The reference: same schema (created by the catalog), rows fed to the CLI. */
	CHECK_INT(td_catalog_open(&cat, ref, TD_CATALOG_CREATE, &err), 0);
	td_catalog_close(cat);
	cat = NULL;
	if (want_ref && strcmp(want_ref, "0") == 0) {
		printf("reference skipped (TD_BENCH_REF=0)\n");
	} else if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
		printf("sqlite3 CLI not installed (apt-get install sqlite3): no reference ratio\n");
	} else {
		c_ins = cli_run(ref, n, false);
		c_upd = c_ins >= 0 ? cli_run(ref, n, true) : -1;
		CHECK(c_ins > 0 && c_upd > 0);
		CHECK_INT(td_catalog_open(&cat, ref, 0, &err), 0);
		if (cat) {
			CHECK_INT(td_catalog_stats(&st, cat, &err), 0);
			CHECK_INT(st.files[TD_CATALOG_TIERED], n);
			td_catalog_close(cat);
		}
		if (c_ins > 0 && c_upd > 0) {
			printf("sqlite3 CLI insert: %.0f rows/s (%.2f s)\n", (double)n / c_ins,
			       c_ins);
			printf("sqlite3 CLI update: %.0f rows/s (%.2f s)\n", (double)n / c_upd,
			       c_upd);
			printf("ratio insert: %.2f\n", c_ins / t_ins);
			printf("ratio update: %.2f\n", c_upd / t_upd);
		}
	}
	td_test_rmtree(base);
	return td_test_done();
}
