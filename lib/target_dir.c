/*
 * target_dir — the target interface on a plain directory (local disk or NFS).
 *
 * Threads: the public entry points, the completion callbacks and all request
 * bookkeeping run on the loop thread; the blocking file I/O of each request
 * runs in one uv_queue_work() item on libuv's thread pool, which touches only
 * its own request (plus the read-only root fd).
 *
 * Safety: the target root is opened once; every later open is relative to a
 * directory fd, through td_fsat_* (no symlink followed at any component) and
 * then by name with O_NOFOLLOW, so a symlink planted anywhere inside the
 * target can never redirect a write (or read) outside it.
 * Keys with empty, "." or ".." components are refused, and so are names in
 * our reserved namespace (".tierd-tmp.*" temp files, ".tierd-meta.*" sidecars).
 *
 * Durability: a put writes a unique temp file beside the object, hashing
 * SHA-256 in the same pass, stores the metadata on it (xattrs user.tierd.*, or
 * a sidecar file on filesystems without user xattrs), fsyncs it, renames it
 * into place and fsyncs the directory. Nothing half-written is ever visible
 * under the object's name. Temp names carry a random id of this target
 * instance (".tierd-tmp.<run>.<random>"): cleanup_stale removes every temp
 * file of other runs, which at start-up is all of them. (A second process
 * writing to the same directory at that moment, e.g. tierctl check-target,
 * may see its put fail; it never loses data.)
 *
 * Key space: as on S3, a key is a path of names; directories exist only to
 * hold keys. A delete removes the directories it leaves empty (below the
 * prefix), and a put replaces an empty directory that is in its way. A key
 * component longer than NAME_MAX fails with -ENAMETOOLONG.
 *
 * ETag: the SHA-256 of the object (stored at put), or "<size>-<mtime>" in hex
 * for files that did not come through put. put_buf does not copy the buffer:
 * it must stay valid until the callback.
 *
 * Bounds: at most max_connections (default DIR_RUNNING_DEFAULT) work items run
 * at once; up to DIR_QUEUE_MAX more wait in a FIFO; beyond that a call fails
 * with -EAGAIN. Copies use one DIR_CHUNK buffer per running item; listing
 * works in pages of DIR_LIST_PAGE keys.
 */
#include "fsat.h"
#include "target_impl.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define DIR_RUNNING_DEFAULT 4
#define DIR_RUNNING_MAX     64
#define DIR_QUEUE_MAX       4096
#define DIR_CHUNK           (1u << 20)
#define DIR_LIST_PAGE       1000
#define DIR_DIR_ENTRIES_MAX (1u << 20) /* names read from one directory */
#define DIR_TMP_PREFIX      ".tierd-tmp."
#define DIR_META_PREFIX     ".tierd-meta."
#define DIR_XATTR_SHA       "user.tierd.sha256"
#define DIR_XATTR_CTYPE     "user.tierd.content-type"
#define DIR_XATTR_META      "user.tierd.m."
#define DIR_SIDECAR_MAX     (64u << 10)
#define DIR_WALK_RETRIES    8

/* The conformance test builds this file once more with TD_DIR_FORCE_SIDECAR=1,
 * to run the sidecar path on a filesystem that has xattrs. */
#ifndef TD_DIR_FORCE_SIDECAR
#define TD_DIR_FORCE_SIDECAR 0
#endif

enum dir_op {
	OP_PUT,
	OP_GET_RANGE,
	OP_GET_FD,
	OP_HEAD,
	OP_DELETE,
	OP_LIST,
	OP_CLEANUP,
	OP_CLOSE, /* internal: finishes td_target_close() off the caller's stack */
};

enum dir_state {
	ST_PENDING, /* waiting in the FIFO for a running slot */
	ST_RUNNING, /* submitted, holding a slot */
	ST_NOSLOT,  /* submitted without a slot (cancelled while pending, or OP_CLOSE) */
};

struct list_entry {
	char *key; /* full relative path, including the target prefix */
	uint64_t size_bytes;
	int64_t mtime_s;
	char etag[TD_SHA256_HEX];
};

struct dir_target;

struct dir_req {
	struct td_target_req base; /* first */
	struct dir_target *t;
	uv_work_t work;
	enum dir_op op;
	enum dir_state state;
	atomic_int cancelled;
	struct dir_req *prev, *next; /* every live request */
	struct dir_req *qnext;       /* the pending FIFO */
	td_target_cb cb;
	void *data;
	int status;
	struct td_target_error err;
	char *key; /* full relative path (prefix + key) */

	/* put */
	int src_fd; /* -1: from src_buf */
	const void *src_buf;
	uint64_t size_bytes;
	char *content_type;
	struct td_target_kv *meta; /* one allocation with the strings */
	size_t n_meta;
	struct td_put_result *res;

	/* get_range / get_fd */
	uint64_t off, len;
	struct iovec dst_iov[TD_TARGET_IOV_MAX];
	unsigned dst_iovcnt;
	size_t *got;
	int dst_fd;
	uint64_t dst_off;
	bool verify;
	char expect_hex[TD_SHA256_HEX];
	char expect_etag[132]; /* get_range: "" or the ETag the object must have */

	/* head */
	struct td_object_info *info;

	/* list */
	td_target_list_each each;
	char *list_prefix; /* full (prefix + relative) */
	char *after;       /* last key delivered, full; NULL before the first page */
	struct list_entry *page;
	size_t n_page;
	bool page_full;

	/* cleanup_stale */
	unsigned *n_cleaned;
	unsigned cleaned;

	/* close */
	void (*close_cb)(void *data);
	void *close_data;
};

struct dir_target {
	struct td_target base; /* first */
	int root_fd;
	char *prefix; /* "" or ends in '/' */
	char run_id[17];
	unsigned running_max;
	unsigned n_running;
	size_t n_pending;
	struct dir_req *q_head, *q_tail;
	struct dir_req *reqs; /* every live request */
	bool closing;
	struct dir_req *close_req; /* allocated up front: closing cannot fail */
};

/* ---- keys and paths ---- */

static bool is_reserved_name(const char *s, size_t n)
{
	size_t lt = strlen(DIR_TMP_PREFIX), lm = strlen(DIR_META_PREFIX);

	return (n >= lt && memcmp(s, DIR_TMP_PREFIX, lt) == 0) ||
	       (n >= lm && memcmp(s, DIR_META_PREFIX, lm) == 0);
}

/* Checks the components of `path` up to `end`: -EINVAL for empty, ".", ".." or
 * reserved names, -ENAMETOOLONG for one longer than NAME_MAX. */
static int check_components(const char *path, const char *end)
{
	const char *p = path;

	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		if (is_reserved_name(p, n))
			return -EINVAL;
		if (!slash)
			return 0;
		p = slash + 1;
		if (p == end)
			return -EINVAL; /* trailing '/' */
	}
	return -EINVAL;
}

static int full_key(struct dir_target *t, const char *key, char **out)
{
	size_t lp = strlen(t->prefix), lk = strlen(key);
	char *s;
	int r;

	if (lk == 0)
		return -EINVAL;
	s = malloc(lp + lk + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, t->prefix, lp);
	memcpy(s + lp, key, lk + 1);
	r = check_components(s, s + lp + lk);
	if (r < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

/*
 * Opens the directory that holds the last component of `path` (a checked key)
 * beneath the root, creating missing directories (0700) when `create`.
 * Returns the fd, or -errno. *name points at the last component inside
 * `path`. A symlink in the way reads as -ENOTDIR, as it always has here.
 */
static int open_parent(int root_fd, const char *path, bool create, const char **name)
{
	int fd = td_fsat_open_parent(root_fd, path, strlen(path), create ? TD_FSAT_MKDIR : 0, name);

	return fd == -ELOOP ? -ENOTDIR : fd;
}

static bool req_cancelled(struct dir_req *r)
{
	return atomic_load_explicit(&r->cancelled, memory_order_relaxed) != 0;
}

static int fail(struct dir_req *r, int status, const char *what)
{
	td_target_error_set(&r->err, "%s %s: %s", what, r->key ? r->key : "", strerror(-status));
	return status;
}

/* ---- metadata: xattrs, or a sidecar where the filesystem has none ---- */

static bool no_xattrs(int e)
{
	return e == ENOTSUP || e == EOPNOTSUPP;
}

static void sidecar_name(char out[sizeof(DIR_META_PREFIX) + 2 * TD_SHA256_LEN], const char *name)
{
	unsigned char d[TD_SHA256_LEN];

	td_sha256(name, strlen(name), d);
	memcpy(out, DIR_META_PREFIX, strlen(DIR_META_PREFIX));
	td_hex(out + strlen(DIR_META_PREFIX), d, TD_SHA256_LEN);
}

/* ".tierd-tmp.<run id>.<random>": the run id tells cleanup_stale which temp
 * files belong to this target instance (and may still be written). */
#define DIR_TMP_NAME_SIZE (sizeof(DIR_TMP_PREFIX) + 16 + 1 + 16)

static int tmp_name(char out[DIR_TMP_NAME_SIZE], const char *run_id)
{
	unsigned char rnd[8];
	int r = td_random_bytes(rnd, sizeof(rnd));

	if (r < 0)
		return r;
	snprintf(out, DIR_TMP_NAME_SIZE, "%s%s.", DIR_TMP_PREFIX, run_id);
	td_hex(out + strlen(out), rnd, sizeof(rnd));
	return 0;
}

/* Writes the sidecar for object `name` in dfd atomically (temp, fsync, rename). */
static int write_sidecar(int dfd, const char *run_id, const char *name, const struct stat *dst,
                         const char *sha, const char *ctype, const struct td_target_kv *meta,
                         size_t n_meta)
{
	char tmp[DIR_TMP_NAME_SIZE], side[sizeof(DIR_META_PREFIX) + 2 * TD_SHA256_LEN];
	json_t *doc = json_object(), *m = json_object();
	char *text = NULL;
	int fd = -1, r;

	if (!doc || !m) {
		json_decref(m);
		r = -ENOMEM;
		goto out;
	}
	json_object_set_new(doc, "meta", m);
	json_object_set_new(doc, "sha256", json_string(sha));
	json_object_set_new(doc, "ino", json_integer((json_int_t)dst->st_ino));
	json_object_set_new(doc, "size", json_integer((json_int_t)dst->st_size));
	if (ctype)
		json_object_set_new(doc, "content_type", json_string(ctype));
	for (size_t i = 0; i < n_meta; i++)
		json_object_set_new(m, meta[i].key, json_string(meta[i].value));
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	r = tmp_name(tmp, run_id);
	if (r < 0)
		goto out;
	sidecar_name(side, name);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = td_write_full(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp, dfd, side) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dfd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	free(text);
	json_decref(doc);
	return r;
}

/* Stores sha/content type/user metadata on the temp file; *sidecar tells
 * whether the filesystem needed a sidecar instead. */
static int write_meta(int tmp_fd, const struct dir_req *r, const char *sha, bool *sidecar)
{
	char name[sizeof(DIR_XATTR_META) + 64];

	*sidecar = false;
	if (TD_DIR_FORCE_SIDECAR || fsetxattr(tmp_fd, DIR_XATTR_SHA, sha, strlen(sha), 0) < 0) {
		if (TD_DIR_FORCE_SIDECAR || no_xattrs(errno)) {
			*sidecar = true;
			return 0;
		}
		return -errno;
	}
	if (r->content_type &&
	    fsetxattr(tmp_fd, DIR_XATTR_CTYPE, r->content_type, strlen(r->content_type), 0) < 0)
		return -errno;
	for (size_t i = 0; i < r->n_meta; i++) {
		snprintf(name, sizeof(name), "%s%s", DIR_XATTR_META, r->meta[i].key);
		if (fsetxattr(tmp_fd, name, r->meta[i].value, strlen(r->meta[i].value), 0) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Reads the sidecar of object `name` (st: the object's stat) into etag and,
 * when info is not NULL, its user metadata. A sidecar names the inode and size
 * of the data it describes: one left by a put that crashed before its rename
 * describes other bytes, and is ignored. Returns whether it was used.
 */
static bool read_sidecar(int dfd, const char *name, const struct stat *ost, char *etag,
                         size_t etag_n, struct td_object_info *info)
{
	char side[sizeof(DIR_META_PREFIX) + 2 * TD_SHA256_LEN];
	char *buf = NULL;
	json_t *doc = NULL, *v;
	const char *k;
	struct stat st;
	bool used = false;
	int fd;

	sidecar_name(side, name);
	fd = openat(dfd, side, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > DIR_SIDECAR_MAX)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || td_pread_full(fd, buf, (size_t)st.st_size, 0) < 0)
		goto out;
	doc = json_loadb(buf, (size_t)st.st_size, 0, NULL);
	if (!doc || json_integer_value(json_object_get(doc, "ino")) != (json_int_t)ost->st_ino ||
	    json_integer_value(json_object_get(doc, "size")) != (json_int_t)ost->st_size)
		goto out;
	v = json_object_get(doc, "sha256");
	if (!json_is_string(v))
		goto out;
	snprintf(etag, etag_n, "%s", json_string_value(v));
	used = true;
	if (!info)
		goto out;
	json_object_foreach(json_object_get(doc, "meta"), k, v)
	{
		if (info->n_meta >= TD_TARGET_META_MAX || !json_is_string(v))
			break;
		snprintf(info->meta[info->n_meta].key, sizeof(info->meta[0].key), "%s", k);
		snprintf(info->meta[info->n_meta].value, sizeof(info->meta[0].value), "%s",
		         json_string_value(v));
		info->n_meta++;
	}
out:
	json_decref(doc);
	free(buf);
	close(fd);
	return used;
}

/* The ETag: the SHA-256 stored at put time (xattr, else sidecar), or
 * size-mtime for files that did not come through put. */
static void read_etag(int dfd, const char *name, int fd, const struct stat *st, char *etag,
                      size_t n)
{
	char sha[TD_SHA256_HEX];
	ssize_t got = fgetxattr(fd, DIR_XATTR_SHA, sha, sizeof(sha) - 1);

	if (got == TD_SHA256_HEX - 1) {
		sha[got] = '\0';
		snprintf(etag, n, "%s", sha);
		return;
	}
	if (read_sidecar(dfd, name, st, etag, n, NULL))
		return;
	snprintf(etag, n, "%llx-%llx", (unsigned long long)st->st_size,
	         (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
	             (unsigned long long)st->st_mtim.tv_nsec);
}

static int read_meta(int dfd, const char *name, int fd, const struct stat *st,
                     struct td_object_info *info)
{
	char names[8192];
	ssize_t n;

	if (fgetxattr(fd, DIR_XATTR_SHA, NULL, 0) < 0) {
		/* No xattrs here (or a file put where there were none): the sidecar. */
		read_sidecar(dfd, name, st, info->etag, sizeof(info->etag), info);
		return 0;
	}
	n = flistxattr(fd, names, sizeof(names));
	if (n < 0)
		return errno == ERANGE ? 0 : -errno; /* not ours: too many foreign xattrs */
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		size_t lm = strlen(DIR_XATTR_META);
		ssize_t got;

		if (strncmp(p, DIR_XATTR_META, lm) != 0 || info->n_meta >= TD_TARGET_META_MAX ||
		    strlen(p + lm) >= sizeof(info->meta[0].key))
			continue;
		got = fgetxattr(fd, p, info->meta[info->n_meta].value,
		                sizeof(info->meta[0].value) - 1);
		if (got < 0)
			continue;
		info->meta[info->n_meta].value[got] = '\0';
		snprintf(info->meta[info->n_meta].key, sizeof(info->meta[0].key), "%s", p + lm);
		info->n_meta++;
	}
	return 0;
}

/* Opens an existing object for reading; -ENOENT unless it is a regular file. */
static int open_object(struct dir_req *r, int *dfd_out, const char **name, struct stat *st)
{
	int dfd, fd;

	dfd = open_parent(r->t->root_fd, r->key, false, name);
	if (dfd < 0)
		return dfd == -ENOTDIR || dfd == -ELOOP ? -ENOENT : dfd;
	/* O_NONBLOCK: a FIFO planted in the target must not hang a worker. */
	fd = openat(dfd, *name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno == ELOOP ? ENOENT : errno;
		close(dfd);
		return -e;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int e = errno;

		if (fstat(fd, st) == 0)
			e = ENOENT; /* a directory, FIFO or device is not an object */
		close(fd);
		close(dfd);
		return -e;
	}
	if (dfd_out)
		*dfd_out = dfd;
	else
		close(dfd);
	return fd;
}

/* ---- the work functions (thread pool) ---- */

/*
 * Creates the temp file `tmp` beside the object, making the key's directories
 * as needed. A delete prunes directories it empties; one may vanish between
 * our walk and the temp file's creation: then walk (and create) again.
 * Returns the temp file's fd (and *dfd, *name) or -errno, the error set.
 */
static int create_tmp(struct dir_req *r, const char *tmp, int *dfd_out, const char **name)
{
	for (int attempt = 0;; attempt++) {
		int dfd = open_parent(r->t->root_fd, r->key, true, name), fd, st;

		if (dfd == -ENOENT && attempt < DIR_WALK_RETRIES)
			continue;
		if (dfd < 0)
			return fail(r, dfd, "cannot create the directories of");
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*dfd_out = dfd;
			return fd;
		}
		st = -errno;
		close(dfd);
		if (st != -ENOENT || attempt == DIR_WALK_RETRIES)
			return fail(r, st, "cannot create a temp file for");
	}
}

/* The source must end exactly at its declared size. Returns 0 or -EIO. */
static int check_source_end(struct dir_req *r)
{
	char c;
	ssize_t n;

	do
		n = pread(r->src_fd, &c, 1, (off_t)r->size_bytes);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	td_target_error_set(&r->err, "source of %s %s", r->key,
	                    n > 0 ? "grew past its declared size" : "could not be read to its end");
	return -EIO;
}

/* Copies the source (fd or buffer) into fd, hashing it in the same pass.
 * Returns 0 or -errno, the error set. */
static int copy_in(struct dir_req *r, int fd, struct td_hash *h)
{
	unsigned char *buf = NULL;
	uint64_t done = 0;
	int st = 0;

	if (r->src_fd >= 0 && !(buf = malloc(DIR_CHUNK)))
		return -ENOMEM;
	while (done < r->size_bytes) {
		size_t want = (size_t)TD_MIN((uint64_t)DIR_CHUNK, r->size_bytes - done);
		const void *p;
		ssize_t n;

		if (req_cancelled(r)) {
			st = -ECANCELED;
			goto out;
		}
		if (r->src_fd >= 0) {
			n = pread(r->src_fd, buf, want, (off_t)done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				st = fail(r, -errno, "cannot read the source of");
				goto out;
			}
			if (n == 0) {
				td_target_error_set(
				    &r->err, "source of %s ended at %llu of %llu bytes", r->key,
				    (unsigned long long)done, (unsigned long long)r->size_bytes);
				st = -EIO;
				goto out;
			}
			p = buf;
		} else {
			n = (ssize_t)want;
			p = (const unsigned char *)r->src_buf + done;
		}
		td_hash_update(h, p, (size_t)n);
		st = td_write_full(fd, p, (size_t)n);
		if (st < 0) {
			st = fail(r, st, "cannot write");
			goto out;
		}
		done += (uint64_t)n;
	}
	if (r->src_fd >= 0)
		st = check_source_end(r);
out:
	free(buf);
	return st;
}

/* Stores the metadata on the temp file fd (or in a sidecar beside it, in dfd)
 * and makes the file durable. Returns 0 or -errno, the error set. */
static int store_meta(struct dir_req *r, int dfd, int fd, const char *name, const char *sha)
{
	struct stat tst;
	bool sidecar;
	int st = write_meta(fd, r, sha, &sidecar);

	if (st < 0)
		return fail(r, st, "cannot store the metadata of");
	if (fsync(fd) < 0)
		return fail(r, -errno, "cannot fsync");
	if (!sidecar)
		return 0;
	st = fstat(fd, &tst) < 0 ? -errno : 0;
	if (st == 0)
		st = write_sidecar(dfd, r->t->run_id, name, &tst, sha, r->content_type, r->meta,
		                   r->n_meta);
	return st < 0 ? fail(r, st, "cannot write the metadata sidecar of") : 0;
}

/* Renames the temp file over `name`. An empty directory in the way (left from
 * keys under "name/") goes, as it would not exist on S3; a non-empty one is a
 * real conflict. Returns 0 or -errno, the error set. */
static int rename_into_place(struct dir_req *r, int dfd, const char *tmp, const char *name)
{
	int st;

	if (renameat(dfd, tmp, dfd, name) == 0)
		return 0;
	st = -errno;
	if (st == -EISDIR && unlinkat(dfd, name, AT_REMOVEDIR) == 0 &&
	    renameat(dfd, tmp, dfd, name) == 0)
		return 0;
	if (st == -EISDIR)
		return fail(r, st, "other keys have this name as their directory:");
	return fail(r, st, "cannot rename into place");
}

static int do_put(struct dir_req *r)
{
	char tmp[DIR_TMP_NAME_SIZE], sha[TD_SHA256_HEX];
	unsigned char digest[TD_SHA256_LEN];
	struct td_hash *h = NULL;
	const char *name;
	bool tmp_made = false;
	int dfd = -1, fd = -1, st;

	st = td_hash_new(&h, TD_HASH_SHA256);
	if (st < 0)
		goto out;
	st = tmp_name(tmp, r->t->run_id);
	if (st < 0)
		goto out;
	fd = create_tmp(r, tmp, &dfd, &name);
	if (fd < 0) {
		st = fd;
		goto out;
	}
	tmp_made = true;
	st = copy_in(r, fd, h);
	if (st < 0)
		goto out;
	td_hash_final(h, digest);
	td_hex(sha, digest, TD_SHA256_LEN);
	st = store_meta(r, dfd, fd, name, sha);
	if (st < 0)
		goto out;
	if (req_cancelled(r)) {
		st = -ECANCELED;
		goto out;
	}
	st = rename_into_place(r, dfd, tmp, name);
	if (st < 0)
		goto out;
	tmp_made = false;
	if (fsync(dfd) < 0) {
		st = fail(r, -errno, "cannot fsync the directory of");
		goto out;
	}
	r->res->size_bytes = r->size_bytes;
	memcpy(r->res->sha256_hex, sha, sizeof(sha));
	snprintf(r->res->etag, sizeof(r->res->etag), "%s", sha);
	r->res->version_id[0] = '\0';
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		unlinkat(dfd, tmp, 0);
	if (dfd >= 0)
		close(dfd);
	td_hash_free(h);
	return st;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* get_range and get_fd: copy [off, off+len) to a buffer or an fd. */
/* A verified get: the bytes read must hash to the expected SHA-256. */
static int check_sum(struct dir_req *r, struct td_hash *h)
{
	unsigned char digest[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX];

	td_hash_final(h, digest);
	td_hex(hex, digest, TD_SHA256_LEN);
	if (strcmp(hex, r->expect_hex) == 0)
		return 0;
	td_target_error_set(&r->err, "checksum mismatch on %s: expected %s, got %s", r->key,
	                    r->expect_hex, hex);
	return -EIO;
}

/* A get tied to the object that was tiered: its ETag (the SHA-256 stored at
 * put time) must still be the one expected. */
static int check_etag(struct dir_req *r, int dfd, const char *name, int fd, const struct stat *st)
{
	char etag[132];

	if (!r->expect_etag[0])
		return 0;
	read_etag(dfd, name, fd, st, etag, sizeof(etag));
	if (strcmp(etag, r->expect_etag) == 0)
		return 0;
	td_target_error_set(&r->err, "object changed on the target: %s has ETag %s, expected %s",
	                    r->key, etag, r->expect_etag);
	return -EIO;
}

static int do_get(struct dir_req *r)
{
	struct td_hash *h = NULL;
	unsigned char *buf = NULL;
	const char *name;
	struct stat st;
	uint64_t end, pos, done = 0;
	int dfd, fd, s;

	fd = open_object(r, &dfd, &name, &st);
	if (fd < 0)
		return fail(r, fd, "cannot open");
	s = check_etag(r, dfd, name, fd, &st);
	close(dfd);
	if (s < 0)
		goto out;
	if (r->verify && (s = td_hash_new(&h, TD_HASH_SHA256)) < 0)
		goto out;
	pos = r->off;
	end = (uint64_t)st.st_size;
	if (r->len != UINT64_MAX && pos <= end && r->len < end - pos)
		end = pos + r->len;
	if (r->op == OP_GET_FD) {
		buf = malloc(DIR_CHUNK);
		if (!buf) {
			s = -ENOMEM;
			goto out;
		}
	}
	while (pos < end) {
		size_t want = (size_t)TD_MIN((uint64_t)DIR_CHUNK, end - pos), avail;
		unsigned char *p = buf;
		ssize_t n;

		if (r->op != OP_GET_FD) {
			p = td_iov_at(r->dst_iov, r->dst_iovcnt, done, &avail);
			if (!p)
				break;
			want = TD_MIN(want, avail);
		}

		if (req_cancelled(r)) {
			s = -ECANCELED;
			goto out;
		}
		n = pread(fd, p, want, (off_t)pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			s = fail(r, -errno, "cannot read");
			goto out;
		}
		if (n == 0)
			break; /* truncated under us: end of the object */
		if (h)
			td_hash_update(h, p, (size_t)n);
		if (r->op == OP_GET_FD) {
			s = pwrite_full(r->dst_fd, p, (size_t)n, r->dst_off + done);
			if (s < 0) {
				s = fail(r, s, "cannot write the destination of");
				goto out;
			}
		}
		pos += (uint64_t)n;
		done += (uint64_t)n;
	}
	if (h && (s = check_sum(r, h)) < 0)
		goto out;
	if (r->op == OP_GET_RANGE)
		*r->got = (size_t)done;
	s = 0;
out:
	free(buf);
	td_hash_free(h);
	close(fd);
	return s;
}

static int do_head(struct dir_req *r)
{
	struct td_object_info *info = r->info;
	const char *name;
	struct stat st;
	int dfd, fd, s;

	fd = open_object(r, &dfd, &name, &st);
	if (fd < 0)
		return fail(r, fd, "cannot open");
	memset(info, 0, sizeof(*info));
	snprintf(info->key, sizeof(info->key), "%s", r->key + strlen(r->t->prefix));
	info->size_bytes = (uint64_t)st.st_size;
	info->mtime_s = st.st_mtim.tv_sec;
	info->server_time_s = 0; /* no server to ask; the file's mtime is the server's clock */
	read_etag(dfd, name, fd, &st, info->etag, sizeof(info->etag));
	s = read_meta(dfd, name, fd, &st, info);
	if (s < 0)
		s = fail(r, s, "cannot read the metadata of");
	close(fd);
	close(dfd);
	return s;
}

/* Removes the directories above a deleted object while they are empty, up to
 * (not including) the target prefix, so the key space stays as on S3. */
static void prune_dirs(struct dir_req *r)
{
	size_t lp = strlen(r->t->prefix);
	char *path = strdup(r->key), *slash;
	const char *name;
	int dfd, rr;

	while (path && (slash = strrchr(path, '/')) != NULL) {
		*slash = '\0';
		if (strlen(path) < lp)
			break;
		dfd = open_parent(r->t->root_fd, path, false, &name);
		if (dfd < 0)
			break;
		rr = unlinkat(dfd, name, AT_REMOVEDIR);
		close(dfd);
		if (rr < 0)
			break; /* not empty (or not ours to remove): stop */
	}
	free(path);
}

static int do_delete(struct dir_req *r)
{
	char side[sizeof(DIR_META_PREFIX) + 2 * TD_SHA256_LEN];
	const char *name;
	int dfd;

	dfd = open_parent(r->t->root_fd, r->key, false, &name);
	if (dfd == -ENOENT || dfd == -ENOTDIR || dfd == -ELOOP)
		return 0; /* no such directory, so no such object */
	if (dfd < 0)
		return fail(r, dfd, "cannot open the directory of");
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT && errno != EISDIR) {
		int e = errno;
		close(dfd);
		return fail(r, -e, "cannot delete");
	}
	sidecar_name(side, name);
	unlinkat(dfd, side, 0);
	if (fsync(dfd) < 0) {
		int e = errno;
		close(dfd);
		return fail(r, -e, "cannot fsync the directory of");
	}
	close(dfd);
	prune_dirs(r);
	return 0;
}

/* One directory's entries, sorted as their full keys sort: a directory's name
 * compares with a '/' appended, so "a-b" (a file) comes before "a/x". */
struct dent {
	char *sortname; /* name, plus '/' for a directory */
	bool is_dir;
};

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->sortname, ((const struct dent *)b)->sortname);
}

static void dents_free(struct dent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].sortname);
	free(v);
}

/* Reads the entries of dfd whose names start with `match`, skipping our
 * reserved names and anything that is neither a file nor a directory. */
static int read_dir(int dfd, const char *match, struct dent **out, size_t *n_out)
{
	size_t n = 0, cap = 0, lm = strlen(match);
	struct dent *v = NULL;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	rewinddir(d); /* the dup shares its offset with dfd, which may have been read */
	while ((errno = 0, de = readdir(d)) != NULL) {
		bool is_dir;
		size_t ln = strlen(de->d_name);

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    is_reserved_name(de->d_name, ln) || strncmp(de->d_name, match, lm) != 0)
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_REG) {
			is_dir = de->d_type == DT_DIR;
		} else if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
				continue;
			is_dir = S_ISDIR(st.st_mode);
		} else {
			continue;
		}
		if (n == cap) {
			struct dent *nv;
			if (cap >= DIR_DIR_ENTRIES_MAX) {
				r = -EOVERFLOW;
				goto out;
			}
			cap = cap ? 2 * cap : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n].sortname = malloc(ln + 2);
		if (!v[n].sortname) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(v[n].sortname, de->d_name, ln);
		v[n].sortname[ln] = is_dir ? '/' : '\0';
		v[n].sortname[ln + 1] = '\0';
		v[n].is_dir = is_dir;
		n++;
	}
	if (errno)
		r = -errno;
out:
	closedir(d);
	if (r < 0) {
		dents_free(v, n);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), dent_cmp);
	*out = v;
	*n_out = n;
	return 0;
}

struct walk {
	struct dir_req *r;
	char *path; /* key of the current directory + '/', room for max_key + 2 */
	size_t plen;
	size_t max_key; /* longer keys cannot exist as objects */
	bool cleanup;   /* cleanup_stale instead of list */
};

static int walk_file(struct walk *w, int dfd, const char *name)
{
	struct dir_req *r = w->r;
	struct list_entry *e;
	struct stat st;
	int fd;

	if (r->n_page == DIR_LIST_PAGE) {
		r->page_full = true;
		return 0;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno; /* raced with a delete */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	e = &r->page[r->n_page];
	e->key = strdup(w->path);
	if (!e->key) {
		close(fd);
		return -ENOMEM;
	}
	e->size_bytes = (uint64_t)st.st_size;
	e->mtime_s = st.st_mtim.tv_sec;
	read_etag(dfd, name, fd, &st, e->etag, sizeof(e->etag));
	close(fd);
	r->n_page++;
	return 0;
}

/* Removes temp files of other (earlier) runs in dfd, not recursively. */
static int cleanup_entries(struct walk *w, int dfd)
{
	struct dirent *de;
	DIR *d;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strncmp(de->d_name, DIR_TMP_PREFIX, strlen(DIR_TMP_PREFIX)) != 0)
			continue;
		if (strncmp(de->d_name + strlen(DIR_TMP_PREFIX), w->r->t->run_id, 16) == 0)
			continue; /* ours, from this run: may still be being written */
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			w->r->cleaned++;
	}
	closedir(d);
	return 0;
}

/* Walks directory dfd (whose key prefix is w->path) in key order. */
static int walk_dir(struct walk *w, int dfd, const char *match)
{
	struct dir_req *r = w->r;
	struct dent *v = NULL;
	size_t n = 0, i;
	int s;

	if (w->cleanup) {
		s = cleanup_entries(w, dfd);
		if (s < 0)
			return s;
	}
	s = read_dir(dfd, match, &v, &n);
	if (s < 0)
		return s;
	for (i = 0; i < n && !r->page_full; i++) {
		size_t ln = strlen(v[i].sortname), saved = w->plen;

		if (req_cancelled(r)) {
			s = -ECANCELED;
			break;
		}
		if (w->plen + ln > w->max_key)
			continue;
		memcpy(w->path + w->plen, v[i].sortname, ln + 1);
		if (v[i].is_dir) {
			int cfd;

			/* Skip subtrees that sort wholly before the last key delivered. */
			if (!w->cleanup && r->after && strcmp(w->path, r->after) < 0 &&
			    strncmp(r->after, w->path, w->plen + ln) != 0)
				continue;
			w->path[w->plen + ln - 1] = '\0';
			cfd = openat(dfd, w->path + w->plen,
			             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			w->path[w->plen + ln - 1] = '/';
			if (cfd < 0)
				continue; /* raced with a rename, or a symlink swapped in */
			w->plen += ln;
			s = walk_dir(w, cfd, "");
			w->plen = saved;
			close(cfd);
			if (s < 0)
				break;
		} else if (!w->cleanup) {
			if (r->after && strcmp(w->path, r->after) <= 0)
				continue;
			s = walk_file(w, dfd, w->path + w->plen);
			if (s < 0)
				break;
		}
	}
	w->path[w->plen] = '\0';
	dents_free(v, n);
	return s;
}

/* list and cleanup_stale: start at the directory named by the part of
 * list_prefix up to its last '/', matching the rest against its entries. */
static int do_walk(struct dir_req *r, bool cleanup)
{
	struct walk w = { .r = r, .cleanup = cleanup };
	const char *match;
	size_t dlen;
	int dfd, s;

	if (!cleanup && !r->page) {
		r->page = calloc(DIR_LIST_PAGE, sizeof(*r->page));
		if (!r->page)
			return -ENOMEM;
	}
	match = strrchr(r->list_prefix, '/');
	match = match ? match + 1 : r->list_prefix;
	dlen = (size_t)(match - r->list_prefix);
	/* The part after the last '/' is matched, not opened: it may be anything. */
	dfd = td_fsat_open_dir(r->t->root_fd, r->list_prefix, dlen ? dlen - 1 : 0, 0);
	if (dfd == -ENOENT || dfd == -ENOTDIR || dfd == -ELOOP)
		return 0; /* nothing there, so nothing listed */
	if (dfd < 0) {
		td_target_error_set(&r->err, "cannot open the directory of %s: %s", r->list_prefix,
		                    strerror(-dfd));
		return dfd;
	}
	w.max_key = strlen(r->t->prefix) + TD_TARGET_KEY_MAX;
	w.path = malloc(w.max_key + NAME_MAX + 3);
	if (!w.path) {
		close(dfd);
		return -ENOMEM;
	}
	memcpy(w.path, r->list_prefix, dlen);
	w.path[dlen] = '\0';
	w.plen = dlen;
	s = walk_dir(&w, dfd, match);
	if (s < 0 && s != -ECANCELED && !r->err.message[0])
		td_target_error_set(&r->err, "cannot %s under %s: %s",
		                    cleanup ? "clean up" : "list", r->list_prefix, strerror(-s));
	free(w.path);
	close(dfd);
	return s;
}

static void work_cb(uv_work_t *work)
{
	struct dir_req *r = work->data;

	if (req_cancelled(r)) {
		r->status = -ECANCELED;
		return;
	}
	switch (r->op) {
	case OP_PUT:
		r->status = do_put(r);
		break;
	case OP_GET_RANGE:
	case OP_GET_FD:
		r->status = do_get(r);
		break;
	case OP_HEAD:
		r->status = do_head(r);
		break;
	case OP_DELETE:
		r->status = do_delete(r);
		break;
	case OP_LIST:
		r->status = do_walk(r, false);
		break;
	case OP_CLEANUP:
		r->status = do_walk(r, true);
		break;
	case OP_CLOSE:
		r->status = 0;
		break;
	}
}

/* ---- loop-thread bookkeeping ---- */

static void after_work_cb(uv_work_t *work, int status);

static void req_free(struct dir_req *r)
{
	if (!r)
		return;
	if (r->page) {
		for (size_t i = 0; i < r->n_page; i++)
			free(r->page[i].key);
		free(r->page);
	}
	free(r->key);
	free(r->content_type);
	free(r->meta);
	free(r->list_prefix);
	free(r->after);
	free(r);
}

static void queue_work(struct dir_req *r, enum dir_state state)
{
	r->state = state;
	if (state == ST_RUNNING)
		r->t->n_running++;
	/* Fails only for a NULL work_cb: cannot happen. */
	(void)uv_queue_work(r->t->base.loop, &r->work, work_cb, after_work_cb);
}

static void dispatch(struct dir_target *t)
{
	while (!t->closing && t->q_head && t->n_running < t->running_max) {
		struct dir_req *r = t->q_head;

		t->q_head = r->qnext;
		if (!t->q_head)
			t->q_tail = NULL;
		r->qnext = NULL;
		t->n_pending--;
		queue_work(r, ST_RUNNING);
	}
}

static void finish_close(struct dir_target *t, struct dir_req *cr)
{
	void (*close_cb)(void *data) = cr->close_cb;
	void *close_data = cr->close_data;

	if (t->root_fd >= 0)
		close(t->root_fd);
	free(t->prefix);
	free(cr);
	free(t);
	if (close_cb)
		close_cb(close_data);
}

static void maybe_close(struct dir_target *t);

/* Hands one page of listed objects to `each`; returns true when it asked to stop. */
static bool deliver_page(struct dir_req *r)
{
	size_t lp = strlen(r->t->prefix);
	struct td_object_info *info = malloc(sizeof(*info));
	bool stop = false;

	for (size_t i = 0; i < r->n_page; i++) {
		struct list_entry *e = &r->page[i];

		if (!stop && info && !req_cancelled(r)) {
			memset(info, 0, offsetof(struct td_object_info, meta));
			snprintf(info->key, sizeof(info->key), "%s", e->key + lp);
			info->size_bytes = e->size_bytes;
			info->mtime_s = e->mtime_s;
			snprintf(info->etag, sizeof(info->etag), "%s", e->etag);
			stop = r->each(r->data, info) != 0;
		}
		if (i + 1 == r->n_page) {
			free(r->after);
			r->after = e->key; /* where the next page starts */
		} else {
			free(e->key);
		}
		e->key = NULL;
	}
	r->n_page = 0;
	if (!info) {
		r->status = -ENOMEM;
		td_target_error_set(&r->err, "out of memory while listing");
	}
	free(info);
	return stop;
}

static void after_work_cb(uv_work_t *work, int status)
{
	struct dir_req *r = work->data;
	struct dir_target *t = r->t;
	int st;

	if (r->op == OP_CLOSE) {
		finish_close(t, r);
		return;
	}
	if (r->state == ST_RUNNING)
		t->n_running--;
	st = status == UV_ECANCELED ? -ECANCELED : r->status;
	if (r->op == OP_LIST && st == 0) {
		bool more = r->page_full;

		r->page_full = false;
		if (deliver_page(r))
			more = false;
		st = r->status;
		if (st == 0 && more && (req_cancelled(r) || t->closing))
			st = -ECANCELED;
		else if (st == 0 && more) {
			queue_work(r, ST_RUNNING); /* the next page keeps this slot */
			return;
		}
	}
	if (r->prev)
		r->prev->next = r->next;
	else
		t->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (st == 0 && r->op == OP_CLEANUP)
		*r->n_cleaned = r->cleaned;
	if (st < 0 && !r->err.message[0])
		td_target_error_set(&r->err, "%s%s%s", r->key ? r->key : "", r->key ? ": " : "",
		                    strerror(-st));
	r->cb(r->data, &r->base, st, st < 0 ? &r->err : NULL);
	req_free(r);
	dispatch(t);
	maybe_close(t);
}

static void maybe_close(struct dir_target *t)
{
	struct dir_req *cr;

	if (!t->closing || t->reqs)
		return;
	cr = t->close_req;
	t->close_req = NULL; /* queued once */
	if (cr)
		queue_work(cr, ST_NOSLOT);
}

static int submit(struct dir_target *t, struct dir_req *r, struct td_target_req **req_out)
{
	if (t->closing) {
		req_free(r);
		return -ECANCELED;
	}
	if (t->n_running >= t->running_max || t->q_head) {
		if (t->n_pending >= DIR_QUEUE_MAX) {
			req_free(r);
			return -EAGAIN;
		}
		r->state = ST_PENDING;
		if (t->q_tail)
			t->q_tail->qnext = r;
		else
			t->q_head = r;
		t->q_tail = r;
		t->n_pending++;
	} else {
		queue_work(r, ST_RUNNING);
	}
	r->next = t->reqs;
	if (t->reqs)
		t->reqs->prev = r;
	t->reqs = r;
	if (req_out)
		*req_out = &r->base;
	return 0;
}

static int req_new(struct dir_target *t, enum dir_op op, const char *key, td_target_cb cb,
                   void *data, struct dir_req **out)
{
	struct dir_req *r = calloc(1, sizeof(*r));
	int s;

	if (!r)
		return -ENOMEM;
	r->t = t;
	r->base.target = &t->base;
	r->op = op;
	r->cb = cb;
	r->data = data;
	r->src_fd = -1;
	r->dst_fd = -1;
	r->work.data = r;
	atomic_init(&r->cancelled, 0);
	if (key) {
		s = full_key(t, key, &r->key);
		if (s < 0) {
			free(r);
			return s;
		}
	}
	*out = r;
	return 0;
}

/* ---- the vtable ---- */

static void dir_cancel(struct td_target_req *req)
{
	struct dir_req *r = (struct dir_req *)req, **pp;
	struct dir_target *t = r->t;

	atomic_store(&r->cancelled, 1);
	if (r->state != ST_PENDING) {
		uv_cancel((uv_req_t *)&r->work); /* fails harmlessly once running */
		return;
	}
	/* Still waiting for a slot: complete it through the pool (a no-op item), so
	 * the callback runs later, from the loop, like every other. */
	for (pp = &t->q_head; *pp; pp = &(*pp)->qnext) {
		if (*pp != r)
			continue;
		*pp = r->qnext;
		if (t->q_tail == r) {
			struct dir_req *p = t->q_head;
			while (p && p->qnext)
				p = p->qnext;
			t->q_tail = p;
		}
		r->qnext = NULL;
		t->n_pending--;
		break;
	}
	queue_work(r, ST_NOSLOT);
}

static void dir_close(struct td_target *base, void (*close_cb)(void *data), void *data)
{
	struct dir_target *t = (struct dir_target *)base;

	t->closing = true;
	t->close_req->close_cb = close_cb;
	t->close_req->close_data = data;
	for (struct dir_req *r = t->reqs; r; r = r->next)
		dir_cancel(&r->base);
	/* With nothing in flight this still completes through the pool, so
	 * close_cb never runs inside td_target_close(). */
	maybe_close(t);
}

static int dir_new(struct td_target **out, uv_loop_t *loop, const struct td_target_conf *conf,
                   struct td_target_error *err)
{
	const char *prefix = conf->prefix ? conf->prefix : "";
	struct dir_target *t;
	unsigned char rnd[8];
	size_t lp = strlen(prefix);
	int r;

	if (!conf->path || !conf->path[0]) {
		td_target_error_set(err, "target \"%s\": no path", conf->name ? conf->name : "");
		return -EINVAL;
	}
	if (lp && (prefix[lp - 1] != '/' || check_components(prefix, prefix + lp - 1) < 0)) {
		td_target_error_set(err, "target \"%s\": bad prefix \"%s\"",
		                    conf->name ? conf->name : "", prefix);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		td_target_error_set(err, "out of memory");
		return -ENOMEM;
	}
	t->root_fd = -1;
	t->base.loop = loop;
	t->base.ops = &td_target_dir_ops;
	t->prefix = strdup(prefix);
	t->close_req = calloc(1, sizeof(*t->close_req));
	if (!t->prefix || !t->close_req) {
		td_target_error_set(err, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	t->close_req->t = t;
	t->close_req->op = OP_CLOSE;
	t->close_req->work.data = t->close_req;
	r = td_random_bytes(rnd, sizeof(rnd));
	if (r < 0) {
		td_target_error_set(err, "no random bytes: %s", strerror(-r));
		goto fail;
	}
	td_hex(t->run_id, rnd, sizeof(rnd));
	t->root_fd = open(conf->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->root_fd < 0) {
		r = -errno;
		td_target_error_set(err, "cannot open target directory %s: %s", conf->path,
		                    strerror(-r));
		goto fail;
	}
	t->running_max = conf->max_connections ? TD_MIN(conf->max_connections, DIR_RUNNING_MAX)
	                                       : DIR_RUNNING_DEFAULT;
	*out = &t->base;
	return 0;
fail:
	if (t->root_fd >= 0)
		close(t->root_fd);
	free(t->close_req);
	free(t->prefix);
	free(t);
	return r;
}

/* User metadata keys: [a-z0-9._-], shorter than 64; values printable ASCII,
 * shorter than 512 (so head can return them). Copied into one allocation. */
static int copy_meta(struct dir_req *r, const struct td_target_kv *meta, size_t n_meta)
{
	size_t total = n_meta * sizeof(*meta);
	char *p;

	for (size_t i = 0; i < n_meta; i++) {
		size_t lk, lv;

		if (!meta[i].key || !meta[i].value)
			return -EINVAL;
		lk = strlen(meta[i].key);
		lv = strlen(meta[i].value);
		if (lk == 0 || lk >= 64 || lv >= 512)
			return -EINVAL;
		for (const char *c = meta[i].key; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
			      *c == '_' || *c == '.'))
				return -EINVAL;
		for (const char *c = meta[i].value; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				return -EINVAL;
		total += lk + lv + 2;
	}
	if (!n_meta)
		return 0;
	r->meta = malloc(total);
	if (!r->meta)
		return -ENOMEM;
	p = (char *)(r->meta + n_meta);
	for (size_t i = 0; i < n_meta; i++) {
		size_t lk = strlen(meta[i].key) + 1, lv = strlen(meta[i].value) + 1;

		r->meta[i].key = memcpy(p, meta[i].key, lk);
		p += lk;
		r->meta[i].value = memcpy(p, meta[i].value, lv);
		p += lv;
	}
	r->n_meta = n_meta;
	return 0;
}

static int put_common(struct td_target *base, struct td_target_req **req_out, const char *key,
                      int fd, const void *buf, uint64_t size_bytes, const char *content_type,
                      const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                      td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s;

	s = req_new(t, OP_PUT, key, cb, data, &r);
	if (s < 0)
		return s;
	r->src_fd = fd;
	r->src_buf = buf;
	r->size_bytes = size_bytes;
	r->res = res;
	s = copy_meta(r, meta, n_meta);
	if (s == 0 && content_type && !(r->content_type = strdup(content_type)))
		s = -ENOMEM;
	if (s < 0) {
		req_free(r);
		return s;
	}
	return submit(t, r, req_out);
}

static int dir_put_fd(struct td_target *t, struct td_target_req **req_out, const char *key, int fd,
                      uint64_t size_bytes, const struct td_target_kv *meta, size_t n_meta,
                      struct td_put_result *res, td_target_cb cb, void *data)
{
	return put_common(t, req_out, key, fd, NULL, size_bytes, NULL, meta, n_meta, res, cb, data);
}

static int dir_put_buf(struct td_target *t, struct td_target_req **req_out, const char *key,
                       const void *buf, size_t n, const char *content_type,
                       const struct td_target_kv *meta, size_t n_meta, struct td_put_result *res,
                       td_target_cb cb, void *data)
{
	return put_common(t, req_out, key, -1, buf, n, content_type, meta, n_meta, res, cb, data);
}

static int dir_get_range(struct td_target *base, struct td_target_req **req_out, const char *key,
                         uint64_t off, const struct iovec *iov, unsigned iovcnt,
                         const char *expect_etag, size_t *got, td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s = req_new(t, OP_GET_RANGE, key, cb, data, &r);

	if (s < 0)
		return s;
	r->off = off;
	r->len = 0;
	for (unsigned i = 0; i < iovcnt; i++)
		r->len += iov[i].iov_len;
	memcpy(r->dst_iov, iov, iovcnt * sizeof(*iov));
	r->dst_iovcnt = iovcnt;
	r->got = got;
	if (expect_etag)
		snprintf(r->expect_etag, sizeof(r->expect_etag), "%s", expect_etag);
	return submit(t, r, req_out);
}

static int dir_get_fd(struct td_target *base, struct td_target_req **req_out, const char *key,
                      uint64_t off, uint64_t len, int fd, uint64_t fd_off,
                      const char *expect_sha256_hex, td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s;

	if (expect_sha256_hex) {
		if (strlen(expect_sha256_hex) != TD_SHA256_HEX - 1)
			return -EINVAL;
		for (const char *c = expect_sha256_hex; *c; c++)
			if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
			      (*c >= 'A' && *c <= 'F')))
				return -EINVAL;
	}
	s = req_new(t, OP_GET_FD, key, cb, data, &r);
	if (s < 0)
		return s;
	r->off = off;
	r->len = len;
	r->dst_fd = fd;
	r->dst_off = fd_off;
	if (expect_sha256_hex) {
		r->verify = true;
		for (size_t i = 0; i < TD_SHA256_HEX; i++)
			r->expect_hex[i] =
			    (char)(expect_sha256_hex[i] >= 'A' && expect_sha256_hex[i] <= 'F'
			               ? expect_sha256_hex[i] - 'A' + 'a'
			               : expect_sha256_hex[i]);
	}
	return submit(t, r, req_out);
}

static int dir_head(struct td_target *base, struct td_target_req **req_out, const char *key,
                    struct td_object_info *info, td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s = req_new(t, OP_HEAD, key, cb, data, &r);

	if (s < 0)
		return s;
	r->info = info;
	return submit(t, r, req_out);
}

static int dir_delete(struct td_target *base, struct td_target_req **req_out, const char *key,
                      td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s = req_new(t, OP_DELETE, key, cb, data, &r);

	if (s < 0)
		return s;
	return submit(t, r, req_out);
}

static int walk_req(struct dir_target *t, enum dir_op op, const char *prefix, td_target_cb cb,
                    void *data, struct dir_req **out)
{
	size_t lp = strlen(t->prefix), lk = strlen(prefix);
	const char *slash;
	struct dir_req *r;
	int s = req_new(t, op, NULL, cb, data, &r);

	if (s < 0)
		return s;
	r->list_prefix = malloc(lp + lk + 1);
	if (!r->list_prefix) {
		req_free(r);
		return -ENOMEM;
	}
	memcpy(r->list_prefix, t->prefix, lp);
	memcpy(r->list_prefix + lp, prefix, lk + 1);
	slash = strrchr(r->list_prefix, '/');
	if (slash && (s = check_components(r->list_prefix, slash)) < 0) {
		req_free(r);
		return s;
	}
	*out = r;
	return 0;
}

static int dir_list(struct td_target *base, struct td_target_req **req_out, const char *prefix,
                    td_target_list_each each, td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s = walk_req(t, OP_LIST, prefix, cb, data, &r);

	if (s < 0)
		return s;
	r->each = each;
	return submit(t, r, req_out);
}

static int dir_cleanup_stale(struct td_target *base, struct td_target_req **req_out,
                             unsigned *n_cleaned, td_target_cb cb, void *data)
{
	struct dir_target *t = (struct dir_target *)base;
	struct dir_req *r;
	int s = walk_req(t, OP_CLEANUP, "", cb, data, &r);

	if (s < 0)
		return s;
	r->n_cleaned = n_cleaned;
	return submit(t, r, req_out);
}

const struct td_target_ops td_target_dir_ops = {
	.type = "dir",
	.new_ = dir_new,
	.close = dir_close,
	.put_fd = dir_put_fd,
	.put_buf = dir_put_buf,
	.get_range = dir_get_range,
	.get_fd = dir_get_fd,
	.head = dir_head,
	.delete_ = dir_delete,
	.list = dir_list,
	.cleanup_stale = dir_cleanup_stale,
	.cancel = dir_cancel,
};
