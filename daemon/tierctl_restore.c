/*
 * tierctl restore [-r] PATH... — asks tierd to recreate user links deleted by
 * accident (daemon/cmd_restore.c), and reports each path.
 */
#include "ctl.h"
#include "tierctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_PATHS 4000
#define BATCH_BYTES (48u * 1024)

struct rsctx {
	const struct tierctl_opts *o;
	json_t *files; /* --json */
	unsigned restored, skipped, failed;
};

static int on_event(void *data, json_t *ev)
{
	struct rsctx *c = data;
	const char *outcome = json_string_value(json_object_get(ev, "outcome"));
	const char *path = json_string_value(json_object_get(ev, "path"));
	const char *msg = json_string_value(json_object_get(ev, "message"));

	if (!outcome)
		outcome = "failed";
	if (strcmp(outcome, "restored") == 0)
		c->restored++;
	else if (strcmp(outcome, "skipped") == 0)
		c->skipped++;
	else
		c->failed++;
	if (c->files) {
		json_object_del(ev, "event");
		json_array_append(c->files, ev);
	} else if (strcmp(outcome, "restored") == 0) {
		printf("restored %s\n", path ? path : "?");
	} else {
		fprintf(stderr, "tierctl: %s: %s: %s\n", path ? path : "?", outcome,
		        msg ? msg : "");
	}
	return 0;
}

int tierctl_restore(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = { { "recursive", no_argument, NULL, 'r' }, { 0 } };
	struct rsctx c = { .o = o };
	bool recursive = false;
	int opt, r = TIERCTL_OK, i;

	while ((opt = getopt_long(argc, argv, "r", longopts, NULL)) != -1) {
		if (opt != 'r') {
			fprintf(stderr, "usage: tierctl restore [-r] PATH...\n");
			return TIERCTL_USAGE;
		}
		recursive = true;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: tierctl restore [-r] PATH...\n");
		return TIERCTL_USAGE;
	}
	if (o->json)
		c.files = json_array();
	for (i = optind; i < argc && r == TIERCTL_OK;) {
		json_t *args = json_pack("{s:b}", "recursive", recursive), *reply = NULL;
		size_t bytes = 0, n = 0;

		for (; i < argc && bytes < BATCH_BYTES && n < BATCH_PATHS; i++, n++) {
			char *abs = tierctl_absolute(argv[i]);

			if (!abs) {
				fprintf(stderr, "tierctl: %s: %s\n", argv[i], strerror(errno));
				json_decref(args);
				json_decref(c.files);
				return TIERCTL_FAILED;
			}
			td_ctl_add_path(args, abs, strlen(abs));
			bytes += strlen(abs) * 4 / 3 + 8;
			free(abs);
		}
		r = tierctl_request_stream(o, "restore", args, on_event, &c, &reply);
		json_decref(args);
		if (r == TIERCTL_OK && !json_is_true(json_object_get(reply, "ok")))
			r = tierctl_reply_error(reply);
		json_decref(reply);
	}
	if (c.files && r == TIERCTL_OK) {
		json_t *doc = json_pack("{s:O, s:i, s:i, s:i}", "files", c.files, "restored",
		                        c.restored, "skipped", c.skipped, "failed", c.failed);

		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	}
	json_decref(c.files);
	if (r != TIERCTL_OK)
		return r;
	return c.failed ? TIERCTL_FAILED : TIERCTL_OK;
}
