/*
 * mover_recover — finishes or rolls back, from the catalog alone, every
 * migration (and recall) a crash left half done, and retries the rollbacks
 * that could not delete their object from the target (step 9).
 *
 * A pass (struct recover) reads the rows in state migrating, then those in
 * state recalling, one page of MOVER_RECOVER_PAGE ids at a time (w_load_page,
 * pool thread), and runs one job per row, one row at a time: recovery happens
 * once, at start-up, before any new migration, and a crash leaves at most
 * max_transfers rows behind. w_recover (pool thread) decides from what it
 * finds on disk whether the swap happened; mover_settle (loop thread) then
 * rolls back or ends the job, whose end calls mover_recover_next again.
 *
 * Owns the pass (its copy of the roots and the page of rows not yet run);
 * each row run is handed to its job, which frees it.
 */
#include "mover_int.h"
#include "ns.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- one row (pool thread) ------------------------------------------------- */

/* Does tmpname hold the file we moved (the row's inode)? */
static bool tmp_holds_original(struct job *j, struct stat *tst)
{
	const struct td_catalog_entry *e = j->entry;

	return fstatat(j->parentfd, j->tmpname, tst, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(tst->st_mode) && tst->st_ino == (ino_t)e->ino &&
	       tst->st_dev == (dev_t)e->dev;
}

/* Was the cache copy, when it is a copy of its own (another filesystem),
 * written to since it was made? It was made with the file's size and mtime. */
static bool cache_copy_written(struct job *j)
{
	const struct td_catalog_entry *e = j->entry;
	char path[4096];
	struct stat cst;

	if (td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id) < 0 ||
	    lstat(path, &cst) < 0 || (cst.st_ino == (ino_t)e->ino && cst.st_dev == (dev_t)e->dev))
		return false;
	return (uint64_t)cst.st_size != e->size || mover_ts_ns(&cst.st_mtim) != e->mtime_ns;
}

/*
 * The exchange happened, but the name no longer holds our link: the user
 * moved or removed it while tierd was down, and the original inode is at
 * tmpname with no link leading to it. It goes back to its name when the name
 * is free, and the migration is then rolled back like any put-back swap;
 * otherwise nothing is deleted and the admin is told where the data is.
 * Returns 1 (put back) or -1 (left for the admin).
 */
static int recover_moved_link(struct job *j)
{
	struct stat st;

	if (renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_NOREPLACE) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "the name no longer holds our link and is taken; the data is kept as "
		           "%s",
		           j->tmpname);
		return -1;
	}
	fsync(j->parentfd);
	if (fstatat(j->parentfd, j->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_ino != (ino_t)j->entry->ino) {
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "%s changed while it was being put back; left for the admin",
		           j->tmpname);
		return -1;
	}
	if (cache_copy_written(j)) {
		/* Written through the moved link: that copy is kept, and the row and
		 * the object with it. */
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "put the original back at its name; the moved link's cache copy was "
		           "written to and is kept for the admin");
		return -1;
	}
	mover_fail(j, TD_MOVER_RESTORED, 0,
	           "put back an unfinished swap whose link had been moved away");
	j->need_rollback = true;
	return 1;
}

/*
 * A swapped file: the old inode is at tmpname, or already unlinked. Returns 0
 * when the swap is complete (our link at the name, the old inode gone), 1
 * when the file was put back (the migration is then rolled back), -1 when it
 * is left for the admin (the message says why).
 */
static int recover_swapped(struct job *j, bool ours_at_name)
{
	const struct td_catalog_entry *e = j->entry;
	struct stat tst;

	if (fstatat(j->parentfd, j->tmpname, &tst, AT_SYMLINK_NOFOLLOW) < 0) {
		if (ours_at_name)
			return 0;
		mover_fail(
		    j, TD_MOVER_FAILED, -EUCLEAN,
		    "neither the file nor its link is where the catalog says; left for the admin");
		return -1;
	}
	if (!S_ISREG(tst.st_mode) || tst.st_ino != (ino_t)e->ino || tst.st_dev != (dev_t)e->dev) {
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "%s is not the file we moved; left for the admin", j->tmpname);
		return -1;
	}
	if (!ours_at_name)
		return recover_moved_link(j);
	if (e->step == TD_MOVER_SWAPPING || (uint64_t)tst.st_size != e->size ||
	    mover_ts_ns(&tst.st_mtim) != e->mtime_ns || mover_ts_ns(&tst.st_ctim) != e->ctime_ns) {
		/* Swapping (its post-swap times were never recorded) or written
		 * to since: the file goes back, the migration is undone. */
		j->swapped = true;
		if (mover_restore_swap(j) < 0)
			return -1;
		mover_fail(j, TD_MOVER_RESTORED, 0, "put back an unfinished swap");
		j->need_rollback = true;
		return 1;
	}
	if (unlinkat(j->parentfd, j->tmpname, 0) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -errno, "cannot remove %s: %s", j->tmpname,
		           strerror(errno));
		return -1;
	}
	fsync(j->parentfd);
	return 0;
}

/* Finished: the name holds our link and the old name is gone. The row says
 * cached when the dynamic link points into the cache. */
static void recover_finished(struct job *j)
{
	char dest[4096];
	int r = td_ns_read(j->m->state_dir, j->id, j->name, j->name_len, dest, sizeof(dest));
	bool cached = r > 0 && strncmp(dest, j->m->cache_dir, strlen(j->m->cache_dir)) == 0;

	if (mover_set_tiered(j, TD_CATALOG_ANY, cached, j->entry->size) == 0)
		mover_set_msg(j, "finished an interrupted migration");
}

static void w_recover(struct job *j)
{
	const struct td_catalog_entry *e = j->entry;
	bool ours_at_name = false;
	struct stat tst;
	int step = e->step, r;

	j->row = true;
	j->step = step;
	j->st.st_dev = (dev_t)e->dev;
	j->st.st_ino = (ino_t)e->ino;
	j->st.st_size = (off_t)e->size;
	j->parentfd = mover_open_parent(j);
	if (j->parentfd >= 0)
		ours_at_name = mover_link_is_ours(j, j->name);
	if (step < TD_MOVER_SWAPPING || step == TD_MOVER_ROLLBACK ||
	    (step == TD_MOVER_SWAPPING && j->parentfd >= 0 && !ours_at_name &&
	     !tmp_holds_original(j, &tst))) {
		/* The file was never swapped: undo the rest. (At step 4 without
		 * our link at the name, the original at tmpname says the exchange
		 * did happen.) */
		mover_fail(j, TD_MOVER_SKIPPED, 0, "rolled back an unfinished migration");
		j->need_rollback = true;
		return;
	}
	if (j->parentfd < 0) {
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "cannot reach its directory to finish the swap: %s; left for the admin",
		           strerror(-j->parentfd));
		r = -1;
	} else {
		r = recover_swapped(j, ours_at_name);
	}
	if (r == 1)
		return; /* put back: mover_settle rolls the rest back */
	if (r == 0)
		recover_finished(j);
	else
		mover_cat_add_error(j->m, j->id, j->msg);
	mover_release_file(j);
}

void mover_recover_start(struct job *j)
{
	mover_run_work(j, w_recover, mover_settle);
}

/* ---- the pass (loop thread, but for w_load_page) ----------------------------- */

static void rc_job_done(void *data, const struct td_mover_result *res)
{
	struct recover *rc = data;

	if (res->outcome == TD_MOVER_TIERED)
		rc->finished++;
	else if (res->status == -EUCLEAN || res->status == -EEXIST ||
	         res->outcome == TD_MOVER_INTERRUPTED)
		rc->left++;
	else if (res->outcome == TD_MOVER_FAILED)
		rc->left++;
	else
		rc->rolled_back++;
}

static int rc_collect(void *userdata, const struct td_catalog_entry *e)
{
	struct recover *rc = userdata;

	if (rc->n_page >= MOVER_RECOVER_PAGE)
		return 1;
	rc->visited++;
	snprintf(rc->last_seen, sizeof(rc->last_seen), "%s", e->id);
	if (rc->rollbacks_only && e->step != TD_MOVER_ROLLBACK)
		return 0;
	/* Copied after the walk: entries are valid only during the callback. */
	rc->page[rc->n_page] = (struct td_catalog_entry *)strdup(e->id);
	if (!rc->page[rc->n_page])
		return -ENOMEM;
	rc->n_page++;
	return 0;
}

static void w_load_page(uv_work_t *w)
{
	struct recover *rc = w->data;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_filter f = { .state =
		                           rc->pass ? TD_CATALOG_RECALLING : TD_CATALOG_MIGRATING,
		                       .after_id = rc->after_id[0] ? rc->after_id : NULL,
		                       .limit = MOVER_RECOVER_PAGE };
	int r;

	rc->n_page = rc->next = rc->visited = 0;
	uv_mutex_lock(&rc->m->cat_lock);
	r = td_catalog_foreach(rc->m->cat, &f, rc_collect, rc, &ce);
	/* Turn the collected ids into full copies. */
	for (size_t i = 0; r >= 0 && i < rc->n_page; i++) {
		char *id = (char *)rc->page[i];
		struct td_catalog_entry *e = NULL;

		snprintf(rc->after_id, sizeof(rc->after_id), "%s", id);
		r = td_catalog_get(&e, rc->m->cat, id, &ce);
		free(id);
		rc->page[i] = r == 0 ? e : NULL;
		if (r == -ENOENT)
			r = 0;
	}
	uv_mutex_unlock(&rc->m->cat_lock);
	if (r < 0)
		rc->status = r;
	if (rc->last_seen[0])
		memcpy(rc->after_id, rc->last_seen, sizeof(rc->after_id));
	rc->eof = rc->n_page < MOVER_RECOVER_PAGE && rc->visited < MOVER_RECOVER_PAGE;
}

static void a_load_page(uv_work_t *w, int status)
{
	struct recover *rc = w->data;

	if (status < 0)
		rc->status = status;
	mover_recover_next(rc);
}

static void rc_free(struct recover *rc)
{
	for (size_t i = rc->next; i < rc->n_page; i++)
		td_catalog_entry_free(rc->page[i]);
	for (size_t i = 0; i < rc->n_roots; i++)
		free(rc->roots[i]);
	free(rc->roots);
	free(rc);
}

static bool active_id(const struct td_mover *m, const char *id)
{
	for (const struct job *j = m->active; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			return true;
	return false;
}

/* A job recovering row e, which it takes over; NULL when there is none to run
 * (the row is noted for the admin, or rc->status says why). */
static struct job *recover_job(struct recover *rc, struct td_catalog_entry *e)
{
	struct td_mover *m = rc->m;
	const char *root =
	    td_policy_root_of((const char *const *)rc->roots, rc->n_roots, e->path, e->path_len);
	struct job *j = mover_job_new(m);

	if (!j) {
		td_catalog_entry_free(e);
		rc->status = -ENOMEM;
		return NULL;
	}
	j->recovering = true;
	j->recalling = rc->pass == 1;
	j->entry = e;
	if (!root || mover_job_set_abs_path(j, root, e->path, e->path_len) < 0 ||
	    mover_job_set_id(j, e->id) < 0 ||
	    !(j->target_name = strdup(e->target ? e->target : "")) ||
	    !(j->t = m->o.target_for(m->o.ctx, j->target_name))) {
		mover_cat_add_error(m, e->id,
		                    !root ? "recovery: no policy root contains this path"
		                          : "recovery: its target is not configured");
		rc->left++;
		mover_job_free(j);
		return NULL;
	}
	j->policy = e->policy ? strdup(e->policy) : NULL;
	j->cb = rc_job_done;
	j->data = rc;
	return j;
}

/* The page is done: on to the next page, or from migrations to recalls.
 * Returns true when a page is being loaded. */
static bool recover_turn_page(struct recover *rc)
{
	if (rc->status == 0 && rc->eof && rc->pass == 0 && !rc->rollbacks_only) {
		rc->pass = 1;
		rc->eof = false;
		rc->after_id[0] = '\0';
		rc->last_seen[0] = '\0';
	}
	if (rc->status == 0 && !rc->eof) {
		rc->work.data = rc;
		if (uv_queue_work(rc->m->loop, &rc->work, w_load_page, a_load_page) == 0)
			return true;
		rc->status = -EAGAIN;
	}
	return false;
}

void mover_recover_next(struct recover *rc)
{
	struct td_mover *m = rc->m;

	if (m->closing && rc->status == 0)
		rc->status = -ESHUTDOWN; /* what is left waits for the next start */

	while (rc->next < rc->n_page && rc->status == 0) {
		struct td_catalog_entry *e = rc->page[rc->next++];
		struct job *j;

		if (!e)
			continue;
		if (active_id(m, e->id)) { /* its own job is still finishing */
			td_catalog_entry_free(e);
			continue;
		}
		j = recover_job(rc, e);
		if (j) {
			mover_start_job(m, j);
			return;
		}
	}
	if (recover_turn_page(rc))
		return;
	m->recovering = NULL;
	rc->done(rc->data, rc->status, rc->finished, rc->rolled_back, rc->left);
	rc_free(rc);
	mover_maybe_closed(m);
}

static int start_recover(struct td_mover *m, const char *const *roots, size_t n_roots,
                         bool rollbacks_only, mover_recover_done done, void *data)
{
	struct recover *rc;

	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->m = m;
	rc->done = done;
	rc->data = data;
	rc->rollbacks_only = rollbacks_only;
	rc->roots = calloc(n_roots ? n_roots : 1, sizeof(char *));
	if (!rc->roots) {
		free(rc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_roots; i++) {
		rc->roots[i] = strdup(roots[i]);
		if (!rc->roots[i]) {
			rc->n_roots = i;
			rc_free(rc);
			return -ENOMEM;
		}
	}
	rc->n_roots = n_roots;
	rc->work.data = rc;
	m->recovering = rc;
	if (uv_queue_work(m->loop, &rc->work, w_load_page, a_load_page) < 0) {
		m->recovering = NULL;
		rc_free(rc);
		return -EAGAIN;
	}
	return 0;
}

int td_mover_recover(struct td_mover *m, const char *const *roots, size_t n_roots,
                     void (*done)(void *data, int status, unsigned finished, unsigned rolled_back,
                                  unsigned left),
                     void *data)
{
	if (m->recovering || m->n_active || m->closing || !done)
		return -EBUSY;
	return start_recover(m, roots, n_roots, false, done, data);
}

int td_mover_retry_rollbacks(struct td_mover *m, const char *const *roots, size_t n_roots,
                             void (*done)(void *data, int status, unsigned finished,
                                          unsigned rolled_back, unsigned left),
                             void *data)
{
	if (m->recovering || m->closing || !done)
		return -EBUSY;
	return start_recover(m, roots, n_roots, true, done, data);
}
