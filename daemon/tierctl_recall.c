/*
 * tierctl recall --all | --policy NAME | -r DIR [--force] — the bulk recall
 * (daemon/cmd_recall_bulk.c): tierd checks the free space, records the
 * request and brings the files back, max_transfers at a time; this prints a
 * progress line on a terminal, each failure, and a summary. Interrupting
 * tierctl does not stop the recall: tierd goes on (and resumes it after a
 * restart).
 */
#include "ctl.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bkctx {
	const struct tierctl_opts *o;
	json_t *files; /* --json */
	unsigned long long total, done, recalled, skipped, failed, bytes;
	int64_t start_ns;
};

static void progress(struct bkctx *c, bool final)
{
	double s = (double)(td_monotonic_ns() - c->start_ns) / 1e9;

	if (!c->o->tty)
		return;
	fprintf(stderr,
	        "\r\033[K[%llu/%llu] recalled %llu (%.1f MiB), skipped %llu, failed %llu, "
	        "%.1f s%s",
	        c->done, c->total, c->recalled, (double)c->bytes / 1048576.0, c->skipped, c->failed,
	        s, final ? "\n" : "");
	fflush(stderr);
}

static int on_event(void *data, json_t *ev)
{
	struct bkctx *c = data;
	const char *kind = json_string_value(json_object_get(ev, "event"));
	const char *outcome = json_string_value(json_object_get(ev, "outcome"));
	const char *path = json_string_value(json_object_get(ev, "path"));
	const char *msg = json_string_value(json_object_get(ev, "message"));

	if (kind && strcmp(kind, "start") == 0) {
		c->total = (unsigned long long)json_integer_value(json_object_get(ev, "files"));
		if (!c->o->json && !c->o->tty)
			printf("recalling %llu files, %lld bytes\n", c->total,
			       (long long)json_integer_value(json_object_get(ev, "bytes")));
		progress(c, false);
		return 0;
	}
	c->done++;
	if (!outcome)
		outcome = "failed";
	if (strcmp(outcome, "recalled") == 0) {
		c->recalled++;
		c->bytes += (unsigned long long)json_integer_value(json_object_get(ev, "size"));
	} else if (strcmp(outcome, "failed") == 0) {
		c->failed++;
	} else {
		c->skipped++;
	}
	if (c->files) {
		json_object_del(ev, "event");
		json_array_append(c->files, ev);
	} else if (strcmp(outcome, "recalled") != 0) {
		if (c->o->tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "tierctl: %s: %s: %s\n", path ? path : "?", outcome,
		        msg ? msg : "");
	} else if (!c->o->tty) {
		printf("recalled %s\n", path ? path : "?");
	}
	progress(c, false);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tierctl recall PATH...\n"
	           "       tierctl recall [--force] --all | --policy NAME | -r DIR\n");
}

int tierctl_recall_bulk(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = { { "all", no_argument, NULL, 'a' },
		                                  { "policy", required_argument, NULL, 'p' },
		                                  { "recursive", required_argument, NULL, 'r' },
		                                  { "force", no_argument, NULL, 'f' },
		                                  { 0 } };
	struct bkctx c = { .o = o, .start_ns = td_monotonic_ns() };
	json_t *args = json_object(), *reply = NULL;
	int opt, r, scopes = 0;

	while ((opt = getopt_long(argc, argv, "ap:r:f", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			json_object_set_new(args, "all", json_true());
			scopes++;
			break;
		case 'p':
			json_object_set_new(args, "policy", json_string(optarg));
			scopes++;
			break;
		case 'r': {
			char *abs = tierctl_absolute(optarg);

			if (!abs) {
				fprintf(stderr, "tierctl: %s: %s\n", optarg, strerror(errno));
				json_decref(args);
				return TIERCTL_FAILED;
			}
			td_ctl_add_path(args, abs, strlen(abs));
			free(abs);
			scopes++;
			break;
		}
		case 'f':
			json_object_set_new(args, "force", json_true());
			break;
		default:
			json_decref(args);
			usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (scopes != 1 || optind != argc) {
		json_decref(args);
		usage(stderr);
		return TIERCTL_USAGE;
	}
	if (o->json)
		c.files = json_array();
	r = tierctl_request_stream(o, "recall_bulk", args, on_event, &c, &reply);
	json_decref(args);
	if (r == TIERCTL_OK && !json_is_true(json_object_get(reply, "ok"))) {
		json_t *space = json_object_get(reply, "space");
		size_t i;
		json_t *v;

		if (o->tty)
			fputs("\r\033[K", stderr);
		r = tierctl_reply_error(reply);
		json_array_foreach(space, i, v)
		{
			fprintf(stderr, "  %s: needs %lld bytes, %lld free\n",
			        json_string_value(json_object_get(v, "root")),
			        (long long)json_integer_value(json_object_get(v, "need_bytes")),
			        (long long)json_integer_value(json_object_get(v, "free_bytes")));
		}
	} else if (r == TIERCTL_OK) {
		progress(&c, true);
		if (o->json) {
			json_t *doc = json_pack(
			    "{s:O, s:I, s:I, s:I, s:I}", "files", c.files, "total",
			    (json_int_t)c.total, "recalled", (json_int_t)c.recalled, "skipped",
			    (json_int_t)c.skipped, "failed", (json_int_t)c.failed);

			json_dumpf(doc, stdout, JSON_INDENT(2));
			fputc('\n', stdout);
			json_decref(doc);
		} else {
			printf("recall: %llu recalled, %llu skipped, %llu failed\n", c.recalled,
			       c.skipped, c.failed);
		}
		if (c.failed)
			r = TIERCTL_FAILED;
	}
	json_decref(c.files);
	json_decref(reply);
	return r;
}
