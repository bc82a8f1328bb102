/* hot — see hot.h. */
#include "hot.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define PAGE 256

struct rule {
	char *policy;
	unsigned reads;
	int64_t window_ns;
};

struct hot_scan {
	uv_work_t work;
	struct td_catalog *cat;
	uv_mutex_t *lock;
	char *cache_dir;
	struct rule *rules;
	size_t n_rules;
	td_hot_cb cb;
	void *data;
	/* a page of rows, collected under the lock */
	char page[PAGE][TD_CATALOG_ID_HEX];
	unsigned n_page;
	char after[TD_CATALOG_ID_HEX];
	char ids[TD_HOT_BATCH][TD_CATALOG_ID_HEX];
	unsigned n;
	uint64_t looked;
};

bool td_hot_enabled(const struct td_config *c)
{
	for (size_t i = 0; i < c->n_policies; i++)
		if (c->policies[i].hot_recall_reads > 0)
			return true;
	return false;
}

bool td_hot_count(const char *old_rec, int64_t atime_ns, unsigned reads, int64_t window_ns,
                  char rec[TD_HOT_REC_MAX])
{
	int64_t first = 0, last = 0;
	unsigned n = 0;

	if (!old_rec || sscanf(old_rec, "%" SCNd64 " %" SCNd64 " %u", &first, &last, &n) != 3) {
		/* First sight: the atime the copy has now is no read of ours to count. */
		snprintf(rec, TD_HOT_REC_MAX, "%" PRId64 " %" PRId64 " 0", atime_ns, atime_ns);
		return false;
	}
	if (atime_ns > last) { /* read again since the last scan */
		if (n == 0 || atime_ns - first > window_ns) {
			first = atime_ns; /* a new window starts with this read */
			n = 0;
		}
		n++;
		last = atime_ns;
	}
	snprintf(rec, TD_HOT_REC_MAX, "%" PRId64 " %" PRId64 " %u", first, last, n);
	return reads > 0 && n >= reads;
}

/* Looks at one copy; true when it qualifies. Outside the catalog lock. */
static bool check_copy(struct hot_scan *h, const char *id, const struct rule *ru)
{
	char path[4096], old[TD_HOT_REC_MAX], rec[TD_HOT_REC_MAX];
	struct stat st;
	ssize_t k;
	bool hot;

	if (td_ns_cache_path(path, sizeof(path), h->cache_dir, id) < 0 || lstat(path, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return false;
	h->looked++;
	k = lgetxattr(path, TD_HOT_XATTR, old, sizeof(old) - 1);
	if (k >= 0)
		old[k] = '\0';
	hot = td_hot_count(k >= 0 ? old : NULL,
	                   (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec, ru->reads,
	                   ru->window_ns, rec);
	if (k < 0 || strcmp(old, rec) != 0)
		lsetxattr(path, TD_HOT_XATTR, rec, strlen(rec), 0); /* best effort */
	return hot;
}

static int collect(void *data, const struct td_catalog_entry *e)
{
	struct hot_scan *h = data;

	memcpy(h->after, e->id, sizeof(h->after));
	memcpy(h->page[h->n_page++], e->id, TD_CATALOG_ID_HEX);
	return 0;
}

static void w_hot(uv_work_t *w)
{
	struct hot_scan *h = w->data;
	struct td_catalog_error ce;

	for (size_t i = 0; i < h->n_rules && h->n < TD_HOT_BATCH; i++) {
		struct td_catalog_filter f = { .state = TD_CATALOG_CACHED,
			                       .policy = h->rules[i].policy,
			                       .limit = PAGE };
		int r;

		h->after[0] = '\0';
		do {
			h->n_page = 0;
			f.after_id = h->after[0] ? h->after : NULL;
			uv_mutex_lock(h->lock);
			r = td_catalog_foreach(h->cat, &f, collect, h, &ce);
			uv_mutex_unlock(h->lock);
			for (unsigned k = 0; k < h->n_page && h->n < TD_HOT_BATCH; k++)
				if (check_copy(h, h->page[k], &h->rules[i]))
					memcpy(h->ids[h->n++], h->page[k], TD_CATALOG_ID_HEX);
		} while (r == 0 && h->n_page == PAGE && h->n < TD_HOT_BATCH);
	}
}

static void hot_free(struct hot_scan *h)
{
	for (size_t i = 0; i < h->n_rules; i++)
		free(h->rules[i].policy);
	free(h->rules);
	free(h->cache_dir);
	free(h);
}

static void a_hot(uv_work_t *w, int status)
{
	struct hot_scan *h = w->data;

	(void)status;
	h->cb(h->data, (const char(*)[TD_CATALOG_ID_HEX])h->ids, h->n, h->looked);
	hot_free(h);
}

int td_hot_scan(uv_loop_t *loop, struct td_catalog *cat, uv_mutex_t *lock, const char *cache_dir,
                const struct td_config *c, td_hot_cb cb, void *data)
{
	struct hot_scan *h = calloc(1, sizeof(*h));
	int r;

	if (!h || !(h->cache_dir = strdup(cache_dir)) ||
	    !(h->rules = calloc(c->n_policies ? c->n_policies : 1, sizeof(*h->rules)))) {
		if (h)
			free(h->cache_dir);
		free(h);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_policies; i++) {
		const struct td_policy_conf *p = &c->policies[i];
		struct rule *ru = &h->rules[h->n_rules];

		if (!p->hot_recall_reads)
			continue;
		ru->policy = strdup(p->name);
		if (!ru->policy) {
			hot_free(h);
			return -ENOMEM;
		}
		ru->reads = p->hot_recall_reads;
		ru->window_ns = p->hot_recall_window_s * 1000000000;
		h->n_rules++;
	}
	h->cat = cat;
	h->lock = lock;
	h->cb = cb;
	h->data = data;
	h->work.data = h;
	r = uv_queue_work(loop, &h->work, w_hot, a_hot);
	if (r < 0)
		hot_free(h);
	return r;
}
