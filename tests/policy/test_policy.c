/* Table-driven tests of the policy rules (lib/policy.c). */
#include "policy.h"
#include "testlib.h"
#include "util.h"

#include <stdint.h>
#include <sys/stat.h>

#define NS  1000000000LL
#define DAY (86400LL * NS)
#define NOW (1700000000LL * NS)
#define MiB (1024ULL * 1024)

static char *inc_all[] = { "*" };
static char *exc_def[] = { "**/.git/**", "*.tmp" };
static char *inc_iso[] = { "*.iso", "video/**" };
static uid_t owners[] = { 1000, 1001 };
static gid_t groups[] = { 100 };

static struct td_policy_conf base_conf(void)
{
	return (struct td_policy_conf){
		.name = "t",
		.age_by = TD_AGE_ATIME,
		.min_age_s = 90 * 86400,
		.min_size_bytes = MiB,
		.max_size_bytes = UINT64_MAX,
		.include = { inc_all, 1 },
		.exclude = { exc_def, 2 },
		.one_filesystem = true,
	};
}

static struct td_file_meta cold_file(void)
{
	return (struct td_file_meta){
		.mode = S_IFREG | 0644,
		.nlink = 1,
		.uid = 1000,
		.gid = 100,
		.size = 10 * MiB,
		.atime_ns = NOW - 100 * DAY,
		.mtime_ns = NOW - 200 * DAY,
		.ctime_ns = NOW - 200 * DAY,
	};
}

enum { C_BASE, C_AGE_MTIME, C_AGE_CTIME, C_AGE_NEWEST, C_SIZES, C_INC, C_OWN, C_OWN_GRP };

static void apply(struct td_policy_conf *c, int kind)
{
	switch (kind) {
	case C_AGE_MTIME:
		c->age_by = TD_AGE_MTIME;
		break;
	case C_AGE_CTIME:
		c->age_by = TD_AGE_CTIME;
		break;
	case C_AGE_NEWEST:
		c->age_by = TD_AGE_NEWEST;
		break;
	case C_SIZES:
		c->min_size_bytes = 0;
		c->max_size_bytes = 100 * MiB;
		break;
	case C_INC:
		c->include = (struct td_strlist){ inc_iso, 2 };
		break;
	case C_OWN:
		c->owners = owners;
		c->n_owners = 2;
		break;
	case C_OWN_GRP:
		c->owners = owners;
		c->n_owners = 2;
		c->groups = groups;
		c->n_groups = 1;
		break;
	}
}

/* One row per rule outcome. The table is the test and reads best whole, so
 * the function stays long; the loop that applies a row is short. */
static void test_rules(void)
{
	struct td_file_meta cf = cold_file();
	static const struct {
		int conf;
		const char *path;
		/* edits to the cold file */
		mode_t mode;
		uint32_t nlink;
		uid_t uid;
		gid_t gid;
		int64_t size;                            /* -1: unchanged */
		int64_t atime_age, mtime_age, ctime_age; /* ns; 0: unchanged */
		enum td_skip_reason want;
	} t[] = {
		{ C_BASE, "a/b.dat", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_BASE, "a/b.dat", S_IFLNK | 0777, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NOT_REGULAR },
		{ C_BASE, "a/b.dat", S_IFDIR | 0755, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NOT_REGULAR },
		{ C_BASE, "a/b.dat", 0, 2, 0, 0, -1, 0, 0, 0, TD_SKIP_HARDLINKED },
		{ C_BASE, "a/b.dat", S_IFREG | 04755, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_SETUID_SETGID },
		{ C_BASE, "a/b.dat", S_IFREG | 02755, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_SETUID_SETGID },
		{ C_BASE, "a/b.dat", S_IFREG | 01755, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_BASE, "x.tmp", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_EXCLUDED },
		{ C_BASE, "p/.git/objects/x", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_EXCLUDED },
		/* exclusion wins over type checks? no: type first */
		{ C_BASE, "x.tmp", 0, 2, 0, 0, -1, 0, 0, 0, TD_SKIP_HARDLINKED },
		/* sizes: min_size 1 MiB is inclusive */
		{ C_BASE, "f", 0, 0, 0, 0, (int64_t)MiB, 0, 0, 0, TD_SKIP_NONE },
		{ C_BASE, "f", 0, 0, 0, 0, (int64_t)MiB - 1, 0, 0, 0, TD_SKIP_TOO_SMALL },
		{ C_BASE, "f", 0, 0, 0, 0, 0, 0, 0, 0, TD_SKIP_TOO_SMALL },
		{ C_SIZES, "f", 0, 0, 0, 0, 0, 0, 0, 0, TD_SKIP_NONE },
		{ C_SIZES, "f", 0, 0, 0, 0, (int64_t)(100 * MiB), 0, 0, 0, TD_SKIP_NONE },
		{ C_SIZES, "f", 0, 0, 0, 0, (int64_t)(100 * MiB) + 1, 0, 0, 0, TD_SKIP_TOO_LARGE },
		/* ages: exactly min_age is old enough */
		{ C_BASE, "f", 0, 0, 0, 0, -1, 90 * DAY, 0, 0, TD_SKIP_NONE },
		{ C_BASE, "f", 0, 0, 0, 0, -1, 90 * DAY - 1, 0, 0, TD_SKIP_TOO_YOUNG },
		{ C_BASE, "f", 0, 0, 0, 0, -1, -5 * DAY, 0, 0, TD_SKIP_TOO_YOUNG }, /* future */
		{ C_AGE_MTIME, "f", 0, 0, 0, 0, -1, 1, 0, 0, TD_SKIP_NONE },
		{ C_AGE_MTIME, "f", 0, 0, 0, 0, -1, 0, 90 * DAY - 1, 0, TD_SKIP_TOO_YOUNG },
		{ C_AGE_CTIME, "f", 0, 0, 0, 0, -1, 1, 1, 0, TD_SKIP_NONE },
		{ C_AGE_CTIME, "f", 0, 0, 0, 0, -1, 0, 0, DAY, TD_SKIP_TOO_YOUNG },
		{ C_AGE_NEWEST, "f", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_AGE_NEWEST, "f", 0, 0, 0, 0, -1, DAY, 0, 0, TD_SKIP_TOO_YOUNG },
		{ C_AGE_NEWEST, "f", 0, 0, 0, 0, -1, 0, DAY, 0, TD_SKIP_TOO_YOUNG },
		{ C_AGE_NEWEST, "f", 0, 0, 0, 0, -1, 0, 0, DAY, TD_SKIP_TOO_YOUNG },
		{ C_AGE_NEWEST, "f", 0, 0, 0, 0, -1, 90 * DAY, 91 * DAY, 95 * DAY, TD_SKIP_NONE },
		/* include */
		{ C_INC, "a/b.iso", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_INC, "video/x/y.mkv", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_INC, "a/video/y.mkv", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NOT_INCLUDED },
		{ C_INC, "video/y.tmp", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_EXCLUDED },
		/* owners and groups */
		{ C_OWN, "f", 0, 0, 1001, 0, -1, 0, 0, 0, TD_SKIP_NONE },
		{ C_OWN, "f", 0, 0, 0, 0, -1, 0, 0, 0, TD_SKIP_NONE }, /* uid 1000 unchanged */
		{ C_OWN, "f", 0, 0, 1002, 0, -1, 0, 0, 0, TD_SKIP_OWNER },
		{ C_OWN_GRP, "f", 0, 0, 1001, 101, -1, 0, 0, 0, TD_SKIP_GROUP },
		{ C_OWN_GRP, "f", 0, 0, 1002, 101, -1, 0, 0, 0, TD_SKIP_OWNER },
		/* combinations: first failing rule wins, in the documented order */
		{ C_OWN_GRP, "f.tmp", 0, 0, 1002, 101, 5, DAY, 0, 0, TD_SKIP_EXCLUDED },
		{ C_OWN_GRP, "f", 0, 0, 1001, 100, 5, DAY, 0, 0, TD_SKIP_TOO_SMALL },
		{ C_SIZES, "f", 0, 0, 0, 0, (int64_t)(200 * MiB), DAY, 0, 0, TD_SKIP_TOO_LARGE },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct td_policy_conf c = base_conf();
		struct td_policy *p = NULL;
		struct td_file_meta m = cf;
		enum td_skip_reason got;

		apply(&c, t[i].conf);
		if (t[i].mode)
			m.mode = t[i].mode;
		if (t[i].nlink)
			m.nlink = t[i].nlink;
		if (t[i].uid)
			m.uid = t[i].uid;
		if (t[i].gid)
			m.gid = t[i].gid;
		if (t[i].size >= 0)
			m.size = (uint64_t)t[i].size;
		if (t[i].atime_age)
			m.atime_ns = NOW - t[i].atime_age;
		if (t[i].mtime_age)
			m.mtime_ns = NOW - t[i].mtime_age;
		if (t[i].ctime_age)
			m.ctime_ns = NOW - t[i].ctime_age;
		REQUIRE(td_policy_new(&p, &c, NOW) == 0);
		got = td_policy_check(p, t[i].path, strlen(t[i].path), &m);
		td_test_checks++;
		if (got != t[i].want)
			td_test_fail(__FILE__, __LINE__, "rule row %zu (%s): got %s, want %s", i,
			             t[i].path, td_skip_name(got), td_skip_name(t[i].want));
		td_policy_free(p);
	}
}

static void test_buckets(void)
{
	struct td_policy_conf c = base_conf();
	struct td_policy *p = NULL;
	struct td_file_meta m = cold_file();
	static const struct {
		int64_t age;
		enum td_age_bucket b;
	} t[] = {
		{ 0, TD_AGE_LT_30D },           { 30 * DAY - 1, TD_AGE_LT_30D },
		{ 30 * DAY, TD_AGE_30_90D },    { 90 * DAY, TD_AGE_90_180D },
		{ 180 * DAY, TD_AGE_180_365D }, { 365 * DAY - 1, TD_AGE_180_365D },
		{ 365 * DAY, TD_AGE_GT_1Y },    { -DAY, TD_AGE_LT_30D },
	};

	REQUIRE(td_policy_new(&p, &c, NOW) == 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		m.atime_ns = NOW - t[i].age;
		CHECK_INT(td_policy_age_bucket(p, &m), t[i].b);
	}
	CHECK_STR(td_skip_name(TD_SKIP_HARDLINKED), "hardlinked");
	CHECK_STR(td_skip_name(TD_SKIP_VANISHED), "vanished");
	CHECK_STR(td_age_bucket_name(TD_AGE_GT_1Y), ">1y");
	for (int r = 0; r < TD_SKIP__MAX; r++)
		CHECK(td_skip_name(r) != NULL && strcmp(td_skip_name(r), "unknown") != 0);
	td_policy_free(p);
}

static void test_root_of(void)
{
	const char *roots[] = { "/srv/data", "/srv/data/projects/", "/", "/srv/dat" };
	const char *p = "/srv/data/projects/a.iso";

	/* The longest root wins, a trailing '/' is ignored, a prefix that is not a
	 * whole component never holds, and a root never holds itself. */
	CHECK(td_policy_root_of(roots, 4, p, strlen(p)) == roots[1]);
	CHECK(td_policy_root_of(roots, 1, p, strlen(p)) == roots[0]);
	CHECK(td_policy_root_of(roots + 3, 1, p, strlen(p)) == NULL);
	CHECK(td_policy_root_of(roots, 2, "/srv/data", 9) == NULL);
	CHECK(td_policy_root_of(roots, 2, "/srv/data/", 10) == NULL);
	CHECK(td_policy_root_of(roots, 2, "/srv/datax/f", 12) == NULL);
	CHECK(td_policy_root_of(roots + 2, 1, "/etc/passwd", 11) == roots[2]);
	CHECK(td_policy_root_of(roots + 2, 1, "/", 1) == NULL);
}

int main(void)
{
	TD_RUN(test_rules);
	TD_RUN(test_buckets);
	TD_RUN(test_root_of);
	return td_test_done();
}
