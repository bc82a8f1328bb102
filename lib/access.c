/* access — see access.h. The walk owns its fds and its ancestor array; each
 * is released before td_access_fold_path returns. */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_DEPTH  1024 /* ancestors walked; a deeper path denies */
#define MAX_GROUPS 65536

struct view {
	bool uobj, gobj, other; /* search bits of the owner, owning group, other entries */
	bool has_mask, mask;
};

static bool eff(const struct view *v, bool x)
{
	return x && (!v->has_mask || v->mask);
}

static void view_of(struct view *v, const struct td_access_dir *d)
{
	memset(v, 0, sizeof(*v));
	v->uobj = d->mode & 0100;
	v->gobj = d->mode & 010;
	v->other = d->mode & 01;
	for (unsigned i = 0; i < d->n_acl; i++) {
		bool x = d->acl[i].perm & 1;

		switch (d->acl[i].tag) {
		case TD_ACL_USER_OBJ:
			v->uobj = x;
			break;
		case TD_ACL_GROUP_OBJ:
			v->gobj = x;
			break;
		case TD_ACL_OTHER:
			v->other = x;
			break;
		case TD_ACL_MASK:
			v->has_mask = true;
			v->mask = x;
			break;
		}
	}
}

static bool in_list(uint32_t id, const uint32_t *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (l[i] == id)
			return true;
	return false;
}

/* Whether uid u, in groups ug[0..n_ug), may search d (the kernel's order:
 * owner, named user, the groups (any matching entry that grants), other). */
static bool passes_user(const struct td_access_dir *d, uint32_t u, const uint32_t *ug, size_t n_ug)
{
	struct view v;
	bool matched = false, granted = false;

	if (u == 0)
		return true;
	if (d->acl_unknown)
		return false;
	view_of(&v, d);
	if (u == d->uid)
		return v.uobj;
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_USER && d->acl[i].id == u)
			return eff(&v, d->acl[i].perm & 1);
	if (in_list(d->gid, ug, n_ug)) {
		matched = true;
		granted |= eff(&v, v.gobj);
	}
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_GROUP && in_list(d->acl[i].id, ug, n_ug)) {
			matched = true;
			granted |= eff(&v, d->acl[i].perm & 1);
		}
	return matched ? granted : v.other;
}

/* u's groups are unknown: it passes only if it would with none of d's groups
 * and with all of them. */
static bool passes_user_unsure(const struct td_access_dir *d, uint32_t u)
{
	uint32_t all[TD_ACCESS_ACL_MAX + 1];
	size_t n = 0;

	all[n++] = d->gid;
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_GROUP)
			all[n++] = d->acl[i].id;
	return passes_user(d, u, NULL, 0) && passes_user(d, u, all, n);
}

/* Every named user entry (but u's and root's) grants search. */
static bool named_users_pass(const struct td_access_dir *d, const struct view *v, uint32_t u)
{
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_USER && d->acl[i].id != u && d->acl[i].id != 0 &&
		    !eff(v, d->acl[i].perm & 1))
			return false;
	return true;
}

/* Every group entry grants search. */
static bool groups_pass(const struct td_access_dir *d, const struct view *v)
{
	if (!eff(v, v->gobj))
		return false;
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_GROUP && !eff(v, d->acl[i].perm & 1))
			return false;
	return true;
}

/* Every user but root, u (the fold's owner) and the members of g (the fold's
 * group) may search d: the fold's "other". */
static bool passes_others(const struct td_access_dir *d, uint32_t g, uint32_t u)
{
	struct view v;

	if (d->acl_unknown)
		return false;
	view_of(&v, d);
	if (d->uid != 0 && d->uid != u && !v.uobj)
		return false;
	if (!named_users_pass(d, &v, u))
		return false;
	/* Not in g, such a user may match any other group entry, or none. */
	if (d->gid != g && !eff(&v, v.gobj))
		return false;
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_GROUP && d->acl[i].id != g &&
		    !eff(&v, d->acl[i].perm & 1))
			return false;
	return v.other;
}

/* Every member of group g other than u (the fold's owner) and root may
 * search d, whatever other groups it is in. */
static bool passes_members(const struct td_access_dir *d, uint32_t g, uint32_t u)
{
	struct view v;
	bool has_g = false, g_x = false;

	if (d->acl_unknown)
		return false;
	view_of(&v, d);
	/* d's owner may be a member of g: it gets the owner entry. */
	if (d->uid != 0 && d->uid != u && !v.uobj)
		return false;
	if (!named_users_pass(d, &v, u))
		return false;
	if (d->gid == g) {
		has_g = true;
		g_x |= eff(&v, v.gobj);
	}
	for (unsigned i = 0; i < d->n_acl; i++)
		if (d->acl[i].tag == TD_ACL_GROUP && d->acl[i].id == g) {
			has_g = true;
			g_x |= eff(&v, d->acl[i].perm & 1);
		}
	/* A member matches g's entry: it passes if that entry grants (any matching
	 * entry that grants is enough). Without one, it may match any other group
	 * entry or none: all of them and other must grant. */
	if (has_g)
		return g_x;
	return groups_pass(d, &v) && v.other;
}

void td_access_fold_dirs(struct td_access_fold *out, const struct td_access_dir *dirs, size_t n,
                         uint32_t uid, uint32_t gid, const uint32_t *ugroups, size_t n_ug)
{
	bool o = true, t = true, g = false;
	uint32_t group = gid;

	for (size_t i = 0; i < n; i++)
		o = o && (ugroups ? passes_user(&dirs[i], uid, ugroups, n_ug)
		                  : passes_user_unsure(&dirs[i], uid));
	/* The file's group first, then the ancestors' groups, deepest first. */
	for (size_t c = 0; c <= n && !g; c++) {
		uint32_t cand = c == 0 ? gid : dirs[n - c].gid;

		g = true;
		for (size_t i = 0; i < n && g; i++)
			g = passes_members(&dirs[i], cand, uid);
		if (g)
			group = cand;
	}
	for (size_t i = 0; i < n && t; i++)
		t = passes_others(&dirs[i], group, uid);
	out->uid = uid;
	out->gid = group;
	out->mode = (o ? 0100u : 0) | (g ? 010u : 0) | (t ? 01u : 0);
}

int td_access_parse_acl(struct td_access_dir *d, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t ver;
	size_t n;

	if (len < 4 || (len - 4) % 8 != 0)
		return -EINVAL;
	memcpy(&ver, p, 4);
	if (ver != 2)
		return -EINVAL;
	n = (len - 4) / 8;
	if (n > TD_ACCESS_ACL_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *e = p + 4 + i * 8;

		memcpy(&d->acl[i].tag, e, 2);
		memcpy(&d->acl[i].perm, e + 2, 2);
		memcpy(&d->acl[i].id, e + 4, 4);
	}
	d->n_acl = (unsigned)n;
	return 0;
}

/* Fills d from the open directory fd. */
static void read_dir(struct td_access_dir *d, int fd)
{
	unsigned char buf[4 + 8 * TD_ACCESS_ACL_MAX];
	struct stat st;
	ssize_t len;

	memset(d, 0, sizeof(*d));
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		d->acl_unknown = true;
		return;
	}
	d->uid = st.st_uid;
	d->gid = st.st_gid;
	d->mode = st.st_mode & 07777;
	len = fgetxattr(fd, "system.posix_acl_access", buf, sizeof(buf));
	if (len < 0) {
		if (errno != ENODATA && errno != ENOTSUP)
			d->acl_unknown = true; /* ERANGE (too long) included */
		return;
	}
	if (td_access_parse_acl(d, buf, (size_t)len) < 0)
		d->acl_unknown = true;
}

/* uid's groups now (its primary group included), malloc'd; NULL if uid is
 * not in the user database (its groups are then unknown). */
static uint32_t *groups_of(uint32_t uid, size_t *n_out)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	gid_t *g = NULL;
	int ng = 64;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return NULL;
	for (;;) {
		gid_t *ng_buf = realloc(g, (size_t)ng * sizeof(*g));
		int want = ng;

		if (!ng_buf) {
			free(g);
			return NULL;
		}
		g = ng_buf;
		if (getgrouplist(pw.pw_name, pw.pw_gid, g, &want) >= 0) {
			*n_out = (size_t)want;
			return (uint32_t *)g; /* gid_t is uint32_t on Linux */
		}
		if (want <= ng || want > MAX_GROUPS) {
			free(g);
			return NULL;
		}
		ng = want;
	}
}

_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");

#define CACHE_UIDS 64

struct td_access_cache {
	struct {
		bool used, known;
		uint32_t uid;
		uint32_t *groups;
		size_t n;
	} u[CACHE_UIDS];
	unsigned next;
	/* The ancestors of the last path walked, by its parent's bytes. */
	char *parent;
	size_t parent_len;
	struct td_access_dir *dirs;
	size_t n_dirs;
	bool deny;
};

struct td_access_cache *td_access_cache_new(void)
{
	return calloc(1, sizeof(struct td_access_cache));
}

static void forget_dirs(struct td_access_cache *c)
{
	free(c->parent);
	free(c->dirs);
	c->parent = NULL;
	c->dirs = NULL;
	c->n_dirs = 0;
}

void td_access_cache_free(struct td_access_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CACHE_UIDS; i++)
		free(c->u[i].groups);
	forget_dirs(c);
	free(c);
}

#define MAX_HOPS 40 /* symlinks followed in one walk, as the kernel's limit */

/* Appends the directory fd to *dirs (growing it). False when too deep. */
static bool add_dir(struct td_access_dir **dirs, size_t *n, size_t *cap, int fd)
{
	if (*n == *cap) {
		struct td_access_dir *nd =
		    *cap >= MAX_DEPTH ? NULL : realloc(*dirs, sizeof(**dirs) * *cap * 2);

		if (!nd)
			return false;
		*dirs = nd;
		*cap *= 2;
	}
	read_dir(&(*dirs)[(*n)++], fd);
	return true;
}

/*
 * Walks the ancestors of the file at path (the components before `last`),
 * from "/", recording every directory a user passes on the way. A symlink on
 * the way is followed only if root owns it (an admin's: /srv -> /data/srv;
 * a user's could point anywhere), as the kernel would, its directory and its
 * target's all counted; ".." in its target is not (denied). Returns 0 with
 * *dirs (malloc'd) and *n, or 1: deny (nothing allocated).
 */
static int walk(const char *path, const char *last, struct td_access_dir **dirs_out, size_t *n_out)
{
	struct td_access_dir *dirs;
	size_t n = 0, cap = 8, plen = (size_t)(last - path), off = 0;
	char *pend; /* the components still to walk */
	unsigned hops = 0;
	bool deny = false;
	int fd;

	dirs = malloc(sizeof(*dirs) * cap);
	pend = malloc(plen + 1);
	if (!dirs || !pend) {
		free(dirs);
		free(pend);
		return 1;
	}
	memcpy(pend, path, plen);
	pend[plen] = '\0';
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !add_dir(&dirs, &n, &cap, fd))
		deny = true;
	while (!deny) {
		char comp[256], target[4096];
		size_t cl;
		struct stat st;
		ssize_t tl;
		int nfd;

		while (pend[off] == '/')
			off++;
		if (!pend[off])
			break;
		cl = strcspn(pend + off, "/");
		if (cl >= sizeof(comp)) {
			deny = true;
			break;
		}
		memcpy(comp, pend + off, cl);
		comp[cl] = '\0';
		off += cl;
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			deny = true;
			break;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd >= 0) {
			close(fd);
			fd = nfd;
			if (!add_dir(&dirs, &n, &cap, fd))
				deny = true;
			continue;
		}
		/* A root-owned symlink: walk its target, then the rest. */
		if ((errno != ELOOP && errno != ENOTDIR) || ++hops > MAX_HOPS ||
		    fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode) ||
		    st.st_uid != 0 || (tl = readlinkat(fd, comp, target, sizeof(target))) <= 0 ||
		    (size_t)tl >= sizeof(target)) {
			deny = true;
			break;
		}
		{
			size_t rest = strlen(pend + off);
			char *np = malloc((size_t)tl + 1 + rest + 1);

			if (!np) {
				deny = true;
				break;
			}
			memcpy(np, target, (size_t)tl);
			np[tl] = '/';
			memcpy(np + tl + 1, pend + off, rest + 1);
			free(pend);
			pend = np;
			off = 0;
		}
		if (target[0] == '/') {
			close(fd);
			fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0 || !add_dir(&dirs, &n, &cap, fd))
				deny = true;
		}
	}
	if (fd >= 0)
		close(fd);
	free(pend);
	if (deny) {
		free(dirs);
		return 1;
	}
	*dirs_out = dirs;
	*n_out = n;
	return 0;
}

/* uid's groups through the cache (NULL if unknown); owned by the cache when
 * c is not NULL, else by the caller (*owned). */
static uint32_t *cached_groups(struct td_access_cache *c, uint32_t uid, size_t *n, bool *owned)
{
	unsigned i;

	*owned = !c;
	if (!c)
		return groups_of(uid, n);
	for (i = 0; i < CACHE_UIDS; i++)
		if (c->u[i].used && c->u[i].uid == uid) {
			*n = c->u[i].n;
			return c->u[i].known ? c->u[i].groups : NULL;
		}
	i = c->next++ % CACHE_UIDS;
	free(c->u[i].groups);
	c->u[i].groups = groups_of(uid, &c->u[i].n);
	c->u[i].known = c->u[i].groups != NULL;
	c->u[i].used = true;
	c->u[i].uid = uid;
	*n = c->u[i].n;
	return c->u[i].groups;
}

int td_access_fold_path_cached(struct td_access_fold *out, struct td_access_cache *c,
                               const char *path, size_t path_len, uint32_t uid, uint32_t gid)
{
	struct td_access_dir *dirs = NULL;
	const char *last;
	uint32_t *ug;
	size_t n = 0, n_ug = 0, plen;
	bool deny;

	if (path_len == 0 || path[0] != '/' || memchr(path, '\0', path_len))
		return -EINVAL;
	last = path + path_len;
	while (last > path && last[-1] != '/')
		last--;
	/* last: the file's name; the ancestors are the components before it. */
	plen = (size_t)(last - path);
	if (c && c->parent && c->parent_len == plen && memcmp(c->parent, path, plen) == 0) {
		deny = c->deny;
		dirs = c->dirs;
		n = c->n_dirs;
	} else {
		deny = walk(path, last, &dirs, &n) != 0;
		if (c) {
			forget_dirs(c);
			c->parent = malloc(plen ? plen : 1);
			if (c->parent) {
				memcpy(c->parent, path, plen);
				c->parent_len = plen;
				c->dirs = deny ? NULL : dirs;
				c->n_dirs = deny ? 0 : n;
				c->deny = deny;
			} /* else c->dirs stays NULL: dirs is freed below */
		}
	}
	if (deny) {
		out->uid = 0;
		out->gid = 0;
		out->mode = 0;
		return -ENOENT;
	}
	{
		bool own_groups;

		ug = cached_groups(c, uid, &n_ug, &own_groups);
		td_access_fold_dirs(out, dirs, n, uid, gid, ug, n_ug);
		if (own_groups)
			free(ug);
	}
	if (!c || dirs != c->dirs)
		free(dirs);
	return 0;
}

int td_access_fold_path(struct td_access_fold *out, const char *path, size_t path_len, uint32_t uid,
                        uint32_t gid)
{
	return td_access_fold_path_cached(out, NULL, path, path_len, uid, gid);
}
