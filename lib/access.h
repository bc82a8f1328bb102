/*
 * access — who could reach a tiered file at its original path, folded into
 * one directory's owner, group and mode (DESIGN invariant 7: an id is not a
 * capability).
 *
 * A user reaches /a/b/f only with search permission on /, /a and /a/b. tierd's
 * own paths to the bytes (the dynamic link's directory links/<aa>/<id>/, the
 * cache copy's directory, the remote view's <aa>/<id>/) carry that fold, so
 * whoever knows an id gets no further than the original's ancestors let them.
 * The fold is conservative: a class gets the search bit only if every member
 * of it could pass every ancestor, by mode and by POSIX ACL; when unsure, deny.
 *
 *   owner (the file's uid U)   x if U itself passes every ancestor (with U's
 *                              groups as the group database says now);
 *   group (G, see below)       x if every member of G passes every ancestor;
 *   other                      x if everyone passes every ancestor.
 *
 * G is the file's gid, or, if its members could not pass, the gid of the
 * deepest ancestor whose members all could (a project directory root:proj 0750).
 * Root passes everything, as the kernel lets it.
 *
 * Blocking (opens, fstat, getxattr, the group database): thread pool only.
 * No state; any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The folded directory: chown uid:gid, chmod mode (a subset of 0111). */
struct td_access_fold {
	uint32_t uid, gid, mode;
};

/* An ACL entry as the kernel stores it (system.posix_acl_access). */
enum {
	TD_ACL_USER_OBJ = 1,
	TD_ACL_USER = 2,
	TD_ACL_GROUP_OBJ = 4,
	TD_ACL_GROUP = 8,
	TD_ACL_MASK = 0x10,
	TD_ACL_OTHER = 0x20
};
#define TD_ACCESS_ACL_MAX 64 /* entries kept; a longer ACL denies (unsure) */

struct td_access_dir {
	uint32_t uid, gid, mode; /* from fstat */
	unsigned n_acl;          /* 0: no extended ACL (the mode says it all) */
	bool acl_unknown;        /* unreadable or too long: nobody but root passes */
	struct {
		uint16_t tag, perm;
		uint32_t id;
	} acl[TD_ACCESS_ACL_MAX];
};

/* The fold of ancestors dirs[0..n) (from "/" down to the file's parent) for a
 * file of uid:gid whose owner is in groups ugroups[0..n_ug) (its primary
 * group included). Pure: no system calls. */
void td_access_fold_dirs(struct td_access_fold *out, const struct td_access_dir *dirs, size_t n,
                         uint32_t uid, uint32_t gid, const uint32_t *ugroups, size_t n_ug);

/* Parses a raw system.posix_acl_access value into d. Returns 0 or -EINVAL. */
int td_access_parse_acl(struct td_access_dir *d, const void *buf, size_t len);

/*
 * The fold for the file at absolute `path` (its ancestors are walked from "/",
 * refusing symlinks), owned by uid:gid. Returns 0, or -ENOENT when an
 * ancestor cannot be walked (missing, a symlink, "." or "..", too deep): out
 * is then root:root 0, nobody but root passes, and the caller may prefer the
 * fold it had (the original's directory was moved away or removed since);
 * -EINVAL (not an absolute path).
 */
int td_access_fold_path(struct td_access_fold *out, const char *path, size_t path_len, uint32_t uid,
                        uint32_t gid);

/*
 * For a pass over many files (a policy run): remembers each uid's groups and
 * the ancestors of the last parent directory walked, so files side by side
 * cost one walk, and a user's groups one lookup of the user database, per
 * pass. A change made during the pass may be missed until the next one.
 * One thread at a time. td_access_cache_new returns NULL on ENOMEM; free
 * accepts NULL.
 */
struct td_access_cache;
struct td_access_cache *td_access_cache_new(void);
void td_access_cache_free(struct td_access_cache *c);
/* td_access_fold_path through c (NULL: no cache). */
int td_access_fold_path_cached(struct td_access_fold *out, struct td_access_cache *c,
                               const char *path, size_t path_len, uint32_t uid, uint32_t gid);
