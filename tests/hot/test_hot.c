/* Unit tests for lib/hot.c: counting the days a copy was read. */
#include "hot.h"
#include "testlib.h"

#include <string.h>

#define DAY (86400LL * 1000000000LL)

static void test_first_sight_counts_nothing(void)
{
	char rec[TD_HOT_REC_MAX];

	CHECK(!td_hot_count(NULL, 5 * DAY, 1, 7 * DAY, rec));
	CHECK_STR(rec, "432000000000000 432000000000000 0");
	/* garbage is a first sight too */
	CHECK(!td_hot_count("nonsense", 5 * DAY, 1, 7 * DAY, rec));
}

static void test_daily_reads_qualify(void)
{
	char a[TD_HOT_REC_MAX], b[TD_HOT_REC_MAX];
	bool hot = false;

	td_hot_count(NULL, 0, 5, 7 * DAY, a);
	for (int d = 1; d <= 5; d++) {
		hot = td_hot_count(a, d * DAY, 5, 7 * DAY, b);
		CHECK(hot == (d == 5));
		memcpy(a, b, sizeof(a));
	}
	CHECK(hot);
}

static void test_no_read_no_count(void)
{
	char a[TD_HOT_REC_MAX], b[TD_HOT_REC_MAX];

	td_hot_count(NULL, DAY, 2, 7 * DAY, a);
	td_hot_count(a, 2 * DAY, 2, 7 * DAY, b); /* one read */
	for (int i = 0; i < 10; i++) {           /* scans that see the same atime */
		CHECK(!td_hot_count(b, 2 * DAY, 2, 7 * DAY, a));
		memcpy(b, a, sizeof(a));
	}
	CHECK_STR(b, "172800000000000 172800000000000 1");
}

/* Reads spread wider than the window start it again. */
static void test_window(void)
{
	char a[TD_HOT_REC_MAX], b[TD_HOT_REC_MAX];

	td_hot_count(NULL, 0, 3, 7 * DAY, a);
	td_hot_count(a, 1 * DAY, 3, 7 * DAY, b);
	td_hot_count(b, 2 * DAY, 3, 7 * DAY, a);
	/* the third read comes 9 days after the first: a new window, count 1 */
	CHECK(!td_hot_count(a, 10 * DAY, 3, 7 * DAY, b));
	CHECK_STR(b, "864000000000000 864000000000000 1");
	/* reads = 0: never */
	CHECK(!td_hot_count(b, 11 * DAY, 0, 7 * DAY, a));
}

int main(void)
{
	TD_RUN(test_first_sight_counts_nothing);
	TD_RUN(test_daily_reads_qualify);
	TD_RUN(test_no_read_no_count);
	TD_RUN(test_window);
	return td_test_done();
}
