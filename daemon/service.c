/*
 * service — see service.h.
 *
 * Start-up: targets are created, stale multipart uploads and temp files on
 * them are cleaned up, the catalog is opened, and every migration a crash left
 * half-done is finished or rolled back (td_mover_recover) before any policy
 * runs. The control socket is served from the start; commands that need the
 * mover answer "recovering" until it is ready.
 *
 * The control socket speaks lib/ctl's line protocol. Every connection's peer
 * is identified with SO_PEERCRED and SO_PEERGROUPS, which the kernel records
 * at connect: root and members of admin_group may run every command; anyone
 * else may run the read-only ones and sees only what they could stat
 * (commands.c). No user can lock root out (invariant 9): each connection is
 * bounded (one capped request line buffered, which must complete within
 * CLIENT_LINE_MS of its first byte; a capped write queue; an idle timer that
 * only complete requests reset), a uid that is not an admin holds at most
 * MAX_CLIENTS_PER_UID connections, all of them together never the
 * ADMIN_RESERVE slots kept for admins, and their pool work is capped at
 * USER_JOBS_MAX jobs. tierd(8), SECURITY, states these bounds.
 *
 * Targets: each configured one has a slot (its td_target, its probe); whether
 * it answers lives in a td_reach hub, which probes and transfers report to and
 * which publishes to the log and to the scheduler (runs.c), in that order.
 *
 * Shutdown (SIGTERM): the socket closes, runs stop feeding the mover, the
 * mover cancels uploads (their rows stay for recovery) and finishes swaps in
 * their grace period, then the targets close and the loop ends.
 */
#include "service.h"
#include "cache.h"
#include "hot.h"
#include "log.h"
#include "metrics.h"
#include "ns.h"
#include "notify.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS         64          /* connections of every peer together */
#define ADMIN_RESERVE       16          /* of those, the ones only root and admin_group get */
#define MAX_CLIENTS_PER_UID 8           /* connections of one uid that is not an admin */
#define USER_JOBS_MAX       2           /* pool jobs of non-admins at a time (libuv's pool has 4) */
#define CLIENT_LINE_MS      (10 * 1000) /* a request line, from its first byte */
#define CLIENT_IDLE_MS      (60 * 1000) /* between complete requests, no reply pending */
#define CLIENT_WQ_MAX       (4u << 20)  /* bytes of replies queued to a slow reader */
#define CLIENT_WQ_LOW       (256u << 10) /* a streaming reply goes on below this */
#define REFUSAL_LOG_S       10           /* refused connections are logged this often at most */
#define PROBE_INTERVAL_S    30
#define SWAP_GRACE_MS       2000

static void stop(struct service *s);
static void drained(struct client *c);

/* ---- shared helpers ----------------------------------------------------- */

static void notify(struct service *s, const char *state)
{
	int r = td_notify(s->notify_socket, state);

	if (r < 0)
		log_warning("could not notify systemd (%s): %s", s->notify_socket, strerror(-r));
}

static void svc_verror(struct service *s, const char *kind, const char *fmt, va_list ap)
{
	char msg[320];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_error("%s", msg);
	if (kind)
		td_metrics_add(TD_M_ERRORS, 1, kind, NULL, NULL);
	memcpy(s->recent[s->recent_next], msg, sizeof(msg));
	s->recent_ns[s->recent_next] = td_now_ns();
	s->recent_next = (s->recent_next + 1) % MAX_RECENT_ERRORS;
	if (s->n_recent < MAX_RECENT_ERRORS)
		s->n_recent++;
}

void svc_error(struct service *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svc_verror(s, "service", fmt, ap);
	va_end(ap);
}

void svc_error_kind(struct service *s, const char *kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svc_verror(s, kind, fmt, ap);
	va_end(ap);
}

struct conf_ref *conf_get(struct service *s)
{
	s->conf->refs++;
	return s->conf;
}

void conf_put(struct conf_ref *r)
{
	if (r && --r->refs == 0) {
		td_config_free(r->c);
		free(r);
	}
}

struct target_slot *svc_target(struct service *s, const char *name)
{
	for (size_t i = 0; i < s->n_targets; i++)
		if (strcmp(s->targets[i].name, name) == 0)
			return &s->targets[i];
	return NULL;
}

static struct td_target *target_for(void *ctx, const char *name)
{
	struct target_slot *ts = svc_target(ctx, name);

	return ts && ts->t ? ts->t : NULL;
}

/* The mover asks before starting a file: a target known to be down is not
 * worth a full round of upload retries per file. */
static bool target_usable(void *ctx, const char *name)
{
	struct service *s = ctx;

	return !s->reach || td_reach_usable(s->reach, name);
}

/* What a probe or a transfer said about a target: td_reach classifies it and
 * tells its subscribers (on_reach below first, then the scheduler). */
void svc_target_result(struct service *s, struct target_slot *ts, int status, const char *msg)
{
	if (s->reach)
		td_reach_report(s->reach, ts->name, status, msg, td_now_ns());
}

/* The first subscriber: the admin hears of every change. */
static void on_reach(void *data, const struct td_reach_event *ev)
{
	struct service *s = data;
	const struct td_reach_state *st = td_reach_get(s->reach, ev->target);

	if (ev->change == TD_REACH_LOST)
		svc_error_kind(s, "target", "target %s is unreachable: %s", ev->target,
		               ev->message ? ev->message : st->last_error);
	else if (ev->change == TD_REACH_BACK)
		log_notice("target %s is reachable again", ev->target);
}

/* ---- clients ------------------------------------------------------------ */

static void client_free_if_done(struct client *c)
{
	if (c->open_handles > 0 || c->refs > 0)
		return;
	td_ctl_framer_free(&c->framer);
	td_ctl_peer_free(&c->peer);
	free(c);
}

static void client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	c->open_handles--;
	client_free_if_done(c);
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
	if (c->user_slot)
		s->n_user_clients--;
	uv_close((uv_handle_t *)&c->pipe, client_handle_closed);
	uv_close((uv_handle_t *)&c->idle, client_handle_closed);
	uv_close((uv_handle_t *)&c->deadline, client_handle_closed);
	drained(c); /* a streaming reply stops here; c lives until the close callbacks */
}

/* Answers with one error line, written at once if nothing else is queued (a
 * uv_write would be cancelled by the close), and closes the connection. */
static void client_refuse(struct client *c, json_t *msg)
{
	uv_os_fd_t fd;
	size_t len;
	char *line = td_ctl_encode(msg, &len);

	json_decref(msg);
	if (line && uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0 &&
	    uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
	    send(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("control: could not tell uid %u why: %s", (unsigned)c->peer.uid,
		          strerror(errno));
	free(line);
	client_close(c);
}

int svc_queue_work(struct client *c, uv_work_t *w, uv_work_cb work, uv_after_work_cb after)
{
	struct service *s = c->svc;
	int r;

	if (!c->privileged && s->user_jobs >= USER_JOBS_MAX)
		return -EAGAIN;
	r = uv_queue_work(s->loop, w, work, after);
	if (r == 0 && !c->privileged)
		s->user_jobs++;
	return r < 0 ? -EAGAIN : 0;
}

void svc_work_done(struct client *c)
{
	if (!c->privileged)
		c->svc->user_jobs--;
}

void client_ref(struct client *c)
{
	c->refs++;
}

void client_unref(struct client *c)
{
	c->refs--;
	client_free_if_done(c);
}

static void drained(struct client *c)
{
	void (*cb)(struct client *, void *) = c->drain_cb;

	if (!cb)
		return;
	c->drain_cb = NULL;
	cb(c, c->drain_data);
}

static void on_write(uv_write_t *w, int status)
{
	struct client *c = w->handle->data;

	free(w->data);
	free(w);
	/* Cancelled writes of a closing client come here too, before its close
	 * callback, so a waiter always hears of the end. */
	if (c->drain_cb && (c->closing || !client_congested(c)))
		drained(c);
}

bool client_congested(const struct client *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe) > CLIENT_WQ_LOW;
}

void client_when_drained(struct client *c, void (*cb)(struct client *c, void *data), void *data)
{
	c->drain_cb = cb;
	c->drain_data = data;
	c->drain_since_ns = td_monotonic_ns();
	if (c->closing || !client_congested(c))
		drained(c);
}

void client_send(struct client *c, json_t *msg)
{
	uv_write_t *w;
	uv_buf_t b;
	size_t len;
	char *line;

	if (c->closing) {
		json_decref(msg);
		return;
	}
	if (!msg)
		msg = td_ctl_error_reply(-ENOMEM, "out of memory");
	line = td_ctl_encode(msg, &len);
	json_decref(msg);
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
		    (unsigned)c->peer.uid);
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

/* What a stopping tierd still answers: nothing that moves data. */
static bool read_only_command(const char *name)
{
	static const char *const ro[] = { "ping", "status", "info", "ls", "metrics" };

	for (size_t i = 0; i < TD_ARRAY_SIZE(ro); i++)
		if (strcmp(name, ro[i]) == 0)
			return true;
	return false;
}

static int on_line(void *ctx, int err, const char *line, size_t len)
{
	struct client *c = ctx;
	char msg[256], *name = NULL;
	json_t *args = NULL;
	int r;

	if (err == -EMSGSIZE) {
		client_send(
		    c, td_ctl_error_reply(err, "request longer than %u bytes", TD_CTL_MAX_LINE));
		return 0;
	}
	uv_timer_stop(&c->deadline); /* the next line has a deadline of its own */
	if (len == 0)
		return 0;
	uv_timer_again(&c->idle); /* a complete request, and only that, resets it */
	r = td_ctl_parse_request(line, len, &name, &args, msg, sizeof(msg));
	if (r < 0) {
		client_send(c, td_ctl_error_reply(r, "%s", msg));
		return 0;
	}
	for (size_t i = 0; i < svc_n_commands; i++) {
		const struct command *cmd = &svc_commands[i];

		if (strcmp(cmd->name, name) != 0)
			continue;
		if (c->svc->draining && !read_only_command(name)) {
			client_send(c, td_ctl_error_reply(
			                   -ESHUTDOWN, "tierd is stopping: it lets the transfers "
			                               "in flight finish and takes no new work"));
		} else if (cmd->mutating && !c->privileged) {
			log_notice("control: refused '%s' from uid %u (not root or in group %s)",
			           name, (unsigned)c->peer.uid, c->svc->conf->c->admin_group);
			client_send(c, td_ctl_error_reply(-EPERM,
			                                  "'%s' needs root or membership of "
			                                  "group '%s'",
			                                  name, c->svc->conf->c->admin_group));
		} else {
			cmd->fn(c->svc, c, args);
		}
		goto out;
	}
	client_send(c, td_ctl_error_reply(-ENOSYS, "unknown command '%.64s'", name));
out:
	free(name);
	json_decref(args);
	return c->closing;
}

static void on_idle(uv_timer_t *t)
{
	struct client *c = t->data;

	if (c->refs == 0) { /* never cut off a client still waiting for a reply */
		client_close(c);
	} else if (c->drain_cb && !c->privileged &&
	           td_monotonic_ns() - c->drain_since_ns >= (int64_t)CLIENT_IDLE_MS * 1000000) {
		/* ...unless it stopped reading it: users may not hold a reply (and
		 * its pool slot) forever. Admins may read as slowly as they like. */
		log_warning("control: closing a connection from uid %u that has not read its "
		            "reply for %d s",
		            (unsigned)c->peer.uid, CLIENT_IDLE_MS / 1000);
		client_close(c);
	}
}

static void on_deadline(uv_timer_t *t)
{
	struct client *c = t->data;

	log_info("control: closing a connection from uid %u: a request took over %d s to "
	         "arrive",
	         (unsigned)c->peer.uid, CLIENT_LINE_MS / 1000);
	client_refuse(c, td_ctl_error_reply(-ETIMEDOUT, "request not complete within %d s",
	                                    CLIENT_LINE_MS / 1000));
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
	if (td_ctl_framer_feed(&c->framer, buf->base, (size_t)nread, on_line, c) != 0 ||
	    c->closing) {
		client_close(c);
		return;
	}
	/* Trickled bytes buy nothing: a line must end within CLIENT_LINE_MS of the
	 * byte that began it. */
	if (!td_ctl_framer_pending(&c->framer))
		uv_timer_stop(&c->deadline);
	else if (!uv_is_active((uv_handle_t *)&c->deadline))
		uv_timer_start(&c->deadline, on_deadline, CLIENT_LINE_MS, 0);
}

/* Connections of uid that hold a slot of the users' pool. */
static unsigned user_clients_of(const struct service *s, uid_t uid)
{
	unsigned n = 0;

	for (const struct client *c = s->clients; c; c = c->next)
		n += c->user_slot && c->peer.uid == uid;
	return n;
}

/* NULL when c may stay; else why not. Admins are limited only by the total,
 * and users together never reach the admins' reserve. */
static const char *over_limit(const struct service *s, const struct client *c)
{
	if (c->privileged)
		return s->n_clients > MAX_CLIENTS ? "too many connections" : NULL;
	if (s->n_user_clients >= MAX_CLIENTS - ADMIN_RESERVE)
		return "too many connections";
	if (user_clients_of(s, c->peer.uid) >= MAX_CLIENTS_PER_UID)
		return "too many connections from this user";
	return NULL;
}

/* A flood of refused connections would flood the log too: one line per
 * REFUSAL_LOG_S, with the count. */
static void log_refusal(const struct client *c, const char *why)
{
	static int64_t last_s;
	static unsigned n;
	int64_t now = td_monotonic_ns() / 1000000000;

	n++;
	if (last_s && now - last_s < REFUSAL_LOG_S)
		return;
	log_warning("control: refusing uid %u: %s (%u refused since the last message)",
	            (unsigned)c->peer.uid, why, n);
	last_s = now;
	n = 0;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct service *s = server->data;
	const char *why;
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
	uv_timer_init(s->loop, &c->deadline);
	c->pipe.data = c->idle.data = c->deadline.data = c;
	c->open_handles = 3;
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	s->n_clients++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 || td_ctl_peer_get(&c->peer, fd) < 0) {
		client_close(c);
		return;
	}
	c->privileged =
	    td_ctl_peer_is_admin(&c->peer, s->conf->c->has_admin_gid, s->conf->c->admin_gid);
	why = over_limit(s, c);
	if (why) {
		log_refusal(c, why);
		client_refuse(c, td_ctl_error_reply(-EBUSY, "%s", why));
		return;
	}
	if (!c->privileged) {
		c->user_slot = true;
		s->n_user_clients++;
	}
	uv_timer_start(&c->idle, on_idle, CLIENT_IDLE_MS, CLIENT_IDLE_MS);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- control socket ------------------------------------------------------ */

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
	const struct td_config *conf = s->conf->c;
	int r;

	r = snprintf(s->sock_path, sizeof(s->sock_path), "%s/tierd.sock", conf->run_dir);
	if (r < 0 || (size_t)r >= sizeof(s->sock_path)) {
		log_error("control socket path %s/tierd.sock is too long for a unix socket",
		          conf->run_dir);
		return -ENAMETOOLONG;
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
		r = uv_listen((uv_stream_t *)&s->server, SOMAXCONN, on_connection);
	if (r < 0)
		log_error("cannot listen on %s: %s", s->sock_path, uv_strerror(r));
	return r;
}

/* ---- targets and probes -------------------------------------------------- */

static void on_probe(void *data, struct td_target_req *req, int status,
                     const struct td_target_error *err)
{
	struct target_slot *ts = data;

	ts->probing = false;
	if (status == -ECANCELED)
		return;
	/* A missing probe key is the expected answer: the server is there. */
	if (status == -ENOENT)
		status = 0;
	svc_target_result(ts->svc, ts, status, err ? err->message : NULL);
}

static void probe_targets(struct service *s)
{
	for (size_t i = 0; i < s->n_targets; i++) {
		struct target_slot *ts = &s->targets[i];

		if (!ts->t || ts->probing)
			continue;
		if (td_target_head(ts->t, NULL, ".tierd-probe", &ts->probe_info, on_probe, ts) == 0)
			ts->probing = true;
	}
}

/* The reachability hub over every configured target (set up or not), with
 * the log and the scheduler subscribed, in that order. */
static int open_reach(struct service *s)
{
	const char **names = calloc(s->n_targets ? s->n_targets : 1, sizeof(*names));
	int r;

	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_targets; i++)
		names[i] = s->targets[i].name;
	r = td_reach_new(&s->reach, names, s->n_targets);
	free(names);
	if (r == 0)
		r = td_reach_subscribe(s->reach, on_reach, s);
	if (r == 0)
		r = runs_init(s);
	if (r < 0)
		log_error("cannot set up the scheduler: %s", strerror(-r));
	return r;
}

static int open_targets(struct service *s)
{
	const struct td_config *conf = s->conf->c;

	s->targets = calloc(conf->n_targets ? conf->n_targets : 1, sizeof(*s->targets));
	if (!s->targets)
		return -ENOMEM;
	for (size_t i = 0; i < conf->n_targets; i++) {
		const struct td_target_conf *tc = &conf->targets[i];
		struct target_slot *ts = &s->targets[s->n_targets];
		struct td_target_error err = { 0 };
		int r;

		ts->svc = s;
		ts->name = strdup(tc->name);
		if (!ts->name)
			return -ENOMEM;
		s->n_targets++;
		if (tc->type == TD_TARGET_S3 && strncmp(tc->endpoint, "http://", 7) == 0)
			log_warning("target %s: endpoint %s is plain http: data and signatures "
			            "cross the network unencrypted",
			            tc->name, tc->endpoint);
		r = td_target_new(&ts->t, s->loop, tc, &err);
		if (r < 0) {
			svc_error_kind(s, "target", "target %s: %s", tc->name,
			               err.message[0] ? err.message : strerror(-r));
			ts->t = NULL;
			continue;
		}
		s->targets_open++;
	}
	return open_reach(s);
}

static void on_target_closed(void *data)
{
	struct service *s = data;

	s->targets_open--;
}

static void close_targets(struct service *s)
{
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].t) {
			td_target_close(s->targets[i].t, on_target_closed, s);
			s->targets[i].t = NULL;
		}
}

/* ---- start-up: clean the targets, recover, then serve ---------------------- */

struct cleanup {
	struct service *s;
	struct target_slot *ts;
	unsigned n;
};

static unsigned cleanups_pending;
static void start_recovery(struct service *s);

static void on_cleaned(void *data, struct td_target_req *req, int status,
                       const struct td_target_error *err)
{
	struct cleanup *c = data;
	struct service *s = c->s;

	if (status < 0) {
		svc_error_kind(s, "target", "target %s: cannot clean up stale uploads: %s",
		               c->ts->name,
		               err && err->message[0] ? err->message : strerror(-status));
		svc_target_result(s, c->ts, status, err ? err->message : NULL);
	} else {
		svc_target_result(s, c->ts, 0, NULL);
		if (c->n)
			log_notice("target %s: cleaned up %u stale upload(s) left by a crash",
			           c->ts->name, c->n);
	}
	free(c);
	if (--cleanups_pending == 0 && !s->stopping)
		start_recovery(s);
}

/* Every policy root of the configuration (the strings are the config's);
 * NULL on ENOMEM. */
static const char **policy_roots(const struct service *s, size_t *n_out)
{
	const struct td_config *conf = s->conf->c;
	const char **roots;
	size_t n = 0;

	for (size_t i = 0; i < conf->n_policies; i++)
		n += conf->policies[i].paths.n;
	roots = calloc(n ? n : 1, sizeof(*roots));
	if (!roots)
		return NULL;
	n = 0;
	for (size_t i = 0; i < conf->n_policies; i++)
		for (size_t k = 0; k < conf->policies[i].paths.n; k++)
			roots[n++] = conf->policies[i].paths.v[k];
	*n_out = n;
	return roots;
}

static void on_recovered(void *data, int status, unsigned finished, unsigned rolled_back,
                         unsigned left)
{
	struct service *s = data;

	if (status < 0)
		svc_error(s, "recovery stopped early: %s", strerror(-status));
	if (finished || rolled_back || left)
		log_notice("recovery: %u migration(s) finished, %u rolled back, %u left for the "
		           "admin (see tierctl ls --state migrating)",
		           finished, rolled_back, left);
	if (left)
		svc_error(s, "%u interrupted migration(s) need attention", left);
	s->mover_ready = true;
	if (s->stopping)
		return;
	notify(s, "READY=1\nSTATUS=idle");
	runs_reschedule(s);
	svc_bulk_resume(s);
}

static void start_recovery(struct service *s)
{
	const char **roots;
	size_t n = 0;
	int r;

	roots = policy_roots(s, &n);
	if (!roots) {
		svc_error(s, "recovery: out of memory");
		stop(s);
		return;
	}
	r = td_mover_recover(s->mover, roots, n, on_recovered, s);
	free(roots);
	if (r < 0) {
		svc_error(s, "cannot start recovery: %s", strerror(-r));
		on_recovered(s, r, 0, 0, 0);
	}
}

static void start_cleanups(struct service *s)
{
	svc_check_lost_state(s);
	cleanups_pending = 1; /* held until every cleanup is started */
	for (size_t i = 0; i < s->n_targets; i++) {
		struct cleanup *c;

		if (!s->targets[i].t)
			continue;
		c = calloc(1, sizeof(*c));
		if (!c)
			continue;
		c->s = s;
		c->ts = &s->targets[i];
		cleanups_pending++;
		if (td_target_cleanup_stale(c->ts->t, NULL, &c->n, on_cleaned, c) < 0) {
			cleanups_pending--;
			free(c);
		}
	}
	if (--cleanups_pending == 0)
		start_recovery(s);
}

static void on_mover_step(void *ctx, const char *id, const char *step)
{
	/* Tests only: TD_TEST_CRASH_AT=STEP[,N] kills tierd right after the N-th
	 * (default first) migration reaches STEP, to prove crash safety. */
	static int count;
	const char *at = getenv("TD_TEST_CRASH_AT");
	size_t n;

	if (!at)
		return;
	n = strcspn(at, ",");
	if (strlen(step) != n || strncmp(at, step, n) != 0)
		return;
	if (__atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST) >= (at[n] ? atoi(at + n + 1) : 1))
		raise(SIGKILL);
}

static int open_mover(struct service *s)
{
	const struct td_config *conf = s->conf->c;
	struct td_catalog_error ce = { 0 };
	struct td_mover_opts mo = { 0 };
	char err[512], dir[4096];
	const char *grace = getenv("TD_SWAP_GRACE_MS");
	int r;

	for (int i = 0; i < 3; i++) {
		const char *d = i == 0 ? conf->state_dir : i == 1 ? conf->cache_dir : conf->run_dir;

		r = td_ns_mkdirs(d, 0711);
		if (r < 0) {
			log_error("cannot create %s: %s", d, strerror(-r));
			return r;
		}
	}
	snprintf(dir, sizeof(dir), "%s/links", conf->state_dir);
	td_ns_mkdirs(dir, 0711);
	snprintf(s->catalog_path, sizeof(s->catalog_path), "%s/catalog.db", conf->state_dir);
	mo.loop = s->loop;
	mo.catalog_path = s->catalog_path;
	mo.state_dir = conf->state_dir;
	mo.cache_dir = conf->cache_dir;
	mo.run_dir = conf->run_dir;
	mo.max_transfers = conf->max_transfers ? conf->max_transfers : 1;
	mo.grace_ms = grace ? atoll(grace) : SWAP_GRACE_MS;
	mo.target_for = target_for;
	mo.target_usable = target_usable;
	mo.step_hook = getenv("TD_TEST_CRASH_AT") ? on_mover_step : NULL;
	mo.ctx = s;
	r = td_mover_new(&s->mover, &mo, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	r = td_catalog_open(&s->rcat, s->catalog_path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		log_error("%s", ce.message);
		return r;
	}
	uv_mutex_init(&s->rcat_lock);
	/* Copies an older tierd left where any id reached them (issue 11). */
	unsigned moved = 0;
	r = td_cache_migrate(s->rcat, conf->state_dir, conf->cache_dir, &moved);
	if (moved)
		log_notice("moved %u cache cop%s into %s/copies (their own directories)", moved,
		           moved == 1 ? "y" : "ies", conf->cache_dir);
	if (r < 0)
		log_warning("moving cache copies out of %s/objects: %s", conf->cache_dir,
		            strerror(-r));
	/* A crash between a hydration's rebind and its catalog row. */
	unsigned fixed = 0;
	r = td_cache_reconcile(s->rcat, conf->state_dir, conf->cache_dir, &fixed);
	if (fixed)
		log_notice("%u tiered file(s) were bound to their cache copies at the last stop: "
		           "recorded as cached, or as written to (they go back to primary storage)",
		           fixed);
	if (r < 0)
		log_warning("checking the cache copies of tiered files: %s", strerror(-r));
	return 0;
}

/* ---- the remote view ---------------------------------------------------- */

static void on_rview_error(void *ctx, const char *id, const char *message)
{
	svc_error_kind(ctx, "remote_view", "remote view: %s: %s", id, message);
}

struct recall_ctx {
	struct service *s;
	td_mover_cb done;
	void *data;
};

static void on_recalled(void *data, const struct td_mover_result *r)
{
	struct recall_ctx *rc = data;
	char *esc = r->path_len ? td_escape(r->path, r->path_len) : NULL;

	if (r->outcome == TD_MOVER_TIERED)
		log_notice("recalled %s (%s) to primary storage", esc ? esc : r->id, r->id);
	else if (r->status == -EBUSY || r->status == -EAGAIN)
		log_info("recall of %s waits: %s", r->id,
		         r->status == -EBUSY ? "its writers have it open"
		                             : "another process holds a lease on its copy");
	else
		svc_error(rc->s, "recall of %s (%s): %s", esc ? esc : r->id, r->id, r->message);
	free(esc);
	if (rc->done)
		rc->done(rc->data, r);
	free(rc);
}

int svc_recall(struct service *s, const char *id, td_mover_cb done, void *data)
{
	struct recall_ctx *rc;
	const char **roots;
	size_t n = 0;
	int r;

	if (!s->mover || s->stopping)
		return -ESHUTDOWN;
	roots = policy_roots(s, &n);
	rc = calloc(1, sizeof(*rc));
	if (!roots || !rc) {
		free(roots);
		free(rc);
		return -ENOMEM;
	}
	rc->s = s;
	rc->done = done;
	rc->data = data;
	r = td_mover_recall(s->mover, id, roots, n, on_recalled, rc);
	free(roots);
	if (r < 0)
		free(rc);
	return r;
}

static void on_rview_dirty(void *ctx, const char *id)
{
	struct service *s = ctx;

	log_info("%s was written through the remote view: recalling it", id);
	svc_recall(s, id, NULL, NULL);
}

/* Copies written after their link was rebound to them (the kernel follows
 * the link; tierd is not in the path) are found by lib/cache's scan: a changed
 * one is dirty and goes back to primary storage once nobody has it open for
 * writing. */
#define DIRTY_SCAN_EVERY_S 30

static void on_dirty_found(void *data, const char (*ids)[TD_CATALOG_ID_HEX], unsigned n)
{
	struct service *s = data;

	s->dirty_scanning = false;
	for (unsigned i = 0; i < n && !s->stopping; i++)
		svc_recall(s, ids[i], NULL, NULL);
	s->dirty_scans++; /* after the recalls: they count in in_flight now */
}

void svc_dirty_scan(struct service *s)
{
	if (s->dirty_scanning || !s->rcat || !s->mover_ready || s->stopping)
		return;
	if (td_cache_dirty_scan(s->loop, s->rcat, &s->rcat_lock, s->conf->c->cache_dir,
	                        on_dirty_found, s) == 0)
		s->dirty_scanning = true;
}

/* Hot files go back home (lib/hot): a copy's atime moves at most once a day
 * for reads, so a scan every few minutes sees every day a file was read. */
#define HOT_SCAN_EVERY_S 300

static void on_hot_found(void *data, const char (*ids)[TD_CATALOG_ID_HEX], unsigned n,
                         uint64_t looked)
{
	struct service *s = data;

	(void)looked;
	s->hot_scanning = false;
	for (unsigned i = 0; i < n && !s->stopping; i++) {
		log_notice("recalling %s: it was read on enough days to be hot (hot_recall_reads)",
		           ids[i]);
		svc_recall(s, ids[i], NULL, NULL);
	}
	s->hot_scans++; /* after the recalls: they count in in_flight now */
}

static void svc_hot_scan(struct service *s)
{
	if (s->hot_scanning || !s->rcat || !s->mover_ready || s->stopping ||
	    !td_hot_enabled(s->conf->c))
		return;
	if (td_hot_scan(s->loop, s->rcat, &s->rcat_lock, s->conf->c->cache_dir, s->conf->c,
	                on_hot_found, s) == 0)
		s->hot_scanning = true;
}

static int open_rview(struct service *s)
{
	const struct td_config *conf = s->conf->c;
	struct td_rview_opts o = { 0 };
	char mnt[4096], err[512];
	int r;

	snprintf(mnt, sizeof(mnt), "%s/remote", conf->run_dir);
	o.loop = s->loop;
	o.mountpoint = mnt;
	o.catalog_path = s->catalog_path;
	o.state_dir = conf->state_dir;
	o.cache_dir = conf->cache_dir;
	o.run_dir = conf->run_dir;
	o.cache_limit_bytes = td_cache_limit(conf);
	o.no_hydrate = (const char *const *)conf->no_hydrate.v;
	o.n_no_hydrate = conf->no_hydrate.n;
	o.stream_direct_io = conf->stream_direct_io;
	o.target_for = target_for;
	o.on_error = on_rview_error;
	o.on_dirty = on_rview_dirty;
	o.ctx = s;
	r = td_rview_new(&s->rview, &o, err, sizeof(err));
	if (r < 0)
		log_error("%s", err);
	return r;
}

/* ---- reload (SIGHUP) ------------------------------------------------------ */

struct reload {
	uv_work_t work;
	struct service *svc;
	char *path;
	struct td_config *conf;
	struct td_config_report rep;
	int r;
};

static void start_reload(struct service *s);

static void reload_work(uv_work_t *w)
{
	struct reload *rl = w->data;

	/* As at start-up: a target left without keys rejects the reload. */
	const struct td_config_load_opts o = {
		.creds = TD_CONFIG_CREDS_REQUIRE,
		.access_key = getenv("AWS_ACCESS_KEY_ID"),
		.secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
	};

	rl->r = td_config_load_report(&rl->conf, rl->path, &o, &rl->rep);
}

static void reload_done(uv_work_t *w, int status)
{
	struct reload *rl = w->data;
	struct service *s = rl->svc;

	s->reloading = false;
	if (status == 0 && rl->r == 0 && !s->stopping) {
		struct conf_ref *ref = calloc(1, sizeof(*ref));

		if (ref) {
			ref->c = rl->conf;
			ref->refs = 1;
			rl->conf = NULL;
			conf_put(s->conf);
			s->conf = ref;
			for (size_t i = 0; i < s->conf->c->n_targets; i++)
				if (!svc_target(s, s->conf->c->targets[i].name))
					log_warning("target %s is new: it is used from the next "
					            "restart",
					            s->conf->c->targets[i].name);
			td_log_set_level(s->conf->c->log_level);
			if (s->rview)
				td_rview_set_limits(s->rview, td_cache_limit(s->conf->c),
				                    (const char *const *)s->conf->c->no_hydrate.v,
				                    s->conf->c->no_hydrate.n,
				                    s->conf->c->stream_direct_io);
			runs_reschedule(s);
			svc_metrics_listen(s);
			log_notice("reloaded %s", s->config_path);
			notify(s, "READY=1\nSTATUS=configuration reloaded");
		}
	} else if (rl->r < 0) {
		svc_error(
		    s, "reload of %s rejected; keeping the running configuration:", s->config_path);
		/* The messages name keys and files, never their contents (invariant 8). */
		for (size_t i = 0; i < rl->rep.errors.n; i++) {
			const struct td_config_error *e = &rl->rep.errors.v[i];
			log_error("  %s:%u: %s%s%s", e->file, e->line, e->key ? e->key : "",
			          e->key ? ": " : "", e->msg);
		}
		if (rl->rep.errors.n == 0) /* out of memory even for the message */
			log_error("  %s: %s", s->config_path, strerror(-rl->r));
		notify(s, "READY=1\nSTATUS=reload rejected: configuration has errors");
	}
	td_config_free(rl->conf);
	td_config_report_clear(&rl->rep);
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

void svc_reload(struct service *s)
{
	start_reload(s);
}

/* ---- the tick: schedules, watermarks, probes ------------------------------- */

/* A rollback whose target copy could not be deleted (target down) left its
 * row at step 9; once the target answers again, it is deleted and the row
 * goes, without waiting for a restart. */
static void on_rollbacks_retried(void *data, int status, unsigned finished, unsigned rolled_back,
                                 unsigned left)
{
	struct service *s = data;

	s->retrying_rollbacks = false;
	(void)finished;
	if (status < 0 && status != -ESHUTDOWN)
		log_warning("retrying rollbacks stopped early: %s", strerror(-status));
	/* Rows whose target is still unreachable stay at step 9 for next time. */
	if (rolled_back)
		log_debug("retried %u rolled-back migration(s)", rolled_back);
	(void)left;
}

static void retry_rollbacks(struct service *s)
{
	const char **roots;
	size_t n = 0;

	if (!s->mover || s->stopping || !(roots = policy_roots(s, &n)))
		return;
	if (td_mover_retry_rollbacks(s->mover, roots, n, on_rollbacks_retried, s) == 0)
		s->retrying_rollbacks = true;
	free(roots);
}

static void on_tick(uv_timer_t *t)
{
	struct service *s = t->data;
	int64_t now = td_now_ns() / 1000000000;

	if (s->stopping)
		return;
	if (now - s->last_probe_s >= PROBE_INTERVAL_S) {
		s->last_probe_s = now;
		probe_targets(s);
	}
	if (s->draining)
		return; /* no new work while stopping */
	if (s->mover_ready && !s->retrying_rollbacks &&
	    now - s->last_rollback_retry_s >= (getenv("TD_ROLLBACK_RETRY_S")
	                                           ? atoi(getenv("TD_ROLLBACK_RETRY_S"))
	                                           : PROBE_INTERVAL_S)) {
		s->last_rollback_retry_s = now;
		retry_rollbacks(s);
	}
	if (s->mover_ready)
		runs_tick(s, now);
	life_tick(s, now);
	if (s->mover_ready && now - s->last_dirty_scan_s >= (getenv("TD_DIRTY_SCAN_S")
	                                                         ? atoi(getenv("TD_DIRTY_SCAN_S"))
	                                                         : DIRTY_SCAN_EVERY_S)) {
		s->last_dirty_scan_s = now;
		svc_dirty_scan(s);
	}
	if (s->mover_ready &&
	    now - s->last_hot_scan_s >=
	        (getenv("TD_HOT_SCAN_S") ? atoi(getenv("TD_HOT_SCAN_S")) : HOT_SCAN_EVERY_S)) {
		s->last_hot_scan_s = now;
		svc_hot_scan(s);
	}
}

/* ---- signals and lifetime ---------------------------------------------------- */

static void on_mover_closed(void *data)
{
	struct service *s = data;

	s->mover = NULL;
	s->mover_closed = true;
	close_targets(s);
}

static void close_mover(struct service *s)
{
	if (s->mover)
		td_mover_close(s->mover, on_mover_closed, s);
	else
		close_targets(s);
}

static void on_rview_closed(void *data)
{
	struct service *s = data;

	s->rview = NULL;
	close_mover(s);
}

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
	svc_metrics_stop(s);
	uv_timer_stop(&s->drain_timer);
	uv_close((uv_handle_t *)&s->drain_timer, NULL);
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
	uv_close((uv_handle_t *)&s->sig_io, NULL);
	runs_stop(s);
	life_stop(s);
	if (s->rview)
		td_rview_close(s->rview, on_rview_closed, s);
	else
		close_mover(s);
}

/* ---- a clean stop: transfers in flight finish first ------------------------- */

static void on_drain_tick(uv_timer_t *t)
{
	struct service *s = t->data;
	unsigned left = s->mover ? td_mover_in_flight(s->mover) : 0;

	if (left == 0 && !s->runs) {
		log_notice("every transfer in flight has finished");
		stop(s);
	} else if (td_monotonic_ns() >= s->drain_deadline_ns) {
		log_warning("stop_timeout reached with %u transfer(s) in flight: cancelling them; "
		            "their files stay as they were and are tried again later",
		            left);
		stop(s);
	}
}

/* The first SIGTERM: no new work (runs stop feeding, queued files are
 * dropped, commands that would move data are refused), reads go on, and the
 * transfers in flight finish, for at most stop_timeout; then stop(). */
static void start_drain(struct service *s)
{
	unsigned left = s->mover ? td_mover_in_flight(s->mover) : 0;
	int64_t timeout_s = s->conf->c->stop_timeout_s;

	if (s->draining || s->stopping)
		return;
	if ((left == 0 && !s->runs) || timeout_s <= 0) {
		stop(s);
		return;
	}
	s->draining = true;
	s->drain_deadline_ns = td_monotonic_ns() + timeout_s * 1000000000;
	log_notice("stopping: letting %u transfer(s) in flight finish (stop_timeout %llds; a "
	           "second SIGTERM stops at once)",
	           left, (long long)timeout_s);
	notify(s, "STOPPING=1\nSTATUS=letting transfers in flight finish");
	runs_stop(s);
	if (s->mover)
		td_mover_drop_queued(s->mover);
	uv_timer_start(&s->drain_timer, on_drain_tick, 100, 100);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct service *s = h->data;

	if (signum == SIGHUP) {
		log_notice("SIGHUP: reloading %s", s->config_path);
		start_reload(s);
	} else if (signum == SIGIO) {
		/* A read lease is being broken: someone opens a file we are moving. */
		if (s->mover)
			td_mover_check_leases(s->mover);
	} else if (s->draining) {
		log_notice("second signal: stopping now");
		stop(s);
	} else {
		start_drain(s);
	}
}

int td_service_run(const char *config_path, struct td_config *conf)
{
	struct service s = { .start_ns = td_monotonic_ns() };
	uv_loop_t loop;
	int r, status = 0;

	s.conf = calloc(1, sizeof(*s.conf));
	s.config_path = strdup(config_path);
	s.notify_socket = getenv("NOTIFY_SOCKET");
	td_log_setup(conf->log_level);
	signal(SIGPIPE, SIG_IGN);
	r = uv_loop_init(&loop);
	if (r < 0 || !s.config_path || !s.conf) {
		log_error("cannot start the event loop: %s", r < 0 ? uv_strerror(r) : "no memory");
		free(s.config_path);
		free(s.conf);
		td_config_free(conf);
		return 1;
	}
	s.conf->c = conf;
	s.conf->refs = 1;
	s.loop = &loop;
	uv_signal_init(&loop, &s.sig_term);
	uv_signal_init(&loop, &s.sig_int);
	uv_signal_init(&loop, &s.sig_hup);
	uv_signal_init(&loop, &s.sig_io);
	s.sig_term.data = s.sig_int.data = s.sig_hup.data = s.sig_io.data = &s;
	uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	uv_signal_start(&s.sig_int, on_signal, SIGINT);
	uv_signal_start(&s.sig_hup, on_signal, SIGHUP);
	uv_signal_start(&s.sig_io, on_signal, SIGIO);
	uv_timer_init(&loop, &s.tick);
	s.tick.data = &s;
	uv_timer_init(&loop, &s.drain_timer);
	s.drain_timer.data = &s;

	if (open_mover(&s) < 0 || open_targets(&s) < 0 || open_rview(&s) < 0 ||
	    open_control_socket(&s) < 0) {
		status = 1;
		stop(&s);
	} else {
		log_notice("tierd %s started: %zu target(s), %zu policy(ies); control socket %s",
		           TD_VERSION, conf->n_targets, conf->n_policies, s.sock_path);
		notify(&s, "STATUS=recovering interrupted migrations");
		uv_timer_start(&s.tick, on_tick, 1000, 1000);
		start_cleanups(&s);
		/* A listener that cannot bind is an error to see, not a reason to stop tiering. */
		svc_metrics_listen(&s);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	if (r < 0)
		log_warning("event loop closed with handles still open: %s", uv_strerror(r));
	if (status == 0)
		log_notice("stopped");
	if (s.rcat) {
		td_catalog_close(s.rcat);
		uv_mutex_destroy(&s.rcat_lock);
	}
	for (size_t i = 0; i < s.n_targets; i++)
		free(s.targets[i].name);
	free(s.targets);
	td_scheduler_free(s.sched);
	td_reach_free(s.reach);
	life_free(&s);
	conf_put(s.conf);
	free(s.config_path);
	return status;
}
