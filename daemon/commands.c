/*
 * commands — the control-socket commands. Each replies through client_send,
 * at once or later; one that waits (catalog queries on the thread pool,
 * migrations) holds a reference on the client so its reply has somewhere to
 * go, and drops the reply if the client has gone meanwhile.
 *
 * Streaming replies (migrate, ls) send {"event": ...} lines first and one
 * final line with "ok"; a client reads until that line.
 *
 * Who sees what (invariant 7): root and admin_group see everything. Anyone
 * else sees a catalog entry only if they can lstat its original path, which
 * a pool thread checks with their own credentials (td_ctl_as_peer: the kernel
 * applies their groups, the modes and ACLs of every parent directory); then
 * the owner sees all of it and others only what stat(2) would have shown them
 * (redact()). A path they cannot stat is answered exactly as one that does not
 * exist. Their `status` leaves out what describes other users' files.
 */
#include "cache.h"
#include "log.h"
#include "ns.h"
#include "service_int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define LS_PAGE       500
#define LS_PAGE_BYTES (1u << 20) /* a page also ends past about this much JSON */
#define MIGRATE_MAX   4096       /* paths in one request */

/* ---- helpers -------------------------------------------------------------- */

static void rfc3339(char *out, size_t n, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- who sees what ---------------------------------------------------------- */

enum sight {
	SEE_NOTHING,
	SEE_STAT, /* what stat(2) at the original path shows */
	SEE_ALL,
};

/*
 * lstat, and readlink when it is a link (*tl: its length, else -1), checked
 * with the peer's credentials unless it is an admin. Pool threads only, and
 * never around a catalog call (SQLite may open its journal files). For a peer
 * that is not an admin, EACCES becomes ENOENT: a path it may not stat is
 * answered as one that does not exist.
 */
static int peer_lstat(const struct client *c, const char *path, struct stat *st, char *target,
                      size_t target_size, ssize_t *tl)
{
	struct td_ctl_self self;
	int r;

	*tl = -1;
	if (!c->privileged && td_ctl_as_peer(&self, &c->peer) < 0)
		return -ENOENT; /* cannot act as them: show them nothing */
	r = lstat(path, st) < 0 ? -errno : 0;
	if (r == 0 && target && S_ISLNK(st->st_mode))
		*tl = readlink(path, target, target_size - 1);
	if (!c->privileged) {
		td_ctl_as_self(&self);
		if (r == -EACCES)
			r = -ENOENT;
	}
	return r;
}

/* What c may know of a file at original path opath owned by owner. `seen`
 * (NULL: none) was already found lstat-able as c; it saves the second lstat
 * when it is opath. */
static enum sight sight_of(const struct client *c, const char *opath, size_t olen, uid_t owner,
                           const char *seen, size_t seen_len)
{
	char *p;
	struct stat st;
	ssize_t tl;
	bool ok;

	if (c->privileged)
		return SEE_ALL;
	if (seen && seen_len == olen && memcmp(seen, opath, olen) == 0) {
		ok = true;
	} else {
		p = malloc(olen + 1);
		if (!p)
			return SEE_NOTHING;
		memcpy(p, opath, olen);
		p[olen] = '\0';
		ok = olen > 0 && memchr(p, '\0', olen) == NULL &&
		     peer_lstat(c, p, &st, NULL, 0, &tl) == 0;
		free(p);
	}
	if (!ok)
		return SEE_NOTHING;
	return owner == c->peer.uid ? SEE_ALL : SEE_STAT;
}

/* Leaves what stat(2) shows (and tierd's state, which lstat's S_IFLNK gives
 * away anyway): no id, object, hash, policy or error of someone else's file. */
static void redact(json_t *o)
{
	static const char *const hidden[] = { "id",     "target", "key",       "sha256",
		                              "policy", "step",   "last_error" };

	for (size_t i = 0; i < TD_ARRAY_SIZE(hidden); i++)
		json_object_del(o, hidden[i]);
}

/* ---- ping, reload ------------------------------------------------------- */

static void cmd_ping(struct service *s, struct client *c, json_t *args)
{
	client_send(c, json_pack("{s:b}", "ok", 1));
}

static void cmd_reload(struct service *s, struct client *c, json_t *args)
{
	svc_reload(s);
	client_send(c, json_pack("{s:b, s:s}", "ok", 1, "message", "reload started"));
}

/* ---- status --------------------------------------------------------------- */

struct status_job {
	uv_work_t work;
	struct service *s;
	struct client *c;
	struct td_catalog_stats st;
	struct td_catalog_error ce;
	int r;
	uint64_t cache_fs_bytes;
};

static void w_status(uv_work_t *w)
{
	struct status_job *j = w->data;
	struct statvfs vfs;

	uv_mutex_lock(&j->s->rcat_lock);
	j->r = td_catalog_stats(&j->st, j->s->rcat, &j->ce);
	uv_mutex_unlock(&j->s->rcat_lock);
	if (statvfs(j->s->conf->c->cache_dir, &vfs) == 0)
		j->cache_fs_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
}

static void a_status(uv_work_t *w, int status)
{
	struct status_job *j = w->data;
	struct service *s = j->s;
	const struct td_config *conf = s->conf->c;
	json_t *files = json_object(), *bytes = json_object(), *targets = json_object();
	json_t *errors = json_array(), *reply;
	uint64_t limit;

	for (int st = 0; st < TD_CATALOG_STATE_COUNT; st++) {
		const char *name = td_catalog_state_name((enum td_catalog_state)st);

		json_object_set_new(files, name, json_integer((json_int_t)j->st.files[st]));
		json_object_set_new(bytes, name, json_integer((json_int_t)j->st.bytes[st]));
	}
	for (size_t i = 0; i < s->n_targets; i++) {
		struct target_slot *ts = &s->targets[i];
		const struct td_reach_state *rs = td_reach_get(s->reach, ts->name);
		json_t *t = json_pack("{s:b, s:b}", "reachable", ts->t && rs->reachable, "checked",
		                      rs->checked);

		if (rs->last_error[0])
			json_object_set_new(t, "error", json_string(rs->last_error));
		if (!ts->t)
			json_object_set_new(t, "error",
			                    json_string("could not be set up; see the log"));
		json_object_set_new(targets, ts->name, t);
	}
	for (unsigned i = 0; i < s->n_recent; i++) {
		unsigned k = (s->recent_next + MAX_RECENT_ERRORS - 1 - i) % MAX_RECENT_ERRORS;
		char when[40];

		rfc3339(when, sizeof(when), s->recent_ns[k]);
		json_array_append_new(
		    errors, json_pack("{s:s, s:s}", "time", when, "message", s->recent[k]));
	}
	limit = td_cache_limit_of(&conf->cache_size, j->cache_fs_bytes);
	reply = json_pack("{s:b, s:s, s:I, s:i, s:s, s:o, s:{s:I, s:I}, s:o, s:o, s:i, s:i, s:o, "
	                  "s:o, s:b}",
	                  "ok", 1, "version", TD_VERSION, "uptime_s",
	                  (json_int_t)((td_monotonic_ns() - s->start_ns) / 1000000000), "pid",
	                  (int)getpid(), "config", s->config_path, "targets", targets, "cache",
	                  "used_bytes", (json_int_t)td_cache_used_bytes(&j->st), "limit_bytes",
	                  (json_int_t)limit, "files", files, "bytes", bytes, "in_flight",
	                  s->mover ? (int)td_mover_in_flight(s->mover) : 0, "queued",
	                  s->mover ? (int)td_mover_queued(s->mover) : 0, "runs", runs_status(s),
	                  "recent_errors", errors, "ready", s->mover_ready);
	json_object_set_new(reply, "dirty_scans", json_integer((json_int_t)s->dirty_scans));
	json_object_set_new(reply, "hot_scans", json_integer((json_int_t)s->hot_scans));
	life_status(s, reply);
	if (j->r < 0)
		json_object_set_new(reply, "catalog_error", json_string(j->ce.message));
	if (s->rview) {
		struct td_rview_stats rs;

		td_rview_stats(s->rview, &rs);
		json_object_set_new(
		    reply, "remote_view",
		    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "opens",
		              (json_int_t)rs.opens, "reads", (json_int_t)rs.reads, "read_bytes",
		              (json_int_t)rs.read_bytes, "target_requests",
		              (json_int_t)rs.target_requests, "target_bytes",
		              (json_int_t)rs.target_bytes, "hydrations", (json_int_t)rs.hydrations,
		              "hydration_failures", (json_int_t)rs.hydration_failures,
		              "streamed_opens", (json_int_t)rs.streamed_opens, "evictions",
		              (json_int_t)rs.evictions, "chunk_mem_peak_bytes",
		              (json_int_t)rs.chunk_mem_peak_bytes));
	}
	svc_work_done(j->c);
	client_send(j->c, reply);
	client_unref(j->c);
	free(j);
}

/* A user's status: the daemon's health, without the catalog's counts, the
 * recent errors (they name files), the configuration or the runs. Answered on
 * the loop at once: it costs the pool nothing. */
static void user_status(struct service *s, struct client *c)
{
	json_t *targets = json_object();

	for (size_t i = 0; i < s->n_targets; i++) {
		struct target_slot *ts = &s->targets[i];
		const struct td_reach_state *rs = td_reach_get(s->reach, ts->name);

		json_object_set_new(targets, ts->name,
		                    json_pack("{s:b, s:b}", "reachable", ts->t && rs->reachable,
		                              "checked", rs->checked));
	}
	client_send(c, json_pack("{s:b, s:s, s:I, s:i, s:o, s:i, s:i, s:b, s:I, s:b}", "ok", 1,
	                         "version", TD_VERSION, "uptime_s",
	                         (json_int_t)((td_monotonic_ns() - s->start_ns) / 1000000000),
	                         "pid", (int)getpid(), "targets", targets, "in_flight",
	                         s->mover ? (int)td_mover_in_flight(s->mover) : 0, "queued",
	                         s->mover ? (int)td_mover_queued(s->mover) : 0, "ready",
	                         s->mover_ready, "dirty_scans", (json_int_t)s->dirty_scans,
	                         "restricted", 1));
}

static void cmd_status(struct service *s, struct client *c, json_t *args)
{
	struct status_job *j;

	if (!c->privileged) {
		user_status(s, c);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j || !s->rcat) {
		free(j);
		client_send(c, td_ctl_error_reply(-ENOMEM, "cannot read the catalog"));
		return;
	}
	j->s = s;
	j->c = c;
	j->work.data = j;
	client_ref(c);
	if (svc_queue_work(c, &j->work, w_status, a_status) < 0) {
		client_unref(c);
		free(j);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}

/* ---- run ---------------------------------------------------------------- */

static void cmd_run(struct service *s, struct client *c, json_t *args)
{
	const char *policy = json_string_value(json_object_get(args, "policy"));
	char err[256];
	int r;

	if (!policy) {
		client_send(c, td_ctl_error_reply(-EINVAL, "expected \"policy\""));
		return;
	}
	if (!s->mover_ready) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return;
	}
	r = run_start(s, policy, err, sizeof(err));
	if (r < 0)
		client_send(c, td_ctl_error_reply(r, "%s", err));
	else
		client_send(c, json_pack("{s:b, s:s}", "ok", 1, "message", err));
}

/* ---- migrate ------------------------------------------------------------ */

struct batch {
	struct service *s;
	struct client *c;
	unsigned pending;
	unsigned tiered, skipped, failed;
	uint64_t bytes;
	bool started;
};

static const char *outcome_name(enum td_mover_outcome o)
{
	switch (o) {
	case TD_MOVER_TIERED:
		return "tiered";
	case TD_MOVER_SKIPPED:
		return "skipped";
	case TD_MOVER_RESTORED:
		return "restored";
	case TD_MOVER_INTERRUPTED:
		return "interrupted";
	default:
		return "failed";
	}
}

static void batch_event(struct batch *b, const char *path, size_t len, const char *outcome,
                        const char *id, const char *msg, uint64_t size)
{
	json_t *ev = json_pack("{s:s, s:s, s:I}", "event", "file", "outcome", outcome, "size",
	                       (json_int_t)size);

	td_ctl_set_path(ev, "path", path, len);
	if (id && *id)
		json_object_set_new(ev, "id", json_string(id));
	if (msg && *msg)
		json_object_set_new(ev, "message", json_string(msg));
	client_send(b->c, ev);
}

static void batch_maybe_done(struct batch *b)
{
	if (b->pending || !b->started)
		return;
	client_send(b->c,
	            json_pack("{s:b, s:i, s:i, s:i, s:I}", "ok", 1, "tiered", b->tiered, "skipped",
	                      b->skipped, "failed", b->failed, "bytes", (json_int_t)b->bytes));
	client_unref(b->c);
	free(b);
}

static void on_migrated(void *data, const struct td_mover_result *r)
{
	struct batch *b = data;
	char *esc = td_escape(r->path, r->path_len);

	if (r->outcome == TD_MOVER_TIERED) {
		b->tiered++;
		b->bytes += r->size_bytes;
		b->s->files_tiered++;
		b->s->bytes_tiered += r->size_bytes;
		log_info("tiered %s (%s)", esc ? esc : "?", r->id);
	} else if (r->outcome == TD_MOVER_FAILED) {
		b->failed++;
		b->s->files_failed++;
		svc_error(b->s, "migrate %s: %s", esc ? esc : "?", r->message);
	} else {
		b->skipped++;
		log_notice("not tiered: %s: %s", esc ? esc : "?", r->message);
	}
	free(esc);
	batch_event(b, r->path, r->path_len, outcome_name(r->outcome), r->id, r->message,
	            r->size_bytes);
	b->pending--;
	batch_maybe_done(b);
}

static void cmd_migrate(struct service *s, struct client *c, json_t *args)
{
	const char *target = json_string_value(json_object_get(args, "target"));
	const struct td_config *conf = s->conf->c;
	char err[256], **paths = NULL;
	size_t *lens = NULL, n = 0;
	struct batch *b;
	int r;

	if (!s->mover_ready) {
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return;
	}
	if (target && !svc_target(s, target)) {
		client_send(c, td_ctl_error_reply(-ENOENT, "no target named '%s'", target));
		return;
	}
	r = td_ctl_request_paths(args, MIGRATE_MAX, &paths, &lens, &n, err, sizeof(err));
	if (r < 0) {
		client_send(c, td_ctl_error_reply(r, "%s", err));
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		td_ctl_paths_free(paths, lens, n);
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	b->s = s;
	b->c = c;
	client_ref(c);
	for (size_t i = 0; i < n; i++) {
		const char *root = NULL;
		const struct td_policy_conf *p = td_policy_for_path(conf, paths[i], lens[i], &root);
		struct td_mover_file f = { 0 };

		if (!p) {
			b->failed++;
			batch_event(b, paths[i], lens[i], "failed", NULL,
			            "not below any policy's paths", 0);
			continue;
		}
		f.root = root;
		f.rel = paths[i] + strlen(root) + 1;
		f.rel_len = lens[i] - strlen(root) - 1;
		f.policy = p->name;
		f.target = target ? target : p->target;
		f.keep_cached = p->keep_cached;
		r = td_mover_migrate(s->mover, &f, on_migrated, b);
		if (r < 0) {
			b->failed++;
			batch_event(b, paths[i], lens[i], "failed", NULL,
			            r == -EAGAIN   ? "tierd is busy: too many files queued"
			            : r == -EINVAL ? "not a path tierd can tier"
			                           : strerror(-r),
			            0);
			continue;
		}
		b->pending++;
	}
	td_ctl_paths_free(paths, lens, n);
	b->started = true;
	batch_maybe_done(b);
}

/* ---- info --------------------------------------------------------------- */

struct info_job {
	uv_work_t work;
	struct service *s;
	struct client *c;
	char **paths;
	size_t *lens, n;
	json_t *files; /* built on the thread pool, sent on the loop */
};

static json_t *entry_json(const struct td_catalog_entry *e)
{
	char when[40] = "";
	json_t *o;

	if (e->tiered_ns)
		rfc3339(when, sizeof(when), e->tiered_ns);
	o = json_pack(
	    "{s:s, s:s, s:s?, s:s?, s:I, s:s, s:b, s:s?, s:s?, s:i, s:o, s:i, s:i, s:s}", "id",
	    e->id, "state", td_catalog_state_name(e->state), "target", e->target, "key",
	    e->object_key, "size", (json_int_t)e->size, "sha256", e->sha256, "cached",
	    e->cache_state == TD_CATALOG_CACHE_CACHED || e->cache_state == TD_CATALOG_CACHE_DIRTY,
	    "tiered_at", e->tiered_ns ? when : NULL, "policy", e->policy, "mode",
	    (int)(e->mode & 07777), "pinned", json_boolean(e->pinned), "uid", (int)e->uid, "gid",
	    (int)e->gid, "cache", td_catalog_cache_name(e->cache_state));
	if (o)
		td_ctl_set_path(o, "original_path", e->path, e->path_len);
	if (o && e->state == TD_CATALOG_MIGRATING)
		json_object_set_new(o, "step", json_integer(e->step));
	if (o && e->last_error)
		json_object_set_new(o, "last_error", json_string(e->last_error));
	return o;
}

/* The catalog entry of a path: the one its tierd link names, else the one
 * recorded at that path. NULL if neither. */
static struct td_catalog_entry *lookup(struct service *s, const char *path, size_t len,
                                       const char *target, ssize_t tl)
{
	struct td_catalog_entry *e = NULL;
	struct td_catalog_error ce = { 0 };
	char id[33];
	int r;

	uv_mutex_lock(&s->rcat_lock);
	if (tl > 0 && td_ns_parse_link(s->conf->c->state_dir, target, (size_t)tl, id))
		r = td_catalog_get(&e, s->rcat, id, &ce);
	else
		r = td_catalog_get_by_path(&e, s->rcat, path, len, &ce);
	uv_mutex_unlock(&s->rcat_lock);
	return r == 0 ? e : NULL;
}

/*
 * A path's entry as c may see it, or NULL; *sr is what lstat said as c, *st
 * its answer. An admin's question is answered from the catalog even when the
 * path has gone; anyone else's only for a path they can lstat, and only with
 * an entry whose original path they can lstat too.
 */
static struct td_catalog_entry *lookup_as(const struct client *c, const char *path, size_t len,
                                          struct stat *st, int *sr, enum sight *see)
{
	char target[4096];
	struct td_catalog_entry *e = NULL;
	ssize_t tl;

	*sr = peer_lstat(c, path, st, target, sizeof(target), &tl);
	*see = SEE_NOTHING;
	if (*sr == 0 || c->privileged)
		e = lookup(c->svc, path, len, target, tl);
	if (e)
		*see = sight_of(c, e->path, e->path_len, e->uid, *sr == 0 ? path : NULL, len);
	if (e && *see == SEE_NOTHING) {
		td_catalog_entry_free(e);
		e = NULL;
	}
	return e;
}

static void w_info(uv_work_t *w)
{
	struct info_job *j = w->data;

	j->files = json_array();
	for (size_t i = 0; i < j->n; i++) {
		struct stat st;
		enum sight see;
		int sr;
		struct td_catalog_entry *e =
		    lookup_as(j->c, j->paths[i], j->lens[i], &st, &sr, &see);
		json_t *o;

		if (e) {
			o = entry_json(e);
			if (o && see != SEE_ALL)
				redact(o);
		} else {
			o = json_pack("{s:s, s:b}", "state", "local", "cached", 0);
			if (sr < 0)
				json_object_set_new(o, "error", json_string(strerror(-sr)));
			else
				json_object_set_new(o, "size",
				                    json_integer((json_int_t)st.st_size));
		}
		td_catalog_entry_free(e);
		td_ctl_set_path(o, "path", j->paths[i], j->lens[i]);
		json_array_append_new(j->files, o);
	}
}

/* The catalog keeps keys relative to the target's prefix; admins and scripts
 * want the whole key, the one `aws s3 cp s3://BUCKET/KEY` takes. On the loop:
 * the config is the current one. */
static void full_key(const struct service *s, json_t *o)
{
	const char *key = json_string_value(json_object_get(o, "key"));
	const char *tname = json_string_value(json_object_get(o, "target"));
	const struct td_target_conf *tc = tname ? td_config_target(s->conf->c, tname) : NULL;
	char *full;

	if (!key || !tc || tc->type != TD_TARGET_S3 || !tc->prefix || !tc->prefix[0])
		return;
	if (asprintf(&full, "%s%s", tc->prefix, key) < 0)
		return;
	json_object_set_new(o, "key", json_string(full));
	free(full);
}

static void a_info(uv_work_t *w, int status)
{
	struct info_job *j = w->data;

	size_t i;
	json_t *v;

	json_array_foreach(j->files, i, v) full_key(j->s, v);
	svc_work_done(j->c);
	client_send(j->c, json_pack("{s:b, s:o}", "ok", 1, "files", j->files));
	client_unref(j->c);
	td_ctl_paths_free(j->paths, j->lens, j->n);
	free(j);
}

static void cmd_info(struct service *s, struct client *c, json_t *args)
{
	struct info_job *j = calloc(1, sizeof(*j));
	char err[256];
	int r;

	if (!j) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	r = td_ctl_request_paths(args, MIGRATE_MAX, &j->paths, &j->lens, &j->n, err, sizeof(err));
	if (r < 0) {
		free(j);
		client_send(c, td_ctl_error_reply(r, "%s", err));
		return;
	}
	j->s = s;
	j->c = c;
	j->work.data = j;
	client_ref(c);
	if (svc_queue_work(c, &j->work, w_info, a_info) < 0) {
		client_unref(c);
		td_ctl_paths_free(j->paths, j->lens, j->n);
		free(j);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}

/* ---- ls ------------------------------------------------------------------ */

struct ls_job {
	uv_work_t work;
	struct service *s;
	struct client *c;
	int state;
	char *policy;
	char after[TD_CATALOG_ID_HEX];
	json_t *page;
	unsigned n_page;
	size_t page_bytes;
	uint64_t total;
	int r;
	/* For a peer that is not an admin: each page row's original path and
	 * owner, checked once the catalog lock is released. */
	struct {
		char *path;
		size_t len;
		uid_t uid;
	} rows[LS_PAGE];
};

static int ls_collect(void *data, const struct td_catalog_entry *e)
{
	struct ls_job *j = data;
	json_t *o = entry_json(e);

	if (o)
		json_object_set_new(o, "event", json_string("file"));
	if (!j->c->privileged) {
		j->rows[j->n_page].path = malloc(e->path_len + 1);
		if (j->rows[j->n_page].path)
			memcpy(j->rows[j->n_page].path, e->path, e->path_len);
		j->rows[j->n_page].len = e->path_len;
		j->rows[j->n_page].uid = e->uid;
	}
	json_array_append_new(j->page, o ? o : json_null());
	memcpy(j->after, e->id, sizeof(j->after));
	j->n_page++;
	/* Paths may be 64 KiB: bound a page by its size as well as its rows. */
	j->page_bytes += 2 * e->path_len + 512;
	return j->page_bytes >= LS_PAGE_BYTES ? 1 : 0;
}

/* Drops the rows the peer may not see and redacts the ones it does not own;
 * rows it may not see become JSON nulls, which a_ls skips. */
static void ls_filter(struct ls_job *j)
{
	for (unsigned i = 0; i < j->n_page; i++) {
		json_t *o = json_array_get(j->page, i);
		enum sight see = j->rows[i].path ? sight_of(j->c, j->rows[i].path, j->rows[i].len,
		                                            j->rows[i].uid, NULL, 0)
		                                 : SEE_NOTHING;

		if (see == SEE_NOTHING)
			json_array_set_new(j->page, i, json_null());
		else if (see == SEE_STAT && json_is_object(o))
			redact(o);
		free(j->rows[i].path);
		j->rows[i].path = NULL;
	}
}

static void w_ls(uv_work_t *w)
{
	struct ls_job *j = w->data;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_filter f = { .state = j->state,
		                       .policy = j->policy,
		                       .after_id = j->after[0] ? j->after : NULL,
		                       .limit = LS_PAGE };

	j->page = json_array();
	j->n_page = 0;
	j->page_bytes = 0;
	uv_mutex_lock(&j->s->rcat_lock);
	j->r = td_catalog_foreach(j->s->rcat, &f, ls_collect, j, &ce);
	uv_mutex_unlock(&j->s->rcat_lock);
	if (!j->c->privileged)
		ls_filter(j);
}

static void a_ls(uv_work_t *w, int status);

static void ls_end(struct ls_job *j)
{
	svc_work_done(j->c);
	if (j->r < 0)
		client_send(j->c, td_ctl_error_reply(j->r, "catalog read failed"));
	else
		client_send(j->c, json_pack("{s:b, s:I}", "ok", 1, "count", (json_int_t)j->total));
	client_unref(j->c);
	free(j->policy);
	free(j);
}

/* The next page is read only once the peer has read the last one down to the
 * low-water mark (client_when_drained): a slow reader costs one page of
 * memory, however many rows there are, and is never cut off for being slow. */
static void ls_next(struct client *c, void *data)
{
	struct ls_job *j = data;

	if (!c->closing && !j->s->stopping && uv_queue_work(j->s->loop, &j->work, w_ls, a_ls) == 0)
		return;
	ls_end(j);
}

static void a_ls(uv_work_t *w, int status)
{
	struct ls_job *j = w->data;
	bool more = j->r >= 0 && (j->n_page == LS_PAGE || j->r == 1);
	size_t i;
	json_t *v;

	json_array_foreach(j->page, i, v)
	{
		if (json_is_object(v)) {
			full_key(j->s, v);
			client_send(j->c, json_incref(v));
			j->total++;
		}
	}
	json_decref(j->page);
	if (j->r > 0)
		j->r = 0;
	if (more && !j->c->closing && !j->s->stopping) {
		client_when_drained(j->c, ls_next, j);
		return;
	}
	ls_end(j);
}

static void cmd_ls(struct service *s, struct client *c, json_t *args)
{
	const char *state = json_string_value(json_object_get(args, "state"));
	const char *policy = json_string_value(json_object_get(args, "policy"));
	struct ls_job *j = calloc(1, sizeof(*j));
	enum td_catalog_state st;

	if (!j) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	j->state = TD_CATALOG_ANY;
	if (state) {
		if (td_catalog_state_parse(&st, state) < 0) {
			free(j);
			client_send(c,
			            td_ctl_error_reply(-EINVAL,
			                               "unknown state '%.32s' (local, migrating, "
			                               "tiered, cached, dirty, recalling)",
			                               state));
			return;
		}
		j->state = (int)st;
	}
	j->policy = policy ? strdup(policy) : NULL;
	j->s = s;
	j->c = c;
	j->work.data = j;
	client_ref(c);
	if (svc_queue_work(c, &j->work, w_ls, a_ls) < 0) {
		client_unref(c);
		free(j->policy);
		free(j);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}

/* ---- recall ------------------------------------------------------------------ */

struct ritem {
	struct rbatch *b;
	char *path;
	size_t len;
	char id[TD_CATALOG_ID_HEX];
	int state; /* -1: not in the catalog, or not the peer's to see */
	uint32_t uid;
	bool mine;       /* the peer is an admin, or owns it and can stat it */
	bool over_quota; /* pin refused: pinned_bytes + its size > the batch's quota */
	uint64_t pinned_bytes;
};

enum raction {
	RA_RECALL,
	RA_PIN,
	RA_UNPIN,
};

struct rbatch {
	uv_work_t work;
	enum raction action;
	struct service *s;
	struct client *c;
	char **paths;
	size_t *lens, n;
	struct ritem *items;
	unsigned pending, recalled, failed, skipped;
	bool started;
	/* pin by a peer that is not an admin: pin_quota and what a percentage of
	 * it is taken of, copied on the loop so the pool thread reads no config
	 * a reload may free; the bytes are worked out on the pool thread
	 * (statvfs of the cache directory may block). */
	bool quota_applies;
	struct td_size_or_pct quota, cache_size;
	char *cache_dir;
	uint64_t quota_bytes;
};

static void rbatch_maybe_done(struct rbatch *b)
{
	if (b->pending || !b->started)
		return;
	client_send(b->c, json_pack("{s:b, s:i, s:i, s:i}", "ok", 1, "recalled", b->recalled,
	                            "skipped", b->skipped, "failed", b->failed));
	client_unref(b->c);
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].path);
	free(b->items);
	td_ctl_paths_free(b->paths, b->lens, b->n);
	free(b->cache_dir);
	free(b);
}

/* err: an errno the event names ("errno": "EDQUOT"), or 0 for none. */
static void ritem_event_errno(struct ritem *it, const char *outcome, const char *msg, int err)
{
	struct rbatch *b = it->b;
	json_t *ev = json_pack("{s:s, s:s}", "event", "file", "outcome", outcome);

	td_ctl_set_path(ev, "path", it->path, it->len);
	if (it->id[0])
		json_object_set_new(ev, "id", json_string(it->id));
	if (msg && *msg)
		json_object_set_new(ev, "message", json_string(msg));
	if (err)
		json_object_set_new(ev, "errno", json_string(td_errno_name(err)));
	client_send(b->c, ev);
	if (strcmp(outcome, "recalled") == 0 || strcmp(outcome, "pinned") == 0 ||
	    strcmp(outcome, "unpinned") == 0)
		b->recalled++;
	else if (strcmp(outcome, "failed") == 0)
		b->failed++;
	else
		b->skipped++;
}

static void ritem_event(struct ritem *it, const char *outcome, const char *msg)
{
	ritem_event_errno(it, outcome, msg, 0);
}

static void on_item_recalled(void *data, const struct td_mover_result *r)
{
	struct ritem *it = data;

	ritem_event(it,
	            r->outcome == TD_MOVER_TIERED   ? "recalled"
	            : r->outcome == TD_MOVER_FAILED ? "failed"
	                                            : "skipped",
	            r->outcome == TD_MOVER_TIERED ? NULL : r->message);
	it->b->pending--;
	rbatch_maybe_done(it->b);
}

static void on_item_hydrated(void *data, int status)
{
	struct ritem *it = data;
	int r;

	if (it->b->action == RA_PIN) {
		if (status < 0)
			ritem_event(it, "failed", "pinned, but its data could not be brought back");
		else
			ritem_event(it, "pinned", NULL);
		it->b->pending--;
		rbatch_maybe_done(it->b);
		return;
	}
	if (status < 0) {
		ritem_event(it, "failed",
		            status == -EFBIG ? "larger than the whole cache"
		                             : "could not bring its data back");
	} else if ((r = svc_recall(it->b->s, it->id, on_item_recalled, it)) == 0) {
		return;
	} else {
		ritem_event(it, "failed", strerror(-r));
	}
	it->b->pending--;
	rbatch_maybe_done(it->b);
}

/*
 * The pin of e, under the catalog lock so that the quota check and the flag
 * it guards are one step: two batches of one user cannot both pass with room
 * for one. A pin that is refused changes nothing.
 */
static void pin_item(struct rbatch *b, struct ritem *it, const struct td_catalog_entry *e, bool pin)
{
	struct td_catalog_entry upd = { 0 };
	struct td_catalog_error ce;
	uint64_t used = 0;

	memcpy(upd.id, e->id, sizeof(upd.id));
	upd.pinned = pin;
	uv_mutex_lock(&b->s->rcat_lock);
	/* pin_quota = 0 refuses even an empty file: "no pins for users". */
	if (pin && b->quota_applies && !e->pinned &&
	    td_catalog_pinned_bytes(&used, b->s->rcat, e->uid, &ce) == 0 &&
	    (b->quota_bytes == 0 || e->size > b->quota_bytes || used > b->quota_bytes - e->size)) {
		it->over_quota = true;
		it->pinned_bytes = used;
	} else {
		td_catalog_update(b->s->rcat, &upd, TD_CATALOG_F_PIN, NULL, &ce);
	}
	uv_mutex_unlock(&b->s->rcat_lock);
}

static void w_recall_lookup(uv_work_t *w)
{
	struct rbatch *b = w->data;

	if (b->quota_applies) {
		struct statvfs v;
		uint64_t fs =
		    statvfs(b->cache_dir, &v) == 0 ? (uint64_t)v.f_blocks * v.f_frsize : 0;

		b->quota_bytes =
		    td_cache_limit_of(&b->quota, td_cache_limit_of(&b->cache_size, fs));
	}
	for (size_t i = 0; i < b->n; i++) {
		struct ritem *it = &b->items[i];
		struct stat st;
		enum sight see;
		int sr;
		struct td_catalog_entry *e =
		    lookup_as(b->c, b->paths[i], b->lens[i], &st, &sr, &see);

		it->b = b;
		it->len = b->lens[i];
		it->path = malloc(it->len + 1);
		if (it->path)
			memcpy(it->path, b->paths[i], it->len + 1);
		it->state = -1; /* also what a file the peer may not see gets */
		if (e) {
			memcpy(it->id, e->id, sizeof(it->id));
			it->state = (int)e->state;
			it->uid = e->uid;
			it->mine = see == SEE_ALL;
		}
		/* pin/unpin: the flag is set here, for those allowed to (checked
		 * again on the loop for the reply). */
		if (e && b->action != RA_RECALL && it->mine && e->state != TD_CATALOG_LOCAL)
			pin_item(b, it, e, b->action == RA_PIN);
		td_catalog_entry_free(e);
	}
}

static void a_recall_lookup(uv_work_t *w, int status)
{
	struct rbatch *b = w->data;
	struct service *s = b->s;

	svc_work_done(b->c);
	for (size_t i = 0; i < b->n; i++) {
		struct ritem *it = &b->items[i];
		int r;

		if (!it->path)
			continue;
		if (it->state < 0 || it->state == TD_CATALOG_LOCAL) {
			ritem_event(it, "skipped", "not tiered");
			continue;
		}
		/* Users may recall the files they own; of others' they learn
		 * nothing stat would not tell them, not even the id. */
		if (!it->mine) {
			it->id[0] = '\0';
			ritem_event(it, "failed",
			            "not your file: recall needs its owner, root, or "
			            "the admin group");
			continue;
		}
		if (b->action == RA_UNPIN) {
			ritem_event(it, "unpinned", NULL);
			continue;
		}
		if (it->over_quota) {
			char msg[128], *esc = td_escape(it->path, it->len);

			snprintf(msg, sizeof(msg), "pin quota exceeded: %llu of %llu bytes pinned",
			         (unsigned long long)it->pinned_bytes,
			         (unsigned long long)b->quota_bytes);
			log_notice("pin refused: %s (uid %u): %s", esc ? esc : "?",
			           (unsigned)it->uid, msg);
			free(esc);
			ritem_event_errno(it, "failed", msg, EDQUOT);
			continue;
		}
		if (b->action == RA_PIN && it->state != TD_CATALOG_TIERED) {
			ritem_event(it, "pinned", NULL);
			continue;
		}
		if (it->state == TD_CATALOG_MIGRATING || it->state == TD_CATALOG_RECALLING) {
			ritem_event(it, "skipped", "busy: being migrated or recalled");
			continue;
		}
		b->pending++;
		if (it->state == TD_CATALOG_TIERED)
			r = s->rview ? td_rview_hydrate(s->rview, it->id, on_item_hydrated, it)
			             : -ENOTCONN;
		else
			r = svc_recall(s, it->id, on_item_recalled, it);
		if (r < 0) {
			b->pending--;
			ritem_event(it, "failed", strerror(-r));
		}
	}
	b->started = true;
	rbatch_maybe_done(b);
}

static void files_cmd(struct service *s, struct client *c, json_t *args, enum raction action)
{
	struct rbatch *b = calloc(1, sizeof(*b));
	char err[256];
	int r;

	if (!b) {
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	if (!s->mover_ready) {
		free(b);
		client_send(c, td_ctl_error_reply(-EAGAIN, "tierd is still recovering; try again"));
		return;
	}
	r = td_ctl_request_paths(args, MIGRATE_MAX, &b->paths, &b->lens, &b->n, err, sizeof(err));
	if (r < 0 || !(b->items = calloc(b->n, sizeof(*b->items)))) {
		if (r == 0)
			td_ctl_paths_free(b->paths, b->lens, b->n);
		free(b);
		client_send(c, td_ctl_error_reply(r < 0 ? r : -ENOMEM, "%s",
		                                  r < 0 ? err : "out of memory"));
		return;
	}
	b->s = s;
	b->c = c;
	b->action = action;
	b->work.data = b;
	if (action == RA_PIN && !c->privileged) {
		b->quota_applies = true;
		b->quota = s->conf->c->pin_quota;
		b->cache_size = s->conf->c->cache_size;
		b->cache_dir = strdup(s->conf->c->cache_dir);
	}
	if (b->quota_applies && !b->cache_dir) {
		td_ctl_paths_free(b->paths, b->lens, b->n);
		free(b->items);
		free(b);
		client_send(c, td_ctl_error_reply(-ENOMEM, "out of memory"));
		return;
	}
	client_ref(c);
	if (svc_queue_work(c, &b->work, w_recall_lookup, a_recall_lookup) < 0) {
		client_unref(c);
		free(b->items);
		td_ctl_paths_free(b->paths, b->lens, b->n);
		free(b->cache_dir);
		free(b);
		client_send(c, td_ctl_error_reply(-EAGAIN, "busy"));
	}
}

static void cmd_recall(struct service *s, struct client *c, json_t *args)
{
	files_cmd(s, c, args, RA_RECALL);
}

static void cmd_pin(struct service *s, struct client *c, json_t *args)
{
	files_cmd(s, c, args, RA_PIN);
}

static void cmd_unpin(struct service *s, struct client *c, json_t *args)
{
	files_cmd(s, c, args, RA_UNPIN);
}

const struct command svc_commands[] = {
	{ "ping", false, cmd_ping },
	{ "status", false, cmd_status },
	{ "info", false, cmd_info },
	{ "ls", false, cmd_ls },
	{ "recall", false, cmd_recall }, /* these four check ownership per file */
	{ "restore", false, cmd_restore },
	{ "recall_bulk", false, cmd_recall_bulk },
	/* checks who per scope */ { "pin", false, cmd_pin },
	{ "unpin", false, cmd_unpin },
	{ "reload", true, cmd_reload },
	{ "run", true, cmd_run },
	{ "migrate", true, cmd_migrate },
	{ "metrics", true, cmd_metrics }, /* metrics.c */
	{ "verify", true, cmd_verify },
	{ "gc", true, cmd_gc }, /* cmd_lifecycle.c */
};
const size_t svc_n_commands = sizeof(svc_commands) / sizeof(svc_commands[0]);
