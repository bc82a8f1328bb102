/* testlib — see testlib.h. */
#include "testlib.h"
#include "mover.h"
#include "target.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int td_test_failures;
int td_test_checks;

void td_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	td_test_failures++;
	fprintf(stdout, "  FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

int td_test_done(void)
{
	printf("%d checks, %d failed\n", td_test_checks, td_test_failures);
	if (td_test_checks == 0) {
		printf("no checks ran: a test must be able to fail\n");
		return 1;
	}
	return td_test_failures ? 1 : 0;
}

const char *td_test_tmpdir(const char *tag)
{
	static char path[4096];
	const char *base = getenv("TMPDIR");

	snprintf(path, sizeof(path), "%s/tierd-test-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(1);
	}
	return path;
}

void td_test_tree_make(struct td_test_tree *t, const char *tag)
{
	snprintf(t->top, sizeof(t->top), "%s", td_test_tmpdir(tag));
	snprintf(t->root, sizeof(t->root), "%s/data", t->top);
	snprintf(t->state, sizeof(t->state), "%s/state", t->top);
	snprintf(t->cache, sizeof(t->cache), "%s/cache", t->top);
	snprintf(t->run, sizeof(t->run), "%s/run", t->top);
	snprintf(t->tier, sizeof(t->tier), "%s/tier", t->top);
	snprintf(t->catdb, sizeof(t->catdb), "%s/catalog.db", t->state);
	mkdir(t->root, 0755);
	mkdir(t->state, 0711);
	mkdir(t->cache, 0711);
	mkdir(t->run, 0711);
	mkdir(t->tier, 0700);
}

void td_test_mover_open(struct td_test_tree *t, void *loop, struct td_mover_opts *mo,
                        struct td_target **target, struct td_mover **mover)
{
	struct td_target_conf tc = { .name = "nas", .type = TD_TARGET_DIR, .path = t->tier };
	struct td_target_error terr;
	char err[256];

	uv_loop_init(loop);
	if (td_target_new(target, loop, &tc, &terr) < 0) {
		printf("target: %s\n", terr.message);
		exit(1);
	}
	mo->loop = loop;
	mo->catalog_path = t->catdb;
	mo->state_dir = t->state;
	mo->cache_dir = t->cache;
	mo->run_dir = t->run;
	mo->max_transfers = 4;
	mo->grace_ms = 100;
	if (td_mover_new(mover, mo, err, sizeof(err)) < 0) {
		printf("mover: %s\n", err);
		exit(1);
	}
}

static void closed_cb(void *data)
{
	*(int *)data = 1;
}

void td_test_mover_close(void *loop, struct td_target *target, struct td_mover *mover)
{
	int done = 0, tdone = 0;

	td_mover_close(mover, closed_cb, &done);
	while (!done)
		uv_run(loop, UV_RUN_ONCE);
	td_target_close(target, closed_cb, &tdone);
	while (!tdone)
		uv_run(loop, UV_RUN_ONCE);
	CHECK_INT(uv_loop_close(loop), 0);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(p) < 0 && errno != ENOENT ? -errno : 0;
	return unlink(p) < 0 && errno != ENOENT ? -errno : 0;
}

int td_test_rmtree(const char *path)
{
	return nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

void td_test_missing(const char *what)
{
	const char *may = getenv("TD_TESTS_MAY_SKIP");

	if (getenv("CI") || (may && strcmp(may, "0") == 0)) {
		printf("FAIL: missing: %s\n", what);
		exit(1);
	}
	printf("SKIP: %s (this fails under CI and in scripts/test)\n", what);
	exit(77);
}

void td_test_require_s3(struct td_test_s3 *s3)
{
	s3->endpoint = getenv("TD_S3_ENDPOINT");
	s3->access_key = getenv("TD_S3_ACCESS_KEY");
	s3->secret_key = getenv("TD_S3_SECRET_KEY");
	s3->bucket = getenv("TD_S3_BUCKET");
	s3->region = getenv("TD_S3_REGION") ? getenv("TD_S3_REGION") : "us-east-1";
	if (s3->endpoint && s3->access_key && s3->secret_key && s3->bucket)
		return;
	td_test_missing("TD_S3_* not set (start radosgw with tests/s3/radosgw.sh)");
}
