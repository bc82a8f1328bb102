/*
 * tierctl check-target NAME — reads the config (no daemon needed) and runs
 * lib/tcheck's checks on the named target: each step prints ok or FAILED with
 * the server's own error text and its time as it finishes; --json prints one
 * document at the end instead.
 *
 * Exit: 0 every step passed, 1 a step failed, 2 usage or configuration error.
 */
#include "config.h"
#include "tcheck.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_step(void *data, const struct td_tcheck_step *s)
{
	const struct tierctl_opts *o = data;

	if (o->json)
		return;
	printf("  %-7s %-22s %8.1f ms", s->ok ? "ok" : "FAILED", s->name, s->ms);
	if (s->error[0])
		printf("  %s", s->error);
	printf("\n");
	fflush(stdout);
}

static void print_warning(void *data, const char *warning)
{
	const struct tierctl_opts *o = data;

	if (!o->json)
		printf("warning: %s\n", warning);
}

static void print_heading(const struct td_target_conf *tc)
{
	if (tc->type == TD_TARGET_S3)
		printf("checking target \"%s\" (s3, %s, bucket %s, prefix \"%s\")\n", tc->name,
		       tc->endpoint ? tc->endpoint : "?", tc->bucket ? tc->bucket : "?",
		       tc->prefix ? tc->prefix : "");
	else
		printf("checking target \"%s\" (dir, %s)\n", tc->name, tc->path ? tc->path : "?");
}

/* ---- printing ---- */

static const char *type_name(const struct td_target_conf *tc)
{
	return tc->type == TD_TARGET_S3 ? "s3" : "dir";
}

static int print_json(const struct td_tcheck_result *c, const struct td_target_conf *tc)
{
	json_t *doc = json_object(), *steps = json_array(), *warns = json_array();
	char *text;

	if (!doc || !steps || !warns)
		return -ENOMEM;
	json_object_set_new(doc, "target", json_string(tc->name));
	json_object_set_new(doc, "type", json_string(type_name(tc)));
	if (tc->type == TD_TARGET_S3) {
		json_object_set_new(doc, "endpoint", json_string(tc->endpoint ? tc->endpoint : ""));
		json_object_set_new(doc, "bucket", json_string(tc->bucket ? tc->bucket : ""));
	} else {
		json_object_set_new(doc, "path", json_string(tc->path ? tc->path : ""));
	}
	json_object_set_new(doc, "prefix", json_string(tc->prefix ? tc->prefix : ""));
	json_object_set_new(doc, "ok", json_boolean(c->ok));
	for (size_t i = 0; i < c->n_steps; i++) {
		const struct td_tcheck_step *s = &c->steps[i];
		json_array_append_new(
		    steps, json_pack("{s:s, s:b, s:f, s:o}", "name", s->name, "ok", s->ok, "ms",
		                     s->ms, "error",
		                     !s->ok && s->error[0] ? json_string(s->error) : json_null()));
		if (s->ok && s->error[0])
			json_object_set_new(json_array_get(steps, json_array_size(steps) - 1),
			                    "note", json_string(s->error));
	}
	json_object_set_new(doc, "steps", steps);
	for (size_t i = 0; i < c->n_warnings; i++)
		json_array_append_new(warns, json_string(c->warnings[i]));
	json_object_set_new(doc, "warnings", warns);
	json_object_set_new(doc, "clock_skew_s",
	                    c->have_skew ? json_integer(c->skew_s) : json_null());
	json_object_set_new(doc, "latency_ms",
	                    c->latency_ms >= 0 ? json_real(c->latency_ms) : json_null());
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(doc);
	if (!text)
		return -ENOMEM;
	printf("%s\n", text);
	free(text);
	return 0;
}

/* Runs the check and prints its outcome; returns the exit code. */
static int check_and_print(const struct tierctl_opts *o, const struct td_target_conf *tc)
{
	struct td_tcheck_opts co = { .data = (void *)o,
		                     .on_step = print_step,
		                     .on_warning = print_warning };
	struct td_tcheck_result *res = malloc(sizeof(*res));
	int rc;

	if (!res) {
		fprintf(stderr, "tierctl: out of memory\n");
		return TIERCTL_FAILED;
	}
	if (!o->json)
		print_heading(tc);
	if (td_tcheck_run(res, tc, &co) < 0) {
		fprintf(stderr, "tierctl: out of memory\n");
		free(res);
		return TIERCTL_FAILED;
	}
	rc = res->ok ? TIERCTL_OK : TIERCTL_FAILED;
	if (o->json) {
		if (print_json(res, tc) < 0)
			rc = TIERCTL_FAILED;
	} else {
		size_t failed = 0;
		for (size_t i = 0; i < res->n_steps; i++)
			failed += !res->steps[i].ok;
		if (res->ok)
			printf("target \"%s\": all %zu checks passed\n", tc->name, res->n_steps);
		else
			printf("target \"%s\": %zu of %zu checks FAILED\n", tc->name, failed,
			       res->n_steps);
	}
	free(res);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tierctl [-c FILE] [--json] check-target NAME\n");
}

static void list_targets(const struct td_config *cfg, FILE *f)
{
	if (cfg->n_targets == 0) {
		fprintf(f, "no targets are defined in %s\n", cfg->path ? cfg->path : "the config");
		return;
	}
	fprintf(f, "defined targets:");
	for (size_t i = 0; i < cfg->n_targets; i++)
		fprintf(f, " %s", cfg->targets[i].name);
	fprintf(f, "\n");
}

int tierctl_check_target(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct td_config_report rep = { 0 };
	struct td_config *cfg = NULL;
	const struct td_target_conf *tc = NULL;
	int opt, r, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return TIERCTL_OK;
		default:
			usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return TIERCTL_USAGE;
	}
	/* As the daemon does: s3 targets without a credentials_file take the keys
	 * from the environment. A target without keys is a failed step here. */
	const struct td_config_load_opts lo = {
		.creds = TD_CONFIG_CREDS_ENV,
		.access_key = getenv("AWS_ACCESS_KEY_ID"),
		.secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
	};
	r = td_config_load_report(&cfg, o->config_path, &lo, &rep);
	td_config_errors_print(&rep.errors, stderr);
	td_config_report_clear(&rep);
	if (r < 0)
		return r == -ENOMEM ? TIERCTL_FAILED : TIERCTL_USAGE;
	tc = td_config_target(cfg, argv[optind]);
	if (!tc) {
		fprintf(stderr, "tierctl: no target \"%s\" in %s; ", argv[optind], o->config_path);
		list_targets(cfg, stderr);
		rc = TIERCTL_USAGE;
		goto out;
	}
	rc = check_and_print(o, tc);
out:
	td_config_free(cfg);
	return rc;
}
