/*
 * run — see run.h.
 *
 * Threads: the scan thread (and td_scan's workers under it) fills the queue
 * and the progress counters under `lock`, and writes link sightings through
 * `lcat` under `lcat_lock`; everything else is the loop's. The scanner
 * signals the loop through `async`; the loop signals a waiting scanner through
 * `cond`. A run ends on the loop once the scan is over, the queue is empty (or
 * the run stopped) and no file is left in the mover: the scan thread is joined,
 * on_done is called, and the async handle's close frees the run.
 */
#include "run.h"
#include "access.h"
#include "catalog.h"
#include "ns.h"
#include "policy.h"
#include "reach.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cand {
	struct cand *next;
	size_t root;
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	size_t len;
	char path[];
};

struct td_run {
	struct td_run_opts o;
	struct td_policy *policy;
	char *name;
	uv_thread_t thread;
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
	char link_error[sizeof(((struct td_catalog_error *)0)->message)];

	/* Loop thread only. */
	unsigned in_mover;
	uint64_t tiered, skipped, failed, bytes;
	int64_t start_ns;
	bool target_down;
	bool stopping;
	bool finishing;
};

/* ---- the scan thread ------------------------------------------------------ */

static struct cand *cand_new(const struct td_scan_entry *e)
{
	struct cand *c = malloc(sizeof(*c) + e->path_len + 1);

	if (!c)
		return NULL;
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
	return c;
}

static void on_candidate(void *ctx, const struct td_scan_entry *e)
{
	struct td_run *r = ctx;
	struct cand *c = cand_new(e);

	if (!c)
		return; /* retried on the next run */
	uv_mutex_lock(&r->lock);
	while (r->n_q >= TD_RUN_QUEUE_CAP && !r->stop)
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
	struct td_run *r = ctx;
	const char *rp = r->o.pc->paths.v[root];
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
	struct td_run *r = ctx;

	uv_mutex_lock(&r->lock);
	r->progress_files = files;
	uv_mutex_unlock(&r->lock);
}

/* ---- the access re-evaluation (scan thread) ---------------------------------- */

#define REFOLD_PAGE 256 /* rows read per catalog query */

struct refold_row {
	char id[TD_CATALOG_ID_HEX];
	uint32_t uid, gid;
	size_t len;
	char *path;
};

struct refold_page {
	struct refold_row rows[REFOLD_PAGE];
	unsigned n, visited;
	char after[TD_CATALOG_ID_HEX];
};

static int refold_collect(void *data, const struct td_catalog_entry *e)
{
	struct refold_page *p = data;
	struct refold_row *row;

	memcpy(p->after, e->id, sizeof(p->after));
	p->visited++;
	if (e->state != TD_CATALOG_TIERED && e->state != TD_CATALOG_CACHED &&
	    e->state != TD_CATALOG_DIRTY)
		return 0;
	row = &p->rows[p->n];
	if (!e->path || !(row->path = malloc(e->path_len + 1)))
		return 0;
	memcpy(row->id, e->id, sizeof(row->id));
	memcpy(row->path, e->path, e->path_len);
	row->path[e->path_len] = '\0';
	row->len = e->path_len;
	row->uid = e->uid;
	row->gid = e->gid;
	p->n++;
	return 0;
}

/*
 * Folds again the access of every tiered file of the policy (invariant 7,
 * access.h): a parent directory chmod'ed after tiering (or a group change)
 * takes effect by the next run, and directories made before the fold existed
 * (0711) get theirs. An original whose ancestors cannot be walked any more
 * keeps the fold it had: where its link lives now is no proof of anything
 * (anyone may make a link to a dynamic link in their own open directory). The catalog is read a
 * page at a time under lcat_lock; the walks of the original ancestors run without it.
 */
static void refold_pass(struct td_run *r)
{
	struct td_catalog_filter f = { .state = TD_CATALOG_ANY, .limit = REFOLD_PAGE };
	struct refold_page *p = calloc(1, sizeof(*p));
	struct td_access_cache *ac = td_access_cache_new();
	struct td_catalog_error ce;
	bool stop = false;
	int rc;

	if (!p || !ac || !r->lcat) {
		free(p);
		td_access_cache_free(ac);
		return;
	}
	f.policy = r->o.pc->name;
	do {
		p->n = p->visited = 0;
		f.after_id = p->after[0] ? p->after : NULL;
		uv_mutex_lock(&r->lcat_lock);
		rc = td_catalog_foreach(r->lcat, &f, refold_collect, p, &ce);
		uv_mutex_unlock(&r->lcat_lock);
		for (unsigned i = 0; i < p->n; i++) {
			struct refold_row *row = &p->rows[i];
			struct td_access_fold a;

			/* -ENOENT: the original's directory was moved or removed (its
			 * link may live elsewhere now); the fold it had stays. */
			if (td_access_fold_path_cached(&a, ac, row->path, row->len, row->uid,
			                               row->gid) == 0)
				td_ns_refold(r->o.state_dir, r->o.cache_dir, row->id, &a);
			free(row->path);
			row->path = NULL;
		}
		uv_mutex_lock(&r->lock);
		stop = r->stop;
		uv_mutex_unlock(&r->lock);
	} while (rc == 0 && p->visited == f.limit && !stop);
	td_access_cache_free(ac);
	free(p);
}

static void scan_thread(void *arg)
{
	struct td_run *r = arg;
	struct td_scan_opts o = { 0 };
	struct td_scan_stats st;
	int rc;

	o.policy = r->policy;
	o.state_dir = r->o.state_dir;
	o.cache_dir = r->o.cache_dir;
	o.run_dir = r->o.run_dir;
	o.ctx = r;
	o.on_candidate = on_candidate;
	o.on_link = on_link;
	o.on_progress = on_progress;
	refold_pass(r);
	rc = td_scan_run(&st, &o);
	uv_mutex_lock(&r->lock);
	r->stats = st;
	r->scan_r = rc;
	r->scan_done = true;
	uv_mutex_unlock(&r->lock);
	uv_async_send(&r->async);
}

/* ---- the loop side ---------------------------------------------------------- */

static void drain(struct td_run *r);

static void run_closed(uv_handle_t *h)
{
	struct td_run *r = h->data;

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
	free(r->name);
	free(r);
}

static void maybe_finish(struct td_run *r)
{
	bool done;

	uv_mutex_lock(&r->lock);
	done = r->scan_done && (r->n_q == 0 || r->stop);
	uv_mutex_unlock(&r->lock);
	if (!done || r->in_mover || r->finishing)
		return;
	r->finishing = true;
	uv_thread_join(&r->thread);
	r->o.on_done(r->o.data, r);
	uv_close((uv_handle_t *)&r->async, run_closed);
}

static void count(struct td_run *r, const struct td_mover_result *res)
{
	switch (res->outcome) {
	case TD_MOVER_TIERED:
		r->tiered++;
		r->bytes += res->size_bytes;
		break;
	case TD_MOVER_FAILED:
		r->failed++;
		if (td_reach_unreachable(res->status))
			r->target_down = true;
		break;
	default:
		r->skipped++;
		if (res->status == -EHOSTDOWN)
			r->target_down = true; /* skipped: rerun when it is back */
	}
}

static void on_file(void *data, const struct td_mover_result *res)
{
	struct td_run *r = data;

	r->in_mover--;
	count(r, res);
	r->o.on_file(r->o.data, r, res);
	drain(r);
	maybe_finish(r);
}

static struct cand *dequeue(struct td_run *r)
{
	struct cand *c;

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
	return c;
}

static int feed(struct td_run *r, const struct cand *c)
{
	struct td_mover_file f = { 0 };

	f.root = r->o.pc->paths.v[c->root];
	f.rel = c->path;
	f.rel_len = c->len;
	f.policy = r->name;
	f.target = r->o.pc->target;
	f.keep_cached = r->o.pc->keep_cached;
	f.check_stat = true;
	f.dev = c->dev;
	f.ino = c->ino;
	f.size_bytes = c->size;
	f.mtime_ns = c->mtime_ns;
	f.ctime_ns = c->ctime_ns;
	return td_mover_migrate(r->o.mover, &f, on_file, r);
}

static void drain(struct td_run *r)
{
	while (!r->stopping && td_mover_queued(r->o.mover) < TD_RUN_MOVER_FEED) {
		struct cand *c = dequeue(r);
		int rc;

		if (!c)
			break;
		rc = feed(r, c);
		if (rc == 0) {
			r->in_mover++;
		} else {
			r->failed++;
			r->o.on_queue_failed(r->o.data, r, c->path, c->len, rc);
		}
		free(c);
	}
}

static void on_async(uv_async_t *a)
{
	struct td_run *r = a->data;

	drain(r);
	maybe_finish(r);
}

/* The parts of a run that need no thread yet; *out only on 0. */
static int run_new(struct td_run **out, const struct td_run_opts *o, char *err, size_t errlen)
{
	struct td_run *r = calloc(1, sizeof(*r));
	int rc;

	if (!r || !(r->name = strdup(o->pc->name))) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->o = *o;
	r->start_ns = td_monotonic_ns();
	rc = td_policy_new(&r->policy, o->pc, o->now_ns);
	if (rc < 0) {
		snprintf(err, errlen, "policy %s: %s", o->pc->name, strerror(-rc));
		free(r->name);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int td_run_start(struct td_run **out, const struct td_run_opts *o, char *err, size_t errlen)
{
	struct td_catalog_error ce;
	struct td_run *r;
	int rc;

	rc = run_new(&r, o, err, errlen);
	if (rc < 0)
		return rc;
	uv_mutex_init(&r->lock);
	uv_mutex_init(&r->lcat_lock);
	uv_cond_init(&r->cond);
	if (td_catalog_open(&r->lcat, o->catalog_path, TD_CATALOG_NO_CHECK, &ce) < 0) {
		snprintf(r->link_error, sizeof(r->link_error), "%s", ce.message);
		r->lcat = NULL;
	}
	uv_async_init(o->loop, &r->async, on_async);
	r->async.data = r;
	rc = uv_thread_create(&r->thread, scan_thread, r);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the scan: %s", uv_strerror(rc));
		r->scan_done = true;
		r->finishing = true;
		uv_close((uv_handle_t *)&r->async, run_closed);
		return rc;
	}
	*out = r;
	return 0;
}

void td_run_stop(struct td_run *r)
{
	r->stopping = true;
	uv_mutex_lock(&r->lock);
	r->stop = true;
	uv_cond_broadcast(&r->cond);
	uv_mutex_unlock(&r->lock);
}

const char *td_run_policy(const struct td_run *r)
{
	return r->name;
}

void td_run_stats(const struct td_run *r, struct td_run_stats *out)
{
	struct td_run *m = (struct td_run *)r; /* the lock, not the run, changes */

	memset(out, 0, sizeof(*out));
	uv_mutex_lock(&m->lock);
	out->scanned_files = r->progress_files;
	out->queued = r->n_q;
	if (r->scan_done) {
		out->scan = r->stats;
		out->scan_status = r->scan_r;
	}
	uv_mutex_unlock(&m->lock);
	out->in_mover = r->in_mover;
	out->tiered = r->tiered;
	out->tiered_bytes = r->bytes;
	out->skipped = r->skipped;
	out->failed = r->failed;
	out->elapsed_ns = td_monotonic_ns() - r->start_ns;
	out->target_down = r->target_down;
	snprintf(out->link_error, sizeof(out->link_error), "%s", r->link_error);
}
