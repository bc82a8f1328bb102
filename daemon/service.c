/*
 * service — see service.h.
 *
 * The control socket speaks lib/ctl's line protocol. Every connection's peer
 * is identified with SO_PEERCRED when it connects: root and members of
 * admin_group may run every command; anyone else may run the read-only ones.
 * Each connection is bounded (one capped request line buffered, a capped write
 * queue, an idle timer), and so is the number of connections, so no client can
 * make the daemon block or grow without limit.
 */
#include "service.h"
#include "ctl.h"
#include "log.h"
#include "notify.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define MAX_CLIENTS    64
#define CLIENT_IDLE_MS (60 * 1000)
#define CLIENT_WQ_MAX  (1u << 20) /* bytes of replies queued to a slow reader */

struct client;

struct service {
	uv_loop_t *loop;
	char *config_path;
	struct td_config *conf;
	const char *notify_socket;
	int64_t start_ns;
	bool stopping;
	bool reloading;
	bool reload_again;

	uv_signal_t sig_term, sig_int, sig_hup;
	uv_pipe_t server;
	bool server_open;
	bool sock_owned; /* we bound sock_path, so we remove it */
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	struct client *clients;
	unsigned n_clients;
};

struct client {
	struct service *svc;
	struct client *next, *prev;
	uv_pipe_t pipe;
	uv_timer_t idle;
	int open_handles;
	bool closing;
	struct td_ctl_framer framer;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool privileged;
};

struct command {
	const char *name;
	bool mutating; /* needs root or admin_group */
	json_t *(*fn)(struct service *s, struct client *c, json_t *args);
};

/* ---- notify ------------------------------------------------------------ */

static void notify(struct service *s, const char *state)
{
	int r = td_notify(s->notify_socket, state);

	if (r < 0)
		log_warning("could not notify systemd (%s): %s", s->notify_socket, strerror(-r));
}

/* ---- commands ---------------------------------------------------------- */

static json_t *cmd_ping(struct service *s, struct client *c, json_t *args)
{
	return json_pack("{s:b}", "ok", 1);
}

static json_t *cmd_status(struct service *s, struct client *c, json_t *args)
{
	json_t *policies = json_array(), *targets = json_object();

	for (size_t i = 0; i < s->conf->n_policies; i++)
		json_array_append_new(policies, json_string(s->conf->policies[i].name));
	for (size_t i = 0; i < s->conf->n_targets; i++)
		json_object_set_new(
		    targets, s->conf->targets[i].name,
		    json_pack("{s:s}", "type",
		              s->conf->targets[i].type == TD_TARGET_S3 ? "s3" : "dir"));
	return json_pack("{s:b, s:s, s:I, s:i, s:s, s:o, s:o, s:i}", "ok", 1, "version", TD_VERSION,
	                 "uptime_s", (json_int_t)((td_monotonic_ns() - s->start_ns) / 1000000000),
	                 "pid", (int)getpid(), "config", s->config_path, "targets", targets,
	                 "policies", policies, "in_flight", 0);
}

static void start_reload(struct service *s);

static json_t *cmd_reload(struct service *s, struct client *c, json_t *args)
{
	start_reload(s);
	return json_pack("{s:b, s:s}", "ok", 1, "message", "reload started");
}

static const struct command commands[] = {
	{ "ping", false, cmd_ping },
	{ "status", false, cmd_status },
	{ "reload", true, cmd_reload },
};

/* ---- clients ----------------------------------------------------------- */

static void client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	if (--c->open_handles > 0)
		return;
	td_ctl_framer_free(&c->framer);
	free(c);
}

static void client_close(struct client *c)
{
	struct service *s = c->svc;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_clients--;
	uv_close((uv_handle_t *)&c->pipe, client_handle_closed);
	uv_close((uv_handle_t *)&c->idle, client_handle_closed);
}

static void on_write(uv_write_t *w, int status)
{
	free(w->data);
	free(w);
}

static void client_reply(struct client *c, json_t *reply)
{
	uv_write_t *w;
	uv_buf_t b;
	size_t len;
	char *line;

	if (!reply)
		reply = td_ctl_error_reply(-ENOMEM, "out of memory");
	line = td_ctl_encode(reply, &len);
	json_decref(reply);
	if (!line) {
		json_t *e = td_ctl_error_reply(-EMSGSIZE, "reply too large");

		line = td_ctl_encode(e, &len);
		json_decref(e);
		if (!line) {
			client_close(c);
			return;
		}
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) + len > CLIENT_WQ_MAX) {
		log_warning(
		    "control: closing a connection from uid %u that does not read its replies",
		    (unsigned)c->uid);
		free(line);
		client_close(c);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		free(line);
		client_close(c);
		return;
	}
	w->data = line;
	b = uv_buf_init(line, (unsigned)len);
	if (uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, on_write) < 0) {
		free(line);
		free(w);
		client_close(c);
	}
}

static int on_line(void *ctx, int err, const char *line, size_t len)
{
	struct client *c = ctx;
	char msg[256], *name = NULL;
	json_t *args = NULL;
	int r;

	if (err == -EMSGSIZE) {
		client_reply(
		    c, td_ctl_error_reply(err, "request longer than %u bytes", TD_CTL_MAX_LINE));
		return 0;
	}
	if (len == 0)
		return 0;
	r = td_ctl_parse_request(line, len, &name, &args, msg, sizeof(msg));
	if (r < 0) {
		client_reply(c, td_ctl_error_reply(r, "%s", msg));
		return 0;
	}
	for (size_t i = 0; i < TD_ARRAY_SIZE(commands); i++) {
		if (strcmp(commands[i].name, name) != 0)
			continue;
		if (commands[i].mutating && !c->privileged) {
			log_notice("control: refused '%s' from uid %u (not root or in group %s)",
			           name, (unsigned)c->uid, c->svc->conf->admin_group);
			client_reply(c, td_ctl_error_reply(-EPERM,
			                                   "'%s' needs root or membership of "
			                                   "group '%s'",
			                                   name, c->svc->conf->admin_group));
		} else {
			client_reply(c, commands[i].fn(c->svc, c, args));
		}
		goto out;
	}
	client_reply(c, td_ctl_error_reply(-ENOSYS, "unknown command '%.64s'", name));
out:
	free(name);
	json_decref(args);
	return c->closing;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[16384]; /* the loop is single-threaded; reads are consumed at once */

	buf->base = slab;
	buf->len = sizeof(slab);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = stream->data;

	if (nread < 0) {
		client_close(c);
		return;
	}
	if (nread == 0)
		return;
	uv_timer_again(&c->idle);
	if (td_ctl_framer_feed(&c->framer, buf->base, (size_t)nread, on_line, c) < 0)
		client_close(c);
}

static void on_idle(uv_timer_t *t)
{
	client_close(t->data);
}

/* Root, the admin group as primary group, or as a supplementary group (read
 * from /proc/PID/status, which the kernel fills from the peer's credentials). */
static bool peer_is_admin(const struct service *s, uid_t uid, gid_t gid, pid_t pid)
{
	char path[64], line[4096];
	bool admin = false;
	FILE *f;

	if (uid == 0)
		return true;
	if (!s->conf->has_admin_gid)
		return false;
	if (gid == s->conf->admin_gid)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7;; p = end) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if ((gid_t)g == s->conf->admin_gid)
				admin = true;
		}
	}
	fclose(f);
	return admin;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct service *s = server->data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct client *c;
	uv_os_fd_t fd;

	if (status < 0) {
		log_warning("control: accept failed: %s", uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->svc = s;
	td_ctl_framer_init(&c->framer);
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->idle);
	c->pipe.data = c->idle.data = c;
	c->open_handles = 2;
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->n_clients++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		client_close(c);
		return;
	}
	if (s->n_clients > MAX_CLIENTS) {
		log_warning("control: too many connections (%u); refusing uid %u", MAX_CLIENTS,
		            (unsigned)cred.uid);
		client_reply(c, td_ctl_error_reply(-EBUSY, "too many connections"));
		client_close(c);
		return;
	}
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->privileged = peer_is_admin(s, cred.uid, cred.gid, cred.pid);
	uv_timer_start(&c->idle, on_idle, CLIENT_IDLE_MS, CLIENT_IDLE_MS);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- control socket ---------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file left by a crash is removed; one that answers belongs to a
 * running tierd, and starting a second one is an error. */
static int clear_stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	return unlink(path) < 0 ? -errno : 0;
}

static int open_control_socket(struct service *s)
{
	int r;

	r = snprintf(s->sock_path, sizeof(s->sock_path), "%s/tierd.sock", s->conf->run_dir);
	if (r < 0 || (size_t)r >= sizeof(s->sock_path)) {
		log_error("control socket path %s/tierd.sock is too long for a unix socket",
		          s->conf->run_dir);
		return -ENAMETOOLONG;
	}
	r = mkdir_p(s->conf->run_dir, 0711);
	if (r < 0) {
		log_error("cannot create run_dir %s: %s", s->conf->run_dir, strerror(-r));
		return r;
	}
	r = clear_stale_socket(s->sock_path);
	if (r == -EADDRINUSE) {
		log_error("another tierd is already running (it answers on %s)", s->sock_path);
		return r;
	}
	if (r < 0) {
		log_error("cannot clear %s: %s", s->sock_path, strerror(-r));
		return r;
	}
	uv_pipe_init(s->loop, &s->server, 0);
	s->server.data = s;
	s->server_open = true;
	r = uv_pipe_bind(&s->server, s->sock_path);
	s->sock_owned = r == 0;
	if (r == 0 && chmod(s->sock_path, 0666) < 0) /* access control is by SO_PEERCRED */
		r = -errno;
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->server, 16, on_connection);
	if (r < 0)
		log_error("cannot listen on %s: %s", s->sock_path, uv_strerror(r));
	return r;
}

/* ---- reload (SIGHUP) ----------------------------------------------------- */

struct reload {
	uv_work_t work;
	struct service *svc;
	char *path;
	struct td_config *conf;
	struct td_config_errors errs;
	int r;
};

static void reload_work(uv_work_t *w)
{
	struct reload *rl = w->data;

	rl->r = td_config_load(&rl->conf, rl->path, &rl->errs);
}

static void reload_done(uv_work_t *w, int status)
{
	struct reload *rl = w->data;
	struct service *s = rl->svc;

	s->reloading = false;
	if (status == 0 && rl->r == 0 && !s->stopping) {
		td_config_free(s->conf);
		s->conf = rl->conf;
		rl->conf = NULL;
		td_log_set_level(s->conf->log_level);
		log_notice("reloaded %s", s->config_path);
		notify(s, "READY=1\nSTATUS=configuration reloaded");
	} else if (rl->r < 0) {
		log_error("reload of %s rejected; keeping the running configuration:",
		          s->config_path);
		for (size_t i = 0; i < rl->errs.n; i++)
			log_error("  %s:%u: %s%s%s", rl->errs.v[i].file, rl->errs.v[i].line,
			          rl->errs.v[i].key ? rl->errs.v[i].key : "",
			          rl->errs.v[i].key ? ": " : "", rl->errs.v[i].msg);
		if (rl->errs.n == 0)
			log_error("  %s: %s", s->config_path, strerror(-rl->r));
		notify(s, "READY=1\nSTATUS=reload rejected: configuration has errors");
	}
	td_config_free(rl->conf);
	td_config_errors_clear(&rl->errs);
	free(rl->path);
	free(rl);
	if (s->reload_again && !s->stopping) {
		s->reload_again = false;
		start_reload(s);
	}
}

static void start_reload(struct service *s)
{
	struct reload *rl;

	if (s->stopping)
		return;
	if (s->reloading) {
		s->reload_again = true; /* coalesce: one more pass after this one */
		return;
	}
	rl = calloc(1, sizeof(*rl));
	if (!rl || !(rl->path = strdup(s->config_path))) {
		free(rl);
		log_error("reload: out of memory");
		return;
	}
	rl->svc = s;
	rl->work.data = rl;
	notify(s, "RELOADING=1");
	s->reloading = true;
	if (uv_queue_work(s->loop, &rl->work, reload_work, reload_done) < 0) {
		s->reloading = false;
		free(rl->path);
		free(rl);
	}
}

/* ---- signals and lifetime ------------------------------------------------ */

static void stop(struct service *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	log_notice("stopping");
	notify(s, "STOPPING=1");
	while (s->clients)
		client_close(s->clients);
	if (s->server_open) {
		uv_close((uv_handle_t *)&s->server, NULL);
		if (s->sock_owned)
			unlink(s->sock_path);
	}
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct service *s = h->data;

	if (signum == SIGHUP) {
		log_notice("SIGHUP: reloading %s", s->config_path);
		start_reload(s);
	} else {
		stop(s);
	}
}

int td_service_run(const char *config_path, struct td_config *conf)
{
	struct service s = { .conf = conf, .start_ns = td_monotonic_ns() };
	uv_loop_t loop;
	int r, status = 0;

	s.config_path = strdup(config_path);
	s.notify_socket = getenv("NOTIFY_SOCKET");
	td_log_setup(conf->log_level);
	signal(SIGPIPE, SIG_IGN);
	r = uv_loop_init(&loop);
	if (r < 0 || !s.config_path) {
		log_error("cannot start the event loop: %s", r < 0 ? uv_strerror(r) : "no memory");
		free(s.config_path);
		td_config_free(conf);
		return 1;
	}
	s.loop = &loop;
	uv_signal_init(&loop, &s.sig_term);
	uv_signal_init(&loop, &s.sig_int);
	uv_signal_init(&loop, &s.sig_hup);
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
	uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	uv_signal_start(&s.sig_int, on_signal, SIGINT);
	uv_signal_start(&s.sig_hup, on_signal, SIGHUP);

	if (open_control_socket(&s) < 0) {
		status = 1;
		stop(&s);
	} else {
		log_notice("tierd %s started: %zu target(s), %zu policy(ies); control socket %s",
		           TD_VERSION, conf->n_targets, conf->n_policies, s.sock_path);
		notify(&s, "READY=1\nSTATUS=idle");
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	if (r < 0)
		log_warning("event loop closed with handles still open: %s", uv_strerror(r));
	if (status == 0)
		log_notice("stopped");
	td_config_free(s.conf);
	free(s.config_path);
	return status;
}
