/*
 * rview_node.c — nodes: one per tiered file the kernel has looked up through
 * the view, holding its catalog facts (found on the thread pool, through the
 * lookup handle), and the FUSE ops that need nothing but those facts:
 * lookup, forget, getattr, readdir, getxattr, listxattr.
 *
 * Loop thread, except rv_w_lookup (thread pool). It owns the node tables
 * (by id, by inode) and each node's strings and cache fd.
 */
#include "rview_int.h"
#include "ns.h"
#include "xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static unsigned hash_str(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % HASH_BUCKETS;
}

/* ---- nodes ------------------------------------------------------------------ */

struct node *rv_node_by_id(struct td_rview *rv, const char *id)
{
	for (struct node *n = rv->by_id[hash_str(id)]; n; n = n->id_next)
		if (strcmp(n->id, id) == 0)
			return n;
	return NULL;
}

struct node *rv_node_by_ino(struct td_rview *rv, fuse_ino_t ino, bool *is_file)
{
	uint64_t dir = ino & ~(uint64_t)1;

	for (struct node *n = rv->by_ino[(dir / 2) % HASH_BUCKETS]; n; n = n->ino_next)
		if (n->ino == dir) {
			if (is_file)
				*is_file = ino != dir;
			return n;
		}
	return NULL;
}

void rv_close_copy_fd(struct node *n)
{
	if (n->cache_fd >= 0) {
		close(n->cache_fd);
		n->rv->n_copy_fds--;
	}
	n->cache_fd = -1;
}

/* The copy fd of the idle node (other than keep) used longest ago, or NULL. */
static struct node *copy_fd_lru(struct td_rview *rv, const struct node *keep)
{
	struct node *old = NULL;

	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct node *n = rv->by_id[b]; n; n = n->id_next)
			if (n != keep && n->cache_fd >= 0 && !n->opens && !n->writers &&
			    !n->dirty && !n->hyd && (!old || n->fd_used < old->fd_used))
				old = n;
	return old;
}

void rv_set_copy_fd(struct node *n, int fd)
{
	struct td_rview *rv = n->rv;
	struct node *old;

	rv_close_copy_fd(n);
	if (fd < 0)
		return;
	n->cache_fd = fd;
	n->fd_used = ++rv->fd_tick;
	rv->n_copy_fds++;
	while (rv->n_copy_fds > rv->copy_fds_max && (old = copy_fd_lru(rv, n)))
		rv_close_copy_fd(old); /* still cached: rv_copy_fd reopens it */
}

int rv_copy_fd(struct node *n)
{
	char path[4096];

	if (n->cache_fd >= 0) {
		n->fd_used = ++n->rv->fd_tick;
	} else if (n->cached &&
	           td_ns_cache_path(path, sizeof(path), n->rv->cache_dir, n->id) == 0) {
		rv_set_copy_fd(n, rv_open_copy(path, O_RDONLY));
	}
	return n->cache_fd;
}

static void node_free(struct node *n)
{
	rv_close_copy_fd(n);
	free(n->name);
	free(n->target_name);
	free(n->key);
	free(n->etag);
	free(n->xattrs);
	free(n);
}

/* A new node in the tables, with one reference: the caller's. NULL on ENOMEM. */
struct node *rv_node_new(struct td_rview *rv, const struct td_catalog_entry *e)
{
	struct node *n = calloc(1, sizeof(*n));
	unsigned hb;

	if (!n)
		return NULL;
	n->rv = rv;
	n->refs = 1;
	n->cache_fd = -1;
	memcpy(n->id, e->id, sizeof(n->id));
	n->name = malloc(e->name_len + 1);
	n->target_name = strdup(e->target ? e->target : "");
	n->key = strdup(e->object_key ? e->object_key : "");
	n->etag = strdup(e->etag ? e->etag : "");
	if (e->xattrs_len && (n->xattrs = malloc(e->xattrs_len))) {
		memcpy(n->xattrs, e->xattrs, e->xattrs_len);
		n->xattrs_len = e->xattrs_len;
	}
	if (!n->name || !n->target_name || !n->key || !n->etag || (e->xattrs_len && !n->xattrs)) {
		node_free(n);
		return NULL;
	}
	memcpy(n->name, e->name, e->name_len);
	n->name[e->name_len] = '\0';
	n->name_len = e->name_len;
	memcpy(n->sha256, e->sha256, sizeof(n->sha256));
	n->size = e->size;
	n->mode = e->mode;
	n->uid = e->uid;
	n->gid = e->gid;
	n->mtime_ns = e->mtime_ns;
	n->atime_ns = e->atime_ns;
	n->t = rv->o.target_for(rv->o.ctx, n->target_name);
	n->ino = rv->next_ino;
	rv->next_ino += 2;
	n->id_next = rv->by_id[hash_str(n->id)];
	rv->by_id[hash_str(n->id)] = n;
	hb = (unsigned)((n->ino / 2) % HASH_BUCKETS);
	n->ino_next = rv->by_ino[hb];
	rv->by_ino[hb] = n;
	return n;
}

void rv_node_hold(struct node *n)
{
	n->refs++;
}

/* Its last holder is gone: out of the tables, with its idle chunks. */
static void node_release(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct node **pp;

	rv_chunks_drop_idle(rv, n);
	for (pp = &rv->by_id[hash_str(n->id)]; *pp; pp = &(*pp)->id_next)
		if (*pp == n) {
			*pp = n->id_next;
			break;
		}
	for (pp = &rv->by_ino[(n->ino / 2) % HASH_BUCKETS]; *pp; pp = &(*pp)->ino_next)
		if (*pp == n) {
			*pp = n->ino_next;
			break;
		}
	node_free(n);
}

void rv_node_put(struct node *n)
{
	if (--n->refs == 0)
		node_release(n);
}

/* The kernel learns of it once more; its first lookup takes the kernel's
 * reference. */
void rv_node_lookup(struct node *n)
{
	if (n->lookups++ == 0)
		rv_node_hold(n);
}

/* ---- attributes ---------------------------------------------------------- */

static void dir_attr(struct stat *st, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0711;
	st->st_nlink = 2;
}

/* A file's own directory, <aa>/<id>: the fold its dynamic link's directory
 * carries (ns.h, td_ns_fold_get: the owner there is a named ACL entry; here,
 * where nobody may chmod, simply the owner), so the kernel
 * (default_permissions) lets through only those who could reach the
 * original. Unreadable: root only. A stat and a getxattr of tierd's own local
 * directory, like rv_copy_attr's stat. */
static void id_dir_attr(const struct td_rview *rv, struct stat *st, const struct node *n)
{
	struct td_access_fold a;

	dir_attr(st, n->ino);
	st->st_mode = S_IFDIR;
	if (td_ns_fold_get(rv->state_dir, n->id, &a) == 0) {
		st->st_mode = S_IFDIR | (a.mode & 0111);
		st->st_uid = a.uid;
		st->st_gid = a.gid;
	}
}

void rv_file_attr(struct stat *st, const struct node *n)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino + 1;
	st->st_mode = S_IFREG | (n->mode & 07777);
	st->st_nlink = 1;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = (off_t)n->size;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_blksize = CHUNK;
	st->st_mtim.tv_sec = n->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = n->mtime_ns % 1000000000;
	st->st_atim.tv_sec = n->atime_ns / 1000000000;
	st->st_atim.tv_nsec = n->atime_ns % 1000000000;
	st->st_ctim = st->st_mtim;
}

/* A copy whose fd was closed (rv_set_copy_fd) is looked at by its path. */
static int copy_stat(const struct node *n, struct stat *cs)
{
	char path[4096];

	if (n->cache_fd >= 0)
		return fstat(n->cache_fd, cs);
	if (td_ns_cache_path(path, sizeof(path), n->rv->cache_dir, n->id) < 0)
		return -1;
	return stat(path, cs);
}

/* Once there is a copy, it is the truth: it may have been written to. */
void rv_copy_attr(const struct node *n, struct stat *st)
{
	struct stat cs;

	if (!n->cached || copy_stat(n, &cs) < 0)
		return;
	st->st_size = cs.st_size;
	st->st_blocks = cs.st_blocks;
	st->st_mode = S_IFREG | (cs.st_mode & 07777);
	st->st_uid = cs.st_uid;
	st->st_gid = cs.st_gid;
	st->st_mtim = cs.st_mtim;
	st->st_ctim = cs.st_ctim;
	st->st_atim = cs.st_atim;
}

/* attr_timeout_s: an id directory's attributes follow its fold, which a
 * policy run may change; they are never cached (0). */
static void reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st,
                        double attr_timeout_s)
{
	struct fuse_entry_param e = { 0 };

	e.ino = ino;
	e.generation = 1;
	e.attr = *st;
	e.attr_timeout = attr_timeout_s;
	e.entry_timeout = ENTRY_TIMEOUT_S;
	fuse_reply_entry(req, &e);
}

static bool hexpair(const char *s, unsigned *v)
{
	unsigned x = 0;

	for (int i = 0; i < 2; i++) {
		char c = s[i];

		x <<= 4;
		if (c >= '0' && c <= '9')
			x |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x |= (unsigned)(c - 'a' + 10);
		else
			return false;
	}
	*v = x;
	return true;
}

/* ---- lookup: catalog on the thread pool ------------------------------------- */

void rv_w_lookup(uv_work_t *w)
{
	struct lookup_job *j = w->data;
	struct td_catalog_error ce;

	uv_mutex_lock(&j->rv->rd_lock);
	j->r = td_catalog_get(&j->e, j->rv->cat_rd, j->id, &ce);
	uv_mutex_unlock(&j->rv->rd_lock);
}

/* The node a lookup found, with a reference for the caller: the one already
 * known (another lookup may have made it meanwhile), else a new one from the
 * catalog row when the caller finds it usable. NULL if neither. */
struct node *rv_node_of_lookup(struct lookup_job *j, bool usable)
{
	struct node *n = rv_node_by_id(j->rv, j->id);

	if (n) {
		rv_node_hold(n);
		return n;
	}
	return usable && j->r == 0 ? rv_node_new(j->rv, j->e) : NULL;
}

static void a_lookup(uv_work_t *w, int status)
{
	struct lookup_job *j = w->data;
	struct td_rview *rv = j->rv;
	const struct td_catalog_entry *e = j->e;
	struct node *n;
	struct stat st;

	rv->pending_work--;
	n = rv_node_of_lookup(
	    j, j->r == 0 && e->sha256[0] && e->object_key && e->target &&
	           (e->state == TD_CATALOG_TIERED || e->state == TD_CATALOG_CACHED ||
	            e->state == TD_CATALOG_DIRTY || e->state == TD_CATALOG_MIGRATING));
	if (!n || rv->closing) {
		fuse_reply_err(j->req, rv->closing ? EIO : ENOENT);
	} else {
		rv_node_lookup(n);
		id_dir_attr(rv, &st, n);
		reply_entry(j->req, n->ino, &st, 0);
	}
	if (n)
		rv_node_put(n);
	td_catalog_entry_free(j->e);
	free(j);
	rv_maybe_closed(rv);
}

void rv_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct lookup_job *j;
	struct stat st;
	struct node *n;
	unsigned aa;
	bool is_file;

	if (parent == FUSE_ROOT_ID) {
		if (strlen(name) != 2 || !hexpair(name, &aa)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		dir_attr(&st, AA_INO_BASE + aa);
		reply_entry(req, AA_INO_BASE + aa, &st, ENTRY_TIMEOUT_S);
		return;
	}
	if (parent >= AA_INO_BASE && parent < AA_INO_BASE + 256) {
		if (!td_ns_valid_id(name) || !hexpair(name, &aa) || aa != parent - AA_INO_BASE) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		n = rv_node_by_id(rv, name);
		if (n) {
			rv_node_lookup(n);
			id_dir_attr(rv, &st, n);
			reply_entry(req, n->ino, &st, 0);
			return;
		}
		j = calloc(1, sizeof(*j));
		if (!j) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		j->rv = rv;
		j->req = req;
		memcpy(j->id, name, sizeof(j->id));
		j->work.data = j;
		if (uv_queue_work(rv->loop, &j->work, rv_w_lookup, a_lookup) < 0) {
			free(j);
			fuse_reply_err(req, EIO);
			return;
		}
		rv->pending_work++;
		return;
	}
	n = rv_node_by_ino(rv, parent, &is_file);
	if (!n || is_file || strlen(name) != n->name_len || memcmp(name, n->name, n->name_len)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rv_node_lookup(n);
	rv_file_attr(&st, n);
	reply_entry(req, n->ino + 1, &st, ENTRY_TIMEOUT_S);
}

static void forget_one(struct td_rview *rv, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = ino >= NODE_INO_BASE ? rv_node_by_ino(rv, ino, NULL) : NULL;

	if (!n || !n->lookups)
		return;
	n->lookups = n->lookups > nlookup ? n->lookups - nlookup : 0;
	if (!n->lookups)
		rv_node_put(n); /* the kernel's */
}

void rv_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

void rv_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(fuse_req_userdata(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void rv_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct stat st;
	struct node *n;
	bool is_file;

	if (ino == FUSE_ROOT_ID || (ino >= AA_INO_BASE && ino < AA_INO_BASE + 256)) {
		dir_attr(&st, ino);
		fuse_reply_attr(req, &st, ENTRY_TIMEOUT_S);
		return;
	}
	n = rv_node_by_ino(rv, ino, &is_file);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (is_file) {
		rv_file_attr(&st, n);
		rv_copy_attr(n, &st);
	} else {
		id_dir_attr(rv, &st, n);
	}
	fuse_reply_attr(req, &st, is_file && !n->cached ? ENTRY_TIMEOUT_S : 0);
}

/* ---- extended attributes ------------------------------------------------ */

int rv_copy_owner(const struct node *n, int fd)
{
	int r;

	if (fchown(fd, n->uid, n->gid) < 0)
		return -errno;
	r = td_xattr_apply(fd, n->xattrs, n->xattrs_len, NULL);
	if (r < 0)
		return r;
	return fchmod(fd, n->mode & 07777) < 0 ? -errno : 0;
}

/* A file's attributes: its copy's once there is one (the live file, which a
 * setfacl through the link may have changed), else the row's. The view's
 * directories have none. Returns a node with a file's inode, or NULL. */
static struct node *xattr_node(fuse_req_t req, fuse_ino_t ino, int *copy_fd)
{
	struct td_rview *rv = fuse_req_userdata(req);
	bool is_file = false;
	struct node *n = ino >= NODE_INO_BASE ? rv_node_by_ino(rv, ino, &is_file) : NULL;

	if (!n || !is_file)
		return NULL;
	*copy_fd = n->cached ? rv_copy_fd(n) : -1;
	return n;
}

void rv_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = NULL;
	struct node *n;
	ssize_t r;
	int fd;

	n = xattr_node(req, ino, &fd);
	if (!n || strncmp(name, TD_XATTR_OWN, sizeof(TD_XATTR_OWN) - 1) == 0) {
		fuse_reply_err(req, ENODATA); /* tierd's own notes are not the file's */
		return;
	}
	if (size > TD_XATTR_MAX)
		size = TD_XATTR_MAX; /* no kept value is larger */
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fd >= 0)
		r = fgetxattr(fd, name, buf, size);
	else
		r = td_xattr_get(n->xattrs, n->xattrs_len, name, buf, size);
	if (fd >= 0 && r < 0)
		r = -errno;
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

/* Drops tierd's own names from a list, and for callers that are not root the
 * trusted.* ones too: the kernel hides them from callers without
 * CAP_SYS_ADMIN on a local file system, but shows whatever a FUSE server
 * lists. Returns the list's new length. */
static size_t drop_names(char *list, size_t n, bool trusted)
{
	size_t out = 0;

	for (size_t i = 0; i < n;) {
		size_t l = strnlen(list + i, n - i) + 1;

		if (strncmp(list + i, TD_XATTR_OWN, sizeof(TD_XATTR_OWN) - 1) != 0 &&
		    !(trusted && strncmp(list + i, "trusted.", 8) == 0)) {
			memmove(list + out, list + i, l);
			out += l;
		}
		i += l;
	}
	return out;
}

void rv_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	const size_t cap = 65536; /* XATTR_LIST_MAX */
	char *buf;
	struct node *n;
	ssize_t r;
	int fd;

	n = xattr_node(req, ino, &fd);
	if (!n) {
		if (size)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_xattr(req, 0);
		return;
	}
	buf = malloc(cap);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fd >= 0) {
		r = flistxattr(fd, buf, cap);
		if (r < 0)
			r = -errno;
	} else {
		r = td_xattr_list(n->xattrs, n->xattrs_len, buf, cap);
	}
	if (r >= 0)
		r = (ssize_t)drop_names(buf, (size_t)r, fuse_req_ctx(req)->uid != 0);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else if (size < (size_t)r)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

/* Directories list nothing but themselves: ids are unguessable on purpose, and
 * the kernel lets only root read these directories anyway (0711, or an id
 * directory's fold, which has no read bit). */
void rv_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	char buf[512];
	size_t n = 0;
	struct stat st;

	if (off == 0) {
		dir_attr(&st, ino);
		n += fuse_add_direntry(req, buf + n, sizeof(buf) - n, ".", &st, 1);
		n += fuse_add_direntry(req, buf + n, sizeof(buf) - n, "..", &st, 2);
	}
	fuse_reply_buf(req, buf, n > size ? 0 : n);
}

/* Some hydration has not ended: the session cannot close yet. */
bool rv_nodes_hydrating(const struct td_rview *rv)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (const struct node *n = rv->by_id[b]; n; n = n->id_next)
			if (n->hyd)
				return true;
	return false;
}

/* The session's end: every node left goes, whoever held it. */
void rv_nodes_free_all(struct td_rview *rv)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		while (rv->by_id[b]) {
			struct node *n = rv->by_id[b];

			rv->by_id[b] = n->id_next;
			node_free(n);
		}
}
