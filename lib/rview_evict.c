/*
 * rview_evict.c — keeping the cache under its limit: the least recently used
 * copies go first, never a pinned one and never one written to (DESIGN
 * invariant 6); stale .part files of an earlier session are removed at mount.
 *
 * A copy is evicted under a read lease, and only if it is still the copy tierd
 * bound (td_cache_copy_unchanged: size, mtime, ctime), checked once the lease
 * is held and again after the rebind, just before the unlink: a writer that
 * opens it meanwhile breaks the lease, one that wrote before moved its ctime,
 * and the copy stays (it is dirty: the daemon's dirty scan sends it home).
 *
 * Loop thread, except w_trim (thread pool: it walks the cache, takes a read
 * lease on each copy, rebinds and unlinks). One trim job at a time; a request
 * meanwhile runs another batch after it. It owns the trim job and the
 * periodic trim timer.
 */
#include "rview_int.h"
#include "cache.h"
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRIM_BATCH 64
/* The mover's keep_cached copies and pins of copies in place make the cache
 * grow without a hydration: a trim runs this often as well. */
#define TRIM_EVERY_MS 5000

struct trim_job {
	uv_work_t work;
	struct td_rview *rv;
	uint64_t limit;
	uint64_t used;
	char evicted[TRIM_BATCH][TD_CATALOG_ID_HEX];
	unsigned n_evicted;
};

struct cand {
	int64_t used_ns;
	char id[TD_CATALOG_ID_HEX];
};

/* Calls fn(dirfd, name, data) for each entry of each copy's own directory,
 * <cache_dir>/copies/<aa>/<id>/ (the copy <id> and a hydration's <id>.part). */
static void for_each_cache_entry(const char *cache_dir, void (*fn)(int, const char *, void *),
                                 void *data)
{
	char dir[4096];
	DIR *top, *sub, *own;
	struct dirent *a, *b, *c;

	snprintf(dir, sizeof(dir), "%s/copies", cache_dir);
	top = opendir(dir);
	if (!top)
		return;
	while ((a = readdir(top))) {
		int sfd;

		if (strlen(a->d_name) != 2)
			continue;
		sfd =
		    openat(dirfd(top), a->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		sub = sfd < 0 ? NULL : fdopendir(sfd);
		if (!sub) {
			if (sfd >= 0)
				close(sfd);
			continue;
		}
		while ((b = readdir(sub))) {
			int ofd;

			if (!td_ns_valid_id(b->d_name))
				continue;
			ofd = openat(dirfd(sub), b->d_name,
			             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			own = ofd < 0 ? NULL : fdopendir(ofd);
			if (!own) {
				if (ofd >= 0)
					close(ofd);
				continue;
			}
			while ((c = readdir(own)))
				fn(dirfd(own), c->d_name, data);
			closedir(own);
		}
		closedir(sub);
	}
	closedir(top);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* When the copy was last used as far as tierd can tell: its atime, or its
 * ctime if that is later. A hydrated copy carries the original's atime, which
 * may be years old; its ctime is when tierd made it, and no user can set it
 * (a user's change moves it, and then the copy is dirty and stays anyway). */
static int64_t last_used_ns(const struct stat *st)
{
	return TD_MAX(ts_ns(&st->st_atim), ts_ns(&st->st_ctim));
}

/* Whether (t, id) sorts before c: older first, the id breaks ties. */
static bool sorts_before(int64_t t, const char *id, const struct cand *c)
{
	return t < c->used_ns || (t == c->used_ns && strcmp(id, c->id) < 0);
}

/* Whether c sorts before (t, id). */
static bool sorts_after(int64_t t, const char *id, const struct cand *c)
{
	return t > c->used_ns || (t == c->used_ns && strcmp(id, c->id) > 0);
}

struct oldest {
	struct cand *out;
	unsigned n;
	const struct cand *after; /* only copies that sort after it; NULL: all */
};

static void oldest_one(int dfd, const char *name, void *data)
{
	struct oldest *o = data;
	struct stat st;
	unsigned k;
	int64_t t;

	if (!td_ns_valid_id(name) || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return;
	t = last_used_ns(&st);
	if (o->after && !sorts_after(t, name, o->after))
		return;
	if (o->n == TRIM_BATCH && !sorts_before(t, name, &o->out[o->n - 1]))
		return;
	k = o->n < TRIM_BATCH ? o->n++ : o->n - 1;
	while (k > 0 && sorts_before(t, name, &o->out[k - 1])) {
		o->out[k] = o->out[k - 1];
		k--;
	}
	o->out[k].used_ns = t;
	memcpy(o->out[k].id, name, sizeof(o->out[k].id));
}

/* The TRIM_BATCH least recently used copies that sort after `after` (NULL:
 * from the start), oldest first. */
static unsigned oldest_copies(const char *cache_dir, const struct cand *after, struct cand *out)
{
	struct oldest o = { out, 0, after };

	for_each_cache_entry(cache_dir, oldest_one, &o);
	return o.n;
}

/* The catalog row of a copy that may be evicted, with its copy's path and its
 * remote path; NULL if it stays. Only CACHED rows (a DIRTY one is going home)
 * that are not pinned; whether the copy is unchanged is checked under the
 * lease (evict_leased). */
static struct td_catalog_entry *evictable(struct td_rview *rv, const char *id, char *path,
                                          char *remote, size_t len)
{
	struct td_catalog_entry *e = NULL;
	struct td_catalog_error ce;
	int r;

	uv_mutex_lock(&rv->cat_lock);
	r = td_catalog_get(&e, rv->cat, id, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	if (r < 0)
		return NULL;
	if (e->state != TD_CATALOG_CACHED || e->pinned ||
	    td_ns_cache_path(path, len, rv->cache_dir, e->id) < 0 ||
	    td_ns_remote_path(remote, len, rv->run_dir, e->id, e->name, e->name_len) < 0) {
		td_catalog_entry_free(e);
		return NULL;
	}
	return e;
}

/* Nobody has opened the copy for writing since the lease was taken (it is
 * still ours), and it is the copy tierd bound (invariant 6). */
static bool still_unchanged(int lfd, const struct td_catalog_entry *e)
{
	struct stat st;

	return fcntl(lfd, F_GETLEASE) == F_RDLCK && fstat(lfd, &st) == 0 && st.st_nlink > 0 &&
	       td_cache_copy_unchanged(e, &st);
}

/* Evicts e's copy under a read lease: refused while anyone has the copy open
 * for writing, given up if someone opens it for writing while we evict or
 * changed it before. True if the copy is gone and the catalog says TIERED. */
static bool evict_leased(struct td_rview *rv, const struct td_catalog_entry *e, const char *path,
                         const char *remote)
{
	struct td_catalog_expect ex = { .state = TD_CATALOG_CACHED, .step = TD_CATALOG_ANY };
	struct td_catalog_entry upd = { 0 };
	struct td_catalog_error ce;
	bool gone = false;
	int lfd;

	/* O_NONBLOCK: a lease someone else holds answers at once. */
	lfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (lfd < 0)
		return false;
	if (fcntl(lfd, F_SETLEASE, F_RDLCK) < 0) {
		close(lfd);
		return false;
	}
	if (!still_unchanged(lfd, e))
		goto keep;
	rv_test_pause(rv, "evict", e->id);
	/* Rebind first, then unlink: a reader that already has the copy open
	 * keeps reading it; new opens go to the remote view. A writer that got
	 * to the copy meanwhile wins: the binding goes back. */
	if (td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, remote) < 0)
		goto keep;
	if (!still_unchanged(lfd, e) || unlink(path) < 0) {
		td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, path);
		goto keep;
	}
	memcpy(upd.id, e->id, sizeof(upd.id));
	upd.state = TD_CATALOG_TIERED;
	upd.cache_state = TD_CATALOG_CACHE_NONE;
	uv_mutex_lock(&rv->cat_lock);
	td_catalog_update(rv->cat, &upd, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	gone = true;
keep:
	fcntl(lfd, F_SETLEASE, F_UNLCK);
	close(lfd);
	return gone;
}

/* Evicts the copy of `id` if it may go; its row's size in *size. */
static bool evict_one(struct td_rview *rv, const char *id, uint64_t *size)
{
	char path[4096], remote[4096];
	struct td_catalog_entry *e = evictable(rv, id, path, remote, sizeof(path));
	bool gone;

	if (!e)
		return false;
	gone = evict_leased(rv, e, path, remote);
	*size = e->size;
	td_catalog_entry_free(e);
	return gone;
}

/* Oldest first, batch after batch past the copies that must stay (pinned,
 * dirty, open for writing), until the cache is under its limit, nothing is
 * left to try, or TRIM_BATCH copies went (a_trim runs another job). */
static void w_trim(uv_work_t *w)
{
	struct trim_job *j = w->data;
	struct td_rview *rv = j->rv;
	struct td_catalog_stats cs;
	struct td_catalog_error ce;
	struct cand c[TRIM_BATCH], last;
	unsigned n;
	int r;

	uv_mutex_lock(&rv->cat_lock);
	r = td_catalog_stats(&cs, rv->cat, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	if (r < 0)
		return;
	j->used = td_cache_used_bytes(&cs);
	if (!j->limit || j->used <= j->limit)
		return;
	for (const struct cand *after = NULL; j->used > j->limit && j->n_evicted < TRIM_BATCH &&
	                                      (n = oldest_copies(rv->cache_dir, after, c)) > 0;
	     after = &last) {
		for (unsigned i = 0; i < n && j->used > j->limit && j->n_evicted < TRIM_BATCH;
		     i++) {
			uint64_t size;

			if (evict_one(rv, c[i].id, &size)) {
				j->used -= TD_MIN(j->used, size);
				memcpy(j->evicted[j->n_evicted++], c[i].id, TD_CATALOG_ID_HEX);
			}
		}
		last = c[n - 1];
	}
}

static void a_trim(uv_work_t *w, int status)
{
	struct trim_job *j = w->data;
	struct td_rview *rv = j->rv;

	rv->pending_work--;
	rv->trimming = false;
	rv->st.cache_used_bytes = j->used;
	rv->st.evictions += j->n_evicted;
	for (unsigned i = 0; i < j->n_evicted; i++) {
		struct node *n = rv_node_by_id(rv, j->evicted[i]);

		if (n) {
			n->cached = false;
			rv_close_copy_fd(n);
		}
	}
	/* More to do: another batch. */
	if ((j->n_evicted == TRIM_BATCH || rv->trim_again) && !rv->closing) {
		rv->trim_again = false;
		free(j);
		td_rview_trim(rv);
		return;
	}
	free(j);
	rv_maybe_closed(rv);
}

void td_rview_trim(struct td_rview *rv)
{
	struct trim_job *j;

	if (rv->closing)
		return;
	if (rv->trimming) {
		rv->trim_again = true;
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->rv = rv;
	j->limit = rv->cache_limit;
	j->work.data = j;
	if (uv_queue_work(rv->loop, &j->work, w_trim, a_trim) < 0) {
		free(j);
		return;
	}
	rv->trimming = true;
	rv->pending_work++;
}
static void on_trim_timer(uv_timer_t *t)
{
	struct td_rview *rv = t->data;

	if (rv->cache_limit) /* no limit: nothing to hold */
		td_rview_trim(rv);
}

void rv_trim_timer_start(struct td_rview *rv)
{
	uv_timer_init(rv->loop, &rv->trim_timer);
	rv->trim_timer.data = rv;
	rv->trim_timer_open = true;
	uv_timer_start(&rv->trim_timer, on_trim_timer, TRIM_EVERY_MS, TRIM_EVERY_MS);
	uv_unref((uv_handle_t *)&rv->trim_timer); /* it never keeps the loop alive */
}

static void on_trim_timer_closed(uv_handle_t *h)
{
	struct td_rview *rv = h->data;

	rv->trim_timer_open = false;
	rv_maybe_closed(rv);
}

void rv_trim_timer_close(struct td_rview *rv)
{
	if (rv->trim_timer_open)
		uv_close((uv_handle_t *)&rv->trim_timer, on_trim_timer_closed);
}

void rv_test_pause(const struct td_rview *rv, const char *step, const char *id)
{
	char want[4200], paused[4300], go[4300];
	int fd;

	if (!rv->test_pause)
		return;
	snprintf(want, sizeof(want), "%s/%s-%s", rv->test_pause, step, id);
	if (access(want, F_OK) < 0)
		return;
	snprintf(paused, sizeof(paused), "%s.paused", want);
	snprintf(go, sizeof(go), "%s.go", want);
	fd = open(paused, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 2000 && access(go, F_OK) < 0; i++)
		usleep(10000);
	unlink(want);
	unlink(paused);
	unlink(go);
}

static void remove_part(int dfd, const char *name, void *data)
{
	size_t l = strlen(name);

	(void)data;
	if (l > 5 && strcmp(name + l - 5, ".part") == 0)
		unlinkat(dfd, name, 0);
}

void rv_remove_stale_parts(const char *cache_dir)
{
	for_each_cache_entry(cache_dir, remove_part, NULL);
}
