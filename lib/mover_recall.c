/*
 * mover_recall — brings a tiered file back to primary storage (mover.h says
 * what a recall promises), and recovers a recall a crash interrupted.
 *
 * A recall is one blocking step, w_recall on the thread pool, followed by
 * mover_finish on the loop thread; it does not wait in the queue (it is asked
 * for by a user or an admin, one file at a time) but is counted in flight.
 * Its own steps, durable in the catalog (state recalling):
 *   started  the cache copy's identity is in the row, then the copy is
 *            placed at ".tierd-<id>" beside the link (by rename on the same
 *            filesystem, else as a verified copy);
 *   placed   the placed file is exchanged with the link (RENAME_EXCHANGE),
 *            checked by inode; across filesystems the cache copy is then
 *            set aside (<cache_dir>/recall/<id>, root's only) and its lease
 *            checked: a writer that reached it meanwhile (waiting on the
 *            lease) makes the recall give way, everything is put back and
 *            the writer's open completes on the copy, still the live one;
 *            otherwise the row becomes local.
 * Anything that goes wrong before the exchange puts the copy back and leaves
 * the row dirty (the copy still has to go back); w_recall_recover, run by
 * recovery's second pass, finishes or reverts a recall from what it finds,
 * and never deletes a cache copy that was written to meanwhile.
 *
 * The cache copy belongs to the file's owner, who may hold a lease on it: it
 * is opened without waiting on one (mover_open_user_file), so the recall
 * answers -EAGAIN rather than stall a pool thread.
 *
 * Owns nothing beyond the job; the cache copy's fd (the job's fd, leased) and
 * the directory's fd are closed by mover_release_file().
 */
#include "hot.h"
#include "mover_int.h"
#include "ns.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- the steps (pool thread) ------------------------------------------------ */

/* Where a copied-across recall keeps the cache copy between the exchange and
 * the end: <cache_dir>/recall/<id>, in a directory only root may enter, so no
 * new opener reaches the copy while the recall checks that nobody wrote it. */
static int hidden_path(const struct job *j, char *out, size_t n)
{
	int len = snprintf(out, n, "%s/recall/%s", j->m->cache_dir, j->id);

	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

static int recall_finish(struct job *j, bool unlink_copy)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_RECALLING, .step = TD_CATALOG_ANY };
	struct td_catalog_entry e = { 0 };
	char path[4096];
	int r;

	fsync(j->parentfd);
	td_ns_remove(j->m->state_dir, j->id);
	if (unlink_copy && td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id) == 0)
		unlink(path);
	if (unlink_copy && hidden_path(j, path, sizeof(path)) == 0)
		unlink(path);
	memcpy(e.id, j->id, sizeof(e.id));
	e.state = TD_CATALOG_LOCAL;
	e.step = 0;
	e.cache_state = TD_CATALOG_CACHE_NONE;
	r = mover_cat_update(j->m, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex, &ce);
	if (r < 0)
		return mover_cat_err(j, r, &ce, "final update");
	mover_hook(j, "recalled");
	mover_set_msg(j, "recalled to primary storage");
	return 0;
}

/* The placed file (inode `ino`) at tmpname is exchanged with our link at the
 * name, and checked by inode; anything unexpected is undone. */
static int recall_exchange(struct job *j, ino_t ino)
{
	struct stat st;

	if (renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -errno, "cannot put the file back: %s",
		           strerror(errno));
		return -errno;
	}
	if (fstatat(j->parentfd, j->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != ino ||
	    !mover_link_is_ours(j, j->tmpname)) {
		renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE);
		mover_fail(j, TD_MOVER_FAILED, -ESTALE,
		           "the name changed during the recall; undone");
		return -ESTALE;
	}
	return 0;
}

/* Our link, left at tmpname by the exchange, goes. */
static void recall_drop_link(struct job *j)
{
	struct stat lst;

	if (fstatat(j->parentfd, j->tmpname, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(lst.st_mode) && mover_link_is_ours(j, j->tmpname))
		unlinkat(j->parentfd, j->tmpname, 0);
}

/*
 * After the exchange of a copied-across recall: the cache copy is moved where
 * no new opener reaches it (the user's name now holds the placed file, and
 * the dynamic link and the cache path lead nowhere), and only then is its
 * lease checked. A writer whose open of the link began before that is waiting
 * on the lease, which is therefore broken; one that wrote is seen by the
 * size and mtime. Returns 0 when nobody touched the copy, -EBUSY when someone
 * did (the copy is then back in place: recall_give_way), -1 on an error (the
 * job's failure is set; the copy is back too).
 */
static int recall_check_copy(struct job *j, const char *copy, char *hidden, size_t n)
{
	struct stat now;
	int r;

	r = hidden_path(j, hidden, n);
	if (r == 0) {
		char dir[4200];

		snprintf(dir, sizeof(dir), "%s/recall", j->m->cache_dir);
		r = td_ns_mkdirs(dir, 0700);
	}
	if (r == 0 && renameat2(AT_FDCWD, copy, AT_FDCWD, hidden, RENAME_NOREPLACE) < 0)
		r = -errno;
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "cannot set the cache copy aside: %s",
		           strerror(-r));
		hidden[0] = '\0';
		return -1;
	}
	if (atomic_load(&j->lease_broken) || (j->leased && fcntl(j->fd, F_GETLEASE) != F_RDLCK) ||
	    fstat(j->fd, &now) < 0 || now.st_size != j->st.st_size ||
	    now.st_mtim.tv_sec != j->st.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != j->st.st_mtim.tv_nsec) {
		mover_fail(j, TD_MOVER_SKIPPED, -EBUSY,
		           "opened for writing during the recall; the copy stays, recalled later");
		return -EBUSY;
	}
	return 0;
}

/*
 * A writer reached the cache copy during the recall: the copy goes back where
 * the link leads and the link back at the name, so the writer's open (it
 * goes on once the lease is released) lands in the file's current version.
 * The placed file is only a copy and goes. If the name no longer holds the
 * placed file untouched, both are kept and the admin is told.
 */
static void recall_give_way(struct job *j, const char *copy, const char *hidden, ino_t placed)
{
	struct stat st;

	if (hidden[0] && renameat2(AT_FDCWD, hidden, AT_FDCWD, copy, RENAME_NOREPLACE) < 0)
		mover_set_msg(j, "opened for writing during the recall; the copy is kept as %s",
		              hidden);
	if (fstatat(j->parentfd, j->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == placed &&
	    st.st_size == j->st.st_size && st.st_mtim.tv_sec == j->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == j->st.st_mtim.tv_nsec && mover_link_is_ours(j, j->tmpname) &&
	    renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE) == 0) {
		if (fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_ino == placed)
			unlinkat(j->parentfd, j->tmpname, 0);
		fsync(j->parentfd);
		return;
	}
	mover_set_msg(j, "opened for writing during the recall, and the recalled file changed "
	                 "too; both are kept (the written copy in the cache)");
	mover_cat_add_error(j->m, j->id, j->msg);
}

/* Copies the cache copy into a new file at tmpname (another filesystem),
 * with its owner, mode, times and every extended attribute, its ACL among
 * them, all set before the file can replace the link. The copy's attributes
 * are the file's: every copy is made with those kept at migration, and a
 * setfacl through the link changed the copy. */
static int recall_copy_across(struct job *j, ino_t *ino_out)
{
	struct td_xattrs xa = { 0 };
	struct stat after, st;
	int out, r;

	r = td_xattr_read(&xa, j->fd, NULL);
	if (r < 0)
		return r;
	out = openat(j->parentfd, j->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	             0600);
	if (out < 0) {
		r = -errno;
		td_xattr_free(&xa);
		return r;
	}
	r = mover_copy_bytes(j->fd, out, (uint64_t)j->st.st_size, NULL);
	if (r == 0)
		r = mover_copy_attrs(out, &j->st, xa.buf, xa.len);
	td_xattr_free(&xa);
	mover_hook(j, "recall_copied");
	/* A write to the copy while it was being copied: not this time. */
	if (r == 0 && (fstat(j->fd, &after) < 0 || !mover_same_content(&after, &j->st) ||
	               (j->leased && fcntl(j->fd, F_GETLEASE) != F_RDLCK)))
		r = -EBUSY;
	if (r == 0) {
		fstat(out, &st);
		*ino_out = st.st_ino;
	}
	close(out);
	if (r < 0)
		unlinkat(j->parentfd, j->tmpname, 0);
	return r;
}

/* Reads the row, finds its root and checks that there is a copy to recall.
 * Returns 0 or -1 (the job's failure is set). */
static int recall_load(struct job *j, const char *copy)
{
	struct td_catalog_error ce = { 0 };
	const char *root;
	int r;

	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_get(&j->entry, j->m->cat, j->id, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "no catalog entry %s", j->id);
		return -1;
	}
	root = td_policy_root_of((const char *const *)j->roots, j->n_roots, j->entry->path,
	                         j->entry->path_len);
	if (!root) {
		mover_fail(j, TD_MOVER_FAILED, -ENOENT, "its path is below no policy root");
		return -1;
	}
	/* A tiered row with a copy: written through the view before the catalog
	 * heard of the copy. It is the newest version; recall it. */
	if (j->entry->state == TD_CATALOG_TIERED && access(copy, F_OK) == 0) {
		j->entry->state = TD_CATALOG_DIRTY;
		j->entry_was_tiered = true;
	}
	if (j->entry->state != TD_CATALOG_CACHED && j->entry->state != TD_CATALOG_DIRTY) {
		mover_fail(j, TD_MOVER_SKIPPED, -EINVAL,
		           "not in the cache (state %s): hydrate it first",
		           td_catalog_state_name(j->entry->state));
		return -1;
	}
	if (mover_job_set_abs_path(j, root, j->entry->path, j->entry->path_len) < 0 ||
	    mover_job_set_id(j, j->id) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -EINVAL, "its path is not below %s", j->root);
		return -1;
	}
	return 0;
}

/* Opens the cache copy and takes its read lease: a copy someone holds open
 * for writing is not recalled yet. Returns 0 or -1. */
static int recall_open_copy(struct job *j, const char *copy)
{
	int fd = mover_open_user_file(AT_FDCWD, copy, O_RDONLY);

	if (fd == -EAGAIN) {
		mover_fail(j, TD_MOVER_SKIPPED, -EAGAIN,
		           "busy: another process holds a lease on its cache copy; retried later");
		return -1;
	}
	j->fd = fd < 0 ? -1 : fd;
	if (j->fd < 0 || fstat(j->fd, &j->st) < 0 || !S_ISREG(j->st.st_mode)) {
		mover_fail(j, TD_MOVER_FAILED, -ENOENT, "its cache copy is missing");
		return -1;
	}
	if (fcntl(j->fd, F_SETLEASE, F_RDLCK) == 0) {
		j->leased = true;
	} else if (errno == EAGAIN || errno == EBUSY) {
		mover_fail(j, TD_MOVER_SKIPPED, -EBUSY, "open for writing; recalled once closed");
		return -1;
	}
	return 0;
}

/* Opens the link's directory; when our link is no longer at the path, the
 * copy is pinned and the row keeps an error. Returns 0 or -1. */
static int recall_find_link(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry pin = { 0 };

	j->parentfd = mover_open_parent(j);
	if (j->parentfd >= 0 && mover_link_is_ours(j, j->name))
		return 0;
	memcpy(pin.id, j->id, sizeof(pin.id));
	pin.pinned = true;
	uv_mutex_lock(&j->m->cat_lock);
	td_catalog_update(j->m->cat, &pin, TD_CATALOG_F_PIN, NULL, &ce);
	td_catalog_add_error(j->m->cat, j->id,
	                     "recall: the link is no longer at its path; the copy is kept "
	                     "(pinned) in the cache",
	                     &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	mover_fail(j, TD_MOVER_FAILED, -ESTALE,
	           "the link is no longer at its path; the copy stays pinned in the cache");
	return -1;
}

/* Moves the row (expected in state `from`) to recalling at `step`, with e's
 * identity fields. Returns 0 or -errno (the job's failure is set). */
static int recall_set_step(struct job *j, struct td_catalog_entry *e, int from, int step,
                           const char *what)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = from, .step = TD_CATALOG_ANY };
	int r;

	e->state = TD_CATALOG_RECALLING;
	e->step = step;
	r = mover_cat_update(j->m, e, TD_CATALOG_F_STATE | TD_CATALOG_F_STAT, &ex, &ce);
	return r < 0 ? mover_cat_err(j, r, &ce, what) : 0;
}

/* Step 1 of a recall. A row still tiered with a copy beside it (a copy
 * written through the view before the catalog heard of it) may turn dirty
 * meanwhile, by the view's own update: either way it is this copy. */
static int recall_start(struct job *j, struct td_catalog_entry *e)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_TIERED, .step = TD_CATALOG_ANY };
	int r;

	if (!j->entry_was_tiered)
		return recall_set_step(j, e, (int)j->entry->state, TD_RECALL_STARTED,
		                       "start the recall");
	e->state = TD_CATALOG_RECALLING;
	e->step = TD_RECALL_STARTED;
	r = mover_cat_update(j->m, e, TD_CATALOG_F_STATE | TD_CATALOG_F_STAT, &ex, &ce);
	if (r == -ESTALE) {
		j->entry_was_tiered = false;
		return recall_set_step(j, e, TD_CATALOG_DIRTY, TD_RECALL_STARTED,
		                       "start the recall");
	}
	return r < 0 ? mover_cat_err(j, r, &ce, "start the recall") : 0;
}

/* Places the copy at tmpname: by rename on the same filesystem, else as a
 * copy. *placed gets the placed file's inode. Returns 0 or -1. */
static int recall_place(struct job *j, const char *copy, bool same_fs, ino_t *placed)
{
	int r;

	if (same_fs) {
		/* The copy becomes the file: tierd's own notes on it go first. */
		removexattr(copy, TD_HOT_XATTR);
		/* Never over an entry someone put at tmpname. */
		if (renameat2(AT_FDCWD, copy, j->parentfd, j->tmpname, RENAME_NOREPLACE) < 0) {
			mover_fail(j, TD_MOVER_FAILED, -errno, "cannot move the copy: %s",
			           strerror(errno));
			return -1;
		}
		*placed = j->st.st_ino;
		return 0;
	}
	r = recall_copy_across(j, placed);
	if (r < 0) {
		mover_fail(j, r == -EBUSY ? TD_MOVER_SKIPPED : TD_MOVER_FAILED, r,
		           "cannot copy it back: %s", strerror(-r));
		return -1;
	}
	return 0;
}

/* Takes the placed file away again: back to the cache (same filesystem) or
 * dropped (it is only a copy). */
static void recall_unplace(struct job *j, const char *copy, bool same_fs, ino_t placed)
{
	struct stat st;

	/* tmpname is in the user's directory: only the placed inode goes, into
	 * the cache or away, and whatever else was swapped in there is given
	 * back. */
	if (fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != placed)
		return;
	if (!same_fs) {
		unlinkat(j->parentfd, j->tmpname, 0);
		return;
	}
	if (renameat2(j->parentfd, j->tmpname, AT_FDCWD, copy, RENAME_NOREPLACE) == 0 &&
	    (lstat(copy, &st) < 0 || st.st_ino != placed))
		renameat2(AT_FDCWD, copy, j->parentfd, j->tmpname, RENAME_NOREPLACE);
}

/* The recall did not happen: the row goes back to dirty, the copy still has
 * to go back. */
static void recall_revert(struct job *j, struct td_catalog_entry *e)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_RECALLING, .step = TD_CATALOG_ANY };

	e->state = TD_CATALOG_DIRTY;
	e->step = 0;
	mover_cat_update(j->m, e, TD_CATALOG_F_STATE, &ex, &ce);
}

/* Both durable steps, the placing and the exchange. */
static void recall_move(struct job *j, const char *copy)
{
	struct td_catalog_entry e = { 0 };
	struct stat pst = { 0 };
	char hidden[4200] = "";
	ino_t placed = 0;
	bool same_fs;

	/* Step 1: the copy's identity goes in the row before it moves. */
	memcpy(e.id, j->id, sizeof(e.id));
	mover_entry_stat(&e, &j->st);
	if (recall_start(j, &e) < 0)
		return;
	j->row = true;
	mover_hook(j, "recall_started");
	same_fs = fstat(j->parentfd, &pst) == 0 && pst.st_dev == j->st.st_dev;
	if (recall_place(j, copy, same_fs, &placed) < 0)
		goto revert;
	e.ino = (uint64_t)placed;
	e.dev = (uint64_t)pst.st_dev;
	if (recall_set_step(j, &e, TD_CATALOG_RECALLING, TD_RECALL_PLACED, "record the recall") <
	    0) {
		/* Cannot record it: put the copy back where it was. */
		recall_unplace(j, copy, same_fs, placed);
		goto revert;
	}
	mover_hook(j, "recall_placed");
	if (recall_exchange(j, placed) < 0) {
		/* The name is not ours to replace after all. */
		recall_unplace(j, copy, same_fs, placed);
		goto revert;
	}
	/* On the same filesystem the placed file is the copy itself: a writer
	 * waiting on the lease lands in it. Across, it must not land in the
	 * copy left behind. */
	if (!same_fs && recall_check_copy(j, copy, hidden, sizeof(hidden)) != 0) {
		recall_give_way(j, copy, hidden, placed);
		goto revert;
	}
	if (!same_fs) {
		/* Nobody can reach the copy now: it goes, and its lease with it,
		 * at once, before the slower tidying. */
		unlink(hidden);
		fcntl(j->fd, F_SETLEASE, F_UNLCK);
		j->leased = false;
	}
	recall_drop_link(j);
	if (recall_finish(j, !same_fs) == 0)
		j->outcome = TD_MOVER_TIERED; /* "done" */
	return;
revert:
	recall_revert(j, &e);
}

static void w_recall(struct job *j)
{
	char copy[4096];

	td_ns_cache_path(copy, sizeof(copy), j->m->cache_dir, j->id);
	if (recall_load(j, copy) == 0 && recall_open_copy(j, copy) == 0 && recall_find_link(j) == 0)
		recall_move(j, copy);
	mover_release_file(j);
}

/* Recovery: is there a cache copy of its own (a copied-across recall), at
 * its path or set aside, that differs from the one the recall started from
 * (the row's size and mtime)? Then someone wrote it, and it must not go. */
static bool recover_copy_written(struct job *j, const char *copy)
{
	const struct td_catalog_entry *e = j->entry;
	char hidden[4200];
	const char *paths[2] = { copy, hidden };
	struct stat st;

	if (hidden_path(j, hidden, sizeof(hidden)) < 0)
		hidden[0] = '\0';
	for (size_t i = 0; i < 2; i++)
		if (paths[i][0] && lstat(paths[i], &st) == 0 &&
		    (st.st_ino != (ino_t)e->ino || st.st_dev != (dev_t)e->dev) &&
		    ((uint64_t)st.st_size != e->size || mover_ts_ns(&st.st_mtim) != e->mtime_ns))
			return true;
	return false;
}

/* Recovery: the recall did not happen, and the copy still has to go back. */
static void recover_to_dirty(struct job *j, const char *why)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry upd = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_RECALLING, .step = TD_CATALOG_ANY };

	memcpy(upd.id, j->id, sizeof(upd.id));
	upd.state = TD_CATALOG_DIRTY;
	mover_cat_update(j->m, &upd, TD_CATALOG_F_STATE, &ex, &ce);
	mover_fail(j, TD_MOVER_SKIPPED, 0, "%s", why);
}

/* Recovery, step started: across file systems the placed file is a new
 * inode, copied from the cache copy and recorded only at step placed. A
 * regular file at tmpname that is not the row's inode, on another file system
 * than the copy, is that unfinished copy: it holds nothing the cache copy
 * does not, and left there it would stay in the user's directory and make
 * every later recall fail (EEXIST). */
static void drop_unrecorded_copy(struct job *j)
{
	struct stat tst;

	if (fstatat(j->parentfd, j->tmpname, &tst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(tst.st_mode) && tst.st_nlink == 1 && tst.st_dev != (dev_t)j->entry->dev &&
	    tst.st_ino != (ino_t)j->entry->ino)
		unlinkat(j->parentfd, j->tmpname, 0);
}

/* Recovery of a recall a crash interrupted: finishes it, undoes it, or
 * leaves it for the admin, from what is at the name and at tmpname. */
static void recover_recall_row(struct job *j)
{
	const struct td_catalog_entry *e = j->entry;
	char copy[4096];
	struct stat st, tst;
	bool name_is_file, tmp_is_file, ours_at_name;

	j->row = true;
	td_ns_cache_path(copy, sizeof(copy), j->m->cache_dir, j->id);
	j->parentfd = mover_open_parent(j);
	if (j->parentfd < 0) {
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN, "recall: cannot reach its directory");
		goto left;
	}
	name_is_file = fstatat(j->parentfd, j->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	               S_ISREG(st.st_mode) && st.st_ino == (ino_t)e->ino;
	tmp_is_file = fstatat(j->parentfd, j->tmpname, &tst, AT_SYMLINK_NOFOLLOW) == 0 &&
	              S_ISREG(tst.st_mode) && tst.st_ino == (ino_t)e->ino;
	ours_at_name = mover_link_is_ours(j, j->name);
	if (name_is_file && recover_copy_written(j, copy)) {
		/* A writer got the copy left behind as tierd stopped (or while it
		 * was down): both versions stay. */
		mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
		           "recall: the file is back, but its cache copy was written meanwhile; "
		           "both are kept for the admin");
		goto left;
	}
	if (name_is_file) {
		/* The exchange happened; only the tidying was left. */
		recall_drop_link(j);
		if (recall_finish(j, true) == 0)
			j->outcome = TD_MOVER_TIERED;
		return;
	}
	if (e->step == TD_RECALL_STARTED && !tmp_is_file && ours_at_name)
		drop_unrecorded_copy(j);
	if (tmp_is_file && ours_at_name && recover_copy_written(j, copy)) {
		/* Written through the link while tierd was down: the placed file
		 * is out of date and goes; the copy still has to go back. */
		unlinkat(j->parentfd, j->tmpname, 0);
		recover_to_dirty(j, "recall undone: written meanwhile; will be retried");
		return;
	}
	if (tmp_is_file && ours_at_name) {
		if (recall_exchange(j, (ino_t)e->ino) < 0)
			goto left;
		recall_drop_link(j);
		if (recall_finish(j, true) < 0)
			goto left;
		j->outcome = TD_MOVER_TIERED;
		return;
	}
	if (access(copy, F_OK) == 0 && ours_at_name) {
		recover_to_dirty(j, "recall not started; will be retried");
		return;
	}
	mover_fail(j, TD_MOVER_FAILED, -EUCLEAN,
	           "recall: neither the copy nor the link is where "
	           "expected; left for the admin");
left:
	mover_cat_add_error(j->m, j->id, j->msg);
}

static void w_recall_recover(struct job *j)
{
	recover_recall_row(j);
	mover_release_file(j);
}

void mover_recall_recover_start(struct job *j)
{
	mover_run_work(j, w_recall_recover, mover_settle);
}

/* ---- the public call (loop thread) ------------------------------------------ */

int td_mover_recall(struct td_mover *m, const char *id, const char *const *roots, size_t n_roots,
                    td_mover_cb cb, void *data)
{
	struct job *j;

	if (m->closing)
		return -ESHUTDOWN;
	if (!td_ns_valid_id(id) || !cb)
		return -EINVAL;
	j = mover_job_new(m);
	if (!j)
		return -ENOMEM;
	memcpy(j->id, id, TD_CATALOG_ID_HEX);
	j->roots = calloc(n_roots ? n_roots : 1, sizeof(char *));
	for (size_t i = 0; j->roots && i < n_roots; i++)
		if ((j->roots[i] = strdup(roots[i])))
			j->n_roots++;
	j->cb = cb;
	j->data = data;
	j->recalling = true;
	mover_active_add(m, j);
	mover_run_work(j, w_recall, mover_finish);
	return 0;
}
