/*
 * cmd_recall_bulk — `recall --all`, `recall --policy NAME`, `recall -r DIR`:
 * every tiered file of the scope back to primary storage (the uninstall path).
 *
 * One bulk recall runs at a time. An admin's is persisted before the first file
 * moves (<state_dir>/recall-bulk.json, written atomically), so a crash or a
 * restart resumes it once recovery is over (svc_bulk_resume); the file goes
 * when the pass is over. Before it starts, the bytes to come back are added
 * up per policy root and compared with the free space of the root's
 * filesystem; if any would not fit, the request is refused with the numbers
 * and nothing moves (`force` skips the check).
 *
 * Throttled: at most max_transfers files are hydrated or recalled at once;
 * the ids come from the catalog a page at a time (keyset on id, on the pool),
 * so memory does not grow with the catalog. The client gets a "start" event
 * with the totals, a "file" event per file and the final reply; when it goes
 * away the recall goes on without it, and while it reads slowly no more files
 * are started (client_when_drained).
 *
 * Who: --all and --policy need an admin; -r DIR is open to users for the rows
 * they own whose original path they can stat.
 *
 * Loop thread, except the w_* functions (thread pool).
 */
#include "log.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define BULK_PAGE  256
#define BULK_ROOTS 256 /* policy roots the space check tells apart */
#define BULK_FILE  "recall-bulk.json"

struct bulk_item {
	struct bulk *b;
	char id[TD_CATALOG_ID_HEX];
	char *path;
	size_t len;
	uint64_t size;
	int state;
};

struct bulk_root {
	char *path;
	uint64_t need, avail;
	int err;
};

struct bulk {
	struct service *s;
	struct client *c; /* NULL once the client has gone */
	uv_work_t work;
	struct conf_ref *conf;
	/* scope */
	bool all, force, resumed;
	char *policy;
	char *dir;
	size_t dir_len;
	bool privileged;
	uid_t uid;
	struct td_ctl_peer peer; /* for a user's -r: lstat as them */
	bool has_peer;
	/* planning */
	struct bulk_root roots[BULK_ROOTS];
	size_t n_roots;
	uint64_t total_files, total_bytes;
	int r;
	char err[512];
	/* feeding */
	struct bulk_item page[BULK_PAGE];
	size_t n_page, next;
	char after[TD_CATALOG_ID_HEX];
	bool page_full, fetching, exhausted;
	unsigned in_flight;
	uint64_t done, recalled, failed, skipped;
	bool finished;
};

static void bulk_feed(struct bulk *b);

/* ---- scope ----------------------------------------------------------------- */

static bool in_scope(const struct bulk *b, const struct td_catalog_entry *e)
{
	if (e->state != TD_CATALOG_TIERED && e->state != TD_CATALOG_CACHED &&
	    e->state != TD_CATALOG_DIRTY)
		return false;
	if (b->policy && (!e->policy || strcmp(e->policy, b->policy) != 0))
		return false;
	if (b->dir && !(e->path_len > b->dir_len && memcmp(e->path, b->dir, b->dir_len) == 0 &&
	                (b->dir_len == 1 || e->path[b->dir_len] == '/')))
		return false;
	if (!b->privileged && e->uid != b->uid)
		return false;
	return true;
}

/* For a user's -r: may they lstat the original path? Pool thread. */
static bool peer_may_see(const struct bulk *b, const char *path, size_t len)
{
	struct td_ctl_self self;
	struct stat st;
	char *p;
	bool ok;

	if (b->privileged)
		return true;
	p = malloc(len + 1);
	if (!p)
		return false;
	memcpy(p, path, len);
	p[len] = '\0';
	if (td_ctl_as_peer(&self, &b->peer) < 0) {
		free(p);
		return false;
	}
	ok = lstat(p, &st) == 0;
	td_ctl_as_self(&self);
	free(p);
	return ok;
}

/* ---- persistence -------------------------------------------------------------- */

static void bulk_file_path(const struct bulk *b, char *out, size_t n)
{
	snprintf(out, n, "%s/" BULK_FILE, b->conf->c->state_dir);
}

/* Writes the request atomically and durably. Pool thread. */
static int bulk_persist(struct bulk *b)
{
	char path[4096], tmp[4200];
	json_t *doc =
	    json_pack("{s:b, s:s?, s:s?}", "all", b->all, "policy", b->policy, "dir", b->dir);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int fd, r = 0, dfd;

	json_decref(doc);
	if (!text)
		return -ENOMEM;
	bulk_file_path(b, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0 ||
	    rename(tmp, path) < 0)
		r = -errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	dfd = open(b->conf->c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(text);
	return r;
}

/* ---- planning (pool) ------------------------------------------------------------ */

static int plan_cb(void *data, const struct td_catalog_entry *e)
{
	struct bulk *b = data;
	const char *root = NULL;

	memcpy(b->after, e->id, sizeof(b->after));
	b->n_page++;
	if (!in_scope(b, e))
		return 0;
	if (!b->privileged) {
		/* checked after the page: not while holding the catalog lock */
		if (b->next < BULK_PAGE) {
			struct bulk_item *it = &b->page[b->next++];

			it->path = malloc(e->path_len + 1);
			if (it->path)
				memcpy(it->path, e->path, e->path_len + 1);
			it->len = e->path_len;
			it->size = e->size;
		}
		return 0;
	}
	b->total_files++;
	b->total_bytes += e->size;
	if (!td_policy_for_path(b->conf->c, e->path, e->path_len, &root))
		return 0;
	for (size_t i = 0; i < b->n_roots; i++) {
		if (strcmp(b->roots[i].path, root) == 0) {
			b->roots[i].need += e->size;
			return 0;
		}
	}
	if (b->n_roots < BULK_ROOTS && (b->roots[b->n_roots].path = strdup(root)))
		b->roots[b->n_roots++].need = e->size;
	return 0;
}

static void user_account(struct bulk *b)
{
	for (size_t i = 0; i < b->next; i++) {
		struct bulk_item *it = &b->page[i];
		const char *root = NULL;

		if (it->path && peer_may_see(b, it->path, it->len)) {
			b->total_files++;
			b->total_bytes += it->size;
			if (td_policy_for_path(b->conf->c, it->path, it->len, &root)) {
				size_t k;

				for (k = 0; k < b->n_roots && strcmp(b->roots[k].path, root); k++)
					;
				if (k < b->n_roots)
					b->roots[k].need += it->size;
				else if (k < BULK_ROOTS && (b->roots[k].path = strdup(root)))
					b->roots[b->n_roots++].need = it->size;
			}
		}
		free(it->path);
		it->path = NULL;
	}
	b->next = 0;
}

static void w_plan(uv_work_t *w)
{
	struct bulk *b = w->data;
	struct td_catalog_error ce = { 0 };

	b->after[0] = '\0';
	do {
		struct td_catalog_filter f = { .state = TD_CATALOG_ANY,
			                       .after_id = b->after[0] ? b->after : NULL,
			                       .limit = 1000 };

		b->n_page = 0;
		uv_mutex_lock(&b->s->rcat_lock);
		b->r = td_catalog_foreach(b->s->rcat, &f, plan_cb, b, &ce);
		uv_mutex_unlock(&b->s->rcat_lock);
		if (!b->privileged)
			user_account(b);
	} while (b->r >= 0 && b->n_page == 1000);
	b->after[0] = '\0';
	b->n_page = 0;
	if (b->r < 0) {
		snprintf(b->err, sizeof(b->err), "catalog read failed: %.400s", ce.message);
		return;
	}
	for (size_t i = 0; i < b->n_roots; i++) {
		struct statvfs v;

		if (statvfs(b->roots[i].path, &v) == 0)
			b->roots[i].avail = (uint64_t)v.f_bavail * v.f_frsize;
		else
			b->roots[i].err = errno;
	}
	if (!b->force && !b->resumed) {
		for (size_t i = 0; i < b->n_roots; i++) {
			struct bulk_root *rt = &b->roots[i];

			if (!rt->err && rt->need > rt->avail) {
				snprintf(
				    b->err, sizeof(b->err),
				    "not enough space: the files under %s need %llu bytes, its "
				    "filesystem has %llu free; nothing was recalled (--force "
				    "to go ahead anyway)",
				    rt->path, (unsigned long long)rt->need,
				    (unsigned long long)rt->avail);
				b->r = -ENOSPC;
				return;
			}
		}
	}
	/* A user's -r is not recorded: resuming it would need their credentials. */
	if (!b->resumed && b->total_files && b->privileged)
		b->r = bulk_persist(b);
	if (b->r < 0)
		snprintf(b->err, sizeof(b->err), "cannot record the request in %s: %s",
		         b->conf->c->state_dir, strerror(-b->r));
}

/* ---- feeding ---------------------------------------------------------------------- */

/* Lets the client go, with `final` as its last line (NULL: none). */
static void bulk_detach(struct bulk *b, json_t *final)
{
	if (!b->c) {
		json_decref(final);
		return;
	}
	if (b->c->drain_data == b)
		b->c->drain_cb = NULL;
	svc_work_done(b->c);
	if (final)
		client_send(b->c, final); /* a no-op once it is closing */
	client_unref(b->c);
	b->c = NULL;
}

static void bulk_client_check(struct bulk *b)
{
	if (b->c && b->c->closing)
		bulk_detach(b, NULL);
}

static void bulk_send(struct bulk *b, json_t *msg)
{
	bulk_client_check(b);
	if (b->c)
		client_send(b->c, msg);
	else
		json_decref(msg);
}

static void bulk_free(struct bulk *b)
{
	for (size_t i = 0; i < b->n_roots; i++)
		free(b->roots[i].path);
	for (size_t i = 0; i < BULK_PAGE; i++)
		free(b->page[i].path);
	if (b->has_peer)
		td_ctl_peer_free(&b->peer);
	conf_put(b->conf);
	free(b->policy);
	free(b->dir);
	free(b);
}

static void w_unlink(uv_work_t *w)
{
	struct bulk *b = w->data;
	char path[4096];

	bulk_file_path(b, path, sizeof(path));
	unlink(path);
}

static void a_unlink(uv_work_t *w, int status)
{
	struct bulk *b = w->data;

	bulk_detach(b,
	            json_pack("{s:b, s:I, s:I, s:I}", "ok", 1, "recalled", (json_int_t)b->recalled,
	                      "skipped", (json_int_t)b->skipped, "failed", (json_int_t)b->failed));
	if (b->s->bulk == b)
		b->s->bulk = NULL;
	bulk_free(b);
}

static void bulk_end(struct bulk *b)
{
	if (b->finished)
		return;
	b->finished = true;
	log_notice("bulk recall%s%s%s over: %llu recalled, %llu skipped, %llu failed",
	           b->all ? " of everything" : "", b->policy ? " of policy " : "",
	           b->policy ? b->policy : "", (unsigned long long)b->recalled,
	           (unsigned long long)b->skipped, (unsigned long long)b->failed);
	bulk_client_check(b);
	/* Stopping: the request stays recorded, and the next start resumes it. */
	if (b->s->stopping || uv_queue_work(b->s->loop, &b->work, w_unlink, a_unlink) < 0) {
		bulk_detach(b, td_ctl_error_reply(-ESHUTDOWN, "tierd is stopping: the rest is "
		                                              "recalled when it starts again"));
		if (b->s->bulk == b)
			b->s->bulk = NULL;
		bulk_free(b);
	}
}

static void item_done(struct bulk_item *it, const char *outcome, const char *msg)
{
	struct bulk *b = it->b;
	json_t *ev = json_pack("{s:s, s:s, s:s, s:I}", "event", "file", "outcome", outcome, "id",
	                       it->id, "size", (json_int_t)it->size);

	if (ev && it->path)
		td_ctl_set_path(ev, "path", it->path, it->len);
	if (ev && msg && *msg)
		json_object_set_new(ev, "message", json_string(msg));
	if (strcmp(outcome, "recalled") == 0) {
		b->recalled++;
	} else if (strcmp(outcome, "failed") == 0) {
		char *esc = it->path ? td_escape(it->path, it->len) : NULL;

		b->failed++;
		svc_error(b->s, "bulk recall of %s (%s): %s", esc ? esc : it->id, it->id,
		          msg ? msg : "failed");
		free(esc);
	} else {
		b->skipped++;
	}
	b->done++;
	bulk_send(b, ev);
	free(it->path);
	free(it);
}

static void on_recalled(void *data, const struct td_mover_result *r)
{
	struct bulk_item *it = data;
	struct bulk *b = it->b;

	item_done(it,
	          r->outcome == TD_MOVER_TIERED   ? "recalled"
	          : r->outcome == TD_MOVER_FAILED ? "failed"
	                                          : "skipped",
	          r->outcome == TD_MOVER_TIERED ? NULL : r->message);
	b->in_flight--;
	bulk_feed(b);
}

static void on_hydrated(void *data, int status)
{
	struct bulk_item *it = data;
	struct bulk *b = it->b;
	int r;

	if (status >= 0 && !b->s->stopping && (r = svc_recall(b->s, it->id, on_recalled, it)) == 0)
		return;
	item_done(it, "failed",
	          status == -EFBIG ? "larger than the whole cache"
	          : status < 0     ? "could not bring its data back"
	                           : "tierd is stopping");
	b->in_flight--;
	bulk_feed(b);
}

static void start_one(struct bulk *b, const struct bulk_item *src)
{
	struct bulk_item *it = malloc(sizeof(*it));
	int r;

	if (!it)
		return;
	*it = *src;
	it->b = b;
	it->path = NULL;
	if (src->path) {
		it->path = malloc(src->len + 1);
		if (it->path)
			memcpy(it->path, src->path, src->len + 1);
	}
	b->in_flight++;
	if (it->state == TD_CATALOG_TIERED)
		r = b->s->rview ? td_rview_hydrate(b->s->rview, it->id, on_hydrated, it)
		                : -ENOTCONN;
	else
		r = svc_recall(b->s, it->id, on_recalled, it);
	if (r < 0) {
		b->in_flight--;
		item_done(it, "failed", strerror(-r));
	}
}

static int page_cb(void *data, const struct td_catalog_entry *e)
{
	struct bulk *b = data;
	struct bulk_item *it;

	if (b->n_page == BULK_PAGE && in_scope(b, e))
		return 1; /* the page is full: this row starts the next one */
	memcpy(b->after, e->id, sizeof(b->after));
	b->page_full = ++b->next == 1000; /* rows looked at, not kept */
	if (!in_scope(b, e))
		return 0;
	it = &b->page[b->n_page];
	free(it->path);
	memset(it, 0, sizeof(*it));
	memcpy(it->id, e->id, sizeof(it->id));
	it->state = (int)e->state;
	it->size = e->size;
	it->len = e->path_len;
	it->path = malloc(e->path_len + 1);
	if (it->path)
		memcpy(it->path, e->path, e->path_len + 1);
	b->n_page++;
	return 0;
}

static void w_page(uv_work_t *w)
{
	struct bulk *b = w->data;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_filter f = { .state = TD_CATALOG_ANY,
		                       .after_id = b->after[0] ? b->after : NULL,
		                       .limit = 1000 };
	size_t keep = 0;

	b->n_page = 0;
	b->next = 0;
	uv_mutex_lock(&b->s->rcat_lock);
	b->r = td_catalog_foreach(b->s->rcat, &f, page_cb, b, &ce);
	uv_mutex_unlock(&b->s->rcat_lock);
	/* foreach stopped early (1) when the page filled: there is more. */
	b->exhausted = b->r == 0 && !b->page_full;
	if (b->r > 0)
		b->r = 0;
	for (size_t i = 0; i < b->n_page; i++) {
		if (!b->privileged &&
		    !(b->page[i].path && peer_may_see(b, b->page[i].path, b->page[i].len)))
			continue;
		if (keep != i) {
			struct bulk_item t = b->page[keep];

			b->page[keep] = b->page[i];
			b->page[i] = t;
		}
		keep++;
	}
	b->n_page = keep;
	b->next = 0;
}

static void a_page(uv_work_t *w, int status)
{
	struct bulk *b = w->data;

	b->fetching = false;
	if (b->r < 0)
		b->exhausted = true;
	bulk_feed(b);
}

static void on_drained(struct client *c, void *data)
{
	bulk_feed(data);
}

static void bulk_feed(struct bulk *b)
{
	unsigned max = b->conf->c->max_transfers ? b->conf->c->max_transfers : 1;

	bulk_client_check(b);
	if (b->finished)
		return;
	if (b->c && client_congested(b->c)) {
		if (!b->c->drain_cb)
			client_when_drained(b->c, on_drained, b);
		return;
	}
	while (!b->s->stopping && b->in_flight < max && b->next < b->n_page)
		start_one(b, &b->page[b->next++]);
	if (b->in_flight >= max || b->fetching)
		return;
	if (b->next >= b->n_page && !b->exhausted && !b->s->stopping) {
		b->fetching = true;
		if (uv_queue_work(b->s->loop, &b->work, w_page, a_page) < 0) {
			b->fetching = false;
			b->exhausted = true;
		}
		return;
	}
	if (b->in_flight == 0 && (b->next >= b->n_page || b->s->stopping))
		bulk_end(b);
}

/* ---- start ----------------------------------------------------------------------- */

static void a_plan(uv_work_t *w, int status)
{
	struct bulk *b = w->data;
	json_t *roots;

	bulk_client_check(b);
	if (b->r < 0) {
		if (!b->resumed)
			log_notice("bulk recall refused: %s", b->err);
		else
			svc_error(b->s, "cannot resume the bulk recall: %s", b->err);
		if (b->c) {
			json_t *e = td_ctl_error_reply(b->r, "%s", b->err);

			if (b->r == -ENOSPC) {
				roots = json_array();
				for (size_t i = 0; i < b->n_roots; i++)
					json_array_append_new(
					    roots,
					    json_pack("{s:s, s:I, s:I}", "root", b->roots[i].path,
					              "need_bytes", (json_int_t)b->roots[i].need,
					              "free_bytes", (json_int_t)b->roots[i].avail));
				json_object_set_new(e, "space", roots);
			}
			bulk_detach(b, e);
		}
		if (b->s->bulk == b)
			b->s->bulk = NULL;
		bulk_free(b);
		return;
	}
	roots = json_array();
	for (size_t i = 0; i < b->n_roots; i++)
		json_array_append_new(roots,
		                      json_pack("{s:s, s:I, s:I}", "root", b->roots[i].path,
		                                "need_bytes", (json_int_t)b->roots[i].need,
		                                "free_bytes", (json_int_t)b->roots[i].avail));
	bulk_send(b, json_pack("{s:s, s:I, s:I, s:o, s:b}", "event", "start", "files",
	                       (json_int_t)b->total_files, "bytes", (json_int_t)b->total_bytes,
	                       "space", roots, "resumed", b->resumed));
	log_notice("bulk recall%s: %llu files, %llu bytes", b->resumed ? " resumed" : "",
	           (unsigned long long)b->total_files, (unsigned long long)b->total_bytes);
	b->after[0] = '\0';
	b->next = b->n_page = 0;
	bulk_feed(b);
}

static struct bulk *bulk_new(struct service *s)
{
	struct bulk *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->s = s;
	b->conf = conf_get(s);
	b->work.data = b;
	b->privileged = true;
	return b;
}

static int bulk_start(struct bulk *b)
{
	int r = uv_queue_work(b->s->loop, &b->work, w_plan, a_plan);

	if (r == 0)
		b->s->bulk = b;
	return r < 0 ? -EAGAIN : 0;
}

void cmd_recall_bulk(struct service *s, struct client *c, json_t *args)
{
	const char *policy = json_string_value(json_object_get(args, "policy"));
	bool all = json_is_true(json_object_get(args, "all"));
	char err[256], **paths = NULL;
	size_t *lens = NULL, n = 0;
	struct bulk *b;
	int r;

	if (!s->mover_ready) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return;
	}
	if (s->bulk) {
		client_send(c, td_ctl_error_reply(-EBUSY,
		                                  "a bulk recall is running (%llu of %llu files "
		                                  "done); try again when it is over",
		                                  (unsigned long long)s->bulk->done,
		                                  (unsigned long long)s->bulk->total_files));
		return;
	}
	if ((all || policy) && !c->privileged) {
		client_send(c, td_ctl_error_reply(-EPERM,
		                                  "recall --all and --policy need root or "
		                                  "membership of group '%s'",
		                                  s->conf->c->admin_group));
		return;
	}
	if (policy && !td_config_policy(s->conf->c, policy)) {
		client_send(c, td_ctl_error_reply(-ENOENT, "no policy named '%.64s'", policy));
		return;
	}
	if (!all && !policy) {
		r = td_ctl_request_paths(args, 1, &paths, &lens, &n, err, sizeof(err));
		if (r < 0 || n != 1) {
			if (r == 0)
				td_ctl_paths_free(paths, lens, n);
			client_send(c, td_ctl_error_reply(-EINVAL, "%s",
			                                  r < 0 ? err
			                                        : "expected all, policy or one "
			                                          "directory"));
			return;
		}
	}
	b = bulk_new(s);
	if (!b || (policy && !(b->policy = strdup(policy)))) {
		td_ctl_paths_free(paths, lens, n);
		if (b)
			bulk_free(b);
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	b->all = all;
	b->force = json_is_true(json_object_get(args, "force"));
	if (n == 1) {
		while (lens[0] > 1 && paths[0][lens[0] - 1] == '/')
			paths[0][--lens[0]] = '\0';
		b->dir = paths[0];
		b->dir_len = lens[0];
		paths[0] = NULL;
		td_ctl_paths_free(paths, lens, n);
	}
	b->privileged = c->privileged;
	b->uid = c->peer.uid;
	if (!c->privileged) {
		b->peer = c->peer;
		b->peer.groups = NULL;
		if (c->peer.n_groups && (b->peer.groups = malloc(c->peer.n_groups * sizeof(gid_t))))
			memcpy(b->peer.groups, c->peer.groups, c->peer.n_groups * sizeof(gid_t));
		else
			b->peer.n_groups = 0;
		b->has_peer = true;
	}
	b->c = c;
	client_ref(c);
	if (!c->privileged)
		c->svc->user_jobs++; /* held for the whole recall, like a pool job */
	if (bulk_start(b) < 0) {
		bulk_detach(b, td_ctl_error_reply(-EAGAIN, "busy"));
		bulk_free(b);
	}
}

/* ---- resume --------------------------------------------------------------------- */

void svc_bulk_resume(struct service *s)
{
	char path[4096];
	json_error_t je;
	json_t *doc;
	struct bulk *b;

	if (s->bulk)
		return;
	snprintf(path, sizeof(path), "%s/" BULK_FILE, s->conf->c->state_dir);
	doc = json_load_file(path, 0, &je); /* small, in state_dir: at start-up */
	if (!doc)
		return;
	b = bulk_new(s);
	if (b) {
		const char *p = json_string_value(json_object_get(doc, "policy"));
		const char *d = json_string_value(json_object_get(doc, "dir"));

		b->all = json_is_true(json_object_get(doc, "all"));
		b->policy = p ? strdup(p) : NULL;
		b->dir = d ? strdup(d) : NULL;
		b->dir_len = d ? strlen(d) : 0;
		b->resumed = true;
		log_notice("resuming the bulk recall recorded in %s", path);
		if (bulk_start(b) < 0)
			bulk_free(b);
	}
	json_decref(doc);
}
