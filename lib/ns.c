/* ns — see ns.h. Everything below state_dir is tierd's own (root-owned; a
 * file's own directory may be owned by the file's owner, but has no write
 * bit), so paths there are trusted; every open still refuses symlinks, so a stray
 * link inside the namespace cannot redirect a write. */
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* Gives the directory fd owner uid:gid and mode (changed only if different). */
static int set_fold(int fd, uint32_t uid, uint32_t gid, uint32_t mode)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
		return -errno;
	/* fchown may clear bits; set the mode after it, always when it ran. */
	if ((st.st_mode & 07777) != mode || st.st_uid != uid || st.st_gid != gid)
		if (fchmod(fd, mode) < 0)
			return -errno;
	return 0;
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
	r = set_fold(fd, a->uid, a->gid, a->mode);
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
	r = set_fold(fd, a->uid, a->gid, a->mode);
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
	char path[4096];
	struct stat ls;
	int fd, lfd, r;

	r = td_ns_cache_dir(path, sizeof(path), cache_dir, id);
	if (r < 0)
		return r;
	fd = open_dir(path, true);
	if (fd < 0)
		return fd;
	lfd = open_id_dir(state_dir, id, false);
	if (lfd >= 0 && fstat(lfd, &ls) == 0)
		r = set_fold(fd, ls.st_uid, ls.st_gid, ls.st_mode & 0111);
	else
		r = set_fold(fd, 0, 0, TD_NS_ID_DIR_MODE);
	if (lfd >= 0)
		close(lfd);
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
