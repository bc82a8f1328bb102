/*
 * config_check — whole-file checks, run once every line has been read.
 *
 * What one line cannot tell: required keys, keys that do not apply to a
 * target's type, a policy's target reference, watermark pairs, max_size against
 * min_size, and overlaps between policy roots, tierd's own directories and dir
 * targets. Keys whose value was rejected already are skipped (their line is
 * marked bad), so one mistake is reported once. It also fills the defaults that
 * depend on a target's type, and resolves the admin group.
 *
 * Runs on the thread of td_config_load(); all state is in its struct cfg_ctx.
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- whole-file checks ----------------------------------------------------------------------- */

static unsigned key_line(const struct cfg_keylines *k, const struct cfg_keydef *keys,
                         const char *name)
{
	int i = cfg_key_index(keys, name);

	return i < 0 ? 0 : k->line[i];
}

/* The line of a key whose value was accepted, else 0. */
static unsigned good_line(const struct cfg_keylines *k, const struct cfg_keydef *keys,
                          const char *name)
{
	int i = cfg_key_index(keys, name);

	return i < 0 || k->bad[i] ? 0 : k->line[i];
}

static void finish_target(struct cfg_ctx *x, struct td_target_conf *t, const struct cfg_keylines *k)
{
	char kn[64];

	if (!key_line(k, cfg_target_keys, "type")) {
		cfg_add_error(x, t->line, "type", "target \"%s\": missing required key (s3 | dir)",
		              t->name);
		return;
	}
	if (!good_line(k, cfg_target_keys, "type"))
		return; /* reported already; the rest depends on it */
	for (int i = 0; cfg_target_keys[i].field; i++) {
		unsigned f = cfg_target_keys[i].flags;
		cfg_key_name(kn, sizeof(kn), &cfg_target_keys[i]);
		if (k->line[i] && ((f & F_S3 && t->type != TD_TARGET_S3) ||
		                   (f & F_DIR && t->type != TD_TARGET_DIR)))
			cfg_add_error(x, k->line[i], kn, "only for targets of type %s",
			              f & F_S3 ? "s3" : "dir");
	}
	if (t->type == TD_TARGET_S3) {
		if (!key_line(k, cfg_target_keys, "endpoint"))
			cfg_add_error(x, t->line, "endpoint", "target \"%s\": missing required key",
			              t->name);
		if (!key_line(k, cfg_target_keys, "bucket"))
			cfg_add_error(x, t->line, "bucket", "target \"%s\": missing required key",
			              t->name);
		if (!t->region)
			t->region = cfg_xstrdup(x, "us-east-1");
		if (!t->prefix)
			t->prefix = cfg_xstrdup(x, "");
		if (!t->storage_class)
			t->storage_class = cfg_xstrdup(x, "STANDARD");
	} else {
		if (!key_line(k, cfg_target_keys, "path"))
			cfg_add_error(x, t->line, "path", "target \"%s\": missing required key",
			              t->name);
	}
}

static void finish_policy(struct cfg_ctx *x, struct td_policy_conf *p, const struct cfg_keylines *k)
{
	unsigned hi = key_line(k, cfg_policy_keys, "high_watermark");
	unsigned lo = key_line(k, cfg_policy_keys, "low_watermark");
	unsigned tl = good_line(k, cfg_policy_keys, "target");
	unsigned ml = good_line(k, cfg_policy_keys, "max_size");
	bool wm_ok = good_line(k, cfg_policy_keys, "high_watermark") == hi &&
	             good_line(k, cfg_policy_keys, "low_watermark") == lo;
	char a[32], b[32];

	if (!key_line(k, cfg_policy_keys, "paths"))
		cfg_add_error(x, p->line, "paths", "policy \"%s\": missing required key", p->name);
	else if (p->paths.n == 0 && good_line(k, cfg_policy_keys, "paths"))
		cfg_add_error(x, key_line(k, cfg_policy_keys, "paths"), "paths", "no paths given");
	if (!key_line(k, cfg_policy_keys, "target")) {
		cfg_add_error(x, p->line, "target", "policy \"%s\": missing required key", p->name);
	} else if (tl && p->target) {
		p->target_conf = td_config_target(x->c, p->target);
		if (!p->target_conf)
			cfg_add_error(x, tl, "target",
			              "undefined target '%s' (no [target \"%s\"] section)",
			              p->target, p->target);
	}
	if (!wm_ok)
		; /* a watermark value was rejected: reported already */
	else if (hi && !lo)
		cfg_add_error(x, hi, "high_watermark", "needs low_watermark too");
	else if (lo && !hi)
		cfg_add_error(x, lo, "low_watermark", "needs high_watermark too");
	else if (hi && lo && p->low_watermark_pct >= p->high_watermark_pct)
		cfg_add_error(x, lo, "low_watermark", "%g%% must be below high_watermark (%g%%)",
		              p->low_watermark_pct, p->high_watermark_pct);
	else if (hi && lo)
		p->has_watermarks = true;
	if (ml &&
	    good_line(k, cfg_policy_keys, "min_size") == key_line(k, cfg_policy_keys, "min_size") &&
	    p->max_size_bytes < p->min_size_bytes) {
		cfg_fmt_size(a, sizeof(a), p->max_size_bytes);
		cfg_fmt_size(b, sizeof(b), p->min_size_bytes);
		cfg_add_error(x, ml, "max_size", "%s is below min_size (%s)", a, b);
	}
}

struct root {
	const char *path;
	const char *what; /* "policy \"x\"" etc. for messages */
	size_t policy;    /* SIZE_MAX: not a policy root */
	unsigned line;
	const char *key;
};

/* Every root to check: policy paths first (n_policy of them), then tierd's directories and dir
 * targets. */
struct roots {
	struct root *r;
	size_t n, n_policy;
	char (*labels)[64]; /* "policy \"x\"", "target \"y\"": what the messages call them */
};

/* Fills `rs`. Returns false when reported (too many) or out of memory. */
static bool collect_roots(struct cfg_ctx *x, struct roots *rs)
{
	struct td_config *c = x->c;
	const struct cfg_keylines *tk = &x->tierd_keys;
	size_t cap = 0;

	for (size_t i = 0; i < c->n_policies; i++)
		cap += c->policies[i].paths.n;
	cap += 3 + c->n_targets;
	if (cap > CFG_MAX_ROOTS + 3 + CFG_MAX_SECTIONS) {
		cfg_add_error(x, 0, NULL, "too many policy paths (at most %d)", CFG_MAX_ROOTS);
		return false;
	}
	rs->r = calloc(cap, sizeof(*rs->r));
	rs->labels = calloc(c->n_policies + c->n_targets + 1, sizeof(*rs->labels));
	if (!rs->r || !rs->labels) {
		x->oom = true;
		return false;
	}
	for (size_t i = 0; i < c->n_policies; i++) {
		struct td_policy_conf *p = &c->policies[i];
		unsigned line = key_line(&x->policy_keys[i], cfg_policy_keys, "paths");
		snprintf(rs->labels[i], sizeof(rs->labels[i]), "policy \"%s\"", p->name);
		for (size_t j = 0; j < p->paths.n; j++)
			rs->r[rs->n++] =
			    (struct root){ p->paths.v[j], rs->labels[i], i, line, "paths" };
	}
	rs->n_policy = rs->n;
	rs->r[rs->n++] = (struct root){ c->state_dir, "state_dir", SIZE_MAX,
		                        key_line(tk, cfg_tierd_keys, "state_dir"), "state_dir" };
	rs->r[rs->n++] = (struct root){ c->cache_dir, "cache_dir", SIZE_MAX,
		                        key_line(tk, cfg_tierd_keys, "cache_dir"), "cache_dir" };
	rs->r[rs->n++] = (struct root){ c->run_dir, "run_dir", SIZE_MAX,
		                        key_line(tk, cfg_tierd_keys, "run_dir"), "run_dir" };
	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_conf *t = &c->targets[i];
		char *label = rs->labels[c->n_policies + i];
		if (t->type != TD_TARGET_DIR || !t->path)
			continue;
		snprintf(label, sizeof(rs->labels[0]), "target \"%s\"", t->name);
		rs->r[rs->n++] =
		    (struct root){ t->path, label, SIZE_MAX,
			           key_line(&x->target_keys[i], cfg_target_keys, "path"), "path" };
	}
	return true;
}

/* Policy roots against each other: one inside another (or equal) is an error. */
static void check_policy_roots(struct cfg_ctx *x, const struct roots *rs)
{
	for (size_t i = 0; i < rs->n_policy; i++) {
		for (size_t j = i + 1; j < rs->n_policy; j++) {
			const struct root *a = &rs->r[i], *b = &rs->r[j];
			if (!cfg_path_within(a->path, b->path) &&
			    !cfg_path_within(b->path, a->path))
				continue;
			const char *rel = strcmp(a->path, b->path) == 0       ? "is the same as"
			                  : cfg_path_within(b->path, a->path) ? "is inside"
			                                                      : "contains";
			cfg_add_error(x, b->line, "paths",
			              "'%s' %s '%s' (%s, line %u): roots must not overlap", b->path,
			              rel, a->path, a->what, a->line);
		}
	}
}

/* tierd's own directories and dir targets must not be inside a policy root, or hold one. */
static void check_own_dirs(struct cfg_ctx *x, const struct roots *rs)
{
	const struct root *r = rs->r;

	for (size_t j = rs->n_policy; j < rs->n; j++) {
		if (!r[j].path)
			continue;
		for (size_t i = 0; i < rs->n_policy; i++) {
			if (cfg_path_within(r[j].path, r[i].path))
				/* A default directory has no line: blame the root's. */
				cfg_add_error(x, r[j].line ? r[j].line : r[i].line,
				              r[j].line ? r[j].key : "paths",
				              "%s '%s' is inside the root '%s' of %s (line %u)",
				              r[j].what, r[j].path, r[i].path, r[i].what,
				              r[i].line);
			else if (cfg_path_within(r[i].path, r[j].path))
				cfg_add_error(x, r[i].line, "paths", "'%s' (%s) is inside %s '%s'",
				              r[i].path, r[i].what, r[j].what, r[j].path);
		}
	}
}

static void check_overlaps(struct cfg_ctx *x)
{
	struct roots rs = { 0 };

	if (collect_roots(x, &rs)) {
		check_policy_roots(x, &rs);
		check_own_dirs(x, &rs);
	}
	free(rs.r);
	free(rs.labels);
}

static void resolve_admin_group(struct cfg_ctx *x)
{
	struct td_config *c = x->c;
	uint32_t id = UINT32_MAX;

	if (!c->admin_group || !*c->admin_group)
		return;
	if (cfg_parse_id(c->admin_group, &id) || cfg_lookup_id(c->admin_group, true, &id) == 1) {
		c->has_admin_gid = true;
		c->admin_gid = (gid_t)id;
	}
}

void cfg_check_file(struct cfg_ctx *x)
{
	for (size_t i = 0; i < x->c->n_targets; i++)
		finish_target(x, &x->c->targets[i], &x->target_keys[i]);
	for (size_t i = 0; i < x->c->n_policies; i++)
		finish_policy(x, &x->c->policies[i], &x->policy_keys[i]);
	check_overlaps(x);
	resolve_admin_group(x);
}
