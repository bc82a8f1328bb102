/*
 * cache — see cache.h. A dirty scan owns its job (a copy of the cache
 * directory, the ids found) from td_cache_dirty_scan until its callback has
 * returned; the catalog handle and its lock are the caller's.
 */
#include "cache.h"
#include "access.h"
#include "hash.h"
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define DIRTY_PAGE 2000 /* rows per catalog read, so the catalog is not held for long */

uint64_t td_cache_limit_of(const struct td_size_or_pct *size, uint64_t fs_bytes)
{
	if (!size->is_pct)
		return size->bytes;
	return (uint64_t)((double)fs_bytes * size->pct / 100.0);
}

uint64_t td_cache_limit(const struct td_config *c)
{
	struct statvfs v;

	if (!c->cache_size.is_pct)
		return c->cache_size.bytes;
	if (statvfs(c->cache_dir, &v) < 0)
		return 0;
	return td_cache_limit_of(&c->cache_size, (uint64_t)v.f_blocks * v.f_frsize);
}

struct dirty_scan {
	uv_work_t work;
	struct td_catalog *cat;
	uv_mutex_t *lock;
	char *cache_dir;
	td_cache_dirty_cb cb;
	void *data;
	char after[TD_CATALOG_ID_HEX];
	char ids[TD_CACHE_DIRTY_BATCH][TD_CATALOG_ID_HEX];
	unsigned n, visited;
};

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

uint64_t td_cache_used_bytes(const struct td_catalog_stats *cs)
{
	return cs->bytes[TD_CATALOG_CACHED] + cs->bytes[TD_CATALOG_DIRTY];
}

bool td_cache_copy_unchanged(const struct td_catalog_entry *e, const struct stat *st)
{
	int64_t ctime_ns = ts_ns(&st->st_ctim);

	if ((uint64_t)st->st_size != e->size || ts_ns(&st->st_mtim) != e->mtime_ns)
		return false;
	if (e->ctime_ns > e->tiered_ns)
		return ctime_ns == e->ctime_ns;
	return ctime_ns <= e->cache_atime_ns;
}

static bool copy_changed(const char *cache_dir, const struct td_catalog_entry *e)
{
	char path[4096];
	struct stat st;

	return td_ns_cache_path(path, sizeof(path), cache_dir, e->id) == 0 &&
	       stat(path, &st) == 0 && !td_cache_copy_unchanged(e, &st);
}

static int dirty_check(void *data, const struct td_catalog_entry *e)
{
	struct dirty_scan *d = data;

	memcpy(d->after, e->id, sizeof(d->after));
	d->visited++;
	if (d->n >= TD_CACHE_DIRTY_BATCH)
		return 1;
	if (e->state == TD_CATALOG_DIRTY || copy_changed(d->cache_dir, e))
		memcpy(d->ids[d->n++], e->id, TD_CATALOG_ID_HEX);
	return 0;
}

static void w_dirty(uv_work_t *w)
{
	struct dirty_scan *d = w->data;
	struct td_catalog_error ce;

	for (int state = TD_CATALOG_CACHED;
	     state <= TD_CATALOG_DIRTY && d->n < TD_CACHE_DIRTY_BATCH; state++) {
		struct td_catalog_filter f = { .state = state, .limit = DIRTY_PAGE };
		int r;

		d->after[0] = '\0';
		do {
			d->visited = 0;
			f.after_id = d->after[0] ? d->after : NULL;
			uv_mutex_lock(d->lock);
			r = td_catalog_foreach(d->cat, &f, dirty_check, d, &ce);
			uv_mutex_unlock(d->lock);
		} while (r == 0 && d->visited == f.limit && d->n < TD_CACHE_DIRTY_BATCH);
	}
}

static void a_dirty(uv_work_t *w, int status)
{
	struct dirty_scan *d = w->data;

	d->cb(d->data, (const char(*)[TD_CATALOG_ID_HEX])d->ids, d->n);
	free(d->cache_dir);
	free(d);
}

int td_cache_dirty_scan(uv_loop_t *loop, struct td_catalog *cat, uv_mutex_t *lock,
                        const char *cache_dir, td_cache_dirty_cb cb, void *data)
{
	struct dirty_scan *d = calloc(1, sizeof(*d));
	int r;

	if (!d || !(d->cache_dir = strdup(cache_dir))) {
		free(d);
		return -ENOMEM;
	}
	d->cat = cat;
	d->lock = lock;
	d->cb = cb;
	d->data = data;
	d->work.data = d;
	r = uv_queue_work(loop, &d->work, w_dirty, a_dirty);
	if (r < 0) {
		free(d->cache_dir);
		free(d);
	}
	return r;
}

/* Moves the old-layout copy `name` in objects/<aa>/ (dfd) into its own
 * directory. Returns 1 (moved), 0 (left: no row, or not a copy), -errno. */
static int migrate_one(struct td_catalog *cat, struct td_access_cache *ac, const char *state_dir,
                       const char *cache_dir, int dfd, const char *name)
{
	char newp[4096], bound[4096];
	struct td_catalog_entry *e = NULL, upd;
	struct td_catalog_error ce;
	struct td_access_fold a;
	struct stat st, nst, ost;
	bool unchanged;
	int r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (td_catalog_get(&e, cat, name, &ce) < 0)
		return 0;
	unchanged = e->state == TD_CATALOG_CACHED && td_cache_copy_unchanged(e, &st);
	/* An original whose directory is gone: root only (the old 0711 let in
	 * anyone with the id; nothing says who should pass now). */
	r = td_access_fold_path_cached(&a, ac, e->path, e->path_len, e->uid, e->gid);
	if (r == -ENOENT)
		r = 0;
	if (r == 0)
		r = td_ns_refold(state_dir, NULL, e->id, &a);
	if (r == 0)
		r = td_ns_cache_mkdir(state_dir, cache_dir, e->id);
	if (r == 0)
		r = td_ns_cache_path(newp, sizeof(newp), cache_dir, e->id);
	if (r < 0)
		goto out;
	if (linkat(dfd, name, AT_FDCWD, newp, 0) < 0 &&
	    (errno != EEXIST || stat(newp, &nst) < 0 || nst.st_ino != st.st_ino ||
	     nst.st_dev != st.st_dev)) {
		r = errno == EEXIST ? -EEXIST : -errno;
		goto out;
	}
	/* The dynamic link still names the old copy: point it at the new name. */
	if (td_ns_read(state_dir, e->id, e->name, e->name_len, bound, sizeof(bound)) > 0 &&
	    stat(bound, &ost) == 0 && ost.st_ino == st.st_ino && ost.st_dev == st.st_dev &&
	    strcmp(bound, newp) != 0) {
		r = td_ns_bind(state_dir, e->id, e->name, e->name_len, newp);
		if (r < 0)
			goto out;
	}
	if (unlinkat(dfd, name, 0) < 0) {
		r = -errno;
		goto out;
	}
	/* The new name and the unlink moved the copy's ctime; it is still the
	 * copy tierd bound, so the row says when (td_cache_copy_unchanged). */
	if (unchanged && stat(newp, &nst) == 0) {
		upd = *e;
		if (e->ctime_ns > e->tiered_ns) {
			upd.ctime_ns = ts_ns(&nst.st_ctim);
			r = td_catalog_update(cat, &upd, TD_CATALOG_F_STAT, NULL, &ce);
		} else {
			if (upd.cache_atime_ns < ts_ns(&nst.st_ctim))
				upd.cache_atime_ns = ts_ns(&nst.st_ctim);
			r = td_catalog_update(cat, &upd, TD_CATALOG_F_CACHE, NULL, &ce);
		}
		if (r < 0)
			goto out;
	}
	r = 1;
out:
	td_catalog_entry_free(e);
	return r;
}

int td_cache_migrate(struct td_catalog *cat, const char *state_dir, const char *cache_dir,
                     unsigned *moved)
{
	char dir[4096];
	struct dirent *a, *b;
	struct td_access_cache *ac;
	DIR *top, *sub;
	int first = 0;

	*moved = 0;
	if (snprintf(dir, sizeof(dir), "%s/objects", cache_dir) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	top = opendir(dir);
	if (!top)
		return errno == ENOENT ? 0 : -errno;
	ac = td_access_cache_new(); /* NULL: each fold walks and looks up alone */
	/* First, so nobody reaches what is left here while (and after) we move. */
	if (fchmod(dirfd(top), 0700) < 0)
		first = -errno;
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
			size_t l = strlen(b->d_name);
			int r;

			if (l == 32 + 5 && strcmp(b->d_name + 32, ".part") == 0) {
				unlinkat(dirfd(sub), b->d_name, 0); /* a hydration restarts */
				continue;
			}
			if (!td_ns_valid_id(b->d_name))
				continue;
			r = migrate_one(cat, ac, state_dir, cache_dir, dirfd(sub), b->d_name);
			if (r > 0)
				(*moved)++;
			else if (r < 0 && first == 0)
				first = r;
		}
		closedir(sub);
		unlinkat(dirfd(top), a->d_name, AT_REMOVEDIR); /* when empty */
	}
	closedir(top);
	td_access_cache_free(ac);
	rmdir(dir); /* when empty */
	return first;
}

/* ---- start-up: copies the catalog does not know are bound ------------------ */

#define RECONCILE_PAGE 256

struct reconcile_row {
	char id[TD_CATALOG_ID_HEX];
	char sha256[TD_CATALOG_SHA256_HEX];
	uint64_t size;
	char *name; /* the dynamic link's name: the original basename */
	size_t name_len;
};

struct reconcile_page {
	struct reconcile_row rows[RECONCILE_PAGE];
	unsigned n;
	char after[TD_CATALOG_ID_HEX];
};

static int reconcile_collect(void *data, const struct td_catalog_entry *e)
{
	struct reconcile_page *p = data;
	struct reconcile_row *r = &p->rows[p->n];
	const char *slash = memrchr(e->path, '/', e->path_len);
	const char *base = slash ? slash + 1 : e->path;
	size_t bl = e->path_len - (size_t)(base - e->path);

	memcpy(p->after, e->id, sizeof(p->after));
	r->name = malloc(bl + 1);
	if (!r->name)
		return 0; /* looked at again on the next start */
	memcpy(r->name, base, bl);
	r->name[bl] = '\0';
	r->name_len = bl;
	memcpy(r->id, e->id, sizeof(r->id));
	memcpy(r->sha256, e->sha256, sizeof(r->sha256));
	r->size = e->size;
	p->n++;
	return 0;
}

/* One tiered row: if its dynamic link leads to its cache copy, the catalog
 * learns it, as the copy's bytes say: cached when they are still the object's,
 * dirty (to be recalled) when someone wrote to them. 1 when the row changed. */
static int reconcile_one(struct td_catalog *cat, const char *state_dir, const char *cache_dir,
                         const struct reconcile_row *r)
{
	char link[4096], copy[4096], sum[TD_SHA256_HEX];
	struct td_catalog_expect ex = { .state = TD_CATALOG_TIERED, .step = TD_CATALOG_ANY };
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error ce;
	struct stat st;
	unsigned fields = TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE;
	int n, fd, r2;
	bool same;

	n = td_ns_read(state_dir, r->id, r->name, r->name_len, link, sizeof(link) - 1);
	if (n < 0 || td_ns_cache_path(copy, sizeof(copy), cache_dir, r->id) < 0)
		return 0;
	link[n] = '\0';
	if (strcmp(link, copy) != 0)
		return 0;
	fd = open(copy, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	/* An owner may put the mtime back: only the bytes tell. */
	same = (uint64_t)st.st_size == r->size && r->sha256[0] && td_sha256_fd_hex(fd, sum) == 0 &&
	       strcmp(sum, r->sha256) == 0;
	close(fd);
	memcpy(e.id, r->id, sizeof(e.id));
	e.cache_atime_ns = td_now_ns();
	if (same) {
		struct td_catalog_entry *row = NULL;

		if (td_catalog_get(&row, cat, r->id, &ce) == 0) {
			e = *row; /* F_STAT writes every stat field: the row's, with the copy's
			             ctime */
			e.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
			e.cache_atime_ns = td_now_ns();
			fields |= TD_CATALOG_F_STAT;
		}
		e.state = TD_CATALOG_CACHED;
		e.cache_state = TD_CATALOG_CACHE_CACHED;
		e.cached_bytes = r->size;
		r2 = td_catalog_update(cat, &e, fields, &ex, &ce);
		td_catalog_entry_free(row);
	} else {
		e.state = TD_CATALOG_DIRTY;
		e.cache_state = TD_CATALOG_CACHE_DIRTY;
		e.cached_bytes = (uint64_t)st.st_size;
		r2 = td_catalog_update(cat, &e, fields, &ex, &ce);
	}
	return r2 == 0 ? 1 : 0;
}

int td_cache_reconcile(struct td_catalog *cat, const char *state_dir, const char *cache_dir,
                       unsigned *fixed)
{
	struct reconcile_page *p = calloc(1, sizeof(*p));
	struct td_catalog_filter f = { .state = TD_CATALOG_TIERED, .limit = RECONCILE_PAGE };
	struct td_catalog_error ce;
	int r;

	*fixed = 0;
	if (!p)
		return -ENOMEM;
	do {
		p->n = 0;
		f.after_id = p->after[0] ? p->after : NULL;
		r = td_catalog_foreach(cat, &f, reconcile_collect, p, &ce);
		for (unsigned i = 0; i < p->n; i++) {
			if (r >= 0)
				*fixed +=
				    (unsigned)reconcile_one(cat, state_dir, cache_dir, &p->rows[i]);
			free(p->rows[i].name);
		}
	} while (r >= 0 && p->n == RECONCILE_PAGE);
	free(p);
	return r < 0 ? r : 0;
}
