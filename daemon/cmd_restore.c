/*
 * cmd_restore — `restore [-r] PATH...`: recreates user links deleted by
 * accident, from the catalog, for as long as the row (and so the object) is
 * there: gc removes both only once the link has been unseen for retention.
 *
 * Who may: root and admin_group, and a file's owner. For a peer that is not
 * an admin, every change in the user tree is made with the peer's own
 * credentials (td_ctl_as_peer), so the kernel checks that they may create the
 * link (and, with -r, directories) there; rows that are not theirs get the
 * answer a path without a row gets ("nothing to restore"), so restore tells
 * nobody about other users' files (invariant 7).
 *
 * Safety (invariant 3): the parent directory is reached beneath its policy
 * root's fd with td_fsat (no symlink followed), the link is made under a
 * temporary name, checked and given its owner and times through an O_PATH
 * fd, then renamed into place with RENAME_NOREPLACE: whatever stands at the
 * path now, a file, a link or a directory, is never replaced, and the
 * request for that path is refused.
 *
 * Threads: the lookup and the changes run on the thread pool (one job per
 * request); the reply is sent on the loop.
 */
#include "fsat.h"
#include "log.h"
#include "ns.h"
#include "rebuild.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESTORE_PATHS_MAX 4096   /* paths in one request */
#define RESTORE_ROWS_MAX  100000 /* rows one request may restore (-r) */
#define RESTORE_PAGE      1000

struct ritem_r {
	char *path;
	size_t len;
	char id[TD_CATALOG_ID_HEX];
	const char *outcome; /* "restored", "skipped", "failed" */
	char msg[256];
};

struct restore_job {
	uv_work_t work;
	struct service *s;
	struct client *c;
	struct conf_ref *conf;
	bool recursive;
	char **paths;
	size_t *lens, n;
	struct ritem_r *items;
	size_t n_items, cap_items;
	bool truncated;
	unsigned restored, skipped, failed;
};

/* ---- one link ----------------------------------------------------------------- */

static void item_set(struct ritem_r *it, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void item_set(struct ritem_r *it, const char *outcome, const char *fmt, ...)
{
	va_list ap;

	it->outcome = outcome;
	if (!fmt) {
		it->msg[0] = '\0';
		return;
	}
	va_start(ap, fmt);
	vsnprintf(it->msg, sizeof(it->msg), fmt, ap);
	va_end(ap);
}

/* Mode of a directory restore makes for a file of mode `fmode`: no more open
 * than the file itself (its owner may always pass). */
static mode_t dir_mode_for(uint32_t fmode)
{
	return 0700 | ((fmode & 0040) ? 0050 : 0) | ((fmode & 0004) ? 0005 : 0);
}

/*
 * Opens the parent directory of rel beneath rootfd; with `mkdirs`, creates
 * the missing ones (mode dir_mode; with chown_dirs given to uid:gid, else
 * they belong to whoever the thread acts as).
 * Returns an fd or -errno.
 */
static int open_parent(int rootfd, const char *rel, size_t len, bool mkdirs, bool chown_dirs,
                       uid_t uid, gid_t gid, mode_t dir_mode, const char **name)
{
	size_t dlen;
	int fd = td_fsat_open_parent(rootfd, rel, len, 0, name);

	if (fd != -ENOENT || !mkdirs)
		return fd;
	/* *name is not set on failure: the directory part is up to the last '/'. */
	for (dlen = len; dlen > 0 && rel[dlen - 1] != '/'; dlen--)
		;
	dlen = dlen ? dlen - 1 : 0;
	for (size_t i = 0; i <= dlen; i++) {
		const char *comp;
		int pfd, r;

		if (i != dlen && rel[i] != '/')
			continue;
		/* rel[0..i) is the next directory to make sure of. */
		fd = td_fsat_open_dir(rootfd, rel, i, 0);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (fd != -ENOENT)
			return fd;
		pfd = td_fsat_open_parent(rootfd, rel, i, 0, &comp);
		if (pfd < 0)
			return pfd;
		char cname[256];
		size_t cl = (size_t)(rel + i - comp);

		if (cl >= sizeof(cname)) {
			close(pfd);
			return -ENAMETOOLONG;
		}
		memcpy(cname, comp, cl);
		cname[cl] = '\0';
		r = mkdirat(pfd, cname, dir_mode) < 0 ? -errno : 0;
		if (r == 0 && chown_dirs)
			(void)!fchownat(pfd, cname, uid, gid, AT_SYMLINK_NOFOLLOW);
		if (r == 0)
			fsync(pfd);
		close(pfd);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return td_fsat_open_parent(rootfd, rel, len, 0, name);
}

/* Makes the user link of e at its original path. Pool thread; for a peer
 * that is not an admin, already acting as the peer. */
static void make_link(struct restore_job *j, struct ritem_r *it, const struct td_catalog_entry *e,
                      const char *root)
{
	const struct td_config *conf = j->conf->c;
	struct timespec ts[2] = { { e->atime_ns / 1000000000, e->atime_ns % 1000000000 },
		                  { e->mtime_ns / 1000000000, e->mtime_ns % 1000000000 } };
	char target[8192], tmp[64], hex[17], rnd[8], rb[8192];
	const char *rel = e->path + strlen(root) + 1, *name;
	size_t rlen = e->path_len - strlen(root) - 1;
	struct stat st;
	ssize_t n;
	int rootfd, pfd, lfd, r;

	if (td_ns_link_path(target, sizeof(target), conf->state_dir, e->id, e->name, e->name_len) <
	    0) {
		item_set(it, "failed", "its name cannot be linked");
		return;
	}
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		item_set(it, "failed", "cannot open its policy root %s: %s", root, strerror(errno));
		return;
	}
	pfd = open_parent(rootfd, rel, rlen, j->recursive, j->c->privileged, e->uid, e->gid,
	                  dir_mode_for(e->mode), &name);
	close(rootfd);
	if (pfd < 0) {
		item_set(it, "failed", "%s",
		         pfd == -ENOENT   ? "its directory is gone (restore -r recreates it)"
		         : pfd == -ELOOP  ? "a symlink stands where its directory was: refused"
		         : pfd == -EACCES ? "permission denied in its directory"
		                          : strerror(-pfd));
		return;
	}
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		n = S_ISLNK(st.st_mode) ? readlinkat(pfd, name, rb, sizeof(rb) - 1) : -1;
		if (n >= 0 && (size_t)n == strlen(target) && memcmp(rb, target, (size_t)n) == 0)
			item_set(it, "skipped", "its link is there already");
		else
			item_set(it, "failed",
			         "something else stands at the path now: refused (move it away "
			         "first)");
		close(pfd);
		return;
	}
	td_random_bytes(rnd, sizeof(rnd));
	td_hex(hex, rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), ".tierd-restore-%s", hex);
	if (symlinkat(target, pfd, tmp) < 0) {
		item_set(it, "failed", "cannot create the link: %s", strerror(errno));
		close(pfd);
		return;
	}
	lfd = openat(pfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	r = -ESTALE;
	if (lfd >= 0) {
		n = readlinkat(lfd, "", rb, sizeof(rb) - 1);
		if (fstat(lfd, &st) == 0 && S_ISLNK(st.st_mode) && st.st_nlink == 1 && n >= 0 &&
		    (size_t)n == strlen(target) && memcmp(rb, target, (size_t)n) == 0) {
			/* Cosmetic when refused (a user may not give a link away). */
			(void)!fchownat(lfd, "", e->uid, e->gid,
			                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
			utimensat(lfd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
			r = 0;
		}
		close(lfd);
	}
	if (r == 0 && renameat2(pfd, tmp, pfd, name, RENAME_NOREPLACE) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(pfd, tmp, 0); /* ours, or whatever replaced it under our name */
		item_set(it, "failed", "%s",
		         r == -EEXIST   ? "something else appeared at the path meanwhile: refused"
		         : r == -ESTALE ? "its temporary link was tampered with"
		                        : strerror(-r));
	} else {
		fsync(pfd);
		item_set(it, "restored", NULL);
	}
	close(pfd);
}

/* Restores the link of row e (looked up for it->path), as c. */
static void restore_one(struct restore_job *j, struct ritem_r *it, const struct td_catalog_entry *e)
{
	const struct td_config *conf = j->conf->c;
	struct td_catalog_error ce;
	struct td_ctl_self self;
	const char *root = NULL;
	int r;

	memcpy(it->id, e->id, sizeof(it->id));
	if (!j->c->privileged && e->uid != j->c->peer.uid) {
		it->id[0] = '\0';
		item_set(it, "failed", "nothing to restore there");
		return;
	}
	if (e->state == TD_CATALOG_LOCAL) {
		item_set(it, "skipped", "it was recalled to primary storage: nothing to restore");
		return;
	}
	if (e->state == TD_CATALOG_MIGRATING || e->state == TD_CATALOG_RECALLING) {
		item_set(it, "failed", "busy: being migrated or recalled; try again");
		return;
	}
	if (!td_policy_for_path(conf, e->path, e->path_len, &root)) {
		item_set(it, "failed", "its original path is below no policy's paths now");
		return;
	}
	/* The dynamic link first (tierd's own, as root): the user link must never
	 * point at nothing. */
	r = td_rebuild_relink(conf, e, false);
	if (r < 0) {
		item_set(it, "failed", "cannot make its dynamic link: %s", strerror(-r));
		return;
	}
	if (!j->c->privileged && td_ctl_as_peer(&self, &j->c->peer) < 0) {
		item_set(it, "failed", "cannot act as uid %u", (unsigned)j->c->peer.uid);
		return;
	}
	make_link(j, it, e, root);
	if (!j->c->privileged)
		td_ctl_as_self(&self);
	if (strcmp(it->outcome, "restored") == 0) {
		uv_mutex_lock(&j->s->rcat_lock);
		td_catalog_link_seen(j->s->rcat, e->id, e->path, e->path_len, td_now_ns(), &ce);
		uv_mutex_unlock(&j->s->rcat_lock);
	}
}

/* ---- which rows ------------------------------------------------------------------ */

static struct ritem_r *add_item(struct restore_job *j, const char *path, size_t len)
{
	struct ritem_r *it;

	if (j->n_items == j->cap_items) {
		size_t cap = j->cap_items ? 2 * j->cap_items : 16;
		struct ritem_r *nv;

		if (j->n_items >= RESTORE_ROWS_MAX ||
		    !(nv = realloc(j->items, cap * sizeof(*nv)))) {
			j->truncated = true;
			return NULL;
		}
		j->items = nv;
		j->cap_items = cap;
	}
	it = &j->items[j->n_items];
	memset(it, 0, sizeof(*it));
	it->path = malloc(len + 1);
	if (!it->path)
		return NULL;
	memcpy(it->path, path, len);
	it->path[len] = '\0';
	it->len = len;
	j->n_items++;
	return it;
}

/* Ids of the rows below one directory, a page at a time. */
struct below {
	const char *dir;
	size_t len;
	char (*ids)[TD_CATALOG_ID_HEX];
	size_t n;
	char after[TD_CATALOG_ID_HEX];
	unsigned seen;
};

static int below_cb(void *data, const struct td_catalog_entry *e)
{
	struct below *b = data;

	memcpy(b->after, e->id, sizeof(b->after));
	b->seen++;
	if (e->state != TD_CATALOG_LOCAL && e->path_len > b->len &&
	    memcmp(e->path, b->dir, b->len) == 0 && (b->len == 1 || e->path[b->len] == '/'))
		memcpy(b->ids[b->n++], e->id, TD_CATALOG_ID_HEX);
	return 0;
}

static void restore_below(struct restore_job *j, const char *dir, size_t len)
{
	struct below b = { .dir = dir, .len = len };
	struct td_catalog_error ce;
	bool any = false;

	b.ids = malloc(RESTORE_PAGE * sizeof(*b.ids));
	if (!b.ids)
		return;
	do {
		struct td_catalog_filter f = { .state = TD_CATALOG_ANY,
			                       .after_id = b.after[0] ? b.after : NULL,
			                       .limit = RESTORE_PAGE };

		b.n = 0;
		b.seen = 0;
		uv_mutex_lock(&j->s->rcat_lock);
		td_catalog_foreach(j->s->rcat, &f, below_cb, &b, &ce);
		uv_mutex_unlock(&j->s->rcat_lock);
		for (size_t i = 0; i < b.n && !j->truncated; i++) {
			struct td_catalog_entry *e = NULL;
			struct ritem_r *it;
			int r;

			uv_mutex_lock(&j->s->rcat_lock);
			r = td_catalog_get(&e, j->s->rcat, b.ids[i], &ce);
			uv_mutex_unlock(&j->s->rcat_lock);
			if (r < 0)
				continue;
			/* Users hear only of their own rows. */
			if ((j->c->privileged || e->uid == j->c->peer.uid) &&
			    (it = add_item(j, e->path, e->path_len))) {
				restore_one(j, it, e);
				any = true;
			}
			td_catalog_entry_free(e);
		}
	} while (b.seen == RESTORE_PAGE && !j->truncated);
	free(b.ids);
	if (!any) {
		struct ritem_r *it = add_item(j, dir, len);

		if (it)
			item_set(it, "failed", "nothing to restore below it");
	}
}

static void w_restore(uv_work_t *w)
{
	struct restore_job *j = w->data;

	for (size_t i = 0; i < j->n && !j->truncated; i++) {
		struct td_catalog_entry *e = NULL;
		struct td_catalog_error ce;
		struct ritem_r *it;
		int r;

		uv_mutex_lock(&j->s->rcat_lock);
		r = td_catalog_get_by_path(&e, j->s->rcat, j->paths[i], j->lens[i], &ce);
		uv_mutex_unlock(&j->s->rcat_lock);
		if (r == 0 && e->state != TD_CATALOG_LOCAL) {
			it = add_item(j, j->paths[i], j->lens[i]);
			if (it)
				restore_one(j, it, e);
		} else if (j->recursive) {
			restore_below(j, j->paths[i], j->lens[i]);
		} else if ((it = add_item(j, j->paths[i], j->lens[i]))) {
			item_set(it, r == 0 ? "skipped" : "failed", "%s",
			         r == 0 ? "it was recalled to primary storage: nothing to restore"
			                : "nothing to restore there (a directory: restore -r)");
		}
		td_catalog_entry_free(e);
	}
}

static void a_restore(uv_work_t *w, int status)
{
	struct restore_job *j = w->data;

	svc_work_done(j->c);
	for (size_t i = 0; i < j->n_items; i++) {
		struct ritem_r *it = &j->items[i];
		json_t *ev;
		char *esc;

		if (!it->outcome)
			item_set(it, "failed", "out of memory");
		ev = json_pack("{s:s, s:s}", "event", "file", "outcome", it->outcome);
		td_ctl_set_path(ev, "path", it->path, it->len);
		if (it->id[0])
			json_object_set_new(ev, "id", json_string(it->id));
		if (it->msg[0])
			json_object_set_new(ev, "message", json_string(it->msg));
		client_send(j->c, ev);
		esc = td_escape(it->path, it->len);
		if (strcmp(it->outcome, "restored") == 0) {
			j->restored++;
			log_notice("restored the link %s (%s) for uid %u", esc ? esc : "?", it->id,
			           (unsigned)j->c->peer.uid);
		} else if (strcmp(it->outcome, "skipped") == 0) {
			j->skipped++;
		} else {
			j->failed++;
		}
		free(esc);
		free(it->path);
	}
	if (j->truncated)
		client_send(j->c, td_ctl_error_reply(-E2BIG,
		                                     "more than %u links to restore in one "
		                                     "request: restore the rest by directory",
		                                     RESTORE_ROWS_MAX));
	else
		client_send(j->c,
		            json_pack("{s:b, s:i, s:i, s:i}", "ok", 1, "restored", j->restored,
		                      "skipped", j->skipped, "failed", j->failed));
	client_unref(j->c);
	conf_put(j->conf);
	td_ctl_paths_free(j->paths, j->lens, j->n);
	free(j->items);
	free(j);
}

void cmd_restore(struct service *s, struct client *c, json_t *args)
{
	struct restore_job *j;
	char err[256];
	int r;

	if (!s->mover_ready) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	r = td_ctl_request_paths(args, RESTORE_PATHS_MAX, &j->paths, &j->lens, &j->n, err,
	                         sizeof(err));
	if (r < 0) {
		free(j);
		client_send(c, td_ctl_error_reply(r, "%s", err));
		return;
	}
	/* "/a/b/" and "/a/b" are one directory. */
	for (size_t i = 0; i < j->n; i++)
		while (j->lens[i] > 1 && j->paths[i][j->lens[i] - 1] == '/')
			j->paths[i][--j->lens[i]] = '\0';
	j->recursive = json_is_true(json_object_get(args, "recursive"));
	j->s = s;
	j->c = c;
	j->conf = conf_get(s);
	j->work.data = j;
	client_ref(c);
	if (svc_queue_work(c, &j->work, w_restore, a_restore) < 0) {
		client_unref(c);
		conf_put(j->conf);
		td_ctl_paths_free(j->paths, j->lens, j->n);
		free(j);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}
