/*
 * ns — the dynamic-link namespace that tierd owns:
 *
 *   <state_dir>/links/<aa>/<id>/<name>   a symlink, rebound atomically to wherever
 *                                        the data is now:
 *   <cache_dir>/copies/<aa>/<id>/<id>    the local copy (hot), or
 *   <run_dir>/remote/<aa>/<id>/<name>    the FUSE remote view (cold).
 *
 * <id> is 32 hex characters (128 random bits), <aa> its first two, <name> the
 * original basename (any bytes but '/' and NUL). The shared directories
 * (links/, links/<aa>/, copies/, copies/<aa>/) are 0711 root: anyone may pass
 * through them to a name they know, nobody but root may list them. Knowing a
 * name is not enough, though (an id is not a capability): each file's own
 * directory, links/<aa>/<id>/ and copies/<aa>/<id>/, carries the fold of its
 * original path's ancestors (access.h: owner, group and other, search bits
 * only; the owner a named entry of the directory's ACL), so only those who
 * could reach the original pass; the remote
 * view shows its <aa>/<id>/ with the links directory's owner and mode. Until
 * it is folded a file's directory is 0700 root: nobody but root passes.
 * (Before the fold, copies lived at <cache_dir>/objects/<aa>/<id>, with no
 * directory of their own: td_ns_cache_migrate moves them.)
 *
 * Blocking (filesystem calls): thread pool only. No state; any thread.
 */
#pragma once

#include "access.h"

#include <stdbool.h>
#include <stddef.h>

#define TD_NS_DIR_MODE    0711 /* the shared directories */
#define TD_NS_ID_DIR_MODE 0700 /* a file's own directory until it is folded */

/* Path builders. Return 0 or -ENAMETOOLONG (n too small) / -EINVAL (bad id or
 * name: the name must be 1..255 bytes without '/', and not "." or ".."). */
int td_ns_link_path(char *out, size_t n, const char *state_dir, const char *id, const char *name,
                    size_t name_len);
int td_ns_remote_path(char *out, size_t n, const char *run_dir, const char *id, const char *name,
                      size_t name_len);
int td_ns_cache_path(char *out, size_t n, const char *cache_dir, const char *id);
/* The cache copy's directory, <cache_dir>/copies/<aa>/<id>. */
int td_ns_cache_dir(char *out, size_t n, const char *cache_dir, const char *id);
/* The object key on the target: "<aa>/<id>", and the manifest's "<aa>/<id>.json". */
int td_ns_object_key(char *out, size_t n, const char *id, bool manifest);

bool td_ns_valid_id(const char *id);
bool td_ns_valid_name(const char *name, size_t len);

/* Creates `dir` and its missing parents with `mode` (existing ones are left
 * as they are). Returns 0 or -errno. */
int td_ns_mkdirs(const char *dir, unsigned mode);

/*
 * Gives the file's own directories (links/<aa>/<id>/, created if missing, and
 * copies/<aa>/<id>/ if it exists) the fold *a. They stay root's (the owner
 * could otherwise chmod them and write in them): group a->gid, and the ACL
 * user::--- user:<a->uid>:<owner bit> group::<group bit> mask::--x
 * other::<other bit>. Where the filesystem has no ACLs, or a->uid is root,
 * they are a->uid:a->gid with mode a->mode. Returns 0 or -errno.
 */
int td_ns_fold(const char *state_dir, const char *cache_dir, const char *id,
               const struct td_access_fold *a);
/* The same for a file whose links directory is there already: a missing one
 * (the file went home meanwhile) is left missing, and that is success. */
int td_ns_refold(const char *state_dir, const char *cache_dir, const char *id,
                 const struct td_access_fold *a);

/* The fold links/<aa>/<id>/ carries now (td_ns_fold's; a directory of an
 * older tierd reads as its owner and mode). Returns 0 or -errno (-ENOENT). */
int td_ns_fold_get(const char *state_dir, const char *id, struct td_access_fold *out);
/* The same for any directory (a copy's). */
int td_ns_fold_of(const char *dir, struct td_access_fold *out);

/*
 * Creates copies/<aa>/<id>/ (and its shared parents) for a copy about to be
 * written, with the fold of links/<aa>/<id>/ (0700 root if that is missing),
 * so the copy is never reachable by more users than the dynamic link is.
 * Returns 0 or -errno.
 */
int td_ns_cache_mkdir(const char *state_dir, const char *cache_dir, const char *id);

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
