/*
 * rview.c — the remote view's session (see rview.h, and rview_int.h for the
 * files and the lifetimes of what they share).
 *
 * Loop thread only. It owns the FUSE session and the poll on its fd, the two
 * catalog handles (one for writes, one for lookups) and the options copied at
 * td_rview_new; td_rview_close ends the session once every request, fetch,
 * hydration and thread-pool job it started has come back (rv_maybe_closed).
 */
#include "rview_int.h"
#include "util.h"
#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/* A problem worth a log line goes to the owner's on_error (the library does not log). */
void rv_report(struct td_rview *rv, const char *id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rv->o.on_error)
		rv->o.on_error(rv->o.ctx, id, msg);
}
int rv_open_copy(const char *path, int flags)
{
	int fd = open(path, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* max_write sets max_pages, and so the largest read: 1 MiB per request. */
	conn->max_write = CHUNK;
	conn->max_readahead = CHUNK;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	/* O_TRUNC arrives with the open, so a truncating open needs no download. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* With default_permissions the kernel then checks a file's ACL (served
	 * by getxattr from the catalog row) as it would on the original. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = rv_op_lookup,
	.forget = rv_op_forget,
	.forget_multi = rv_op_forget_multi,
	.getattr = rv_op_getattr,
	.readdir = rv_op_readdir,
	.getxattr = rv_op_getxattr,
	.listxattr = rv_op_listxattr,
	.open = rv_op_open,
	.read = rv_op_read,
	.write = rv_op_write,
	.setattr = rv_op_setattr,
	.fsync = rv_op_fsync,
	.flush = rv_op_flush,
	.release = rv_op_release,
};

static void on_fuse(uv_poll_t *p, int status, int events)
{
	struct td_rview *rv = p->data;

	/* One message per read(2); take a bounded batch, then let the loop breathe. */
	for (int i = 0; i < 64 && !rv->closing; i++) {
		int r = fuse_session_receive_buf(rv->se, &rv->fbuf);

		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			break;
		if (r <= 0) {
			/* Unmounted from outside (umount -l): stop serving. */
			uv_poll_stop(&rv->poll);
			break;
		}
		fuse_session_process_buf(rv->se, &rv->fbuf);
	}
}
int td_rview_set_limits(struct td_rview *rv, uint64_t cache_limit_bytes,
                        const char *const *no_hydrate, size_t n_no_hydrate, bool stream_direct_io)
{
	char **v = calloc(n_no_hydrate ? n_no_hydrate : 1, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_no_hydrate; i++)
		if (!(v[i] = strdup(no_hydrate[i]))) {
			while (i--)
				free(v[i]);
			free(v);
			return -ENOMEM;
		}
	for (size_t i = 0; i < rv->n_no_hydrate; i++)
		free(rv->no_hydrate[i]);
	free(rv->no_hydrate);
	rv->no_hydrate = v;
	rv->n_no_hydrate = n_no_hydrate;
	rv->cache_limit = cache_limit_bytes;
	rv->stream_dio = stream_direct_io;
	return 0;
}

static void rv_free(struct td_rview *rv)
{
	while (rv->n_buf_pool)
		free(rv->buf_pool[--rv->n_buf_pool]);
	for (size_t i = 0; i < rv->n_no_hydrate; i++)
		free(rv->no_hydrate[i]);
	free(rv->no_hydrate);
	free(rv->mountpoint);
	free(rv->state_dir);
	free(rv->cache_dir);
	free(rv->run_dir);
	free(rv->test_pause);
	free(rv);
}

/* The chunk memory and copy fd caps; tests make them tiny (rview.h). */
static void rv_caps_init(struct td_rview *rv)
{
	const char *mib = getenv("TD_TEST_RVIEW_CHUNK_MIB");
	const char *fds = getenv("TD_TEST_RVIEW_COPY_FDS");

	rv->buf_max = CHUNK_MEM_MAX / CHUNK;
	if (mib && atoi(mib) > 0)
		rv->buf_max = (unsigned)atoi(mib);
	rv->buf_max = TD_MAX(rv->buf_max, 8u); /* every tier of rv_buf_get gets some */
	rv->copy_fds_max = COPY_FDS_MAX;
	if (fds && atoi(fds) > 0)
		rv->copy_fds_max = (unsigned)atoi(fds);
}

static struct td_rview *rv_alloc(const struct td_rview_opts *o)
{
	struct td_rview *rv = calloc(1, sizeof(*rv));

	if (!rv)
		return NULL;
	rv->o = *o;
	rv->loop = o->loop;
	rv->next_ino = NODE_INO_BASE;
	rv->mountpoint = strdup(o->mountpoint);
	rv->state_dir = strdup(o->state_dir);
	rv->cache_dir = strdup(o->cache_dir);
	rv->run_dir = strdup(o->run_dir);
	if (getenv("TD_TEST_RVIEW_PAUSE")) /* tests only: rv_test_pause */
		rv->test_pause = strdup(getenv("TD_TEST_RVIEW_PAUSE"));
	rv_caps_init(rv);
	if (!rv->mountpoint || !rv->state_dir || !rv->cache_dir || !rv->run_dir ||
	    td_rview_set_limits(rv, o->cache_limit_bytes, o->no_hydrate, o->n_no_hydrate,
	                        o->stream_direct_io) < 0) {
		rv_free(rv);
		return NULL;
	}
	return rv;
}

/* The write handle and the lookups' own handle (see struct td_rview). */
static int catalogs_open(struct td_rview *rv, const char *path, char *err, size_t errlen)
{
	struct td_catalog_error ce;
	int r;

	r = td_catalog_open(&rv->cat, path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message);
		return r;
	}
	r = td_catalog_open(&rv->cat_rd, path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message);
		td_catalog_close(rv->cat);
		return r;
	}
	uv_mutex_init(&rv->cat_lock);
	uv_mutex_init(&rv->rd_lock);
	return 0;
}

static void catalogs_close(struct td_rview *rv)
{
	td_catalog_close(rv->cat);
	td_catalog_close(rv->cat_rd);
	uv_mutex_destroy(&rv->cat_lock);
	uv_mutex_destroy(&rv->rd_lock);
}

/* The FUSE session, mounted, its fd polled by the loop. */
static int session_mount(struct td_rview *rv, char *err, size_t errlen)
{
	char *argv[] = { "tierd", "-o",
		         "allow_other,default_permissions,fsname=tierd,subtype=tierd", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int fd;

	rv->se = fuse_session_new(&args, &ops, sizeof(ops), rv);
	fuse_opt_free_args(&args); /* the session keeps what it needs */
	if (!rv->se || fuse_session_mount(rv->se, rv->mountpoint) != 0) {
		snprintf(err, errlen,
		         "cannot mount the remote view at %s (is /dev/fuse there, and is tierd "
		         "root?)",
		         rv->mountpoint);
		if (rv->se)
			fuse_session_destroy(rv->se);
		return -EIO;
	}
	fd = fuse_session_fd(rv->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uv_poll_init(rv->loop, &rv->poll, fd);
	rv->poll.data = rv;
	rv->poll_open = true;
	uv_poll_start(&rv->poll, UV_READABLE, on_fuse);
	return 0;
}

int td_rview_new(struct td_rview **out, const struct td_rview_opts *o, char *err, size_t errlen)
{
	struct td_rview *rv = rv_alloc(o);
	int r;

	if (!rv)
		return -ENOMEM;
	/* A mount left behind by a crash answers ENOTCONN: detach it. */
	umount2(rv->mountpoint, MNT_DETACH);
	r = td_ns_mkdirs(rv->mountpoint, TD_NS_DIR_MODE);
	if (r < 0) {
		snprintf(err, errlen, "cannot create %s: %s", rv->mountpoint, strerror(-r));
		rv_free(rv);
		return r;
	}
	rv_remove_stale_parts(rv->cache_dir);
	r = catalogs_open(rv, o->catalog_path, err, errlen);
	if (r < 0) {
		rv_free(rv);
		return r;
	}
	r = session_mount(rv, err, errlen);
	if (r < 0) {
		catalogs_close(rv);
		rv_free(rv);
		return r;
	}
	rv_trim_timer_start(rv);
	*out = rv;
	return 0;
}

void td_rview_stats(const struct td_rview *rv, struct td_rview_stats *out)
{
	*out = rv->st;
}

static void on_poll_closed(uv_handle_t *h)
{
	struct td_rview *rv = h->data;

	rv->poll_open = false;
	rv_maybe_closed(rv);
}

void rv_maybe_closed(struct td_rview *rv)
{
	void (*cb)(void *);
	void *data;

	if (!rv->closing || !rv->close_cb || rv->poll_open || rv->trim_timer_open ||
	    rv->pending_work || rv->n_fetching || rv_nodes_hydrating(rv))
		return;
	cb = rv->close_cb;
	data = rv->close_data;
	rv->close_cb = NULL;
	fuse_session_destroy(rv->se);
	free(rv->fbuf.mem);
	rv_chunks_free_all(rv);
	rv_nodes_free_all(rv);
	catalogs_close(rv);
	rv_free(rv);
	cb(data);
}

void td_rview_close(struct td_rview *rv, void (*close_cb)(void *data), void *data)
{
	rv->closing = true;
	rv->close_cb = close_cb;
	rv->close_data = data;
	/* Unmount first: new opens fail at once; open files get errors, not hangs. */
	fuse_session_unmount(rv->se);
	if (rv->poll_open) {
		uv_poll_stop(&rv->poll);
		uv_close((uv_handle_t *)&rv->poll, on_poll_closed);
	}
	rv_trim_timer_close(rv);
	rv_chunks_cancel(rv);
	rv_maybe_closed(rv);
}
