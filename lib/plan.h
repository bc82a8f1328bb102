/*
 * plan — the dry run behind `tierctl plan`: scans one policy's roots and sums
 * up what would move, without moving anything.
 *
 * td_plan_run() blocks its caller and uses td_scan's worker threads. Results
 * are plain structs owned by the caller (td_plan_free). The JSON and text
 * renderers are here too so that tests can check them without a config file.
 */
#pragma once

#include "config.h"
#include "scan.h"

#include <jansson.h>
#include <stdio.h>

#define TD_PLAN_TOP_DIRS 10

struct td_plan_dir {
	char *path; /* absolute: root + "/" + root-relative path; arbitrary bytes */
	size_t len;
	uint64_t files, bytes;
};

struct td_plan_root_error {
	char *root;
	int err; /* negative errno */
};

struct td_plan_file {
	char *path; /* absolute, arbitrary bytes */
	size_t len;
	uint64_t size;
	int64_t age_ns;
};

struct td_plan {
	char *name;
	const struct td_policy_conf *conf; /* borrowed */
	struct td_scan_stats st;
	struct td_plan_dir top[TD_PLAN_TOP_DIRS]; /* by bytes, descending */
	size_t n_top;
	struct td_plan_root_error *root_errors;
	size_t n_root_errors;
	struct td_plan_file *files; /* the first list_max candidates, in no order */
	size_t n_files;
	bool files_truncated;
};

struct td_plan_opts {
	const char *state_dir, *cache_dir, *run_dir; /* from the config's [tierd] */
	unsigned threads;                            /* 0: online CPUs */
	size_t list_max;  /* keep up to this many candidate paths (0: none) */
	bool fs_override; /* tests */
	uint64_t fs_total_bytes, fs_used_bytes;
	void *ctx;
	void (*on_progress)(void *ctx, uint64_t files, uint64_t dirs, int64_t elapsed_ns);
};

/* Runs the dry run of one policy. Returns 0 (root failures are recorded in
 * root_errors, not returned) or a negative errno; *out is set only on 0. */
int td_plan_run(struct td_plan **out, const struct td_policy_conf *pc, const struct td_plan_opts *o,
                int64_t now_ns);
void td_plan_free(struct td_plan *p);

/* Projected usage of the first root's filesystem after the candidates move. */
uint64_t td_plan_projected_used(const struct td_plan *p);

/*
 * One policy as a JSON object: name, scanned_files, scanned_bytes,
 * candidate_files, candidate_bytes, eligible_*, age_histogram, top_dirs,
 * skipped, filesystem {total_bytes, used_bytes, projected_used_bytes,
 * projected_used_pct}, watermark_active, elapsed_s, files_per_s, errors, and
 * with list_max, "candidates" [{path, size}] and "candidates_truncated".
 * Paths are set with td_ctl_set_path ("path", or "path" escaped and
 * "path_b64" for names that are not UTF-8).
 * Returns a new reference or NULL on ENOMEM.
 */
json_t *td_plan_json(const struct td_plan *p);

/* The human report. */
void td_plan_print(const struct td_plan *p, FILE *f);

/* "1.5 GiB"-style units into buf; returns buf. */
const char *td_human_bytes(char *buf, size_t n, uint64_t bytes);

/* "too_small 30, too_young 5" (the reasons with a count, in plan's order), or
 * "none": the same words for a run's summary as for plan's. Returns buf. */
const char *td_plan_skips_format(char *buf, size_t n, const struct td_scan_stats *st);
