/* tierctl — global options and command dispatch. See tierctl(1). */
#include "tierctl.h"
#include "config.h"

#include <curl/curl.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	int (*fn)(const struct tierctl_opts *o, int argc, char **argv);
	const char *help;
} commands[] = {
	{ "status", tierctl_status,
	  "status                    daemon, targets, transfers in flight" },
	{ "run", tierctl_run, "run POLICY                run a policy now" },
	{ "migrate", tierctl_migrate,
	  "migrate [--target NAME] PATH...  tier these files now, whatever their age" },
	{ "recall", tierctl_recall,
	  "recall PATH... | [--force] --all | --policy NAME | -r DIR  bring files back" },
	{ "pin", tierctl_pin, "pin PATH...               keep a copy in the cache (hydrates it)" },
	{ "unpin", tierctl_unpin, "unpin PATH...             let the cache evict it again" },
	{ "info", tierctl_info, "info PATH...              where a file's data is, in what state" },
	{ "ls", tierctl_ls, "ls [--state S] [--policy P]  tiered files" },
	{ "reload", tierctl_reload,
	  "reload                    re-read the configuration (like SIGHUP)" },
	{ "plan", tierctl_plan,
	  "plan [--policy NAME]      dry run: what each policy would move now" },
	{ "restore", tierctl_restore,
	  "restore [-r] PATH...      recreate links deleted by accident" },
	{ "rebuild", tierctl_rebuild,
	  "rebuild [--target NAME] [--dry-run]  the catalog and links again, from the manifests" },
	{ "check-target", tierctl_check_target,
	  "check-target NAME         test a target's settings end to end" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tierctl [-c FILE] [-s SOCKET] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].help);
	fprintf(f, "\nexit codes: 0 done, 1 failed, 2 usage/config error, 3 daemon unreachable\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct tierctl_opts o = { .config_path = TD_DEFAULT_CONFIG };
	int c;

	/* Once, before any thread exists: the S3 target's libcurl needs it. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "%s: cannot initialize libcurl\n", argv[0]);
		return 1;
	}
	/* '+': stop at the command name so each command parses its own flags. */
	while ((c = getopt_long(argc, argv, "+c:s:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.config_path = optarg;
			break;
		case 's':
			o.socket_path = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return TIERCTL_OK;
		case 'V':
			printf("tierctl %s\n", TD_VERSION);
			return TIERCTL_OK;
		default:
			usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return TIERCTL_USAGE;
	}
	o.tty = isatty(STDOUT_FILENO) && !o.json;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			/* commands see their own name as argv[0] */
			argv += optind;
			argc -= optind;
			optind = 0; /* GNU getopt: reinitialize for the command's own flags */
			return commands[i].fn(&o, argc, argv);
		}
	}
	fprintf(stderr, "tierctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return TIERCTL_USAGE;
}
