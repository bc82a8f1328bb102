/*
 * policy — see policy.h. Everything here is a pure function of the conf, the
 * file's metadata and the "now" fixed at td_policy_new(), which is what makes
 * the rules table-testable and safe to call from every scan worker at once.
 */
#include "policy.h"
#include "glob.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NS_PER_S 1000000000LL
#define DAY_NS   (86400LL * NS_PER_S)

struct td_policy {
	const struct td_policy_conf *conf;
	int64_t now_ns;
	int64_t min_age_ns;
	struct td_glob **include, **exclude; /* compiled conf->include / exclude */
};

static const char *const skip_names[TD_SKIP__MAX] = {
	[TD_SKIP_NONE] = "candidate",
	[TD_SKIP_NOT_REGULAR] = "not_regular",
	[TD_SKIP_HARDLINKED] = "hardlinked",
	[TD_SKIP_SETUID_SETGID] = "setuid_setgid",
	[TD_SKIP_ALREADY_TIERED] = "already_tiered",
	[TD_SKIP_TIERD_DIR] = "tierd_dir",
	[TD_SKIP_EXCLUDED] = "excluded",
	[TD_SKIP_NOT_INCLUDED] = "not_included",
	[TD_SKIP_TOO_SMALL] = "too_small",
	[TD_SKIP_TOO_LARGE] = "too_large",
	[TD_SKIP_TOO_YOUNG] = "too_young",
	[TD_SKIP_OWNER] = "owner",
	[TD_SKIP_GROUP] = "group",
	[TD_SKIP_OTHER_FILESYSTEM] = "other_filesystem",
	[TD_SKIP_PERMISSION_DENIED] = "permission_denied",
	[TD_SKIP_VANISHED] = "vanished",
	[TD_SKIP_PATH_TOO_LONG] = "path_too_long",
	[TD_SKIP_RUN_LIMIT] = "run_limit",
	[TD_SKIP_WATERMARK] = "watermark",
	[TD_SKIP_ERROR] = "error",
};

const char *td_skip_name(enum td_skip_reason r)
{
	if ((unsigned)r >= TD_SKIP__MAX)
		return "unknown";
	return skip_names[r];
}

static const char *const bucket_names[TD_AGE__MAX] = {
	"<30d", "30-90d", "90-180d", "180-365d", ">1y",
};

const char *td_age_bucket_name(enum td_age_bucket b)
{
	if ((unsigned)b >= TD_AGE__MAX)
		return "unknown";
	return bucket_names[b];
}

int td_policy_new(struct td_policy **out, const struct td_policy_conf *conf, int64_t now_ns)
{
	struct td_policy *p;
	int r;

	if (!conf || conf->min_age_s < 0 || conf->min_age_s > INT64_MAX / NS_PER_S)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->conf = conf;
	p->now_ns = now_ns;
	p->min_age_ns = conf->min_age_s * NS_PER_S;
	p->include = calloc(conf->include.n + 1, sizeof(*p->include));
	p->exclude = calloc(conf->exclude.n + 1, sizeof(*p->exclude));
	if (!p->include || !p->exclude) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < conf->include.n; i++)
		if ((r = td_glob_compile(&p->include[i], conf->include.v[i])) < 0)
			goto fail;
	for (size_t i = 0; i < conf->exclude.n; i++)
		if ((r = td_glob_compile(&p->exclude[i], conf->exclude.v[i])) < 0)
			goto fail;
	*out = p;
	return 0;
fail:
	td_policy_free(p);
	return r;
}

void td_policy_free(struct td_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->include && i < p->conf->include.n; i++)
		td_glob_free(p->include[i]);
	for (size_t i = 0; p->exclude && i < p->conf->exclude.n; i++)
		td_glob_free(p->exclude[i]);
	free(p->include);
	free(p->exclude);
	free(p);
}

const struct td_policy_conf *td_policy_conf(const struct td_policy *p)
{
	return p->conf;
}

int64_t td_policy_time_ns(const struct td_policy *p, const struct td_file_meta *m)
{
	switch (p->conf->age_by) {
	case TD_AGE_MTIME:
		return m->mtime_ns;
	case TD_AGE_CTIME:
		return m->ctime_ns;
	case TD_AGE_NEWEST: {
		int64_t t = m->atime_ns;
		if (m->mtime_ns > t)
			t = m->mtime_ns;
		if (m->ctime_ns > t)
			t = m->ctime_ns;
		return t;
	}
	case TD_AGE_ATIME:
	default:
		return m->atime_ns;
	}
}

int64_t td_policy_age_ns(const struct td_policy *p, const struct td_file_meta *m)
{
	return p->now_ns - td_policy_time_ns(p, m);
}

enum td_age_bucket td_policy_age_bucket(const struct td_policy *p, const struct td_file_meta *m)
{
	int64_t age = td_policy_age_ns(p, m);

	if (age < 30 * DAY_NS)
		return TD_AGE_LT_30D;
	if (age < 90 * DAY_NS)
		return TD_AGE_30_90D;
	if (age < 180 * DAY_NS)
		return TD_AGE_90_180D;
	if (age < 365 * DAY_NS)
		return TD_AGE_180_365D;
	return TD_AGE_GT_1Y;
}

enum td_skip_reason td_policy_check_path(const struct td_policy *p, const char *rel, size_t len)
{
	const struct td_policy_conf *c = p->conf;
	bool inc;

	for (size_t i = 0; i < c->exclude.n; i++)
		if (td_glob_exec(p->exclude[i], rel, len))
			return TD_SKIP_EXCLUDED;
	/* An empty include list means the default "*": everything. */
	inc = c->include.n == 0;
	for (size_t i = 0; !inc && i < c->include.n; i++)
		inc = td_glob_exec(p->include[i], rel, len);
	return inc ? TD_SKIP_NONE : TD_SKIP_NOT_INCLUDED;
}

enum td_skip_reason td_policy_check(const struct td_policy *p, const char *rel, size_t len,
                                    const struct td_file_meta *m)
{
	const struct td_policy_conf *c = p->conf;
	enum td_skip_reason r;
	bool ok;

	if (!S_ISREG(m->mode))
		return TD_SKIP_NOT_REGULAR;
	if (m->nlink > 1)
		return TD_SKIP_HARDLINKED;
	if (m->mode & (S_ISUID | S_ISGID))
		return TD_SKIP_SETUID_SETGID;
	r = td_policy_check_path(p, rel, len);
	if (r != TD_SKIP_NONE)
		return r;
	ok = c->n_owners == 0;
	for (size_t i = 0; !ok && i < c->n_owners; i++)
		ok = c->owners[i] == m->uid;
	if (!ok)
		return TD_SKIP_OWNER;
	ok = c->n_groups == 0;
	for (size_t i = 0; !ok && i < c->n_groups; i++)
		ok = c->groups[i] == m->gid;
	if (!ok)
		return TD_SKIP_GROUP;
	if (m->size < c->min_size_bytes)
		return TD_SKIP_TOO_SMALL;
	if (m->size > c->max_size_bytes)
		return TD_SKIP_TOO_LARGE;
	/* Exactly min_age old is old enough: "older than or equal to". */
	if (td_policy_age_ns(p, m) < p->min_age_ns)
		return TD_SKIP_TOO_YOUNG;
	return TD_SKIP_NONE;
}

bool td_policy_prune_dir(const struct td_policy *p, const char *rel, size_t len)
{
	for (size_t i = 0; i < p->conf->exclude.n; i++)
		if (td_glob_covers_dir(p->exclude[i], rel, len))
			return true;
	return false;
}

/* Length of `root` without trailing slashes ("/" becomes 0). */
static size_t root_len(const char *root)
{
	size_t rl = strlen(root);

	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	return rl;
}

static bool root_holds(const char *root, size_t rl, const char *path, size_t len)
{
	return len > rl + 1 && memcmp(path, root, rl) == 0 && path[rl] == '/';
}

const char *td_policy_root_of(const char *const *roots, size_t n_roots, const char *path,
                              size_t len)
{
	const char *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < n_roots; i++) {
		size_t rl = root_len(roots[i]);

		if (root_holds(roots[i], rl, path, len) && (!best || rl > best_len)) {
			best = roots[i];
			best_len = rl;
		}
	}
	return best;
}

const struct td_policy_conf *td_policy_for_path(const struct td_config *c, const char *path,
                                                size_t len, const char **root)
{
	const struct td_policy_conf *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < c->n_policies; i++) {
		const struct td_strlist *paths = &c->policies[i].paths;
		const char *r =
		    td_policy_root_of((const char *const *)paths->v, paths->n, path, len);

		if (r && (!best || root_len(r) > best_len)) {
			best = &c->policies[i];
			best_len = root_len(r);
			*root = r;
		}
	}
	return best;
}
