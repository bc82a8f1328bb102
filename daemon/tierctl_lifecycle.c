/*
 * tierctl verify, tierctl gc — the client side: flags into a request, the
 * daemon's streamed events into lines (or one JSON document), and the exit
 * code. The work itself runs in tierd (daemon/cmd_lifecycle.c).
 */
#include "tierctl.h"
#include "config.h"
#include "ctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Absolute, without resolving anything (the last component may be a link). */
static char *abs_path(const char *p)
{
	char cwd[4096], *out;
	size_t n;

	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	n = strlen(cwd) + 1 + strlen(p) + 1;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", cwd, p);
	return out;
}

static const char *str(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

struct stream {
	const struct tierctl_opts *o;
	json_t *list; /* --json: the events kept */
	bool progress_shown;
	const char *what;
};

static void clear_progress(struct stream *st)
{
	if (st->progress_shown) {
		fprintf(stderr, "\r\033[K");
		st->progress_shown = false;
	}
}

static int on_event(void *ctx, json_t *ev)
{
	struct stream *st = ctx;
	const char *kind = str(ev, "event");

	if (strcmp(kind, "progress") == 0) {
		if (st->o->tty && isatty(STDERR_FILENO)) {
			if (json_object_get(ev, "total"))
				fprintf(stderr,
				        "\r\033[K%s: %lld of %lld rows checked, %lld problems",
				        st->what, num(ev, "checked"), num(ev, "total"),
				        num(ev, "problems"));
			else
				fprintf(stderr, "\r\033[K%s: %s", st->what, str(ev, "phase"));
			st->progress_shown = true;
		}
		return 0;
	}
	if (st->list) {
		json_array_append(st->list, ev);
		return 0;
	}
	clear_progress(st);
	if (strcmp(kind, "problem") == 0) {
		printf("%s: %s: %s%s\n", *str(ev, "path") ? str(ev, "path") : "-", str(ev, "class"),
		       str(ev, "message"),
		       strcmp(str(ev, "severity"), "note") == 0 ? " (note)" : "");
	} else if (strcmp(kind, "file") == 0) {
		const char *out = str(ev, "outcome");

		if (strcmp(out, "would_delete") == 0)
			printf("would delete %s: %s\n", str(ev, "path"), str(ev, "reason"));
		else
			printf("%s %s: %s\n", out, str(ev, "path"), str(ev, "reason"));
	}
	fflush(stdout);
	return 0;
}

/* Sends the request, prints, and returns the reply's report (new reference)
 * or NULL with *rc set. */
static json_t *run(struct stream *st, const char *cmd, json_t *args, int *rc)
{
	json_t *reply = NULL, *report;
	int r = tierctl_request_stream(st->o, cmd, args, on_event, st, &reply);

	clear_progress(st);
	if (r != TIERCTL_OK) {
		*rc = r;
		return NULL;
	}
	report = json_incref(json_object_get(reply, "report"));
	if (!json_is_true(json_object_get(reply, "ok"))) {
		if (st->list) {
			json_t *doc =
			    json_pack("{s:O, s:O*}", "events", st->list, "report", report);

			json_object_set(doc, "error", json_object_get(reply, "error"));
			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
			fflush(stdout);
		}
		*rc = tierctl_reply_error(reply);
		if (*rc == TIERCTL_OK)
			*rc = TIERCTL_FAILED;
		json_decref(reply);
		json_decref(report);
		return NULL;
	}
	json_decref(reply);
	*rc = TIERCTL_OK;
	return report ? report : json_object();
}

static void print_doc(struct stream *st, const char *key, json_t *report)
{
	json_t *doc = json_pack("{s:O, s:O}", key, st->list, "report", report);

	json_dumpf(doc, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(doc);
}

#define VERIFY_USAGE                                                                               \
	"usage: tierctl verify [--deep] [--repair] [--restart] [--policy NAME] "                   \
	"[--time-limit DURATION] [PATH...]\n"

int tierctl_verify(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "deep", no_argument, NULL, 'd' },
		{ "repair", no_argument, NULL, 'r' },
		{ "restart", no_argument, NULL, 'R' },
		{ "policy", required_argument, NULL, 'p' },
		{ "time-limit", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	struct tierctl_opts oo = *o;
	struct stream st = { .o = &oo, .what = "verify" };
	json_t *args = json_object(), *report;
	int64_t limit_s = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			json_object_set_new(args, "deep", json_true());
			break;
		case 'r':
			json_object_set_new(args, "repair", json_true());
			break;
		case 'R':
			json_object_set_new(args, "restart", json_true());
			break;
		case 'p':
			json_object_set_new(args, "policy", json_string(optarg));
			break;
		case 't':
			if (td_parse_duration(optarg, &limit_s) < 0 || limit_s <= 0) {
				fprintf(stderr,
				        "tierctl: verify: --time-limit %s: expected a duration "
				        "such as 30m or 2h\n",
				        optarg);
				json_decref(args);
				return TIERCTL_USAGE;
			}
			json_object_set_new(args, "time_limit_s", json_integer(limit_s));
			break;
		case 'j':
			oo.json = true;
			oo.tty = false;
			break;
		default:
			fprintf(stderr, VERIFY_USAGE);
			json_decref(args);
			return TIERCTL_USAGE;
		}
	}
	for (int i = optind; i < argc; i++) {
		char *p = abs_path(argv[i]);

		if (!p) {
			fprintf(stderr, "tierctl: %s: %s\n", argv[i], strerror(errno));
			json_decref(args);
			return TIERCTL_FAILED;
		}
		td_ctl_add_path(args, p, strlen(p));
		free(p);
	}
	if (oo.json)
		st.list = json_array();
	report = run(&st, "verify", args, &rc);
	json_decref(args);
	if (report) {
		long long left = num(report, "problems") - num(report, "repaired");

		if (oo.json)
			print_doc(&st, "problems", report);
		else
			printf("verify: %lld rows checked%s: %lld problems, %lld repaired, %lld "
			       "notes%s\n",
			       num(report, "checked"),
			       json_is_true(json_object_get(report, "deep")) ? " (deep)" : "",
			       num(report, "problems"), num(report, "repaired"),
			       num(report, "notes"),
			       json_is_true(json_object_get(report, "complete"))
			           ? ""
			           : "; stopped early (the next verify resumes)");
		rc = left > 0 ? TIERCTL_FAILED : TIERCTL_OK;
		json_decref(report);
	}
	json_decref(st.list);
	return rc;
}

int tierctl_gc(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	struct tierctl_opts oo = *o;
	struct stream st = { .o = &oo, .what = "gc" };
	json_t *args = json_object(), *report;
	bool dry = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "n", longopts, NULL)) != -1) {
		if (c == 'n') {
			dry = true;
		} else if (c == 'j') {
			oo.json = true;
			oo.tty = false;
		} else {
			fprintf(stderr, "usage: tierctl gc [--dry-run]\n");
			json_decref(args);
			return TIERCTL_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: tierctl gc [--dry-run]\n");
		json_decref(args);
		return TIERCTL_USAGE;
	}
	if (dry)
		json_object_set_new(args, "dry_run", json_true());
	if (oo.json)
		st.list = json_array();
	report = run(&st, "gc", args, &rc);
	json_decref(args);
	if (report) {
		if (oo.json)
			print_doc(&st, "files", report);
		else if (dry)
			printf("gc (dry run): %lld links seen, %lld objects would be deleted, %lld "
			       "kept, "
			       "%lld multipart uploads older than a day\n",
			       num(report, "links_seen"), num(report, "would_delete"),
			       num(report, "kept"), num(report, "uploads_found"));
		else
			printf("gc: %lld links seen, %lld objects deleted (%lld bytes), %lld kept, "
			       "%lld "
			       "failed, %lld multipart uploads aborted\n",
			       num(report, "links_seen"), num(report, "deleted"),
			       num(report, "deleted_bytes"), num(report, "kept"),
			       num(report, "failed"), num(report, "uploads_aborted"));
		rc = num(report, "failed") ? TIERCTL_FAILED : TIERCTL_OK;
		json_decref(report);
	}
	json_decref(st.list);
	return rc;
}
