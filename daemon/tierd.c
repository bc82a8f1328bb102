/* tierd — the tiering service. See tierd(8). */
#include "config.h"
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tierd [-c FILE] [-f] [--check-config]\n"
	           "  -c, --config FILE   configuration file (default " TD_DEFAULT_CONFIG ")\n"
	           "  -f, --foreground    stay in the foreground\n"
	           "      --check-config  print the effective configuration and exit 0,\n"
	           "                      or print every error and exit 2\n");
}

/* Loads the config and gives its s3 targets keys from the environment. Exit status or 0. */
static int load_config(struct td_config **out, const char *path, bool check)
{
	struct td_config_errors errs = { 0 };
	struct td_config *conf = NULL;
	int r;

	r = td_config_load(&conf, path, &errs);
	if (r < 0) {
		if (errs.n)
			td_config_errors_print(&errs, stderr);
		else
			fprintf(stderr, "tierd: %s: %s\n", path, strerror(-r));
		if (errs.n > 1)
			fprintf(stderr, "tierd: %zu errors in %s\n", errs.n, path);
		td_config_errors_clear(&errs);
		return 2;
	}
	r = td_config_apply_env_credentials(conf, getenv("AWS_ACCESS_KEY_ID"),
	                                    getenv("AWS_SECRET_ACCESS_KEY"));
	if (r < 0) {
		fprintf(stderr, "tierd: %s\n", strerror(-r));
		td_config_free(conf);
		return 1;
	}
	r = td_config_check_credentials(conf, &errs);
	if (r < 0 && errs.n) {
		/* The service's environment (systemd's EnvironmentFile=) may differ from the
		 * shell that runs --check-config: there it is a warning, here an error. */
		if (check) {
			for (size_t i = 0; i < errs.n; i++)
				fprintf(stderr,
				        "%s:%u: warning: %s (needed when the service starts)\n",
				        errs.v[i].file, errs.v[i].line, errs.v[i].msg);
		} else {
			td_config_errors_print(&errs, stderr);
			td_config_errors_clear(&errs);
			td_config_free(conf);
			return 2;
		}
	} else if (r < 0) {
		fprintf(stderr, "tierd: %s\n", strerror(-r));
		td_config_free(conf);
		return 1;
	}
	td_config_errors_clear(&errs);
	*out = conf;
	return 0;
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
	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "tierd: cannot detach: %s\n", strerror(errno));
		td_config_free(conf);
		return 1;
	}
	return td_service_run(config_path, conf);
}
