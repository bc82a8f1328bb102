/*
 * life — what `tierctl verify` and `tierctl gc` (verify.c, gc.c) share: a
 * private event loop with its own instances of the configured targets, a
 * catalog handle, synchronous target calls, and their event stream.
 *
 * A td_life belongs to the one thread that runs a verify or a gc (the daemon
 * starts a thread of its own for it, so the main loop never waits). Its
 * targets are separate instances built from the same configuration: their
 * bandwidth_limit and connection caps apply to this work on its own.
 */
#pragma once

#include "catalog.h"
#include "config.h"
#include "target.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a lifecycle command's events go (one JSON object per event, stolen),
 * and how it learns it should stop. */
struct td_life_sink {
	void *ctx;
	void (*on_event)(void *ctx, json_t *ev); /* may be NULL; the callee owns ev */
	atomic_bool *cancel;                     /* may be NULL */
};

struct td_life;

/* Opens the catalog (never creating it) and a loop. -errno with a sentence in
 * err: -EBUSY for a catalog locked by another process. */
int td_life_open(struct td_life **out, const struct td_config *conf, const char *catalog_path,
                 char *err, size_t errlen);
/* Closes the targets (running the loop until they are) and the catalog. NULL ok. */
void td_life_close(struct td_life *l);
struct td_catalog *td_life_catalog(struct td_life *l);
/* The configured target `name`, created on first use; NULL with err filled. */
struct td_target *td_life_target(struct td_life *l, const char *name, char *err, size_t errlen);

/* Synchronous target calls on the private loop. Return 0 or -errno, with the
 * target's detail in *terr. */
int td_life_head(struct td_life *l, struct td_target *t, const char *key,
                 struct td_object_info *info, struct td_target_error *terr);
int td_life_delete(struct td_life *l, struct td_target *t, const char *key,
                   struct td_target_error *terr);
/* The whole object into fd, hashed as it arrives against sha256 (-EIO on a
 * mismatch): the hydration's verifying read. */
int td_life_read_verify(struct td_life *l, struct td_target *t, const char *key, int fd,
                        const char *sha256, struct td_target_error *terr);
int td_life_put_fd(struct td_life *l, struct td_target *t, const char *key, int fd, uint64_t size,
                   struct td_put_result *res, struct td_target_error *terr);
int td_life_list(struct td_life *l, struct td_target *t, const char *prefix,
                 td_target_list_each each, void *data, struct td_target_error *terr);
int td_life_stale_uploads(struct td_life *l, struct td_target *t, int64_t older_than_s, bool abort,
                          unsigned *found, unsigned *aborted, struct td_target_error *terr);

/* Copies src into out (n bytes), truncating; a sentence never needs its tail. */
void td_life_copy(char *out, size_t n, const char *src);
/* Sends ev to the sink (or frees it). */
void td_life_emit(const struct td_life_sink *sink, json_t *ev);
bool td_life_cancelled(const struct td_life_sink *sink);
/* RFC 3339 UTC of ns since the epoch ("" for 0). */
void td_life_time(char *out, size_t n, int64_t ns);
/* One target error as a sentence: "NAME: message (HTTP 503)". */
void td_life_target_msg(char *out, size_t n, int r, const struct td_target_error *e);
