/*
 * Policy runs against a real dir target in a temp dir: the pipeline (scanner,
 * bounded queue, mover) tiers every candidate and reports each file once; a
 * stopped run still ends; and runs started by the scheduler, by schedule
 * (a fake clock) and by watermark (the real statvfs, measured on the thread
 * pool), really tier the files.
 */
#include "catalog.h"
#include "config.h"
#include "mover.h"
#include "run.h"
#include "scheduler.h"
#include "target.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_FILES 150 /* more than TD_RUN_MOVER_FEED: the feed refills as files finish */

static struct td_test_tree tree;
#define T     tree.top
#define ROOT  tree.root
#define STATE tree.state
#define CACHE tree.cache
#define RUN   tree.run
#define TIER  tree.tier
#define CATDB tree.catdb
static uv_loop_t loop;
static struct td_target *target;
static struct td_mover *mover;

static char *root_v[1], *include_v[1] = { "*" };
static struct td_policy_conf pc;
static struct td_config conf = { .policies = &pc, .n_policies = 1 };

static struct td_target *target_for(void *ctx, const char *name)
{
	return strcmp(name, "nas") == 0 ? target : NULL;
}

static void make_file(const char *rel, size_t size)
{
	char path[8400], *buf = malloc(size + 1);
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } }; /* 2001: cold */
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
	for (size_t i = 0; i < size; i++)
		buf[i] = (char)(i * 31 + size);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || td_write_full(fd, buf, size) < 0) {
		perror(path);
		exit(1);
	}
	futimens(fd, ts);
	close(fd);
	free(buf);
}

static void setup(const char *tag, unsigned n_files)
{
	struct td_mover_opts mo = { 0 };

	td_test_tree_make(&tree, tag);
	{
		char sub[4300];

		snprintf(sub, sizeof(sub), "%s/sub", ROOT);
		mkdir(sub, 0755);
	}
	for (unsigned i = 0; i < n_files; i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "%sf%03u", i % 2 ? "sub/" : "", i);
		make_file(rel, 100 + i);
	}
	mo.target_for = target_for;
	td_test_mover_open(&tree, &loop, &mo, &target, &mover);
	root_v[0] = ROOT;
	memset(&pc, 0, sizeof(pc));
	pc.name = "cold";
	pc.paths = (struct td_strlist){ root_v, 1 };
	pc.target = "nas";
	pc.age_by = TD_AGE_MTIME;
	pc.min_age_s = 86400;
	pc.max_size_bytes = UINT64_MAX;
	pc.include = (struct td_strlist){ include_v, 1 };
	pc.one_filesystem = true;
	conf.state_dir = STATE;
	conf.cache_dir = CACHE;
	conf.run_dir = RUN;
}

static void teardown(void)
{
	td_test_mover_close(&loop, target, mover);
	td_test_rmtree(T);
}

/* ---- what a run reports ----------------------------------------------------- */

struct seen {
	unsigned files, tiered, queue_failed, done;
	struct td_run_stats end;
	struct td_run *run;
};

static void on_file(void *data, struct td_run *run, const struct td_mover_result *res)
{
	struct seen *s = data;

	CHECK(run == s->run);
	s->files++;
	s->tiered += res->outcome == TD_MOVER_TIERED;
	if (res->outcome != TD_MOVER_TIERED)
		printf("  %.*s: %s\n", (int)res->path_len, res->path, res->message);
}

static void on_queue_failed(void *data, struct td_run *run, const char *path, size_t len, int err)
{
	((struct seen *)data)->queue_failed++;
}

static void on_done(void *data, struct td_run *run)
{
	struct seen *s = data;

	CHECK(run == s->run);
	s->done++;
	td_run_stats(run, &s->end);
}

static int start(struct seen *s, char *err, size_t errlen)
{
	struct td_run_opts o = {
		.loop = &loop,
		.mover = mover,
		.pc = &pc,
		.state_dir = STATE,
		.cache_dir = CACHE,
		.run_dir = RUN,
		.catalog_path = CATDB,
		.now_ns = td_now_ns(),
		.data = s,
		.on_file = on_file,
		.on_queue_failed = on_queue_failed,
		.on_done = on_done,
	};

	return td_run_start(&s->run, &o, err, errlen);
}

static void wait_done(struct seen *s)
{
	while (!s->done)
		uv_run(&loop, UV_RUN_ONCE);
}

/* Every file below ROOT is a link now, and the catalog says tiered. */
static unsigned count_tiered(unsigned n_files)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error ce;
	unsigned n = 0;

	if (td_catalog_open(&cat, CATDB, TD_CATALOG_NO_CHECK, &ce) < 0)
		return 0;
	for (unsigned i = 0; i < n_files; i++) {
		struct td_catalog_entry *e = NULL;
		char path[8400];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%sf%03u", ROOT, i % 2 ? "sub/" : "", i);
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
		    td_catalog_get_by_path(&e, cat, path, strlen(path), &ce) == 0 &&
		    e->state == TD_CATALOG_TIERED && e->size == 100 + i)
			n++;
		td_catalog_entry_free(e);
	}
	td_catalog_close(cat);
	return n;
}

/* ---- the pipeline -------------------------------------------------------------- */

static void test_pipeline(void)
{
	struct seen s = { 0 };
	char err[256];

	setup("run-pipeline", N_FILES);
	REQUIRE(start(&s, err, sizeof(err)) == 0);
	CHECK_STR(td_run_policy(s.run), "cold");
	wait_done(&s);
	CHECK_INT(s.done, 1);
	CHECK_INT(s.files, N_FILES);
	CHECK_INT(s.tiered, N_FILES);
	CHECK_INT(s.queue_failed, 0);
	CHECK_INT(s.end.tiered, N_FILES);
	CHECK_INT(s.end.failed, 0);
	CHECK_INT(s.end.skipped, 0);
	CHECK_INT(s.end.queued, 0);
	CHECK_INT(s.end.in_mover, 0);
	CHECK_INT(s.end.scan.scanned_files, N_FILES);
	CHECK_INT(s.end.scan_status, 0);
	CHECK(!s.end.target_down);
	CHECK_STR(s.end.link_error, "");
	{
		uint64_t bytes = 0;

		for (unsigned i = 0; i < N_FILES; i++)
			bytes += 100 + i;
		CHECK_INT(s.end.tiered_bytes, bytes);
	}
	CHECK_INT(count_tiered(N_FILES), N_FILES);
	/* A second run finds nothing left to do. */
	memset(&s, 0, sizeof(s));
	REQUIRE(start(&s, err, sizeof(err)) == 0);
	wait_done(&s);
	CHECK_INT(s.files, 0);
	teardown();
}

static void test_stop(void)
{
	struct seen s = { 0 };
	char err[256];

	setup("run-stop", N_FILES);
	REQUIRE(start(&s, err, sizeof(err)) == 0);
	td_run_stop(s.run);
	wait_done(&s);
	CHECK_INT(s.done, 1);
	CHECK(s.files <= N_FILES);
	CHECK_INT(s.end.in_mover, 0);
	CHECK_INT(count_tiered(N_FILES), s.tiered); /* each file tiered or as it was */
	teardown();
}

static void test_bad_policy(void)
{
	struct seen s = { 0 };
	char err[256] = "";

	setup("run-bad", 0);
	pc.min_age_s = -1;
	CHECK_INT(start(&s, err, sizeof(err)), -EINVAL);
	CHECK_STR(err, "policy cold: Invalid argument");
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_INT(s.done, 0);
	teardown();
}

/* ---- runs the scheduler starts ---------------------------------------------------- */

static void sched_start(void *data, const struct td_scheduler_start *st)
{
	struct seen *s = data;
	char err[256];

	CHECK_STR(st->policy, "cold");
	if (!s->run)
		CHECK_INT(start(s, err, sizeof(err)), 0);
}

static void test_run_by_schedule(void)
{
	struct td_scheduler *sch = NULL;
	struct seen s = { 0 };
	int64_t t0 = 1767225600; /* the fake clock */

	setup("run-schedule", 10);
	pc.schedule = (struct td_schedule){ .kind = TD_SCHEDULE_EVERY, .every_s = 3600 };
	REQUIRE(td_scheduler_new(&sch, &loop, sched_start, &s) == 0);
	REQUIRE(td_scheduler_reschedule(sch, &conf, t0) == 0);
	td_scheduler_tick(sch, &conf, t0 + 3599);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(s.run == NULL);
	CHECK_INT(count_tiered(10), 0);
	td_scheduler_tick(sch, &conf, t0 + 3600);
	REQUIRE(s.run != NULL);
	wait_done(&s);
	CHECK_INT(s.end.tiered, 10);
	CHECK_INT(count_tiered(10), 10);
	CHECK_INT(td_scheduler_next(sch, "cold"), t0 + 7200);
	td_scheduler_free(sch);
	teardown();
}

static void test_run_by_watermark(void)
{
	struct td_scheduler *sch = NULL;
	struct seen s = { 0 };
	struct td_scheduler_fill empty = { .policy = "cold",
		                           .root = ROOT,
		                           .high_pct = 0,
		                           .ok = true,
		                           .blocks = 100,
		                           .bfree = 100 };

	setup("run-watermark", 10);
	/* Any used filesystem is above 0%; low 0% wants every candidate moved. */
	pc.has_watermarks = true;
	pc.high_watermark_pct = 0;
	pc.low_watermark_pct = 0;
	REQUIRE(td_scheduler_new(&sch, &loop, sched_start, &s) == 0);
	REQUIRE(td_scheduler_reschedule(sch, &conf, 1000) == 0);
	/* Figures below the mark start nothing. */
	td_scheduler_watermarks(sch, &empty, 1);
	CHECK(s.run == NULL);
	/* The tick measures ROOT's filesystem on the thread pool, then starts the run. */
	td_scheduler_tick(sch, &conf, 1000);
	CHECK(s.run == NULL);
	for (int i = 0; !s.run && i < 1000; i++)
		uv_run(&loop, UV_RUN_ONCE);
	REQUIRE(s.run != NULL);
	wait_done(&s);
	CHECK(s.end.scan.watermark_active);
	CHECK_INT(s.end.tiered, 10);
	CHECK_INT(count_tiered(10), 10);
	td_scheduler_free(sch);
	teardown();
}

int main(void)
{
	TD_RUN(test_pipeline);
	TD_RUN(test_stop);
	TD_RUN(test_bad_policy);
	TD_RUN(test_run_by_schedule);
	TD_RUN(test_run_by_watermark);
	return td_test_done();
}
