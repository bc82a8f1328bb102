/*
 * rview_write.c — writes through the view: served on the cache copy.
 *
 * Loop thread, except w_mark_dirty (thread pool). A write open of a cold file
 * hydrates it first (an O_TRUNC open makes an empty copy instead); writes,
 * setattr and fsync then go to the copy, whose binding is already in place.
 * When the last writer of a changed copy closes, on_dirty tells the owner
 * (rv_op_release). It owns the write opens waiting for their hydration and
 * the writes in flight.
 */
#include "rview_int.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct wopen {
	struct td_rview *rv;
	fuse_req_t req;
	struct node *n;
	struct fuse_file_info fi;
	/* When a lease on the copy makes the open wait (below). */
	uv_work_t work;
	char path[4096];
	int flags, fd;
};

/* Answers the write open with a handle on `fd`, the opened copy (or -errno). */
static void wopen_finish(struct wopen *wo, int fd)
{
	struct node *n = wo->n;
	struct td_rview *rv = wo->rv;
	struct handle *h = fd >= 0 ? calloc(1, sizeof(*h)) : NULL;

	if (!h) {
		if (fd >= 0)
			close(fd);
		fuse_reply_err(wo->req, fd < 0 ? -fd : ENOMEM);
		return;
	}
	h->wfd = fd;
	h->n = n;
	n->opens++;
	rv_node_hold(n); /* the handle's, until rv_op_release */
	n->writers++;
	rv->st.opens++;
	if (wo->fi.flags & O_TRUNC)
		n->dirty = true;
	wo->fi.fh = (uint64_t)(uintptr_t)h;
	wo->fi.keep_cache = 0;
	wo->fi.direct_io = 0;
	fuse_reply_open(wo->req, &wo->fi);
}

/* A lease on the copy (tierd's own while it evicts or recalls the file, or
 * its owner's) makes an open wait for the lease break. That wait happens here,
 * on the thread pool, never on the loop; the kernel's lease-break-time bounds
 * it. */
static void w_open_copy(uv_work_t *w)
{
	struct wopen *wo = w->data;

	wo->fd = open(wo->path, wo->flags | O_NOFOLLOW | O_CLOEXEC);
	if (wo->fd < 0)
		wo->fd = -errno;
}

static void a_open_copy(uv_work_t *w, int status)
{
	struct wopen *wo = w->data;
	struct td_rview *rv = wo->rv;

	if (wo->fd >= 0 && (status < 0 || rv->closing)) {
		close(wo->fd);
		wo->fd = -EIO;
	}
	wopen_finish(wo, wo->fd);
	rv_node_put(wo->n); /* the wait's */
	free(wo);
	rv->pending_work--;
	rv_maybe_closed(rv);
}

static void wopen_reply(struct wopen *wo, int status)
{
	struct node *n = wo->n;
	struct td_rview *rv = wo->rv;
	int fd;

	if (status < 0 || rv->closing) {
		fuse_reply_err(wo->req, status == -EFBIG || status == -EAGAIN ? -status : EIO);
		goto out;
	}
	wo->flags = wo->fi.flags & (O_ACCMODE | O_APPEND | O_TRUNC);
	td_ns_cache_path(wo->path, sizeof(wo->path), rv->cache_dir, n->id);
	fd = rv_open_copy(wo->path, wo->flags);
	if (fd == -EWOULDBLOCK) {
		wo->work.data = wo;
		rv_node_hold(n); /* the wait's, until a_open_copy */
		if (uv_queue_work(rv->loop, &wo->work, w_open_copy, a_open_copy) == 0) {
			rv->pending_work++;
			return;
		}
		rv_node_put(n);
	}
	wopen_finish(wo, fd);
out:
	free(wo);
}

static void wopen_hydrated(void *data, int status)
{
	wopen_reply(data, status);
}

struct dirty_job {
	uv_work_t work;
	struct td_rview *rv;
	char id[TD_CATALOG_ID_HEX];
};

/* Only a row that is still tiered (or cached, or dirty) becomes dirty. This
 * job may run after the writer closed and the recall it started has begun
 * (the row is recalling) or ended (local): marking that row dirty would leave
 * a dirty row with no copy, which every later recall fails on, or make the
 * recall's own last step fail. The recall found the copy without us (a
 * tiered row with a copy is dirty to it). */
static void w_mark_dirty(uv_work_t *w)
{
	static const int from[] = { TD_CATALOG_TIERED, TD_CATALOG_CACHED, TD_CATALOG_DIRTY };
	struct dirty_job *d = w->data;
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error ce;

	rv_test_pause(d->rv, "dirty", d->id);
	memcpy(e.id, d->id, sizeof(e.id));
	e.state = TD_CATALOG_DIRTY;
	e.cache_state = TD_CATALOG_CACHE_DIRTY;
	e.cache_atime_ns = td_now_ns();
	uv_mutex_lock(&d->rv->cat_lock);
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		struct td_catalog_expect ex = { .state = from[i], .step = TD_CATALOG_ANY };

		if (td_catalog_update(d->rv->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex,
		                      &ce) != -ESTALE)
			break;
	}
	uv_mutex_unlock(&d->rv->cat_lock);
}

static void a_mark_dirty(uv_work_t *w, int status)
{
	struct dirty_job *d = w->data;

	d->rv->pending_work--;
	rv_maybe_closed(d->rv);
	free(d);
}

/* The catalog learns that this copy is the newest version of the file. */
static void mark_dirty(struct td_rview *rv, struct node *n)
{
	struct dirty_job *d = calloc(1, sizeof(*d));

	if (!d)
		return;
	d->rv = rv;
	memcpy(d->id, n->id, sizeof(d->id));
	d->work.data = d;
	if (uv_queue_work(rv->loop, &d->work, w_mark_dirty, a_mark_dirty) == 0)
		rv->pending_work++;
	else
		free(d);
}

/* O_TRUNC: no need for the old bytes; an empty copy with the file's owner
 * and mode takes its place. */
static int make_empty_copy(struct td_rview *rv, struct node *n)
{
	char path[4096];
	int fd, r;

	if (td_ns_cache_path(path, sizeof(path), rv->cache_dir, n->id) < 0 ||
	    td_ns_cache_mkdir(rv->state_dir, rv->cache_dir, n->id) < 0)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = rv_copy_owner(n, fd);
	if (r < 0) {
		close(fd);
		unlink(path);
		return r;
	}
	close(fd);
	r = td_ns_bind(rv->state_dir, n->id, n->name, n->name_len, path);
	if (r < 0) {
		unlink(path);
		return r;
	}
	rv_set_copy_fd(n, rv_open_copy(path, O_RDONLY));
	n->cached = n->cache_fd >= 0;
	n->dirty = true;
	mark_dirty(rv, n);
	return 0;
}

/* Opening a cold file for writing hydrates it first; the writes then go to
 * the copy (and the link is already rebound to it). */
void rv_open_for_write(struct td_rview *rv, fuse_req_t req, struct node *n,
                       struct fuse_file_info *fi)
{
	struct wopen *wo = calloc(1, sizeof(*wo));
	int r;

	if (!wo) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	wo->rv = rv;
	wo->req = req;
	wo->n = n;
	wo->fi = *fi;
	if (n->cached) {
		wopen_reply(wo, 0);
		return;
	}
	if ((fi->flags & O_TRUNC) && !n->hyd) {
		r = make_empty_copy(rv, n);
		wopen_reply(wo, r);
		return;
	}
	if (rv_hwait_add(n, wopen_hydrated, wo) < 0) {
		free(wo);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!n->hyd)
		rv_hyd_start(rv, n);
}

struct fswrite {
	uv_fs_t fs;
	fuse_req_t req;
	struct td_rview *rv;
	char *buf;
};

static void on_fswrite(uv_fs_t *fs)
{
	struct fswrite *w = fs->data;
	struct td_rview *rv = w->rv;

	if (fs->result < 0)
		fuse_reply_err(w->req, (int)-fs->result);
	else
		fuse_reply_write(w->req, (size_t)fs->result);
	rv->pending_work--;
	uv_fs_req_cleanup(fs);
	free(w->buf);
	free(w);
	rv_maybe_closed(rv);
}

void rv_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fswrite *w;
	uv_buf_t b;

	if (h->wfd < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc(size ? size : 1);
	if (!w || !w->buf) {
		free(w);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(w->buf, buf, size); /* buf belongs to libfuse only during this call */
	w->req = req;
	w->rv = rv;
	w->fs.data = w;
	h->n->dirty = true;
	b = uv_buf_init(w->buf, (unsigned)size);
	if (uv_fs_write(rv->loop, &w->fs, h->wfd, &b, 1, (fi->flags & O_APPEND) ? -1 : off,
	                on_fswrite) < 0) {
		free(w->buf);
		free(w);
		fuse_reply_err(req, EIO);
		return;
	}
	rv->pending_work++;
}

void rv_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                   struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node *n;
	struct stat st;
	bool is_file;
	int fd;

	n = rv_node_by_ino(rv, ino, &is_file);
	if (!n || !is_file) {
		fuse_reply_err(req, n ? EPERM : ENOENT);
		return;
	}
	fd = h && h->wfd >= 0 ? h->wfd : n->cached ? rv_copy_fd(n) : -1;
	if (fd < 0) {
		/* A cold file changes only after a write open has made its copy. */
		fuse_reply_err(req, EROFS);
		return;
	}
	if (((to_set & FUSE_SET_ATTR_SIZE) &&
	     ftruncate(h && h->wfd >= 0 ? h->wfd : fd, attr->st_size) < 0) ||
	    ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0) ||
	    ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	     fchown(fd, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
	            (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1) < 0)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE)
		n->dirty = true;
	rv_file_attr(&st, n);
	rv_copy_attr(n, &st);
	fuse_reply_attr(req, &st, 0);
}

void rv_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	/* A handful of ms at most on a local disk; the writer asked to wait. */
	if (h->wfd >= 0 && (datasync ? fdatasync(h->wfd) : fsync(h->wfd)) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

void rv_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}
