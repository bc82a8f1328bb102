/*
 * tierctl run / migrate / info / ls — the commands about files. Paths go to
 * tierd as given (made absolute against the current directory and cleaned of
 * "." and ".." lexically, never resolved: tierd itself refuses to follow
 * symlinks below a policy root). Names that are not UTF-8 travel as base64.
 */
#include "ctl.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH_BYTES (48u * 1024) /* keep each request well under the 64 KiB line cap */
#define BATCH_PATHS 4000

/* Absolute, with "//", "/./" and "dir/.." folded. malloc'd. */
static char *absolute(const char *p)
{
	char cwd[4096], *buf, *out, *o;
	size_t n;

	if (p[0] == '/') {
		buf = strdup(p);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return NULL;
		n = strlen(cwd) + 1 + strlen(p) + 1;
		buf = malloc(n);
		if (buf)
			snprintf(buf, n, "%s/%s", cwd, p);
	}
	if (!buf)
		return NULL;
	out = malloc(strlen(buf) + 2);
	if (!out) {
		free(buf);
		return NULL;
	}
	o = out;
	for (char *s = buf; *s;) {
		char *e;
		size_t len;

		while (*s == '/')
			s++;
		if (!*s)
			break;
		e = strchr(s, '/');
		len = e ? (size_t)(e - s) : strlen(s);
		if (len == 1 && s[0] == '.') {
			/* skip */
		} else if (len == 2 && s[0] == '.' && s[1] == '.') {
			while (o > out && *--o != '/')
				;
		} else {
			*o++ = '/';
			memcpy(o, s, len);
			o += len;
		}
		s += len;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	free(buf);
	return out;
}

char *tierctl_absolute(const char *p)
{
	return absolute(p);
}

static void add_path(json_t *args, const char *p)
{
	td_ctl_add_path(args, p, strlen(p)); /* on ENOMEM the request goes without it */
}

/* The path of an event or entry for printing: escaped when it had to travel
 * as base64. */
static const char *ev_path(json_t *ev, const char *key)
{
	const char *p = json_string_value(json_object_get(ev, key));

	return p ? p : "?";
}

/* ---- run ------------------------------------------------------------------- */

int tierctl_run(const struct tierctl_opts *o, int argc, char **argv)
{
	json_t *reply = NULL, *args;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: tierctl run POLICY\n");
		return TIERCTL_USAGE;
	}
	args = json_pack("{s:s}", "policy", argv[1]);
	r = tierctl_request(o, "run", args, &reply);
	json_decref(args);
	if (r != TIERCTL_OK)
		return r;
	if (!json_is_true(json_object_get(reply, "ok")))
		r = tierctl_reply_error(reply);
	else if (o->json)
		json_dumpf(reply, stdout, JSON_INDENT(2)), fputc('\n', stdout);
	else
		printf("%s; follow it with: tierctl status\n",
		       json_string_value(json_object_get(reply, "message")));
	json_decref(reply);
	return r;
}

/* ---- migrate ----------------------------------------------------------------- */

struct mig {
	const struct tierctl_opts *o;
	size_t total, done, tiered, skipped, failed;
	unsigned long long bytes;
	json_t *files; /* --json */
	int64_t start_ns;
};

/* Prints doc as the command's --json output, and releases it. */
static void emit_json(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(doc);
}

/* The end of migrate, recall, pin and unpin: the --json summary (m->files and
 * the counts; `done_key` names the count of files that made it), and the exit
 * status: a failed request, else whether every file made it. */
static int mig_end(struct mig *m, int r, const char *done_key)
{
	if (m->o->json && r == TIERCTL_OK) {
		json_t *doc = json_pack("{s:o, s:I, s:I, s:I}", "files", m->files, done_key,
		                        (json_int_t)m->tiered, "skipped", (json_int_t)m->skipped,
		                        "failed", (json_int_t)m->failed);

		if (doc && strcmp(done_key, "tiered") == 0)
			json_object_set_new(doc, "bytes", json_integer((json_int_t)m->bytes));
		emit_json(doc);
	} else {
		json_decref(m->files);
	}
	if (r != TIERCTL_OK)
		return r;
	return m->tiered == m->total ? TIERCTL_OK : TIERCTL_FAILED;
}

static void progress(struct mig *m, bool final)
{
	double s = (double)(td_monotonic_ns() - m->start_ns) / 1e9;

	if (!m->o->tty)
		return;
	fprintf(stderr, "\r[%zu/%zu] tiered %zu (%.1f MiB), skipped %zu, failed %zu, %.1f s%s",
	        m->done, m->total, m->tiered, (double)m->bytes / 1048576.0, m->skipped, m->failed,
	        s, final ? "\n" : "");
	fflush(stderr);
}

static int on_mig_event(void *ctx, json_t *ev)
{
	struct mig *m = ctx;
	const char *outcome = json_string_value(json_object_get(ev, "outcome"));
	const char *msg = json_string_value(json_object_get(ev, "message"));

	m->done++;
	if (outcome && strcmp(outcome, "tiered") == 0) {
		m->tiered++;
		m->bytes += (unsigned long long)json_integer_value(json_object_get(ev, "size"));
	} else if (outcome && strcmp(outcome, "failed") == 0) {
		m->failed++;
	} else {
		m->skipped++;
	}
	if (m->files) {
		json_object_del(ev, "event");
		json_array_append(m->files, ev);
	} else if (!outcome || strcmp(outcome, "tiered") != 0) {
		if (m->o->tty)
			fputc('\r', stderr);
		fprintf(stderr, "tierctl: %s: %s: %s\n", ev_path(ev, "path"),
		        outcome ? outcome : "?", msg ? msg : "");
	} else if (!m->o->tty) {
		printf("tiered %s\n", ev_path(ev, "path"));
	}
	progress(m, false);
	return 0;
}

int tierctl_migrate(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = { { "target", required_argument, NULL, 't' },
		                                  { 0 } };
	const char *target = NULL;
	struct mig m = { .o = o, .start_ns = td_monotonic_ns() };
	int c, r = TIERCTL_OK, i;

	while ((c = getopt_long(argc, argv, "t:", longopts, NULL)) != -1) {
		if (c != 't') {
			fprintf(stderr, "usage: tierctl migrate [--target NAME] PATH...\n");
			return TIERCTL_USAGE;
		}
		target = optarg;
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: tierctl migrate [--target NAME] PATH...\n");
		return TIERCTL_USAGE;
	}
	m.total = (size_t)(argc - optind);
	if (o->json)
		m.files = json_array();
	for (i = optind; i < argc && r == TIERCTL_OK;) {
		json_t *args = json_object(), *reply = NULL;
		size_t bytes = 0, n = 0;

		if (target)
			json_object_set_new(args, "target", json_string(target));
		for (; i < argc && bytes < BATCH_BYTES && n < BATCH_PATHS; i++, n++) {
			char *abs = absolute(argv[i]);

			if (!abs) {
				json_decref(args);
				fprintf(stderr, "tierctl: %s: %s\n", argv[i], strerror(errno));
				return TIERCTL_FAILED;
			}
			add_path(args, abs);
			bytes += strlen(abs) * 4 / 3 + 8;
			free(abs);
		}
		r = tierctl_request_stream(o, "migrate", args, on_mig_event, &m, &reply);
		json_decref(args);
		if (r == TIERCTL_OK && !json_is_true(json_object_get(reply, "ok")))
			r = tierctl_reply_error(reply);
		json_decref(reply);
	}
	progress(&m, true);
	return mig_end(&m, r, "tiered");
}

/* ---- info ------------------------------------------------------------------- */

int tierctl_info(const struct tierctl_opts *o, int argc, char **argv)
{
	json_t *args, *reply = NULL, *f;
	int r, bad = 0;
	size_t i;

	if (argc > 1 && strcmp(argv[1], "--") == 0) { /* paths only after it */
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: tierctl info PATH...\n");
		return TIERCTL_USAGE;
	}
	args = json_object();
	for (int k = 1; k < argc; k++) {
		char *abs = absolute(argv[k]);

		if (abs)
			add_path(args, abs);
		free(abs);
	}
	r = tierctl_request(o, "info", args, &reply);
	json_decref(args);
	if (r != TIERCTL_OK)
		return r;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		r = tierctl_reply_error(reply);
		json_decref(reply);
		return r;
	}
	json_array_foreach(json_object_get(reply, "files"), i, f) if (json_object_get(f, "error"))
	    bad++;
	if (o->json) {
		json_object_del(reply, "ok");
		json_dumpf(reply, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		json_array_foreach(json_object_get(reply, "files"), i, f)
		{
			const char *err = json_string_value(json_object_get(f, "error"));

			printf("%s\n", ev_path(f, "path"));
			if (err) {
				printf("  error:     %s\n", err);
				continue;
			}
			printf("  state:     %s\n", json_string_value(json_object_get(f, "state")));
			if (json_object_get(f, "id")) {
				printf("  id:        %s\n",
				       json_string_value(json_object_get(f, "id")));
				printf("  target:    %s, key %s\n",
				       json_string_value(json_object_get(f, "target")),
				       json_string_value(json_object_get(f, "key")));
				printf("  sha256:    %s\n",
				       json_string_value(json_object_get(f, "sha256")));
				printf("  cached:    %s\n",
				       json_is_true(json_object_get(f, "cached")) ? "yes" : "no");
				if (json_is_string(json_object_get(f, "tiered_at")))
					printf("  tiered at: %s\n",
					       json_string_value(json_object_get(f, "tiered_at")));
			}
			printf("  size:      %lld bytes\n",
			       (long long)json_integer_value(json_object_get(f, "size")));
		}
	}
	json_decref(reply);
	return bad ? TIERCTL_FAILED : TIERCTL_OK;
}

/* ---- ls --------------------------------------------------------------------- */

struct lsctx {
	const struct tierctl_opts *o;
	unsigned long long n;
};

/* Rows are printed as they arrive, never gathered: --json too writes its one
 * document ({"files": [...], "count": N}) a row at a time. */
static int on_ls_event(void *ctx, json_t *ev)
{
	struct lsctx *l = ctx;

	if (l->o->json) {
		json_object_del(ev, "event");
		fputs(l->n ? ",\n    " : "\n    ", stdout);
		json_dumpf(ev, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		l->n++;
		return 0;
	}
	printf("%-9s %14lld  %-20s  %s\n", json_string_value(json_object_get(ev, "state")),
	       (long long)json_integer_value(json_object_get(ev, "size")),
	       json_string_value(json_object_get(ev, "tiered_at"))
	           ? json_string_value(json_object_get(ev, "tiered_at"))
	           : "-",
	       ev_path(ev, "original_path"));
	l->n++;
	return 0;
}

int tierctl_ls(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = { { "state", required_argument, NULL, 's' },
		                                  { "policy", required_argument, NULL, 'p' },
		                                  { 0 } };
	struct lsctx l = { .o = o };
	json_t *args = json_object(), *reply = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "s:p:", longopts, NULL)) != -1) {
		if (c == 's')
			json_object_set_new(args, "state", json_string(optarg));
		else if (c == 'p')
			json_object_set_new(args, "policy", json_string(optarg));
		else {
			json_decref(args);
			fprintf(stderr, "usage: tierctl ls [--state STATE] [--policy NAME]\n");
			return TIERCTL_USAGE;
		}
	}
	if (o->json)
		fputs("{\n  \"files\": [", stdout);
	else if (o->tty) /* piped, it is one line a file: `ls | wc -l` counts them */
		printf("%-9s %14s  %-20s  %s\n", "STATE", "SIZE", "TIERED AT", "PATH");
	r = tierctl_request_stream(o, "ls", args, on_ls_event, &l, &reply);
	json_decref(args);
	if (r == TIERCTL_OK && !json_is_true(json_object_get(reply, "ok")))
		r = tierctl_reply_error(reply);
	if (o->json) {
		/* Closed even after a failure, so what was printed still parses;
		 * "complete" says whether it is every row. */
		printf("%s],\n  \"count\": %llu,\n  \"complete\": %s\n}\n", l.n ? "\n  " : "", l.n,
		       r == TIERCTL_OK ? "true" : "false");
	}
	json_decref(reply);
	if (r == TIERCTL_OK && fflush(stdout) != 0) {
		fprintf(stderr, "tierctl: writing the listing: %s\n", strerror(errno));
		r = TIERCTL_FAILED;
	}
	return r;
}

/* ---- recall --------------------------------------------------------------------- */

static int on_recall_event(void *ctx, json_t *ev)
{
	struct mig *m = ctx;
	const char *outcome = json_string_value(json_object_get(ev, "outcome"));
	const char *msg = json_string_value(json_object_get(ev, "message"));
	const char *err = json_string_value(json_object_get(ev, "errno"));

	m->done++;
	if (outcome && (strcmp(outcome, "recalled") == 0 || strcmp(outcome, "pinned") == 0 ||
	                strcmp(outcome, "unpinned") == 0))
		m->tiered++;
	else if (outcome && strcmp(outcome, "failed") == 0)
		m->failed++;
	else
		m->skipped++;
	if (m->files) {
		json_object_del(ev, "event");
		json_array_append(m->files, ev);
	} else if (outcome && (strcmp(outcome, "recalled") == 0 || strcmp(outcome, "pinned") == 0 ||
	                       strcmp(outcome, "unpinned") == 0)) {
		printf("%s %s\n", outcome, ev_path(ev, "path"));
	} else {
		fprintf(stderr, "tierctl: %s: %s: %s%s%s%s\n", ev_path(ev, "path"),
		        outcome ? outcome : "?", msg ? msg : "", err ? " (" : "", err ? err : "",
		        err ? ")" : "");
	}
	return 0;
}

/* recall, pin and unpin: the same per-file request with a different verb. */
static int files_verb(const struct tierctl_opts *o, int argc, char **argv, const char *verb)
{
	struct mig m = { .o = o, .start_ns = td_monotonic_ns() };
	int r = TIERCTL_OK, i = 1;

	if (argc > 1 && strcmp(argv[1], "--") == 0) { /* paths only after it */
		argv++;
		argc--;
	} else if (argc > 1 && argv[1][0] == '-') {
		argc = 0; /* no options of its own */
	}
	if (argc < 2) {
		fprintf(stderr, "usage: tierctl %s PATH...\n", verb);
		return TIERCTL_USAGE;
	}
	m.total = (size_t)(argc - 1);
	if (o->json)
		m.files = json_array();
	while (i < argc && r == TIERCTL_OK) {
		json_t *args = json_object(), *reply = NULL;
		size_t bytes = 0, n = 0;

		for (; i < argc && bytes < BATCH_BYTES && n < BATCH_PATHS; i++, n++) {
			char *abs = absolute(argv[i]);

			if (abs)
				add_path(args, abs);
			bytes += abs ? strlen(abs) * 4 / 3 + 8 : 0;
			free(abs);
		}
		r = tierctl_request_stream(o, verb, args, on_recall_event, &m, &reply);
		json_decref(args);
		if (r == TIERCTL_OK && !json_is_true(json_object_get(reply, "ok")))
			r = tierctl_reply_error(reply);
		json_decref(reply);
	}
	return mig_end(&m, r, "recalled");
}

int tierctl_recall(const struct tierctl_opts *o, int argc, char **argv)
{
	if (argc >= 2 && argv[1][0] == '-')
		return tierctl_recall_bulk(o, argc, argv); /* --all, --policy, -r, --force */
	return files_verb(o, argc, argv, "recall");
}

int tierctl_pin(const struct tierctl_opts *o, int argc, char **argv)
{
	return files_verb(o, argc, argv, "pin");
}

int tierctl_unpin(const struct tierctl_opts *o, int argc, char **argv)
{
	return files_verb(o, argc, argv, "unpin");
}
