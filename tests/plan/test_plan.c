/* The units and paths of plan's output (lib/plan.c, with lib/ctl.c's path encoding). */
#include "ctl.h"
#include "plan.h"
#include "testlib.h"
#include "util.h"

#include <stdint.h>
#include <sys/stat.h>

static void test_units_and_json_paths(void)
{
	char b[32];
	json_t *o = json_object();

	CHECK_STR(td_human_bytes(b, sizeof(b), 0), "0 B");
	CHECK_STR(td_human_bytes(b, sizeof(b), 1023), "1023 B");
	CHECK_STR(td_human_bytes(b, sizeof(b), 1024), "1.0 KiB");
	CHECK_STR(td_human_bytes(b, sizeof(b), 1536 * 1024), "1.5 MiB");
	CHECK_STR(td_human_bytes(b, sizeof(b), 5ULL << 40), "5.0 TiB");
	REQUIRE(o);
	/* valid UTF-8, even with control characters: as is, no _b64 */
	CHECK(td_ctl_set_path(o, "path", "a\nb\xc3\xa9", 5) == 0);
	CHECK_STR(json_string_value(json_object_get(o, "path")), "a\nb\xc3\xa9");
	CHECK(json_object_get(o, "path_b64") == NULL);
	/* invalid: escaped text plus the exact bytes */
	CHECK(td_ctl_set_path(o, "root", "x\xff\\", 3) == 0);
	CHECK_STR(json_string_value(json_object_get(o, "root")), "x\\xff\\\\");
	CHECK_STR(json_string_value(json_object_get(o, "root_b64")), "eP9c");
	json_decref(o);
}

int main(void)
{
	TD_RUN(test_units_and_json_paths);
	return td_test_done();
}
