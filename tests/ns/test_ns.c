/*
 * Unit tests of lib/ns: the layout of tierd's namespace, the atomic rebind of
 * a dynamic link, hostile basenames, and a rebind racing readers.
 */
#include "ns.h"
#include "testlib.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ID  "0123456789abcdef0123456789abcdef"
#define ID2 "ab00000000000000000000000000ffff"

static char state[512], dest_a[600], dest_b[600];

static void setup(const char *tag)
{
	const char *tmp = td_test_tmpdir(tag);

	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(dest_a, sizeof(dest_a), "%s/A", tmp);
	snprintf(dest_b, sizeof(dest_b), "%s/B", tmp);
	mkdir(state, 0700);
	for (int i = 0; i < 2; i++) {
		int fd = open(i ? dest_b : dest_a, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
		CHECK(fd >= 0);
		CHECK_INT(write(fd, i ? "B" : "A", 1), 1);
		close(fd);
	}
}

/* Entries of <state>/links/<aa>/<id>, or -1 when it is missing. */
static int id_dir_entries(const char *id)
{
	char path[700];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/links/%.2s/%s", state, id, id);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The path builders: links, the remote view, the cache, object keys. */
static void test_layout_paths(void)
{
	char out[1024];

	CHECK_INT(td_ns_link_path(out, sizeof(out), "/var/lib/tierd", ID, "f.txt", 5), 0);
	CHECK_STR(out, "/var/lib/tierd/links/01/" ID "/f.txt");
	/* the name is taken by length, not up to a NUL */
	CHECK_INT(td_ns_link_path(out, sizeof(out), "/s", ID, "abcdef", 3), 0);
	CHECK_STR(out, "/s/links/01/" ID "/abc");
	CHECK_INT(td_ns_remote_path(out, sizeof(out), "/run/tierd", ID2, "x", 1), 0);
	CHECK_STR(out, "/run/tierd/remote/ab/" ID2 "/x");
	CHECK_INT(td_ns_cache_path(out, sizeof(out), "/var/cache/tierd", ID), 0);
	CHECK_STR(out, "/var/cache/tierd/copies/01/" ID "/" ID);
	CHECK_INT(td_ns_object_key(out, sizeof(out), ID, false), 0);
	CHECK_STR(out, "01/" ID);
	CHECK_INT(td_ns_object_key(out, sizeof(out), ID, true), 0);
	CHECK_STR(out, "01/" ID ".json");

	/* ids: 32 lower-case hex digits, nothing else */
	CHECK(td_ns_valid_id(ID));
	CHECK(!td_ns_valid_id("0123456789ABCDEF0123456789abcdef"));
	CHECK(!td_ns_valid_id("0123456789abcdef0123456789abcde"));
	CHECK(!td_ns_valid_id(ID "0"));
	CHECK(!td_ns_valid_id("0123456789abcdef0123456789abcdeg"));
	CHECK(!td_ns_valid_id("../../../../../../../../../../etc"));
	CHECK(!td_ns_valid_id(""));
	CHECK_INT(td_ns_link_path(out, sizeof(out), "/s", "../x", "f", 1), -EINVAL);
	CHECK_INT(td_ns_remote_path(out, sizeof(out), "/r", "nothex", "f", 1), -EINVAL);
	CHECK_INT(td_ns_cache_path(out, sizeof(out), "/c", "01/../.."), -EINVAL);
	CHECK_INT(td_ns_object_key(out, sizeof(out), "x", false), -EINVAL);

	/* a buffer too small is an error, not a truncated path */
	CHECK_INT(td_ns_link_path(out, 20, "/var/lib/tierd", ID, "f", 1), -ENAMETOOLONG);
	CHECK_INT(td_ns_cache_path(out, 10, "/c", ID), -ENAMETOOLONG);
	CHECK_INT(td_ns_object_key(out, 36, ID, false), 0);
	CHECK_INT(td_ns_object_key(out, 35, ID, false), -ENAMETOOLONG);
	CHECK_INT(td_ns_object_key(out, 36, ID, true), -ENAMETOOLONG);
}

/* A link on disk: links/<aa>/<id>/<name>, the shared directories 0711, the
 * file's own 0700 until folded; read back, parsed as a sighting, removed. */
static void test_layout_on_disk(void)
{
	char out[1024], id[33];
	struct stat st;

	setup("ns_layout");
	umask(022);
	CHECK_INT(td_ns_bind(state, ID, "f.txt", 5, dest_a), 0);
	CHECK_INT(td_ns_link_path(out, sizeof(out), state, ID, "f.txt", 5), 0);
	CHECK_INT(lstat(out, &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	{
		char buf[PATH_MAX];
		ssize_t n = readlink(out, buf, sizeof(buf) - 1);
		CHECK(n > 0);
		buf[n > 0 ? n : 0] = '\0';
		CHECK_STR(buf, dest_a);
		CHECK_INT(td_ns_read(state, ID, "f.txt", 5, buf, sizeof(buf)), strlen(dest_a));
		CHECK_STR(buf, dest_a);
		CHECK_INT(td_ns_read(state, ID, "f.txt", 5, buf, 4), 3); /* cut, NUL-terminated */
		CHECK_INT(strlen(buf), 3);
		CHECK_INT(td_ns_read(state, ID, "other", 5, buf, sizeof(buf)), -ENOENT);
		CHECK_INT(td_ns_read(state, ID2, "f.txt", 5, buf, sizeof(buf)), -ENOENT);
	}
	for (int i = 0; i < 3; i++) {
		char d[700];
		const char *lvl[] = { "links", "links/01", "links/01/" ID };
		snprintf(d, sizeof(d), "%s/%s", state, lvl[i]);
		CHECK_INT(lstat(d, &st), 0);
		CHECK(S_ISDIR(st.st_mode));
		CHECK_INT(st.st_mode & 07777, i < 2 ? TD_NS_DIR_MODE : TD_NS_ID_DIR_MODE);
	}
	CHECK_INT(id_dir_entries(ID), 1);
	/* the scanner's test of a sighting */
	CHECK(td_ns_parse_link(state, out, strlen(out), id));
	CHECK_STR(id, ID);
	CHECK(!td_ns_parse_link("/elsewhere", out, strlen(out), id));
	CHECK(!td_ns_parse_link(state, out, strlen(out) - 6, id)); /* no name */
	{
		char bad[1024];
		snprintf(bad, sizeof(bad), "%s/links/02/" ID "/f",
		         state); /* <aa> is not the id's */
		CHECK(!td_ns_parse_link(state, bad, strlen(bad), id));
		snprintf(bad, sizeof(bad), "%s/links/01/" ID "/..", state);
		CHECK(!td_ns_parse_link(state, bad, strlen(bad), id));
		snprintf(bad, sizeof(bad), "%s/links/01/" ID "/a/b", state);
		CHECK(!td_ns_parse_link(state, bad, strlen(bad), id));
	}
	/* only absolute destinations */
	CHECK_INT(td_ns_bind(state, ID, "f.txt", 5, "A"), -EINVAL);
	CHECK_INT(td_ns_bind(state, ID, "f.txt", 5, NULL), -EINVAL);
	CHECK_INT(td_ns_bind(state, "bad", "f.txt", 5, dest_a), -EINVAL);

	/* remove takes the id's directory and everything in it; missing is fine */
	{
		char stray[800];
		snprintf(stray, sizeof(stray), "%s/links/01/" ID "/\x01.tierd-bind-0", state);
		CHECK_INT(symlink(dest_b, stray), 0);
	}
	CHECK_INT(td_ns_remove(state, ID), 0);
	CHECK_INT(id_dir_entries(ID), -1);
	CHECK_INT(td_ns_remove(state, ID), 0);
	CHECK_INT(td_ns_remove(state, "nope"), -EINVAL);
	CHECK_INT(lstat(dest_a, &st), 0); /* the destination is never touched */
	CHECK_INT(lstat(dest_b, &st), 0);
}

static void test_mkdirs(void)
{
	char d[700];
	struct stat st;

	setup("ns_mkdirs");
	umask(022);
	snprintf(d, sizeof(d), "%s/x/y/z", state);
	CHECK_INT(td_ns_mkdirs(d, 0711), 0);
	CHECK_INT(stat(d, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0711);
	/* existing ones are left as they are */
	snprintf(d, sizeof(d), "%s/x", state);
	CHECK_INT(chmod(d, 0755), 0);
	snprintf(d, sizeof(d), "%s/x/y/z/w", state);
	CHECK_INT(td_ns_mkdirs(d, 0711), 0);
	snprintf(d, sizeof(d), "%s/x", state);
	CHECK_INT(stat(d, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0755);
	CHECK_INT(td_ns_mkdirs("", 0711), -ENAMETOOLONG);
}

/* Binds `name` (len bytes), then checks the link, its read-back and that the
 * id's directory holds nothing else. */
static void bind_and_check(const char *name, size_t len)
{
	char path[1024], buf[PATH_MAX], id[33];
	struct stat st;
	ssize_t n;

	CHECK_INT(td_ns_bind(state, ID, name, len, dest_a), 0);
	CHECK_INT(td_ns_bind(state, ID, name, len, dest_b), 0);
	CHECK_INT(td_ns_link_path(path, sizeof(path), state, ID, name, len), 0);
	CHECK_INT(lstat(path, &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	n = readlink(path, buf, sizeof(buf) - 1);
	CHECK(n == (ssize_t)strlen(dest_b) && memcmp(buf, dest_b, (size_t)n) == 0);
	CHECK_INT(td_ns_read(state, ID, name, len, buf, sizeof(buf)), strlen(dest_b));
	CHECK_STR(buf, dest_b);
	CHECK_INT(id_dir_entries(ID), 1);
	CHECK(td_ns_parse_link(state, path, strlen(path), id));
	CHECK_STR(id, ID);
	CHECK_INT(td_ns_remove(state, ID), 0);
	CHECK_INT(id_dir_entries(ID), -1);
}

static void test_hostile_names(void)
{
	static const char *const good[] = {
		"line\nbreak",
		"\n",
		"-rf",
		"--",
		"-",
		"\xff\xfe\x80",
		"caf\xc3",
		"...",
		"..a",
		". ",
		" ..",
		".hidden",
		" ",
		"\t",
		"*",
		"$(reboot)",
		"\x01.tierd-bind-0000000000000000",
		"a\\b",
		"%s%n",
	};
	static const char *const bad[] = { "", ".", "..", "a/b", "/", "../x", "x/" };
	char longest[NAME_MAX + 2], out[1024];
	struct stat st;

	setup("ns_hostile");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(td_ns_valid_name(good[i], strlen(good[i])));
		bind_and_check(good[i], strlen(good[i]));
	}
	memset(longest, 'n', sizeof(longest));
	CHECK(td_ns_valid_name(longest, NAME_MAX));
	bind_and_check(longest, NAME_MAX);
	CHECK(!td_ns_valid_name(longest, NAME_MAX + 1));
	CHECK_INT(td_ns_bind(state, ID, longest, NAME_MAX + 1, dest_a), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t l = strlen(bad[i]);
		CHECK(!td_ns_valid_name(bad[i], l));
		CHECK_INT(td_ns_bind(state, ID, bad[i], l, dest_a), -EINVAL);
		CHECK_INT(td_ns_link_path(out, sizeof(out), state, ID, bad[i], l), -EINVAL);
		CHECK_INT(td_ns_remote_path(out, sizeof(out), "/r", ID, bad[i], l), -EINVAL);
		CHECK_INT(td_ns_read(state, ID, bad[i], l, out, sizeof(out)), -EINVAL);
	}
	/* a NUL inside the name */
	CHECK(!td_ns_valid_name("a\0b", 3));
	CHECK_INT(td_ns_bind(state, ID, "a\0b", 3, dest_a), -EINVAL);
	/* nothing was made for the refused names */
	CHECK_INT(id_dir_entries(ID), -1);
	/* the destinations are untouched */
	CHECK_INT(stat(dest_a, &st), 0);
	CHECK_INT(st.st_size, 1);
	CHECK_INT(stat(dest_b, &st), 0);
	CHECK_INT(st.st_size, 1);
}

/* ---- a rebind racing readers: the link always exists, old or new ---- */

struct race {
	char path[1024];
	atomic_bool stop;
	atomic_ulong reads; /* the main thread waits on it */
	unsigned long saw_a, saw_b, missing, wrong;
};

static void *reader(void *arg)
{
	struct race *rc = arg;
	char buf[PATH_MAX];

	while (!atomic_load(&rc->stop)) {
		ssize_t n = readlink(rc->path, buf, sizeof(buf) - 1);
		int r = td_ns_read(state, ID, "data", 4, buf + PATH_MAX / 2, PATH_MAX / 2);
		int fd = open(rc->path, O_RDONLY | O_CLOEXEC);
		char c = 0;

		if (n < 0 || r < 0 || fd < 0) {
			rc->missing++;
		} else {
			buf[n] = '\0';
			if (strcmp(buf, dest_a) && strcmp(buf, dest_b))
				rc->wrong++;
			if (strcmp(buf + PATH_MAX / 2, dest_a) &&
			    strcmp(buf + PATH_MAX / 2, dest_b))
				rc->wrong++;
			if (read(fd, &c, 1) != 1 || (c != 'A' && c != 'B'))
				rc->wrong++;
			rc->saw_a += c == 'A';
			rc->saw_b += c == 'B';
		}
		if (fd >= 0)
			close(fd);
		rc->reads++;
	}
	return NULL;
}

static void test_rebind_race(void)
{
	struct race rc = { 0 };
	pthread_t tid;
	int fails = 0;

	setup("ns_race");
	CHECK_INT(td_ns_bind(state, ID, "data", 4, dest_a), 0);
	CHECK_INT(td_ns_link_path(rc.path, sizeof(rc.path), state, ID, "data", 4), 0);
	REQUIRE(pthread_create(&tid, NULL, reader, &rc) == 0);
	for (int i = 0; i < 5000; i++)
		fails += td_ns_bind(state, ID, "data", 4, i % 2 ? dest_a : dest_b) != 0;
	/* let the reader see both a few times even on a slow machine */
	while (atomic_load(&rc.reads) < 1000)
		sched_yield();
	atomic_store(&rc.stop, true);
	pthread_join(tid, NULL);
	printf("race: %lu reads (%lu A, %lu B)\n", (unsigned long)atomic_load(&rc.reads), rc.saw_a,
	       rc.saw_b);
	CHECK_INT(fails, 0);
	CHECK_INT(rc.missing, 0);
	CHECK_INT(rc.wrong, 0);
	CHECK(atomic_load(&rc.reads) >= 1000);
	/* every rebind renamed its temporary over the link: nothing is left */
	CHECK_INT(id_dir_entries(ID), 1);
	CHECK_INT(td_ns_remove(state, ID), 0);
}

/* The fold directory path carries, as "uid:gid:mode" (octal), then its
 * real owner: "root" (the owner named in its ACL) or "owner" (no ACLs). */
static const char *own(const char *path)
{
	static char buf[96];
	struct td_access_fold a;
	struct stat st;

	if (stat(path, &st) < 0 || td_ns_fold_of(path, &a) < 0)
		return "missing";
	snprintf(buf, sizeof(buf), "%u:%u:%o %s", (unsigned)a.uid, (unsigned)a.gid,
	         (unsigned)a.mode, st.st_uid == 0 ? "root" : "owner");
	return buf;
}

/* The fold goes to links/<aa>/<id>/ and to copies/<aa>/<id>/ (when there);
 * a copy's directory made later takes the links directory's; refold never
 * creates a links directory (the file went home); bad folds are refused. */
static void test_fold(void)
{
	struct td_access_fold a = { 1234, 1235, 0110 }, b = { 1234, 1234, 0100 };
	char cache[600], ld[800], cd[800], cp[900];

	setup("ns_fold");
	snprintf(cache, sizeof(cache), "%s/../cache", state);
	mkdir(cache, 0711);
	snprintf(ld, sizeof(ld), "%s/links/01/" ID, state);
	CHECK_INT(td_ns_cache_dir(cd, sizeof(cd), cache, ID), 0);
	CHECK_INT(td_ns_cache_path(cp, sizeof(cp), cache, ID), 0);
	CHECK_INT(td_ns_cache_mkdir(state, cache, ID2), 0); /* no links dir: root only */
	{
		char d2[800];

		CHECK_INT(td_ns_cache_dir(d2, sizeof(d2), cache, ID2), 0);
		CHECK_STR(own(d2), "0:0:0 root");
	}
	CHECK_INT(td_ns_fold(state, cache, ID, &a), 0);
	CHECK_STR(own(ld), "1234:1235:110 root");
	CHECK_STR(own(cd), "missing");
	CHECK_INT(td_ns_cache_mkdir(state, cache, ID), 0);
	CHECK_STR(own(cd), "1234:1235:110 root");
	{
		char p[800];

		snprintf(p, sizeof(p), "%s/copies/01", cache);
		CHECK_STR(own(p), "0:0:111 root");
	}
	CHECK_INT(td_ns_bind(state, ID, "f", 1, cp), 0); /* into a folded directory */
	CHECK_STR(own(ld), "1234:1235:110 root");
	CHECK_INT(td_ns_refold(state, cache, ID, &b), 0);
	CHECK_STR(own(ld), "1234:1234:100 root");
	CHECK_STR(own(cd), "1234:1234:100 root");
	{
		struct stat st;

		CHECK_INT(stat(ld, &st), 0); /* root's, so its owner cannot chmod it */
		CHECK_INT(st.st_uid, 0);
		CHECK_INT(st.st_gid, 1234);
	}
	b.mode = 0700;
	CHECK_INT(td_ns_fold(state, cache, ID, &b), -EINVAL); /* search bits only */
	CHECK_INT(td_ns_fold(state, cache, "nope", &a), -EINVAL);
	/* root's own file: no ACL, the mode */
	b = (struct td_access_fold){ 0, 1235, 0011 };
	CHECK_INT(td_ns_refold(state, cache, ID, &b), 0);
	CHECK_STR(own(ld), "0:1235:11 root");
	{
		struct stat st;

		CHECK_INT(stat(ld, &st), 0);
		CHECK_INT(st.st_mode & 07777, 0011);
		CHECK(getxattr(ld, "system.posix_acl_access", NULL, 0) < 0);
	}
	CHECK_INT(td_ns_remove(state, ID), 0);
	CHECK_INT(td_ns_refold(state, cache, ID, &a), 0);
	CHECK_STR(own(ld), "missing");
}

int main(void)
{
	TD_RUN(test_layout_paths);
	TD_RUN(test_layout_on_disk);
	TD_RUN(test_mkdirs);
	TD_RUN(test_hostile_names);
	TD_RUN(test_rebind_race);
	TD_RUN(test_fold);
	return td_test_done();
}
