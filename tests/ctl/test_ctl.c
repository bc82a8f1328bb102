/* The control-socket wire format: framing with a cap, garbage requests, paths
 * as JSON and base64 both ways, and who counts as an admin. */
#include "ctl.h"
#include "testlib.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

struct lines {
	int n, n_toolong;
	char last[256];
	size_t last_len;
};

static int on_line(void *ctx, int err, const char *line, size_t len)
{
	struct lines *l = ctx;

	if (err == -EMSGSIZE) {
		l->n_toolong++;
		return 0;
	}
	l->n++;
	l->last_len = len;
	snprintf(l->last, sizeof(l->last), "%.*s", (int)(len < 255 ? len : 255), line);
	return 0;
}

static void test_framing_split_and_joined(void)
{
	struct td_ctl_framer f;
	struct lines l = { 0 };

	td_ctl_framer_init(&f);
	CHECK_INT(td_ctl_framer_feed(&f, "{\"cmd\":", 7, on_line, &l), 0);
	CHECK_INT(l.n, 0);
	CHECK_INT(td_ctl_framer_feed(&f, "\"a\"}\n{\"cmd\":\"b\"}\n{", 19, on_line, &l), 0);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.last, "{\"cmd\":\"b\"}");
	CHECK_INT(td_ctl_framer_feed(&f, "}\n\n", 3, on_line, &l), 0);
	CHECK_INT(l.n, 4); /* "{}" and an empty line */
	CHECK_INT(l.last_len, 0);
	td_ctl_framer_free(&f);
}

static void test_framing_cap(void)
{
	struct td_ctl_framer f;
	struct lines l = { 0 };
	char *big = malloc(TD_CTL_MAX_LINE + 10);

	REQUIRE(big);
	memset(big, 'x', TD_CTL_MAX_LINE + 10);
	td_ctl_framer_init(&f);
	/* Exactly at the cap is fine. */
	CHECK_INT(td_ctl_framer_feed(&f, big, TD_CTL_MAX_LINE, on_line, &l), 0);
	CHECK_INT(td_ctl_framer_feed(&f, "\n", 1, on_line, &l), 0);
	CHECK_INT(l.n, 1);
	CHECK_INT(l.last_len, TD_CTL_MAX_LINE);
	/* One byte over, fed in pieces with no newline: reported once, then discarded
	 * until the newline, and the next line is read normally. */
	CHECK_INT(td_ctl_framer_feed(&f, big, TD_CTL_MAX_LINE, on_line, &l), 0);
	CHECK_INT(td_ctl_framer_feed(&f, big, 10, on_line, &l), 0);
	CHECK_INT(td_ctl_framer_feed(&f, big, TD_CTL_MAX_LINE, on_line, &l), 0);
	CHECK_INT(l.n_toolong, 1);
	CHECK_INT(td_ctl_framer_feed(&f, "xx\nok\n", 6, on_line, &l), 0);
	CHECK_INT(l.n_toolong, 1);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.last, "ok");
	td_ctl_framer_free(&f);
	free(big);
}

static void test_parse_good(void)
{
	char err[256], *cmd = NULL;
	json_t *args = NULL;
	const char *req = "{\"cmd\":\"migrate\",\"args\":{\"paths\":[\"/a\"]}}";

	CHECK_INT(td_ctl_parse_request(req, strlen(req), &cmd, &args, err, sizeof(err)), 0);
	CHECK_STR(cmd, "migrate");
	CHECK(json_is_array(json_object_get(args, "paths")));
	free(cmd);
	json_decref(args);
	cmd = NULL;
	CHECK_INT(td_ctl_parse_request("{\"cmd\":\"status\"}", 16, &cmd, &args, err, sizeof(err)),
	          0);
	CHECK(json_is_object(args) && json_object_size(args) == 0);
	free(cmd);
	json_decref(args);
}

static void test_parse_garbage(void)
{
	static const struct {
		const char *line;
		const char *msg;
	} cases[] = {
		{ "", "malformed request" },
		{ "hello", "malformed request" },
		{ "[1,2]", "not a JSON object" },
		{ "{}", "\"cmd\" must be a string" },
		{ "{\"cmd\":42}", "\"cmd\" must be a string" },
		{ "{\"cmd\":\"\"}", "bad \"cmd\"" },
		{ "{\"cmd\":\"a\\u0000b\"}", "malformed request" },
		{ "{\"cmd\":\"status\",\"args\":[]}", "\"args\" must be an object" },
		{ "{\"cmd\":\"a\",\"cmd\":\"b\"}", "malformed request" },
		{ "{\"cmd\":\"status\"} trailing", "malformed request" },
		{ "\xff\xfe{\"cmd\":1}", "malformed request" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "", *cmd = (char *)"untouched";
		json_t *args = (json_t *)0x1;
		int r = td_ctl_parse_request(cases[i].line, strlen(cases[i].line), &cmd, &args, err,
		                             sizeof(err));

		CHECK_INT(r, -EINVAL);
		CHECK_CONTAINS(err, cases[i].msg);
		CHECK_STR(cmd, "untouched"); /* outputs untouched on failure */
		CHECK(args == (json_t *)0x1);
	}
}

static void test_replies(void)
{
	json_t *r = td_ctl_error_reply(-EPERM, "only root may %s", "migrate");
	char *line;
	size_t len = 0;

	REQUIRE(r);
	line = td_ctl_encode(r, &len);
	REQUIRE(line);
	CHECK_STR(line, "{\"ok\":false,\"error\":\"only root may migrate\",\"errno\":\"EPERM\"}\n");
	CHECK_INT(len, strlen(line));
	free(line);
	json_decref(r);
	/* A message too large for one line is refused rather than truncated. */
	{
		char *big = malloc(TD_CTL_MAX_LINE);
		json_t *m;

		REQUIRE(big);
		memset(big, 'a', TD_CTL_MAX_LINE - 1);
		big[TD_CTL_MAX_LINE - 1] = '\0';
		m = json_pack("{s:s}", "x", big);
		CHECK(td_ctl_encode(m, NULL) == NULL);
		json_decref(m);
		free(big);
	}
}

static void test_b64_round_trip(void)
{
	/* Every length mod 3, and every byte value. */
	unsigned char raw[256];

	for (int i = 0; i < 256; i++)
		raw[i] = (unsigned char)i;
	for (size_t n = 0; n <= sizeof(raw); n += (n < 8 ? 1 : 61)) {
		char *enc = td_ctl_b64_encode(raw, n), *dec = NULL;
		size_t len = 99;

		REQUIRE(enc);
		CHECK_INT(strlen(enc), 4 * ((n + 2) / 3));
		CHECK_INT(td_ctl_b64_decode(enc, &dec, &len), 0);
		CHECK_INT(len, n);
		CHECK(dec && memcmp(dec, raw, n) == 0 && dec[n] == '\0');
		free(enc);
		free(dec);
	}
	{
		char *enc = td_ctl_b64_encode("/a/\xff", 4), *dec = (char *)"untouched";
		size_t len = 7;

		CHECK_STR(enc, "L2Ev/w==");
		free(enc);
		CHECK_INT(td_ctl_b64_decode("abc", &dec, &len), -EINVAL); /* not a multiple of 4 */
		CHECK_INT(td_ctl_b64_decode("a*c=", &dec, &len), -EINVAL);
		CHECK_STR(dec, "untouched");
		CHECK_INT(len, 7);
	}
}

static void test_set_path(void)
{
	json_t *o = json_object();

	CHECK_INT(td_ctl_set_path(o, "path", "/srv/\xc3\xa9t\xc3\xa9", 10), 0);
	CHECK_STR(json_string_value(json_object_get(o, "path")), "/srv/\xc3\xa9t\xc3\xa9");
	CHECK(!json_object_get(o, "path_b64"));
	/* Not UTF-8: escaped for people, base64 for programs. */
	CHECK_INT(td_ctl_set_path(o, "orig", "/x\xff\n", 4), 0);
	CHECK_STR(json_string_value(json_object_get(o, "orig")), "/x\\xff\\n");
	CHECK_STR(json_string_value(json_object_get(o, "orig_b64")), "L3j/Cg==");
	json_decref(o);
}

/* tierctl's encoding of a request, decoded as tierd does. */
static void test_request_paths_round_trip(void)
{
	static const char *const in[] = { "/srv/a", "/srv/\xff\xfe", "/srv/\xc3\xa9", "/" };
	json_t *args = json_object();
	char **v = NULL, err[128];
	size_t *l = NULL, n = 0;

	for (size_t i = 0; i < TD_ARRAY_SIZE(in); i++)
		CHECK_INT(td_ctl_add_path(args, in[i], strlen(in[i])), 0);
	CHECK_INT(json_array_size(json_object_get(args, "paths")), 3);
	CHECK_INT(json_array_size(json_object_get(args, "paths_b64")), 1);
	CHECK_INT(td_ctl_request_paths(args, 10, &v, &l, &n, err, sizeof(err)), 0);
	REQUIRE(n == 4);
	/* Strings first, then the base64 ones. */
	CHECK_STR(v[0], "/srv/a");
	CHECK_STR(v[1], "/srv/\xc3\xa9");
	CHECK_STR(v[2], "/");
	CHECK_STR(v[3], "/srv/\xff\xfe");
	CHECK_INT(l[3], 7);
	td_ctl_paths_free(v, l, n);
	CHECK_INT(td_ctl_request_paths(args, 3, &v, &l, &n, err, sizeof(err)), -E2BIG);
	CHECK_STR(err, "at most 3 paths per request");
	json_decref(args);
}

static void check_bad_paths(const char *json, const char *why)
{
	json_t *args = json_loads(json, 0, NULL);
	char **v = (char **)1, err[128] = "";
	size_t *l = (size_t *)1, n = 99;

	CHECK_INT(td_ctl_request_paths(args, 10, &v, &l, &n, err, sizeof(err)), -EINVAL);
	CHECK_STR(err, why);
	CHECK(v == (char **)1 && l == (size_t *)1 && n == 99);
	json_decref(args);
}

static void test_request_paths_refused(void)
{
	check_bad_paths("{}", "expected \"paths\": a list of absolute paths");
	check_bad_paths("{\"paths\": \"/a\"}", "expected \"paths\": a list of absolute paths");
	check_bad_paths("{\"paths\": []}", "expected \"paths\": a list of absolute paths");
	check_bad_paths("{\"paths\": [1]}", "malformed \"paths\"");
	check_bad_paths("{\"paths_b64\": [\"abc\"]}", "malformed \"paths\"");
	check_bad_paths("{\"paths\": [\"rel/a\"]}", "paths must be absolute");
	check_bad_paths("{\"paths\": [\"\"]}", "paths must be absolute");
	check_bad_paths("{\"paths_b64\": [\"L2EAYg==\"]}", "paths must be absolute"); /* "/a\0b" */
}

static void test_admin(void)
{
	gid_t groups[] = { 10, 20, 30 };

	CHECK(td_ctl_is_admin(0, 0, NULL, 0, false, 0));         /* root, no admin group */
	CHECK(td_ctl_is_admin(0, 99, NULL, 0, true, 20));        /* root */
	CHECK(!td_ctl_is_admin(1000, 20, groups, 3, false, 20)); /* no admin group: root only */
	CHECK(td_ctl_is_admin(1000, 20, NULL, 0, true, 20));     /* primary group */
	CHECK(td_ctl_is_admin(1000, 99, groups, 3, true, 30));   /* supplementary group */
	CHECK(!td_ctl_is_admin(1000, 99, groups, 3, true, 40));
	CHECK(!td_ctl_is_admin(1000, 99, groups, 2, true, 30)); /* only n_groups count */
	/* The peer's supplementary groups come from /proc: ours, as a stand-in. */
	{
		gid_t mine[256];
		int n = getgroups(256, mine);

		REQUIRE(n >= 0);
		for (int i = 0; i < n; i++)
			if (mine[i] != getgid())
				CHECK(
				    td_ctl_peer_is_admin(4242, getgid(), getpid(), true, mine[i]));
		CHECK(!td_ctl_peer_is_admin(4242, 4243, getpid(), true, 4244));
		CHECK(td_ctl_peer_is_admin(4242, 4243, getpid(), true, 4243));
		CHECK(!td_ctl_peer_is_admin(4242, 4243, getpid(), false, 4243));
		CHECK(td_ctl_peer_is_admin(0, 4243, getpid(), false, 0));
		CHECK(!td_ctl_peer_is_admin(4242, 1, 0x7ffffff0, true, 4244)); /* no such pid */
	}
}

int main(void)
{
	TD_RUN(test_framing_split_and_joined);
	TD_RUN(test_framing_cap);
	TD_RUN(test_parse_good);
	TD_RUN(test_parse_garbage);
	TD_RUN(test_replies);
	TD_RUN(test_b64_round_trip);
	TD_RUN(test_set_path);
	TD_RUN(test_request_paths_round_trip);
	TD_RUN(test_request_paths_refused);
	TD_RUN(test_admin);
	return td_test_done();
}
