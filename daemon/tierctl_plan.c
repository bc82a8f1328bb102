/*
 * tierctl plan — the dry run. Reads the config (no daemon needed), runs
 * td_plan_run() for each policy (or the one named by --policy) and prints the
 * report, or one JSON document with --json. A progress line goes to stderr
 * while scanning when stderr is a terminal.
 */
#include "config.h"
#include "plan.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void progress(void *ctx, uint64_t files, uint64_t dirs, int64_t elapsed_ns)
{
	double s = (double)elapsed_ns / 1e9;

	fprintf(stderr, "\r\033[K%s: %" PRIu64 " files, %" PRIu64 " dirs, %.0f files/s, %.1f s",
	        (const char *)ctx, files, dirs, s > 0 ? (double)files / s : 0.0, s);
	fflush(stderr);
}

static void plan_usage(FILE *f)
{
	fprintf(f,
	        "usage: tierctl [-c FILE] [--json] plan [--policy NAME] [--json] [--list[=N]]\n");
}

struct plan_args {
	const char *only; /* --policy */
	bool json;
	size_t list_max; /* --list[=N]; 0: none */
};

/* Parses the command's options; returns -1 to go on, else the exit code. */
static int parse_args(struct plan_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "list", optional_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:jl::h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			a->only = optarg;
			break;
		case 'j':
			a->json = true;
			break;
		case 'l': {
			char *end;
			unsigned long long v = optarg ? strtoull(optarg, &end, 10) : 1000;
			if (optarg && (*end || v == 0 || v > 10000000)) {
				fprintf(stderr,
				        "tierctl: plan: --list wants a count (1..10000000)\n");
				return TIERCTL_USAGE;
			}
			a->list_max = (size_t)v;
			break;
		}
		case 'h':
			plan_usage(stdout);
			return TIERCTL_OK;
		default:
			plan_usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (optind < argc) {
		plan_usage(stderr);
		return TIERCTL_USAGE;
	}
	return -1;
}

static void print_root_errors(const struct td_plan *p)
{
	for (size_t j = 0; j < p->n_root_errors; j++) {
		char *e = td_escape(p->root_errors[j].root, strlen(p->root_errors[j].root));
		int err = -p->root_errors[j].err;
		fprintf(stderr, "tierctl: plan: policy %s: %s: %s\n", p->name, e ? e : "?",
		        err == ELOOP ? "is a symbolic link (roots must name the real directory)"
		                     : strerror(err));
		free(e);
	}
}

/* Runs and reports one policy's plan: into `list` with --json, else on stdout
 * (after a blank line when `*ran` plans came before; *ran counts the plans
 * that ran). Returns an exit code. */
static int plan_one(const struct td_config *cfg, const struct td_policy_conf *pc,
                    const struct plan_args *a, bool tty, json_t *list, size_t *ran)
{
	struct td_plan_opts po = {
		.state_dir = cfg->state_dir,
		.cache_dir = cfg->cache_dir,
		.run_dir = cfg->run_dir,
		.list_max = a->list_max,
		.ctx = pc->name,
		.on_progress = tty ? progress : NULL,
	};
	struct td_plan *p = NULL;
	int r, rc = TIERCTL_OK;

	r = td_plan_run(&p, pc, &po, td_now_ns());
	if (tty)
		fprintf(stderr, "\r\033[K");
	if (r < 0) {
		fprintf(stderr, "tierctl: plan: policy %s: %s\n", pc->name, strerror(-r));
		return TIERCTL_FAILED;
	}
	if (p->n_root_errors) {
		print_root_errors(p);
		rc = TIERCTL_FAILED;
	}
	if (a->json) {
		json_t *pj = td_plan_json(p);
		if (!pj || json_array_append_new(list, pj) < 0)
			rc = TIERCTL_FAILED;
	} else {
		if (*ran)
			fputc('\n', stdout);
		td_plan_print(p, stdout);
	}
	(*ran)++;
	td_plan_free(p);
	return rc;
}

int tierctl_plan(const struct tierctl_opts *o, int argc, char **argv)
{
	struct plan_args a = { .json = o->json };
	struct td_config_report rep = { 0 };
	struct td_config *cfg = NULL;
	bool tty = isatty(STDERR_FILENO);
	json_t *doc = NULL, *list = NULL;
	int r, rc = TIERCTL_OK;
	size_t ran = 0;
	bool found = false;

	r = parse_args(&a, argc, argv);
	if (r >= 0)
		return r;
	r = td_config_load_report(&cfg, o->config_path, NULL, &rep);
	td_config_errors_print(&rep.errors, stderr);
	td_config_report_clear(&rep);
	if (r < 0)
		return TIERCTL_USAGE;
	for (size_t i = 0; a.only && i < cfg->n_policies; i++)
		if (strcmp(cfg->policies[i].name, a.only) == 0)
			found = true;
	if (a.only && !found) {
		fprintf(stderr, "tierctl: plan: no policy named '%s'\n", a.only);
		rc = TIERCTL_USAGE;
		goto out;
	}
	if (a.json) {
		doc = json_object();
		list = json_array();
		if (!doc || !list || json_object_set_new(doc, "policies", list) < 0) {
			fprintf(stderr, "tierctl: plan: out of memory\n");
			rc = TIERCTL_FAILED;
			goto out;
		}
	}
	for (size_t i = 0; i < cfg->n_policies; i++) {
		const struct td_policy_conf *pc = &cfg->policies[i];

		if (a.only && strcmp(a.only, pc->name) != 0)
			continue;
		if (plan_one(cfg, pc, &a, tty, list, &ran) != TIERCTL_OK)
			rc = TIERCTL_FAILED;
	}
	if (!a.only && cfg->n_policies == 0 && !a.json)
		printf("no policies in %s\n", o->config_path);
	if (a.json) {
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	}
out:
	json_decref(doc);
	td_config_free(cfg);
	return rc;
}
