/*
 * Scanner tests on real trees: rules applied during a walk, symlink safety
 * (outside links, loops, a directory swapped for a symlink while scans run),
 * hostile names and long paths, permission-denied directories, one_filesystem,
 * atime preservation, link sightings, watermarks and run limits, and the plan
 * JSON/text renderers. Runs as root (mounts tmpfs; drops privileges in a child).
 */
#include "plan.h"
#include "scan.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DAY_S 86400LL
#define MiB   (1024ULL * 1024)

static char base[1024];

/* ---- helpers ---- */

static int mkfile_at(int dfd, const char *name, uint64_t size, int64_t age_days)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	struct timespec ts[2];

	if (fd < 0)
		return -errno;
	if (size && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -errno;
	}
	ts[0].tv_sec = time(NULL) - age_days * DAY_S;
	ts[0].tv_nsec = 0;
	ts[1] = ts[0];
	futimens(fd, ts);
	close(fd);
	return 0;
}

static int mkfile(const char *path, uint64_t size, int64_t age_days)
{
	return mkfile_at(AT_FDCWD, path, size, age_days);
}

/* base + suffix, in one of 4 rotating static buffers. */
static char *P(const char *suffix)
{
	static char buf[4][8192];
	static unsigned i;
	char *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%s%s", base, suffix);
	return b;
}

struct found {
	char *path;
	size_t len;
	int64_t age_ns;
};

struct coll {
	pthread_mutex_t lock;
	struct found *v;
	size_t n, cap;
	char link_id[64];
	char link_path[256];
	unsigned links;
};

static void coll_init(struct coll *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].path);
	free(c->v);
	pthread_mutex_destroy(&c->lock);
}

static void on_cand(void *ctx, const struct td_scan_entry *e)
{
	struct coll *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].path = malloc(e->path_len + 1);
	memcpy(c->v[c->n].path, e->path, e->path_len);
	c->v[c->n].path[e->path_len] = '\0';
	c->v[c->n].len = e->path_len;
	c->v[c->n].age_ns = e->age_ns;
	c->n++;
	pthread_mutex_unlock(&c->lock);
}

static void on_link(void *ctx, size_t root, const char *id, const char *path, size_t len)
{
	struct coll *c = ctx;

	pthread_mutex_lock(&c->lock);
	c->links++;
	snprintf(c->link_id, sizeof(c->link_id), "%s", id);
	snprintf(c->link_path, sizeof(c->link_path), "%.*s", (int)len, path);
	pthread_mutex_unlock(&c->lock);
}

static bool coll_has(const struct coll *c, const char *path, size_t len)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].len == len && memcmp(c->v[i].path, path, len) == 0)
			return true;
	return false;
}

static char *inc_all[] = { "*" };

static struct td_policy_conf conf_for(char **root)
{
	return (struct td_policy_conf){
		.name = "test",
		.paths = { root, 1 },
		.age_by = TD_AGE_MTIME,
		.min_age_s = 30 * DAY_S,
		.min_size_bytes = 1,
		.max_size_bytes = UINT64_MAX,
		.include = { inc_all, 1 },
		.one_filesystem = true,
	};
}

static int scan(struct td_scan_stats *st, struct coll *c, const struct td_policy_conf *pc,
                struct td_scan_opts *extra)
{
	struct td_policy *p = NULL;
	struct td_scan_opts o = { 0 };
	int r;

	if (extra)
		o = *extra;
	r = td_policy_new(&p, pc, td_now_ns());
	if (r < 0)
		return r;
	o.policy = p;
	o.ctx = c;
	o.on_candidate = on_cand;
	o.on_link = on_link;
	r = td_scan_run(st, &o);
	td_policy_free(p);
	return r;
}

/* A test's tree: the root <base><dir>, a policy over it (conf_for), and what
 * the last scan found. */
struct tree {
	char *root;
	struct td_policy_conf pc;
	struct td_scan_stats st;
	struct coll c;
};

static bool tree_make(struct tree *t, const char *dir)
{
	t->root = strdup(P(dir));
	t->pc = conf_for(&t->root);
	coll_init(&t->c);
	return t->root && mkdir(t->root, 0755) == 0;
}

/* Scans the tree afresh: t->c and t->st hold this scan's results only. */
static int tree_scan(struct tree *t, struct td_scan_opts *extra)
{
	coll_free(&t->c);
	coll_init(&t->c);
	return scan(&t->st, &t->c, &t->pc, extra);
}

static void tree_done(struct tree *t)
{
	coll_free(&t->c);
	free(t->root);
}

static void rm_rf(const char *p)
{
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: %s failed\n", cmd);
}

/* ---- tests ---- */

static void test_rules_in_walk(void)
{
	struct tree t;

	REQUIRE(tree_make(&t, "/rules"));
	REQUIRE(mkdir(P("/rules/sub"), 0755) == 0);
	REQUIRE(mkdir(P("/rules/sub/deeper"), 0755) == 0);
	REQUIRE(mkfile(P("/rules/cold"), 100, 40) == 0);
	REQUIRE(mkfile(P("/rules/sub/cold2"), 200, 400) == 0);
	REQUIRE(mkfile(P("/rules/sub/deeper/cold3"), 300, 100) == 0);
	REQUIRE(mkfile(P("/rules/young"), 100, 1) == 0);
	REQUIRE(mkfile(P("/rules/empty"), 0, 100) == 0);
	REQUIRE(mkfile(P("/rules/hard"), 10, 100) == 0);
	REQUIRE(link(P("/rules/hard"), P("/rules/sub/hard2")) == 0);
	REQUIRE(mkfile(P("/rules/suid"), 10, 100) == 0);
	REQUIRE(chmod(P("/rules/suid"), 04755) == 0);
	REQUIRE(mkfifo(P("/rules/fifo"), 0644) == 0);
	REQUIRE(symlink("cold", P("/rules/lnk")) == 0);

	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 3);
	CHECK(coll_has(&t.c, "cold", 4));
	CHECK(coll_has(&t.c, "sub/cold2", 9));
	CHECK(coll_has(&t.c, "sub/deeper/cold3", 16));
	CHECK_INT(t.st.candidate_files, 3);
	CHECK_INT(t.st.candidate_bytes, 600);
	CHECK_INT(t.st.scanned_files, 8); /* cold*3, young, empty, hard*2, suid */
	CHECK_INT(t.st.dirs, 3);
	CHECK_INT(t.st.skipped[TD_SKIP_TOO_YOUNG], 1);
	CHECK_INT(t.st.skipped[TD_SKIP_TOO_SMALL], 1);
	CHECK_INT(t.st.skipped[TD_SKIP_HARDLINKED], 2);
	CHECK_INT(t.st.skipped[TD_SKIP_SETUID_SETGID], 1);
	CHECK_INT(t.st.skipped[TD_SKIP_NOT_REGULAR], 2);
	CHECK_INT(t.st.age_bytes[TD_AGE_LT_30D], 100);
	CHECK_INT(t.st.age_bytes[TD_AGE_GT_1Y], 200);

	/* exclude a subtree, run limits */
	{
		char *exc[] = { "sub/**" };
		t.pc.exclude = (struct td_strlist){ exc, 1 };
		CHECK_INT(tree_scan(&t, NULL), 0);
		CHECK_INT(t.c.n, 1);
		/* the whole of sub/ is pruned: one directory, not entered */
		CHECK_INT(t.st.skipped[TD_SKIP_EXCLUDED], 1);
		CHECK_INT(t.st.dirs, 1);
		t.pc.exclude = (struct td_strlist){ 0 };
	}
	t.pc.max_files_per_run = 2;
	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 2);
	CHECK_INT(t.st.skipped[TD_SKIP_RUN_LIMIT], 1);
	CHECK_INT(t.st.eligible_files, 3);
	t.pc.max_files_per_run = 0;
	t.pc.max_bytes_per_run = 350;
	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK(t.st.candidate_bytes <= 350);
	CHECK(t.c.n >= 1 && t.c.n <= 2);
	tree_done(&t);
}

static void test_symlinks_outside_and_loops(void)
{
	struct tree t;

	REQUIRE(tree_make(&t, "/sl"));
	REQUIRE(mkdir(P("/outside"), 0755) == 0);
	REQUIRE(mkfile(P("/outside/OUTSIDE_cold"), 1000, 500) == 0);
	REQUIRE(mkfile(P("/sl/inside"), 10, 500) == 0);
	REQUIRE(symlink(P("/outside"), P("/sl/to_outside")) == 0);
	REQUIRE(symlink("../outside", P("/sl/rel_outside")) == 0);
	REQUIRE(symlink(".", P("/sl/self")) == 0);
	REQUIRE(symlink("loop_b", P("/sl/loop_a")) == 0);
	REQUIRE(symlink("loop_a", P("/sl/loop_b")) == 0);
	REQUIRE(symlink("/etc", P("/sl/etc")) == 0);
	REQUIRE(symlink(P("/outside/OUTSIDE_cold"), P("/sl/file_out")) == 0);

	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 1);
	CHECK(coll_has(&t.c, "inside", 6));
	CHECK_INT(t.st.dirs, 1);
	CHECK_INT(t.st.skipped[TD_SKIP_NOT_REGULAR], 7);
	tree_done(&t);
}

/* <dir>/s0..s3, each with 20 cold files <tag>_<i>_<j>. */
static bool fill_race_dir(const char *dir, const char *tag)
{
	for (int i = 0; i < 4; i++) {
		char sub[4096], name[4200];
		snprintf(sub, sizeof(sub), "%s/s%d", dir, i);
		if (mkdir(sub, 0755) != 0)
			return false;
		for (int j = 0; j < 20; j++) {
			snprintf(name, sizeof(name), "%s/%s_%d_%d", sub, tag, i, j);
			if (mkfile(name, 10, 400) != 0)
				return false;
		}
	}
	return true;
}

/* A child swaps root/a/d (a real directory) with a symlink to an outside
 * directory laid out the same way, or to /etc, in a loop, while the parent
 * scans with min_age 0 (so /etc's files would qualify if ever reached). */
static void test_swap_race(void)
{
	struct tree t;
	char d[2048], dtmp[2048], out[2048];
	unsigned scans = 0, bad = 0, found = 0;
	int64_t deadline;
	pid_t pid;
	int status;

	REQUIRE(tree_make(&t, "/race"));
	t.pc.min_age_s = 0;
	t.pc.min_size_bytes = 0;
	REQUIRE(mkdir(P("/race/a"), 0755) == 0);
	snprintf(d, sizeof(d), "%s/race/a/d", base);
	snprintf(dtmp, sizeof(dtmp), "%s/race/a/d.real", base);
	snprintf(out, sizeof(out), "%s/evil", base);
	REQUIRE(mkdir(d, 0755) == 0);
	REQUIRE(mkdir(out, 0755) == 0);
	REQUIRE(fill_race_dir(d, "in"));
	REQUIRE(fill_race_dir(out, "OUTSIDE"));
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int64_t end = td_monotonic_ns() + 3000000000LL;
		for (unsigned it = 0; it < 2000000 && td_monotonic_ns() < end; it++) {
			if (rename(d, dtmp) < 0)
				continue;
			/* Every other round the symlink points at the real /etc. */
			if (symlink(it % 2 ? "/etc" : out, d) == 0)
				unlink(d);
			rename(dtmp, d);
		}
		_exit(0);
	}
	deadline = td_monotonic_ns() + 3000000000LL;
	while (td_monotonic_ns() < deadline) {
		if (tree_scan(&t, NULL) != 0)
			bad++;
		for (size_t i = 0; i < t.c.n; i++) {
			if (strstr(t.c.v[i].path, "OUTSIDE") || strstr(t.c.v[i].path, "passwd") ||
			    strncmp(t.c.v[i].path, "a/d", 3) != 0 || !strstr(t.c.v[i].path, "/in_"))
				bad++;
			found++;
		}
		scans++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	printf("  swap race: %u scans, %u candidates, %u bad\n", scans, found, bad);
	CHECK(scans > 10);
	CHECK(found > 0);
	CHECK_INT(bad, 0);
	/* And with the symlink in place for good: nothing from outside. */
	{
		struct stat ls;
		if (lstat(d, &ls) == 0 && S_ISLNK(ls.st_mode))
			unlink(d);
		if (lstat(d, &ls) < 0)
			rename(dtmp, d);
	}
	REQUIRE(rename(d, dtmp) == 0);
	REQUIRE(symlink(out, d) == 0);
	{
		CHECK_INT(tree_scan(&t, NULL), 0);
		for (size_t i = 0; i < t.c.n; i++)
			CHECK(!strstr(t.c.v[i].path, "OUTSIDE") &&
			      strncmp(t.c.v[i].path, "a/d/", 4) != 0);
		CHECK_INT(t.st.skipped[TD_SKIP_NOT_REGULAR], 1);
	}
	tree_done(&t);
}

/* Builds hostile names; returns the number of candidate files created. */
static const char *const hostile[] = {
	"new\nline", "tab\there",   "bad\xff\xfe utf8", "-leading-dash",     "--",
	"sp ace ",   "back\\slash", "quote\"d",         "\xc3\xa9t\xc3\xa9",
};

/* The plan renderers on test_hostile_names' tree: the JSON (path_b64 for the
 * invalid-UTF-8 directory) and the text. */
static void check_plan_renders(const struct tree *t)
{
	struct td_plan *p = NULL;
	struct td_plan_opts po = { 0 };
	json_t *j, *top, *d;
	char *text = NULL;
	size_t tlen = 0;
	FILE *f;
	bool saw_b64 = false;

	REQUIRE(td_plan_run(&p, &t->pc, &po, td_now_ns()) == 0);
	CHECK_INT(p->st.candidate_files, TD_ARRAY_SIZE(hostile) + 4);
	j = td_plan_json(p);
	REQUIRE(j);
	char *dump = json_dumps(j, JSON_COMPACT);
	REQUIRE(dump);
	json_t *back = json_loads(dump, 0, NULL);
	CHECK(back != NULL);
	json_decref(back);
	free(dump);
	CHECK_INT(json_integer_value(json_object_get(j, "candidate_files")),
	          TD_ARRAY_SIZE(hostile) + 4);
	CHECK(json_is_object(json_object_get(j, "age_histogram")));
	CHECK(json_is_object(json_object_get(j, "skipped")));
	top = json_object_get(j, "top_dirs");
	CHECK(json_is_array(top));
	/* The biggest cold directory is the invalid-UTF-8 one. */
	d = json_array_get(top, 0);
	REQUIRE(d);
	const char *b64 = json_string_value(json_object_get(d, "path_b64"));
	if (b64) {
		unsigned char raw[8192];
		int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
		size_t want = strlen(t->root) + strlen("/dir\x80\n");
		saw_b64 = n >= (int)want && memcmp(raw, t->root, strlen(t->root)) == 0 &&
		          memcmp(raw + strlen(t->root), "/dir\x80\n", 6) == 0;
	}
	CHECK(saw_b64);
	CHECK_CONTAINS(json_string_value(json_object_get(d, "path")), "/dir\\x80\\n");
	json_decref(j);
	f = open_memstream(&text, &tlen);
	REQUIRE(f);
	td_plan_print(p, f);
	fclose(f);
	CHECK_CONTAINS(text, "/dir\\x80\\n");
	CHECK_CONTAINS(text, "would move:  13 files");
	free(text);
	td_plan_free(p);
}

static void test_hostile_names(void)
{
	struct tree t;
	char long_name[256], comp[201], deep_rel[8192] = "";
	size_t deep_len = 0;
	int rfd, dfd;

	REQUIRE(tree_make(&t, "/hostile"));
	rfd = open(t.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(rfd >= 0);
	for (size_t i = 0; i < TD_ARRAY_SIZE(hostile); i++)
		REQUIRE(mkfile_at(rfd, hostile[i], 7, 100) == 0);
	/* a directory with an invalid-UTF-8 name holding a file */
	REQUIRE(mkdirat(rfd, "dir\x80\n", 0755) == 0);
	dfd = openat(rfd, "dir\x80\n", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dfd >= 0);
	REQUIRE(mkfile_at(dfd, "f", 5000, 100) == 0);
	close(dfd);
	memset(long_name, 'L', 255);
	long_name[255] = '\0';
	REQUIRE(mkfile_at(rfd, long_name, 7, 100) == 0);
	/* a 6,000-byte path: 30 components of 199 bytes, file at depth 30 */
	memset(comp, 'd', 199);
	comp[199] = '\0';
	dfd = dup(rfd);
	for (int i = 0; i < 30; i++) {
		int n;
		REQUIRE(mkdirat(dfd, comp, 0755) == 0);
		n = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		REQUIRE(n >= 0);
		dfd = n;
		memcpy(deep_rel + deep_len, comp, 199);
		deep_len += 199;
		deep_rel[deep_len++] = '/';
		if (i == 19) {
			/* about 4,000 bytes deep */
			REQUIRE(mkfile_at(dfd, "at4000", 9, 100) == 0);
		}
	}
	REQUIRE(mkfile_at(dfd, "deep\nfile", 9, 100) == 0);
	close(dfd);
	memcpy(deep_rel + deep_len, "deep\nfile", 9);
	deep_len += 9;

	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, TD_ARRAY_SIZE(hostile) + 4);
	for (size_t i = 0; i < TD_ARRAY_SIZE(hostile); i++)
		CHECK(coll_has(&t.c, hostile[i], strlen(hostile[i])));
	CHECK(coll_has(&t.c, "dir\x80\n/f", 7));
	CHECK(coll_has(&t.c, long_name, 255));
	CHECK(coll_has(&t.c, deep_rel, deep_len));
	CHECK(deep_len > 6000);
	CHECK_INT(t.st.skipped[TD_SKIP_PATH_TOO_LONG], 0);
	CHECK_INT(t.st.skipped[TD_SKIP_ERROR], 0);

	check_plan_renders(&t);
	close(rfd);
	tree_done(&t);
}

static void test_permission_denied(void)
{
	struct tree t;
	pid_t pid;
	int status;

	REQUIRE(tree_make(&t, "/perm"));
	REQUIRE(chmod(base, 0755) == 0); /* nobody must reach the root */
	REQUIRE(mkdir(P("/perm/locked"), 0700) == 0);
	REQUIRE(mkfile(P("/perm/locked/secret"), 10, 100) == 0);
	if (geteuid() != 0)
		REQUIRE(chmod(P("/perm/locked"), 0) == 0);
	REQUIRE(mkfile(P("/perm/open"), 10, 100) == 0);
	REQUIRE(chmod(P("/perm/open"), 0644) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* Root reads everything: drop to nobody (not needed when not root). */
		if (geteuid() == 0 &&
		    (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0))
			_exit(3);
		if (tree_scan(&t, NULL) != 0)
			_exit(4);
		if (t.st.skipped[TD_SKIP_PERMISSION_DENIED] != 1)
			_exit(5);
		if (t.c.n != 1 || !coll_has(&t.c, "open", 4))
			_exit(6);
		_exit(0);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_INT(WEXITSTATUS(status), 0);
	chmod(P("/perm/locked"), 0700); /* so that the cleanup can remove it */
	tree_done(&t);
}

static void test_one_filesystem(void)
{
	struct tree t;
	char *mnt;

	REQUIRE(tree_make(&t, "/onefs"));
	mnt = strdup(P("/onefs/mnt"));
	REQUIRE(mkdir(mnt, 0755) == 0);
	REQUIRE(mkfile(P("/onefs/here"), 10, 100) == 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") < 0) {
		printf("  SKIP one_filesystem: mount: %s\n", strerror(errno));
		free(mnt);
		tree_done(&t);
		return;
	}
	CHECK(mkfile(P("/onefs/mnt/there"), 10, 100) == 0);
	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 1);
	CHECK(coll_has(&t.c, "here", 4));
	CHECK_INT(t.st.skipped[TD_SKIP_OTHER_FILESYSTEM], 1);
	t.pc.one_filesystem = false;
	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 2);
	CHECK(coll_has(&t.c, "mnt/there", 9));
	CHECK(umount2(mnt, MNT_DETACH) == 0);
	free(mnt);
	tree_done(&t);
}

static void test_no_atime_change(void)
{
	struct tree t;
	struct stat before, after, sb, sa;
	char *f;

	REQUIRE(tree_make(&t, "/atime"));
	if (mount("tmpfs", t.root, "tmpfs", MS_STRICTATIME, "size=4m") < 0) {
		printf("  SKIP atime: mount: %s\n", strerror(errno));
		tree_done(&t);
		return;
	}
	f = strdup(P("/atime/old"));
	CHECK(mkfile(f, 100, 100) == 0);
	CHECK(mkdir(P("/atime/sub"), 0755) == 0);
	CHECK(mkfile(P("/atime/sub/old2"), 100, 100) == 0);
	CHECK(symlink("/nonexistent/target", P("/atime/lnk")) == 0);
	CHECK(stat(f, &before) == 0);
	CHECK(lstat(P("/atime/sub/old2"), &sb) == 0);
	t.pc.age_by = TD_AGE_ATIME;
	CHECK_INT(tree_scan(&t, NULL), 0);
	CHECK_INT(t.c.n, 2);
	CHECK(stat(f, &after) == 0);
	CHECK(lstat(P("/atime/sub/old2"), &sa) == 0);
	CHECK_INT(before.st_atim.tv_sec, after.st_atim.tv_sec);
	CHECK_INT(before.st_atim.tv_nsec, after.st_atim.tv_nsec);
	CHECK_INT(sb.st_atim.tv_sec, sa.st_atim.tv_sec);
	/* sanity: reading the file does change atime on this mount */
	{
		char buf[16];
		int fd = open(f, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) >= 0);
		close(fd);
		CHECK(stat(f, &after) == 0);
		CHECK(after.st_atim.tv_sec != before.st_atim.tv_sec);
	}
	CHECK(umount2(t.root, MNT_DETACH) == 0);
	free(f);
	tree_done(&t);
}

static void test_links_and_own_dirs(void)
{
	struct tree t;
	struct td_scan_opts o = { 0 };
	char state[2048], cache[2048], target[8192];
	const char *id = "ab0123456789abcdef0123456789abcd";

	REQUIRE(tree_make(&t, "/ns"));
	snprintf(state, sizeof(state), "%s/ns/.tierd-state", base);
	snprintf(cache, sizeof(cache), "%s/ns/cache", base);
	REQUIRE(mkdir(state, 0711) == 0);
	REQUIRE(mkdir(cache, 0711) == 0);
	REQUIRE(mkfile(P("/ns/cache/obj"), 10, 100) == 0);
	REQUIRE(mkfile(P("/ns/.tierd-state/catalog.db"), 10, 100) == 0);
	REQUIRE(mkfile(P("/ns/plain"), 10, 100) == 0);
	snprintf(target, sizeof(target), "%s/links/ab/%s/report.iso", state, id);
	REQUIRE(symlink(target, P("/ns/report.iso")) == 0);
	/* not a namespace link: wrong shape */
	snprintf(target, sizeof(target), "%s/links/zz/nothex/x", state);
	REQUIRE(symlink(target, P("/ns/fake")) == 0);
	o.state_dir = state;
	o.cache_dir = cache;
	CHECK_INT(tree_scan(&t, &o), 0);
	CHECK_INT(t.c.n, 1);
	CHECK(coll_has(&t.c, "plain", 5));
	CHECK_INT(t.c.links, 1);
	CHECK_STR(t.c.link_id, id);
	CHECK_STR(t.c.link_path, "report.iso");
	CHECK_INT(t.st.links_seen, 1);
	CHECK_INT(t.st.skipped[TD_SKIP_ALREADY_TIERED], 1);
	CHECK_INT(t.st.skipped[TD_SKIP_TIERD_DIR], 2);
	CHECK_INT(t.st.skipped[TD_SKIP_NOT_REGULAR], 1);
	tree_done(&t);
}

static void test_watermarks(void)
{
	struct tree t;
	struct td_scan_opts o = { .fs_override = true,
		                  .fs_total_bytes = 1000 * MiB,
		                  .fs_used_bytes = 900 * MiB };

	REQUIRE(tree_make(&t, "/wm"));
	REQUIRE(mkdir(P("/wm/d"), 0755) == 0);
	/* 10 files of 50 MiB (sparse), ages 40..130 days; one young one */
	for (int i = 0; i < 10; i++) {
		char path[2048];
		snprintf(path, sizeof(path), "%s/wm/%s%d", base, i % 2 ? "d/" : "", i);
		REQUIRE(mkfile(path, 50 * MiB, 40 + 10 * i) == 0);
	}
	REQUIRE(mkfile(P("/wm/young"), 500 * MiB, 1) == 0);
	t.pc.has_watermarks = true;
	t.pc.high_watermark_pct = 85;
	t.pc.low_watermark_pct = 70;
	/* 90% used, low 70%: 200 MiB must go: the 4 coldest, coldest first */
	for (int cap = 0; cap <= 3; cap += 3) {
		o.select_cap = (size_t)cap; /* 0: default; 3: smaller than needed */
		CHECK_INT(tree_scan(&t, &o), 0);
		CHECK(t.st.watermark_active);
		if (cap == 0) {
			CHECK_INT(t.c.n, 4);
			CHECK_INT(t.st.candidate_bytes, 200 * MiB);
		} else {
			CHECK_INT(t.c.n, 3);
		}
		CHECK(t.c.n >= 1 && strcmp(t.c.v[0].path, "d/9") == 0);
		for (size_t i = 1; i < t.c.n; i++)
			CHECK(t.c.v[i - 1].age_ns >= t.c.v[i].age_ns);
		CHECK(t.c.n >= 3 && strcmp(t.c.v[2].path, "d/7") == 0);
		CHECK_INT(t.st.eligible_files, 10);
		CHECK_INT(t.st.skipped[TD_SKIP_WATERMARK], 10 - t.c.n);
	}
	/* with a run limit the selection stops early */
	t.pc.max_files_per_run = 2;
	o.select_cap = 0;
	CHECK_INT(tree_scan(&t, &o), 0);
	CHECK_INT(t.c.n, 2);
	t.pc.max_files_per_run = 0;
	/* below high: nothing */
	o.fs_used_bytes = 800 * MiB;
	CHECK_INT(tree_scan(&t, &o), 0);
	CHECK(!t.st.watermark_active);
	CHECK_INT(t.c.n, 0);
	tree_done(&t);
}

static void test_missing_root_and_big_dir(void)
{
	char *roots[2];
	struct td_policy_conf pc;
	struct td_scan_stats st;
	struct td_scan_opts o = { .threads = 2 };
	struct coll c;
	int dfd;
	const int n = 100000;

	roots[0] = strdup(P("/nope"));
	roots[1] = strdup(P("/big"));
	pc = conf_for(roots);
	pc.paths.n = 2;
	REQUIRE(mkdir(roots[1], 0755) == 0);
	dfd = open(roots[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dfd >= 0);
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%07d", i);
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		REQUIRE(fd >= 0);
		close(fd);
	}
	close(dfd);
	pc.min_size_bytes = 0;
	pc.min_age_s = 0;
	coll_init(&c);
	CHECK_INT(scan(&st, &c, &pc, &o), -ENOENT);
	CHECK_INT(st.failed_roots, 1);
	CHECK_INT(st.scanned_files, n);
	CHECK_INT(c.n, n);
	coll_free(&c);
	free(roots[0]);
	free(roots[1]);
}

struct vanish_ctx {
	struct coll c;
	const char *z, *y, *y2;
};

static void vanish_on_dir(void *ctx, size_t root, const char *path, size_t len, uint64_t files,
                          uint64_t bytes)
{
	struct vanish_ctx *v = ctx;

	/* The root has been listed; its subdirectories are queued but not open. */
	if (len == 0) {
		rmdir(v->z);
		rename(v->y, v->y2);
	}
}

static void vanish_on_cand(void *ctx, const struct td_scan_entry *e)
{
	on_cand(&((struct vanish_ctx *)ctx)->c, e);
}

/* Directories removed or renamed away between being listed and being opened. */
static void test_vanished(void)
{
	struct tree t;
	struct td_policy *p = NULL;
	struct vanish_ctx v;
	struct td_scan_opts o = { .threads = 1,
		                  .on_dir = vanish_on_dir,
		                  .on_candidate = vanish_on_cand };

	REQUIRE(tree_make(&t, "/van"));
	REQUIRE(mkdir(P("/van/z"), 0755) == 0);
	REQUIRE(mkdir(P("/van/y"), 0755) == 0);
	REQUIRE(mkfile(P("/van/y/f"), 10, 100) == 0);
	REQUIRE(mkfile(P("/van/top"), 10, 100) == 0);
	v.z = strdup(P("/van/z"));
	v.y = strdup(P("/van/y"));
	v.y2 = strdup(P("/van/y2"));
	coll_init(&v.c);
	REQUIRE(td_policy_new(&p, &t.pc, td_now_ns()) == 0);
	o.policy = p;
	o.ctx = &v;
	CHECK_INT(td_scan_run(&t.st, &o), 0);
	CHECK_INT(t.st.skipped[TD_SKIP_VANISHED], 2);
	CHECK_INT(v.c.n, 1);
	CHECK(coll_has(&v.c, "top", 3));
	coll_free(&v.c);
	td_policy_free(p);
	free((char *)v.z);
	free((char *)v.y);
	free((char *)v.y2);
	tree_done(&t);
}

/* A tiny shared queue forces the per-worker stacks and their sharing; a
 * 1,500-deep chain checks that depth costs no C stack. */
static void test_small_queue_wide_deep(void)
{
	struct tree t;
	struct td_scan_opts o = { .queue_cap = 2, .threads = 3 };
	int rfd, dfd;

	REQUIRE(tree_make(&t, "/wide"));
	rfd = open(t.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(rfd >= 0);
	for (int i = 0; i < 50; i++) {
		char n[32];
		snprintf(n, sizeof(n), "a%d", i);
		REQUIRE(mkdirat(rfd, n, 0755) == 0);
		dfd = openat(rfd, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		REQUIRE(dfd >= 0);
		for (int j = 0; j < 5; j++) {
			snprintf(n, sizeof(n), "b%d", j);
			REQUIRE(mkdirat(dfd, n, 0755) == 0);
			int ffd = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			REQUIRE(ffd >= 0);
			REQUIRE(mkfile_at(ffd, "x", 1, 100) == 0);
			REQUIRE(mkfile_at(ffd, "y", 1, 100) == 0);
			close(ffd);
		}
		close(dfd);
	}
	dfd = dup(rfd);
	for (int i = 0; i < 1500; i++) {
		int n;
		REQUIRE(mkdirat(dfd, "c", 0755) == 0);
		n = openat(dfd, "c", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		REQUIRE(n >= 0);
		dfd = n;
	}
	REQUIRE(mkfile_at(dfd, "bottom", 1, 100) == 0);
	close(dfd);
	close(rfd);
	CHECK_INT(tree_scan(&t, &o), 0);
	CHECK_INT(t.c.n, 501);
	CHECK_INT(t.st.dirs, 1 + 50 + 250 + 1500);
	tree_done(&t);
}

int main(void)
{
	snprintf(base, sizeof(base), "%s", td_test_tmpdir("scan"));
	if (geteuid() != 0)
		printf("note: not root; mount and setresuid tests will skip or fail\n");
	TD_RUN(test_rules_in_walk);
	TD_RUN(test_symlinks_outside_and_loops);
	TD_RUN(test_swap_race);
	TD_RUN(test_hostile_names);
	TD_RUN(test_permission_denied);
	TD_RUN(test_one_filesystem);
	TD_RUN(test_no_atime_change);
	TD_RUN(test_links_and_own_dirs);
	TD_RUN(test_watermarks);
	TD_RUN(test_missing_root_and_big_dir);
	TD_RUN(test_small_queue_wide_deep);
	TD_RUN(test_vanished);
	rm_rf(base);
	return td_test_done();
}
