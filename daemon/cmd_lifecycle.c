/*
 * cmd_lifecycle — the control commands `verify` and `gc`, gc's schedule, and
 * what `status` shows of the last of each.
 *
 * A verify or a gc runs on a thread of its own (lib/verify.c, lib/gc.c: they
 * make their own target calls on a private loop and block on SQLite and the
 * filesystem), never on the loop and never holding one of libuv's pool
 * threads for minutes. One runs at a time. Its events come to the loop through
 * a bounded queue and an async handle and are streamed to the client like
 * migrate's; when the queue is full the worker waits, so a slow reader slows
 * the work instead of growing memory. A client that goes away cancels it (it
 * stops between rows; verify keeps its checkpoint). The thread also stores the
 * report in the catalog ("verify.last", "gc.last"), so status shows it after
 * a restart.
 *
 * Loop thread, but for the worker thread's body and its on_event.
 */
#include "gc.h"
#include "log.h"
#include "catalog_life.h"
#include "scheduler.h"
#include "service_int.h"
#include "util.h"
#include "verify.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_QUEUE_CAP 256

enum life_kind { LIFE_VERIFY, LIFE_GC };

struct ev {
	struct ev *next;
	json_t *msg;
};

struct life_job {
	struct service *s;
	struct client *c; /* NULL for a scheduled gc */
	enum life_kind kind;
	struct conf_ref *conf;
	uv_thread_t thread;
	uv_async_t async;
	atomic_bool cancel;

	uv_mutex_t lock; /* guards the queue and `done` */
	uv_cond_t cond;
	struct ev *head, *tail;
	unsigned n_q;
	bool done;

	/* the thread's inputs and outputs */
	struct td_verify_opts vo;
	struct td_gc_opts go;
	char **paths;
	size_t n_paths;
	char *policy;
	json_t *report;
	int rc;
	char catalog_path[4096];
};

struct svc_life {
	struct life_job *job;
	json_t *last[2]; /* the reports, as stored */
	bool loaded, loading;
	struct td_schedule gc_sched;
	int64_t next_gc_s;
	uv_work_t load;
	json_t *loaded_v[2]; /* w_load's result, taken on the loop */
};

static const char *const kind_name[] = { "verify", "gc" };
static const char *const record_name[] = { "verify.last", "gc.last" };

static struct svc_life *life_of(struct service *s)
{
	if (!s->life)
		s->life = calloc(1, sizeof(*s->life));
	return s->life;
}

/* ---- the worker thread --------------------------------------------------------- */

static void on_event(void *ctx, json_t *msg)
{
	struct life_job *j = ctx;
	struct ev *e = malloc(sizeof(*e));

	if (!e) {
		json_decref(msg);
		return;
	}
	e->next = NULL;
	e->msg = msg;
	uv_mutex_lock(&j->lock);
	while (j->n_q >= EVENT_QUEUE_CAP && !atomic_load(&j->cancel))
		uv_cond_wait(&j->cond, &j->lock);
	if (j->tail)
		j->tail->next = e;
	else
		j->head = e;
	j->tail = e;
	j->n_q++;
	uv_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
}

static void store_report(struct life_job *j)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error ce;
	char *text;

	if (!j->report || (j->kind == LIFE_GC && j->go.dry_run))
		return; /* a dry run is not "the last gc" */
	text = json_dumps(j->report, JSON_COMPACT);
	if (text && td_catalog_open(&cat, j->catalog_path, TD_CATALOG_NO_CHECK, &ce) == 0)
		td_catalog_life_put(cat, record_name[j->kind], text, &ce);
	td_catalog_close(cat);
	free(text);
}

static void worker(void *arg)
{
	struct life_job *j = arg;

	if (j->kind == LIFE_VERIFY)
		j->rc = td_verify_run(&j->report, &j->vo);
	else
		j->rc = td_gc_run(&j->report, &j->go);
	store_report(j);
	uv_mutex_lock(&j->lock);
	j->done = true;
	uv_mutex_unlock(&j->lock);
	uv_async_send(&j->async);
}

/* ---- the loop side --------------------------------------------------------------- */

static void job_closed(uv_handle_t *h)
{
	struct life_job *j = h->data;

	while (j->head) {
		struct ev *e = j->head;

		j->head = e->next;
		json_decref(e->msg);
		free(e);
	}
	for (size_t i = 0; i < j->n_paths; i++)
		free(j->paths[i]);
	free(j->paths);
	free(j->policy);
	json_decref(j->report);
	conf_put(j->conf);
	uv_mutex_destroy(&j->lock);
	uv_cond_destroy(&j->cond);
	free(j);
}

static void log_event(struct life_job *j, json_t *ev)
{
	const char *outcome = json_string_value(json_object_get(ev, "outcome"));
	const char *path = json_string_value(json_object_get(ev, "path"));

	if (outcome && strcmp(outcome, "deleted") == 0)
		log_notice("gc: deleted the object of %s (%s): %s", path ? path : "?",
		           json_string_value(json_object_get(ev, "id")),
		           json_string_value(json_object_get(ev, "reason")));
	else if (outcome && strcmp(outcome, "failed") == 0)
		svc_error(j->s, "gc: %s: %s", path ? path : "?",
		          json_string_value(json_object_get(ev, "reason")));
	else if (json_object_get(ev, "class") &&
	         strcmp(json_string_value(json_object_get(ev, "severity")), "problem") == 0)
		log_warning("verify: %s: %s: %s", path ? path : "-",
		            json_string_value(json_object_get(ev, "class")),
		            json_string_value(json_object_get(ev, "message")));
}

static void job_finish(struct life_job *j)
{
	struct svc_life *L = j->s->life;
	const char *err = json_string_value(json_object_get(j->report, "error"));

	uv_thread_join(&j->thread);
	if (!(j->kind == LIFE_GC && j->go.dry_run) && j->report) {
		json_decref(L->last[j->kind]);
		L->last[j->kind] = json_incref(j->report);
	}
	if (err)
		svc_error(j->s, "%s: %s", kind_name[j->kind], err);
	else
		log_notice("%s done: %s", kind_name[j->kind],
		           j->kind == LIFE_VERIFY ? "see tierctl status" : "see tierctl status");
	if (j->c) {
		json_t *reply = j->rc < 0 ? td_ctl_error_reply(j->rc, "%s", err ? err : "failed")
		                          : json_pack("{s:b}", "ok", 1);

		json_object_set(reply, "report", j->report);
		client_send(j->c, reply);
		client_unref(j->c);
	}
	L->job = NULL;
	uv_close((uv_handle_t *)&j->async, job_closed);
}

static void on_async(uv_async_t *a)
{
	struct life_job *j = a->data;
	struct ev *list;
	bool done;

	uv_mutex_lock(&j->lock);
	list = j->head;
	j->head = j->tail = NULL;
	j->n_q = 0;
	done = j->done;
	uv_cond_broadcast(&j->cond);
	uv_mutex_unlock(&j->lock);
	while (list) {
		struct ev *e = list;

		list = e->next;
		log_event(j, e->msg);
		if (j->c && !j->c->closing)
			client_send(j->c, e->msg);
		else
			json_decref(e->msg);
		free(e);
	}
	if (j->c && j->c->closing && !atomic_load(&j->cancel)) {
		atomic_store(&j->cancel, true);
		uv_mutex_lock(&j->lock);
		uv_cond_broadcast(&j->cond);
		uv_mutex_unlock(&j->lock);
	}
	if (done)
		job_finish(j);
}

static struct life_job *job_new(struct service *s, struct client *c, enum life_kind kind)
{
	struct life_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->s = s;
	j->c = c;
	j->kind = kind;
	j->conf = conf_get(s);
	atomic_init(&j->cancel, false);
	uv_mutex_init(&j->lock);
	uv_cond_init(&j->cond);
	snprintf(j->catalog_path, sizeof(j->catalog_path), "%s", s->catalog_path);
	return j;
}

static int job_start(struct life_job *j, char *err, size_t errlen)
{
	struct svc_life *L = life_of(j->s);
	int r;

	uv_async_init(j->s->loop, &j->async, on_async);
	j->async.data = j;
	if (j->c)
		client_ref(j->c);
	r = uv_thread_create(&j->thread, worker, j);
	if (r < 0) {
		snprintf(err, errlen, "cannot start a thread: %s", uv_strerror(r));
		if (j->c)
			client_unref(j->c);
		j->c = NULL;
		uv_close((uv_handle_t *)&j->async, job_closed);
		return r;
	}
	L->job = j;
	return 0;
}

/* Whether a verify or gc may start now; replies to c with the reason if not. */
static bool may_start(struct service *s, struct client *c)
{
	struct svc_life *L = life_of(s);

	if (!L) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return false;
	}
	if (!s->mover_ready) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return false;
	}
	if (L->job) {
		client_send(c,
		            td_ctl_error_reply(-EBUSY, "a %s is running; try again when it is done",
		                               kind_name[L->job->kind]));
		return false;
	}
	return true;
}

static void job_sink(struct life_job *j, struct td_life_sink *sink)
{
	sink->ctx = j;
	sink->on_event = on_event;
	sink->cancel = &j->cancel;
}

void cmd_verify(struct service *s, struct client *c, json_t *args)
{
	const char *policy = json_string_value(json_object_get(args, "policy"));
	json_t *tl = json_object_get(args, "time_limit_s");
	char err[256];
	size_t *lens = NULL;
	struct life_job *j;
	int r;

	if (!may_start(s, c))
		return;
	if (policy && !td_config_policy(s->conf->c, policy)) {
		client_send(c, td_ctl_error_reply(-ENOENT, "no policy named '%s'", policy));
		return;
	}
	j = job_new(s, c, LIFE_VERIFY);
	if (!j) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	if (json_object_get(args, "paths") || json_object_get(args, "paths_b64")) {
		r = td_ctl_request_paths(args, TD_VERIFY_PATHS_MAX, &j->paths, &lens, &j->n_paths,
		                         err, sizeof(err));
		free(lens);
		if (r < 0) {
			client_send(c, td_ctl_error_reply(r, "%s", err));
			j->c = NULL;
			uv_async_init(s->loop, &j->async, on_async);
			j->async.data = j;
			uv_close((uv_handle_t *)&j->async, job_closed);
			return;
		}
	}
	j->policy = policy ? strdup(policy) : NULL;
	j->vo.conf = j->conf->c;
	j->vo.catalog_path = j->catalog_path;
	j->vo.deep = json_is_true(json_object_get(args, "deep"));
	j->vo.repair = json_is_true(json_object_get(args, "repair"));
	j->vo.restart = json_is_true(json_object_get(args, "restart"));
	j->vo.policy = j->policy;
	j->vo.paths = (const char *const *)j->paths;
	j->vo.n_paths = j->n_paths;
	j->vo.time_limit_s = json_is_integer(tl) ? json_integer_value(tl) : 0;
	job_sink(j, &j->vo.sink);
	if (job_start(j, err, sizeof(err)) < 0) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "%s", err));
		return;
	}
	log_notice("verify started%s%s", j->vo.deep ? " (deep)" : "",
	           j->vo.repair ? " (repair)" : "");
}

static int gc_start(struct service *s, struct client *c, bool dry_run, char *err, size_t errlen)
{
	struct life_job *j = job_new(s, c, LIFE_GC);

	if (!j) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->go.conf = j->conf->c;
	j->go.catalog_path = j->catalog_path;
	j->go.dry_run = dry_run;
	/* Tests: a day is too long to wait for an upload to become stale. */
	j->go.upload_age_s =
	    getenv("TD_GC_UPLOAD_AGE_S") ? atoll(getenv("TD_GC_UPLOAD_AGE_S")) : -1;
	job_sink(j, &j->go.sink);
	if (job_start(j, err, errlen) < 0)
		return -EAGAIN;
	log_notice("gc started%s", dry_run ? " (dry run)" : "");
	return 0;
}

void cmd_gc(struct service *s, struct client *c, json_t *args)
{
	char err[256];

	if (!may_start(s, c))
		return;
	if (gc_start(s, c, json_is_true(json_object_get(args, "dry_run")), err, sizeof(err)) < 0)
		client_send(c, td_ctl_error_reply(-EAGAIN, "%s", err));
}

/* ---- status, schedule, lifetime ------------------------------------------------------ */

static void w_load(uv_work_t *w)
{
	struct service *s = w->data;
	struct svc_life *L = s->life;
	struct td_catalog_error ce;

	uv_mutex_lock(&s->rcat_lock);
	for (int k = 0; k < 2; k++) {
		char *text = NULL;

		if (td_catalog_life_get(&text, NULL, s->rcat, record_name[k], &ce) == 0)
			L->loaded_v[k] = json_loads(text, 0, NULL);
		free(text);
	}
	uv_mutex_unlock(&s->rcat_lock);
}

static void a_load(uv_work_t *w, int status)
{
	struct service *s = w->data;

	struct svc_life *L = s->life;

	for (int k = 0; k < 2; k++) {
		if (!L->last[k])
			L->last[k] = L->loaded_v[k];
		else
			json_decref(L->loaded_v[k]);
		L->loaded_v[k] = NULL;
	}
	L->loading = false;
	L->loaded = true;
	log_debug("last verify and gc reports loaded (%s, %s)", L->last[0] ? "verify" : "-",
	          L->last[1] ? "gc" : "-");
}

void life_tick(struct service *s, int64_t now_s)
{
	struct svc_life *L = life_of(s);
	const struct td_schedule *sc = &s->conf->c->gc_schedule;
	char err[256];

	if (!L || s->stopping)
		return;
	if (!L->loaded && !L->loading && s->rcat) {
		L->loading = true;
		L->load.data = s;
		if (uv_queue_work(s->loop, &L->load, w_load, a_load) < 0)
			L->loading = false;
	}
	if (memcmp(sc, &L->gc_sched, sizeof(*sc)) != 0) {
		L->gc_sched = *sc;
		L->next_gc_s = td_scheduler_next_fire(sc, now_s);
	}
	if (!L->next_gc_s || now_s < L->next_gc_s || !s->mover_ready)
		return;
	if (L->job)
		return; /* when it is done: the next tick */
	L->next_gc_s = td_scheduler_next_fire(sc, now_s);
	if (gc_start(s, NULL, false, err, sizeof(err)) < 0)
		svc_error(s, "scheduled gc: %s", err);
}

void life_status(struct service *s, json_t *reply)
{
	struct svc_life *L = s->life;

	if (!L)
		return;
	if (L->last[LIFE_VERIFY])
		json_object_set(reply, "last_verify", L->last[LIFE_VERIFY]);
	if (L->last[LIFE_GC])
		json_object_set(reply, "last_gc", L->last[LIFE_GC]);
	if (L->job)
		json_object_set_new(reply, "lifecycle_running",
		                    json_string(kind_name[L->job->kind]));
	if (L->next_gc_s) {
		char when[40];

		td_life_time(when, sizeof(when), L->next_gc_s * 1000000000LL);
		json_object_set_new(reply, "next_gc", json_string(when));
	}
}

void life_stop(struct service *s)
{
	struct svc_life *L = s->life;

	if (L && L->job) {
		atomic_store(&L->job->cancel, true);
		uv_mutex_lock(&L->job->lock);
		uv_cond_broadcast(&L->job->cond);
		uv_mutex_unlock(&L->job->lock);
	}
}

void life_free(struct service *s)
{
	struct svc_life *L = s->life;

	if (!L)
		return;
	json_decref(L->last[0]);
	json_decref(L->last[1]);
	free(L);
	s->life = NULL;
}
