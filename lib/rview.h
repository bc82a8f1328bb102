/*
 * rview — the remote view: a FUSE filesystem at <run_dir>/remote that serves
 * tiered files straight from their targets, and hydrates them into the cache.
 *
 *   /                 0711 root   (only root may list it)
 *   /<aa>             0711 root
 *   /<aa>/<id>        the owner, group and mode of <state_dir>/links/<aa>/<id>/,
 *                     the fold of the original's ancestors (access.h)
 *   /<aa>/<id>/<name> the file: its original size, mode, uid, gid, mtime
 *
 * Loop thread only: the FUSE session fd is polled by the loop, requests are
 * answered asynchronously when their data arrives (no thread blocks per
 * request), catalog lookups and disk writes run on the thread pool.
 *
 * Reads go through 1 MiB chunks fetched by range requests: sequential readers
 * get several chunks read ahead; random readers fetch only what they touch;
 * a chunk fetched once serves every reader and the hydration. Opening a file
 * starts its hydration (the whole object into <cache_dir>/copies/<aa>/<id>/<id>.part,
 * verified against its SHA-256, given its owner, mode and mtime, renamed into
 * place, and then the dynamic link is rebound to it), except for processes in
 * no_hydrate and for processes that sweep many files (a backup, a virus
 * scanner), which are served by streaming. The cache stays under its limit by
 * evicting the least recently used copies (never pinned or changed ones).
 *
 * Callbacks (as everywhere in the library, see target.h): the caller's data
 * pointer comes first (ctx for the options' callbacks, data for done and
 * close_cb), then what the callback reports. A call that returns an error
 * never calls its callback; one that returns 0 calls it exactly once, on the
 * loop thread, and never before the call has returned.
 *
 * The code: lib/rview.c (the session) and lib/rview_*.c; rview_int.h lists
 * the files and documents the lifetimes of what they share.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "target.h"

struct td_rview;

struct td_rview_opts {
	uv_loop_t *loop;
	const char *mountpoint; /* <run_dir>/remote */
	const char *catalog_path;
	const char *state_dir, *cache_dir, *run_dir;
	uint64_t cache_limit_bytes;
	const char *const *no_hydrate; /* process names (comm) never hydrated */
	size_t n_no_hydrate;
	/* Streamed opens (no_hydrate, sweeps) bypass the page cache (FOPEN_DIRECT_IO). */
	bool stream_direct_io;
	struct td_target *(*target_for)(void *ctx, const char *name);
	/* Problems worth a log line (a corrupt object, a failed hydration). */
	void (*on_error)(void *ctx, const char *id, const char *message);
	/* The last writer through the view closed a file it changed: the copy is
	 * dirty and should go back to primary storage (td_mover_recall). */
	void (*on_dirty)(void *ctx, const char *id);
	void *ctx;
};

struct td_rview_stats {
	uint64_t opens;
	uint64_t reads;
	uint64_t read_bytes;
	uint64_t target_requests; /* range GETs issued */
	uint64_t target_bytes;
	uint64_t hydrations; /* completed and bound */
	uint64_t hydration_failures;
	uint64_t streamed_opens; /* served without hydrating */
	uint64_t evictions;
	uint64_t cache_used_bytes;     /* as last measured */
	uint64_t chunk_mem_peak_bytes; /* most chunk buffer memory held at once */
};

/* Mounts the view (a stale mount left by a crash is detached first).
 * Tests only: TD_TEST_RVIEW_PAUSE names a directory where a test asks the view
 * to pause at a step (rview_int.h, rv_test_pause); never set it otherwise.
 * Tests only, likewise: TD_TEST_RVIEW_CHUNK_MIB (the chunk memory cap in MiB,
 * default 256) and TD_TEST_RVIEW_COPY_FDS (cache copy fds kept open, default
 * 256) make the caps tiny.
 * Returns 0 or -errno with a sentence in err. No option callback runs before
 * it returns. */
int td_rview_new(struct td_rview **out, const struct td_rview_opts *o, char *err, size_t errlen);

void td_rview_stats(const struct td_rview *rv, struct td_rview_stats *out);

/* Updates the cache limit, the no_hydrate list and stream_direct_io (on
 * reload; opens after it see the change). */
int td_rview_set_limits(struct td_rview *rv, uint64_t cache_limit_bytes,
                        const char *const *no_hydrate, size_t n_no_hydrate, bool stream_direct_io);

/* Evicts cached copies until the cache is under its limit (also run after
 * each hydration, when a hydration request finds its copy in place, and every
 * few seconds: copies the mover makes count too). */
void td_rview_trim(struct td_rview *rv);

/* Hydrates the file `id` (if it is not in the cache yet) and calls done with
 * 0 once its copy is in place, or -errno (a file larger than the cache:
 * -EFBIG). Returns 0, or -ESHUTDOWN (closing), -EINVAL (not an id, or no
 * done), -ENOMEM or -EAGAIN, and then done is never called. */
int td_rview_hydrate(struct td_rview *rv, const char *id, void (*done)(void *data, int status),
                     void *data);

/* Fails every pending request with EIO, unmounts, and calls close_cb(data)
 * once everything is released (always, and never before it returns); rv is
 * freed then. Call it once. */
void td_rview_close(struct td_rview *rv, void (*close_cb)(void *data), void *data);
