/*
 * scan — the policy scanner: a parallel, streaming, symlink-safe walk of a
 * policy's roots that yields candidate files.
 *
 * td_scan_run() blocks its caller; it starts `threads` workers that share a
 * bounded queue of directories. Each directory is opened beneath its root's fd
 * by td_fsat_open_dir (fsat.h: no symlink at any component), so a directory
 * swapped for a symlink mid-scan is never followed; paths reported are root-relative byte strings
 * built from the names read, never resolved. Files are never opened (no atime change). Memory is
 * bounded by the queue, one getdents buffer per worker, and the watermark selection cap — never by
 * the number of files.
 *
 * Callbacks: on_candidate, on_link and on_dir are called from worker threads,
 * concurrently, and must be thread-safe; the pointers they get are valid only
 * during the call. With watermarks active, on_candidate is instead called from
 * the thread that called td_scan_run(), after the walk, coldest first.
 * on_progress and on_root_error are called from td_scan_run()'s thread.
 *
 * Selection: every eligible file (td_policy_check) is a candidate, first come
 * first served up to max_files_per_run / max_bytes_per_run. With watermarks,
 * nothing is selected while the first root's filesystem is at or below
 * high_watermark; above it, the coldest eligible files are kept (a min-heap
 * on age holding just enough bytes, at most select_cap entries) and handed
 * over coldest first until the projected usage is below low_watermark.
 * Counters are summed per worker and merged at the end (no shared hot
 * counters); only the progress counters are atomics.
 */
#pragma once

#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest root-relative path handled; longer ones are skipped as path_too_long. */
#define TD_SCAN_PATH_MAX (64 * 1024)

struct td_scan_entry {
	size_t root;      /* index into the roots */
	const char *path; /* root-relative, not NUL-terminated within path_len */
	size_t path_len;
	const struct td_file_meta *meta; /* only the age_by time(s) are set; others 0 */
	uint64_t dev, ino;
	int64_t age_ns; /* by the policy's age_by */
};

struct td_scan_stats {
	uint64_t dirs;
	uint64_t scanned_files; /* regular files seen in the roots */
	uint64_t scanned_bytes;
	uint64_t age_bytes[TD_AGE__MAX]; /* scanned bytes by age bucket */
	uint64_t eligible_files;         /* passed every rule (before run limits/watermarks) */
	uint64_t eligible_bytes;
	uint64_t candidate_files; /* delivered to on_candidate */
	uint64_t candidate_bytes;
	uint64_t links_seen; /* links into tierd's namespace */
	uint64_t skipped[TD_SKIP__MAX];
	unsigned failed_roots;
	/* Filesystem of the first root, from fstatvfs; watermark state. */
	uint64_t fs_total_bytes, fs_used_bytes;
	bool watermark_active; /* has_watermarks and the filesystem was above high */
	int64_t elapsed_ns;
};

struct td_scan_opts {
	const struct td_policy *policy;
	/* NULL: the policy's paths. Absolute paths. */
	const char *const *roots;
	size_t n_roots;
	/* tierd's own directories (NULL = none): never entered; links under
	 * <state_dir>/links/ are sightings. */
	const char *state_dir, *cache_dir, *run_dir;
	unsigned threads;  /* 0: the number of online CPUs */
	size_t queue_cap;  /* shared directory queue; 0: 4096 */
	size_t select_cap; /* watermark selection entries; 0: 262144 */
	bool fs_override;  /* tests: use these instead of fstatvfs */
	uint64_t fs_total_bytes, fs_used_bytes;
	int64_t progress_ns; /* 0: 250 ms */
	void *ctx;
	void (*on_candidate)(void *ctx, const struct td_scan_entry *e);
	/* A symlink into <state_dir>/links/<aa>/<id>/<name>: id is NUL-terminated hex. */
	void (*on_link)(void *ctx, size_t root, const char *id, const char *path, size_t len);
	/* After each directory holding eligible files: their count and bytes. */
	void (*on_dir)(void *ctx, size_t root, const char *path, size_t len, uint64_t files,
	               uint64_t bytes);
	void (*on_progress)(void *ctx, uint64_t files, uint64_t dirs, int64_t elapsed_ns);
	void (*on_root_error)(void *ctx, size_t root, int err);
};

/*
 * Walks every root. Fills *out in all cases (partial counts when a root failed).
 * Returns 0, or the negative errno of the first root that could not be opened
 * (the other roots are still scanned), or -ENOMEM/-EAGAIN when it could not
 * start at all.
 */
int td_scan_run(struct td_scan_stats *out, const struct td_scan_opts *o);
