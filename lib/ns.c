/* ns — see ns.h. Everything below state_dir is tierd's own (root-owned; a
 * file's own directory names its owner in an ACL, and is the owner's only on
 * a filesystem without ACLs), so paths there are trusted; every open still refuses symlinks, so a
 * stray link inside the namespace cannot redirect a write. */
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

bool td_ns_valid_id(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return i == 32;
}

bool td_ns_valid_name(const char *name, size_t len)
{
	if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return true;
}

static int fmt(char *out, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *out, size_t n, const char *f, ...)
{
	va_list ap;
	int r;

	va_start(ap, f);
	r = vsnprintf(out, n, f, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

int td_ns_link_path(char *out, size_t n, const char *state_dir, const char *id, const char *name,
                    size_t name_len)
{
	if (!td_ns_valid_id(id) || !td_ns_valid_name(name, name_len))
		return -EINVAL;
	return fmt(out, n, "%s/links/%.2s/%s/%.*s", state_dir, id, id, (int)name_len, name);
}

int td_ns_remote_path(char *out, size_t n, const char *run_dir, const char *id, const char *name,
                      size_t name_len)
{
	if (!td_ns_valid_id(id) || !td_ns_valid_name(name, name_len))
		return -EINVAL;
	return fmt(out, n, "%s/remote/%.2s/%s/%.*s", run_dir, id, id, (int)name_len, name);
}

int td_ns_cache_path(char *out, size_t n, const char *cache_dir, const char *id)
{
	if (!td_ns_valid_id(id))
		return -EINVAL;
	return fmt(out, n, "%s/copies/%.2s/%s/%s", cache_dir, id, id, id);
}

int td_ns_cache_dir(char *out, size_t n, const char *cache_dir, const char *id)
{
	if (!td_ns_valid_id(id))
		return -EINVAL;
	return fmt(out, n, "%s/copies/%.2s/%s", cache_dir, id, id);
}

int td_ns_object_key(char *out, size_t n, const char *id, bool manifest)
{
	if (!td_ns_valid_id(id))
		return -EINVAL;
	return fmt(out, n, "%.2s/%s%s", id, id, manifest ? ".json" : "");
}

int td_ns_mkdirs(const char *dir, unsigned mode)
{
	char buf[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

/* Opens the file's own directory `path` (creating it and its shared parents
 * with create: the parents 0711, it TD_NS_ID_DIR_MODE), refusing symlinks. */
static int open_dir(char *path, bool create)
{
	char *slash = strrchr(path, '/');
	int r, fd;

	if (create && slash) {
		*slash = '\0';
		r = td_ns_mkdirs(path, TD_NS_DIR_MODE);
		*slash = '/';
		if (r < 0)
			return r;
		if (mkdir(path, TD_NS_ID_DIR_MODE) < 0 && errno != EEXIST)
			return -errno;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Opens links/<aa>/<id> (creating it with create), refusing symlinks. */
static int open_id_dir(const char *state_dir, const char *id, bool create)
{
	char path[4096];
	int r;

	r = fmt(path, sizeof(path), "%s/links/%.2s/%s", state_dir, id, id);
	if (r < 0)
		return r;
	return open_dir(path, create);
}

/* The ACL of a folded directory: root owns it (no search bits of its own:
 * root needs none), U is a named user, G the owning group. */
static size_t fold_acl(unsigned char *buf, const struct td_access_fold *a)
{
	const struct {
		uint16_t tag, perm;
		uint32_t id;
	} e[] = {
		{ TD_ACL_USER_OBJ, 0, 0xffffffffu },
		{ TD_ACL_USER, (a->mode & 0100) ? 1 : 0, a->uid },
		{ TD_ACL_GROUP_OBJ, (a->mode & 010) ? 1 : 0, 0xffffffffu },
		{ TD_ACL_MASK, 1, 0xffffffffu },
		{ TD_ACL_OTHER, (a->mode & 01) ? 1 : 0, 0xffffffffu },
	};
	uint32_t ver = 2;
	size_t n = 4;

	memcpy(buf, &ver, 4);
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		memcpy(buf + n, &e[i].tag, 2);
		memcpy(buf + n + 2, &e[i].perm, 2);
		memcpy(buf + n + 4, &e[i].id, 4);
		n += 8;
	}
	return n;
}

/*
 * Gives the directory fd the fold *a. It stays root's, so its owner cannot
 * chmod it or write in it: tierd works in these directories by name. The
 * owner U gets a named ACL entry; on a filesystem without POSIX ACLs (and for
 * U = root) the directory is U's instead, with the fold as its mode (U may
 * then chmod it: see tierd(8), SECURITY).
 */
static int set_fold(int fd, const struct td_access_fold *a)
{
	unsigned char acl[4 + 8 * 5];
	size_t n;

	if (a->uid != 0) {
		if (fchown(fd, 0, a->gid) < 0)
			return -errno;
		n = fold_acl(acl, a);
		if (fsetxattr(fd, "system.posix_acl_access", acl, n, 0) == 0)
			return 0;
		if (errno != EOPNOTSUPP)
			return -errno;
	}
	if (fchown(fd, a->uid, a->gid) < 0)
		return -errno;
	/* No named entry left over from an earlier fold. */
	if (fremovexattr(fd, "system.posix_acl_access") < 0 && errno != ENODATA &&
	    errno != EOPNOTSUPP)
		return -errno;
	return fchmod(fd, a->mode) < 0 ? -errno : 0;
}

/* The fold a directory carries (set_fold's inverse). */
static int get_fold(int fd, struct td_access_fold *out)
{
	unsigned char buf[4 + 8 * TD_ACCESS_ACL_MAX];
	struct td_access_dir d;
	struct stat st;
	ssize_t len;
	bool named = false;
	uint32_t mode;

	if (fstat(fd, &st) < 0)
		return -errno;
	out->uid = st.st_uid;
	out->gid = st.st_gid;
	out->mode = st.st_mode & 0111;
	len = fgetxattr(fd, "system.posix_acl_access", buf, sizeof(buf));
	if (len < 0)
		return errno == ENODATA || errno == EOPNOTSUPP ? 0 : -errno;
	memset(&d, 0, sizeof(d));
	if (td_access_parse_acl(&d, buf, (size_t)len) < 0)
		return -EINVAL;
	mode = 0;
	for (unsigned i = 0; i < d.n_acl; i++) {
		bool x = d.acl[i].perm & 1;

		if (d.acl[i].tag == TD_ACL_USER && !named) {
			named = true;
			out->uid = d.acl[i].id;
			mode |= x ? 0100 : 0;
		} else if (d.acl[i].tag == TD_ACL_GROUP_OBJ) {
			mode |= x ? 010 : 0;
		} else if (d.acl[i].tag == TD_ACL_OTHER) {
			mode |= x ? 01 : 0;
		}
	}
	/* The mask is always x in ours: the group bit is the group entry's. */
	if (named)
		out->mode = mode;
	return 0;
}

int td_ns_fold_of(const char *dir, struct td_access_fold *out)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = get_fold(fd, out);
	close(fd);
	return r;
}

int td_ns_fold_get(const char *state_dir, const char *id, struct td_access_fold *out)
{
	int fd, r;

	if (!td_ns_valid_id(id))
		return -EINVAL;
	fd = open_id_dir(state_dir, id, false);
	if (fd < 0)
		return fd;
	r = get_fold(fd, out);
	close(fd);
	return r;
}

static int fold(const char *state_dir, const char *cache_dir, const char *id,
                const struct td_access_fold *a, bool create)
{
	char path[4096];
	int fd, r;

	if (!td_ns_valid_id(id) || (a->mode & ~0111u))
		return -EINVAL;
	fd = open_id_dir(state_dir, id, create);
	if (fd == -ENOENT && !create)
		return 0;
	if (fd < 0)
		return fd;
	r = set_fold(fd, a);
	close(fd);
	if (r < 0 || !cache_dir)
		return r;
	r = td_ns_cache_dir(path, sizeof(path), cache_dir, id);
	if (r < 0)
		return r;
	fd = open_dir(path, false);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = set_fold(fd, a);
	close(fd);
	return r;
}

int td_ns_fold(const char *state_dir, const char *cache_dir, const char *id,
               const struct td_access_fold *a)
{
	return fold(state_dir, cache_dir, id, a, true);
}

int td_ns_refold(const char *state_dir, const char *cache_dir, const char *id,
                 const struct td_access_fold *a)
{
	return fold(state_dir, cache_dir, id, a, false);
}

int td_ns_cache_mkdir(const char *state_dir, const char *cache_dir, const char *id)
{
	struct td_access_fold a = { 0, 0, 0 }; /* root only, until folded */
	char path[4096];
	int fd, r;

	r = td_ns_cache_dir(path, sizeof(path), cache_dir, id);
	if (r < 0)
		return r;
	fd = open_dir(path, true);
	if (fd < 0)
		return fd;
	if (td_ns_fold_get(state_dir, id, &a) < 0)
		a = (struct td_access_fold){ 0, 0, 0 };
	r = set_fold(fd, &a);
	close(fd);
	return r;
}

int td_ns_bind(const char *state_dir, const char *id, const char *name, size_t name_len,
               const char *dest)
{
	char nm[256], tmp[64], rnd[8], hex[17];
	int dfd, r;

	if (!td_ns_valid_id(id) || !td_ns_valid_name(name, name_len) || !dest || dest[0] != '/')
		return -EINVAL;
	memcpy(nm, name, name_len);
	nm[name_len] = '\0';
	r = td_random_bytes(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	td_hex(hex, rnd, sizeof(rnd));
	/* A name no original can have: it starts with '/'-free "\x01.tierd-". */
	snprintf(tmp, sizeof(tmp), "\x01.tierd-bind-%s", hex);
	dfd = open_id_dir(state_dir, id, true);
	if (dfd < 0)
		return dfd;
	if (symlinkat(dest, dfd, tmp) < 0) {
		r = -errno;
		goto out;
	}
	if (renameat(dfd, tmp, dfd, nm) < 0) {
		r = -errno;
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	r = fsync(dfd) < 0 ? -errno : 0;
out:
	close(dfd);
	return r;
}

int td_ns_read(const char *state_dir, const char *id, const char *name, size_t name_len, char *out,
               size_t n)
{
	char nm[256];
	ssize_t len;
	int dfd;

	if (!td_ns_valid_id(id) || !td_ns_valid_name(name, name_len) || n == 0)
		return -EINVAL;
	memcpy(nm, name, name_len);
	nm[name_len] = '\0';
	dfd = open_id_dir(state_dir, id, false);
	if (dfd < 0)
		return dfd;
	len = readlinkat(dfd, nm, out, n - 1);
	close(dfd);
	if (len < 0)
		return -errno;
	out[len] = '\0';
	return (int)len;
}

int td_ns_remove(const char *state_dir, const char *id)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	int dfd, r = 0;

	if (!td_ns_valid_id(id))
		return -EINVAL;
	dfd = open_id_dir(state_dir, id, false);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
	}
	closedir(d);
	if (r < 0)
		return r;
	r = fmt(path, sizeof(path), "%s/links/%.2s/%s", state_dir, id, id);
	if (r < 0)
		return r;
	if (rmdir(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

bool td_ns_parse_link(const char *state_dir, const char *target, size_t len, char id_out[33])
{
	size_t sl = strlen(state_dir);
	const char *p, *end = target + len;

	if (len < sl + 7 || memcmp(target, state_dir, sl) != 0 || memcmp(target + sl, "/links/", 7))
		return false;
	p = target + sl + 7;
	/* <aa>/<id>/<name> */
	if (end - p < 2 + 1 + 32 + 1 + 1 || p[2] != '/' || p[35] != '/')
		return false;
	memcpy(id_out, p + 3, 32);
	id_out[32] = '\0';
	if (!td_ns_valid_id(id_out) || memcmp(p, id_out, 2) != 0)
		return false;
	return td_ns_valid_name(p + 36, (size_t)(end - (p + 36)));
}
