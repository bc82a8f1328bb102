/*
 * tierctl rebuild — the catalog and the dynamic links again, from the
 * manifests under this host's prefix on its targets (lib/rebuild.c). Offline,
 * like plan: it reads the configuration and works on state_dir itself, and
 * refuses while tierd answers on its control socket (two writers of one
 * namespace would race; stop tierd, rebuild, start it).
 */
#include "config.h"
#include "ctl.h"
#include "rebuild.h"
#include "tierctl.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct rbctx {
	const struct tierctl_opts *o;
	json_t *problems; /* --json: conflicts and failures */
	uint64_t seen;
};

static const char *kind_name(enum td_rebuild_kind k)
{
	static const char *const names[] = { "added",    "present", "relinked",
		                             "conflict", "failed",  "target" };

	return names[k];
}

static void on_event(void *data, const struct td_rebuild_event *ev)
{
	struct rbctx *c = data;
	char *esc = ev->path ? td_escape(ev->path, ev->path_len) : NULL;
	bool problem = ev->kind == TD_REBUILD_CONFLICT || ev->kind == TD_REBUILD_FAILED ||
	               ev->kind == TD_REBUILD_TARGET;

	c->seen++;
	if (c->problems && problem) {
		json_t *p =
		    json_pack("{s:s, s:s, s:s?, s:s?}", "kind", kind_name(ev->kind), "target",
		              ev->target ? ev->target : "", "id", ev->id, "message", ev->message);

		if (p && ev->path)
			td_ctl_set_path(p, "path", ev->path, ev->path_len);
		json_array_append_new(c->problems, p);
	} else if (!c->problems) {
		if (c->o->tty)
			fputs("\r\033[K", stderr);
		if (ev->kind == TD_REBUILD_TARGET)
			fprintf(stderr, "tierctl: rebuild: target %s: %s\n", ev->target,
			        ev->message);
		else if (problem)
			fprintf(stderr, "tierctl: rebuild: %s %s (%s): %s\n", kind_name(ev->kind),
			        esc ? esc : "?", ev->id, ev->message ? ev->message : "");
		else if (ev->kind != TD_REBUILD_PRESENT && !c->o->tty)
			printf("%s %s\n", kind_name(ev->kind), esc ? esc : "?");
		if (c->o->tty) {
			fprintf(stderr, "rebuild: %llu manifests read",
			        (unsigned long long)c->seen);
			fflush(stderr);
		}
	}
	free(esc);
}

/* Whether a tierd answers on the control socket of this configuration. */
static bool tierd_running(const struct tierctl_opts *o, const struct td_config *conf, char *sock,
                          size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;
	bool up;

	snprintf(sock, n, "%s", o->socket_path ? o->socket_path : "");
	if (!o->socket_path)
		snprintf(sock, n, "%s/tierd.sock", conf->run_dir);
	if (strlen(sock) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return up;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tierctl rebuild [--target NAME] [--dry-run]\n");
}

int tierctl_rebuild(const struct tierctl_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = { { "target", required_argument, NULL, 't' },
		                                  { "dry-run", no_argument, NULL, 'n' },
		                                  { "json", no_argument, NULL, 'j' },
		                                  { 0 } };
	const struct td_config_load_opts lo = {
		.creds = TD_CONFIG_CREDS_ENV,
		.access_key = getenv("AWS_ACCESS_KEY_ID"),
		.secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
	};
	struct tierctl_opts oo = *o;
	struct td_rebuild_opts ro = { 0 };
	struct td_rebuild_stats st;
	struct td_config_report rep = { 0 };
	struct td_config *conf = NULL;
	struct rbctx ctx = { .o = &oo };
	char err[1024], sock[4096];
	int c, r, rc;

	while ((c = getopt_long(argc, argv, "t:n", longopts, NULL)) != -1) {
		if (c == 't') {
			ro.target = optarg;
		} else if (c == 'n') {
			ro.dry_run = true;
		} else if (c == 'j') {
			oo.json = true;
			oo.tty = false;
		} else {
			usage(stderr);
			return TIERCTL_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return TIERCTL_USAGE;
	}
	r = td_config_load_report(&conf, o->config_path, &lo, &rep);
	td_config_errors_print(&rep.errors, stderr);
	td_config_report_clear(&rep);
	if (r < 0)
		return r == -ENOMEM ? TIERCTL_FAILED : TIERCTL_USAGE;
	if (!ro.dry_run && tierd_running(o, conf, sock, sizeof(sock))) {
		fprintf(stderr,
		        "tierctl: rebuild: tierd is running on this state (it answers on %s); "
		        "stop it first (systemctl stop tierd), rebuild, then start it again\n",
		        sock);
		td_config_free(conf);
		return TIERCTL_FAILED;
	}
	if (oo.json)
		ctx.problems = json_array();
	ro.conf = conf;
	ro.on_event = on_event;
	ro.data = &ctx;
	r = td_rebuild_run(&ro, &st, err, sizeof(err));
	if (oo.tty)
		fputs("\r\033[K", stderr);
	if (r < 0) {
		fprintf(stderr, "tierctl: rebuild: %s\n", err);
		json_decref(ctx.problems);
		td_config_free(conf);
		return r == -ENOENT && ro.target ? TIERCTL_USAGE : TIERCTL_FAILED;
	}
	rc = st.conflicts || st.failed || st.targets_failed ? TIERCTL_FAILED : TIERCTL_OK;
	if (oo.json) {
		json_t *doc = json_pack(
		    "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "dry_run", ro.dry_run,
		    "manifests", (json_int_t)st.manifests, "added", (json_int_t)st.added,
		    "added_bytes", (json_int_t)st.added_bytes, "present", (json_int_t)st.present,
		    "relinked", (json_int_t)st.relinked, "conflicts", (json_int_t)st.conflicts,
		    "failed", (json_int_t)st.failed, "targets_failed",
		    (json_int_t)st.targets_failed, "problems", ctx.problems);

		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		printf("rebuild%s: %llu manifests: %llu %sadded (%.1f MiB), %llu already present, "
		       "%llu %slinked again, %llu conflicts, %llu failed%s\n",
		       ro.dry_run ? " (dry run)" : "", (unsigned long long)st.manifests,
		       (unsigned long long)st.added, ro.dry_run ? "to be " : "",
		       (double)st.added_bytes / 1048576.0, (unsigned long long)st.present,
		       (unsigned long long)st.relinked, ro.dry_run ? "to be " : "",
		       (unsigned long long)st.conflicts, (unsigned long long)st.failed,
		       st.targets_failed ? "; some targets could not be read" : "");
	}
	td_config_free(conf);
	return rc;
}
