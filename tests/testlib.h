/*
 * testlib — the tiny assertion kit every tierd test links with.
 *
 * A test program runs its cases with TD_RUN(fn); each failed CHECK prints
 * file:line and the expression, marks the program failed, and the case goes on
 * (CHECK) or returns at once (REQUIRE). td_test_done() prints a summary and
 * returns the exit status for main(). Programs run in their own process under
 * ctest with a timeout, so a hang is reported as a failure, not a stuck run.
 */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern int td_test_failures;
extern int td_test_checks;

void td_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		td_test_checks++;                                                                  \
		if (!(expr))                                                                       \
			td_test_fail(__FILE__, __LINE__, "CHECK(%s)", #expr);                      \
	} while (0)

#define REQUIRE(expr)                                                                              \
	do {                                                                                       \
		td_test_checks++;                                                                  \
		if (!(expr)) {                                                                     \
			td_test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #expr);                    \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long td_a_ = (long long)(a), td_b_ = (long long)(b);                          \
		td_test_checks++;                                                                  \
		if (td_a_ != td_b_)                                                                \
			td_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, td_a_,  \
			             td_b_);                                                       \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *td_a_ = (a), *td_b_ = (b);                                             \
		td_test_checks++;                                                                  \
		if (!td_a_ || !td_b_ || strcmp(td_a_, td_b_) != 0)                                 \
			td_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,     \
			             td_a_ ? td_a_ : "(null)", td_b_ ? td_b_ : "(null)");          \
	} while (0)

/* Checks that `hay` contains `needle`. */
#define CHECK_CONTAINS(hay, needle)                                                                \
	do {                                                                                       \
		const char *td_h_ = (hay), *td_n_ = (needle);                                      \
		td_test_checks++;                                                                  \
		if (!td_h_ || !strstr(td_h_, td_n_))                                               \
			td_test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",         \
			             td_h_ ? td_h_ : "(null)", td_n_);                             \
	} while (0)

#define TD_RUN(fn)                                                                                 \
	do {                                                                                       \
		int td_before_ = td_test_failures;                                                 \
		fn();                                                                              \
		printf("%s %s\n", td_test_failures == td_before_ ? "ok" : "FAILED", #fn);          \
		fflush(stdout);                                                                    \
	} while (0)

/* Prints the summary and returns main()'s exit status (0 only if every check passed
 * and at least one check ran). */
int td_test_done(void);

/* Makes a fresh private directory under $TMPDIR (or /tmp) and returns its path
 * (static storage, valid until the next call). Removed by td_test_rmtree. */
const char *td_test_tmpdir(const char *tag);

/* The temp tree of the tests that drive the mover directly: top/ holds data/
 * (the policy root), state/ (with catalog.db), cache/, run/ and tier/ (a dir
 * target), each made with the mode tierd gives it. */
struct td_test_tree {
	char top[4096], root[4200], state[4200], cache[4200], run[4200], tier[4200], catdb[4300];
};
void td_test_tree_make(struct td_test_tree *t, const char *tag);

struct td_mover_opts;
struct td_target;
struct td_mover;
/* Opens a dir target "nas" on t->tier, on `loop` (initialised here), and a
 * mover over t's directories with the tests' settings (4 transfers, 100 ms
 * grace); the caller sets mo's hooks first and owns both objects. Exits the
 * test on failure. */
void td_test_mover_open(struct td_test_tree *t, void *loop, struct td_mover_opts *mo,
                        struct td_target **target, struct td_mover **mover);
/* Closes what td_test_mover_open opened, running `loop` until both close
 * callbacks came, and checks the loop is then empty. */
void td_test_mover_close(void *loop, struct td_target *target, struct td_mover *mover);
int td_test_rmtree(const char *path);

/* S3 settings for tests that need the radosgw started by scripts/test. */
struct td_test_s3 {
	const char *endpoint; /* http://127.0.0.1:PORT */
	const char *access_key;
	const char *secret_key;
	const char *bucket;
	const char *region;
};

/* A component the test needs is not there: exits 1 (a failure) under CI or
 * with TD_TESTS_MAY_SKIP=0 in the environment (scripts/test), else exits 77 so
 * ctest reports a skip. Same rule as tests/lib/missing.sh. */
void td_test_missing(const char *what) __attribute__((noreturn));

/* Fills `s3` from TD_S3_* variables; td_test_missing when they are not set. */
void td_test_require_s3(struct td_test_s3 *s3);
