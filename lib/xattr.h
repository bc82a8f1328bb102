/*
 * xattr — a file's extended attributes (its POSIX ACL, system.posix_acl_access,
 * among them) as one self-contained blob, so they survive tiering: read from
 * the original at migration, kept in the catalog row, applied to every cache
 * copy and to the file a recall puts back, and served by the remote view.
 *
 * The blob is a sequence of records, each the attribute's name with its NUL,
 * its value's length (4 bytes, little-endian) and the value's bytes. Values
 * are bytes: binary ones round-trip exactly. A blob is at most TD_XATTR_MAX
 * bytes; a file whose attributes do not fit is not tiered.
 *
 * Threads: any; every call that takes an fd blocks on the filesystem, so run
 * it on the thread pool. Nothing here logs or keeps state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TD_XATTR_MAX     (64u * 1024) /* encoded bytes kept per file */
#define TD_XATTR_ACL     "system.posix_acl_access"
#define TD_XATTR_NAMELEN 255 /* XATTR_NAME_MAX */
/* Names tierd keeps on its cache copies for itself (lib/hot): never read into
 * a blob, so they never reach a manifest, the view or a recalled file. */
#define TD_XATTR_OWN "trusted.tierd."

/* A blob: buf is malloc'd (NULL when the file has none), len its bytes. */
struct td_xattrs {
	unsigned char *buf;
	size_t len;
};

/*
 * Reads every extended attribute of fd that this process may read (all of
 * them as root: user.*, trusted.* but TD_XATTR_OWN, security.*,
 * system.posix_acl_access) into
 * *out. Returns 0 (out->len 0 when there are none), -E2BIG when they need more
 * than TD_XATTR_MAX bytes (*need, when not NULL, gets how many at least), or
 * another -errno. On failure *out is untouched.
 */
int td_xattr_read(struct td_xattrs *out, int fd, size_t *need);
void td_xattr_free(struct td_xattrs *x);

/* True when blob is well formed (a catalog row's, say). NULL, 0 is. */
bool td_xattr_valid(const void *blob, size_t len);
/* How many attributes the blob holds (0 if malformed). */
unsigned td_xattr_count(const void *blob, size_t len);

/*
 * Sets every attribute of blob on fd, the ACL first: applied after the owner
 * and before the mode (fchown clears security.capability; the ACL sets the
 * mode's permission bits itself, so the file is never more open than the
 * original between the two). Returns 0 or the first -errno; *failed, when not
 * NULL, gets the name of the attribute that could not be set (pointing into
 * blob), else NULL. -ENOTSUP means the filesystem cannot hold it.
 */
int td_xattr_apply(int fd, const void *blob, size_t len, const char **failed);

/*
 * getxattr(2) on a blob: the value of `name`. With size 0 returns its length;
 * else copies it into buf and returns its length, -ERANGE when size is too
 * small. -ENODATA when absent.
 */
ssize_t td_xattr_get(const void *blob, size_t len, const char *name, void *buf, size_t size);
/* listxattr(2) on a blob: the names, each with its NUL; size 0 asks the length. */
ssize_t td_xattr_list(const void *blob, size_t len, char *buf, size_t size);

/*
 * The manifest's form (DESIGN.md, "Object layout"): a JSON object of name to
 * base64 value. td_xattr_to_json returns a new object, NULL on ENOMEM;
 * td_xattr_from_json (for a rebuild from the bucket) fills *out, or returns
 * -EINVAL for a value that is not a base64 string, -E2BIG past TD_XATTR_MAX.
 */
struct json_t;
struct json_t *td_xattr_to_json(const void *blob, size_t len);
int td_xattr_from_json(struct td_xattrs *out, const struct json_t *obj);

/*
 * Iterates: *pos starts at 0; each call gives the next record's name and value
 * and returns 1, 0 at the end, -EINVAL for a malformed blob.
 */
int td_xattr_next(const void *blob, size_t len, size_t *pos, const char **name, const void **value,
                  size_t *value_len);
