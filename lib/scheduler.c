/*
 * scheduler — see scheduler.h. The scheduler owns one entry per policy of the last
 * configuration it was given (a copy of the name, the next start, the re-run
 * mark) and, while a measurement is out, the copies of the roots it measures.
 * It never starts anything itself: its decisions go to the start callback.
 */
#include "scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

struct policy_sched {
	char *name;
	int64_t next_s; /* next scheduled start, epoch seconds; 0 = none */
	bool rerun_when_reachable;
};

struct td_scheduler {
	uv_loop_t *loop;
	td_scheduler_cb start;
	void *data;
	struct policy_sched *p;
	size_t n;
	int64_t last_watermark_s;
	bool measuring;
};

/* ---- times ----------------------------------------------------------------- */

static int64_t next_daily(const struct td_schedule *sc, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;

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
}

int64_t td_scheduler_next_fire(const struct td_schedule *sc, int64_t now)
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
		return next_daily(sc, now);
	default:
		return 0;
	}
}

/* ---- the schedule ------------------------------------------------------------ */

int td_scheduler_new(struct td_scheduler **out, uv_loop_t *loop, td_scheduler_cb start, void *data)
{
	struct td_scheduler *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->start = start;
	s->data = data;
	*out = s;
	return 0;
}

static void free_entries(struct policy_sched *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].name);
	free(p);
}

void td_scheduler_free(struct td_scheduler *s)
{
	if (!s)
		return;
	free_entries(s->p, s->n);
	free(s);
}

static struct policy_sched *find(const struct td_scheduler *s, const char *policy)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->p[i].name, policy) == 0)
			return &s->p[i];
	return NULL;
}

int td_scheduler_reschedule(struct td_scheduler *s, const struct td_config *c, int64_t now_s)
{
	struct policy_sched *n = calloc(c->n_policies ? c->n_policies : 1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_policies; i++) {
		const struct policy_sched *old = find(s, c->policies[i].name);

		n[i].name = strdup(c->policies[i].name);
		if (!n[i].name) {
			free_entries(n, i);
			return -ENOMEM;
		}
		n[i].next_s = td_scheduler_next_fire(&c->policies[i].schedule, now_s);
		n[i].rerun_when_reachable = old && old->rerun_when_reachable;
	}
	free_entries(s->p, s->n);
	s->p = n;
	s->n = c->n_policies;
	return 0;
}

int64_t td_scheduler_next(const struct td_scheduler *s, const char *policy)
{
	const struct policy_sched *p = find(s, policy);

	return p ? p->next_s : 0;
}

void td_scheduler_tick(struct td_scheduler *s, const struct td_config *c, int64_t now_s)
{
	if (now_s - s->last_watermark_s >= TD_SCHEDULER_WATERMARK_EVERY_S) {
		s->last_watermark_s = now_s;
		td_scheduler_measure(s, c);
	}
	for (size_t i = 0; i < s->n && i < c->n_policies; i++) {
		struct td_scheduler_start st = { .policy = c->policies[i].name,
			                         .why = TD_SCHEDULER_TIME };

		if (!s->p[i].next_s || now_s < s->p[i].next_s)
			continue;
		s->p[i].next_s = td_scheduler_next_fire(&c->policies[i].schedule, now_s);
		s->start(s->data, &st);
	}
}

void td_scheduler_run_ended(struct td_scheduler *s, const char *policy, bool target_down)
{
	struct policy_sched *p = find(s, policy);

	if (p && target_down)
		p->rerun_when_reachable = true;
}

void td_scheduler_on_reach(void *data, const struct td_reach_event *ev)
{
	struct td_scheduler *s = data;

	if (!ev->reachable)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct td_scheduler_start st = { .policy = s->p[i].name,
			                         .why = TD_SCHEDULER_TARGET_BACK };

		if (!s->p[i].rerun_when_reachable)
			continue;
		s->p[i].rerun_when_reachable = false;
		s->start(s->data, &st);
	}
}

/* ---- watermarks ---------------------------------------------------------------- */

bool td_scheduler_over_watermark(double high_pct, uint64_t blocks, uint64_t bfree, double *used_pct)
{
	double used;

	if (!blocks)
		return false;
	used = 100.0 * (double)(blocks - bfree) / (double)blocks;
	if (used_pct)
		*used_pct = used;
	return used > high_pct;
}

void td_scheduler_watermarks(struct td_scheduler *s, const struct td_scheduler_fill *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct td_scheduler_start st = { .policy = f[i].policy,
			                         .why = TD_SCHEDULER_WATERMARK,
			                         .root = f[i].root,
			                         .high_pct = f[i].high_pct };

		if (f[i].ok && td_scheduler_over_watermark(f[i].high_pct, f[i].blocks, f[i].bfree,
		                                           &st.used_pct))
			s->start(s->data, &st);
	}
}

/* A measurement owns copies of what it measures: a reload may free the
 * configuration while the thread pool is still at it. */
struct measure {
	uv_work_t work;
	struct td_scheduler *s;
	struct td_scheduler_fill *f;
	size_t n;
};

static void measure_free(struct measure *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free((char *)m->f[i].policy);
		free((char *)m->f[i].root);
	}
	free(m->f);
	free(m);
}

static void w_measure(uv_work_t *w)
{
	struct measure *m = w->data;

	for (size_t i = 0; i < m->n; i++) {
		struct statvfs v;

		m->f[i].ok = statvfs(m->f[i].root, &v) == 0;
		if (m->f[i].ok) {
			m->f[i].blocks = v.f_blocks;
			m->f[i].bfree = v.f_bfree;
		}
	}
}

static void a_measure(uv_work_t *w, int status)
{
	struct measure *m = w->data;

	m->s->measuring = false;
	if (status == 0)
		td_scheduler_watermarks(m->s, m->f, m->n);
	measure_free(m);
}

static struct measure *measure_new(const struct td_config *c)
{
	struct measure *m = calloc(1, sizeof(*m));

	if (!m || !(m->f = calloc(c->n_policies ? c->n_policies : 1, sizeof(*m->f)))) {
		free(m);
		return NULL;
	}
	for (size_t i = 0; i < c->n_policies; i++) {
		const struct td_policy_conf *pc = &c->policies[i];
		struct td_scheduler_fill *f = &m->f[m->n];

		if (!pc->has_watermarks || !pc->paths.n)
			continue;
		f->policy = strdup(pc->name);
		f->root = strdup(pc->paths.v[0]);
		f->high_pct = pc->high_watermark_pct;
		m->n++;
		if (!f->policy || !f->root) {
			measure_free(m);
			return NULL;
		}
	}
	return m;
}

int td_scheduler_measure(struct td_scheduler *s, const struct td_config *c)
{
	struct measure *m;
	int r;

	if (s->measuring)
		return -EALREADY;
	m = measure_new(c);
	if (!m)
		return -ENOMEM;
	if (m->n == 0) {
		measure_free(m);
		return 0;
	}
	m->s = s;
	m->work.data = m;
	r = uv_queue_work(s->loop, &m->work, w_measure, a_measure);
	if (r < 0) {
		measure_free(m);
		return r;
	}
	s->measuring = true;
	return 0;
}
