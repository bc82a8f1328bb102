/* Unit tests for lib/util.c: hex and log-escaping helpers. */
#include "testlib.h"
#include "util.h"

#include <stdlib.h>

static void test_hex(void)
{
	char out[9];
	const unsigned char in[] = { 0x00, 0xab, 0x10, 0xff };

	td_hex(out, in, sizeof(in));
	CHECK_STR(out, "00ab10ff");
}

static void test_escape(void)
{
	char *e = td_escape("a\nb\t\\\xff", 6);

	REQUIRE(e);
	CHECK_STR(e, "a\\nb\\t\\\\\\xff");
	free(e);
}

int main(void)
{
	TD_RUN(test_hex);
	TD_RUN(test_escape);
	return td_test_done();
}
