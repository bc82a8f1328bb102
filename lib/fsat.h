/*
 * fsat — the one symlink-safe way to reach a directory beneath a directory fd.
 *
 * DESIGN invariant 3: tierd runs as root in trees that users control, so every
 * path below a root is resolved beneath that root's fd, never following a
 * symlink at any component and never leaving the root. These calls are the
 * only place that walks a relative path; callers then work on the last name
 * by name (openat, unlinkat, renameat, ... with O_NOFOLLOW or
 * AT_SYMLINK_NOFOLLOW) in the directory fd they get back.
 *
 * Resolution uses openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), one PATH_MAX slice at a time. Where openat2 is
 * missing (ENOSYS) or filtered (EPERM from seccomp), it falls back to one
 * openat(O_NOFOLLOW | O_DIRECTORY) per component, which is as safe, only
 * slower. Creating directories always goes one component at a time.
 *
 * A relative path `rel` of `len` bytes (it need not be NUL-terminated) is a
 * sequence of names separated by single '/'. Refused, before any system call:
 *   -EINVAL        an absolute path, an empty component ("a//b", a leading or
 *                  trailing '/'), a "." or ".." component, an embedded NUL;
 *   -ENAMETOOLONG  len > TD_FSAT_PATH_MAX, or a component longer than
 *                  NAME_MAX (the depth is therefore at most
 *                  TD_FSAT_DEPTH_MAX components).
 * Met during the walk:
 *   -ELOOP         a component is a symlink (also when one is swapped in
 *                  while the walk is in progress);
 *   -ENOTDIR       a component is something else that is not a directory;
 *   -EXDEV         with TD_FSAT_NO_XDEV, a component is a mount point (the
 *                  fallback compares st_dev), or openat2 saw an escape;
 *   anything else  the -errno of the failing openat/openat2/mkdirat/fsync.
 * An empty path (len 0) names dirfd itself. Every fd returned is a new open
 * file description (not a dup), O_CLOEXEC, which the caller closes. Nothing
 * outside dirfd's tree is ever opened, created or modified, whatever the
 * tree's content or concurrent changes to it.
 *
 * Threads: any; the calls keep no state.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* The longest relative path, in bytes. */
#define TD_FSAT_PATH_MAX (64 * 1024)
/* The deepest relative path: every component takes a name byte and a '/'. */
#define TD_FSAT_DEPTH_MAX (TD_FSAT_PATH_MAX / 2)

/* Flags for the calls below. */
#define TD_FSAT_NO_XDEV 0x1u /* do not cross into another mount: -EXDEV */
#define TD_FSAT_MKDIR   0x2u /* td_fsat_open_parent only: create missing directories (0700) */

/* Opens the directory `rel` beneath dirfd. Returns an fd or -errno. */
int td_fsat_open_dir(int dirfd, const char *rel, size_t len, unsigned flags);

/*
 * Opens the directory that holds the last component of `rel` (len > 0) beneath
 * dirfd, for by-name operations on that component; the last component must be
 * a valid name too, though it need not exist. *name points at it inside rel
 * (so it is NUL-terminated when rel is). With TD_FSAT_MKDIR, missing
 * directories are created as by td_fsat_mkdir_p with mode 0700. Returns an fd
 * or -errno; *name is set only on success.
 */
int td_fsat_open_parent(int dirfd, const char *rel, size_t len, unsigned flags, const char **name);

/*
 * mkdir -p beneath dirfd: opens `rel`, creating each missing directory with
 * `mode` (before the umask). Each directory created, or found just created by
 * someone else, is made durable (its parent fsynced) before anything is made
 * inside it. An existing symlink at any component is refused (-ELOOP), never
 * followed or replaced. Returns an fd on the last directory, or -errno; the
 * directories made before a failure stay.
 */
int td_fsat_mkdir_p(int dirfd, const char *rel, size_t len, mode_t mode, unsigned flags);
