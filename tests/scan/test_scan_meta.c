/* Every candidate carries the file's real mtime and ctime whatever the
 * policy ages by: the mover compares them before the swap. */
#include "config.h"
#include "policy.h"
#include "scan.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct seen {
	pthread_mutex_t lock;
	int n, bad;
	int64_t want_mtime, want_ctime;
};

static void on_candidate(void *ctx, const struct td_scan_entry *e)
{
	struct seen *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->n++;
	if (e->meta->mtime_ns != s->want_mtime || e->meta->ctime_ns != s->want_ctime ||
	    e->ino == 0 || e->dev == 0)
		s->bad++;
	pthread_mutex_unlock(&s->lock);
}

static void test_times_for_every_age_by(void)
{
	const char *dir = td_test_tmpdir("scanmeta");
	char root[4200], file[4300];
	struct stat st;
	int fd;

	snprintf(root, sizeof(root), "%s", dir);
	snprintf(file, sizeof(file), "%s/f", root);
	fd = open(file, O_WRONLY | O_CREAT, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, "x", 1) == 1);
	close(fd);
	REQUIRE(stat(file, &st) == 0);
	for (int ab = TD_AGE_ATIME; ab <= TD_AGE_NEWEST; ab++) {
		char *paths[] = { root };
		char *inc[] = { (char *)"*" };
		struct td_policy_conf pc = { .name = (char *)"p",
			                     .paths = { paths, 1 },
			                     .target = (char *)"t",
			                     .age_by = (enum td_age_by)ab,
			                     .max_size_bytes = UINT64_MAX,
			                     .include = { inc, 1 },
			                     .one_filesystem = true };
		struct seen s = { .lock = PTHREAD_MUTEX_INITIALIZER,
			          .want_mtime =
			              st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
			          .want_ctime =
			              st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec };
		struct td_scan_opts o = { .threads = 1, .ctx = &s, .on_candidate = on_candidate };
		struct td_scan_stats stats;
		struct td_policy *p = NULL;

		REQUIRE(td_policy_new(&p, &pc, td_now_ns() + 1000000000LL) == 0);
		o.policy = p;
		CHECK_INT(td_scan_run(&stats, &o), 0);
		CHECK_INT(s.n, 1);
		CHECK_INT(s.bad, 0);
		td_policy_free(p);
	}
	td_test_rmtree(dir);
}

int main(void)
{
	TD_RUN(test_times_for_every_age_by);
	return td_test_done();
}
