/*
 * gc — see gc.h for what a gc promises. One thread (the caller's) and, during
 * the sighting walk, td_scan's workers, whose sightings go to the catalog under
 * a mutex. The catalog is read a page of ids at a time and each candidate is
 * fetched again just before it is judged, so a row that changed meanwhile
 * (a sighting, a hydration, a pin) is judged as it is now, and the claim's
 * compare-and-set catches anything later still.
 */
#include "gc.h"
#include "catalog_life.h"
#include "ns.h"
#include "policy.h"
#include "scan.h"
#include "util.h"
#include "ctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 256

/* ---- the sighting walk ------------------------------------------------------ */

struct sight {
	struct td_catalog *cat;
	const char *const *roots;
	pthread_mutex_t lock;
	uint64_t links;
	int cat_err;
	char cat_msg[512];
};

static void sight_link(void *ctx, size_t root, const char *id, const char *path, size_t len)
{
	struct sight *s = ctx;
	const char *rp = s->roots[root];
	size_t rl = strlen(rp);
	struct td_catalog_error ce;
	char *abs = malloc(rl + 1 + len + 1);
	int r;

	if (!abs) {
		pthread_mutex_lock(&s->lock);
		s->cat_err = -ENOMEM;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	memcpy(abs, rp, rl);
	abs[rl] = '/';
	memcpy(abs + rl + 1, path, len);
	pthread_mutex_lock(&s->lock);
	if (s->cat_err) {
		/* The gc deletes nothing now; a locked catalog would cost a busy
		 * timeout per link. */
		pthread_mutex_unlock(&s->lock);
		free(abs);
		return;
	}
	r = td_catalog_link_seen(s->cat, id, abs, rl + 1 + len, td_now_ns(), &ce);
	if (r == 0) {
		s->links++;
	} else if (r != -ENOENT && !s->cat_err) {
		/* -ENOENT: a link to an id the catalog does not know (nothing to keep) */
		s->cat_err = r;
		td_life_copy(s->cat_msg, sizeof(s->cat_msg), ce.message);
	}
	pthread_mutex_unlock(&s->lock);
	free(abs);
}

int td_gc_sight(uint64_t *links, struct td_catalog *cat, const struct td_config *conf,
                const char *const *roots, size_t n_roots, unsigned threads, char *err,
                size_t errlen)
{
	struct td_policy_conf pc = { 0 };
	struct td_policy *pol = NULL;
	struct td_scan_opts o = { 0 };
	struct td_scan_stats st;
	struct sight s = { .cat = cat, .roots = roots };
	uint64_t incomplete;
	int r;

	*links = 0;
	if (n_roots == 0)
		return 0;
	/* Nothing is a candidate (no include glob, no size fits); nothing is pruned. */
	pc.name = (char *)"gc";
	pc.min_size_bytes = UINT64_MAX;
	pc.max_size_bytes = UINT64_MAX;
	pc.one_filesystem = false;
	r = td_policy_new(&pol, &pc, td_now_ns());
	if (r < 0) {
		snprintf(err, errlen, "cannot set up the walk: %s", strerror(-r));
		return r;
	}
	pthread_mutex_init(&s.lock, NULL);
	o.policy = pol;
	o.roots = roots;
	o.n_roots = n_roots;
	o.state_dir = conf->state_dir;
	o.cache_dir = conf->cache_dir;
	o.run_dir = conf->run_dir;
	o.threads = threads ? threads : 2;
	o.ctx = &s;
	o.on_link = sight_link;
	r = td_scan_run(&st, &o);
	incomplete = st.skipped[TD_SKIP_ERROR] + st.skipped[TD_SKIP_PERMISSION_DENIED] +
	             st.skipped[TD_SKIP_PATH_TOO_LONG];
	*links = s.links;
	if (r < 0 || st.failed_roots) {
		snprintf(err, errlen, "could not walk every tree for links (%s)",
		         strerror(r < 0 ? -r : EIO));
		for (size_t i = 0; i < n_roots; i++) {
			if (access(roots[i], R_OK | X_OK) < 0) {
				snprintf(err, errlen, "could not walk %s for links: %s", roots[i],
				         strerror(errno));
				break;
			}
		}
		r = r < 0 ? r : -EIO;
	} else if (incomplete) {
		snprintf(err, errlen,
		         "the walk for links was incomplete (%llu entries unreadable or too deep)",
		         (unsigned long long)incomplete);
		r = -EIO;
	} else if (s.cat_err) {
		snprintf(err, errlen, "recording link sightings failed: %s", s.cat_msg);
		r = s.cat_err;
	}
	pthread_mutex_destroy(&s.lock);
	td_policy_free(pol);
	return r;
}

/* ---- the deletion pass -------------------------------------------------------- */

struct gc {
	const struct td_gc_opts *o;
	struct td_life *l;
	struct td_catalog *cat;
	int64_t now_ns, cutoff_ns;
	uint64_t deleted, deleted_bytes, would, kept, failed, journal_done;
	unsigned uploads_found, uploads_aborted;
	int stop_err;
	char stop_msg[640];
};

static int64_t last_seen_ns(const struct td_catalog_entry *e)
{
	int64_t t = e->link_seen_ns;

	if (e->tiered_ns > t)
		t = e->tiered_ns;
	if (e->created_ns > t)
		t = e->created_ns;
	if (e->state == TD_CATALOG_LOCAL && e->updated_ns > t)
		t = e->updated_ns; /* the recall's end: no link since */
	return t;
}

static void file_event(struct gc *g, const struct td_catalog_entry *e, const char *outcome,
                       const char *reason)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:I}", "event", "file", "outcome", outcome,
	                       "id", e->id, "reason", reason, "size", (json_int_t)e->size);
	char when[40];

	td_ctl_set_path(ev, "path", e->path, e->path_len);
	if (e->link_seen_path && e->link_seen_path_len)
		td_ctl_set_path(ev, "link_seen_path", e->link_seen_path, e->link_seen_path_len);
	td_life_time(when, sizeof(when), last_seen_ns(e));
	json_object_set_new(ev, "last_seen", json_string(when));
	td_life_emit(&g->o->sink, ev);
}

/* Deletes a journalled object: manifest first, so a rebuild never brings back
 * a row for data that is going. Missing objects are success. */
static int delete_objects(struct gc *g, const char *id, const char *target, const char *key,
                          char *msg, size_t n)
{
	struct td_target_error te = { 0 };
	char mkey[TD_TARGET_KEY_MAX + 1], terr[600];
	struct td_target *t;
	int r;

	td_ns_remove(g->o->conf->state_dir, id);
	if (!target || !key || !*target || !*key)
		return 0;
	t = td_life_target(g->l, target, msg, n);
	if (!t)
		return -ENOENT;
	r = td_ns_object_key(mkey, sizeof(mkey), id, true);
	if (r == 0)
		r = td_life_delete(g->l, t, mkey, &te);
	if (r == 0)
		r = td_life_delete(g->l, t, key, &te);
	if (r < 0) {
		td_life_target_msg(terr, sizeof(terr), r, &te);
		snprintf(msg, n, "target %s: deleting %s: %s", target, key, terr);
	}
	return r;
}

static int journal_one(void *data, const struct td_catalog_gc_item *it)
{
	struct gc *g = data;
	struct td_catalog_error ce;
	char msg[640];
	int r;

	r = delete_objects(g, it->id, it->target, it->object_key, msg, sizeof(msg));
	if (r < 0) {
		g->stop_err = r;
		td_life_copy(g->stop_msg, sizeof(g->stop_msg), msg);
		return 1;
	}
	r = td_catalog_gc_done(g->cat, it->id, &ce);
	if (r < 0) {
		g->stop_err = r;
		td_life_copy(g->stop_msg, sizeof(g->stop_msg), ce.message);
		return 1;
	}
	g->journal_done++;
	return 0;
}

/* Why e is kept although its link is unseen for retention, or NULL. */
static const char *kept_reason(const struct td_catalog_entry *e)
{
	if (e->pinned)
		return "pinned";
	switch (e->state) {
	case TD_CATALOG_DIRTY:
		return "its cache copy was written (dirty): it goes back to primary storage first";
	case TD_CATALOG_RECALLING:
		return "its recall is not confirmed yet";
	case TD_CATALOG_MIGRATING:
		return "it is being tiered";
	case TD_CATALOG_CACHED:
		return "it has a cache copy (kept until the copy is evicted)";
	case TD_CATALOG_TIERED:
		return e->cache_state != TD_CATALOG_CACHE_NONE ? "it is being hydrated" : NULL;
	default:
		return NULL;
	}
}

static void judge(struct gc *g, const struct td_catalog_entry *e)
{
	struct td_catalog_error ce;
	const char *why = kept_reason(e);
	char reason[800], when[40], msg[640];
	int r;

	if (last_seen_ns(e) >= g->cutoff_ns)
		return;
	if (e->state == TD_CATALOG_LOCAL && (!e->object_key || !e->target))
		return; /* never tiered: no object */
	if (why) {
		g->kept++;
		file_event(g, e, "kept", why);
		return;
	}
	td_life_time(when, sizeof(when), last_seen_ns(e));
	if (e->state == TD_CATALOG_LOCAL)
		snprintf(reason, sizeof(reason),
		         "recalled to primary storage; the object is unused since %s, more than "
		         "retention (%llds) ago",
		         when, (long long)g->o->conf->retention_s);
	else
		snprintf(reason, sizeof(reason),
		         "no link to it seen since %s, more than retention (%llds) ago", when,
		         (long long)g->o->conf->retention_s);
	if (g->o->dry_run) {
		g->would++;
		file_event(g, e, "would_delete", reason);
		return;
	}
	r = td_catalog_gc_claim(g->cat, e, &ce);
	if (r == -ESTALE || r == -ENOENT)
		return; /* changed since it was read: judged again next time */
	if (r < 0) {
		g->stop_err = r;
		td_life_copy(g->stop_msg, sizeof(g->stop_msg), ce.message);
		return;
	}
	r = delete_objects(g, e->id, e->target, e->object_key, msg, sizeof(msg));
	if (r == 0)
		r = td_catalog_gc_done(g->cat, e->id, &ce) < 0 ? -EIO : 0;
	if (r < 0) {
		g->failed++;
		file_event(g, e, "failed", msg);
		/* The journal keeps it; the next gc finishes it. A target that
		 * fails one delete fails the next: stop here. */
		g->stop_err = r;
		td_life_copy(g->stop_msg, sizeof(g->stop_msg), msg);
		return;
	}
	g->deleted++;
	g->deleted_bytes += e->size;
	file_event(g, e, "deleted", reason);
}

struct page {
	char ids[PAGE][TD_CATALOG_ID_HEX];
	unsigned n;
};

static int page_add(void *data, const struct td_catalog_entry *e)
{
	struct page *p = data;

	memcpy(p->ids[p->n++], e->id, TD_CATALOG_ID_HEX);
	return 0;
}

static int pass(struct gc *g, char *err, size_t errlen)
{
	struct td_catalog_filter f = TD_CATALOG_FILTER_ALL;
	struct td_catalog_error ce;
	char after[TD_CATALOG_ID_HEX] = "";
	struct page *p = malloc(sizeof(*p));
	int r = 0;

	if (!p)
		return -ENOMEM;
	f.link_seen_before_ns = g->cutoff_ns;
	f.limit = PAGE;
	for (;;) {
		p->n = 0;
		f.after_id = after[0] ? after : NULL;
		r = td_catalog_foreach(g->cat, &f, page_add, p, &ce);
		if (r < 0) {
			td_life_copy(err, errlen, ce.message);
			break;
		}
		for (unsigned i = 0; i < p->n && !g->stop_err; i++) {
			struct td_catalog_entry *e = NULL;

			if (td_catalog_get(&e, g->cat, p->ids[i], &ce) == 0)
				judge(g, e);
			td_catalog_entry_free(e);
		}
		if (g->stop_err) {
			r = g->stop_err;
			td_life_copy(err, errlen, g->stop_msg);
			break;
		}
		if (p->n < PAGE)
			break;
		memcpy(after, p->ids[p->n - 1], sizeof(after));
		if (td_life_cancelled(&g->o->sink)) {
			r = -ECANCELED;
			snprintf(err, errlen, "cancelled");
			break;
		}
	}
	free(p);
	return r;
}

static int uploads(struct gc *g, char *err, size_t errlen)
{
	const struct td_config *c = g->o->conf;
	int64_t age = g->o->upload_age_s >= 0 ? g->o->upload_age_s : TD_GC_UPLOAD_AGE_S;
	int64_t before = g->now_ns / 1000000000 - age;

	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_error te = { 0 };
		struct td_target *t;
		unsigned found = 0, aborted = 0;
		char m[600];
		int r;

		if (c->targets[i].type != TD_TARGET_S3)
			continue;
		t = td_life_target(g->l, c->targets[i].name, err, errlen);
		if (!t)
			return -ENOENT;
		r = td_life_stale_uploads(g->l, t, before, !g->o->dry_run, &found, &aborted, &te);
		g->uploads_found += found;
		g->uploads_aborted += aborted;
		if (r < 0 && r != -ENOTSUP) {
			td_life_target_msg(m, sizeof(m), r, &te);
			snprintf(err, errlen, "target %s: listing multipart uploads: %s",
			         c->targets[i].name, m);
			return r;
		}
	}
	return 0;
}

/* Every policy root and sighting root, once each. */
static const char **all_roots(const struct td_config *c, size_t *n)
{
	size_t cap = c->sighting_roots.n, k = 0;
	const char **v;

	for (size_t i = 0; i < c->n_policies; i++)
		cap += c->policies[i].paths.n;
	v = calloc(cap + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i <= c->n_policies; i++) {
		const struct td_strlist *l =
		    i < c->n_policies ? &c->policies[i].paths : &c->sighting_roots;

		for (size_t j = 0; j < l->n; j++) {
			bool dup = false;

			for (size_t m = 0; m < k && !dup; m++)
				dup = strcmp(v[m], l->v[j]) == 0;
			if (!dup)
				v[k++] = l->v[j];
		}
	}
	*n = k;
	return v;
}

int td_gc_run(json_t **report, const struct td_gc_opts *o)
{
	struct gc g = { .o = o };
	char err[800] = "", t0[40], t1[40];
	const char **roots = NULL;
	size_t n_roots = 0;
	uint64_t links = 0;
	int r;

	g.now_ns = o->now_ns ? o->now_ns : td_now_ns();
	g.cutoff_ns = g.now_ns - o->conf->retention_s * 1000000000LL;
	td_life_time(t0, sizeof(t0), g.now_ns);
	r = td_life_open(&g.l, o->conf, o->catalog_path, err, sizeof(err));
	if (r < 0)
		goto out;
	g.cat = td_life_catalog(g.l);
	roots = all_roots(o->conf, &n_roots);
	if (!roots) {
		r = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	td_life_emit(&o->sink, json_pack("{s:s, s:s, s:i}", "event", "progress", "phase",
	                                 "walking for links", "roots", (int)n_roots));
	r = td_gc_sight(&links, g.cat, o->conf, roots, n_roots, o->scan_threads, err, sizeof(err));
	if (r < 0) {
		size_t l = strlen(err);

		snprintf(err + l, sizeof(err) - l, "; nothing deleted");
		goto out;
	}
	td_life_emit(&o->sink, json_pack("{s:s, s:s, s:I}", "event", "progress", "phase",
	                                 "deciding", "links_seen", (json_int_t)links));
	if (!o->dry_run) {
		struct td_catalog_error ce;

		r = td_catalog_gc_foreach(g.cat, 0, journal_one, &g, &ce);
		if (r < 0 || g.stop_err) {
			td_life_copy(err, sizeof(err), r < 0 ? ce.message : g.stop_msg);
			r = r < 0 ? r : g.stop_err;
			goto out;
		}
	}
	r = pass(&g, err, sizeof(err));
	if (r < 0)
		goto out;
	r = uploads(&g, err, sizeof(err));
out:
	td_life_close(g.l);
	free(roots);
	td_life_time(t1, sizeof(t1), td_now_ns());
	*report = json_pack("{s:s, s:s, s:b, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i}",
	                    "started", t0, "ended", t1, "dry_run", o->dry_run, "roots",
	                    (int)n_roots, "links_seen", (json_int_t)links, "deleted",
	                    (json_int_t)g.deleted, "deleted_bytes", (json_int_t)g.deleted_bytes,
	                    "would_delete", (json_int_t)g.would, "kept", (json_int_t)g.kept,
	                    "failed", (json_int_t)g.failed, "journal_finished",
	                    (json_int_t)g.journal_done, "uploads_found", (int)g.uploads_found,
	                    "uploads_aborted", (int)g.uploads_aborted);
	if (r < 0)
		json_object_set_new(*report, "error", json_string(err[0] ? err : strerror(-r)));
	return r;
}
