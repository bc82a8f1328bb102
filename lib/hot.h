/*
 * hot — tiered files that turned hot go back home (policy keys
 * hot_recall_reads and hot_recall_window).
 *
 * Reads of a cached file go straight to its cache copy through the links:
 * tierd is not in their path and must not be. What it can see is the copy's
 * atime, which the kernel (relatime, the default) moves at most once a day for
 * reads, the first time the file is read after a day or after a change. So one
 * read of the copy's atime per scan tells "read again on another day" with no
 * cost to readers, and that count is what the policy asks for: a file read on
 * hot_recall_reads days within hot_recall_window is recalled to primary
 * storage, where its readers pay nothing at all; a file read once is not.
 *
 * The count lives with the copy, in its trusted.tierd.hot xattr (root only,
 * never copied anywhere): "<first read ns> <last atime ns> <reads>". A copy
 * first seen records its atime without counting it. The scan reads the
 * catalog in pages on libuv's thread pool under the caller's lock, stats and
 * updates copies outside it, and reports the ids to recall on the loop.
 */
#pragma once

#include "catalog.h"
#include "config.h"

#include <stdint.h>
#include <uv.h>

#define TD_HOT_BATCH 64
#define TD_HOT_XATTR "trusted.tierd.hot"

/* Up to TD_HOT_BATCH ids of copies that qualify, and how many copies were looked at. */
typedef void (*td_hot_cb)(void *data, const char (*ids)[TD_CATALOG_ID_HEX], unsigned n,
                          uint64_t looked);

/* Whether any policy of c asks for hot recalls. */
bool td_hot_enabled(const struct td_config *c);

/*
 * One step of the count for a copy whose atime is now atime_ns, given its
 * record (NULL: none yet). Writes the new record to rec (TD_HOT_REC_MAX
 * bytes) and returns true when the file qualifies under (reads, window_ns).
 */
#define TD_HOT_REC_MAX 64
bool td_hot_count(const char *old_rec, int64_t atime_ns, unsigned reads, int64_t window_ns,
                  char rec[TD_HOT_REC_MAX]);

/* Starts a scan of the cached rows of every policy of c with a hot rule.
 * c's policies are copied. Returns 0 or -errno (no callback then). */
int td_hot_scan(uv_loop_t *loop, struct td_catalog *cat, uv_mutex_t *lock, const char *cache_dir,
                const struct td_config *c, td_hot_cb cb, void *data);
