/*
 * runs — policy runs. A run walks the policy's roots on a thread of its own
 * (td_scan_run starts its workers there) and hands candidates to the loop
 * through a bounded queue: when the mover falls behind, the scanner waits, so
 * memory stays flat however many files qualify. Link sightings go straight to
 * the catalog from the scan threads (their own handle, under a lock).
 *
 * Schedules and watermark checks are driven by the service's one-second tick.
 */
#include "log.h"
#include "policy.h"
#include "scan.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#define RUN_QUEUE_CAP     1024 /* candidates waiting between the scanner and the loop */
#define MOVER_FEED        64   /* files handed to the mover ahead of need */
#define WATERMARK_EVERY_S 60

struct cand {
	struct cand *next;
	size_t root;
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	size_t len;
	char path[];
};

struct run {
	struct service *s;
	struct run *next;
	struct conf_ref *conf;
	const struct td_policy_conf *pc;
	struct td_policy *policy;
	char *name;
	uv_thread_t thread;
	bool thread_started;
	uv_async_t async;

	uv_mutex_t lock; /* guards the fields up to `stats` */
	uv_cond_t cond;
	struct cand *head, *tail;
	unsigned n_q;
	bool scan_done;
	bool stop;
	uint64_t progress_files;
	struct td_scan_stats stats;
	int scan_r;

	struct td_catalog *lcat; /* link sightings, under lcat_lock */
	uv_mutex_t lcat_lock;

	/* Loop thread only. */
	unsigned in_mover;
	uint64_t tiered, skipped, failed, bytes;
	int64_t start_ns;
	bool target_down;
	bool finishing;
};

/* ---- the scan thread ------------------------------------------------------ */

static void on_candidate(void *ctx, const struct td_scan_entry *e)
{
	struct run *r = ctx;
	struct cand *c = malloc(sizeof(*c) + e->path_len + 1);

	if (!c)
		return; /* retried on the next run */
	c->next = NULL;
	c->root = e->root;
	c->dev = e->dev;
	c->ino = e->ino;
	c->size = e->meta->size;
	c->mtime_ns = e->meta->mtime_ns;
	c->ctime_ns = e->meta->ctime_ns;
	c->len = e->path_len;
	memcpy(c->path, e->path, e->path_len);
	c->path[e->path_len] = '\0';
	uv_mutex_lock(&r->lock);
	while (r->n_q >= RUN_QUEUE_CAP && !r->stop)
		uv_cond_wait(&r->cond, &r->lock);
	if (r->stop) {
		uv_mutex_unlock(&r->lock);
		free(c);
		return;
	}
	if (r->tail)
		r->tail->next = c;
	else
		r->head = c;
	r->tail = c;
	r->n_q++;
	uv_mutex_unlock(&r->lock);
	uv_async_send(&r->async);
}

static void on_link(void *ctx, size_t root, const char *id, const char *path, size_t len)
{
	struct run *r = ctx;
	const char *rp = r->pc->paths.v[root];
	size_t rl = strlen(rp);
	struct td_catalog_error ce;
	char *abs = malloc(rl + 1 + len + 1);

	if (!abs || !r->lcat) {
		free(abs);
		return;
	}
	memcpy(abs, rp, rl);
	abs[rl] = '/';
	memcpy(abs + rl + 1, path, len);
	uv_mutex_lock(&r->lcat_lock);
	td_catalog_link_seen(r->lcat, id, abs, rl + 1 + len, td_now_ns(), &ce);
	uv_mutex_unlock(&r->lcat_lock);
	free(abs);
}

static void on_progress(void *ctx, uint64_t files, uint64_t dirs, int64_t elapsed_ns)
{
	struct run *r = ctx;

	uv_mutex_lock(&r->lock);
	r->progress_files = files;
	uv_mutex_unlock(&r->lock);
}

static void scan_thread(void *arg)
{
	struct run *r = arg;
	const struct td_config *c = r->conf->c;
	struct td_scan_opts o = { 0 };
	struct td_scan_stats st;
	int rc;

	o.policy = r->policy;
	o.state_dir = c->state_dir;
	o.cache_dir = c->cache_dir;
	o.run_dir = c->run_dir;
	o.ctx = r;
	o.on_candidate = on_candidate;
	o.on_link = on_link;
	o.on_progress = on_progress;
	rc = td_scan_run(&st, &o);
	uv_mutex_lock(&r->lock);
	r->stats = st;
	r->scan_r = rc;
	r->scan_done = true;
	uv_mutex_unlock(&r->lock);
	uv_async_send(&r->async);
}

/* ---- the loop side ---------------------------------------------------------- */

static void drain(struct run *r);

static void run_closed(uv_handle_t *h)
{
	struct run *r = h->data;

	while (r->head) {
		struct cand *c = r->head;

		r->head = c->next;
		free(c);
	}
	if (r->lcat)
		td_catalog_close(r->lcat);
	uv_mutex_destroy(&r->lcat_lock);
	uv_mutex_destroy(&r->lock);
	uv_cond_destroy(&r->cond);
	td_policy_free(r->policy);
	conf_put(r->conf);
	free(r->name);
	free(r);
}

static void maybe_finish(struct run *r)
{
	struct service *s = r->s;
	struct run **pp;
	bool done;

	uv_mutex_lock(&r->lock);
	done = r->scan_done && (r->n_q == 0 || r->stop);
	uv_mutex_unlock(&r->lock);
	if (!done || r->in_mover || r->finishing)
		return;
	r->finishing = true;
	uv_thread_join(&r->thread);
	for (pp = &s->runs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->scan_r < 0)
		svc_error(s, "policy %s: a root could not be scanned: %s", r->name,
		          strerror(-r->scan_r));
	log_notice("policy %s: scanned %llu files (%llu bytes) in %.1f s; tiered %llu "
	           "(%llu bytes), skipped %llu, failed %llu",
	           r->name, (unsigned long long)r->stats.scanned_files,
	           (unsigned long long)r->stats.scanned_bytes,
	           (double)(td_monotonic_ns() - r->start_ns) / 1e9, (unsigned long long)r->tiered,
	           (unsigned long long)r->bytes, (unsigned long long)r->skipped,
	           (unsigned long long)r->failed);
	if (r->target_down && !s->stopping)
		for (size_t i = 0; i < s->n_sched; i++)
			if (strcmp(s->sched[i].name, r->name) == 0)
				s->sched[i].rerun_when_reachable = true;
	uv_close((uv_handle_t *)&r->async, run_closed);
}

static void on_file(void *data, const struct td_mover_result *res)
{
	struct run *r = data;
	struct service *s = r->s;
	char *esc = td_escape(res->path, res->path_len);

	r->in_mover--;
	switch (res->outcome) {
	case TD_MOVER_TIERED:
		r->tiered++;
		r->bytes += res->size_bytes;
		s->files_tiered++;
		s->bytes_tiered += res->size_bytes;
		log_info("tiered %s (%s)", esc ? esc : "?", res->id);
		break;
	case TD_MOVER_FAILED:
		r->failed++;
		s->files_failed++;
		if (res->status == -ECONNREFUSED || res->status == -EHOSTUNREACH ||
		    res->status == -ETIMEDOUT || res->status == -EAGAIN) {
			struct target_slot *ts = svc_target(s, r->pc->target);

			r->target_down = true;
			if (ts)
				svc_target_result(s, ts, res->status, res->message);
		}
		svc_error(s, "policy %s: %s: %s", r->name, esc ? esc : "?", res->message);
		break;
	default:
		r->skipped++;
		if (res->status == -EHOSTDOWN)
			r->target_down = true; /* skipped: rerun when it is back */
		log_info("not tiered: %s: %s", esc ? esc : "?", res->message);
	}
	free(esc);
	drain(r);
	maybe_finish(r);
}

static void drain(struct run *r)
{
	struct service *s = r->s;

	while (!s->stopping && s->mover && td_mover_queued(s->mover) < MOVER_FEED) {
		struct td_mover_file f = { 0 };
		struct cand *c;
		int rc;

		uv_mutex_lock(&r->lock);
		c = r->head;
		if (c) {
			r->head = c->next;
			if (!r->head)
				r->tail = NULL;
			r->n_q--;
			uv_cond_signal(&r->cond);
		}
		uv_mutex_unlock(&r->lock);
		if (!c)
			break;
		f.root = r->pc->paths.v[c->root];
		f.rel = c->path;
		f.rel_len = c->len;
		f.policy = r->name;
		f.target = r->pc->target;
		f.keep_cached = r->pc->keep_cached;
		f.check_stat = true;
		f.dev = c->dev;
		f.ino = c->ino;
		f.size_bytes = c->size;
		f.mtime_ns = c->mtime_ns;
		f.ctime_ns = c->ctime_ns;
		rc = td_mover_migrate(s->mover, &f, on_file, r);
		if (rc == 0) {
			r->in_mover++;
		} else {
			char *esc = td_escape(c->path, c->len);

			r->failed++;
			svc_error(s, "policy %s: cannot queue %s: %s", r->name, esc ? esc : "?",
			          strerror(-rc));
			free(esc);
		}
		free(c);
	}
}

static void on_async(uv_async_t *a)
{
	struct run *r = a->data;

	drain(r);
	maybe_finish(r);
}

bool run_active(struct service *s, const char *policy)
{
	for (struct run *r = s->runs; r; r = r->next)
		if (strcmp(r->name, policy) == 0)
			return true;
	return false;
}

int run_start(struct service *s, const char *policy, char *err, size_t errlen)
{
	const struct td_policy_conf *pc = td_config_policy(s->conf->c, policy);
	struct td_catalog_error ce;
	struct run *r;
	int rc;

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
	r = calloc(1, sizeof(*r));
	if (!r || !(r->name = strdup(policy))) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->s = s;
	r->conf = conf_get(s);
	r->pc = pc;
	r->start_ns = td_monotonic_ns();
	rc = td_policy_new(&r->policy, pc, td_now_ns());
	if (rc < 0) {
		snprintf(err, errlen, "policy %s: %s", policy, strerror(-rc));
		conf_put(r->conf);
		free(r->name);
		free(r);
		return rc;
	}
	uv_mutex_init(&r->lock);
	uv_mutex_init(&r->lcat_lock);
	uv_cond_init(&r->cond);
	if (td_catalog_open(&r->lcat, s->catalog_path, TD_CATALOG_NO_CHECK, &ce) < 0) {
		log_warning("policy %s: link sightings not recorded this run: %s", policy,
		            ce.message);
		r->lcat = NULL;
	}
	uv_async_init(s->loop, &r->async, on_async);
	r->async.data = r;
	r->next = s->runs;
	s->runs = r;
	rc = uv_thread_create(&r->thread, scan_thread, r);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the scan: %s", uv_strerror(rc));
		r->scan_done = true;
		r->finishing = true;
		s->runs = r->next;
		uv_close((uv_handle_t *)&r->async, run_closed);
		return rc;
	}
	r->thread_started = true;
	log_notice("policy %s: run started", policy);
	snprintf(err, errlen, "policy %s: run started", policy);
	return 0;
}

void runs_stop(struct service *s)
{
	for (struct run *r = s->runs; r; r = r->next) {
		uv_mutex_lock(&r->lock);
		r->stop = true;
		uv_cond_broadcast(&r->cond);
		uv_mutex_unlock(&r->lock);
	}
}

json_t *runs_status(struct service *s)
{
	json_t *a = json_array();

	for (struct run *r = s->runs; r; r = r->next) {
		uint64_t files;
		unsigned q;

		uv_mutex_lock(&r->lock);
		files = r->progress_files;
		q = r->n_q;
		uv_mutex_unlock(&r->lock);
		json_array_append_new(
		    a, json_pack("{s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:f}", "policy", r->name,
		                 "scanned_files", (json_int_t)files, "queued", (int)q, "in_flight",
		                 (int)r->in_mover, "tiered", (json_int_t)r->tiered, "tiered_bytes",
		                 (json_int_t)r->bytes, "skipped", (json_int_t)r->skipped, "failed",
		                 (json_int_t)r->failed, "elapsed_s",
		                 (double)(td_monotonic_ns() - r->start_ns) / 1e9));
	}
	return a;
}

/* ---- schedules and watermarks ------------------------------------------------ */

static int64_t next_fire(const struct td_schedule *sc, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;

	switch (sc->kind) {
	case TD_SCHEDULE_EVERY:
		return now + (sc->every_s > 0 ? sc->every_s : 60);
	case TD_SCHEDULE_HOURLY:
		localtime_r(&t, &tm);
		tm.tm_min = sc->minute;
		tm.tm_sec = 0;
		t = mktime(&tm);
		return t > now ? t : t + 3600;
	case TD_SCHEDULE_DAILY:
	case TD_SCHEDULE_WEEKLY:
		localtime_r(&t, &tm);
		tm.tm_hour = sc->hour;
		tm.tm_min = sc->minute;
		tm.tm_sec = 0;
		if (sc->kind == TD_SCHEDULE_WEEKLY)
			tm.tm_mday += (sc->weekday - tm.tm_wday + 7) % 7;
		tm.tm_isdst = -1;
		t = mktime(&tm);
		while (t <= now) {
			tm.tm_mday += sc->kind == TD_SCHEDULE_WEEKLY ? 7 : 1;
			tm.tm_isdst = -1;
			t = mktime(&tm);
		}
		return t;
	default:
		return 0;
	}
}

void runs_reschedule(struct service *s)
{
	const struct td_config *c = s->conf->c;
	struct policy_sched *n = calloc(c->n_policies ? c->n_policies : 1, sizeof(*n));
	int64_t now = td_now_ns() / 1000000000;

	if (!n)
		return;
	for (size_t i = 0; i < c->n_policies; i++) {
		n[i].name = strdup(c->policies[i].name);
		n[i].next_s = next_fire(&c->policies[i].schedule, now);
		for (size_t k = 0; k < s->n_sched; k++)
			if (strcmp(s->sched[k].name, c->policies[i].name) == 0)
				n[i].rerun_when_reachable = s->sched[k].rerun_when_reachable;
	}
	for (size_t k = 0; k < s->n_sched; k++)
		free(s->sched[k].name);
	free(s->sched);
	s->sched = n;
	s->n_sched = c->n_policies;
}

void runs_tick(struct service *s, int64_t now)
{
	const struct td_config *c = s->conf->c;
	bool check_marks = now - s->last_watermark_s >= WATERMARK_EVERY_S;
	char err[256];

	if (check_marks)
		s->last_watermark_s = now;
	for (size_t i = 0; i < s->n_sched && i < c->n_policies; i++) {
		const struct td_policy_conf *pc = &c->policies[i];
		bool start = false;

		if (s->sched[i].next_s && now >= s->sched[i].next_s) {
			s->sched[i].next_s = next_fire(&pc->schedule, now);
			start = true;
		}
		if (check_marks && pc->has_watermarks && pc->paths.n) {
			struct statvfs v;

			if (statvfs(pc->paths.v[0], &v) == 0 && v.f_blocks) {
				double used =
				    100.0 * (double)(v.f_blocks - v.f_bfree) / (double)v.f_blocks;

				if (used > pc->high_watermark_pct) {
					log_notice("policy %s: %s is %.1f%% full (high watermark "
					           "%.0f%%)",
					           pc->name, pc->paths.v[0], used,
					           pc->high_watermark_pct);
					start = true;
				}
			}
		}
		if (start && !run_active(s, pc->name) &&
		    run_start(s, pc->name, err, sizeof(err)) < 0)
			svc_error(s, "%s", err);
	}
}
