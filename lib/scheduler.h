/*
 * scheduler — when each policy runs: at its schedule's times, when the filesystem
 * of its first root is fuller than its high watermark, and once more when a
 * target comes back after a run that found it down.
 *
 * The scheduler decides and the caller starts: every decision is one call of
 * the start callback. Its inputs are explicit: the configuration and the time
 * (td_scheduler_reschedule, td_scheduler_tick), the filesystems' fill figures
 * (td_scheduler_watermarks, fed by td_scheduler_measure from the thread pool, or by a
 * test), the end of each run (td_scheduler_run_ended) and target reachability
 * (td_scheduler_on_reach, a td_reach subscriber). Loop thread only, but for the
 * statvfs calls of td_scheduler_measure, which run on libuv's thread pool: a root
 * may be on NFS, and the loop must not wait for it.
 */
#pragma once

#include "config.h"
#include "reach.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define TD_SCHEDULER_WATERMARK_EVERY_S 60

/* The next start of `sc` strictly after now_s (epoch seconds; hourly, daily
 * and weekly times are local time), or 0 for a manual schedule. */
int64_t td_scheduler_next_fire(const struct td_schedule *sc, int64_t now_s);

/* Whether a filesystem of `blocks` blocks with `bfree` free is above high_pct
 * (used = blocks - bfree, as df counts it); *used_pct gets the figure. False
 * for blocks == 0. */
bool td_scheduler_over_watermark(double high_pct, uint64_t blocks, uint64_t bfree,
                                 double *used_pct);

enum td_scheduler_reason {
	TD_SCHEDULER_TIME,        /* its schedule fired */
	TD_SCHEDULER_WATERMARK,   /* its filesystem is above the high watermark */
	TD_SCHEDULER_TARGET_BACK, /* its last run found the target down; it answers again */
};

struct td_scheduler_start {
	const char *policy;
	enum td_scheduler_reason why;
	/* TD_SCHEDULER_WATERMARK only: */
	const char *root;
	double used_pct, high_pct;
};

/* Asks the caller to start a policy run (the caller knows whether one is
 * already running, or whether it may start runs at all). */
typedef void (*td_scheduler_cb)(void *data, const struct td_scheduler_start *st);

/* One policy's filesystem, as measured. */
struct td_scheduler_fill {
	const char *policy;
	const char *root;
	double high_pct;
	bool ok; /* statvfs succeeded */
	uint64_t blocks, bfree;
};

struct td_scheduler;

/* Returns 0 or -ENOMEM. `loop` is where td_scheduler_measure's results arrive. */
int td_scheduler_new(struct td_scheduler **out, uv_loop_t *loop, td_scheduler_cb start, void *data);
/* Accepts NULL. Not while a td_scheduler_measure is pending: run the loop first. */
void td_scheduler_free(struct td_scheduler *s);

/* Takes the policies of `c` (copying their names), each next start computed
 * from now_s; a policy kept across a reload keeps its "re-run when the target
 * is back" mark. Returns 0 or -ENOMEM (the old schedule stays). */
int td_scheduler_reschedule(struct td_scheduler *s, const struct td_config *c, int64_t now_s);

/* Starts every policy whose time has come, and measures the watermark
 * policies' filesystems (td_scheduler_measure) once every
 * TD_SCHEDULER_WATERMARK_EVERY_S. `c` is the configuration last rescheduled. */
void td_scheduler_tick(struct td_scheduler *s, const struct td_config *c, int64_t now_s);

/* Starts every policy in `f` that is above its high watermark. */
void td_scheduler_watermarks(struct td_scheduler *s, const struct td_scheduler_fill *f, size_t n);

/* Measures the first root of each watermark policy of `c` on the thread pool,
 * then calls td_scheduler_watermarks on the loop. Returns 0, -EALREADY while a
 * measurement is pending, or -errno (no call then). */
int td_scheduler_measure(struct td_scheduler *s, const struct td_config *c);

/* A run of `policy` ended; target_down: it met its target unreachable, so it
 * runs again once a target answers (td_scheduler_on_reach). */
void td_scheduler_run_ended(struct td_scheduler *s, const char *policy, bool target_down);

/* A td_reach subscriber (data: the td_sched). A reachable report re-runs every
 * policy marked by td_scheduler_run_ended, once. */
void td_scheduler_on_reach(void *data, const struct td_reach_event *ev);

/* The next scheduled start of `policy` (0: none or unknown), for tests and status. */
int64_t td_scheduler_next(const struct td_scheduler *s, const char *policy);
