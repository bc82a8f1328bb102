/* The control-socket wire format: framing with a cap, and garbage requests. */
#include "ctl.h"
#include "testlib.h"

#include <stdlib.h>

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

int main(void)
{
	TD_RUN(test_framing_split_and_joined);
	TD_RUN(test_framing_cap);
	TD_RUN(test_parse_good);
	TD_RUN(test_parse_garbage);
	TD_RUN(test_replies);
	return td_test_done();
}
