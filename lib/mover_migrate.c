/*
 * mover_migrate — the steps of one migration (mover.h numbers them) and its
 * rollback. Each blocking step is a w_*() function run on the thread pool,
 * followed on the loop thread by the a_*() function that decides what comes
 * next; the upload runs on the loop thread through the target layer, one
 * on_*() callback per request (put, manifest put, HEAD, deletes).
 *
 *   w_open      step 1: open, check, lease, catalog row     → a_open
 *   (loop)      step 2: upload, manifest, HEAD              → on_head
 *   w_prepare   steps 2-5 durable: re-check, dynamic link,
 *               the temporary link, the swap                → a_prepare
 *   (loop)      the grace period (a timer)                  → on_grace
 *   w_finish    final: the old inode goes, the row is done  → mover_settle
 *   rollback    deletes the object (loop), then w_undo      → a_undo
 *
 * The swap never trusts a name twice: the user link is created under a name of
 * our own and exchanged atomically with the file (RENAME_EXCHANGE), and what
 * landed where is then checked by inode; if anything else is found the
 * exchange is undone. A filesystem without RENAME_EXCHANGE is not tiered.
 *
 * Owns nothing beyond the job it is given; the job's fds are closed by
 * mover_release_file() at the end of its last blocking step.
 */
#include "hash.h"
#include "mover_int.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void rollback(struct job *j);

/* ---- step 1: open, check, lease, catalog row (pool thread) ---------------- */

/* Opens the file beneath its root without following any symlink, and stats
 * it. Returns 0 or -errno (the job's failure is set). */
static int open_file(struct job *j)
{
	int r;

	j->parentfd = mover_open_parent(j);
	if (j->parentfd < 0) {
		r = j->parentfd;
		mover_fail(j, TD_MOVER_SKIPPED, r, "cannot open its directory beneath %s: %s",
		           j->root, r == -ELOOP ? "a component is a symlink" : strerror(-r));
		return r;
	}
	j->fd = mover_open_user_file(j->parentfd, j->name, O_RDONLY | O_NOATIME);
	if (j->fd == -EPERM) /* O_NOATIME needs ownership or CAP_FOWNER */
		j->fd = mover_open_user_file(j->parentfd, j->name, O_RDONLY);
	if (j->fd < 0) {
		r = j->fd;
		j->fd = -1;
		mover_fail(j, TD_MOVER_SKIPPED, r, "cannot open: %s",
		           r == -ELOOP    ? "it is a symlink"
		           : r == -EAGAIN ? "busy: another process holds a lease on it"
		                          : strerror(-r));
		return r;
	}
	if (fstat(j->fd, &j->st) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -errno, "fstat: %s", strerror(errno));
		return -errno;
	}
	j->st_ref = j->st;
	return 0;
}

/* Is the open file one we tier, and still what the scan saw? */
static int check_eligible(struct job *j)
{
	const struct stat *st = &j->st;

	if (!S_ISREG(st->st_mode) || st->st_nlink != 1 || (st->st_mode & (S_ISUID | S_ISGID))) {
		mover_fail(j, TD_MOVER_SKIPPED, -EINVAL, "%s",
		           !S_ISREG(st->st_mode) ? "not a regular file"
		           : st->st_nlink != 1   ? "hard-linked (nlink > 1): not tiered"
		                                 : "setuid/setgid: not tiered");
		return -EINVAL;
	}
	if (j->check_stat &&
	    ((uint64_t)st->st_dev != j->exp_dev || (uint64_t)st->st_ino != j->exp_ino ||
	     (uint64_t)st->st_size != j->exp_size || mover_ts_ns(&st->st_mtim) != j->exp_mtime_ns ||
	     mover_ts_ns(&st->st_ctim) != j->exp_ctime_ns)) {
		mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
		           "changed since the scan; retried on a later run");
		return -ESTALE;
	}
	return 0;
}

/* A read lease: refused while anyone has the file open for writing, and
 * broken (we are signalled) when anyone opens it for writing later. */
static int take_lease(struct job *j)
{
	if (fcntl(j->fd, F_SETLEASE, F_RDLCK) == 0) {
		j->leased = true;
	} else if (errno == EAGAIN || errno == EBUSY) {
		mover_fail(j, TD_MOVER_SKIPPED, -EBUSY,
		           "open for writing by another process; retried later");
		return -EBUSY;
	} /* else: the filesystem has no leases; the stat checks still guard the swap */
	return 0;
}

/* The file's extended attributes are read, and tried on a file of the cache's
 * filesystem: every cache copy (keep_cached, hydration, a write through the
 * view) must carry them, its ACL above all, or a copy would be more open than
 * the original. A file whose attributes cannot be kept is not tiered. */
static int keep_xattrs(struct job *j)
{
	const char *bad = NULL;
	char dir[4200], tmpl[4240];
	size_t need = 0;
	int r, fd;

	r = td_xattr_read(&j->xa, j->fd, &need);
	if (r == -E2BIG) {
		mover_fail(
		    j, TD_MOVER_SKIPPED, r,
		    "its extended attributes need %zu bytes or more; tierd keeps at most %u: "
		    "not tiered",
		    need, TD_XATTR_MAX);
		return r;
	}
	if (r < 0) {
		mover_fail(j, TD_MOVER_SKIPPED, r, "cannot read its extended attributes: %s",
		           strerror(-r));
		return r;
	}
	if (j->xa.len == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/objects", j->m->cache_dir);
	r = td_ns_mkdirs(dir, TD_NS_DIR_MODE);
	fd = r < 0 ? r : open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 && r == 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		snprintf(tmpl, sizeof(tmpl), "%s/.xattr-probe-XXXXXX", dir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
	}
	if (fd < 0) {
		r = r < 0 ? r : -errno;
		mover_fail(j, TD_MOVER_FAILED, r,
		           "cannot try its extended attributes in the cache %s: %s",
		           j->m->cache_dir, strerror(-r));
		return r;
	}
	r = td_xattr_apply(fd, j->xa.buf, j->xa.len, &bad);
	close(fd);
	if (r < 0) {
		mover_fail(j, TD_MOVER_SKIPPED, r,
		           "the cache filesystem (%s) cannot keep its extended attribute %s: %s; "
		           "not tiered",
		           j->m->cache_dir, bad ? bad : "?",
		           r == -ENOTSUP ? "not supported there" : strerror(-r));
		return r;
	}
	return 0;
}

/* Step 1 durable: a new id and its row, state migrating. */
static int insert_row(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry e = { 0 };
	int r;

	r = td_catalog_new_id(j->id);
	if (r == 0)
		r = mover_job_set_id(j, j->id);
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "cannot make an id: %s", strerror(-r));
		return r;
	}
	e.state = TD_CATALOG_MIGRATING;
	e.step = TD_MOVER_OPENED;
	memcpy(e.id, j->id, sizeof(e.id));
	e.policy = j->policy;
	e.path = j->path;
	e.path_len = j->path_len;
	e.name = j->name;
	e.name_len = j->name_len;
	mover_entry_stat(&e, &j->st);
	e.target = j->target_name;
	e.object_key = j->key;
	e.xattrs = j->xa.buf;
	e.xattrs_len = j->xa.len;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_insert(j->m->cat, &e, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0)
		return mover_cat_err(j, r, &ce, "insert");
	j->row = true;
	j->step = TD_MOVER_OPENED;
	mover_hook(j, "opened");
	return 0;
}

static void w_open(struct job *j)
{
	if (open_file(j) == 0 && check_eligible(j) == 0 && take_lease(j) == 0 &&
	    keep_xattrs(j) == 0)
		insert_row(j);
}

/* ---- step 2: upload, manifest, verify (loop thread) ----------------------- */

static void on_head(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err);
static void on_manifest(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err);
static void w_prepare(struct job *j);
static void a_prepare(struct job *j);

static void target_failed(struct job *j, int status, const struct td_target_error *err,
                          const char *what)
{
	if (atomic_load(&j->lease_broken))
		mover_fail(j, TD_MOVER_SKIPPED, -EBUSY,
		           "opened for writing during the upload; retried on a later run");
	else if (status == -ECANCELED && j->m->closing)
		mover_fail(j, TD_MOVER_INTERRUPTED, status, "tierd is stopping");
	else
		mover_fail(j, TD_MOVER_FAILED, status, "%s %s on target %s failed: %s%s%s", what,
		           j->key, j->target_name,
		           err && err->message[0] ? err->message : strerror(-status),
		           err && err->code[0] ? " " : "", err && err->code[0] ? err->code : "");
}

/* Gives up on a migration whose bytes may be on the target: they are deleted
 * and the file stays as it was. */
static void undo(struct job *j)
{
	j->need_rollback = true;
	rollback(j);
}

/* The prologue of every target step's callback. Returns true when the step
 * failed (or a writer broke the lease meanwhile): the job is then being
 * rolled back and the caller returns. */
static bool target_step_failed(struct job *j, int status, const struct td_target_error *err,
                               const char *what)
{
	j->req = NULL;
	if (status == 0 && atomic_load(&j->lease_broken))
		status = -ECANCELED;
	if (status >= 0)
		return false;
	target_failed(j, status, err, what);
	j->need_rollback = j->outcome != TD_MOVER_INTERRUPTED;
	rollback(j);
	return true;
}

/* The next target request could not even start: give up on the migration. */
static void start_failed(struct job *j, int r, const char *what)
{
	mover_fail(j, TD_MOVER_FAILED, r, "cannot start the %s: %s", what, strerror(-r));
	undo(j);
}

static void on_put(void *data, struct td_target_req *req, int status,
                   const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	if (target_step_failed(j, status, err, "upload of"))
		return;
	if (j->put.size_bytes != (uint64_t)j->st.st_size) {
		mover_fail(j, TD_MOVER_FAILED, -EIO, "target stored %llu bytes, the file has %llu",
		           (unsigned long long)j->put.size_bytes,
		           (unsigned long long)j->st.st_size);
		undo(j);
		return;
	}
	j->manifest = mover_manifest_text(j);
	if (!j->manifest) {
		mover_fail(j, TD_MOVER_FAILED, -ENOMEM, "cannot build the manifest");
		undo(j);
		return;
	}
	r = td_target_put_buf(j->t, &j->req, j->mkey, j->manifest, strlen(j->manifest),
	                      "application/json", NULL, 0, &j->mput, on_manifest, j);
	if (r < 0)
		start_failed(j, r, "manifest upload");
}

static void on_manifest(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	if (target_step_failed(j, status, err, "manifest upload of"))
		return;
	r = td_target_head(j->t, &j->req, j->key, &j->head, on_head, j);
	if (r < 0)
		start_failed(j, r, "verification");
}

static void on_head(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err)
{
	struct job *j = data;

	if (target_step_failed(j, status, err, "verification (HEAD) of"))
		return;
	if (j->head.size_bytes != (uint64_t)j->st.st_size ||
	    (j->put.etag[0] && j->head.etag[0] && strcmp(j->put.etag, j->head.etag) != 0)) {
		mover_fail(
		    j, TD_MOVER_FAILED, -EIO,
		    "verification failed: target has %llu bytes, ETag %s; sent %llu bytes, ETag %s",
		    (unsigned long long)j->head.size_bytes, j->head.etag,
		    (unsigned long long)j->st.st_size, j->put.etag);
		undo(j);
		return;
	}
	if (!j->put.etag[0])
		memcpy(j->put.etag, j->head.etag, sizeof(j->put.etag));
	mover_run_work(j, w_prepare, a_prepare);
}

static void start_upload(struct job *j)
{
	char size[32], mtime[32], mode[16], uid[16], gid[16], mtime_s[48];
	/* tierd's own, then what plain tools show (docs/tierd.8, OBJECTS): the
	 * permission bits in octal, owner, and rclone's mtime (seconds.fraction). */
	struct td_target_kv meta[] = {
		{ "tierd-id", j->id }, { "tierd-size", size }, { "tierd-mtime-ns", mtime },
		{ "mode", mode },      { "uid", uid },         { "gid", gid },
		{ "mtime", mtime_s },
	};
	int r;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)j->st.st_size);
	snprintf(mtime, sizeof(mtime), "%lld", (long long)mover_ts_ns(&j->st.st_mtim));
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(j->st.st_mode & 07777));
	snprintf(uid, sizeof(uid), "%u", (unsigned)j->st.st_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)j->st.st_gid);
	snprintf(mtime_s, sizeof(mtime_s), "%lld.%09ld", (long long)j->st.st_mtim.tv_sec,
	         (long)j->st.st_mtim.tv_nsec);
	r = td_target_put_fd(j->t, &j->req, j->key, j->fd, (uint64_t)j->st.st_size, meta,
	                     TD_ARRAY_SIZE(meta), &j->put, on_put, j);
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "cannot start the upload: %s", strerror(-r));
		rollback(j);
	}
}

static void a_open(struct job *j)
{
	if (mover_failed(j)) {
		/* Nothing was uploaded; a row, if any, is removed by the undo step. */
		rollback(j);
		return;
	}
	if (j->m->closing) {
		mover_fail(j, TD_MOVER_INTERRUPTED, -ECANCELED, "tierd is stopping");
		rollback(j);
		return;
	}
	start_upload(j);
}

/* ---- steps 2-5 durable: re-check, link, swap (pool thread) ---------------- */

static int set_step(struct job *j, int from, int to, unsigned extra_fields,
                    struct td_catalog_entry *e)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_MIGRATING, .step = from };
	struct td_catalog_entry local = { 0 };
	int r;

	if (!e)
		e = &local;
	memcpy(e->id, j->id, sizeof(e->id));
	e->state = TD_CATALOG_MIGRATING;
	e->step = to;
	r = mover_cat_update(j->m, e, TD_CATALOG_F_STATE | extra_fields, &ex, &ce);
	if (r < 0)
		return mover_cat_err(j, r, &ce, "update");
	j->step = to;
	return 0;
}

/* Is the file still exactly what we uploaded, still at its name, still leased? */
static bool unchanged(struct job *j, const struct stat *ref, const char *at_name)
{
	struct stat now, named;

	if (atomic_load(&j->lease_broken) || (j->leased && fcntl(j->fd, F_GETLEASE) != F_RDLCK))
		return false;
	if (fstat(j->fd, &now) < 0 || !mover_same_content(&now, ref))
		return false;
	if (fstatat(j->parentfd, at_name, &named, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return named.st_dev == ref->st_dev && named.st_ino == ref->st_ino;
}

/* The cache copy on another filesystem: copied, checked against the upload's
 * hash, given the file's attributes, then renamed into place. */
static int copy_to_cache(struct job *j, const char *path)
{
	unsigned char digest[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX], part[4200];
	struct td_hash *h = NULL;
	int r, out;

	snprintf(part, sizeof(part), "%s.part", path);
	out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	r = td_hash_new(&h, TD_HASH_SHA256);
	if (r == 0)
		r = mover_copy_bytes(j->fd, out, (uint64_t)j->st.st_size, h);
	if (r == 0) {
		td_hash_final(h, digest);
		td_hex(hex, digest, sizeof(digest));
		if (strcmp(hex, j->put.sha256_hex) != 0)
			r = -EIO;
	}
	if (r == 0)
		r = mover_copy_attrs(out, &j->st, j->xa.buf, j->xa.len);
	if (r == 0 && rename(part, path) < 0)
		r = -errno;
	close(out);
	if (r < 0)
		unlink(part);
	else
		j->cache_made = true;
	td_hash_free(h);
	return r;
}

/* keep_cached: the bytes become the cache copy. On the same filesystem that is
 * a second link to the very inode (no copy, and a write through an old
 * descriptor lands in the copy); elsewhere a verified copy. */
static int make_cache_copy(struct job *j)
{
	char path[4096], fdpath[64];
	int r;

	r = td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id);
	if (r < 0)
		return r;
	r = td_ns_cache_mkdir(j->m->state_dir, j->m->cache_dir, j->id);
	if (r < 0)
		return r;
	unlink(path); /* a leftover of a crashed attempt with this id */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", j->fd);
	if (linkat(j->fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0 ||
	    linkat(AT_FDCWD, fdpath, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
		j->cache_made = true;
		return 0;
	}
	if (errno != EXDEV)
		return -errno;
	return copy_to_cache(j, path);
}

int mover_restore_swap(struct job *j)
{
	struct stat st;
	bool taken = false; /* the old inode is no longer at tmpname */

	if (!mover_link_is_ours(j, j->name))
		goto stuck;
	/* Only the old inode goes back to the name, never an entry someone put
	 * at tmpname in its place. */
	taken = fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	        !S_ISREG(st.st_mode) || st.st_dev != j->st.st_dev || st.st_ino != j->st.st_ino;
	if (taken || renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE) < 0)
		goto stuck;
	j->swapped = false;
	if (fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode) && mover_link_is_ours(j, j->tmpname))
		unlinkat(j->parentfd, j->tmpname, 0);
	fsync(j->parentfd);
	return 0;
stuck:
	j->outcome = TD_MOVER_FAILED;
	j->status = -EEXIST;
	if (taken)
		mover_set_msg(j,
		              "the original file was taken away from %s by someone else; the link "
		              "stays at its name and the uploaded copy is kept",
		              j->tmpname);
	else
		mover_set_msg(j,
		              "the link at the original name was replaced by someone else; the "
		              "original data is kept beside it as %s",
		              j->tmpname);
	return -EEXIST;
}

/* Step 2 durable: the row records the object, then the file must still be
 * what was uploaded. */
static int record_upload(struct job *j)
{
	struct td_catalog_entry e = { 0 };

	memcpy(e.sha256, j->put.sha256_hex, sizeof(e.sha256));
	e.target = j->target_name;
	e.object_key = j->key;
	e.etag = j->put.etag;
	e.version_id = j->put.version_id;
	if (set_step(j, TD_MOVER_OPENED, TD_MOVER_UPLOADED,
	             TD_CATALOG_F_SHA256 | TD_CATALOG_F_OBJECT, &e) < 0)
		return -1;
	mover_hook(j, "uploaded");
	if (!unchanged(j, &j->st_ref, j->name)) {
		mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
		           "changed or opened for writing during the upload; retried on a later "
		           "run");
		return -1;
	}
	return 0;
}

/* Step 3 durable: the dynamic link points at the cache copy (keep_cached,
 * made here) or at the remote view. */
static int bind_link(struct job *j)
{
	struct td_access_fold fold;
	char dest[4096];
	int r;

	/* Before anything of it is reachable: its directories get the fold of
	 * the original's ancestors (invariant 7; access.h). */
	r = td_access_fold_path(&fold, j->path, j->path_len, j->st.st_uid, j->st.st_gid);
	if (r == 0)
		r = td_ns_fold(j->m->state_dir, NULL, j->id, &fold);
	if (r == -ENOENT) {
		mover_fail(j, TD_MOVER_SKIPPED, r,
		           "a parent directory was moved, or is a symlink root does not own: "
		           "who may reach it is unknown; retried on a later run");
		return -1;
	}
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "cannot fold the access of its path: %s",
		           strerror(-r));
		return -1;
	}
	if (j->keep_cached) {
		r = make_cache_copy(j);
		if (r < 0) {
			mover_fail(j, TD_MOVER_FAILED, r, "cannot make the cache copy: %s",
			           strerror(-r));
			return -1;
		}
		/* A second link to the inode moves its ctime: compare from here on. */
		if (fstat(j->fd, &j->st_ref) < 0 || j->st_ref.st_size != j->st.st_size ||
		    j->st_ref.st_mtim.tv_sec != j->st.st_mtim.tv_sec ||
		    j->st_ref.st_mtim.tv_nsec != j->st.st_mtim.tv_nsec) {
			mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
			           "changed during the upload; retried later");
			return -1;
		}
		r = td_ns_cache_path(dest, sizeof(dest), j->m->cache_dir, j->id);
	} else {
		r = td_ns_remote_path(dest, sizeof(dest), j->m->run_dir, j->id, j->name,
		                      j->name_len);
	}
	if (r == 0)
		r = td_ns_bind(j->m->state_dir, j->id, j->name, j->name_len, dest);
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "cannot create the dynamic link: %s",
		           strerror(-r));
		return -1;
	}
	if (set_step(j, TD_MOVER_UPLOADED, TD_MOVER_LINKED, 0, NULL) < 0)
		return -1;
	mover_hook(j, "linked");
	return 0;
}

/* Gives our new link at tmpname the file's owner and times (so `ls -l`
 * shows them) through a descriptor, never by name: the directory is the
 * user's, and an entry swapped in under tmpname meanwhile (a hard link to
 * someone else's file) must not get them. The fd must be what we just made: a
 * symlink of our own, with one name, holding our target. Returns 0, or
 * -ESTALE when tmpname no longer holds it. */
static int own_tmp_link(struct job *j)
{
	struct timespec ts[2] = { j->st.st_atim, j->st.st_mtim };
	char rb[4096];
	struct stat st;
	ssize_t n;
	int fd, r = -ESTALE;

	fd = openat(j->parentfd, j->tmpname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -ESTALE;
	n = readlinkat(fd, "", rb, sizeof(rb) - 1);
	if (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid == geteuid() &&
	    st.st_nlink == 1 && n >= 0 && (size_t)n == strlen(j->link_target) &&
	    memcmp(rb, j->link_target, (size_t)n) == 0) {
		/* Cosmetic when refused: the link would show root as its owner. */
		(void)!fchownat(fd, "", j->st.st_uid, j->st.st_gid,
		                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		r = 0;
	}
	close(fd);
	return r;
}

/* Step 4 durable, then the user link made at tmpname. Step 4 is durable
 * before the temporary name exists, so recovery knows to look for it. */
static int make_tmp_link(struct job *j)
{
	if (set_step(j, TD_MOVER_LINKED, TD_MOVER_SWAPPING, 0, NULL) < 0)
		return -1;
	if (symlinkat(j->link_target, j->parentfd, j->tmpname) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -errno, "cannot create the link: %s",
		           strerror(errno));
		return -1;
	}
	mover_hook(j, "tmp_link");
	if (own_tmp_link(j) < 0) {
		mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
		           "%s was replaced just after it was made; retried later", j->tmpname);
		return -1;
	}
	mover_hook(j, "swapping");
	return 0;
}

/* The exchange of the file and its link, checked by inode; anything
 * unexpected is undone. */
static int swap(struct job *j)
{
	char readback[4096];
	struct stat tmpst;
	ssize_t n;
	int r;

	if (!unchanged(j, &j->st_ref, j->name)) {
		mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
		           "changed just before the swap; retried later");
		return -1;
	}
	if (renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE) < 0) {
		r = -errno;
		mover_fail(j, r == -EINVAL ? TD_MOVER_SKIPPED : TD_MOVER_FAILED, r,
		           "cannot swap the file for its link: %s",
		           r == -EINVAL ? "the filesystem has no atomic exchange (RENAME_EXCHANGE)"
		                        : strerror(-r));
		return -1;
	}
	n = readlinkat(j->parentfd, j->name, readback, sizeof(readback) - 1);
	if (n >= 0)
		readback[n] = '\0';
	if (fstatat(j->parentfd, j->tmpname, &tmpst, AT_SYMLINK_NOFOLLOW) < 0 ||
	    tmpst.st_dev != j->st.st_dev || tmpst.st_ino != j->st.st_ino || n < 0 ||
	    strcmp(readback, j->link_target) != 0) {
		renameat2(j->parentfd, j->tmpname, j->parentfd, j->name, RENAME_EXCHANGE);
		mover_fail(j, TD_MOVER_SKIPPED, -ESTALE,
		           "the name was replaced during the swap; put back, retried later");
		return -1;
	}
	j->swapped = true;
	fsync(j->parentfd);
	mover_hook(j, "exchanged");
	return 0;
}

/* Step 5 durable, with the old inode's times after the swap. */
static void record_swap(struct job *j)
{
	struct td_catalog_entry e = { 0 };

	if (fstat(j->fd, &j->st_swap) < 0)
		j->st_swap = j->st;
	mover_entry_stat(&e, &j->st);
	e.size = (uint64_t)j->st_swap.st_size;
	e.mtime_ns = mover_ts_ns(&j->st_swap.st_mtim);
	e.ctime_ns = mover_ts_ns(&j->st_swap.st_ctim); /* the exchange moved ctime */
	if (set_step(j, TD_MOVER_SWAPPING, TD_MOVER_SWAPPED, TD_CATALOG_F_STAT, &e) < 0) {
		/* The catalog cannot say "swapped": put the file back now. */
		mover_restore_swap(j);
		j->need_rollback = true;
		return;
	}
	mover_hook(j, "swapped");
}

static void w_prepare(struct job *j)
{
	if (record_upload(j) < 0 || bind_link(j) < 0 || make_tmp_link(j) < 0 || swap(j) < 0) {
		j->need_rollback = true;
		return;
	}
	record_swap(j);
}

/* ---- grace period and the final step --------------------------------------- */

static void w_finish(struct job *j);

static void on_grace(uv_timer_t *t)
{
	struct job *j = t->data;

	j->grace_armed = false;
	mover_run_work(j, w_finish, mover_settle);
}

void mover_end_grace(struct job *j)
{
	uv_timer_stop(&j->grace);
	j->grace_armed = false;
	mover_run_work(j, w_finish, mover_settle);
}

static void a_prepare(struct job *j)
{
	if (j->need_rollback || mover_failed(j)) {
		rollback(j);
		return;
	}
	if (j->m->closing || j->m->o.grace_ms <= 0) {
		mover_run_work(j, w_finish, mover_settle);
		return;
	}
	if (!j->grace_init) {
		uv_timer_init(j->m->loop, &j->grace);
		j->grace.data = j;
		j->grace_init = true;
	}
	/* The grace period moves no bytes: give the transfer slot to the next
	 * file, as long as the files waiting here (two fds each) stay bounded. */
	if (!j->in_grace && j->m->n_grace < j->m->o.max_in_grace) {
		j->in_grace = true;
		j->m->n_grace++;
		mover_pump(j->m);
	}
	j->grace_armed = true;
	uv_timer_start(&j->grace, on_grace, (uint64_t)j->m->o.grace_ms, 0);
}

int mover_set_tiered(struct job *j, int from, bool cached, uint64_t cached_bytes)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_MIGRATING, .step = from };
	struct td_catalog_entry e = { 0 };
	int r;

	memcpy(e.id, j->id, sizeof(e.id));
	e.state = cached ? TD_CATALOG_CACHED : TD_CATALOG_TIERED;
	e.step = 0;
	e.tiered_ns = td_now_ns();
	e.cache_state = cached ? TD_CATALOG_CACHE_CACHED : TD_CATALOG_CACHE_NONE;
	e.cached_bytes = cached ? cached_bytes : 0;
	e.cache_atime_ns = e.tiered_ns;
	r = mover_cat_update(
	    j->m, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_TIERED | TD_CATALOG_F_CACHE, &ex, &ce);
	if (r < 0)
		return mover_cat_err(j, r, &ce, "final update");
	return 0;
}

static void w_finish(struct job *j)
{
	if (!unchanged(j, &j->st_swap, j->tmpname)) {
		/* A writer got to the old inode around the swap: it goes back. */
		if (mover_restore_swap(j) == 0)
			mover_fail(j, TD_MOVER_RESTORED, -ESTALE,
			           "written to during the swap; put back in place, retried later");
		else
			j->need_rollback = false; /* keep the object: the data is in two places */
		j->need_rollback = j->need_rollback || j->outcome == TD_MOVER_RESTORED;
		return;
	}
	if (unlinkat(j->parentfd, j->tmpname, 0) < 0) {
		mover_fail(j, TD_MOVER_FAILED, -errno, "cannot remove %s: %s", j->tmpname,
		           strerror(errno));
		mover_restore_swap(j);
		j->need_rollback = true;
		return;
	}
	fsync(j->parentfd);
	if (mover_set_tiered(j, TD_MOVER_SWAPPED, j->keep_cached, (uint64_t)j->st.st_size) < 0) {
		/* The swap is done and durable on disk; the row still says "swapped",
		 * which recovery turns into "tiered" at the next start. */
		j->outcome = TD_MOVER_INTERRUPTED;
	} else {
		mover_hook(j, "tiered");
	}
	j->swapped = false;
	mover_release_file(j);
}

void mover_settle(struct job *j)
{
	if (j->need_rollback) {
		rollback(j);
		return;
	}
	mover_finish(j);
}

/* ---- rollback ------------------------------------------------------------- */

static void w_undo(struct job *j);
static void a_undo(struct job *j);

static void on_deleted_manifest(void *data, struct td_target_req *req, int status,
                                const struct td_target_error *err)
{
	struct job *j = data;

	j->req = NULL;
	/* On failure the row stays, so recovery deletes the object later. */
	j->need_rollback = status < 0;
	mover_run_work(j, w_undo, a_undo);
}

static void on_deleted_object(void *data, struct td_target_req *req, int status,
                              const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	j->req = NULL;
	if (status < 0) {
		j->need_rollback = true;
		mover_run_work(j, w_undo, a_undo);
		return;
	}
	r = td_target_delete(j->t, &j->req, j->mkey, on_deleted_manifest, j);
	if (r < 0)
		mover_run_work(j, w_undo, a_undo);
}

/* Undoes a migration that did not finish: deletes what went to the target
 * (when need_rollback), then the local pieces and the row. */
static void rollback(struct job *j)
{
	int r;

	if (j->need_rollback && j->t && !j->m->closing) {
		r = td_target_delete(j->t, &j->req, j->key, on_deleted_object, j);
		if (r == 0)
			return;
	}
	mover_run_work(j, w_undo, a_undo);
}

/* The dynamic link, the cache copy and the row go; the row stays at step 9
 * while the target may still hold our object. */
static void undo_local(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	char path[4096];

	td_ns_remove(j->m->state_dir, j->id);
	if (td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id) == 0) {
		unlink(path);
		strncat(path, ".part", sizeof(path) - strlen(path) - 1);
		unlink(path);
	}
	/* The row goes only when the target holds nothing of ours any more;
	 * otherwise it stays "migrating" and recovery retries the deletion. */
	if (j->row && !j->need_rollback) {
		uv_mutex_lock(&j->m->cat_lock);
		td_catalog_delete(j->m->cat, j->id, NULL, &ce);
		uv_mutex_unlock(&j->m->cat_lock);
	} else if (j->row) {
		set_step(j, TD_CATALOG_ANY, TD_MOVER_ROLLBACK, 0, NULL);
	}
}

static void w_undo(struct job *j)
{
	struct stat st;

	if (j->swapped)
		mover_restore_swap(j);
	if (j->parentfd >= 0 && j->id[0] &&
	    fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode) && mover_link_is_ours(j, j->tmpname))
		unlinkat(j->parentfd, j->tmpname, 0);
	/* Interrupted: recovery finishes the job. -EEXIST: someone else's link is
	 * at the name and the data beside it; nothing of ours may go. */
	if (j->id[0] && j->outcome != TD_MOVER_INTERRUPTED &&
	    !(j->outcome == TD_MOVER_FAILED && j->status == -EEXIST))
		undo_local(j);
	mover_release_file(j);
}

static void a_undo(struct job *j)
{
	mover_finish(j);
}

void mover_migrate_start(struct job *j)
{
	mover_run_work(j, w_open, a_open);
}

void mover_migrate_drop(struct job *j)
{
	mover_run_work(j, w_undo, a_undo);
}
