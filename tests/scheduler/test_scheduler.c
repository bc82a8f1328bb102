/*
 * The scheduler's decisions, with a fake clock and fake fill figures: next
 * start times for every kind of schedule (in UTC, so no DST), the watermark
 * test, starts by time, by watermark and by a target coming back, and the
 * statvfs measurement on the thread pool. (tests/run drives real runs from
 * these decisions.)
 */
#include "scheduler.h"
#include "testlib.h"

#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900,
		         .tm_mon = mo - 1,
		         .tm_mday = d,
		         .tm_hour = h,
		         .tm_min = mi,
		         .tm_sec = s };

	return (int64_t)timegm(&tm);
}

static int64_t next(enum td_schedule_kind kind, int64_t every_s, int weekday, int hour, int minute,
                    int64_t now)
{
	struct td_schedule sc = {
		.kind = kind, .every_s = every_s, .weekday = weekday, .hour = hour, .minute = minute
	};

	return td_scheduler_next_fire(&sc, now);
}

static void test_next_fire(void)
{
	int64_t thu = utc(2026, 1, 1, 10, 20, 30); /* a Thursday */

	CHECK_INT(next(TD_SCHEDULE_MANUAL, 0, 0, 0, 0, thu), 0);
	CHECK_INT(next(TD_SCHEDULE_EVERY, 300, 0, 0, 0, thu), thu + 300);
	CHECK_INT(next(TD_SCHEDULE_EVERY, 0, 0, 0, 0, thu), thu + 60); /* never a busy loop */
	/* hourly at :15 */
	CHECK_INT(next(TD_SCHEDULE_HOURLY, 0, 0, 0, 15, thu), utc(2026, 1, 1, 11, 15, 0));
	CHECK_INT(next(TD_SCHEDULE_HOURLY, 0, 0, 0, 15, utc(2026, 1, 1, 10, 10, 0)),
	          utc(2026, 1, 1, 10, 15, 0));
	CHECK_INT(next(TD_SCHEDULE_HOURLY, 0, 0, 0, 15, utc(2026, 1, 1, 10, 15, 0)),
	          utc(2026, 1, 1, 11, 15, 0)); /* strictly after now */
	CHECK_INT(next(TD_SCHEDULE_HOURLY, 0, 0, 0, 0, utc(2026, 12, 31, 23, 59, 59)),
	          utc(2027, 1, 1, 0, 0, 0));
	/* daily at 03:30 */
	CHECK_INT(next(TD_SCHEDULE_DAILY, 0, 0, 3, 30, thu), utc(2026, 1, 2, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_DAILY, 0, 0, 3, 30, utc(2026, 1, 1, 2, 0, 0)),
	          utc(2026, 1, 1, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_DAILY, 0, 0, 3, 30, utc(2026, 1, 1, 3, 30, 0)),
	          utc(2026, 1, 2, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_DAILY, 0, 0, 1, 0, utc(2026, 1, 31, 23, 0, 0)),
	          utc(2026, 2, 1, 1, 0, 0)); /* into the next month */
	/* weekly, Monday (1) 03:30 */
	CHECK_INT(next(TD_SCHEDULE_WEEKLY, 0, 1, 3, 30, thu), utc(2026, 1, 5, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_WEEKLY, 0, 1, 3, 30, utc(2026, 1, 5, 3, 0, 0)),
	          utc(2026, 1, 5, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_WEEKLY, 0, 1, 3, 30, utc(2026, 1, 5, 3, 30, 0)),
	          utc(2026, 1, 12, 3, 30, 0));
	CHECK_INT(next(TD_SCHEDULE_WEEKLY, 0, 4, 10, 20, thu), utc(2026, 1, 8, 10, 20, 0));
	CHECK_INT(next(TD_SCHEDULE_WEEKLY, 0, 1, 0, 0, utc(2026, 12, 31, 23, 59, 59)),
	          utc(2027, 1, 4, 0, 0, 0)); /* into the next year */
}

static void test_watermark_decision(void)
{
	double used = -1;

	CHECK(td_scheduler_over_watermark(75, 100, 20, &used));
	CHECK(used > 79.999 && used < 80.001);
	CHECK(!td_scheduler_over_watermark(80, 100, 20, &used)); /* above, not at */
	CHECK(!td_scheduler_over_watermark(90, 1000, 500, NULL));
	CHECK(td_scheduler_over_watermark(0, 1000, 999, NULL));
	CHECK(!td_scheduler_over_watermark(0, 1000, 1000, NULL)); /* empty */
	CHECK(!td_scheduler_over_watermark(0, 0, 0, NULL));       /* no blocks: no figure */
}

/* ---- a configuration and a recorder ------------------------------------------ */

static char *root_v[1];
static struct td_policy_conf pols[3];
static struct td_config conf = { .policies = pols, .n_policies = 3 };

static void make_conf(const char *root)
{
	root_v[0] = (char *)root;
	memset(pols, 0, sizeof(pols));
	pols[0].name = "every";
	pols[0].schedule = (struct td_schedule){ .kind = TD_SCHEDULE_EVERY, .every_s = 10 };
	pols[0].paths = (struct td_strlist){ root_v, 1 };
	pols[1].name = "manual";
	pols[1].paths = (struct td_strlist){ root_v, 1 };
	pols[2].name = "full";
	pols[2].paths = (struct td_strlist){ root_v, 1 };
	pols[2].has_watermarks = true;
	pols[2].high_watermark_pct = -1; /* any filesystem is above it */
}

struct rec {
	char log[1024];
	unsigned n;
	double used_pct;
	char root[256];
};

static void record(void *data, const struct td_scheduler_start *st)
{
	static const char *const why[] = { "time", "watermark", "back" };
	struct rec *r = data;
	size_t n = strlen(r->log);

	snprintf(r->log + n, sizeof(r->log) - n, "%s:%s;", st->policy, why[st->why]);
	r->n++;
	if (st->why == TD_SCHEDULER_WATERMARK) {
		r->used_pct = st->used_pct;
		snprintf(r->root, sizeof(r->root), "%s", st->root);
	}
}

static void test_tick(void)
{
	struct td_scheduler *s = NULL;
	struct rec r = { 0 };
	uv_loop_t loop;

	make_conf("/nonexistent");
	pols[2].has_watermarks = false;
	uv_loop_init(&loop);
	REQUIRE(td_scheduler_new(&s, &loop, record, &r) == 0);
	REQUIRE(td_scheduler_reschedule(s, &conf, 1000) == 0);
	CHECK_INT(td_scheduler_next(s, "every"), 1010);
	CHECK_INT(td_scheduler_next(s, "manual"), 0);
	td_scheduler_tick(s, &conf, 1009);
	CHECK_INT(r.n, 0);
	td_scheduler_tick(s, &conf, 1010);
	CHECK_STR(r.log, "every:time;");
	CHECK_INT(td_scheduler_next(s, "every"), 1020);
	td_scheduler_tick(s, &conf, 1015);
	CHECK_INT(r.n, 1);
	/* A late tick (the loop was busy) starts it once and counts from then. */
	td_scheduler_tick(s, &conf, 1100);
	CHECK_INT(r.n, 2);
	CHECK_INT(td_scheduler_next(s, "every"), 1110);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(r.n, 2); /* no watermark policy: nothing measured */
	td_scheduler_free(s);
	CHECK_INT(uv_loop_close(&loop), 0);
}

static void test_watermarks_from_figures(void)
{
	struct td_scheduler_fill f[] = {
		{ .policy = "a",
		  .root = "/a",
		  .high_pct = 75,
		  .ok = true,
		  .blocks = 100,
		  .bfree = 20 },
		{ .policy = "b",
		  .root = "/b",
		  .high_pct = 75,
		  .ok = true,
		  .blocks = 100,
		  .bfree = 30 },
		{ .policy = "c",
		  .root = "/c",
		  .high_pct = 75,
		  .ok = false,
		  .blocks = 100,
		  .bfree = 0 },
		{ .policy = "d",
		  .root = "/d",
		  .high_pct = 90,
		  .ok = true,
		  .blocks = 100,
		  .bfree = 5 },
	};
	struct td_scheduler *s = NULL;
	struct rec r = { 0 };

	REQUIRE(td_scheduler_new(&s, NULL, record, &r) == 0);
	td_scheduler_watermarks(s, f, 4);
	CHECK_STR(r.log, "a:watermark;d:watermark;");
	CHECK(r.used_pct > 94.999 && r.used_pct < 95.001);
	CHECK_STR(r.root, "/d");
	td_scheduler_free(s);
}

static void test_target_back(void)
{
	struct td_reach_event up = { .target = "nas", .reachable = true },
	                      down = { .target = "nas", .reachable = false };
	struct td_scheduler *s = NULL;
	struct rec r = { 0 };

	make_conf("/nonexistent");
	REQUIRE(td_scheduler_new(&s, NULL, record, &r) == 0);
	REQUIRE(td_scheduler_reschedule(s, &conf, 1000) == 0);
	td_scheduler_run_ended(s, "every", false);
	td_scheduler_on_reach(s, &up);
	CHECK_INT(r.n, 0); /* its target was fine */
	td_scheduler_run_ended(s, "manual", true);
	td_scheduler_run_ended(s, "nosuch", true);
	td_scheduler_on_reach(s, &down);
	CHECK_INT(r.n, 0);
	/* A reload keeps the mark of a policy it keeps. */
	REQUIRE(td_scheduler_reschedule(s, &conf, 2000) == 0);
	td_scheduler_on_reach(s, &up);
	CHECK_STR(r.log, "manual:back;");
	td_scheduler_on_reach(s, &up);
	CHECK_INT(r.n, 1); /* once */
	td_scheduler_free(s);
}

/* The statvfs goes to the thread pool; its figures come back to the loop. */
static void test_measure(void)
{
	const char *t = td_test_tmpdir("sched-measure");
	struct td_scheduler *s = NULL;
	struct rec r = { 0 };
	struct statvfs v;
	uv_loop_t loop;

	make_conf(t);
	pols[0].schedule.kind = TD_SCHEDULE_MANUAL; /* only the watermark counts here */
	uv_loop_init(&loop);
	REQUIRE(td_scheduler_new(&s, &loop, record, &r) == 0);
	REQUIRE(td_scheduler_reschedule(s, &conf, 1000) == 0);
	CHECK_INT(td_scheduler_measure(s, &conf), 0);
	CHECK_INT(td_scheduler_measure(s, &conf), -EALREADY);
	CHECK_INT(r.n, 0); /* nothing decided on the calling thread */
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_STR(r.log, "full:watermark;");
	CHECK_STR(r.root, t);
	REQUIRE(statvfs(t, &v) == 0);
	CHECK(r.used_pct >= 0 && r.used_pct <= 100);
	/* The tick measures at once, then every TD_SCHEDULER_WATERMARK_EVERY_S. */
	r.n = 0;
	td_scheduler_tick(s, &conf, 5000);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(r.n, 1);
	td_scheduler_tick(s, &conf, 5000 + TD_SCHEDULER_WATERMARK_EVERY_S - 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(r.n, 1);
	td_scheduler_tick(s, &conf, 5000 + TD_SCHEDULER_WATERMARK_EVERY_S);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(r.n, 2);
	/* A root that cannot be measured starts nothing. */
	root_v[0] = "/nonexistent/tierd-root";
	r.n = 0;
	CHECK_INT(td_scheduler_measure(s, &conf), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT(r.n, 0);
	td_scheduler_free(s);
	CHECK_INT(uv_loop_close(&loop), 0);
	td_test_rmtree(t);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	TD_RUN(test_next_fire);
	TD_RUN(test_watermark_decision);
	TD_RUN(test_tick);
	TD_RUN(test_watermarks_from_figures);
	TD_RUN(test_target_back);
	TD_RUN(test_measure);
	return td_test_done();
}
