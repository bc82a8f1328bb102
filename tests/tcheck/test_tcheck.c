/*
 * The target check on a dir target in a temp dir: every step passes, each is
 * reported through the callback as it finishes, and nothing is left behind;
 * an unreadable directory fails at the reachability step; an s3 target
 * without keys fails at the credentials step before any request.
 */
#include "tcheck.h"
#include "testlib.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

struct seen {
	unsigned steps, warnings;
	char names[512];
};

static void on_step(void *data, const struct td_tcheck_step *s)
{
	struct seen *seen = data;
	size_t n = strlen(seen->names);

	seen->steps++;
	snprintf(seen->names + n, sizeof(seen->names) - n, "%s%s;", s->name, s->ok ? "" : "!");
}

static void on_warning(void *data, const char *w)
{
	((struct seen *)data)->warnings++;
}

/* Files below dir, recursively (directories do not count). */
static unsigned count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[4096];

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		n += e->d_type == DT_DIR ? count_files(p) : 1;
	}
	closedir(d);
	return n;
}

static void test_dir_target(void)
{
	const char *t = td_test_tmpdir("tcheck-dir");
	char tier[4200];
	struct td_target_conf tc = { .name = "nas", .type = TD_TARGET_DIR, .path = tier };
	struct td_tcheck_opts o;
	struct td_tcheck_result *res = malloc(sizeof(*res));
	struct seen seen = { 0 };

	REQUIRE(res);
	o = (struct td_tcheck_opts){ .data = &seen, .on_step = on_step, .on_warning = on_warning };
	snprintf(tier, sizeof(tier), "%s/tier", t);
	mkdir(tier, 0700);
	CHECK_INT(td_tcheck_run(res, &tc, &o), 0);
	CHECK(res->ok);
	CHECK_STR(seen.names, "open;directory readable;put;head;clock;latency;range get;"
	                      "get (sha256 verified);list;multipart (11 MiB);delete;");
	CHECK_INT(seen.steps, res->n_steps);
	CHECK_INT(seen.warnings, res->n_warnings);
	for (size_t i = 0; i < res->n_steps; i++)
		CHECK(res->steps[i].ok);
	CHECK(res->have_skew);
	CHECK(res->latency_ms >= 0);
	CHECK_INT(count_files(tier), 0); /* the scratch keys are gone */
	td_test_rmtree(t);
	free(res);
}

static void test_missing_dir(void)
{
	struct td_target_conf tc = { .name = "nas",
		                     .type = TD_TARGET_DIR,
		                     .path = "/nonexistent/tierd-tier" };
	struct td_tcheck_opts o;
	struct td_tcheck_result *res = malloc(sizeof(*res));
	struct seen seen = { 0 };

	REQUIRE(res);
	o = (struct td_tcheck_opts){ .data = &seen, .on_step = on_step };
	CHECK_INT(td_tcheck_run(res, &tc, &o), 0);
	CHECK(!res->ok);
	CHECK(res->n_steps >= 1 && !res->steps[res->n_steps - 1].ok);
	CHECK(res->steps[res->n_steps - 1].error[0] != '\0');
	CHECK(res->latency_ms < 0);
	free(res);
}

static void test_s3_without_keys(void)
{
	struct td_target_conf tc = {
		.name = "s3", .type = TD_TARGET_S3, .endpoint = "http://127.0.0.1:1", .bucket = "b"
	};
	struct td_tcheck_opts o;
	struct td_tcheck_result *res = malloc(sizeof(*res));
	struct seen seen = { 0 };

	REQUIRE(res);
	o = (struct td_tcheck_opts){ .data = &seen, .on_step = on_step, .on_warning = on_warning };
	CHECK_INT(td_tcheck_run(res, &tc, &o), 0);
	CHECK(!res->ok);
	CHECK_STR(seen.names, "credentials!;");
	CHECK_INT(seen.warnings, 1); /* plain http */
	CHECK_CONTAINS(res->warnings[0], "plain http");
	CHECK_CONTAINS(res->steps[0].error, "AWS_ACCESS_KEY_ID");
	free(res);
}

int main(void)
{
	TD_RUN(test_dir_target);
	TD_RUN(test_missing_dir);
	TD_RUN(test_s3_without_keys);
	return td_test_done();
}
