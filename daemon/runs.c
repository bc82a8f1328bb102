/*
 * runs — the daemon's side of policy runs and their schedule. The pipeline
 * itself is lib/run, the decisions when to run are lib/sched; this file starts
 * the runs they ask for, keeps the configuration a run started with alive until
 * it ends (a reload may replace it meanwhile), logs and counts each file, and
 * turns runs into status JSON. Loop thread only.
 *
 * The scheduler hears of target reachability as a td_reach subscriber
 * (runs_init): a run that met its target down runs again once it answers.
 */
#include "log.h"
#include "plan.h"
#include "run.h"
#include "scheduler.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct svc_run {
	struct svc_run *next;
	struct service *s;
	struct conf_ref *conf; /* held until the run ends */
	const struct td_policy_conf *pc;
	struct td_run *run;
};

/* ---- one run's events --------------------------------------------------------- */

static void on_file(void *data, struct td_run *run, const struct td_mover_result *res)
{
	struct svc_run *sr = data;
	struct service *s = sr->s;
	char *esc = td_escape(res->path, res->path_len);

	switch (res->outcome) {
	case TD_MOVER_TIERED:
		s->files_tiered++;
		s->bytes_tiered += res->size_bytes;
		log_info("tiered %s (%s)", esc ? esc : "?", res->id);
		break;
	case TD_MOVER_FAILED:
		s->files_failed++;
		if (td_reach_unreachable(res->status)) {
			struct target_slot *ts = svc_target(s, sr->pc->target);

			if (ts)
				svc_target_result(s, ts, res->status, res->message);
		}
		svc_error_kind(s, NULL, "policy %s: %s: %s", td_run_policy(run), esc ? esc : "?",
		               res->message); /* the mover counted it */
		break;
	default:
		log_info("not tiered: %s: %s", esc ? esc : "?", res->message);
	}
	free(esc);
}

static void on_queue_failed(void *data, struct td_run *run, const char *path, size_t len, int err)
{
	struct svc_run *sr = data;
	char *esc = td_escape(path, len);

	svc_error(sr->s, "policy %s: cannot queue %s: %s", td_run_policy(run), esc ? esc : "?",
	          strerror(-err));
	free(esc);
}

/* Keeps when `name`'s last run ended, for the metrics. */
static void runs_note_ended(struct service *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n_last_runs; i++)
		if (strcmp(s->last_runs[i].policy, name) == 0)
			break;
	if (i == s->n_last_runs) {
		if (i == TD_ARRAY_SIZE(s->last_runs) ||
		    strlen(name) >= sizeof(s->last_runs[i].policy))
			return;
		snprintf(s->last_runs[i].policy, sizeof(s->last_runs[i].policy), "%s", name);
		s->n_last_runs++;
	}
	s->last_runs[i].ended_ns = td_now_ns();
}

static void on_done(void *data, struct td_run *run)
{
	struct svc_run *sr = data, **pp;
	struct service *s = sr->s;
	const char *name = td_run_policy(run);
	struct td_run_stats st;
	char skips[512];

	td_run_stats(run, &st);
	for (pp = &s->runs; *pp; pp = &(*pp)->next)
		if (*pp == sr) {
			*pp = sr->next;
			break;
		}
	if (st.scan_status < 0)
		svc_error(s, "policy %s: a root could not be scanned: %s", name,
		          strerror(-st.scan_status));
	/* The scan's reasons too, in plan's words: a run that moved nothing says why. */
	log_notice(
	    "policy %s: scanned %llu files (%llu bytes) and %llu links to tiered files in "
	    "%.1f s; tiered %llu (%llu bytes), skipped %llu, failed %llu; not candidates: %s",
	    name, (unsigned long long)st.scan.scanned_files,
	    (unsigned long long)st.scan.scanned_bytes, (unsigned long long)st.scan.links_seen,
	    (double)st.elapsed_ns / 1e9, (unsigned long long)st.tiered,
	    (unsigned long long)st.tiered_bytes, (unsigned long long)st.skipped,
	    (unsigned long long)st.failed, td_plan_skips_format(skips, sizeof(skips), &st.scan));
	if (st.link_error[0])
		svc_error(s, "policy %s: link sightings not recorded: %s", name, st.link_error);
	runs_note_ended(s, name);
	if (!s->stopping)
		td_scheduler_run_ended(s->sched, name, st.target_down);
	conf_put(sr->conf);
	free(sr);
}

/* ---- starting and stopping -------------------------------------------------- */

bool run_active(struct service *s, const char *policy)
{
	for (struct svc_run *r = s->runs; r; r = r->next)
		if (strcmp(td_run_policy(r->run), policy) == 0)
			return true;
	return false;
}

/* Why `policy` may not start now, into err; 0 when it may. */
static int run_refused(struct service *s, const struct td_policy_conf *pc, const char *policy,
                       char *err, size_t errlen)
{
	if (!pc) {
		snprintf(err, errlen, "no policy named '%s'", policy);
		return -ENOENT;
	}
	if (s->stopping) {
		snprintf(err, errlen, "tierd is stopping");
		return -ESHUTDOWN;
	}
	if (run_active(s, policy)) {
		snprintf(err, errlen, "policy %s is already running", policy);
		return -EALREADY;
	}
	if (!svc_target(s, pc->target) || !svc_target(s, pc->target)->t) {
		snprintf(err, errlen, "policy %s: target %s is not available", policy, pc->target);
		return -ENOENT;
	}
	return 0;
}

int run_start(struct service *s, const char *policy, char *err, size_t errlen)
{
	const struct td_policy_conf *pc = td_config_policy(s->conf->c, policy);
	struct td_run_opts o = { 0 };
	struct td_run_stats st;
	struct svc_run *sr;
	int rc;

	rc = run_refused(s, pc, policy, err, errlen);
	if (rc < 0)
		return rc;
	sr = calloc(1, sizeof(*sr));
	if (!sr) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sr->s = s;
	sr->conf = conf_get(s);
	sr->pc = pc;
	o.loop = s->loop;
	o.mover = s->mover;
	o.pc = pc;
	o.state_dir = sr->conf->c->state_dir;
	o.cache_dir = sr->conf->c->cache_dir;
	o.run_dir = sr->conf->c->run_dir;
	o.catalog_path = s->catalog_path;
	o.now_ns = td_now_ns();
	o.data = sr;
	o.on_file = on_file;
	o.on_queue_failed = on_queue_failed;
	o.on_done = on_done;
	rc = td_run_start(&sr->run, &o, err, errlen);
	if (rc < 0) {
		conf_put(sr->conf);
		free(sr);
		return rc;
	}
	td_run_stats(sr->run, &st);
	if (st.link_error[0])
		log_warning("policy %s: link sightings not recorded this run: %s", policy,
		            st.link_error);
	sr->next = s->runs;
	s->runs = sr;
	log_notice("policy %s: run started", policy);
	snprintf(err, errlen, "policy %s: run started", policy);
	return 0;
}

void runs_stop(struct service *s)
{
	for (struct svc_run *r = s->runs; r; r = r->next)
		td_run_stop(r->run);
}

json_t *runs_status(struct service *s)
{
	json_t *a = json_array();

	for (struct svc_run *r = s->runs; r; r = r->next) {
		struct td_run_stats st;

		td_run_stats(r->run, &st);
		json_array_append_new(
		    a,
		    json_pack("{s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:f}", "policy",
		              td_run_policy(r->run), "scanned_files", (json_int_t)st.scanned_files,
		              "queued", (int)st.queued, "in_flight", (int)st.in_mover, "tiered",
		              (json_int_t)st.tiered, "tiered_bytes", (json_int_t)st.tiered_bytes,
		              "skipped", (json_int_t)st.skipped, "failed", (json_int_t)st.failed,
		              "elapsed_s", (double)st.elapsed_ns / 1e9));
	}
	return a;
}

/* ---- the schedule --------------------------------------------------------------- */

/* What the scheduler asks for; runs start only once recovery is over. */
static void on_sched_start(void *data, const struct td_scheduler_start *st)
{
	struct service *s = data;
	char err[256];

	if (s->stopping || !s->mover_ready)
		return;
	if (st->why == TD_SCHEDULER_TARGET_BACK) {
		if (run_start(s, st->policy, err, sizeof(err)) == 0)
			log_notice("policy %s: target back, running again", st->policy);
		return;
	}
	if (st->why == TD_SCHEDULER_WATERMARK)
		log_notice("policy %s: %s is %.1f%% full (high watermark %.0f%%)", st->policy,
		           st->root, st->used_pct, st->high_pct);
	if (!run_active(s, st->policy) && run_start(s, st->policy, err, sizeof(err)) < 0)
		svc_error(s, "%s", err);
}

int runs_init(struct service *s)
{
	int r = td_scheduler_new(&s->sched, s->loop, on_sched_start, s);

	if (r == 0)
		r = td_reach_subscribe(s->reach, td_scheduler_on_reach, s->sched);
	return r;
}

void runs_reschedule(struct service *s)
{
	td_scheduler_reschedule(s->sched, s->conf->c, td_now_ns() / 1000000000);
}

void runs_tick(struct service *s, int64_t now_s)
{
	td_scheduler_tick(s->sched, s->conf->c, now_s);
}
