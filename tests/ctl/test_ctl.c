/* The control-socket wire format: framing with a cap, garbage requests, paths
 * as JSON and base64 both ways, who counts as an admin (from the socket's
 * credentials), and checking paths with a peer's own permissions. */
#include "ctl.h"
#include "testlib.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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
}

/* A peer's credentials come from the socket, as the kernel recorded them at
 * connect: a child that drops to uid 65534 with supplementary group 4321
 * connects and exits before we look, so no pid could tell us anything. */
static void test_peer_from_socket(void)
{
	const char *dir = td_test_tmpdir("ctl-peer");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct td_ctl_peer p = { 0 };
	int lfd, fd, st;
	pid_t pid;

	if (geteuid() != 0)
		td_test_missing("root (to connect as another uid)");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	REQUIRE(chmod(dir, 0755) == 0);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	        chmod(sa.sun_path, 0666) == 0 && listen(lfd, 4) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		gid_t g = 4321;
		int cfd;

		if (setgroups(1, &g) < 0 || setgid(4322) < 0 || setuid(65534) < 0)
			_exit(2);
		cfd = socket(AF_UNIX, SOCK_STREAM, 0);
		_exit(cfd >= 0 && connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 3);
	}
	REQUIRE(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fd = accept(lfd, NULL, NULL);
	REQUIRE(fd >= 0);
	CHECK_INT(td_ctl_peer_get(&p, fd), 0);
	CHECK_INT(p.uid, 65534);
	CHECK_INT(p.gid, 4322);
	CHECK_INT(p.n_groups, 1);
	CHECK(p.n_groups == 1 && p.groups[0] == 4321);
	CHECK(td_ctl_peer_is_admin(&p, true, 4321));  /* supplementary */
	CHECK(td_ctl_peer_is_admin(&p, true, 4322));  /* primary */
	CHECK(!td_ctl_peer_is_admin(&p, true, 4323)); /* a group it is not in */
	CHECK(!td_ctl_peer_is_admin(&p, false, 4321));
	td_ctl_peer_free(&p);
	close(fd);
	close(lfd);
	td_test_rmtree(dir);
}

struct held {
	const struct td_ctl_peer *p;
	int ready[2], go[2];
};

/* Holds a peer's credentials on its own thread until told to drop them. */
static void *hold_peer(void *arg)
{
	struct held *h = arg;
	struct td_ctl_self self;
	char c = td_ctl_as_peer(&self, h->p) == 0 ? 'y' : 'n';

	if (write(h->ready[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		abort();
	if (c == 'y')
		td_ctl_as_self(&self);
	return NULL;
}

/* The kernel checks paths as the peer, groups included, on that thread only. */
static void test_as_peer(void)
{
	const char *dir = td_test_tmpdir("ctl-as-peer");
	char sub[4096], file[4200];
	gid_t g4321 = 4321;
	struct td_ctl_peer nobody = { .uid = 65534, .gid = 65534 };
	struct td_ctl_peer member = { .uid = 65534, .gid = 65534, .groups = &g4321, .n_groups = 1 };
	struct td_ctl_self self;
	struct held h = { .p = &nobody };
	struct stat st;
	pthread_t t;
	char c;

	if (geteuid() != 0)
		td_test_missing("root (to act as another uid)");
	snprintf(sub, sizeof(sub), "%s/d", dir);
	snprintf(file, sizeof(file), "%s/f", sub);
	REQUIRE(chmod(dir, 0755) == 0 && mkdir(sub, 0750) == 0 && chown(sub, 0, 4321) == 0);
	REQUIRE(close(open(file, O_CREAT | O_WRONLY, 0644)) == 0);
	REQUIRE(td_ctl_as_peer(&self, &nobody) == 0);
	CHECK(lstat(file, &st) < 0 && errno == EACCES);
	td_ctl_as_self(&self);
	CHECK_INT(setfsuid((uid_t)-1), 0);
	CHECK(lstat(file, &st) == 0);
	REQUIRE(td_ctl_as_peer(&self, &member) == 0);
	CHECK(lstat(file, &st) == 0); /* its supplementary group may search d */
	td_ctl_as_self(&self);
	/* Another thread acting as nobody changes nothing here. */
	REQUIRE(pipe(h.ready) == 0 && pipe(h.go) == 0);
	REQUIRE(pthread_create(&t, NULL, hold_peer, &h) == 0);
	REQUIRE(read(h.ready[0], &c, 1) == 1);
	CHECK(c == 'y');
	CHECK(lstat(file, &st) == 0);
	CHECK_INT(setfsuid((uid_t)-1), 0);
	REQUIRE(write(h.go[1], "y", 1) == 1);
	pthread_join(t, NULL);
	td_test_rmtree(dir);
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
	TD_RUN(test_peer_from_socket);
	TD_RUN(test_as_peer);
	return td_test_done();
}
