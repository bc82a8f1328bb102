/*
 * Unit tests of lib/fsat: every path a user could plant or race into a tree
 * is refused, and nothing outside the root is opened, created or changed.
 *
 * Each case works in a fresh tmpdir holding "root" (the dirfd the calls get)
 * and "outside" (where every planted symlink points, with the same names as
 * inside, so that following a link would succeed). A case ends by checking
 * that "outside" still holds exactly what it was made with.
 *
 * Built twice: test_fsat uses openat2; test_fsat_fallback compiles lib/fsat.c
 * in with TD_FSAT_FORCE_FALLBACK=1, to run the component-at-a-time walk.
 */
#include "fsat.h"
#include "testlib.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct box {
	int root;          /* dirfd of <tmp>/root */
	int out;           /* dirfd of <tmp>/outside */
	char outside[512]; /* its path */
	unsigned outside_entries;
};

/* Entries of a directory tree, recursively (not following symlinks). */
static unsigned count_tree(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (de->d_type == DT_DIR) {
			int c = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			if (c >= 0) {
				n += count_tree(c);
				close(c);
			}
		}
	}
	closedir(d);
	return n;
}

/* <tmp>/outside/{a/b/c, b/c, c, x}, <tmp>/root/{a/b/c, f}, plus `links`:
 * "name=target" pairs made as symlinks inside root. */
static void box_open(struct box *b, const char *tag)
{
	const char *tmp = td_test_tmpdir(tag);
	char p[600];

	snprintf(b->outside, sizeof(b->outside), "%s/outside", tmp);
	snprintf(p, sizeof(p), "%s/root", tmp);
	mkdir(p, 0755);
	mkdir(b->outside, 0755);
	b->root = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	b->out = open(b->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	mkdirat(b->root, "a", 0755);
	mkdirat(b->root, "a/b", 0755);
	mkdirat(b->root, "a/b/c", 0755);
	close(openat(b->root, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	mkdirat(b->out, "a", 0755);
	mkdirat(b->out, "a/b", 0755);
	mkdirat(b->out, "a/b/c", 0755);
	mkdirat(b->out, "b", 0755);
	mkdirat(b->out, "b/c", 0755);
	mkdirat(b->out, "c", 0755);
	close(openat(b->out, "x", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	b->outside_entries = count_tree(b->out);
}

/* Plants root/<name> as a symlink to outside/<rel> (absolute target). */
static void plant(struct box *b, const char *name, const char *rel)
{
	char t[700];

	snprintf(t, sizeof(t), "%s/%s", b->outside, rel);
	CHECK_INT(symlinkat(t, b->root, name), 0);
}

static void box_close(struct box *b)
{
	CHECK_INT(count_tree(b->out), b->outside_entries);
	close(b->root);
	close(b->out);
}

/* fd is a directory inside the box's root tree (not outside). */
static bool inside(struct box *b, int fd)
{
	struct stat st, os;
	int up = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), nup;
	bool in = false;

	/* Climb until the root or the outside directory is met. */
	fstat(b->root, &st);
	fstat(b->out, &os);
	for (int i = 0; up >= 0 && i < 64; i++) {
		struct stat cur;
		fstat(up, &cur);
		if (cur.st_ino == st.st_ino && cur.st_dev == st.st_dev) {
			in = true;
			break;
		}
		if (cur.st_ino == os.st_ino && cur.st_dev == os.st_dev)
			break;
		nup = openat(up, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(up);
		up = nup;
	}
	if (up >= 0)
		close(up);
	return in;
}

static int open_dir(struct box *b, const char *rel)
{
	return td_fsat_open_dir(b->root, rel, strlen(rel), 0);
}

static int mkdir_p(struct box *b, const char *rel)
{
	return td_fsat_mkdir_p(b->root, rel, strlen(rel), 0755, 0);
}

static int open_parent(struct box *b, const char *rel, unsigned flags, const char **name)
{
	return td_fsat_open_parent(b->root, rel, strlen(rel), flags, name);
}

/* The three calls on one path all give `want` (mkdir_p and open_parent of
 * rel + "/new" included), and none creates anything. */
static void refused_everywhere(struct box *b, const char *rel, int want)
{
	char sub[1024];
	const char *name = NULL;

	snprintf(sub, sizeof(sub), "%s/new", rel);
	CHECK_INT(open_dir(b, rel), want);
	CHECK_INT(mkdir_p(b, rel), want);
	CHECK_INT(mkdir_p(b, sub), want);
	CHECK_INT(open_parent(b, sub, 0, &name), want);
	CHECK_INT(open_parent(b, sub, TD_FSAT_MKDIR, &name), want);
	CHECK(name == NULL);
}

static void test_plain_paths(void)
{
	struct box b;
	const char *name = NULL;
	int fd;

	box_open(&b, "fsat_plain");
	fd = open_dir(&b, "a/b/c");
	CHECK(fd >= 0);
	CHECK(inside(&b, fd));
	close(fd);
	fd = open_dir(&b, "");
	CHECK(fd >= 0 && fd != b.root);
	close(fd);
	fd = open_parent(&b, "a/b/c/file", 0, &name);
	CHECK(fd >= 0);
	CHECK_STR(name, "file");
	CHECK(inside(&b, fd));
	close(fd);
	fd = open_parent(&b, "top", 0, &name);
	CHECK(fd >= 0);
	CHECK_STR(name, "top");
	close(fd);
	/* The length bounds the path: "a/b" of "a/b/zzz". */
	fd = td_fsat_open_dir(b.root, "a/b/zzz", 3, 0);
	CHECK(fd >= 0);
	close(fd);
	CHECK_INT(open_dir(&b, "a/missing"), -ENOENT);
	CHECK_INT(open_dir(&b, "f"), -ENOTDIR);
	CHECK_INT(open_dir(&b, "f/x"), -ENOTDIR);
	box_close(&b);
}

static void test_symlink_at_every_component(void)
{
	struct box b;

	box_open(&b, "fsat_links");
	/* first component */
	plant(&b, "l", "a");
	refused_everywhere(&b, "l", -ELOOP);
	refused_everywhere(&b, "l/b", -ELOOP);
	refused_everywhere(&b, "l/b/c", -ELOOP);
	/* middle component */
	plant(&b, "a/lb", "b");
	refused_everywhere(&b, "a/lb/c", -ELOOP);
	/* last component */
	plant(&b, "a/b/lc", "c");
	refused_everywhere(&b, "a/b/lc", -ELOOP);
	/* a relative link that stays inside is still a symlink */
	CHECK_INT(symlinkat("b", b.root, "a/rel"), 0);
	refused_everywhere(&b, "a/rel", -ELOOP);
	refused_everywhere(&b, "a/rel/c", -ELOOP);
	/* a dangling one: mkdir -p does not create its target */
	plant(&b, "a/dangle", "nowhere");
	refused_everywhere(&b, "a/dangle", -ELOOP);
	CHECK(faccessat(b.out, "nowhere", F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	/* the link itself, as the last name of open_parent, is for the caller */
	{
		const char *name = NULL;
		int fd = open_parent(&b, "a/b/lc", 0, &name);
		CHECK(fd >= 0);
		CHECK_STR(name, "lc");
		CHECK(inside(&b, fd));
		close(fd);
	}
	box_close(&b);
}

static void test_refused_syntax(void)
{
	static const char *const bad[] = {
		"..",    "../x", "a/..", "a/../a", "a/b/../..", ".",  "./a",  "a/.",
		"a/./b", "/",    "/a",   "/etc",   "a//b",      "a/", "a/b/", "//",
	};
	struct box b;
	const char *name = NULL;

	box_open(&b, "fsat_syntax");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char sub[64];
		int r;

		snprintf(sub, sizeof(sub), "%s/n", bad[i]);
		r = open_dir(&b, bad[i]);
		if (r != -EINVAL)
			fprintf(stderr, "open_dir(\"%s\") = %d\n", bad[i], r);
		CHECK_INT(r, -EINVAL);
		CHECK_INT(mkdir_p(&b, bad[i]), -EINVAL);
		CHECK_INT(open_parent(&b, bad[i], 0, &name), -EINVAL);
		CHECK_INT(open_parent(&b, bad[i], TD_FSAT_MKDIR, &name), -EINVAL);
		CHECK_INT(mkdir_p(&b, sub), -EINVAL);
	}
	CHECK_INT(open_parent(&b, "", 0, &name), -EINVAL);
	CHECK_INT(td_fsat_open_dir(b.root, "a\0b", 3, 0), -EINVAL);
	CHECK(name == NULL);
	/* nothing was created in the root either */
	CHECK_INT(count_tree(b.root), 4);
	box_close(&b);
}

static void test_too_long(void)
{
	char name[NAME_MAX + 2];
	struct box b;
	char *p;
	size_t n;
	int fd;

	box_open(&b, "fsat_long");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	CHECK_INT(open_dir(&b, name), -ENAMETOOLONG);
	CHECK_INT(mkdir_p(&b, name), -ENAMETOOLONG);
	name[NAME_MAX] = '\0';
	fd = mkdir_p(&b, name);
	CHECK(fd >= 0);
	close(fd);

	/* Over TD_FSAT_PATH_MAX: refused before anything is made. */
	n = TD_FSAT_PATH_MAX + 2;
	p = malloc(n + 1);
	REQUIRE(p);
	for (size_t i = 0; i < n; i += 2)
		memcpy(p + i, "d/", 2);
	p[n - 1] = 'd';
	p[n] = '\0';
	CHECK_INT(td_fsat_mkdir_p(b.root, p, n - 1, 0755, 0), -ENAMETOOLONG);
	CHECK_INT(td_fsat_open_dir(b.root, p, n - 1, 0), -ENAMETOOLONG);
	CHECK(faccessat(b.root, "d", F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	free(p);

	/* Longer than PATH_MAX but within the limit: made, opened in slices,
	 * and a symlink past the first slice is still refused. */
	n = 0;
	p = malloc(3 * PATH_MAX);
	REQUIRE(p);
	while (n < 2 * PATH_MAX) {
		memcpy(p + n, name, NAME_MAX);
		n += NAME_MAX;
		p[n++] = '/';
	}
	p[--n] = '\0';
	fd = mkdir_p(&b, p);
	CHECK(fd >= 0);
	close(fd);
	fd = open_dir(&b, p);
	CHECK(fd >= 0);
	CHECK(inside(&b, fd));
	close(fd);
	{
		int pfd = td_fsat_open_parent(b.root, p, n, 0, &(const char *){ NULL });
		CHECK(pfd >= 0);
		/* replace the last directory by a symlink */
		CHECK_INT(unlinkat(pfd, name, AT_REMOVEDIR), 0);
		plant(&b, "tmp-link", "c");
		CHECK_INT(renameat(b.root, "tmp-link", pfd, name), 0);
		close(pfd);
	}
	CHECK_INT(open_dir(&b, p), -ELOOP);
	p[n] = '/';
	p[n + 1] = 'z';
	CHECK_INT(td_fsat_mkdir_p(b.root, p, n + 2, 0755, 0), -ELOOP);
	free(p);
	box_close(&b);
}

static void test_mkdir_p(void)
{
	struct box b;
	const char *name = NULL;
	struct stat st;
	int fd;

	box_open(&b, "fsat_mkdir");
	fd = td_fsat_mkdir_p(b.root, "m/n/o", 5, 0750, 0);
	CHECK(fd >= 0);
	CHECK(inside(&b, fd));
	close(fd);
	CHECK_INT(fstatat(b.root, "m/n/o", &st, AT_SYMLINK_NOFOLLOW), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 0777 & ~0750u, 0);
	/* again: everything exists */
	fd = mkdir_p(&b, "m/n/o");
	CHECK(fd >= 0);
	close(fd);
	/* open_parent creates the parents only, 0700 */
	fd = open_parent(&b, "p/q/leaf", TD_FSAT_MKDIR, &name);
	CHECK(fd >= 0);
	CHECK_STR(name, "leaf");
	close(fd);
	CHECK_INT(fstatat(b.root, "p/q", &st, AT_SYMLINK_NOFOLLOW), 0);
	CHECK_INT(st.st_mode & 0777, 0700);
	CHECK(faccessat(b.root, "p/q/leaf", F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	/* through a file */
	CHECK_INT(mkdir_p(&b, "f/x"), -ENOTDIR);
	/* through an existing symlink, at the first, middle and last component */
	plant(&b, "s", "b");
	plant(&b, "m/s", "b");
	plant(&b, "m/n/s", "c");
	CHECK_INT(mkdir_p(&b, "s"), -ELOOP);
	CHECK_INT(mkdir_p(&b, "s/c/new"), -ELOOP);
	CHECK_INT(mkdir_p(&b, "m/s/c/new"), -ELOOP);
	CHECK_INT(mkdir_p(&b, "m/n/s/new"), -ELOOP);
	CHECK_INT(mkdir_p(&b, "m/n/s"), -ELOOP);
	CHECK_INT(fstatat(b.root, "m/n/s", &st, AT_SYMLINK_NOFOLLOW), 0);
	CHECK(S_ISLNK(st.st_mode)); /* not replaced */
	box_close(&b);
}

static void test_no_xdev(void)
{
	int rootfs = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;
	struct stat a, p;

	REQUIRE(rootfs >= 0);
	/* /proc is its own mount wherever tierd runs. */
	REQUIRE(stat("/", &a) == 0 && stat("/proc", &p) == 0);
	if (a.st_dev != p.st_dev) {
		CHECK_INT(td_fsat_open_dir(rootfs, "proc", 4, TD_FSAT_NO_XDEV), -EXDEV);
		CHECK_INT(td_fsat_open_dir(rootfs, "proc/sys", 8, TD_FSAT_NO_XDEV), -EXDEV);
		CHECK_INT(td_fsat_mkdir_p(rootfs, "proc/sys", 8, 0755, TD_FSAT_NO_XDEV), -EXDEV);
	}
	fd = td_fsat_open_dir(rootfs, "proc", 4, 0);
	CHECK(fd >= 0);
	close(fd);
	/* a magic link is a symlink too */
	CHECK_INT(td_fsat_open_dir(rootfs, "proc/self", 9, 0), -ELOOP);
	CHECK_INT(td_fsat_open_dir(rootfs, "proc/self/cwd", 13, 0), -ELOOP);
	close(rootfs);
}

/* ---- a directory swapped for a symlink while walks run ---- */

struct swapper {
	struct box *b;
	atomic_bool stop;
	atomic_ulong swaps;
};

/* Exchanges root/a/b (a directory) with root/a/s (a symlink to outside/b),
 * over and over: each walk sees one or the other, at any step. */
static void *swap_loop(void *arg)
{
	struct swapper *sw = arg;

	while (!atomic_load(&sw->stop)) {
		if (renameat2(sw->b->root, "a/b", sw->b->root, "a/s", RENAME_EXCHANGE) == 0)
			atomic_fetch_add(&sw->swaps, 1);
	}
	return NULL;
}

static void test_swap_race(void)
{
	struct box b;
	struct swapper sw = { .b = &b };
	pthread_t tid;
	unsigned long ok = 0, refused = 0, bad_err = 0, escaped = 0;

	box_open(&b, "fsat_race");
	plant(&b, "a/s", "b");
	REQUIRE(pthread_create(&tid, NULL, swap_loop, &sw) == 0);
	for (int i = 0; i < 20000 || (ok == 0 || refused == 0); i++) {
		const char *name;
		char sub[64];
		int fd;

		snprintf(sub, sizeof(sub), "a/b/c/n%d", i % 64);
		switch (i % 3) {
		case 0:
			fd = open_dir(&b, "a/b/c");
			break;
		case 1:
			fd = mkdir_p(&b, sub);
			break;
		default:
			fd = open_parent(&b, sub, TD_FSAT_MKDIR, &name);
			break;
		}
		if (fd >= 0) {
			ok++;
			if (!inside(&b, fd))
				escaped++;
			close(fd);
		} else if (fd == -ELOOP || fd == -ENOENT || fd == -ENOTDIR) {
			refused++;
		} else {
			bad_err++;
			fprintf(stderr, "unexpected %d\n", fd);
		}
		if (i > 2000000)
			break;
	}
	atomic_store(&sw.stop, true);
	pthread_join(tid, NULL);
	printf("race: %lu swaps, %lu opened, %lu refused\n", (unsigned long)atomic_load(&sw.swaps),
	       ok, refused);
	CHECK(ok > 0);
	CHECK(refused > 0);
	CHECK_INT(bad_err, 0);
	CHECK_INT(escaped, 0);
	box_close(&b); /* nothing made outside, although mkdir -p ran through the link */
}

int main(void)
{
	TD_RUN(test_plain_paths);
	TD_RUN(test_symlink_at_every_component);
	TD_RUN(test_refused_syntax);
	TD_RUN(test_too_long);
	TD_RUN(test_mkdir_p);
	TD_RUN(test_no_xdev);
	TD_RUN(test_swap_race);
	return td_test_done();
}
