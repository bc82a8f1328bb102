/*
 * verify — see verify.h for what is checked and repaired. One thread (the
 * caller's) with its private loop for target calls (life.h). Rows are read a
 * page of ids at a time and fetched again one by one, so a row is checked as
 * it is now; before a repair acts, the row is read once more and the repair is
 * a compare-and-set on its state, so verify never undoes what the daemon did
 * meanwhile (a hydration that just bound the cache copy, a recall).
 */
#include "verify.h"
#include "catalog_life.h"
#include "ctl.h"
#include "fsat.h"
#include "hash.h"
#include "ns.h"
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE             256
#define EVENTS_PER_CLASS 1000
#define CHECKPOINT_KEY   "verify.checkpoint"

struct verify {
	const struct td_verify_opts *o;
	struct td_life *l;
	struct td_catalog *cat;
	int64_t now_ns, deadline_ns, last_progress_ns;
	uint64_t checked, total, problems, repaired, notes;
	json_t *classes; /* class -> count */
	int stop_err;
	char stop_msg[4096];
	int null_fd;
};

static void problem(struct verify *v, const struct td_catalog_entry *e, const char *cls, bool note,
                    bool repaired, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void problem(struct verify *v, const struct td_catalog_entry *e, const char *cls, bool note,
                    bool repaired, const char *fmt, ...)
{
	json_int_t n = json_integer_value(json_object_get(v->classes, cls)) + 1;
	char msg[1200];
	va_list ap;
	json_t *ev;

	json_object_set_new(v->classes, cls, json_integer(n));
	if (note)
		v->notes++;
	else
		v->problems++;
	if (repaired)
		v->repaired++;
	if (n > EVENTS_PER_CLASS)
		return; /* counted; the report says how many */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ev = json_pack("{s:s, s:s, s:s, s:s, s:b}", "event", "problem", "class", cls, "severity",
	               note ? "note" : "problem", "message", msg, "repaired", repaired);
	if (e) {
		json_object_set_new(ev, "id", json_string(e->id));
		td_ctl_set_path(ev, "path", e->path, e->path_len);
	}
	td_life_emit(&v->o->sink, ev);
}

/* ---- one row ---------------------------------------------------------------- */

static bool is_cached(const struct td_catalog_entry *e)
{
	return e->state == TD_CATALOG_CACHED || e->state == TD_CATALOG_DIRTY;
}

/* Where the dynamic link of e should point. */
static int expected_dest(const struct verify *v, const struct td_catalog_entry *e, char *out,
                         size_t n)
{
	if (is_cached(e))
		return td_ns_cache_path(out, n, v->o->conf->cache_dir, e->id);
	return td_ns_remote_path(out, n, v->o->conf->run_dir, e->id, e->name, e->name_len);
}

/* Reads the dynamic link: 0 and its target, -ENOENT, or -errno. */
static int read_dyn(const struct verify *v, const struct td_catalog_entry *e, char *out, size_t n)
{
	int len = td_ns_read(v->o->conf->state_dir, e->id, e->name, e->name_len, out, n - 1);

	if (len < 0)
		return len;
	out[len] = '\0';
	return 0;
}

/* The row again, still in the state it had when checked; NULL if it moved on. */
static struct td_catalog_entry *reread(struct verify *v, const struct td_catalog_entry *e)
{
	struct td_catalog_entry *n = NULL;
	struct td_catalog_error ce;

	if (td_catalog_get(&n, v->cat, e->id, &ce) < 0)
		return NULL;
	if (n->state != e->state || n->updated_ns != e->updated_ns) {
		td_catalog_entry_free(n);
		return NULL;
	}
	return n;
}

static void check_dynamic_link(struct verify *v, const struct td_catalog_entry *e)
{
	char want[4096], have[4096];
	const char *cls = NULL;
	struct stat st;
	int r;

	if (expected_dest(v, e, want, sizeof(want)) < 0)
		return;
	r = read_dyn(v, e, have, sizeof(have));
	if (r == -ENOENT || r == -EINVAL)
		cls = "dynamic_link_missing";
	else if (r < 0)
		cls = "dynamic_link_missing";
	else if (strcmp(have, want) != 0)
		cls = "dynamic_link_wrong";
	else if (is_cached(e) && lstat(have, &st) < 0)
		cls = "dynamic_link_dangling";
	if (!cls)
		return;
	if (strcmp(cls, "dynamic_link_dangling") != 0) {
		/* A hydration or eviction may have rebound it since we read the row. */
		struct td_catalog_entry *n = reread(v, e);
		bool same = n && read_dyn(v, n, have, sizeof(have)) == 0 && strcmp(have, want) == 0;

		td_catalog_entry_free(n);
		if (!n || same)
			return;
	}
	if (v->o->repair && strcmp(cls, "dynamic_link_dangling") != 0) {
		struct td_catalog_entry *n = reread(v, e);

		r = n ? td_ns_bind(v->o->conf->state_dir, e->id, e->name, e->name_len, want)
		      : -ESTALE;
		td_catalog_entry_free(n);
		if (r == 0) {
			problem(v, e, cls, false, true, "dynamic link %s; rebound to %s",
			        strcmp(cls, "dynamic_link_missing") == 0 ? "missing"
			                                                 : "misdirected",
			        want);
			return;
		}
	}
	if (strcmp(cls, "dynamic_link_dangling") == 0)
		problem(v, e, cls, false, false,
		        "dynamic link points at the cache copy %s, which is missing", want);
	else
		problem(v, e, cls, false, false, "dynamic link %s (should point at %s)",
		        strcmp(cls, "dynamic_link_missing") == 0 ? "missing" : "misdirected", want);
}

/* Reads the symlink at absolute `p` (len bytes) beneath the policy or sighting
 * root that holds it, never following a symlink below that root (DESIGN.md
 * invariant 3: users control those directories). Returns its length or -errno;
 * -ENOENT for a path under no root. */
static ssize_t read_user_link(const struct verify *v, const char *p, size_t len, char *buf,
                              size_t n)
{
	const struct td_config *c = v->o->conf;
	const char *root = NULL, *name;
	int rfd, dfd;
	ssize_t r;
	size_t rl;

	if (!td_policy_for_path(c, p, len, &root))
		root = td_policy_root_of((const char *const *)c->sighting_roots.v,
		                         c->sighting_roots.n, p, len);
	if (!root)
		return -ENOENT;
	rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	rfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return -errno;
	dfd = td_fsat_open_parent(rfd, p + rl + 1, len - rl - 1, 0, &name);
	close(rfd);
	if (dfd < 0)
		return dfd;
	r = readlinkat(dfd, name, buf, n);
	if (r < 0)
		r = -errno;
	close(dfd);
	return r;
}

/* The user link last seen (or the original path): a symlink to our dynamic link? */
static void check_user_link(struct verify *v, const struct td_catalog_entry *e)
{
	bool seen = e->link_seen_path && e->link_seen_path_len;
	const char *p = seen ? e->link_seen_path : e->path;
	char buf[4096], id[TD_CATALOG_ID_HEX];
	ssize_t n =
	    read_user_link(v, p, seen ? e->link_seen_path_len : e->path_len, buf, sizeof(buf) - 1);

	if (n >= 0 && td_ns_parse_link(v->o->conf->state_dir, buf, (size_t)n, id) &&
	    strcmp(id, e->id) == 0)
		return;
	problem(v, e, "user_link_gone", true, false,
	        "no link to it at %s any more (gc deletes its object once no link has been seen "
	        "for retention)",
	        p);
}

static int hash_file(const char *path, char out[TD_SHA256_HEX])
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), r;

	if (fd < 0)
		return -errno;
	r = td_sha256_fd_hex(fd, out);
	close(fd);
	return r;
}

/* Returns true when the cache copy exists and hashes to the catalog's SHA-256. */
static bool cache_clean(struct verify *v, const struct td_catalog_entry *e, const char *path)
{
	char hex[TD_SHA256_HEX];

	return e->state == TD_CATALOG_CACHED && e->sha256[0] && hash_file(path, hex) == 0 &&
	       strcmp(hex, e->sha256) == 0;
}

static void check_cache(struct verify *v, const struct td_catalog_entry *e)
{
	char path[4096], hex[TD_SHA256_HEX];
	struct stat st;

	if (!is_cached(e) || td_ns_cache_path(path, sizeof(path), v->o->conf->cache_dir, e->id) < 0)
		return;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		problem(v, e, "cache_missing", false, false, "the cache copy %s is missing", path);
		return;
	}
	if (e->state == TD_CATALOG_CACHED && (uint64_t)st.st_size != e->size) {
		problem(v, e, "cache_differs", false, false,
		        "the cache copy has %llu bytes, the original %llu",
		        (unsigned long long)st.st_size, (unsigned long long)e->size);
	} else if (v->o->deep && e->state == TD_CATALOG_CACHED && e->sha256[0] &&
	           hash_file(path, hex) == 0 && strcmp(hex, e->sha256) != 0) {
		problem(v, e, "cache_differs", false, false,
		        "the cache copy's SHA-256 %s is not the catalog's %s", hex, e->sha256);
	}
	if ((st.st_mode & 07777) != (e->mode & 07777) || st.st_uid != e->uid ||
	    st.st_gid != e->gid) {
		bool fixed = false;

		if (v->o->repair) {
			struct td_catalog_entry *n = reread(v, e);
			int fd =
			    n ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) : -1;

			fixed = fd >= 0 && fchown(fd, e->uid, e->gid) == 0 &&
			        fchmod(fd, e->mode & 07777) == 0;
			if (fd >= 0)
				close(fd);
			td_catalog_entry_free(n);
		}
		problem(v, e, "permissions_drifted", false, fixed,
		        "the cache copy has uid %u gid %u mode %04o, the original uid %u gid %u "
		        "mode %04o%s",
		        (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777),
		        e->uid, e->gid, e->mode & 07777, fixed ? "; set back" : "");
	}
}

/* Uploads the object again from a clean cache copy. Returns 0 when done. */
static int reupload(struct verify *v, const struct td_catalog_entry *e, struct td_target *t)
{
	struct td_catalog_expect ex = { .state = TD_CATALOG_CACHED, .step = TD_CATALOG_ANY };
	struct td_target_error te = { 0 };
	struct td_catalog_error ce;
	struct td_put_result res = { 0 };
	struct td_catalog_entry ne;
	char path[4096];
	struct stat st;
	int fd, r;

	if (td_ns_cache_path(path, sizeof(path), v->o->conf->cache_dir, e->id) < 0 ||
	    !cache_clean(v, e, path))
		return -ENOENT;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != e->size) {
		close(fd);
		return -EIO;
	}
	r = td_life_put_fd(v->l, t, e->object_key, fd, e->size, &res, &te);
	close(fd);
	if (r < 0)
		return r;
	if (strcmp(res.sha256_hex, e->sha256) != 0)
		return -EIO; /* the copy changed while it was read: the row is left as it was */
	ne = *e;
	ne.etag = res.etag;
	ne.version_id = res.version_id[0] ? res.version_id : NULL;
	return td_catalog_update(v->cat, &ne, TD_CATALOG_F_OBJECT, &ex, &ce);
}

/* Returns < 0 only for a target that does not answer (the verify stops). */
static int check_object(struct verify *v, const struct td_catalog_entry *e)
{
	struct td_target_error te = { 0 };
	struct td_object_info info = { 0 };
	char err[800], mkey[TD_TARGET_KEY_MAX + 1];
	const char *cls = NULL;
	char what[600] = "";
	struct td_target *t;
	int r;

	if (!e->target || !e->object_key) {
		problem(v, e, "catalog_incomplete", false, false, "the row names no object");
		return 0;
	}
	t = td_life_target(v->l, e->target, err, sizeof(err));
	if (!t) {
		problem(v, e, "target_unknown", false, false, "%s", err);
		return 0;
	}
	r = td_life_head(v->l, t, e->object_key, &info, &te);
	if (r == -ENOENT) {
		cls = "object_missing";
		snprintf(what, sizeof(what), "the object %s is missing on target %s", e->object_key,
		         e->target);
	} else if (r < 0) {
		td_life_target_msg(err, sizeof(err), r, &te);
		v->stop_err = r;
		snprintf(v->stop_msg, sizeof(v->stop_msg), "target %s: %s: %s", e->target,
		         e->object_key, err);
		return r;
	} else if (info.size_bytes != e->size) {
		cls = "size_mismatch";
		snprintf(what, sizeof(what), "the object has %llu bytes, the catalog says %llu",
		         (unsigned long long)info.size_bytes, (unsigned long long)e->size);
	} else if (e->etag && *e->etag && strcmp(info.etag, e->etag) != 0) {
		cls = "etag_mismatch";
		snprintf(
		    what, sizeof(what),
		    "the object's ETag is %s, the catalog says %s: replaced behind tierd's back",
		    info.etag, e->etag);
	} else if (v->o->deep && e->sha256[0]) {
		if (lseek(v->null_fd, 0, SEEK_SET) < 0) {
			/* /dev/null: nothing to rewind */
		}
		r = td_life_read_verify(v->l, t, e->object_key, v->null_fd, e->sha256, &te);
		if (r == -EIO) {
			cls = "sha256_mismatch";
			snprintf(what, sizeof(what),
			         "the object's bytes do not hash to the catalog's SHA-256 %s",
			         e->sha256);
		} else if (r < 0) {
			td_life_target_msg(err, sizeof(err), r, &te);
			v->stop_err = r;
			snprintf(v->stop_msg, sizeof(v->stop_msg), "target %s: reading %s: %s",
			         e->target, e->object_key, err);
			return r;
		}
	}
	if (cls) {
		int rr = v->o->repair ? reupload(v, e, t) : -1;

		problem(v, e, cls, false, rr == 0, "%s%s", what,
		        rr == 0        ? "; uploaded again from the verified cache copy"
		        : v->o->repair ? "; no verified clean copy to upload again from"
		                       : "");
	}
	if (td_ns_object_key(mkey, sizeof(mkey), e->id, true) == 0) {
		memset(&te, 0, sizeof(te));
		r = td_life_head(v->l, t, mkey, &info, &te);
		if (r == -ENOENT) {
			problem(
			    v, e, "manifest_missing", false, false,
			    "the manifest %s is missing on target %s (rebuild could not recover "
			    "this file)",
			    mkey, e->target);
		} else if (r < 0) {
			td_life_target_msg(err, sizeof(err), r, &te);
			v->stop_err = r;
			snprintf(v->stop_msg, sizeof(v->stop_msg), "target %s: %s: %s", e->target,
			         mkey, err);
			return r;
		}
	}
	return 0;
}

static bool selected(const struct verify *v, const struct td_catalog_entry *e)
{
	if (v->o->n_paths == 0)
		return true;
	for (size_t i = 0; i < v->o->n_paths; i++) {
		const char *p = v->o->paths[i];
		size_t l = strlen(p);

		while (l > 1 && p[l - 1] == '/')
			l--;
		if (e->path_len >= l && memcmp(e->path, p, l) == 0 &&
		    (e->path_len == l || e->path[l] == '/' || l == 1))
			return true;
	}
	return false;
}

static int check_row(struct verify *v, const struct td_catalog_entry *e)
{
	if (!selected(v, e))
		return 0;
	v->checked++;
	switch (e->state) {
	case TD_CATALOG_LOCAL:
		return 0;
	case TD_CATALOG_MIGRATING:
	case TD_CATALOG_RECALLING:
		if (e->updated_ns < v->now_ns - TD_VERIFY_STUCK_S * 1000000000LL) {
			char when[40];

			td_life_time(when, sizeof(when), e->updated_ns);
			problem(v, e, "stuck", false, false,
			        "%s (step %d) since %s; restarting tierd finishes or rolls it back",
			        td_catalog_state_name(e->state), e->step, when);
		}
		return 0;
	default:
		break;
	}
	check_dynamic_link(v, e);
	check_user_link(v, e);
	check_cache(v, e);
	return check_object(v, e);
}

/* ---- the walk ------------------------------------------------------------------- */

struct page {
	char ids[PAGE][TD_CATALOG_ID_HEX];
	unsigned n;
};

static int page_add(void *data, const struct td_catalog_entry *e)
{
	struct page *p = data;

	memcpy(p->ids[p->n++], e->id, TD_CATALOG_ID_HEX);
	return 0;
}

static void progress(struct verify *v, bool force)
{
	int64_t now = td_monotonic_ns();

	if (!force && now - v->last_progress_ns < 1000000000LL)
		return;
	v->last_progress_ns = now;
	td_life_emit(&v->o->sink, json_pack("{s:s, s:I, s:I, s:I}", "event", "progress", "checked",
	                                    (json_int_t)v->checked, "total", (json_int_t)v->total,
	                                    "problems", (json_int_t)v->problems));
}

/* Walks the rows after `after`; on return `after` holds the last one checked.
 * Returns 1 when the walk is complete, 0 when it stopped early (time limit,
 * cancel, an unanswering target: stop_err), or -errno. */
static int walk(struct verify *v, char after[TD_CATALOG_ID_HEX], char *err, size_t errlen)
{
	struct td_catalog_filter f = TD_CATALOG_FILTER_ALL;
	struct td_catalog_error ce;
	struct page *p = malloc(sizeof(*p));
	int r = 0;

	if (!p)
		return -ENOMEM;
	f.policy = v->o->policy;
	f.limit = PAGE;
	for (;;) {
		p->n = 0;
		f.after_id = after[0] ? after : NULL;
		r = td_catalog_foreach(v->cat, &f, page_add, p, &ce);
		if (r < 0) {
			td_life_copy(err, errlen, ce.message);
			break;
		}
		for (unsigned i = 0; i < p->n; i++) {
			struct td_catalog_entry *e = NULL;

			if (td_catalog_get(&e, v->cat, p->ids[i], &ce) == 0 &&
			    check_row(v, e) < 0) {
				td_catalog_entry_free(e);
				free(p);
				return 0; /* stop_err: this row is checked again next time */
			}
			td_catalog_entry_free(e);
			memcpy(after, p->ids[i], TD_CATALOG_ID_HEX);
			progress(v, false);
			if (td_life_cancelled(&v->o->sink)) {
				free(p);
				v->stop_err = -ECANCELED;
				snprintf(v->stop_msg, sizeof(v->stop_msg), "cancelled");
				return 0;
			}
			if (v->deadline_ns && td_monotonic_ns() >= v->deadline_ns) {
				free(p);
				return 0;
			}
		}
		if (p->n < PAGE) {
			r = 1;
			break;
		}
	}
	free(p);
	return r;
}

/* Objects under each target's prefix that no row (and no gc in progress) owns. */
struct orphan_ctx {
	struct verify *v;
	const char *target;
};

static int orphan_each(void *data, const struct td_object_info *info)
{
	struct orphan_ctx *oc = data;
	struct verify *v = oc->v;
	struct td_catalog_entry *e = NULL;
	struct td_catalog_error ce;
	char id[TD_CATALOG_ID_HEX];
	const char *slash = strchr(info->key, '/');
	size_t l;

	if (!slash || slash - info->key != 2)
		return 0;
	l = strlen(slash + 1);
	if (l == 32 + 5 && strcmp(slash + 1 + 32, ".json") == 0)
		l = 32;
	if (l != 32)
		return 0;
	memcpy(id, slash + 1, 32);
	id[32] = '\0';
	if (!td_ns_valid_id(id))
		return 0;
	if (td_catalog_get(&e, v->cat, id, &ce) == 0) {
		td_catalog_entry_free(e);
		return 0;
	}
	if (td_catalog_gc_pending(v->cat, id, &ce) == 1)
		return 0;
	problem(v, NULL, "orphan_object", false, false,
	        "%s on target %s has no row in the catalog (tierctl rebuild can bring it back)",
	        info->key, oc->target);
	return 0;
}

static int whole_target_checks(struct verify *v, char *err, size_t errlen)
{
	const struct td_config *c = v->o->conf;
	int64_t before = v->now_ns / 1000000000 - TD_VERIFY_UPLOAD_AGE_S;

	for (size_t i = 0; i < c->n_targets; i++) {
		struct orphan_ctx oc = { v, c->targets[i].name };
		struct td_target_error te = { 0 };
		unsigned found = 0, aborted = 0;
		struct td_target *t = td_life_target(v->l, c->targets[i].name, err, errlen);
		char m[600];
		int r;

		if (!t)
			return -ENOENT;
		r = td_life_list(v->l, t, "", orphan_each, &oc, &te);
		if (r < 0 && r != -ENOENT) {
			td_life_target_msg(m, sizeof(m), r, &te);
			snprintf(err, errlen, "target %s: listing objects: %s", oc.target, m);
			return r;
		}
		r = td_life_stale_uploads(v->l, t, before, v->o->repair, &found, &aborted, &te);
		if (r < 0 && r != -ENOTSUP) {
			td_life_target_msg(m, sizeof(m), r, &te);
			snprintf(err, errlen, "target %s: listing multipart uploads: %s", oc.target,
			         m);
			return r;
		}
		if (found)
			problem(
			    v, NULL, "stale_uploads", false, aborted == found,
			    "%u multipart upload(s) under target %s's prefix left open for more "
			    "than a day%s",
			    found, oc.target, aborted == found ? "; aborted" : "");
	}
	return 0;
}

int td_verify_run(json_t **report, const struct td_verify_opts *o)
{
	struct verify v = { .o = o, .null_fd = -1 };
	struct td_catalog_error ce;
	struct td_catalog_stats cs;
	char err[800] = "", t0[40], t1[40], after[TD_CATALOG_ID_HEX] = "",
	     resumed[TD_CATALOG_ID_HEX] = "";
	bool full = !o->policy && o->n_paths == 0, complete = false;
	int r;

	v.now_ns = td_now_ns();
	v.classes = json_object();
	td_life_time(t0, sizeof(t0), v.now_ns);
	if (o->time_limit_s > 0)
		v.deadline_ns = td_monotonic_ns() + o->time_limit_s * 1000000000LL;
	v.null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r = td_life_open(&v.l, o->conf, o->catalog_path, err, sizeof(err));
	if (r < 0)
		goto out;
	v.cat = td_life_catalog(v.l);
	if (td_catalog_stats(&cs, v.cat, &ce) == 0)
		for (int s = 0; s < TD_CATALOG_STATE_COUNT; s++)
			v.total += cs.files[s];
	if (full && !o->restart) {
		char *cp = NULL;

		if (td_catalog_life_get(&cp, NULL, v.cat, CHECKPOINT_KEY, &ce) == 0 &&
		    td_ns_valid_id(cp)) {
			memcpy(after, cp, TD_CATALOG_ID_HEX);
			memcpy(resumed, cp, TD_CATALOG_ID_HEX);
		}
		free(cp);
	}
	r = td_catalog_check(v.cat, &ce);
	if (r < 0) {
		problem(&v, NULL, "catalog_damaged", false, false, "%s", ce.message);
		r = 0;
	}
	progress(&v, true);
	r = walk(&v, after, err, sizeof(err));
	if (r < 0)
		goto out;
	complete = r == 1;
	if (full && complete) {
		td_catalog_life_del(v.cat, CHECKPOINT_KEY, &ce);
		r = whole_target_checks(&v, err, sizeof(err));
		if (r < 0)
			goto out;
	} else if (full && after[0]) {
		td_catalog_life_put(v.cat, CHECKPOINT_KEY, after, &ce);
	}
	if (v.stop_err) {
		r = v.stop_err;
		td_life_copy(err, sizeof(err), v.stop_msg);
		if (full)
			snprintf(err + strlen(err), sizeof(err) - strlen(err),
			         "; stopped after %llu rows (the next verify resumes there)",
			         (unsigned long long)v.checked);
	}
	r = v.stop_err ? v.stop_err : 0;
	progress(&v, true);
out:
	td_life_close(v.l);
	if (v.null_fd >= 0)
		close(v.null_fd);
	td_life_time(t1, sizeof(t1), td_now_ns());
	*report =
	    json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:o, s:b}", "started", t0, "ended",
	              t1, "deep", o->deep, "repair", o->repair, "checked", (json_int_t)v.checked,
	              "problems", (json_int_t)v.problems, "repaired", (json_int_t)v.repaired,
	              "notes", (json_int_t)v.notes, "classes", v.classes, "complete", complete);
	if (resumed[0])
		json_object_set_new(*report, "resumed_from", json_string(resumed));
	if (r < 0)
		json_object_set_new(*report, "error", json_string(err[0] ? err : strerror(-r)));
	return r;
}
