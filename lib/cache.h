/*
 * cache — the local cache copies seen from the daemon: how large the cache may
 * grow, and which copies were written to behind tierd's back.
 *
 * A copy is "dirty" when it was written after its link was rebound to it: the
 * kernel follows the link and tierd is not in the path, so the only way to
 * know is to compare each copy with its catalog row (size, mtime, and ctime:
 * an owner may put the mtime back, no user can set the ctime; see
 * td_cache_copy_unchanged). The scan
 * reads the catalog in pages on libuv's thread pool, under the caller's lock,
 * and reports at most TD_CACHE_DIRTY_BATCH ids on the loop; the caller recalls
 * them. td_cache_limit() may block on statvfs of the cache directory.
 */
#pragma once

#include "catalog.h"
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#define TD_CACHE_DIRTY_BATCH 64

/* The cache's size limit in bytes: the configured bytes, or the configured
 * percentage of a filesystem of fs_bytes bytes. */
uint64_t td_cache_limit_of(const struct td_size_or_pct *size, uint64_t fs_bytes);
/* The same for c->cache_size against c->cache_dir's filesystem (0 when it
 * cannot be measured). */
uint64_t td_cache_limit(const struct td_config *c);

/* The bytes the cache holds by the catalog's count: clean copies and dirty
 * ones (a dirty copy is on the cache's disk until its recall ends). */
uint64_t td_cache_used_bytes(const struct td_catalog_stats *cs);

/* Whether the cache copy *st (its stat) is still the copy tierd bound for row
 * e: the row's size and mtime, and a ctime that moved for nothing but tierd's
 * own changes. A copy the remote view hydrated has its ctime after tierd's
 * last change in e->ctime_ns (later than e->tiered_ns: the original's ctime is
 * earlier); for another (the mover's keep_cached copy, or one bound before
 * that was recorded) the ctime must not be later than e->cache_atime_ns, which
 * was written after tierd's last change of the copy. Any metadata change (a
 * chmod, a utime) counts: the copy goes back to primary storage, which is
 * never wrong. */
bool td_cache_copy_unchanged(const struct td_catalog_entry *e, const struct stat *st);

/* Called on the loop with up to TD_CACHE_DIRTY_BATCH ids of dirty copies. */
typedef void (*td_cache_dirty_cb)(void *data, const char (*ids)[TD_CATALOG_ID_HEX], unsigned n);

/* Starts a scan of cat (used under *lock) for dirty copies below cache_dir
 * (copied). Returns 0 (cb is called once), or -errno (it is not). */
int td_cache_dirty_scan(uv_loop_t *loop, struct td_catalog *cat, uv_mutex_t *lock,
                        const char *cache_dir, td_cache_dirty_cb cb, void *data);

/*
 * Moves the copies an older tierd kept at <cache_dir>/objects/<aa>/<id> (no
 * directory of their own, so anyone who knew the id could reach them) into
 * <cache_dir>/copies/<aa>/<id>/<id>, under the access fold of their original
 * (ns.h), and rebinds their dynamic links. A second name for the inode, the
 * dynamic link rebound, then the old name goes: a reader always finds the
 * copy, and a crash at any point is finished by the next call. A copy that
 * was unchanged still is (its row learns the ctime the move gave it); one
 * with no row is left where it is. objects/ then becomes 0700, so nothing
 * left there is reachable. For start-up, before the remote view and the
 * mover run: blocking, and it takes cat's rows as they are. *moved counts the
 * copies moved. Returns 0 or -errno.
 */
int td_cache_migrate(struct td_catalog *cat, const char *state_dir, const char *cache_dir,
                     unsigned *moved);

/*
 * Rows the catalog calls tiered whose dynamic link leads to their cache copy:
 * tierd stopped (a crash) between binding a finished hydration and recording
 * it. Such a copy may have been written through the link since. Each becomes
 * cached when the copy's bytes are still the object's (SHA-256), else dirty,
 * so the dirty scan sends the written file back to primary storage. For
 * start-up, with the same rules as td_cache_migrate. *fixed counts the rows
 * changed. Returns 0 or -errno.
 */
int td_cache_reconcile(struct td_catalog *cat, const char *state_dir, const char *cache_dir,
                       unsigned *fixed);
