/*
 * verify — `tierctl verify`: checks the catalog, the user links, the dynamic
 * links, the cache copies and the target's objects and manifests against each
 * other, and with `repair` fixes what is safe to fix. It never deletes data.
 *
 * Per row (tiered, cached, dirty): the dynamic link exists and points where
 * the data is (cache copy or remote view); the user link last seen still leads
 * to it (a gone user link is a note, not a problem: gc's business); the cache
 * copy is there, the size of the original (unless dirty) and carries the
 * original's uid, gid and mode; the object and its manifest exist on the target
 * with the size and ETag the catalog recorded; with `deep`, every object is
 * read whole and hashed against the catalog's SHA-256 (the hydration's
 * verifying read), and clean cache copies are hashed too. Rows in migrating
 * or recalling untouched for an hour are "stuck". A full verify (no paths, no
 * policy) that got through the whole catalog also lists each target's
 * prefix for objects no row owns, and counts multipart uploads left open for
 * more than a day.
 *
 * Repairs: a missing, dangling or misdirected dynamic link is rebound; a cache
 * copy's drifted owner or mode is set back; an object that is missing, of the
 * wrong size or ETag, or fails its SHA-256 is uploaded again from a cache copy
 * that itself hashes to the catalog's SHA-256 (and the row gets the new ETag);
 * open uploads older than a day are aborted.
 *
 * Incremental: rows are visited in id order and the last one checked is kept in
 * the catalog ("verify.checkpoint") when a run stops early (time_limit, a
 * target that stops answering, cancel); the next full verify resumes there
 * unless `restart`. Blocking: a thread of its own (life.h).
 */
#pragma once

#include "config.h"
#include "life.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TD_VERIFY_STUCK_S      3600
#define TD_VERIFY_UPLOAD_AGE_S 86400
#define TD_VERIFY_PATHS_MAX    4096

struct td_verify_opts {
	const struct td_config *conf;
	const char *catalog_path;
	bool deep, repair, restart;
	const char *policy;       /* NULL: every policy */
	const char *const *paths; /* absolute; a row matches a path or anything below it */
	size_t n_paths;
	int64_t time_limit_s; /* 0: none */
	struct td_life_sink sink;
};

/*
 * Runs one verify. Events: {"event":"problem","class","path","id","message",
 * "repaired"(bool),"severity":"problem"|"note"} and {"event":"progress",
 * "checked","total"}. *report (always set, a new reference): started, ended,
 * deep, repair, checked, problems, repaired, notes, classes (class -> count),
 * complete (bool: the whole selection was checked), resumed_from, and "error"
 * when it stopped on an error. Returns 0 when it ran (problems or not), or
 * -errno when it could not finish (the checkpoint is kept).
 */
int td_verify_run(json_t **report, const struct td_verify_opts *o);
