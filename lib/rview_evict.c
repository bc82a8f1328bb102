/*
 * rview_evict.c — keeping the cache under its limit: the least recently
 * accessed copies go first, never a pinned one and never one written to
 * (DESIGN invariant 6); stale .part files of an earlier session are removed
 * at mount.
 *
 * Loop thread, except w_trim (thread pool: it walks the cache, takes a read
 * lease on each copy, rebinds and unlinks). One trim job at a time; a request
 * meanwhile runs another batch after it. It owns the trim job.
 */
#include "rview_int.h"
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

struct trim_job {
	uv_work_t work;
	struct td_rview *rv;
	uint64_t limit;
	uint64_t used;
	char evicted[TRIM_BATCH][TD_CATALOG_ID_HEX];
	unsigned n_evicted;
};

struct cand {
	int64_t atime_ns;
	char id[TD_CATALOG_ID_HEX];
};

/* Calls fn(dirfd, name, data) for each entry of <cache_dir>/objects/<aa>/. */
static void for_each_cache_entry(const char *cache_dir, void (*fn)(int, const char *, void *),
                                 void *data)
{
	char dir[4096];
	DIR *top, *sub;
	struct dirent *a, *b;

	snprintf(dir, sizeof(dir), "%s/objects", cache_dir);
	top = opendir(dir);
	if (!top)
		return;
	while ((a = readdir(top))) {
		char subdir[4400];

		if (strlen(a->d_name) != 2)
			continue;
		snprintf(subdir, sizeof(subdir), "%s/%s", dir, a->d_name);
		sub = opendir(subdir);
		if (!sub)
			continue;
		while ((b = readdir(sub)))
			fn(dirfd(sub), b->d_name, data);
		closedir(sub);
	}
	closedir(top);
}

struct oldest {
	struct cand *out;
	unsigned n;
};

static void oldest_one(int dfd, const char *name, void *data)
{
	struct oldest *o = data;
	struct stat st;
	unsigned k;
	int64_t at;

	if (!td_ns_valid_id(name) || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return;
	at = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
	if (o->n == TRIM_BATCH && at >= o->out[o->n - 1].atime_ns)
		return;
	k = o->n < TRIM_BATCH ? o->n++ : o->n - 1;
	while (k > 0 && o->out[k - 1].atime_ns > at) {
		o->out[k] = o->out[k - 1];
		k--;
	}
	o->out[k].atime_ns = at;
	memcpy(o->out[k].id, name, sizeof(o->out[k].id));
}

/* The TRIM_BATCH least recently accessed copies (by atime), oldest first. */
static unsigned oldest_copies(const char *cache_dir, struct cand *out)
{
	struct oldest o = { out, 0 };

	for_each_cache_entry(cache_dir, oldest_one, &o);
	return o.n;
}

/* The catalog row of a copy that may be evicted, with its copy's path and its
 * remote path; NULL if it stays. Pinned copies stay; so do copies written
 * since (invariant 6: a modified copy is never thrown away). */
static struct td_catalog_entry *evictable(struct td_rview *rv, const char *id, char *path,
                                          char *remote, size_t len)
{
	struct td_catalog_entry *e = NULL;
	struct td_catalog_error ce;
	struct stat st;
	int r;

	uv_mutex_lock(&rv->cat_lock);
	r = td_catalog_get(&e, rv->cat, id, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	if (r < 0)
		return NULL;
	if (e->state != TD_CATALOG_CACHED || e->pinned ||
	    td_ns_cache_path(path, len, rv->cache_dir, e->id) < 0 || lstat(path, &st) < 0 ||
	    (uint64_t)st.st_size != e->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != e->mtime_ns ||
	    td_ns_remote_path(remote, len, rv->run_dir, e->id, e->name, e->name_len) < 0) {
		td_catalog_entry_free(e);
		return NULL;
	}
	return e;
}

/* Evicts e's copy under a read lease: refused while anyone has the copy open
 * for writing, broken if someone opens it for writing while we evict. True if
 * the copy is gone and the catalog says TIERED. */
static bool evict_leased(struct td_rview *rv, const struct td_catalog_entry *e, const char *path,
                         const char *remote)
{
	struct td_catalog_expect ex = { .state = TD_CATALOG_CACHED, .step = TD_CATALOG_ANY };
	struct td_catalog_entry upd = { 0 };
	struct td_catalog_error ce;
	bool gone = false;
	struct stat st;
	int lfd;

	lfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (lfd < 0 || fcntl(lfd, F_SETLEASE, F_RDLCK) < 0) {
		if (lfd >= 0)
			close(lfd);
		return false;
	}
	/* Rebind first, then unlink: a reader that already has the copy open
	 * keeps reading it; new opens go to the remote view. A writer that got
	 * to the copy meanwhile wins: the binding goes back. */
	if (td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, remote) == 0 &&
	    (fcntl(lfd, F_GETLEASE) != F_RDLCK || fstat(lfd, &st) < 0 ||
	     (uint64_t)st.st_size != e->size)) {
		td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, path);
	} else if (unlink(path) == 0) {
		memcpy(upd.id, e->id, sizeof(upd.id));
		upd.state = TD_CATALOG_TIERED;
		upd.cache_state = TD_CATALOG_CACHE_NONE;
		uv_mutex_lock(&rv->cat_lock);
		td_catalog_update(rv->cat, &upd, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex, &ce);
		uv_mutex_unlock(&rv->cat_lock);
		gone = true;
	}
	fcntl(lfd, F_SETLEASE, F_UNLCK);
	close(lfd);
	return gone;
}

static void w_trim(uv_work_t *w)
{
	struct trim_job *j = w->data;
	struct td_rview *rv = j->rv;
	struct td_catalog_stats cs;
	struct td_catalog_error ce;
	struct cand c[TRIM_BATCH];
	unsigned n;
	int r;

	uv_mutex_lock(&rv->cat_lock);
	r = td_catalog_stats(&cs, rv->cat, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	if (r < 0)
		return;
	j->used = cs.bytes[TD_CATALOG_CACHED] + cs.bytes[TD_CATALOG_DIRTY];
	if (!j->limit || j->used <= j->limit)
		return;
	n = oldest_copies(rv->cache_dir, c);
	for (unsigned i = 0; i < n && j->used > j->limit; i++) {
		char path[4096], remote[4096];
		struct td_catalog_entry *e = evictable(rv, c[i].id, path, remote, sizeof(path));

		if (!e)
			continue;
		rv_test_pause(rv, "evict", e->id);
		if (evict_leased(rv, e, path, remote)) {
			j->used -= TD_MIN(j->used, e->size);
			memcpy(j->evicted[j->n_evicted++], e->id, TD_CATALOG_ID_HEX);
		}
		td_catalog_entry_free(e);
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
			if (n->cache_fd >= 0)
				close(n->cache_fd);
			n->cache_fd = -1;
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
