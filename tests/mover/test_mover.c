/*
 * The mover against a real dir target on real files: round trips, writers
 * racing each step, and a crash (SIGKILL) after every step followed by
 * recovery. After every scenario: the file is either exactly as it was or a
 * link that reads back the same bytes, and nothing is left behind.
 */
#include "catalog.h"
#include "config.h"
#include "hash.h"
#include "mover.h"
#include "ns.h"
#include "target.h"
#include "testlib.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct td_test_tree tree;
#define T     tree.top
#define ROOT  tree.root
#define STATE tree.state
#define CACHE tree.cache
#define RUN   tree.run
#define TIER  tree.tier
#define CATDB tree.catdb
static uv_loop_t loop;
static struct td_target *target;
static struct td_mover *mover;
static const char *crash_at; /* step name at which the hook kills the process */
static void (*hook_fn)(const char *step, const char *id);
static bool cache_on_tmpfs; /* setup() mounts a tmpfs at CACHE: another filesystem */

static struct td_target *target_for(void *ctx, const char *name)
{
	return strcmp(name, "nas") == 0 ? target : NULL;
}

static void step_hook(void *ctx, const char *id, const char *step)
{
	if (crash_at && strcmp(crash_at, step) == 0)
		raise(SIGKILL);
	if (hook_fn)
		hook_fn(step, id);
}

static void setup(const char *tag)
{
	struct td_mover_opts mo = { 0 };

	td_test_tree_make(&tree, tag);
	if (cache_on_tmpfs && mount("tmpfs", CACHE, "tmpfs", 0, "mode=0711,size=64m") < 0) {
		/* The cross-filesystem paths are what these cases test: no skipping. */
		printf("cannot mount a tmpfs at %s: %s\n", CACHE, strerror(errno));
		exit(1);
	}
	mo.target_for = target_for;
	mo.step_hook = step_hook;
	td_test_mover_open(&tree, &loop, &mo, &target, &mover);
}

static void teardown(bool keep_tree)
{
	td_test_mover_close(&loop, target, mover);
	if (cache_on_tmpfs)
		umount2(CACHE, MNT_DETACH);
	if (!keep_tree)
		td_test_rmtree(T);
}

static void make_file(const char *rel, size_t size, unsigned seed, mode_t mode)
{
	char path[8192];
	char *buf = malloc(size + 1);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
	for (size_t i = 0; i < size; i++)
		buf[i] = (char)((i * 131 + seed * 7) >> 3);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || td_write_full(fd, buf, size) < 0) {
		perror(path);
		exit(1);
	}
	if (fchown(fd, 1234, 5678) < 0)
		perror("fchown");
	fchmod(fd, mode);
	{
		struct timespec ts[2] = { { 1000000000, 5 }, { 1100000000, 7 } };
		futimens(fd, ts);
	}
	close(fd);
	free(buf);
}

static void sha_of_path(const char *path, char out[TD_SHA256_HEX])
{
	int fd = open(path, O_RDONLY); /* follows links, as a user's open does */

	out[0] = '\0';
	if (fd >= 0) {
		td_sha256_fd_hex(fd, out);
		close(fd);
	}
}

struct res {
	int n;
	struct td_mover_result last; /* its id and path point into the freed job */
	char msg[512];
	char id[TD_CATALOG_ID_HEX];
};

static void on_done(void *data, const struct td_mover_result *r)
{
	struct res *res = data;

	res->n++;
	res->last = *r;
	snprintf(res->msg, sizeof(res->msg), "%s", r->message);
	snprintf(res->id, sizeof(res->id), "%s", r->id);
}

static struct res migrate(const char *rel, bool keep_cached)
{
	struct td_mover_file f = { .root = ROOT,
		                   .rel = rel,
		                   .rel_len = strlen(rel),
		                   .policy = "p",
		                   .target = "nas",
		                   .keep_cached = keep_cached };
	struct res res = { 0 };
	int r = td_mover_migrate(mover, &f, on_done, &res);

	if (r < 0) {
		printf("migrate %s: %s\n", rel, strerror(-r));
		res.n = -1;
		return res;
	}
	while (res.n == 0)
		uv_run(&loop, UV_RUN_ONCE);
	return res;
}

/* Counts entries under dir, recursively: with a needle those whose name
 * contains it (directories included), without one every non-directory. */
static int count_under(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char p[8192];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (needle ? strstr(de->d_name, needle) != NULL : de->d_type != DT_DIR)
			n++;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			n += count_under(p, needle);
	}
	closedir(d);
	return n;
}

static int count_named(const char *dir, const char *needle)
{
	return count_under(dir, needle);
}

static int count_files(const char *dir)
{
	return count_under(dir, NULL);
}

/* Dynamic links left in the state directory. */
static int count_links(void)
{
	char links[4300];

	snprintf(links, sizeof(links), "%s/links", STATE);
	return count_files(links);
}

static int count_cb(void *u, const struct td_catalog_entry *e)
{
	(*(int *)u)++;
	return 0;
}

static int count_rows(int state)
{
	struct td_catalog *cat = NULL;
	struct td_catalog_error ce;
	struct td_catalog_filter f = { .state = state };
	int n = 0;

	if (td_catalog_open(&cat, CATDB, 0, &ce) < 0)
		return -1;
	td_catalog_foreach(cat, &f, count_cb, &n, &ce);
	td_catalog_close(cat);
	return n;
}

/* ---- scenarios ---------------------------------------------------------- */

static void check_tiered_file(const char *rel, const char *sha, bool cached)
{
	char path[8192], l1[4096], want_prefix[4300];
	struct stat lst, st;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
	REQUIRE(lstat(path, &lst) == 0);
	CHECK(S_ISLNK(lst.st_mode));
	CHECK_INT(lst.st_uid, 1234); /* the link shows the file's owner */
	n = readlink(path, l1, sizeof(l1) - 1);
	REQUIRE(n > 0);
	l1[n] = '\0';
	snprintf(want_prefix, sizeof(want_prefix), "%s/links/", STATE);
	CHECK(strncmp(l1, want_prefix, strlen(want_prefix)) == 0);
	if (cached) {
		char got[TD_SHA256_HEX];

		REQUIRE(stat(path, &st) == 0);
		CHECK_INT(st.st_uid, 1234);
		CHECK_INT(st.st_gid, 5678);
		CHECK_INT(st.st_mode & 07777, 0640);
		CHECK_INT(st.st_mtim.tv_sec, 1100000000);
		sha_of_path(path, got);
		CHECK_STR(got, sha);
	}
}

static void test_round_trip(void)
{
	static const size_t sizes[] = { 0, 1, 4096, (1 << 20) + 3 };
	char rel[64], path[8192], sha[4][TD_SHA256_HEX];

	setup("mover-rt");
	for (int i = 0; i < 4; i++) {
		snprintf(rel, sizeof(rel), "f%d.bin", i);
		make_file(rel, sizes[i], (unsigned)i, 0640);
		snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
		sha_of_path(path, sha[i]);
	}
	mkdir((snprintf(path, sizeof(path), "%s/sub", ROOT), path), 0755);
	make_file("sub/name with\nnewline \xff.iso", 777, 9, 0640);
	for (int i = 0; i < 4; i++) {
		struct res r;

		snprintf(rel, sizeof(rel), "f%d.bin", i);
		r = migrate(rel, true);
		CHECK_INT(r.last.outcome, TD_MOVER_TIERED);
		if (r.last.outcome != TD_MOVER_TIERED)
			printf("  %s: %s\n", rel, r.msg);
		check_tiered_file(rel, sha[i], true);
	}
	{
		struct res r = migrate("sub/name with\nnewline \xff.iso", false);

		CHECK_INT(r.last.outcome, TD_MOVER_TIERED);
		check_tiered_file("sub/name with\nnewline \xff.iso", NULL, false);
	}
	CHECK_INT(count_rows(TD_CATALOG_CACHED), 4);
	CHECK_INT(count_rows(TD_CATALOG_TIERED), 1);
	CHECK_INT(count_rows(TD_CATALOG_MIGRATING), 0);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	CHECK_INT(count_named(TIER, ".json"), 5); /* a manifest per object */
	teardown(false);
}

static void test_busy_writer(void)
{
	char path[8192], sha[TD_SHA256_HEX], after[TD_SHA256_HEX];
	struct stat st;
	struct res r;
	int wfd;

	setup("mover-busy");
	make_file("busy.bin", 10000, 1, 0640);
	snprintf(path, sizeof(path), "%s/busy.bin", ROOT);
	sha_of_path(path, sha);
	wfd = open(path, O_WRONLY);
	REQUIRE(wfd >= 0);
	r = migrate("busy.bin", true);
	CHECK_INT(r.last.outcome, TD_MOVER_SKIPPED);
	CHECK_INT(r.last.status, -EBUSY);
	close(wfd);
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	sha_of_path(path, after);
	CHECK_STR(after, sha);
	CHECK_INT(count_rows(TD_CATALOG_ANY), 0);
	CHECK_INT(count_named(TIER, "json"), 0);
	teardown(false);
}

/* A writer opens the file while the mover holds its lease: wait until the
 * kernel shows the lease breaking, so the race is certain, not likely. */
static pid_t spawn_appender(const char *path)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_APPEND);

		if (fd < 0 || write(fd, "RACE", 4) != 4 || fsync(fd) < 0)
			_exit(1);
		close(fd);
		_exit(0);
	}
	for (int i = 0; i < 500; i++) {
		char buf[8192];
		int fd = open("/proc/locks", O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, "BREAKING") || strstr(buf, "BREAKER"))
				break;
		}
		usleep(10000); /* polling the kernel's lock table, bounded to 5 s */
	}
	return pid;
}

static char race_path[8192];
static pid_t race_pid;
static const char *race_step;

static void race_hook(const char *step, const char *id)
{
	if (race_step && strcmp(step, race_step) == 0 && !race_pid)
		race_pid = spawn_appender(race_path);
}

static void race(const char *step, enum td_mover_outcome want)
{
	char sha_after[TD_SHA256_HEX];
	struct stat st;
	struct res r;
	int status = -1;
	char buf[16] = "";
	int fd;

	setup("mover-race");
	make_file("r.bin", 5000, 3, 0640);
	snprintf(race_path, sizeof(race_path), "%s/r.bin", ROOT);
	race_pid = 0;
	race_step = step;
	hook_fn = race_hook;
	r = migrate("r.bin", true);
	hook_fn = NULL;
	CHECK_INT(r.last.outcome, want);
	REQUIRE(race_pid > 0);
	waitpid(race_pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The writer's bytes are in the file at its original path, a regular file. */
	REQUIRE(lstat(race_path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_INT(st.st_size, 5004);
	fd = open(race_path, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_INT(pread(fd, buf, 4, 5000), 4);
	close(fd);
	CHECK(memcmp(buf, "RACE", 4) == 0);
	sha_of_path(race_path, sha_after);
	CHECK_INT(count_rows(TD_CATALOG_ANY), 0);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	CHECK_INT(count_named(TIER, "json"), 0);
	CHECK_INT(count_files(CACHE), 0);
	CHECK_INT(count_links(), 0);
	teardown(false);
}

static void test_writer_during_upload(void)
{
	race("opened", TD_MOVER_SKIPPED);
}

static void test_writer_just_before_swap(void)
{
	race("linked", TD_MOVER_SKIPPED);
}

static void test_writer_during_grace(void)
{
	race("swapped", TD_MOVER_RESTORED);
}

/* ---- crash matrix --------------------------------------------------------- */

static void rec_done(void *data, int status, unsigned fin, unsigned rb, unsigned left)
{
	unsigned *out = data;

	out[0] = 1;
	out[1] = fin;
	out[2] = rb;
	out[3] = left;
	out[4] = (unsigned)-status;
}

/* Migrates rel in a child process that the step hook kills after `step`,
 * and checks that it died so. */
static void migrate_killed_at(const char *step, const char *rel, bool keep_cached)
{
	pid_t pid;
	int status = -1;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		crash_at = step;
		migrate(rel, keep_cached);
		_exit(3); /* the hook should have killed us */
	}
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* "Restart": recovery in this process, whose mover never ran a step. */
static void recover_all(unsigned rec[5])
{
	const char *roots[] = { ROOT };

	memset(rec, 0, 5 * sizeof(unsigned));
	REQUIRE(td_mover_recover(mover, roots, 1, rec_done, rec) == 0);
	while (!rec[0])
		uv_run(&loop, UV_RUN_ONCE);
}

static void crash_at_step(const char *step, bool keep_cached)
{
	char path[8192], sha[TD_SHA256_HEX], got[TD_SHA256_HEX];
	unsigned rec[5] = { 0 };
	struct stat st;

	setup("mover-crash");
	make_file("c.bin", 300000, 5, 0640);
	snprintf(path, sizeof(path), "%s/c.bin", ROOT);
	sha_of_path(path, sha);
	migrate_killed_at(step, "c.bin", keep_cached);
	recover_all(rec);
	CHECK_INT(rec[4], 0);
	CHECK_INT(rec[3], 0); /* nothing left for the admin */
	REQUIRE(lstat(path, &st) == 0);
	if (S_ISLNK(st.st_mode)) {
		CHECK_INT(rec[1] + (strcmp(step, "tiered") == 0), 1);
		CHECK_INT(count_rows(keep_cached ? TD_CATALOG_CACHED : TD_CATALOG_TIERED), 1);
		if (keep_cached) {
			sha_of_path(path, got);
			CHECK_STR(got, sha);
		}
		CHECK_INT(count_named(TIER, "json"), 1);
	} else {
		CHECK(S_ISREG(st.st_mode));
		sha_of_path(path, got);
		CHECK_STR(got, sha);
		CHECK_INT(st.st_nlink, 1);
		CHECK_INT(count_rows(TD_CATALOG_ANY), 0);
		CHECK_INT(count_named(TIER, "json"), 0);
		CHECK_INT(count_files(CACHE), 0);
		CHECK_INT(count_links(), 0);
	}
	CHECK_INT(count_rows(TD_CATALOG_MIGRATING), 0);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	CHECK_INT(count_named(TIER, ".tierd-tmp"), 0);
	if (td_test_failures)
		printf("  (crash after step '%s', keep_cached=%d)\n", step, keep_cached);
	teardown(false);
}

static void test_crash_matrix(void)
{
	static const char *steps[] = { "opened",   "uploaded",  "linked",  "tmp_link",
		                       "swapping", "exchanged", "swapped", "tiered" };

	for (size_t i = 0; i < TD_ARRAY_SIZE(steps); i++) {
		crash_at_step(steps[i], true);
		crash_at_step(steps[i], false);
	}
}

/* A file outside the policy root, where a planted symlink points: its
 * directory goes to outside, its path to f, its hash to sha. */
static void make_outside_secret(char outside[4300], char f[8400], char sha[TD_SHA256_HEX])
{
	snprintf(outside, 4300, "%s/outside", T);
	mkdir(outside, 0755);
	snprintf(f, 8400, "%s/secret", outside);
	{
		int fd = open(f, O_WRONLY | O_CREAT, 0600);
		CHECK(write(fd, "secret data", 11) == 11);
		close(fd);
	}
	sha_of_path(f, sha);
}

/* The outside file is still a regular file with its bytes, and no row was made. */
static void check_outside_untouched(const char *f, const char *sha)
{
	char got[TD_SHA256_HEX];
	struct stat st;

	REQUIRE(lstat(f, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	sha_of_path(f, got);
	CHECK_STR(got, sha);
	CHECK_INT(count_rows(TD_CATALOG_ANY), 0);
}

static void test_symlinked_directory(void)
{
	char outside[4300], link[8192], f[8400], sha[TD_SHA256_HEX];
	struct res r;

	setup("mover-symdir");
	make_outside_secret(outside, f, sha);
	snprintf(link, sizeof(link), "%s/dir", ROOT);
	REQUIRE(symlink(outside, link) == 0);
	r = migrate("dir/secret", true);
	CHECK_INT(r.last.outcome, TD_MOVER_SKIPPED);
	CHECK_INT(r.last.status, -ELOOP);
	check_outside_untouched(f, sha);
	teardown(false);
}

/* A symlink, or a file, at a component below the first: the walk beneath the
 * root refuses it there too, and nothing outside is touched. */
static void test_symlink_below(void)
{
	char outside[4300], f[8400], p[8400], sha[TD_SHA256_HEX];
	struct res r;

	setup("mover-symbelow");
	make_outside_secret(outside, f, sha);
	mkdir((snprintf(p, sizeof(p), "%s/a", ROOT), p), 0755);
	mkdir((snprintf(p, sizeof(p), "%s/a/b", ROOT), p), 0755);
	REQUIRE(symlink(outside, (snprintf(p, sizeof(p), "%s/a/b/link", ROOT), p)) == 0);
	make_file("a/plain", 10, 1, 0640);
	r = migrate("a/b/link/secret", true);
	CHECK_INT(r.last.outcome, TD_MOVER_SKIPPED);
	CHECK_INT(r.last.status, -ELOOP);
	r = migrate("a/plain/secret", true);
	CHECK_INT(r.last.outcome, TD_MOVER_SKIPPED);
	CHECK_INT(r.last.status, -ENOTDIR);
	check_outside_untouched(f, sha);
	teardown(false);
}

/* ---- recall ---------------------------------------------------------------- */

static const char *recall_roots[1];

static struct res recall(const char *id)
{
	struct res res = { 0 };
	int r;

	recall_roots[0] = ROOT;
	r = td_mover_recall(mover, id, recall_roots, 1, on_done, &res);
	if (r < 0) {
		printf("recall %s: %s\n", id, strerror(-r));
		res.n = -1;
		res.last.status = r;
		return res;
	}
	while (res.n == 0)
		uv_run(&loop, UV_RUN_ONCE);
	return res;
}

/* Checks that rel (followed, as a user's open does) holds `size` bytes
 * ending in "RACE" at `off`. */
static void check_race_bytes(const char *rel, off_t size, off_t off)
{
	char path[8192], buf[8] = "";
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
	REQUIRE(stat(path, &st) == 0);
	CHECK_INT(st.st_size, size);
	fd = open(path, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_INT(pread(fd, buf, 4, off), 4);
	close(fd);
	CHECK(memcmp(buf, "RACE", 4) == 0);
}

/*
 * Issue 12 item 1: with the cache on another filesystem, a writer whose open
 * of the link starts after the copy is placed (it blocks on the copy's read
 * lease) must not complete on a copy the recall then throws away. The writer
 * is started at the "recall_placed" step and known to be waiting on the lease
 * before the recall goes on.
 */
static void test_recall_races_writer_across_fs(void)
{
	char id[TD_CATALOG_ID_HEX];
	struct stat st;
	struct res r;
	int status = -1;

	cache_on_tmpfs = true;
	setup("mover-recall-race");
	make_file("r.bin", 5000, 3, 0640);
	r = migrate("r.bin", true);
	REQUIRE(r.last.outcome == TD_MOVER_TIERED);
	snprintf(id, sizeof(id), "%s", r.id);
	snprintf(race_path, sizeof(race_path), "%s/r.bin", ROOT);
	race_pid = 0;
	race_step = "recall_placed";
	hook_fn = race_hook;
	r = recall(id);
	hook_fn = NULL;
	REQUIRE(race_pid > 0);
	waitpid(race_pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The write is never lost: either the recall gave way to the writer
	 * (the link still leads to the written copy) or it carried the bytes. */
	printf("  first recall: %s\n", r.msg);
	if (r.last.outcome != TD_MOVER_TIERED) {
		CHECK_INT(r.last.status, -EBUSY);
		REQUIRE(lstat(race_path, &st) == 0);
		CHECK(S_ISLNK(st.st_mode));
		check_race_bytes("r.bin", 5004, 5000);
		CHECK_INT(count_rows(TD_CATALOG_DIRTY), 1);
		CHECK_INT(count_named(ROOT, ".tierd-"), 0);
		r = recall(id); /* no writer now */
	}
	CHECK_INT(r.last.outcome, TD_MOVER_TIERED);
	if (r.last.outcome != TD_MOVER_TIERED)
		printf("  recall: %s\n", r.msg);
	REQUIRE(lstat(race_path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	check_race_bytes("r.bin", 5004, 5000);
	CHECK_INT(count_rows(TD_CATALOG_LOCAL), 1);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	CHECK_INT(count_files(CACHE), 0);
	teardown(false);
	cache_on_tmpfs = false;
}

/* Is pid's lease in /proc/locks still a write lease, or one being broken
 * (not yet downgraded by the kernel at the end of the lease-break time)? */
static bool lease_not_revoked(pid_t pid)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/locks", "r");
	bool ok = false;

	snprintf(want, sizeof(want), " %d ", (int)pid);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "LEASE") && strstr(line, want) &&
		    (strstr(line, "BREAKING") || strstr(line, "WRITE")))
			ok = true;
	if (f)
		fclose(f);
	return ok;
}

/*
 * Issue 12 item 4: the owner of a cache copy holds a write lease on it. The
 * recall must answer at once with a clear error, not wait out the kernel's
 * lease-break time: the child still holds its lease when the answer comes.
 * Once the lease is gone the recall goes through.
 */
static void test_recall_lease_holder(void)
{
	char id[TD_CATALOG_ID_HEX], copy[4400], path[8192], sha[TD_SHA256_HEX], got[TD_SHA256_HEX],
	    c;
	int to_child[2], from_child[2], status = -1, held = -1;
	struct stat st;
	struct res r;
	pid_t pid;

	setup("mover-recall-lease");
	make_file("l.bin", 7000, 4, 0640);
	snprintf(path, sizeof(path), "%s/l.bin", ROOT);
	sha_of_path(path, sha);
	r = migrate("l.bin", true);
	REQUIRE(r.last.outcome == TD_MOVER_TIERED);
	snprintf(id, sizeof(id), "%s", r.id);
	REQUIRE(td_ns_cache_path(copy, sizeof(copy), CACHE, id) == 0);
	REQUIRE(pipe(to_child) == 0 && pipe(from_child) == 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(copy, O_RDWR), lease;

		signal(SIGIO, SIG_IGN); /* the break notice; we keep the lease */
		c = fd >= 0 && fcntl(fd, F_SETLEASE, F_WRLCK) == 0 ? 'L' : 'x';
		if (write(from_child[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(1);
		lease = fcntl(fd, F_GETLEASE);
		if (write(from_child[1], &lease, sizeof(lease)) != sizeof(lease) ||
		    read(to_child[0], &c, 1) != 1)
			_exit(1);
		fcntl(fd, F_SETLEASE, F_UNLCK);
		close(fd);
		_exit(0);
	}
	REQUIRE(read(from_child[0], &c, 1) == 1);
	CHECK(c == 'L');
	r = recall(id);
	/* The answer came while the child still holds its lease. */
	CHECK(write(to_child[1], "?", 1) == 1);
	CHECK(read(from_child[0], &held, sizeof(held)) == sizeof(held));
	CHECK(held == F_WRLCK || held == F_RDLCK);
	/* ... and the kernel has not taken it away (lease-break time). */
	CHECK(lease_not_revoked(pid));
	CHECK(r.last.outcome != TD_MOVER_TIERED);
	CHECK_INT(r.last.status, -EAGAIN);
	CHECK_CONTAINS(r.msg, "lease");
	CHECK(write(to_child[1], "!", 1) == 1);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISLNK(st.st_mode));
	r = recall(id);
	CHECK_INT(r.last.outcome, TD_MOVER_TIERED);
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	sha_of_path(path, got);
	CHECK_STR(got, sha);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
	teardown(false);
}

/*
 * Issue 12 item 6: a crash right after the exchange, before step 5 is
 * durable; while tierd is down the user moves the link away. Recovery must
 * not leave the original bytes under ".tierd-<id>" with nothing pointing at
 * them.
 */
static void crash_exchanged_link_moved(bool keep_cached)
{
	char path[8192], moved[8192], sha[TD_SHA256_HEX], got[TD_SHA256_HEX], mgot[TD_SHA256_HEX];
	unsigned rec[5] = { 0 };
	struct stat st;

	setup("mover-crash-moved");
	make_file("c.bin", 300000, 5, 0640);
	snprintf(path, sizeof(path), "%s/c.bin", ROOT);
	snprintf(moved, sizeof(moved), "%s/moved.bin", ROOT);
	sha_of_path(path, sha);
	migrate_killed_at("exchanged", "c.bin", keep_cached);
	REQUIRE(lstat(path, &st) == 0);
	REQUIRE(S_ISLNK(st.st_mode)); /* the exchange happened */
	REQUIRE(rename(path, moved) == 0);
	recover_all(rec);
	CHECK_INT(rec[4], 0);
	/* The bytes are at the original path, or the moved link still reads them. */
	got[0] = mgot[0] = '\0';
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
		sha_of_path(path, got);
	if (!got[0])
		sha_of_path(moved, mgot);
	CHECK(strcmp(got, sha) == 0 || strcmp(mgot, sha) == 0);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	CHECK_INT(count_rows(TD_CATALOG_MIGRATING), 0);
	if (td_test_failures)
		printf("  (keep_cached=%d)\n", keep_cached);
	teardown(false);
}

static void test_crash_exchanged_link_moved(void)
{
	crash_exchanged_link_moved(true);
	crash_exchanged_link_moved(false);
}

/*
 * Issue 11 item 4: the mover sets the temporary link's owner and times; an
 * entry swapped in under ".tierd-<id>" (a hard link or a symlink to a
 * root-owned file) must never get them. The "tmp_link" step hook swaps one
 * in exactly after the link is made, for a third of the files each; a thread
 * meanwhile swaps every ".tierd-*" symlink it sees (inotify) for a hard link
 * to the same file.
 */
#define SWAP_FILES 60
static char victim[4400];
static atomic_int swap_count;
static atomic_bool racer_stop;

/* Puts a hard link (or a symlink) to the victim at ROOT/name, atomically;
 * with only_link, only while name is still the mover's new link (root's). */
static void swap_in_victim(const char *name, bool hard, bool only_link)
{
	char tmp[4400], dst[4400];
	static atomic_int n;
	struct stat st;

	snprintf(tmp, sizeof(tmp), "%s/.swap-%d", T, atomic_fetch_add(&n, 1));
	snprintf(dst, sizeof(dst), "%s/%s", ROOT, name);
	if ((hard ? link(victim, tmp) : symlink(victim, tmp)) == 0 &&
	    (!only_link || (lstat(dst, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid == 0)) &&
	    rename(tmp, dst) == 0)
		atomic_fetch_add(&swap_count, 1);
	unlink(tmp);
}

static void swap_hook(const char *step, const char *id)
{
	char name[64];

	if (strcmp(step, "tmp_link") != 0 || id[0] % 3 == 0)
		return;
	snprintf(name, sizeof(name), ".tierd-%s", id);
	swap_in_victim(name, id[0] % 3 == 1, false);
}

static void *racer(void *arg)
{
	char buf[4096] __attribute__((aligned(8)));
	int in = inotify_init1(IN_NONBLOCK);

	/* Only new names: the link just made. Once the exchange has put the
	 * file itself under ".tierd-<id>", replacing that name would be the
	 * directory's owner deleting their own file, which they may. */
	if (in < 0 || inotify_add_watch(in, ROOT, IN_CREATE) < 0)
		return NULL;
	while (!atomic_load(&racer_stop)) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n <= 0) {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
			continue;
		}
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && strncmp(ev->name, ".tierd-", 7) == 0)
				swap_in_victim(ev->name, true, true);
			p += sizeof(*ev) + ev->len;
		}
	}
	close(in);
	return NULL;
}

static void test_tmp_name_swapped(void)
{
	struct timespec vts[2] = { { 1200000000, 11 }, { 1300000000, 13 } };
	char rel[64], path[8192], sha[SWAP_FILES][TD_SHA256_HEX], got[TD_SHA256_HEX];
	struct res res[SWAP_FILES];
	struct stat st;
	pthread_t th;
	int fd, tiered = 0, done = 0;

	setup("mover-swapname");
	snprintf(victim, sizeof(victim), "%s/victim", T);
	fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	CHECK(write(fd, "root's", 6) == 6);
	CHECK(fchown(fd, 0, 0) == 0);
	CHECK(futimens(fd, vts) == 0);
	close(fd);
	for (int i = 0; i < SWAP_FILES; i++) {
		snprintf(rel, sizeof(rel), "s%d.bin", i);
		make_file(rel, 3000 + (size_t)i, (unsigned)i, 0640);
		snprintf(path, sizeof(path), "%s/%s", ROOT, rel);
		sha_of_path(path, sha[i]);
	}
	atomic_store(&racer_stop, false);
	atomic_store(&swap_count, 0);
	REQUIRE(pthread_create(&th, NULL, racer, NULL) == 0);
	hook_fn = swap_hook;
	memset(res, 0, sizeof(res));
	for (int i = 0; i < SWAP_FILES; i++) {
		struct td_mover_file f = {
			.root = ROOT, .policy = "p", .target = "nas", .keep_cached = i % 2 == 0
		};

		snprintf(rel, sizeof(rel), "s%d.bin", i);
		f.rel = rel;
		f.rel_len = strlen(rel);
		CHECK(td_mover_migrate(mover, &f, on_done, &res[i]) == 0);
	}
	while (done < SWAP_FILES) {
		uv_run(&loop, UV_RUN_ONCE);
		done = 0;
		for (int i = 0; i < SWAP_FILES; i++)
			done += res[i].n;
	}
	hook_fn = NULL;
	atomic_store(&racer_stop, true);
	pthread_join(th, NULL);
	CHECK(atomic_load(&swap_count) > 0);
	/* The root-owned file kept its owner, mode and times. */
	REQUIRE(stat(victim, &st) == 0);
	CHECK_INT(st.st_uid, 0);
	CHECK_INT(st.st_gid, 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(st.st_mtim.tv_sec, 1300000000);
	CHECK_INT(st.st_mtim.tv_nsec, 13);
	CHECK_INT(st.st_atim.tv_sec, 1200000000);
	/* Every file reads back its bytes, tiered or not. */
	for (int i = 0; i < SWAP_FILES; i++) {
		snprintf(path, sizeof(path), "%s/s%d.bin", ROOT, i);
		REQUIRE(lstat(path, &st) == 0);
		/* -EEXIST: the racer replaced the file itself under ".tierd-<id>"
		 * after the exchange (its owner may delete it); the link stays. */
		if (res[i].last.outcome == TD_MOVER_TIERED || res[i].last.status == -EEXIST) {
			tiered += res[i].last.outcome == TD_MOVER_TIERED;
			CHECK(S_ISLNK(st.st_mode));
			CHECK_INT(st.st_uid, 1234);
			if (i % 2 == 0) {
				sha_of_path(path, got);
				CHECK_STR(got, sha[i]);
			}
		} else {
			CHECK(S_ISREG(st.st_mode));
			sha_of_path(path, got);
			CHECK_STR(got, sha[i]);
			if (strcmp(got, sha[i]) != 0)
				printf("  s%d.bin: %s\n", i, res[i].msg);
		}
	}
	printf("  %d of %d tiered, %d names swapped\n", tiered, SWAP_FILES,
	       atomic_load(&swap_count));
	teardown(false);
}

/*
 * A copied-across recall killed after each of its steps, and the user
 * appending through the link while tierd is down: recovery never throws the
 * append away, and the file can be recalled afterwards.
 */
static void recall_crash_then_write(const char *step)
{
	char id[TD_CATALOG_ID_HEX], path[8192];
	unsigned rec[5] = { 0 };
	struct stat st;
	struct res r;
	pid_t pid;
	int status = -1, fd;

	cache_on_tmpfs = true;
	setup("mover-recall-crash");
	make_file("w.bin", 5000, 6, 0640);
	snprintf(path, sizeof(path), "%s/w.bin", ROOT);
	r = migrate("w.bin", true);
	REQUIRE(r.last.outcome == TD_MOVER_TIERED);
	snprintf(id, sizeof(id), "%s", r.id);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		crash_at = step;
		recall(id);
		_exit(3);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, "RACE", 4) == 4);
	close(fd);
	recover_all(rec);
	CHECK_INT(rec[4], 0);
	CHECK_INT(rec[3], 0);
	check_race_bytes("w.bin", 5004, 5000);
	CHECK_INT(count_rows(TD_CATALOG_RECALLING), 0);
	CHECK_INT(count_named(ROOT, ".tierd-"), 0);
	REQUIRE(lstat(path, &st) == 0);
	if (S_ISLNK(st.st_mode)) {
		r = recall(id);
		CHECK_INT(r.last.outcome, TD_MOVER_TIERED);
	}
	REQUIRE(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	check_race_bytes("w.bin", 5004, 5000);
	CHECK_INT(count_files(CACHE), 0);
	if (td_test_failures)
		printf("  (recall killed after '%s')\n", step);
	teardown(false);
	cache_on_tmpfs = false;
}

static void test_recall_crash_then_write(void)
{
	recall_crash_then_write("recall_started");
	recall_crash_then_write("recall_placed");
	recall_crash_then_write("recalled");
}

int main(void)
{
	signal(SIGIO, SIG_IGN); /* lease-break notices; the mover polls the lease state */
	TD_RUN(test_round_trip);
	TD_RUN(test_busy_writer);
	TD_RUN(test_writer_during_upload);
	TD_RUN(test_writer_just_before_swap);
	TD_RUN(test_writer_during_grace);
	TD_RUN(test_symlinked_directory);
	TD_RUN(test_symlink_below);
	TD_RUN(test_crash_matrix);
	TD_RUN(test_tmp_name_swapped);
	TD_RUN(test_crash_exchanged_link_moved);
	TD_RUN(test_recall_lease_holder);
	TD_RUN(test_recall_races_writer_across_fs);
	TD_RUN(test_recall_crash_then_write);
	return td_test_done();
}
