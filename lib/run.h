/*
 * run — one policy run: the policy's roots are walked on a thread of the run's
 * own (td_scan_run starts its workers there) and the candidates reach the loop
 * through a bounded queue, from which they are fed to the mover a few at a
 * time. When the mover falls behind, the scanner waits, so memory stays flat
 * however many files qualify. Link sightings go straight to the catalog from
 * the scan threads (the run's own handle, under a lock).
 *
 * Loop thread, but for the scan. The caller owns nothing of a run but the
 * pointer, valid until on_done has returned; the policy configuration, the
 * mover and the directory strings are borrowed and must outlive the run.
 */
#pragma once

#include "catalog.h"
#include "config.h"
#include "mover.h"
#include "scan.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define TD_RUN_QUEUE_CAP  1024 /* candidates waiting between the scanner and the loop */
#define TD_RUN_MOVER_FEED 64   /* files handed to the mover ahead of need */

struct td_run;

struct td_run_opts {
	uv_loop_t *loop;
	struct td_mover *mover;
	const struct td_policy_conf *pc;
	const char *state_dir, *cache_dir, *run_dir;
	const char *catalog_path; /* where link sightings go */
	int64_t now_ns;           /* the policy's ages count from here */
	void *data;
	/* One file's outcome, counted in the run's statistics already. */
	void (*on_file)(void *data, struct td_run *run, const struct td_mover_result *res);
	/* The mover refused a candidate (counted as failed). */
	void (*on_queue_failed)(void *data, struct td_run *run, const char *path, size_t len,
	                        int err);
	/* The scan is over and every file has an outcome; the run is freed on return. */
	void (*on_done)(void *data, struct td_run *run);
};

struct td_run_stats {
	uint64_t scanned_files; /* so far */
	unsigned queued;        /* candidates waiting for the mover */
	unsigned in_mover;
	uint64_t tiered, tiered_bytes, skipped, failed;
	int64_t elapsed_ns;
	bool target_down;          /* a file met the target unreachable (or skipped for it) */
	struct td_scan_stats scan; /* once the scan is over */
	int scan_status;           /* td_scan_run's: < 0 when a root could not be scanned */
	/* why link sightings are not recorded, or "" */
	char link_error[sizeof(((struct td_catalog_error *)0)->message)];
};

/*
 * Starts a run of o->pc. Returns 0, or -errno with a sentence in err (no
 * callback is called then). On 0, the run has started; the run's statistics'
 * link_error says whether link sightings will be recorded.
 */
int td_run_start(struct td_run **out, const struct td_run_opts *o, char *err, size_t errlen);

/* Stops feeding the mover and the scanner; files in the mover finish, then
 * on_done comes. */
void td_run_stop(struct td_run *r);

const char *td_run_policy(const struct td_run *r);
void td_run_stats(const struct td_run *r, struct td_run_stats *out);
