/* tierd — the tiering service. See tierd(8). */
#include "config.h"

#include <curl/curl.h>
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tierd [-c FILE] [-f] [--check-config]\n"
	           "  -c, --config FILE   configuration file (default " TD_DEFAULT_CONFIG ")\n"
	           "  -f, --foreground    stay in the foreground\n"
	           "      --check-config  print the effective configuration and exit 0,\n"
	           "                      or print every error and exit 2\n");
}

/* Loads the config, keys included (in check mode, missing keys only warn). Exit status or 0. */
static int load_config(struct td_config **out, const char *path, bool check)
{
	const struct td_config_load_opts o = {
		.creds = check ? TD_CONFIG_CREDS_WARN : TD_CONFIG_CREDS_REQUIRE,
		.access_key = getenv("AWS_ACCESS_KEY_ID"),
		.secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
	};
	struct td_config_report rep = { 0 };
	int r;

	r = td_config_load_report(out, path, &o, &rep);
	td_config_errors_print(&rep.warnings, stderr);
	td_config_errors_print(&rep.errors, stderr);
	if (rep.errors.n > 1)
		fprintf(stderr, "tierd: %zu errors in %s\n", rep.errors.n, path);
	td_config_report_clear(&rep);
	if (r < 0)
		return r == -ENOMEM ? 1 : 2;
	return 0;
}

/* Files in their grace period hold fds (lib/mover.c sizes them from the
 * limit): take the hard limit (systemd's LimitNOFILE, or the shell's ulimit
 * -Hn) as the soft one, as servers holding many files do. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
		if (rl.rlim_cur > 1048576)
			rl.rlim_cur = 1048576;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *config_path = TD_DEFAULT_CONFIG;
	struct td_config *conf = NULL;
	bool check = false, foreground = false;
	int c, r;

	/* Once, before any thread exists: the S3 target's libcurl needs it. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "%s: cannot initialize libcurl\n", argv[0]);
		return 1;
	}
	while ((c = getopt_long(argc, argv, "c:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tierd %s\n", TD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	r = load_config(&conf, config_path, check);
	if (r)
		return r;
	if (check) {
		r = td_config_dump(conf, stdout);
		td_config_free(conf);
		if (r < 0) {
			fprintf(stderr, "tierd: writing the configuration: %s\n", strerror(-r));
			return 1;
		}
		return 0;
	}
	raise_fd_limit();
	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "tierd: cannot detach: %s\n", strerror(errno));
		td_config_free(conf);
		return 1;
	}
	return td_service_run(config_path, conf);
}
