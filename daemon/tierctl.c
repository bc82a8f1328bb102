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
	{ "metrics", tierctl_metrics,
	  "metrics                   Prometheus text exposition of the daemon's metrics" },
	{ "verify", tierctl_verify,
	  "verify [--deep] [--repair] [--policy P] [--time-limit D] [PATH...]  check catalog, "
	  "links, cache, target" },
	{ "gc", tierctl_gc, "gc [--dry-run]            delete objects unseen for retention" },
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

/* Commands that parse --help themselves, for a longer text. */
static bool own_help(const char *name)
{
	return strcmp(name, "plan") == 0 || strcmp(name, "check-target") == 0;
}

static void command_usage(FILE *f, size_t i)
{
	const char *h = commands[i].help, *gap = strstr(h, "  ");
	int syn = gap ? (int)(gap - h) : (int)strlen(h);

	fprintf(f, "usage: tierctl [-c FILE] [-s SOCKET] [--json] %.*s\n", syn, h);
	if (gap)
		fprintf(f, "\n%s\n", gap + strspn(gap, " "));
	fprintf(f, "\nSee tierctl(1). Exit codes: 0 done, 1 failed, 2 usage/config error, 3 daemon "
	           "unreachable\n");
}

/* The value of a global option at argv[*i]: "--name=V", or "--name V" / "-x V"
 * (then *i moves past V). NULL with *bad set when V is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *bad)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (*i + 1 >= argc) {
		*bad = true;
		return NULL;
	}
	return argv[++*i];
}

/*
 * Options may follow the command, as with git or aws: takes --json, --config
 * and -c, --socket, and --help / -h out of the command's arguments (up to a
 * "--"), leaving the rest in order; --help stays for commands that print
 * their own. -s stays a command's own flag there (ls
 * -s STATE); before the command it is the socket. Returns -1 to go on, -2 for
 * --help, or an exit code.
 */
static int take_global_opts(struct tierctl_opts *o, int *argc, char **argv, bool keep_help)
{
	int out = 1, help = 0;

	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		bool bad = false;

		if (strcmp(a, "--") == 0) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (!keep_help && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			help = 1;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
		           strncmp(a, "--config=", 9) == 0) {
			o->config_path =
			    opt_value(*argc, argv, &i, a[1] == 'c' ? "-c" : "--config", &bad);
		} else if (strcmp(a, "--socket") == 0 || strncmp(a, "--socket=", 9) == 0) {
			o->socket_path = opt_value(*argc, argv, &i, "--socket", &bad);
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (bad) {
			fprintf(stderr, "tierctl: %s: option %s needs a value\n", argv[0], a);
			return TIERCTL_USAGE;
		}
	}
	argv[out] = NULL;
	*argc = out;
	if (help)
		return -2;
	return -1;
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
	int c, r;

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
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			/* commands see their own name as argv[0] */
			argv += optind;
			argc -= optind;
			r = take_global_opts(&o, &argc, argv, own_help(commands[i].name));
			if (r >= 0)
				return r;
			if (r == -2) {
				command_usage(stdout, i);
				return TIERCTL_OK;
			}
			o.tty = isatty(STDOUT_FILENO) && !o.json;
			optind = 0; /* GNU getopt: reinitialize for the command's own flags */
			return commands[i].fn(&o, argc, argv);
		}
	}
	fprintf(stderr, "tierctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return TIERCTL_USAGE;
}
