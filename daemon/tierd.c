/* tierd — the tiering service. See tierd(8). */
#include "config.h"
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tierd [-c FILE] [-f] [--check-config]\n");
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
	struct td_config_errors errs = { 0 };
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
	r = td_config_load(&conf, config_path, &errs);
	if (r < 0) {
		if (errs.n)
			td_config_errors_print(&errs, stderr);
		else
			fprintf(stderr, "tierd: %s: %s\n", config_path, strerror(-r));
		td_config_errors_clear(&errs);
		return 2;
	}
	if (check) {
		td_config_dump(conf, stdout);
		td_config_free(conf);
		return 0;
	}
	if (!foreground && daemon(0, 0) < 0) {
		fprintf(stderr, "tierd: cannot detach: %s\n", strerror(errno));
		td_config_free(conf);
		return 1;
	}
	return td_service_run(config_path, conf);
}
