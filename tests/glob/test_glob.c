/* Table-driven tests of glob matching (lib/glob.c). */
#include "glob.h"
#include "testlib.h"
#include "util.h"

#include <stdint.h>
#include <sys/stat.h>

static void test_glob(void)
{
	static const struct {
		const char *pat, *path;
		bool want;
	} t[] = {
		/* no '/': the name at any depth */
		{ "*", "a", true },
		{ "*", "x/y/z", true },
		{ "*.tmp", "a.tmp", true },
		{ "*.tmp", "d/e/a.tmp", true },
		{ "*.tmp", "d.tmp/a", false },
		{ "*.tmp", "a.tmpx", false },
		{ "a?c", "x/abc", true },
		{ "a?c", "x/ac", false },
		{ "[ab]*", "dir/bz", true },
		{ "[!ab]*", "dir/bz", false },
		{ "[^ab]*", "dir/cz", true },
		{ "[a-c]x", "bx", true },
		{ "[a-c]x", "dx", false },
		{ "[]]x", "]x", true },
		{ "[", "[", true },
		{ "a[", "a[", true },
		{ "\\*", "*", true },
		{ "\\*", "a", false },
		{ "", "a", false },
		{ "*", "", true },
		/* with '/': the root-relative path */
		{ "a/*", "a/b", true },
		{ "a/*", "a/b/c", false },
		{ "*/b", "a/b", true },
		{ "*/b", "x/a/b", false },
		{ "a/?", "a/b", true },
		{ "a?b/c", "a/b/c", false },
		{ "a[/]b/c", "a/b/c", false },
		{ "/a/*", "a/b", true },
		{ "**/x", "x", true },
		{ "**/x", "a/x", true },
		{ "**/x", "a/b/c/x", true },
		{ "**/x", "a/bx", false },
		{ "a/**", "a/b", true },
		{ "a/**", "a/b/c", true },
		{ "a/**", "ab/c", false },
		{ "a/**/b", "a/b", true },
		{ "a/**/b", "a/x/y/b", true },
		{ "a/**/b", "a/xb", false },
		{ "**/.git/**", ".git/config", true },
		{ "**/.git/**", "src/.git/objects/ab", true },
		{ "**/.git/**", "src/.gitignore", false },
		{ "**.c", "a/b/c.c", true },
		{ "a/**.c", "a/b/c.c", true },
		/* arbitrary bytes */
		{ "*.bin", "d\xff\xfe/n\nl.bin", true },
		{ "d?/*", "d\xff/x", true },
		{ "[\x80-\xff]*", "\xc3\xa9t\xe9", true },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool got = td_glob_match(t[i].pat, t[i].path, strlen(t[i].path));
		if (got != t[i].want)
			td_test_fail(__FILE__, __LINE__, "glob \"%s\" vs \"%s\": got %d", t[i].pat,
			             t[i].path, got);
		td_test_checks++;
	}
}

/* A backtracking matcher takes years on these; the NFA takes microseconds. */
static void test_glob_covers_dir(void)
{
	static const struct {
		const char *pat, *dir;
		bool want;
	} t[] = {
		{ "**/.git/**", ".git", true },
		{ "**/.git/**", "src/.git", true },
		{ "**/.git/**", "src/.git/objects", true },
		{ "**/.git/**", "src", false },
		{ "**/.git/**", "src/.gitx", false },
		{ "build/**", "build", true },
		{ "build/**", "a/build", false },
		{ "build/**/x", "build", false },
		{ "*/cache/**", "u/cache", true },
		{ "*/cache/**", "u/v/cache", false },
		{ "*.tmp", "d.tmp", false }, /* name patterns only ever match files */
		{ "**", "anything", false }, /* a name pattern: conservative */
		{ "x/**", "x", true },
		{ "a/**/", "a", false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct td_glob *g = NULL;
		REQUIRE(td_glob_compile(&g, t[i].pat) == 0);
		bool got = td_glob_covers_dir(g, t[i].dir, strlen(t[i].dir));
		if (got != t[i].want)
			td_test_fail(__FILE__, __LINE__, "covers \"%s\" dir \"%s\": got %d",
			             t[i].pat, t[i].dir, got);
		td_test_checks++;
		td_glob_free(g);
	}
}

static void test_glob_pathological(void)
{
	char name[4001], deep[4001];
	int64_t t0 = td_monotonic_ns();

	memset(name, 'a', 4000);
	name[4000] = '\0';
	for (int i = 0; i < 4000; i += 2) {
		deep[i] = 'a';
		deep[i + 1] = '/';
	}
	deep[3999] = 'a';
	deep[4000] = '\0';
	CHECK(!td_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", name, 4000));
	CHECK(td_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", name, 4000));
	CHECK(!td_glob_match("**/a/**/a/**/a/**/a/**/a/**/b", deep, 3999));
	CHECK(td_glob_match("**/a/**/a/**/a/**/a/**/a/**/a", deep, 3999));
	CHECK(!td_glob_match("a**a**a**a**a**a**a**a**b", deep, 3999));
	CHECK(td_monotonic_ns() - t0 < 2000000000LL);
	/* a pattern over the cap does not compile */
	{
		char big[TD_GLOB_MAX + 2];
		struct td_glob *g = NULL;
		memset(big, '*', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK_INT(td_glob_compile(&g, big), -EINVAL);
	}
}

int main(void)
{
	TD_RUN(test_glob);
	TD_RUN(test_glob_pathological);
	TD_RUN(test_glob_covers_dir);
	return td_test_done();
}
