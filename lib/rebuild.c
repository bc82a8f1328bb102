/*
 * rebuild — the catalog and the namespace, again, from the manifests under
 * this host's prefix (rebuild.h). One pass per target, one "<aa>/" listing
 * at a time (256 of them): the listing holds at most REBUILD_DIR_MAX entries,
 * then each manifest is read and merged, row and link, before the next
 * directory is listed.
 *
 * Crash safety: a row is inserted before its dynamic link is made; a rebuild
 * stopped in between finds the row "present" next time and makes the link
 * then. Nothing on the target is changed or deleted.
 */
#include "rebuild.h"
#include "catalog.h"
#include "ctl.h"
#include "ns.h"
#include "target.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REBUILD_DIR_MAX (1u << 22) /* objects listed in one "<aa>/" directory */

struct robj {
	char id[TD_CATALOG_ID_HEX];
	uint64_t size;
	char etag[132];
	bool data, manifest;
};

struct rb {
	const struct td_rebuild_opts *o;
	struct td_rebuild_stats *st;
	uv_loop_t loop;
	const struct td_target_conf *tc;
	struct td_target *t;
	struct td_catalog *cat; /* NULL in a dry run without a catalog */
	char aa[3];
	struct robj *v;
	size_t n, cap;
	bool toobig;
};

static void emit(struct rb *b, enum td_rebuild_kind kind, const char *id, const char *path,
                 size_t path_len, uint64_t size, const char *msg)
{
	struct td_rebuild_event ev = { .kind = kind,
		                       .target = b->tc ? b->tc->name : NULL,
		                       .id = id,
		                       .path = path,
		                       .path_len = path_len,
		                       .size_bytes = size,
		                       .message = msg };

	switch (kind) {
	case TD_REBUILD_ADDED:
		b->st->added++;
		b->st->added_bytes += size;
		break;
	case TD_REBUILD_PRESENT:
		b->st->present++;
		break;
	case TD_REBUILD_RELINKED:
		b->st->relinked++;
		break;
	case TD_REBUILD_CONFLICT:
		b->st->conflicts++;
		break;
	case TD_REBUILD_FAILED:
		b->st->failed++;
		break;
	case TD_REBUILD_TARGET:
		b->st->targets_failed++;
		break;
	}
	if (b->o->on_event)
		b->o->on_event(b->o->data, &ev);
}

/* ---- the manifest ----------------------------------------------------------- */

static int64_t jint(const json_t *doc, const char *key, bool *ok)
{
	json_t *v = json_object_get(doc, key);

	if (!json_is_integer(v)) {
		*ok = false;
		return 0;
	}
	return (int64_t)json_integer_value(v);
}

static int64_t parse_when(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return 0;
	return (int64_t)timegm(&tm) * 1000000000;
}

int td_rebuild_parse_manifest(struct td_catalog_entry *e, char **path_buf, const json_t *doc,
                              char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(doc, "id"));
	const char *path = json_string_value(json_object_get(doc, "path"));
	const char *pb64 = json_string_value(json_object_get(doc, "path_b64"));
	const char *sha = json_string_value(json_object_get(doc, "sha256"));
	const char *slash;
	size_t len = 0;
	bool ok = true;

	*path_buf = NULL;
	memset(e, 0, sizeof(*e));
	if (!json_is_object(doc) || jint(doc, "version", &ok) != 1 || !ok) {
		snprintf(err, errlen, "not a tierd manifest of version 1");
		return -EPROTO;
	}
	if (!id || !td_ns_valid_id(id)) {
		snprintf(err, errlen, "manifest without a valid id");
		return -EPROTO;
	}
	memcpy(e->id, id, TD_CATALOG_ID_HEX);
	if (pb64) {
		if (td_ctl_b64_decode(pb64, path_buf, &len) < 0) {
			snprintf(err, errlen, "manifest with a malformed path_b64");
			return -EPROTO;
		}
		path = *path_buf;
	} else if (path) {
		len = json_string_length(json_object_get(doc, "path"));
	}
	if (!path || len < 2 || path[0] != '/' || memchr(path, '\0', len)) {
		free(*path_buf);
		*path_buf = NULL;
		snprintf(err, errlen, "manifest without an absolute path");
		return -EPROTO;
	}
	slash = path + len;
	while (slash > path && slash[-1] != '/')
		slash--;
	e->path = path;
	e->path_len = len;
	e->name = slash;
	e->name_len = (size_t)(path + len - slash);
	e->size = (uint64_t)jint(doc, "size", &ok);
	e->mode = (uint32_t)jint(doc, "mode", &ok);
	e->uid = (uint32_t)jint(doc, "uid", &ok);
	e->gid = (uint32_t)jint(doc, "gid", &ok);
	e->atime_ns = jint(doc, "atime_ns", &ok);
	e->mtime_ns = jint(doc, "mtime_ns", &ok);
	e->ctime_ns = jint(doc, "ctime_ns", &ok);
	if (!ok || !td_ns_valid_name(e->name, e->name_len) || !sha || strlen(sha) != 64) {
		free(*path_buf);
		*path_buf = NULL;
		snprintf(err, errlen, "manifest with a missing or malformed field");
		return -EPROTO;
	}
	memcpy(e->sha256, sha, 65);
	e->policy = json_string_value(json_object_get(doc, "policy"));
	if (e->policy && !*e->policy)
		e->policy = NULL;
	e->tiered_ns = parse_when(json_string_value(json_object_get(doc, "tiered_at")));
	e->state = TD_CATALOG_TIERED;
	e->cache_state = TD_CATALOG_CACHE_NONE;
	return 0;
}

/* ---- listing one "<aa>/" ------------------------------------------------------ */

/* td_target_list passes one data pointer to both its callbacks: the sync
 * context first, so td_target_sync_cb finds it there. */
struct list_ctx {
	struct td_target_sync s;
	struct rb *b;
};

static int on_listed(void *data, const struct td_object_info *info)
{
	struct rb *b = ((struct list_ctx *)data)->b;
	const char *k = info->key;
	size_t kl = strlen(k);
	bool manifest = kl == 3 + 32 + 5 && strcmp(k + 35, ".json") == 0;
	struct robj *o;
	char id[TD_CATALOG_ID_HEX];

	if (!(kl == 35 || manifest) || k[2] != '/')
		return 0; /* not tierd's: someone else's key under the prefix */
	memcpy(id, k + 3, 32);
	id[32] = '\0';
	if (!td_ns_valid_id(id) || memcmp(id, b->aa, 2) != 0)
		return 0;
	/* Keys come in order and "<id>" sorts right before "<id>.json". */
	if (b->n && strcmp(b->v[b->n - 1].id, id) == 0) {
		o = &b->v[b->n - 1];
	} else {
		if (b->n == b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 256;
			struct robj *nv;

			if (cap > REBUILD_DIR_MAX || !(nv = realloc(b->v, cap * sizeof(*nv)))) {
				b->toobig = true;
				return 1;
			}
			b->v = nv;
			b->cap = cap;
		}
		o = &b->v[b->n++];
		memset(o, 0, sizeof(*o));
		memcpy(o->id, id, sizeof(o->id));
	}
	if (manifest) {
		o->manifest = true;
	} else {
		o->data = true;
		o->size = info->size_bytes;
		snprintf(o->etag, sizeof(o->etag), "%s", info->etag);
	}
	return 0;
}

/* ---- one manifest ------------------------------------------------------------- */

static bool same_row(const struct td_catalog_entry *a, const struct td_catalog_entry *m)
{
	return a->path_len == m->path_len && memcmp(a->path, m->path, m->path_len) == 0 &&
	       a->size == m->size && (!a->sha256[0] || strcmp(a->sha256, m->sha256) == 0);
}

int td_rebuild_relink(const struct td_config *conf, const struct td_catalog_entry *e, bool dry_run)
{
	char dest[4096], cur[4096];
	int r = td_ns_read(conf->state_dir, e->id, e->name, e->name_len, cur, sizeof(cur));

	if (r >= 0)
		return 0;
	if (r != -ENOENT)
		return r;
	if (dry_run)
		return 1;
	if (e->state == TD_CATALOG_CACHED || e->state == TD_CATALOG_DIRTY)
		r = td_ns_cache_path(dest, sizeof(dest), conf->cache_dir, e->id);
	else
		r = td_ns_remote_path(dest, sizeof(dest), conf->run_dir, e->id, e->name,
		                      e->name_len);
	if (r == 0)
		r = td_ns_bind(conf->state_dir, e->id, e->name, e->name_len, dest);
	return r < 0 ? r : 1;
}

static int relink(struct rb *b, const struct td_catalog_entry *e)
{
	return td_rebuild_relink(b->o->conf, e, b->o->dry_run);
}

static void merge(struct rb *b, const struct robj *o, struct td_catalog_entry *m)
{
	struct td_catalog_entry *have = NULL;
	struct td_catalog_error ce = { 0 };
	char key[128], msg[512];
	int r = -ENOENT;

	td_ns_object_key(key, sizeof(key), o->id, false);
	m->target = b->tc->name;
	m->object_key = key;
	m->etag = o->etag[0] ? o->etag : NULL;
	if (b->cat)
		r = td_catalog_get(&have, b->cat, m->id, &ce);
	if (r == 0) {
		if (!same_row(have, m) || !have->target || strcmp(have->target, m->target) != 0) {
			char *esc = td_escape(have->path, have->path_len);

			snprintf(msg, sizeof(msg),
			         "the catalog's row %s differs (%s, %llu bytes, target %s): kept",
			         m->id, esc ? esc : "?", (unsigned long long)have->size,
			         have->target ? have->target : "none");
			free(esc);
			emit(b, TD_REBUILD_CONFLICT, m->id, m->path, m->path_len, m->size, msg);
		} else if (have->state != TD_CATALOG_TIERED && have->state != TD_CATALOG_CACHED &&
		           have->state != TD_CATALOG_DIRTY) {
			/* recalled (or moving): its namespace entry is the mover's business */
			emit(b, TD_REBUILD_PRESENT, m->id, m->path, m->path_len, m->size, NULL);
		} else if ((r = relink(b, have)) < 0) {
			snprintf(msg, sizeof(msg), "cannot make its dynamic link: %s",
			         strerror(-r));
			emit(b, TD_REBUILD_FAILED, m->id, m->path, m->path_len, m->size, msg);
		} else {
			emit(b, r ? TD_REBUILD_RELINKED : TD_REBUILD_PRESENT, m->id, m->path,
			     m->path_len, m->size, NULL);
		}
		td_catalog_entry_free(have);
		return;
	}
	if (r != -ENOENT) {
		emit(b, TD_REBUILD_FAILED, m->id, m->path, m->path_len, m->size, ce.message);
		return;
	}
	if (b->cat && td_catalog_get_by_object(&have, b->cat, m->target, key, &ce) == 0) {
		snprintf(msg, sizeof(msg),
		         "object %s already belongs to the catalog's row %s: kept", key, have->id);
		td_catalog_entry_free(have);
		emit(b, TD_REBUILD_CONFLICT, m->id, m->path, m->path_len, m->size, msg);
		return;
	}
	/* Retention counts from now: gc must not take an object whose links were
	 * simply not looked at while the catalog was gone (invariant 5). */
	m->link_seen_ns = td_now_ns();
	m->link_seen_path = m->path;
	m->link_seen_path_len = m->path_len;
	if (!b->o->dry_run) {
		r = td_catalog_insert(b->cat, m, &ce);
		if (r < 0) {
			emit(b, TD_REBUILD_FAILED, m->id, m->path, m->path_len, m->size,
			     ce.message[0] ? ce.message : strerror(-r));
			return;
		}
		r = relink(b, m);
		if (r < 0) {
			snprintf(msg, sizeof(msg), "row added, but its dynamic link not: %s",
			         strerror(-r));
			emit(b, TD_REBUILD_FAILED, m->id, m->path, m->path_len, m->size, msg);
			return;
		}
	}
	emit(b, TD_REBUILD_ADDED, m->id, m->path, m->path_len, m->size, NULL);
}

static void one(struct rb *b, const struct robj *o)
{
	struct td_target_sync s = { 0 };
	struct td_target_error te = { 0 };
	struct td_catalog_entry m;
	char key[128], msg[768], *pbuf = NULL;
	json_t *doc = NULL;
	int r;

	b->st->manifests++;
	if (!o->data) {
		emit(b, TD_REBUILD_FAILED, o->id, NULL, 0, 0, "a manifest without its object");
		return;
	}
	td_ns_object_key(key, sizeof(key), o->id, true);
	r = td_target_sync_wait(
	    &b->loop, &s, td_target_get_json(b->t, NULL, key, &doc, td_target_sync_cb, &s), &te);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "cannot read %s: %.500s", key,
		         te.message[0] ? te.message : strerror(-r));
		emit(b, TD_REBUILD_FAILED, o->id, NULL, 0, 0, msg);
		return;
	}
	r = td_rebuild_parse_manifest(&m, &pbuf, doc, msg, sizeof(msg));
	if (r == 0 && strcmp(m.id, o->id) != 0) {
		snprintf(msg, sizeof(msg), "%s names another id (%s)", key, m.id);
		r = -EPROTO;
	}
	if (r == 0 && m.size != o->size) {
		snprintf(msg, sizeof(msg), "the object is %llu bytes, its manifest says %llu",
		         (unsigned long long)o->size, (unsigned long long)m.size);
		r = -EPROTO;
	}
	if (r < 0)
		emit(b, TD_REBUILD_FAILED, o->id, r == -EPROTO && m.path ? m.path : NULL,
		     m.path ? m.path_len : 0, 0, msg);
	else
		merge(b, o, &m);
	free(pbuf);
	json_decref(doc);
}

/* ---- one target ------------------------------------------------------------------ */

static void on_closed(void *data)
{
	*(bool *)data = true;
}

static void target_pass(struct rb *b, const struct td_target_conf *tc)
{
	struct td_target_error te = { 0 };
	char msg[768];
	bool closed = false;
	int r;

	b->tc = tc;
	r = td_target_new(&b->t, &b->loop, tc, &te);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "cannot open: %s",
		         te.message[0] ? te.message : strerror(-r));
		emit(b, TD_REBUILD_TARGET, NULL, NULL, 0, 0, msg);
		return;
	}
	for (unsigned d = 0; d < 256; d++) {
		struct list_ctx lc = { .b = b };
		char prefix[4];

		snprintf(b->aa, sizeof(b->aa), "%02x", d);
		snprintf(prefix, sizeof(prefix), "%s/", b->aa);
		b->n = 0;
		b->toobig = false;
		r = td_target_sync_wait(
		    &b->loop, &lc.s,
		    td_target_list(b->t, NULL, prefix, on_listed, td_target_sync_cb, &lc), &te);
		if (r == 0 && b->toobig)
			r = -E2BIG;
		if (r < 0) {
			snprintf(msg, sizeof(msg), "cannot list %s%s: %s",
			         tc->prefix ? tc->prefix : "", prefix,
			         r == -E2BIG     ? "too many objects in one directory"
			         : te.message[0] ? te.message
			                         : strerror(-r));
			emit(b, TD_REBUILD_TARGET, NULL, NULL, 0, 0, msg);
			break;
		}
		for (size_t i = 0; i < b->n; i++)
			if (b->v[i].manifest)
				one(b, &b->v[i]);
	}
	td_target_close(b->t, on_closed, &closed);
	while (!closed)
		uv_run(&b->loop, UV_RUN_ONCE);
	b->t = NULL;
	b->tc = NULL;
}

int td_rebuild_run(const struct td_rebuild_opts *o, struct td_rebuild_stats *st, char *err,
                   size_t errlen)
{
	const struct td_config *conf = o->conf;
	struct td_catalog_error ce = { 0 };
	struct rb b = { .o = o, .st = st };
	char path[4096];
	bool any = false;
	int r;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < conf->n_targets; i++)
		any |= !o->target || strcmp(conf->targets[i].name, o->target) == 0;
	if (!any) {
		snprintf(err, errlen, "no target named '%s'", o->target ? o->target : "");
		return -ENOENT;
	}
	if (!o->dry_run) {
		snprintf(path, sizeof(path), "%s/links", conf->state_dir);
		r = td_ns_mkdirs(path, TD_NS_DIR_MODE);
		if (r < 0) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
			return r;
		}
	}
	snprintf(path, sizeof(path), "%s/catalog.db", conf->state_dir);
	r = td_catalog_open(&b.cat, path, o->dry_run ? TD_CATALOG_NO_CHECK : TD_CATALOG_CREATE,
	                    &ce);
	if (r == -ENOENT && o->dry_run) {
		b.cat = NULL; /* nothing there yet: everything would be added */
	} else if (r < 0) {
		snprintf(err, errlen, "%s", ce.message);
		return r;
	}
	r = uv_loop_init(&b.loop);
	if (r < 0) {
		td_catalog_close(b.cat);
		snprintf(err, errlen, "cannot start an event loop: %s", uv_strerror(r));
		return -ENOMEM;
	}
	for (size_t i = 0; i < conf->n_targets; i++)
		if (!o->target || strcmp(conf->targets[i].name, o->target) == 0)
			target_pass(&b, &conf->targets[i]);
	uv_run(&b.loop, UV_RUN_NOWAIT);
	uv_loop_close(&b.loop);
	free(b.v);
	td_catalog_close(b.cat);
	return 0;
}
