/*
 * catalog_life — the catalog's record of the admin's lifecycle commands:
 * named values that `tierctl verify` and `tierctl gc` keep between runs (their
 * last reports, verify's checkpoint), and gc's journal of objects being
 * deleted, so a crash between the row's removal and the object's is finished
 * by the next gc instead of leaving an object nobody knows about.
 *
 * Same rules as catalog.h: every call blocks (thread pool or a thread of its
 * own), one handle per thread, errors are -errno with detail in `err`.
 */
#pragma once

#include "catalog.h"

#include <stdint.h>

#define TD_CATALOG_LIFE_VALUE_MAX (1u << 20) /* a stored value's cap */

/* Stores `value` (text, at most TD_CATALOG_LIFE_VALUE_MAX bytes) under `name`. */
int td_catalog_life_put(struct td_catalog *cat, const char *name, const char *value,
                        struct td_catalog_error *err);
/* The value under `name` into *out (malloc'd; the caller frees) and when it was
 * stored into *updated_ns (may be NULL). Returns 0 or -ENOENT. */
int td_catalog_life_get(char **out, int64_t *updated_ns, struct td_catalog *cat, const char *name,
                        struct td_catalog_error *err);
int td_catalog_life_del(struct td_catalog *cat, const char *name, struct td_catalog_error *err);

/* An object gc has taken out of the catalog and not yet deleted. */
struct td_catalog_gc_item {
	char id[TD_CATALOG_ID_HEX];
	const char *target, *object_key; /* NULL when the row had none */
	const char *path;
	size_t path_len;
	int64_t claimed_ns;
};

/*
 * Moves row e->id into the journal, in one transaction, only if it is still as
 * e says it was (same updated_ns and link_seen_ns), is tiered without a cache
 * copy or local (recalled), and is not pinned. Returns 0, or -ESTALE when the
 * row changed or no longer qualifies (nothing is changed then), -ENOENT.
 */
int td_catalog_gc_claim(struct td_catalog *cat, const struct td_catalog_entry *e,
                        struct td_catalog_error *err);
/* Calls cb for each journal entry (at most `limit`, 0: all), oldest first; cb
 * returns nonzero to stop. The entry is valid during the call only. */
int td_catalog_gc_foreach(struct td_catalog *cat, unsigned limit,
                          int (*cb)(void *data, const struct td_catalog_gc_item *it), void *data,
                          struct td_catalog_error *err);
/* The journal entry's object is gone: drops it. Missing is success. */
int td_catalog_gc_done(struct td_catalog *cat, const char *id, struct td_catalog_error *err);
/* 1 when `id` is in the journal, 0 when not, or -errno. */
int td_catalog_gc_pending(struct td_catalog *cat, const char *id, struct td_catalog_error *err);
