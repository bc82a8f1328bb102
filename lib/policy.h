/*
 * policy — a policy's rules compiled from its td_policy_conf, and the checks
 * the scanner applies to each file.
 *
 * A td_policy is immutable after td_policy_new() and may be shared by any
 * number of threads. It borrows the conf: the conf must outlive it.
 */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Why a file or directory is not a candidate. Names (td_skip_name) are the
 * keys of the "skipped" object in `tierctl plan --json`. */
enum td_skip_reason {
	TD_SKIP_NONE = 0, /* a candidate */
	TD_SKIP_NOT_REGULAR,
	TD_SKIP_HARDLINKED,
	TD_SKIP_SETUID_SETGID,
	TD_SKIP_ALREADY_TIERED,
	TD_SKIP_TIERD_DIR,
	TD_SKIP_EXCLUDED,
	TD_SKIP_NOT_INCLUDED,
	TD_SKIP_TOO_SMALL,
	TD_SKIP_TOO_LARGE,
	TD_SKIP_TOO_YOUNG,
	TD_SKIP_OWNER,
	TD_SKIP_GROUP,
	TD_SKIP_OTHER_FILESYSTEM,
	TD_SKIP_PERMISSION_DENIED,
	TD_SKIP_VANISHED,
	TD_SKIP_PATH_TOO_LONG,
	TD_SKIP_RUN_LIMIT, /* max_files_per_run / max_bytes_per_run reached */
	TD_SKIP_WATERMARK, /* eligible, but not needed to get below low_watermark */
	TD_SKIP_ERROR,     /* any other error reading a directory or a file */
	TD_SKIP__MAX,
};

/* "not_regular", "hardlinked", ...; "candidate" for TD_SKIP_NONE. */
const char *td_skip_name(enum td_skip_reason r);

/* What the rules look at: a subset of statx, times in ns since the epoch. */
struct td_file_meta {
	mode_t mode;
	uint32_t nlink;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	int64_t atime_ns;
	int64_t mtime_ns;
	int64_t ctime_ns;
};

/* Age histogram buckets of `tierctl plan`. */
enum td_age_bucket {
	TD_AGE_LT_30D,
	TD_AGE_30_90D,
	TD_AGE_90_180D,
	TD_AGE_180_365D,
	TD_AGE_GT_1Y,
	TD_AGE__MAX,
};
/* "<30d", "30-90d", "90-180d", "180-365d", ">1y". */
const char *td_age_bucket_name(enum td_age_bucket b);

struct td_policy;

/* Compiles `conf`, with `now_ns` as "now" for every age decision (so one run
 * sees one consistent clock). Returns 0 or -ENOMEM / -EINVAL. */
int td_policy_new(struct td_policy **out, const struct td_policy_conf *conf, int64_t now_ns);
void td_policy_free(struct td_policy *p);
const struct td_policy_conf *td_policy_conf(const struct td_policy *p);

/* The file's time by age_by, and its age in ns relative to now (may be < 0). */
int64_t td_policy_time_ns(const struct td_policy *p, const struct td_file_meta *m);
int64_t td_policy_age_ns(const struct td_policy *p, const struct td_file_meta *m);
enum td_age_bucket td_policy_age_bucket(const struct td_policy *p, const struct td_file_meta *m);

/* True when the root-relative path is excluded (exclude globs) or not included. */
enum td_skip_reason td_policy_check_path(const struct td_policy *p, const char *rel, size_t len);

/* True when an exclude glob covers everything below directory `rel`, so the
 * walker can skip it whole (counted once as excluded). */
bool td_policy_prune_dir(const struct td_policy *p, const char *rel, size_t len);

/* Applies every per-file rule to a file at root-relative `rel`. Returns
 * TD_SKIP_NONE for a candidate, else the first reason that rules it out, in
 * the order: type, nlink, setuid/setgid, globs, owner, group, size, age. */
enum td_skip_reason td_policy_check(const struct td_policy *p, const char *rel, size_t len,
                                    const struct td_file_meta *m);

/*
 * The policy root that holds `path` (of `len` bytes, absolute) strictly below
 * it: the longest of `roots` that is a proper directory prefix of it, with any
 * trailing '/' on a root ignored. Returns that root, or NULL when none holds it.
 */
const char *td_policy_root_of(const char *const *roots, size_t n_roots, const char *path,
                              size_t len);

/*
 * The policy whose root holds `path` (the longest root over all policies wins),
 * with that root in *root; NULL (and *root untouched) when no policy covers it.
 */
const struct td_policy_conf *td_policy_for_path(const struct td_config *c, const char *path,
                                                size_t len, const char **root);
