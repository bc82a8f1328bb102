/*
 * bench_scan — tierd's scanner against find(1) and fdfind on one generated
 * tree, warm cache, same selection: regular files, mtime older than 30 days,
 * size > 0. TD_BENCH_SIZE=full: 1,000 dirs x 1,000 files; else 20 x 100.
 * Prints files/s for each tool, "ratio scan_vs_find: X", "ratio scan_vs_fd: Y"
 * and the scanner's peak RSS (best of TD_BENCH_RUNS runs, default 3, the
 * tools interleaved). Fails only when the selections differ or a tool fails.
 *
 * Ages avoid the 29..32-day band so that find's whole-day rounding
 * (-mtime +30 is >= 31 days) and fd's --changed-before 30d agree.
 * The tree is generated in a child so the parent's ru_maxrss is the scan's.
 */
#include "scan.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t age_days(unsigned i)
{
	unsigned a = (i * 7919u) % 400u;
	return (a >= 29 && a <= 32) ? 200 : (int64_t)a;
}

static uint64_t file_size(unsigned i)
{
	return i % 10 == 0 ? 0 : 1 + i % 4096;
}

static int generate(const char *root, unsigned ndirs, unsigned nfiles, uint64_t *want)
{
	time_t now = time(NULL);
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*want = 0;
	if (rfd < 0)
		return -errno;
	for (unsigned d = 0; d < ndirs; d++) {
		char dn[32];
		int dfd;
		snprintf(dn, sizeof(dn), "d%04u", d);
		if (mkdirat(rfd, dn, 0755) < 0 && errno != EEXIST)
			return -errno;
		dfd = openat(rfd, dn, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		for (unsigned f = 0; f < nfiles; f++) {
			unsigned i = d * nfiles + f;
			char fn[32];
			struct timespec ts[2];
			int fd;
			snprintf(fn, sizeof(fn), "f%05u.dat", f);
			fd = openat(dfd, fn, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0)
				return -errno;
			if (file_size(i) && ftruncate(fd, (off_t)file_size(i)) < 0)
				return -errno;
			ts[0].tv_sec = now - age_days(i) * 86400 - 43200;
			ts[0].tv_nsec = 0;
			ts[1] = ts[0];
			futimens(fd, ts);
			close(fd);
			if (file_size(i) && age_days(i) > 32)
				(*want)++;
		}
		close(dfd);
	}
	close(rfd);
	return 0;
}

/* Runs a shell command, counts its output lines, returns seconds or < 0. */
static double run_count(const char *cmd, uint64_t *lines)
{
	int64_t t0 = td_monotonic_ns();
	FILE *p = popen(cmd, "r");
	char buf[65536];
	size_t n;

	*lines = 0;
	if (!p)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		for (size_t i = 0; i < n; i++)
			*lines += buf[i] == '\n';
	if (pclose(p) != 0)
		return -1;
	return (double)(td_monotonic_ns() - t0) / 1e9;
}

int main(void)
{
	const char *size = getenv("TD_BENCH_SIZE");
	bool full = size && strcmp(size, "full") == 0;
	unsigned ndirs = full ? 1000 : 20, nfiles = full ? 1000 : 100;
	uint64_t total = (uint64_t)ndirs * nfiles, want = 0, got_find = 0, got_fd = 0;
	char root[4096], cmd[8192];
	char *roots[1];
	char *inc[] = { "*" };
	struct td_policy_conf pc = {
		.name = "bench",
		.age_by = TD_AGE_MTIME,
		.min_age_s = 30 * 86400,
		.min_size_bytes = 1,
		.max_size_bytes = UINT64_MAX,
		.include = { inc, 1 },
		.one_filesystem = true,
	};
	struct td_policy *pol = NULL;
	struct td_scan_stats st;
	struct td_scan_opts so = { 0 };
	struct rusage ru;
	double t_scan, t_find, t_fd;
	const char *runs_env = getenv("TD_BENCH_RUNS");
	int runs = runs_env && atoi(runs_env) > 0 ? atoi(runs_env) : 3;
	bool have_fd = access("/usr/bin/fdfind", X_OK) == 0;
	pid_t pid;
	int status, rc = 0;

	snprintf(root, sizeof(root), "%s", td_test_tmpdir("bench-scan"));
	roots[0] = root;
	pc.paths = (struct td_strlist){ roots, 1 };
	printf("generating %u dirs x %u files under %s\n", ndirs, nfiles, root);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(generate(root, ndirs, nfiles, &want) == 0 ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_scan: generating the tree failed\n");
		rc = 1;
		goto out;
	}
	for (unsigned i = 0; i < ndirs * nfiles; i++)
		want += file_size(i) && age_days(i) > 32;

	/* warm the cache */
	snprintf(cmd, sizeof(cmd), "find '%s' -type f -mtime +30 -size +0", root);
	run_count(cmd, &got_find);

	if (td_policy_new(&pol, &pc, td_now_ns()) < 0) {
		rc = 1;
		goto out;
	}
	so.policy = pol;
	/* Best of `runs`, the tools interleaved, so that load from other
	 * processes hits all of them alike. */
	t_scan = t_find = t_fd = 1e30;
	for (int run = 0; run < runs; run++) {
		int64_t t0 = td_monotonic_ns();
		double t;
		if (td_scan_run(&st, &so) < 0) {
			fprintf(stderr, "bench_scan: scan failed\n");
			rc = 1;
		}
		t = (double)(td_monotonic_ns() - t0) / 1e9;
		t_scan = t < t_scan ? t : t_scan;
		snprintf(cmd, sizeof(cmd), "find '%s' -type f -mtime +30 -size +0", root);
		t = run_count(cmd, &got_find);
		if (t < 0)
			rc = 1;
		t_find = t < t_find ? t : t_find;
		if (have_fd) {
			snprintf(cmd, sizeof(cmd),
			         "fdfind -t f --changed-before 30d -S +1b -H -I . '%s'", root);
			t = run_count(cmd, &got_fd);
			if (t < 0)
				rc = 1;
			t_fd = t < t_fd ? t : t_fd;
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	td_policy_free(pol);

	printf("files in tree: %" PRIu64 ", expected selection: %" PRIu64 "\n", total, want);
	printf("tierd scan: %" PRIu64 " selected, %.3f s, %.0f files/s (%ld threads)\n",
	       st.candidate_files, t_scan, (double)total / t_scan, sysconf(_SC_NPROCESSORS_ONLN));
	printf("find:       %" PRIu64 " selected, %.3f s, %.0f files/s\n", got_find, t_find,
	       (double)total / t_find);
	if (have_fd)
		printf("fdfind:     %" PRIu64 " selected, %.3f s, %.0f files/s\n", got_fd, t_fd,
		       (double)total / t_fd);
	printf("tierd peak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
	printf("ratio scan_vs_find: %.2f\n", t_find / t_scan);
	if (have_fd)
		printf("ratio scan_vs_fd: %.2f\n", t_fd / t_scan);
	if (st.candidate_files != want || got_find != want || (have_fd && got_fd != want)) {
		fprintf(stderr, "bench_scan: selections differ\n");
		rc = 1;
	}
out:
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", root);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
