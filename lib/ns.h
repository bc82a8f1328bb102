/*
 * ns — the dynamic-link namespace that tierd owns:
 *
 *   <state_dir>/links/<aa>/<id>/<name>   a symlink, rebound atomically to wherever
 *                                        the data is now:
 *   <cache_dir>/objects/<aa>/<id>        the local copy (hot), or
 *   <run_dir>/remote/<aa>/<id>/<name>    the FUSE remote view (cold).
 *
 * <id> is 32 hex characters (128 random bits), <aa> its first two, <name> the
 * original basename (any bytes but '/' and NUL). tierd's directories are 0711:
 * anyone may pass through them to a name they know, nobody but root may list
 * them, so a tiered file is no easier to reach than the original was.
 *
 * Blocking (filesystem calls): thread pool only. No state; any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define TD_NS_DIR_MODE 0711

/* Path builders. Return 0 or -ENAMETOOLONG (n too small) / -EINVAL (bad id or
 * name: the name must be 1..255 bytes without '/', and not "." or ".."). */
int td_ns_link_path(char *out, size_t n, const char *state_dir, const char *id, const char *name,
                    size_t name_len);
int td_ns_remote_path(char *out, size_t n, const char *run_dir, const char *id, const char *name,
                      size_t name_len);
int td_ns_cache_path(char *out, size_t n, const char *cache_dir, const char *id);
/* The object key on the target: "<aa>/<id>", and the manifest's "<aa>/<id>.json". */
int td_ns_object_key(char *out, size_t n, const char *id, bool manifest);

bool td_ns_valid_id(const char *id);
bool td_ns_valid_name(const char *name, size_t len);

/* Creates `dir` and its missing parents with `mode` (existing ones are left
 * as they are). Returns 0 or -errno. */
int td_ns_mkdirs(const char *dir, unsigned mode);

/*
 * Points the dynamic link of `id` at `dest`: creates links/<aa>/<id>/ if needed
 * and replaces the link atomically (a new symlink under a temporary name, then
 * rename over the old one), so a reader always finds either the old or the new
 * destination. Returns 0 or -errno.
 */
int td_ns_bind(const char *state_dir, const char *id, const char *name, size_t name_len,
               const char *dest);

/* Reads where the dynamic link of `id` points now. Returns its length or -errno. */
int td_ns_read(const char *state_dir, const char *id, const char *name, size_t name_len, char *out,
               size_t n);

/* Removes links/<aa>/<id>/ and everything in it (the link, stray temporaries).
 * Missing is success. Returns 0 or -errno. */
int td_ns_remove(const char *state_dir, const char *id);

/*
 * Is `target` (a symlink's contents) a link into this namespace? On success
 * writes the id (33 bytes with NUL) and returns true.
 */
bool td_ns_parse_link(const char *state_dir, const char *target, size_t len, char id_out[33]);
