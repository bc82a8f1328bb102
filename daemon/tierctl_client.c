/*
 * tierctl_client — one request, one reply over tierd's control socket, and the
 * commands that are nothing more than that (status, reload).
 */
#include "config.h"
#include "ctl.h"
#include "plan.h"
#include "tierctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REPLY_TIMEOUT_MS (120 * 1000)

/* Finds the socket: -s, else run_dir from the configuration. */
static int socket_path(const struct tierctl_opts *o, char *out, size_t n)
{
	struct td_config_report rep = { 0 };
	struct td_config *conf = NULL;
	int r;

	if (o->socket_path) {
		snprintf(out, n, "%s", o->socket_path);
		return 0;
	}
	r = td_config_load_report(&conf, o->config_path, NULL, &rep);
	if (r < 0) {
		fprintf(stderr,
		        "tierctl: cannot find the control socket: %s does not load "
		        "(or pass -s SOCKET):\n",
		        o->config_path);
		td_config_errors_print(&rep.errors, stderr);
		td_config_report_clear(&rep);
		return -EINVAL;
	}
	snprintf(out, n, "%s/tierd.sock", conf->run_dir);
	td_config_free(conf);
	return 0;
}

struct reply_line {
	json_t *doc;
	int (*on_event)(void *ctx, json_t *ev);
	void *ctx;
};

static int on_reply_line(void *ctx, int err, const char *line, size_t len)
{
	struct reply_line *res = ctx;
	json_error_t jerr;

	if (err < 0) {
		fprintf(stderr, "tierctl: tierd sent an over-long reply\n");
		return 1;
	}
	res->doc = json_loadb(line, len, 0, &jerr);
	if (!res->doc || !json_is_object(res->doc)) {
		fprintf(stderr, "tierctl: tierd sent a malformed reply: %s\n",
		        res->doc ? "not an object" : jerr.text);
		json_decref(res->doc);
		res->doc = NULL;
		return 1;
	}
	if (!json_object_get(res->doc, "ok") && json_object_get(res->doc, "event")) {
		/* A streamed event before the final reply. */
		if (res->on_event)
			res->on_event(res->ctx, res->doc);
		json_decref(res->doc);
		res->doc = NULL;
		return 0;
	}
	return 1;
}

int tierctl_request_stream(const struct tierctl_opts *o, const char *cmd, json_t *args,
                           int (*on_event)(void *ctx, json_t *ev), void *ctx, json_t **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *req =
	    json_pack("{s:s, s:o}", "cmd", cmd, "args", args ? json_incref(args) : json_object());
	struct td_ctl_framer fr;
	char path[4096], *line = NULL;
	struct reply_line res = { NULL, on_event, ctx };
	size_t len;
	int fd = -1, r;

	if (!req)
		return TIERCTL_FAILED;
	if (socket_path(o, path, sizeof(path)) < 0) {
		json_decref(req);
		return TIERCTL_USAGE;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tierctl: socket path too long: %s\n", path);
		json_decref(req);
		return TIERCTL_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "tierctl: tierd is not reachable on %s: %s\n", path,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		json_decref(req);
		return TIERCTL_UNREACHABLE;
	}
	line = td_ctl_encode(req, &len);
	json_decref(req);
	if (!line || send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "tierctl: cannot send to tierd on %s: %s\n", path, strerror(errno));
		free(line);
		close(fd);
		return TIERCTL_UNREACHABLE;
	}
	free(line);
	td_ctl_framer_init(&fr);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[16384];
		ssize_t n;

		r = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (r == 0) {
			fprintf(stderr, "tierctl: tierd did not answer within %d s\n",
			        REPLY_TIMEOUT_MS / 1000);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		n = r < 0 ? -1 : read(fd, buf, sizeof(buf));
		if (n <= 0) {
			fprintf(stderr, "tierctl: tierd closed the connection without answering\n");
			break;
		}
		if (td_ctl_framer_feed(&fr, buf, (size_t)n, on_reply_line, &res) != 0)
			break;
	}
	td_ctl_framer_free(&fr);
	close(fd);
	*reply = res.doc;
	return res.doc ? TIERCTL_OK : TIERCTL_UNREACHABLE;
}

int tierctl_request(const struct tierctl_opts *o, const char *cmd, json_t *args, json_t **reply)
{
	return tierctl_request_stream(o, cmd, args, NULL, NULL, reply);
}

/* Prints a failed reply's error and maps it to an exit code. */
int tierctl_reply_error(json_t *reply)
{
	const char *e = json_string_value(json_object_get(reply, "error"));
	const char *no = json_string_value(json_object_get(reply, "errno"));

	fprintf(stderr, "tierctl: %s\n", e ? e : "tierd reported an unspecified error");
	return no && (strcmp(no, "EPERM") == 0 || strcmp(no, "EINVAL") == 0 ||
	              strcmp(no, "ENOSYS") == 0)
	           ? TIERCTL_USAGE
	           : TIERCTL_FAILED;
}

static void print_json(json_t *doc)
{
	json_object_del(doc, "ok");
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

static void print_status(json_t *st)
{
	json_t *files = json_object_get(st, "files"), *bytes = json_object_get(st, "bytes"), *v;
	const char *k;
	char b1[32], b2[32];
	size_t i;

	printf("tierd %s, pid %lld, up %lld s%s\n",
	       json_string_value(json_object_get(st, "version")),
	       (long long)json_integer_value(json_object_get(st, "pid")),
	       (long long)json_integer_value(json_object_get(st, "uptime_s")),
	       json_is_false(json_object_get(st, "ready")) ? " (recovering)" : "");
	if (json_is_string(json_object_get(st, "config")))
		printf("config:  %s\n", json_string_value(json_object_get(st, "config")));
	printf("targets:\n");
	json_object_foreach(json_object_get(st, "targets"), k, v)
	{
		const char *err = json_string_value(json_object_get(v, "error"));

		printf("  %-16s %s%s%s\n", k,
		       !json_is_true(json_object_get(v, "checked"))    ? "not checked yet"
		       : json_is_true(json_object_get(v, "reachable")) ? "reachable"
		                                                       : "UNREACHABLE",
		       err ? ": " : "", err ? err : "");
	}
	if (json_is_true(json_object_get(st, "restricted"))) {
		/* A user's status carries no counts of other users' files. */
		printf("files:   (root and admin_group see the catalog's counts)\n");
	} else {
		td_human_bytes(b1, sizeof(b1),
		               (uint64_t)json_integer_value(
		                   json_object_get(json_object_get(st, "cache"), "used_bytes")));
		td_human_bytes(b2, sizeof(b2),
		               (uint64_t)json_integer_value(
		                   json_object_get(json_object_get(st, "cache"), "limit_bytes")));
		printf("cache:   %s used of %s\n", b1, b2);
		printf("files:\n");
		json_object_foreach(files, k, v)
		{
			if (!json_integer_value(v))
				continue;
			td_human_bytes(b1, sizeof(b1),
			               (uint64_t)json_integer_value(json_object_get(bytes, k)));
			printf("  %-10s %10lld  %s\n", k, (long long)json_integer_value(v), b1);
		}
	}
	printf("in flight: %lld, queued: %lld\n",
	       (long long)json_integer_value(json_object_get(st, "in_flight")),
	       (long long)json_integer_value(json_object_get(st, "queued")));
	json_array_foreach(json_object_get(st, "runs"), i, v)
	{
		td_human_bytes(b1, sizeof(b1),
		               (uint64_t)json_integer_value(json_object_get(v, "tiered_bytes")));
		printf("run:     policy %s: %lld files scanned, %lld tiered (%s), %lld skipped, "
		       "%lld failed, %.0f s\n",
		       json_string_value(json_object_get(v, "policy")),
		       (long long)json_integer_value(json_object_get(v, "scanned_files")),
		       (long long)json_integer_value(json_object_get(v, "tiered")), b1,
		       (long long)json_integer_value(json_object_get(v, "skipped")),
		       (long long)json_integer_value(json_object_get(v, "failed")),
		       json_real_value(json_object_get(v, "elapsed_s")));
	}
	if ((v = json_object_get(st, "last_verify")))
		printf("verify:  last %s%s: %lld rows checked, %lld problems, %lld repaired%s%s\n",
		       json_string_value(json_object_get(v, "ended")),
		       json_is_true(json_object_get(v, "deep")) ? " (deep)" : "",
		       (long long)json_integer_value(json_object_get(v, "checked")),
		       (long long)json_integer_value(json_object_get(v, "problems")),
		       (long long)json_integer_value(json_object_get(v, "repaired")),
		       json_object_get(v, "error") ? "; stopped: " : "",
		       json_object_get(v, "error") ? json_string_value(json_object_get(v, "error"))
		                                   : "");
	if ((v = json_object_get(st, "last_gc")))
		printf("gc:      last %s: %lld objects deleted (%lld bytes), %lld kept, %lld "
		       "uploads aborted%s%s\n",
		       json_string_value(json_object_get(v, "ended")),
		       (long long)json_integer_value(json_object_get(v, "deleted")),
		       (long long)json_integer_value(json_object_get(v, "deleted_bytes")),
		       (long long)json_integer_value(json_object_get(v, "kept")),
		       (long long)json_integer_value(json_object_get(v, "uploads_aborted")),
		       json_object_get(v, "error") ? "; stopped: " : "",
		       json_object_get(v, "error") ? json_string_value(json_object_get(v, "error"))
		                                   : "");
	if (json_array_size(json_object_get(st, "recent_errors")))
		printf("recent errors:\n");
	json_array_foreach(json_object_get(st, "recent_errors"), i, v)
	    printf("  %s %s\n", json_string_value(json_object_get(v, "time")),
	           json_string_value(json_object_get(v, "message")));
}

int tierctl_status(const struct tierctl_opts *o, int argc, char **argv)
{
	json_t *reply = NULL;
	int r;

	if (argc > 1) {
		fprintf(stderr, "usage: tierctl status\n");
		return TIERCTL_USAGE;
	}
	r = tierctl_request(o, "status", NULL, &reply);
	if (r != TIERCTL_OK)
		return r;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		r = tierctl_reply_error(reply);
	} else if (o->json) {
		print_json(reply);
	} else {
		print_status(reply);
	}
	json_decref(reply);
	return r;
}

int tierctl_reload(const struct tierctl_opts *o, int argc, char **argv)
{
	json_t *reply = NULL;
	int r;

	if (argc > 1) {
		fprintf(stderr, "usage: tierctl reload\n");
		return TIERCTL_USAGE;
	}
	r = tierctl_request(o, "reload", NULL, &reply);
	if (r != TIERCTL_OK)
		return r;
	if (!json_is_true(json_object_get(reply, "ok")))
		r = tierctl_reply_error(reply);
	else if (o->json)
		print_json(reply);
	else
		printf("reload started; tierd logs whether the new configuration was accepted\n");
	json_decref(reply);
	return r;
}
