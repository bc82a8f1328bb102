/*
 * cache — see cache.h. A dirty scan owns its job (a copy of the cache
 * directory, the ids found) from td_cache_dirty_scan until its callback has
 * returned; the catalog handle and its lock are the caller's.
 */
#include "cache.h"
#include "ns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

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
