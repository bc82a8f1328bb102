/* tierctl metrics: the daemon's Prometheus text, as its /metrics serves it. */
#include "tierctl.h"

#include <stdio.h>
#include <string.h>

int tierctl_metrics(const struct tierctl_opts *o, int argc, char **argv)
{
	json_t *reply = NULL, *args = json_object();
	const char *text;
	int r;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: tierctl metrics\n");
		return TIERCTL_USAGE;
	}
	r = tierctl_request(o, "metrics", args, &reply);
	json_decref(args);
	if (r != TIERCTL_OK)
		return r;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		r = tierctl_reply_error(reply);
		json_decref(reply);
		return r;
	}
	text = json_string_value(json_object_get(reply, "text"));
	/* --json changes nothing: the exposition format is the point. */
	fwrite(text ? text : "", 1, text ? strlen(text) : 0, stdout);
	json_decref(reply);
	return fflush(stdout) == 0 ? TIERCTL_OK : TIERCTL_FAILED;
}
