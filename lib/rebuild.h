/*
 * rebuild — recreates the catalog and the dynamic-link namespace of this
 * host from the manifests on its targets (`tierctl rebuild`), after the loss
 * of state_dir.
 *
 * Each configured target is listed under its own prefix only (the one in this
 * host's configuration), one "<aa>/" directory at a time, so other hosts
 * sharing the bucket under other prefixes are never read and memory stays
 * bounded by one directory's listing. Every "<aa>/<id>.json" beside an object
 * "<aa>/<id>" becomes a row in state tiered (no cache copy) and a dynamic link
 * to the remote view; existing rows are kept (merge): a row with the same id
 * and the same path, size and hash is "present" (its missing dynamic link is
 * recreated), one that differs is a conflict, reported and left alone.
 * Running it twice adds nothing the second time.
 *
 * Offline: the caller makes sure tierd is not running on this state_dir
 * (tierctl checks its control socket). Blocking (network, SQLite, fsync): for
 * a command-line tool or a worker thread; runs a private uv loop. Never logs:
 * everything it finds goes to the caller's on_event.
 */
#pragma once

#include "config.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum td_rebuild_kind {
	TD_REBUILD_ADDED,    /* a row and a dynamic link made from a manifest */
	TD_REBUILD_PRESENT,  /* the catalog already had it as the manifest says */
	TD_REBUILD_RELINKED, /* it had the row; its missing dynamic link was made */
	TD_REBUILD_CONFLICT, /* the catalog has the id (or object) otherwise: left alone */
	TD_REBUILD_FAILED,   /* a manifest that could not be read or used */
	TD_REBUILD_TARGET,   /* a target could not be listed (message says why) */
};

struct td_rebuild_event {
	enum td_rebuild_kind kind;
	const char *target;
	const char *id;   /* NULL for TD_REBUILD_TARGET */
	const char *path; /* the original path (bytes), NULL when unknown */
	size_t path_len;
	uint64_t size_bytes;
	const char *message; /* why, for CONFLICT, FAILED and TARGET */
};

struct td_rebuild_stats {
	uint64_t manifests, added, present, relinked, conflicts, failed, targets_failed;
	uint64_t added_bytes;
};

struct td_rebuild_opts {
	const struct td_config *conf;
	const char *target; /* NULL: every configured target */
	bool dry_run;       /* read and compare, change nothing */
	void (*on_event)(void *data, const struct td_rebuild_event *ev);
	void *data;
};

/*
 * Runs the rebuild. Returns 0 when it went through every target (per-file
 * problems are in *st and were reported), or -errno with a sentence in err
 * for what stopped it as a whole: the catalog cannot be opened or created
 * (-EBUSY: locked), state_dir cannot be made, no such target (-ENOENT).
 */
int td_rebuild_run(const struct td_rebuild_opts *o, struct td_rebuild_stats *st, char *err,
                   size_t errlen);

/*
 * Parses one manifest (mover_manifest.c's format) into e: id, path and name
 * (pointing into doc's strings or into *path_buf, malloc'd, for path_b64:
 * free it), stat fields, sha256, policy, tiered_ns. Returns 0 or -EPROTO with
 * why in err.
 */
struct td_catalog_entry;
int td_rebuild_parse_manifest(struct td_catalog_entry *e, char **path_buf, const json_t *doc,
                              char *err, size_t errlen);

/*
 * Makes the dynamic link of row e when it is missing: to the cache copy of a
 * cached or dirty row, to the remote view otherwise (tierd rebinds it as the
 * data moves). Returns 1 if made (or, with dry_run, if it would be), 0 if it
 * was there, or -errno. Blocking; any thread.
 */
int td_rebuild_relink(const struct td_config *conf, const struct td_catalog_entry *e, bool dry_run);
