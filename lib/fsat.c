/*
 * fsat — see fsat.h.
 *
 * Threads: any caller; no state is kept between calls, so the scanner's
 * workers, the mover's workers and the dir target's thread-pool items share it.
 *
 * The path is checked whole before anything is opened, so a refused path has
 * no side effect at all. Opening then goes either through openat2, whose
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS makes each slice one atomic, safe
 * lookup, or one component at a time: each openat(O_NOFOLLOW | O_DIRECTORY)
 * is relative to the fd of the directory before it, so a directory swapped
 * for a symlink between two steps is met as a symlink and refused, never
 * followed. Only the fds of the walk itself are owned here; each is closed
 * before the next step returns.
 */
#include "fsat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The fsat unit test builds this file again with TD_FSAT_FORCE_FALLBACK=1, to
 * run the component-at-a-time walk on a kernel that has openat2. */
#ifndef TD_FSAT_FORCE_FALLBACK
#define TD_FSAT_FORCE_FALLBACK 0
#endif

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* Checks rel as fsat.h describes; *last (if not NULL) gets the offset of the
 * last component. Returns 0 or -errno. */
static int check_rel(const char *rel, size_t len, size_t *last)
{
	size_t start = 0;

	if (len > TD_FSAT_PATH_MAX)
		return -ENAMETOOLONG;
	if (len == 0) {
		if (last)
			*last = 0;
		return 0;
	}
	if (memchr(rel, '\0', len))
		return -EINVAL;
	for (;;) {
		const char *slash = memchr(rel + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - rel) : len, n = end - start;
		const char *p = rel + start;

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		if (!slash) {
			if (last)
				*last = start;
			return 0;
		}
		start = end + 1;
		if (start == len)
			return -EINVAL; /* a trailing '/' */
	}
}

/* A fresh description of dirfd (not a dup: getdents offsets are per description). */
static int reopen_self(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* An -errno from openat(DIR_FLAGS) of `name` in dfd, in fsat.h's terms:
 * O_NOFOLLOW | O_DIRECTORY reports a symlink as ENOTDIR. */
static int open_error(int dfd, const char *name, int err)
{
	struct stat st;

	if (err == ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return -ELOOP;
	return -err;
}

/* With TD_FSAT_NO_XDEV, refuses fd when it is on another device than the start. */
static int check_dev(int fd, unsigned flags, dev_t dev)
{
	struct stat st;

	if (!(flags & TD_FSAT_NO_XDEV))
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	return st.st_dev == dev ? 0 : -EXDEV;
}

/* Creates `name` in dfd when it is missing, durable before it is used. */
static int make_dir(int dfd, const char *name, mode_t mode)
{
	if (mkdirat(dfd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	/* The new entry must survive a crash before anything inside it does. */
	return fsync(dfd) < 0 ? -errno : 0;
}

/*
 * The component-at-a-time walk of a checked rel (len > 0), creating missing
 * directories with `mode` when `create`. Returns an fd or -errno.
 */
static int walk_components(int dirfd, const char *rel, size_t len, unsigned flags, bool create,
                           mode_t mode)
{
	char comp[NAME_MAX + 1];
	struct stat st = { 0 };
	size_t start = 0;
	int fd = dirfd, r;

	if ((flags & TD_FSAT_NO_XDEV) && fstat(dirfd, &st) < 0)
		return -errno;
	while (start < len) {
		const char *slash = memchr(rel + start, '/', len - start);
		size_t n = (slash ? (size_t)(slash - rel) : len) - start;
		int nfd;

		memcpy(comp, rel + start, n);
		comp[n] = '\0';
		nfd = openat(fd, comp, DIR_FLAGS);
		if (nfd < 0 && errno == ENOENT && create) {
			r = make_dir(fd, comp, mode);
			if (r < 0)
				goto fail;
			nfd = openat(fd, comp, DIR_FLAGS);
		}
		if (nfd < 0) {
			r = open_error(fd, comp, errno);
			goto fail;
		}
		if (fd != dirfd)
			close(fd);
		fd = nfd;
		r = check_dev(fd, flags, st.st_dev);
		if (r < 0)
			goto fail;
		start += n + 1;
	}
	return fd;
fail:
	if (fd != dirfd)
		close(fd);
	return r;
}

static int openat2_beneath(int dirfd, const char *path, unsigned flags)
{
	/* No O_NOFOLLOW: with it a trailing symlink is not followed but met as
	 * ENOTDIR; without it RESOLVE_NO_SYMLINKS refuses it as -ELOOP, like any
	 * other component. */
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
		           ((flags & TD_FSAT_NO_XDEV) ? RESOLVE_NO_XDEV : 0),
	};
	long fd;

	if (TD_FSAT_FORCE_FALLBACK)
		return -ENOSYS;
	fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* Opens one slice (< PATH_MAX bytes, whole components) beneath fd. */
static int open_slice(int fd, const char *rel, size_t n, unsigned flags)
{
	char buf[PATH_MAX];
	int r;

	memcpy(buf, rel, n);
	buf[n] = '\0';
	r = openat2_beneath(fd, buf, flags);
	if (r == -ENOSYS || r == -EPERM /* seccomp filters */)
		r = walk_components(fd, buf, n, flags, false, 0);
	return r;
}

/* Opens a checked rel (len > 0) in slices of whole components below PATH_MAX. */
static int open_sliced(int dirfd, const char *rel, size_t len, unsigned flags)
{
	int fd = dirfd;

	while (len > 0) {
		size_t take = len;
		int nfd;

		if (take >= PATH_MAX) {
			const char *cut = memrchr(rel, '/', PATH_MAX - 1);
			/* Every component is at most NAME_MAX: there is a cut. */
			take = (size_t)(cut - rel);
		}
		nfd = open_slice(fd, rel, take, flags);
		if (fd != dirfd)
			close(fd);
		if (nfd < 0)
			return nfd;
		fd = nfd;
		rel += take;
		len -= take;
		if (len > 0) {
			rel++; /* the '/' we cut at */
			len--;
		}
	}
	return fd;
}

int td_fsat_open_dir(int dirfd, const char *rel, size_t len, unsigned flags)
{
	int r = check_rel(rel, len, NULL);

	if (r < 0)
		return r;
	return len == 0 ? reopen_self(dirfd) : open_sliced(dirfd, rel, len, flags);
}

int td_fsat_mkdir_p(int dirfd, const char *rel, size_t len, mode_t mode, unsigned flags)
{
	int r = check_rel(rel, len, NULL);

	if (r < 0)
		return r;
	return len == 0 ? reopen_self(dirfd) : walk_components(dirfd, rel, len, flags, true, mode);
}

int td_fsat_open_parent(int dirfd, const char *rel, size_t len, unsigned flags, const char **name)
{
	size_t last;
	int r = check_rel(rel, len, &last), fd;

	if (r < 0)
		return r;
	if (len == 0)
		return -EINVAL;
	/* last > 0 means rel[last - 1] is the '/' before the last component. */
	if (last == 0)
		fd = reopen_self(dirfd);
	else if (flags & TD_FSAT_MKDIR)
		fd = walk_components(dirfd, rel, last - 1, flags, true, 0700);
	else
		fd = open_sliced(dirfd, rel, last - 1, flags);
	if (fd >= 0)
		*name = rel + last;
	return fd;
}
