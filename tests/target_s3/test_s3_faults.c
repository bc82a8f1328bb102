/*
 * test_s3_faults — the s3 backend against fault_peer.py (label unit): 500s,
 * 503 SlowDown, connection resets and truncated bodies are retried and end in
 * the right bytes; stalls, exhausted retries, 403, a full target (507) and
 * malformed XML fail with the right errno within a bounded time.
 */
#include "s3t.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static uv_loop_t loop;

struct peer {
	pid_t pid;
	int port;
	char endpoint[64];
};

static int peer_start(struct peer *p, const char *actions)
{
	const char *src = getenv("TD_SOURCE_DIR");
	char script[1024], line[32];
	char *argv[4];
	posix_spawn_file_actions_t fa;
	int pipefd[2];
	ssize_t n;
	size_t got = 0;

	snprintf(script, sizeof(script), "%s/tests/target_s3/fault_peer.py", src ? src : ".");
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	argv[0] = (char *)"python3";
	argv[1] = script;
	argv[2] = (char *)actions;
	argv[3] = NULL;
	if (posix_spawnp(&p->pid, "python3", &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -ENOENT;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	while (got < sizeof(line) - 1 && (n = read(pipefd[0], line + got, 1)) == 1) {
		if (line[got] == '\n')
			break;
		got++;
	}
	line[got] = '\0';
	close(pipefd[0]);
	p->port = atoi(line);
	snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d", p->port);
	return p->port > 0 ? 0 : -EIO;
}

static void peer_stop(struct peer *p)
{
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
}

static size_t count_write(char *b, size_t s, size_t n, void *u)
{
	char *out = u;
	size_t k = TD_MIN(s * n, (size_t)15);

	memcpy(out, b, k);
	out[k] = '\0';
	return s * n;
}

/* Asks the peer something (a blocking fetch: this is a test). */
static void peer_ask(struct peer *p, const char *what, char out[16])
{
	char url[128];
	CURL *e = curl_easy_init();

	out[0] = '\0';
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", p->port, what);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
	curl_easy_perform(e);
	curl_easy_cleanup(e);
}

/* How many S3 requests the peer has seen. */
static int peer_count(struct peer *p)
{
	char out[16];

	peer_ask(p, "__count", out);
	return atoi(out);
}

static bool virtual_host;

static struct td_target *peer_target(struct peer *p, unsigned attempts, int64_t stall_s)
{
	struct td_test_s3 s3 = { p->endpoint, "AKIDFAULT", "secret-fault", "b", "us-east-1" };
	struct td_target_conf c;
	struct td_target_error err;
	struct td_s3_tuning tu;
	struct td_target *t = NULL;

	s3t_conf(&c, &s3, "pfx/");
	if (virtual_host) {
		static char ep[64];

		/* curl resolves *.localhost to the loopback itself. */
		snprintf(ep, sizeof(ep), "http://localhost:%d", p->port);
		c.endpoint = ep;
		c.addressing = TD_ADDRESSING_VIRTUAL;
	}
	if (td_target_new(&t, &loop, &c, &err) < 0)
		return NULL;
	td_target_s3_tuning_default(&tu);
	tu.max_attempts = attempts;
	tu.backoff_base_ms = 20;
	tu.backoff_max_ms = 200;
	tu.low_speed_time_s = stall_s;
	tu.connect_timeout_s = 2;
	td_target_s3_tune(t, &tu);
	return t;
}

/* A peer playing `actions` and a target on it; NULL if either failed. */
static struct td_target *peer_open(struct peer *p, const char *actions, unsigned attempts,
                                   int64_t stall_s)
{
	struct td_target *t;

	if (peer_start(p, actions) < 0)
		return NULL;
	t = peer_target(p, attempts, stall_s);
	if (!t)
		peer_stop(p);
	return t;
}

static void peer_close(struct peer *p, struct td_target *t)
{
	s3t_close(&loop, t);
	peer_stop(p);
}

static int put_small(struct td_target *t, const char *key, const char *data,
                     struct td_target_error *err)
{
	struct td_put_result res;
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&loop, &s,
	                           td_target_put_buf(t, NULL, key, data, strlen(data), NULL, NULL,
	                                             0, &res, td_target_sync_cb, &s),
	                           err);
}

static size_t progress_last;
static bool progress_backwards;

static void on_progress(void *data, size_t got)
{
	(void)data;
	progress_backwards |= got < progress_last;
	progress_last = got;
}

/* Into three buffers of uneven sizes, so a resumed attempt must find its
 * place across them; progress must only grow. */
static int get_all(struct td_target *t, const char *key, char *buf, size_t cap, size_t *got,
                   struct td_target_error *err)
{
	struct td_target_sync s = { 0 };
	struct td_target_req *req = NULL;
	struct iovec iov[3] = { { buf, cap / 3 - 17 },
		                { buf + cap / 3 - 17, cap / 3 + 5 },
		                { buf + 2 * (cap / 3) - 12, cap - 2 * (cap / 3) + 12 } };
	int r = td_target_get_range_v(t, &req, key, 0, iov, 3, got, td_target_sync_cb, &s);

	progress_last = 0;
	progress_backwards = false;
	if (r == 0)
		td_target_req_on_progress(req, on_progress, NULL);
	r = td_target_sync_wait(&loop, &s, r, err);
	CHECK(!progress_backwards);
	if (r == 0)
		CHECK_INT(progress_last, *got);
	return r;
}

/* PUT then GET through the given faults; the data must come back whole. */
static void roundtrip_through(const char *actions, int want_requests)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;
	static char data[200001], back[300000];
	size_t got = 0;
	int r;

	printf("  faults: %s\n", actions);
	for (size_t i = 0; i < sizeof(data) - 1; i++)
		data[i] = (char)('a' + i % 26);
	data[sizeof(data) - 1] = '\0';
	REQUIRE((t = peer_open(&p, actions, 5, 5)));
	r = put_small(t, "obj", data, &err);
	if (r < 0)
		printf("  put: %s\n", err.message);
	CHECK_INT(r, 0);
	r = get_all(t, "obj", back, sizeof(back), &got, &err);
	if (r < 0)
		printf("  get: %s\n", err.message);
	CHECK_INT(r, 0);
	CHECK_INT(got, sizeof(data) - 1);
	CHECK(memcmp(back, data, sizeof(data) - 1) == 0);
	CHECK_INT(peer_count(&p), want_requests);
	peer_close(&p, t);
}

static void test_retried(void)
{
	roundtrip_through("500,500", 4);
	roundtrip_through("slowdown,ok,slowdown", 4);
	roundtrip_through("ok,reset", 3);
	roundtrip_through("reset,ok,reset,reset", 5);
	roundtrip_through("ok,truncate", 3); /* resumed with a Range from where it broke */
	roundtrip_through("ok,truncate,truncate", 4);
}

static void test_stall(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;
	static char data[50001], back[100000];
	size_t got;
	int64_t t0, ms;

	memset(data, 'y', sizeof(data) - 1);
	REQUIRE((t = peer_open(&p, "ok,stall,stall,stall", 2, 1)));
	CHECK_INT(put_small(t, "obj", data, &err), 0);
	t0 = td_monotonic_ns();
	CHECK_INT(get_all(t, "obj", back, sizeof(back), &got, &err), -ETIMEDOUT);
	ms = (td_monotonic_ns() - t0) / 1000000;
	printf("  stall: %s (%" PRId64 " ms)\n", err.message, ms);
	CHECK(ms < 10000);
	peer_close(&p, t);
}

static void test_exhausted(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;
	int64_t t0;

	REQUIRE((t = peer_open(&p, "500,500,500,500,500", 3, 5)));
	t0 = td_monotonic_ns();
	CHECK_INT(put_small(t, "obj", "x", &err), -EAGAIN);
	CHECK((td_monotonic_ns() - t0) / 1000000 < 5000);
	CHECK_INT(err.http_status, 500);
	CHECK_STR(err.code, "InternalError");
	CHECK(err.request_id[0] != '\0');
	CHECK_CONTAINS(err.message, "after 3 attempts");
	printf("  exhausted: %s\n", err.message);
	CHECK_INT(peer_count(&p), 3);
	peer_close(&p, t);

	/* 403 is not retried. */
	REQUIRE((t = peer_open(&p, "403", 5, 5)));
	CHECK_INT(put_small(t, "obj", "x", &err), -EACCES);
	CHECK_STR(err.code, "SignatureDoesNotMatch");
	CHECK_INT(peer_count(&p), 1);
	peer_close(&p, t);
}

/* A full target (HTTP 507) is -ENOSPC at once: not retried as a busy one. */
static void test_full(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;

	REQUIRE((t = peer_open(&p, "full,full,full", 5, 5)));
	CHECK_INT(put_small(t, "obj", "x", &err), -ENOSPC);
	CHECK_INT(err.http_status, 507);
	CHECK_CONTAINS(err.message, "target full");
	CHECK(strstr(err.message, "attempts") == NULL);
	printf("  full: %s\n", err.message);
	CHECK_INT(peer_count(&p), 1);
	peer_close(&p, t);
}

static void test_clear_errors(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;

	REQUIRE((t = peer_open(&p, "skew,nobucket,region", 5, 5)));
	CHECK(td_target_is_plaintext(t));
	CHECK_INT(put_small(t, "obj", "x", &err), -EACCES);
	CHECK_STR(err.code, "RequestTimeTooSkewed");
	CHECK_CONTAINS(err.message, "clock skew");
	/* The offset, from the answer's Date (the peer's is an hour ahead; a
	 * second or two of run time either way). */
	CHECK(strstr(err.message, "is 3600 s ahead of this host's") ||
	      strstr(err.message, "is 3599 s ahead of this host's") ||
	      strstr(err.message, "is 3601 s ahead of this host's"));
	CHECK_CONTAINS(err.message, "NTP");
	printf("  skew: %s\n", err.message);
	CHECK_INT(put_small(t, "obj", "x", &err), -ENOENT);
	CHECK_STR(err.code, "NoSuchBucket");
	CHECK_CONTAINS(err.message, "bucket \"b\" does not exist");
	CHECK_CONTAINS(err.message, "create it");
	printf("  no bucket: %s\n", err.message);
	/* AWS names the bucket's region: so do we, and what to set. */
	CHECK_INT(put_small(t, "obj", "x", &err), -EACCES);
	CHECK_STR(err.code, "AuthorizationHeaderMalformed");
	CHECK_CONTAINS(err.message, "is in region \"eu-central-1\", not \"us-east-1\"");
	CHECK_CONTAINS(err.message, "set region = eu-central-1");
	printf("  region: %s\n", err.message);
	CHECK_INT(peer_count(&p), 3);
	peer_close(&p, t);
}

/* Virtual-host addressing: the bucket goes into the Host header. */
static void test_virtual_host(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_error err;
	char back[16], host[16];
	size_t got = 0;

	virtual_host = true;
	t = peer_open(&p, "", 3, 5);
	virtual_host = false;
	REQUIRE(t);
	CHECK_INT(put_small(t, "obj", "virtual", &err), 0);
	CHECK_INT(get_all(t, "obj", back, sizeof(back), &got, &err), 0);
	CHECK_INT(got, 7);
	CHECK(memcmp(back, "virtual", 7) == 0);
	peer_ask(&p, "__host", host);
	CHECK(strncmp(host, "b.localhost:", 12) == 0);
	peer_close(&p, t);
}

static int each_noop(void *data, const struct td_object_info *info)
{
	(void)info;
	(void)data;
	return 0;
}

static void test_bad_xml(void)
{
	struct peer p;
	struct td_target *t;
	struct td_target_sync s = { 0 };
	struct td_target_error err;

	REQUIRE((t = peer_open(&p, "badxml", 3, 5)));
	CHECK_INT(td_target_sync_wait(&loop, &s,
	                              td_target_list(t, NULL, "", each_noop, td_target_sync_cb, &s),
	                              &err),
	          -EPROTO);
	printf("  bad xml: %s\n", err.message);
	peer_close(&p, t);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	uv_loop_init(&loop);
	TD_RUN(test_retried);
	TD_RUN(test_stall);
	TD_RUN(test_exhausted);
	TD_RUN(test_full);
	TD_RUN(test_bad_xml);
	TD_RUN(test_clear_errors);
	TD_RUN(test_virtual_host);
	uv_loop_close(&loop);
	curl_global_cleanup();
	return td_test_done();
}
