/*
 * gc — `tierctl gc`: deletes an object and its manifest once no link to it has
 * been seen for `retention` (DESIGN.md invariant 5).
 *
 * A gc first walks for links itself: every policy root (all of it: exclude
 * globs and one_filesystem do not stop this walk) and every `sighting_roots`
 * tree, recording each symlink into the namespace as a sighting of its id at
 * its path. If any of those trees could not be walked completely, nothing is
 * deleted. Then it finishes deletions a crash interrupted (the journal in
 * catalog_life.h), and for every row whose link was last seen (or, never
 * seen, whose file was tiered or recalled) longer than `retention` ago and that is
 * tiered without a cache copy or recalled (local), and not pinned: it moves
 * the row into the journal, removes the dynamic link, deletes the manifest,
 * then the object, then the journal entry. Rows that are dirty, pinned, cached,
 * migrating or recalling are kept and reported. So the row of a deleted object is
 * deleted from the catalog; the report keeps counts, and the event stream
 * names each file. Lastly it aborts multipart uploads under each s3 target's
 * prefix started more than a day ago.
 *
 * Blocking: run it on a thread of its own (life.h). With dry_run it records
 * sightings (they are facts, not deletions) but deletes and aborts nothing.
 */
#pragma once

#include "config.h"
#include "life.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TD_GC_UPLOAD_AGE_S 86400

struct td_gc_opts {
	const struct td_config *conf;
	const char *catalog_path;
	bool dry_run;
	int64_t now_ns; /* 0: now */
	struct td_life_sink sink;
	unsigned scan_threads; /* 0: 2 */
	int64_t upload_age_s;  /* uploads older than this are aborted; < 0: TD_GC_UPLOAD_AGE_S */
};

/*
 * Runs one gc. Events: {"event":"file","outcome":"deleted"|"would_delete"|
 * "kept"|"failed","path","id","reason","last_seen"} and {"event":"progress",...}.
 * *report (always set on return, a new reference) is the summary: started,
 * ended, dry_run, roots, links_seen, deleted, deleted_bytes, would_delete,
 * kept, failed, uploads_found, uploads_aborted, and "error" when it stopped
 * early. Returns 0, or -errno when it could not do its work (nothing is then
 * deleted after the failure).
 */
int td_gc_run(json_t **report, const struct td_gc_opts *o);

/*
 * The sighting walk alone: every symlink into <state_dir>/links/ under `roots`
 * is recorded in `cat` at its absolute path. *links gets the count. Returns 0,
 * or -errno when a root could not be walked completely (err says which).
 */
int td_gc_sight(uint64_t *links, struct td_catalog *cat, const struct td_config *conf,
                const char *const *roots, size_t n_roots, unsigned threads, char *err,
                size_t errlen);
