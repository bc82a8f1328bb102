/*
 * mover — the queue and the worker plumbing; see mover.h for the steps of a
 * migration and mover_int.h for how the mover's files divide the work.
 *
 * What this file owns: the mover itself (its catalog handle, the policy root
 * fds, the queue and the in-flight list) and the life of a job from
 * td_mover_migrate() to mover_finish(). The steps themselves live in
 * mover_migrate.c, mover_recover.c and mover_recall.c.
 *
 * Threads: the public functions, the queue (td_mover_migrate, mover_pump,
 * mover_start_job), mover_run_work's after-callbacks and mover_finish run on
 * the loop thread. A blocking step runs on a pool thread with the job to
 * itself; the helpers it calls here (mover_open_parent, mover_cat_update,
 * mover_copy_bytes, ...) take cat_lock or roots_lock where they share state.
 *
 * Policy roots are opened once, O_PATH, at their first use by a job, and kept
 * until the mover closes; every job walks from that fd (td_fsat_open_parent),
 * so no symlink beneath a root is ever followed. Each use first checks that
 * the root's path still names the directory the fd holds (a stat, no open): a
 * root mounted over, or replaced, after its first use is opened afresh for
 * that job, so a job never works in a directory its root's path no longer
 * names. The kept fds hold the roots' filesystems busy while tierd runs.
 */
#include "mover_int.h"
#include "metrics.h"
#include "fsat.h"
#include "hash.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_IN_GRACE 16384 /* the most max_in_grace defaults to: two fds each */
#define FDS_KEPT     1024  /* fds left for everything else when sizing it */
#define COPY_BUF     (1 << 20)
/* A user's file under a lease: opens are tried this many times, this far
 * apart, before the caller gets -EAGAIN (see mover_open_user_file). */
#define OPEN_LEASE_TRIES   5
#define OPEN_LEASE_WAIT_US 20000

/* ---- results and helpers --------------------------------------------------- */

void mover_set_msg(struct job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

void mover_fail(struct job *j, enum td_mover_outcome o, int status, const char *fmt, ...)
{
	va_list ap;

	/* The first reason is the one reported. */
	if (j->status != 0 || j->outcome != TD_MOVER_TIERED)
		return;
	j->outcome = o;
	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

bool mover_failed(const struct job *j)
{
	return j->outcome != TD_MOVER_TIERED;
}

void mover_hook(struct job *j, const char *step)
{
	if (j->m->o.step_hook)
		j->m->o.step_hook(j->m->o.ctx, j->id, step);
}

int mover_cat_err(struct job *j, int r, const struct td_catalog_error *ce, const char *what)
{
	mover_fail(j, TD_MOVER_FAILED, r, "catalog: %s: %s", what,
	           ce->message[0] ? ce->message : strerror(-r));
	return r;
}

bool mover_same_content(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int64_t mover_ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

void mover_entry_stat(struct td_catalog_entry *e, const struct stat *st)
{
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = (uint64_t)st->st_size;
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->atime_ns = mover_ts_ns(&st->st_atim);
	e->mtime_ns = mover_ts_ns(&st->st_mtim);
	e->ctime_ns = mover_ts_ns(&st->st_ctim);
}

bool mover_link_is_ours(const struct job *j, const char *name)
{
	char rb[4096];
	ssize_t n = readlinkat(j->parentfd, name, rb, sizeof(rb) - 1);

	return n >= 0 && (size_t)n == strlen(j->link_target) &&
	       memcmp(rb, j->link_target, (size_t)n) == 0;
}

int mover_cat_update(struct td_mover *m, const struct td_catalog_entry *e, unsigned fields,
                     const struct td_catalog_expect *ex, struct td_catalog_error *ce)
{
	int r;

	uv_mutex_lock(&m->cat_lock);
	r = td_catalog_update(m->cat, e, fields, ex, ce);
	uv_mutex_unlock(&m->cat_lock);
	return r;
}

void mover_cat_add_error(struct td_mover *m, const char *id, const char *message)
{
	struct td_catalog_error ce = { 0 };

	uv_mutex_lock(&m->cat_lock);
	td_catalog_add_error(m->cat, id, message, &ce);
	uv_mutex_unlock(&m->cat_lock);
}

int mover_copy_bytes(int in, int out, uint64_t size, struct td_hash *h)
{
	char *buf = malloc(COPY_BUF);
	uint64_t off = 0;
	int r = buf ? 0 : -ENOMEM;

	while (r == 0 && off < size) {
		ssize_t n = pread(in, buf, COPY_BUF, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		if (h)
			td_hash_update(h, buf, (size_t)n);
		r = td_write_full(out, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	return r;
}

int mover_open_user_file(int dirfd, const char *name, int flags)
{
	int fd = -1;

	for (int i = 0; i < OPEN_LEASE_TRIES; i++) {
		if (i > 0)
			usleep(OPEN_LEASE_WAIT_US);
		fd = openat(dirfd, name, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 || errno != EWOULDBLOCK)
			break;
	}
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	/* O_NONBLOCK was for the lease only; reads of a regular file ignore it,
	 * but the fd goes on to other code. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int mover_copy_attrs(int out, const struct stat *st, const void *xattrs, size_t xattrs_len)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int r;

	/* The owner first (a chown drops security.capability), then the ACL,
	 * which sets the mode's bits as the original had them. */
	if (fchown(out, st->st_uid, st->st_gid) < 0)
		return -errno;
	r = td_xattr_apply(out, xattrs, xattrs_len, NULL);
	if (r < 0)
		return r;
	if (fchmod(out, st->st_mode & 07777) < 0 || futimens(out, ts) < 0 || fsync(out) < 0)
		return -errno;
	return 0;
}

/* ---- the job --------------------------------------------------------------- */

struct job *mover_job_new(struct td_mover *m)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->m = m;
	j->fd = j->parentfd = -1;
	atomic_init(&j->lease_broken, false);
	return j;
}

void mover_job_free(struct job *j)
{
	for (size_t i = 0; i < j->n_roots; i++)
		free(j->roots[i]);
	free(j->roots);
	free(j->root);
	free(j->path);
	free(j->policy);
	free(j->target_name);
	free(j->manifest);
	td_xattr_free(&j->xa);
	td_catalog_entry_free(j->entry);
	free(j);
}

int mover_job_set_path(struct job *j, const char *root, const char *rel, size_t rel_len)
{
	size_t rl = strlen(root);
	const char *slash;

	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	if (rel_len == 0 || rel[0] == '/' || memchr(rel, '\0', rel_len))
		return -EINVAL;
	j->root = strndup(root, rl);
	j->path = malloc(rl + 1 + rel_len + 1);
	if (!j->root || !j->path)
		return -ENOMEM;
	memcpy(j->path, root, rl);
	j->path[rl] = '/';
	memcpy(j->path + rl + 1, rel, rel_len);
	j->path[rl + 1 + rel_len] = '\0';
	j->path_len = rl + 1 + rel_len;
	j->rel = j->path + rl + 1;
	j->rel_len = rel_len;
	slash = memrchr(j->rel, '/', rel_len);
	j->name = slash ? slash + 1 : j->rel;
	j->name_len = (size_t)(j->rel + rel_len - j->name);
	return td_ns_valid_name(j->name, j->name_len) ? 0 : -EINVAL;
}

int mover_job_set_abs_path(struct job *j, const char *root, const char *path, size_t path_len)
{
	size_t rl = strlen(root);

	/* As td_policy_root_of matches it: without trailing '/'. */
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	if (path_len <= rl + 1 || memcmp(path, root, rl) != 0 || path[rl] != '/')
		return -EINVAL;
	return mover_job_set_path(j, root, path + rl + 1, path_len - rl - 1);
}

int mover_job_set_id(struct job *j, const char *id)
{
	int r;

	memcpy(j->id, id, TD_CATALOG_ID_HEX);
	snprintf(j->tmpname, sizeof(j->tmpname), ".tierd-%s", id);
	r = td_ns_object_key(j->key, sizeof(j->key), id, false);
	if (r == 0)
		r = td_ns_object_key(j->mkey, sizeof(j->mkey), id, true);
	if (r == 0)
		r = td_ns_link_path(j->link_target, sizeof(j->link_target), j->m->state_dir, id,
		                    j->name, j->name_len);
	return r;
}

/* Whether the path `root` still names the directory `fd` holds. */
static bool root_is_current(const char *root, int fd)
{
	struct stat a, b;

	return lstat(root, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* The fd of policy root `root`, opened at its first use (see the note at the
 * top). *owned: the caller closes it (the table of roots is full). */
static int root_fd(struct td_mover *m, const char *root, bool *owned)
{
	int fd = -1;

	*owned = false;
	bool known = false;

	uv_mutex_lock(&m->roots_lock);
	for (size_t i = 0; i < m->n_roots && !known; i++)
		if (strcmp(m->roots[i].path, root) == 0) {
			fd = m->roots[i].fd;
			known = true;
		}
	uv_mutex_unlock(&m->roots_lock);
	if (known && root_is_current(root, fd))
		return fd;
	if (known) {
		/* Mounted over or replaced since its first use: this job gets its
		 * own fd of what the path names now. The kept fd stays (another job
		 * may be walking from it) until the mover closes. */
		fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		*owned = true;
		return fd;
	}

	/* Opened without the lock: the root may be slow to reach (NFS). */
	fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uv_mutex_lock(&m->roots_lock);
	for (size_t i = 0; i < m->n_roots; i++)
		if (strcmp(m->roots[i].path, root) == 0) { /* another job was quicker */
			close(fd);
			fd = m->roots[i].fd;
			goto out;
		}
	if (m->n_roots < MOVER_ROOTS_MAX && (m->roots[m->n_roots].path = strdup(root)))
		m->roots[m->n_roots++].fd = fd;
	else
		*owned = true;
out:
	uv_mutex_unlock(&m->roots_lock);
	return fd;
}

int mover_open_parent(struct job *j)
{
	const char *name;
	bool owned;
	int rootfd = root_fd(j->m, j->root, &owned), fd;

	if (rootfd < 0)
		return rootfd;
	fd = td_fsat_open_parent(rootfd, j->rel, j->rel_len, 0, &name);
	if (owned)
		close(rootfd);
	return fd;
}

void mover_release_file(struct job *j)
{
	if (j->fd >= 0) {
		if (j->leased)
			fcntl(j->fd, F_SETLEASE, F_UNLCK);
		close(j->fd);
		j->fd = -1;
		j->leased = false;
	}
	if (j->parentfd >= 0) {
		close(j->parentfd);
		j->parentfd = -1;
	}
}

/* ---- running steps ----------------------------------------------------------- */

static void run_work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	j->work_fn(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;

	if (status < 0)
		mover_fail(j, TD_MOVER_FAILED, status, "could not run on the thread pool: %s",
		           uv_strerror(status));
	j->after(j);
}

void mover_run_work(struct job *j, void (*fn)(struct job *), void (*after)(struct job *))
{
	int r;

	j->work.data = j;
	j->work_fn = fn;
	j->after = after;
	r = uv_queue_work(j->m->loop, &j->work, run_work_cb, after_work_cb);
	if (r < 0) {
		mover_fail(j, TD_MOVER_FAILED, r, "could not queue work: %s", uv_strerror(r));
		after(j);
	}
}

void mover_active_add(struct td_mover *m, struct job *j)
{
	j->prev = NULL;
	j->next = m->active;
	if (m->active)
		m->active->prev = j;
	m->active = j;
	m->n_active++;
}

static void active_remove(struct td_mover *m, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else if (m->active == j)
		m->active = j->next;
	if (j->next)
		j->next->prev = j->prev;
	m->n_active--;
	if (j->in_grace)
		m->n_grace--;
}

void mover_start_job(struct td_mover *m, struct job *j)
{
	mover_active_add(m, j);
	if (j->recovering && j->recalling) {
		mover_recall_recover_start(j);
	} else if (j->recovering) {
		mover_recover_start(j);
	} else if (m->o.target_usable && !m->o.target_usable(m->o.ctx, j->target_name)) {
		mover_fail(j, TD_MOVER_SKIPPED, -EHOSTDOWN,
		           "target %s is unreachable; retried when it is back", j->target_name);
		mover_migrate_drop(j);
	} else {
		mover_migrate_start(j);
	}
}

void mover_pump(struct td_mover *m)
{
	while (!m->closing && m->queue_head && m->n_active - m->n_grace < m->o.max_transfers) {
		struct job *j = m->queue_head;

		m->queue_head = j->next;
		if (!m->queue_head)
			m->queue_tail = NULL;
		m->n_queued--;
		mover_start_job(m, j);
	}
	mover_maybe_closed(m);
}

/* ---- the end of a job -------------------------------------------------------- */

static void on_job_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	struct td_mover *m = j->m;

	mover_job_free(j);
	mover_pump(m);
}

/* As many files in their grace period as the fd limit leaves room for (two
 * each), up to MAX_IN_GRACE and at least 64: the grace period moves no bytes,
 * so the only bound on files watched at once is what they hold open. At 2 s
 * of grace, 4,096 in grace let 2,000 files a second through. */
static unsigned default_in_grace(void)
{
	struct rlimit rl;
	rlim_t n = 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur > FDS_KEPT + 128)
		n = (rl.rlim_cur - FDS_KEPT) / 2;
	else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY)
		n = MAX_IN_GRACE;
	return (unsigned)TD_MIN(n, (rlim_t)MAX_IN_GRACE);
}

void mover_finish(struct job *j)
{
	struct td_mover *m = j->m;
	struct recover *rc = j->recovering ? m->recovering : NULL;
	struct td_mover_result res = {
		.outcome = j->outcome,
		.status = j->status,
		.id = j->id,
		.path = j->path ? j->path : "",
		.path_len = j->path_len,
		.size_bytes = (uint64_t)j->st.st_size,
	};

	memcpy(res.message, j->msg, sizeof(res.message));
	if (j->outcome == TD_MOVER_TIERED && !res.message[0])
		snprintf(res.message, sizeof(res.message), "tiered as %s", j->id);
	active_remove(m, j);
	if (j->outcome == TD_MOVER_TIERED && !j->recovering) {
		td_metrics_add(j->recalling ? TD_M_RECALLED_FILES : TD_M_TIERED_FILES, 1, NULL,
		               NULL, NULL);
		td_metrics_add(j->recalling ? TD_M_RECALLED_BYTES : TD_M_TIERED_BYTES,
		               res.size_bytes, NULL, NULL, NULL);
	} else if (j->outcome == TD_MOVER_FAILED) {
		td_metrics_add(TD_M_ERRORS, 1, j->recalling ? "recall" : "migrate", NULL, NULL);
	}
	if (j->cb)
		j->cb(j->data, &res);
	if (j->grace_init) {
		uv_close((uv_handle_t *)&j->grace, on_job_closed);
		return;
	}
	mover_job_free(j);
	mover_pump(m); /* while rc is set, this never frees m */
	if (rc)
		mover_recover_next(rc);
}

static void mover_free(struct td_mover *m)
{
	for (size_t i = 0; i < m->n_roots; i++) {
		close(m->roots[i].fd);
		free(m->roots[i].path);
	}
	free(m->state_dir);
	free(m->cache_dir);
	free(m->run_dir);
	free(m);
}

void mover_maybe_closed(struct td_mover *m)
{
	if (!m->closing || m->n_active || m->recovering || !m->close_cb)
		return;
	void (*cb)(void *) = m->close_cb;
	void *data = m->close_data;

	m->close_cb = NULL;
	td_catalog_close(m->cat);
	uv_mutex_destroy(&m->cat_lock);
	uv_mutex_destroy(&m->roots_lock);
	mover_free(m);
	cb(data);
}

/* ---- public API ------------------------------------------------------------- */

int td_mover_new(struct td_mover **out, const struct td_mover_opts *o, char *err, size_t errlen)
{
	struct td_catalog_error ce = { 0 };
	struct td_mover *m;
	int r;

	if (!o->loop || !o->catalog_path || !o->state_dir || !o->cache_dir || !o->run_dir ||
	    !o->target_for || o->max_transfers == 0) {
		snprintf(err, errlen, "mover: missing options");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = o->loop;
	m->o = *o;
	if (!m->o.max_queued)
		m->o.max_queued = 10000;
	if (!m->o.max_in_grace)
		m->o.max_in_grace = default_in_grace();
	m->state_dir = strdup(o->state_dir);
	m->cache_dir = strdup(o->cache_dir);
	m->run_dir = strdup(o->run_dir);
	if (!m->state_dir || !m->cache_dir || !m->run_dir) {
		snprintf(err, errlen, "out of memory");
		mover_free(m);
		return -ENOMEM;
	}
	r = td_catalog_open(&m->cat, o->catalog_path, TD_CATALOG_CREATE, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message[0] ? ce.message : strerror(-r));
		mover_free(m);
		return r;
	}
	uv_mutex_init(&m->cat_lock);
	uv_mutex_init(&m->roots_lock);
	*out = m;
	return 0;
}

/* A queued job for file f; -errno as td_mover_migrate returns it. */
static int migrate_job(struct job **out, struct td_mover *m, const struct td_mover_file *f)
{
	struct job *j = mover_job_new(m);
	int r;

	if (!j)
		return -ENOMEM;
	r = mover_job_set_path(j, f->root, f->rel, f->rel_len);
	if (r < 0)
		goto fail;
	j->policy = f->policy ? strdup(f->policy) : NULL;
	j->target_name = strdup(f->target);
	r = -ENOMEM;
	if (!j->target_name || (f->policy && !j->policy))
		goto fail;
	j->keep_cached = f->keep_cached;
	j->check_stat = f->check_stat;
	j->exp_dev = f->dev;
	j->exp_ino = f->ino;
	j->exp_size = f->size_bytes;
	j->exp_mtime_ns = f->mtime_ns;
	j->exp_ctime_ns = f->ctime_ns;
	j->t = m->o.target_for(m->o.ctx, j->target_name);
	r = -ENOENT;
	if (!j->t)
		goto fail;
	*out = j;
	return 0;
fail:
	mover_job_free(j);
	return r;
}

int td_mover_migrate(struct td_mover *m, const struct td_mover_file *f, td_mover_cb cb, void *data)
{
	struct job *j;
	int r;

	if (m->closing)
		return -ESHUTDOWN;
	if (m->n_queued >= m->o.max_queued)
		return -EAGAIN;
	if (!f->root || f->root[0] != '/' || !f->rel || !f->target || !cb)
		return -EINVAL;
	r = migrate_job(&j, m, f);
	if (r < 0)
		return r;
	j->cb = cb;
	j->data = data;
	if (m->queue_tail)
		m->queue_tail->next = j;
	else
		m->queue_head = j;
	m->queue_tail = j;
	m->n_queued++;
	mover_pump(m);
	return 0;
}

unsigned td_mover_in_flight(const struct td_mover *m)
{
	return m->n_active;
}

unsigned td_mover_queued(const struct td_mover *m)
{
	return m->n_queued;
}

void td_mover_check_leases(struct td_mover *m)
{
	for (struct job *j = m->active; j; j = j->next) {
		if (j->fd < 0 || !j->leased || atomic_load(&j->lease_broken))
			continue;
		if (fcntl(j->fd, F_GETLEASE) == F_RDLCK)
			continue;
		atomic_store(&j->lease_broken, true);
		if (j->req) {
			/* Still uploading: give the file back to the writer now. */
			fcntl(j->fd, F_SETLEASE, F_UNLCK);
			j->leased = false;
			td_target_cancel(j->req);
		} else if (j->grace_armed) {
			mover_end_grace(j);
		}
		/* Otherwise a blocking step is running; it checks lease_broken. */
	}
}

void td_mover_drop_queued(struct td_mover *m)
{
	struct job *j, *next;

	for (j = m->queue_head; j; j = next) {
		struct td_mover_result res = { .outcome = TD_MOVER_SKIPPED,
			                       .status = -ESHUTDOWN,
			                       .id = "",
			                       .path = j->path,
			                       .path_len = j->path_len };

		next = j->next;
		snprintf(res.message, sizeof(res.message), "tierd is stopping");
		j->cb(j->data, &res);
		mover_job_free(j);
	}
	m->queue_head = m->queue_tail = NULL;
	m->n_queued = 0;
}

void td_mover_close(struct td_mover *m, void (*close_cb)(void *data), void *data)
{
	struct job *j;

	m->closing = true;
	m->close_cb = close_cb;
	m->close_data = data;
	td_mover_drop_queued(m);
	for (j = m->active; j; j = j->next) {
		if (j->req)
			td_target_cancel(j->req);
		else if (j->grace_armed)
			mover_end_grace(j);
	}
	mover_maybe_closed(m);
}
