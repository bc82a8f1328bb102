/*
 * reach — whether each target answers, and who wants to know when that changes.
 *
 * td_reach_unreachable() is the one place that decides which errors mean "the
 * target is not there" (connection-level failures) as opposed to "the target
 * answered, even if with an error"; td_reach_refused() the answers that refuse
 * our requests (authentication), which make a target unusable all the same. A td_reach keeps the
 * last verdict for each named target and publishes every report to its subscribers (the daemon's
 * logger, the scheduler that re-runs policies once a target is back), in the
 * order they subscribed. Loop thread only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_REACH_MAX_SUBS 4

/* True for the errors that mean the target could not be reached: ECONNREFUSED,
 * EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, EAGAIN, ECONNRESET (negative errno). */
bool td_reach_unreachable(int status);
/* True for the answers that refuse us (EACCES, EPERM: a wrong secret, a
 * signature the server rejects, a bucket we may not use). A target that
 * answers so is not reachable for tiering either: td_reach_report counts it as
 * unreachable and its last_error says "it answers but refuses our requests". */
bool td_reach_refused(int status);

struct td_reach_state {
	bool checked; /* a probe or a transfer has told us something */
	bool reachable;
	int64_t checked_ns;
	char last_error[256]; /* "" while reachable */
};

enum td_reach_change {
	TD_REACH_SAME, /* first verdict, or the same as before */
	TD_REACH_LOST, /* was reachable, is not */
	TD_REACH_BACK, /* was unreachable, is again */
};

struct td_reach_event {
	const char *target;
	bool reachable;
	enum td_reach_change change;
	const char *message; /* the message reported with it, as passed (may be NULL) */
};

/* Called for every report, with the state already updated. */
typedef void (*td_reach_cb)(void *data, const struct td_reach_event *ev);

struct td_reach;

/* A hub for the targets `names` (copied). Returns 0 or -ENOMEM. */
int td_reach_new(struct td_reach **out, const char *const *names, size_t n);
/* Accepts NULL. */
void td_reach_free(struct td_reach *r);
/* Returns 0, or -ENOSPC beyond TD_REACH_MAX_SUBS subscribers. */
int td_reach_subscribe(struct td_reach *r, td_reach_cb cb, void *data);

/* Records what an operation on `target` returned (0 or a negative errno; msg
 * may be NULL) and publishes it. Returns -ENOENT for an unknown target. */
int td_reach_report(struct td_reach *r, const char *target, int status, const char *msg,
                    int64_t now_ns);

/* The state of `target`, or NULL for an unknown one. */
const struct td_reach_state *td_reach_get(const struct td_reach *r, const char *target);
/* True unless `target` is known to be down: a target never checked is tried. */
bool td_reach_usable(const struct td_reach *r, const char *target);
