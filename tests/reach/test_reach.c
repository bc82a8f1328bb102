/* Reachability: which errors mean "unreachable", and the events a report
 * publishes to subscribers, in order. */
#include "reach.h"
#include "testlib.h"

#include <stdlib.h>

static void test_unreachable(void)
{
	static const int down[] = { ECONNREFUSED, EHOSTUNREACH, ENETUNREACH,
		                    ETIMEDOUT,    EAGAIN,       ECONNRESET };
	static const int up[] = { 0, ENOENT, EACCES, EIO, ENOSPC, EHOSTDOWN, ECANCELED, EPROTO };

	for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
		CHECK(td_reach_unreachable(-down[i]));
		CHECK(!td_reach_unreachable(down[i])); /* errors are negative */
	}
	for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++)
		CHECK(!td_reach_unreachable(-up[i]));
}

struct seen {
	char log[512];
	const char *tag;
};

static void record(void *data, const struct td_reach_event *ev)
{
	struct seen *s = data;
	static const char *const change[] = { "same", "lost", "back" };
	size_t n = strlen(s->log);

	snprintf(s->log + n, sizeof(s->log) - n, "%s:%s:%s:%s;", s->tag, ev->target,
	         ev->reachable ? "up" : "down", change[ev->change]);
}

static void test_events(void)
{
	static const char *const names[] = { "nas", "s3" };
	struct seen a = { .tag = "a" }, b = { .tag = "b" };
	const struct td_reach_state *st;
	struct td_reach *r = NULL;

	REQUIRE(td_reach_new(&r, names, 2) == 0);
	CHECK(td_reach_usable(r, "nas")); /* never checked: tried */
	CHECK(td_reach_usable(r, "other"));
	CHECK(td_reach_get(r, "other") == NULL);
	CHECK_INT(td_reach_subscribe(r, record, &a), 0);
	CHECK_INT(td_reach_subscribe(r, record, &b), 0);
	CHECK_INT(td_reach_report(r, "other", 0, NULL, 1), -ENOENT);

	CHECK_INT(td_reach_report(r, "nas", -ECONNREFUSED, NULL, 5), 0);
	st = td_reach_get(r, "nas");
	CHECK(st->checked && !st->reachable);
	CHECK_INT(st->checked_ns, 5);
	CHECK_STR(st->last_error, strerror(ECONNREFUSED));
	CHECK(!td_reach_usable(r, "nas"));
	CHECK_INT(td_reach_report(r, "nas", -ETIMEDOUT, "gave up after 30 s", 6), 0);
	CHECK_STR(st->last_error, "gave up after 30 s");
	/* The server answered, even if with an error: it is there. */
	CHECK_INT(td_reach_report(r, "nas", -ENOENT, "NoSuchKey", 7), 0);
	CHECK(st->reachable && td_reach_usable(r, "nas"));
	CHECK_STR(st->last_error, "");
	CHECK_INT(td_reach_report(r, "nas", -ECONNRESET, "", 8), 0);
	CHECK_STR(st->last_error, strerror(ECONNRESET));
	CHECK_INT(td_reach_report(r, "s3", 0, NULL, 9), 0);
	CHECK_STR(a.log,
	          "a:nas:down:same;a:nas:down:same;a:nas:up:back;a:nas:down:lost;a:s3:up:same;");
	CHECK_STR(b.log,
	          "b:nas:down:same;b:nas:down:same;b:nas:up:back;b:nas:down:lost;b:s3:up:same;");
	for (int i = 2; i < TD_REACH_MAX_SUBS; i++)
		CHECK_INT(td_reach_subscribe(r, record, &b), 0);
	CHECK_INT(td_reach_subscribe(r, record, &b), -ENOSPC);
	td_reach_free(r);
	td_reach_free(NULL);
}

/* Subscribers see the state already updated. */
static void check_state(void *data, const struct td_reach_event *ev)
{
	struct td_reach *r = data;

	CHECK(td_reach_get(r, ev->target)->reachable == ev->reachable);
	CHECK(td_reach_usable(r, ev->target) == ev->reachable);
}

/* A target that answers every request with SignatureDoesNotMatch (EACCES) is
 * not reachable for tiering, and its state says why. */
static void test_refused(void)
{
	static const char *const names[] = { "s3" };
	const struct td_reach_state *st;
	struct td_reach *r = NULL;

	CHECK(td_reach_refused(-EACCES));
	CHECK(td_reach_refused(-EPERM));
	CHECK(!td_reach_refused(-ENOENT));
	CHECK(!td_reach_refused(0));
	REQUIRE(td_reach_new(&r, names, 1) == 0);
	CHECK_INT(td_reach_report(r, "s3", 0, NULL, 1), 0);
	CHECK_INT(td_reach_report(r, "s3", -EACCES,
	                          "authentication failed: the secret key is wrong for this access "
	                          "key (SignatureDoesNotMatch)",
	                          2),
	          0);
	st = td_reach_get(r, "s3");
	CHECK(st->checked && !st->reachable && !td_reach_usable(r, "s3"));
	CHECK_STR(st->last_error,
	          "it answers but refuses our requests: authentication failed: the "
	          "secret key is wrong for this access key (SignatureDoesNotMatch)");
	CHECK_INT(td_reach_report(r, "s3", -EPERM, NULL, 3), 0);
	CHECK_CONTAINS(st->last_error, "refuses our requests");
	CHECK_INT(td_reach_report(r, "s3", 0, NULL, 4), 0);
	CHECK(st->reachable && st->last_error[0] == '\0');
	td_reach_free(r);
}

static void test_state_before_event(void)
{
	static const char *const names[] = { "nas" };
	struct td_reach *r = NULL;

	REQUIRE(td_reach_new(&r, names, 1) == 0);
	CHECK_INT(td_reach_subscribe(r, check_state, r), 0);
	td_reach_report(r, "nas", -EHOSTUNREACH, NULL, 1);
	td_reach_report(r, "nas", 0, NULL, 2);
	td_reach_free(r);
}

int main(void)
{
	TD_RUN(test_unreachable);
	TD_RUN(test_events);
	TD_RUN(test_refused);
	TD_RUN(test_state_before_event);
	return td_test_done();
}
