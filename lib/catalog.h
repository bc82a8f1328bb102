/*
 * catalog — the SQLite database of every tiered file: its state in the mover's
 * state machine, where its bytes are, the metadata they must come back with,
 * its cache state and when its link was last seen.
 *
 * Threads: every call may block (SQLite takes file locks and fsyncs on each
 * commit), so none may run on the event-loop thread; call them from the thread
 * pool. A struct td_catalog is a single SQLite connection opened without
 * SQLite's own mutex: it must be used by one thread at a time. Open one handle
 * per worker thread (WAL lets readers and one writer proceed together; writers
 * wait for each other up to a busy timeout) or guard a shared handle with a
 * mutex. Never use a handle across fork(). Each handle may cache up to 16 MiB
 * of pages.
 *
 * Durability: WAL with synchronous=FULL, so every commit is on disk when the
 * call returns. The mover relies on this (DESIGN.md invariant 1: the row that
 * says "tiered" must be durable before the user's file is swapped for a link).
 *
 * Errors: functions return 0 (or a documented positive value) or -errno. When
 * `err` is not NULL it receives the detail: the SQLite result code and message
 * and the catalog's path. The catalog never logs.
 *
 * Opening never recreates or overwrites an existing file: a missing catalog is
 * created only with TD_CATALOG_CREATE (atomically: a complete new catalog is
 * linked into place, or nothing is), and an empty, foreign, damaged or newer
 * file is refused with an error naming it and is left as it was.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema this build writes; older catalogs are migrated forward on open. */
#define TD_CATALOG_SCHEMA_VERSION 3

#define TD_CATALOG_ID_LEN     16                          /* random bytes in an id */
#define TD_CATALOG_ID_HEX     (2 * TD_CATALOG_ID_LEN + 1) /* 32 hex characters + NUL */
#define TD_CATALOG_SHA256_HEX 65
/* Caps on what one row may hold, so a row always fits in bounded memory. Paths
 * may exceed PATH_MAX because tierd walks trees through directory fds. */
#define TD_CATALOG_PATH_MAX  65536
#define TD_CATALOG_NAME_MAX  1024 /* policy, target, object key, ETag, version id */
#define TD_CATALOG_ERROR_MAX 1024 /* last_error is truncated to this */

/* Where a file is in its life. Stored as these names (see td_catalog_state_name). */
enum td_catalog_state {
	TD_CATALOG_LOCAL,     /* on primary storage (never tiered, or recalled) */
	TD_CATALOG_MIGRATING, /* being tiered; `step` says how far (mover issue, steps 1-7) */
	TD_CATALOG_TIERED,    /* bytes on the target, user path is a link, no cache copy */
	TD_CATALOG_CACHED,    /* tiered, and a verified cache copy is bound */
	TD_CATALOG_DIRTY,     /* the cache copy was written: must go back to primary */
	TD_CATALOG_RECALLING, /* being brought back to primary; `step` says how far */
	TD_CATALOG_STATE_COUNT,
};
#define TD_CATALOG_ANY (-1) /* "any state" / "any step" in filters and expectations */

enum td_catalog_cache {
	TD_CATALOG_CACHE_NONE,
	TD_CATALOG_CACHE_HYDRATING,
	TD_CATALOG_CACHE_CACHED,
	TD_CATALOG_CACHE_DIRTY,
	TD_CATALOG_CACHE_COUNT,
};

/*
 * One row. On input (insert, update) the pointers are borrowed and only read
 * during the call. On output they point into memory owned by whoever produced
 * the entry (see td_catalog_get, td_catalog_foreach). Text fields are
 * NUL-terminated; NULL and "" both mean "none" and read back as NULL. Byte
 * fields (paths) carry their length, may hold any byte but NUL, and read back
 * NUL-terminated for convenience. uint64_t values round-trip bit-exactly.
 */
struct td_catalog_entry {
	char id[TD_CATALOG_ID_HEX]; /* 32 lowercase hex characters (td_catalog_new_id) */
	enum td_catalog_state state;
	int step; /* the state machine's sub-step within `state`, >= 0 */
	const char *policy;

	const char *path; /* original absolute path, bytes */
	size_t path_len;
	const char *name; /* the original basename, the dynamic link's name: bytes, no '/' */
	size_t name_len;

	uint64_t dev, ino, size; /* as the mover saw them before the swap */
	uint32_t mode, uid, gid;
	int64_t atime_ns, mtime_ns, ctime_ns;

	char sha256[TD_CATALOG_SHA256_HEX]; /* lowercase hex, "" = not known yet */
	const char *target, *object_key, *etag, *version_id;

	int64_t created_ns; /* insert: 0 means now */
	int64_t tiered_ns;  /* 0 = not tiered yet */
	int64_t updated_ns; /* set by every insert and update; ignored on input */

	enum td_catalog_cache cache_state;
	uint64_t cached_bytes; /* bytes of the cache copy present so far */
	bool pinned;
	int64_t cache_atime_ns; /* last access of the cache copy, for LRU eviction */

	int64_t link_seen_ns; /* last time a user link to this entry was seen (GC) */
	const char *link_seen_path;
	size_t link_seen_path_len;

	uint32_t error_count;
	const char *last_error; /* truncated to TD_CATALOG_ERROR_MAX bytes */
	int64_t last_error_ns;
	const void *xattrs; /* a td_xattr blob (xattr.h), NULL/0 = none */
	size_t xattrs_len;
};

/* Field groups for td_catalog_update. */
enum {
	TD_CATALOG_F_STATE = 1u << 0,   /* state, step */
	TD_CATALOG_F_POLICY = 1u << 1,  /* policy */
	TD_CATALOG_F_PATH = 1u << 2,    /* path, name */
	TD_CATALOG_F_STAT = 1u << 3,    /* dev, ino, size, mode, uid, gid, a/m/ctime_ns */
	TD_CATALOG_F_SHA256 = 1u << 4,  /* sha256 */
	TD_CATALOG_F_OBJECT = 1u << 5,  /* target, object_key, etag, version_id */
	TD_CATALOG_F_TIERED = 1u << 6,  /* tiered_ns */
	TD_CATALOG_F_CACHE = 1u << 7,   /* cache_state, cached_bytes, cache_atime_ns */
	TD_CATALOG_F_PIN = 1u << 8,     /* pinned */
	TD_CATALOG_F_LINK = 1u << 9,    /* link_seen_ns, link_seen_path */
	TD_CATALOG_F_ERROR = 1u << 10,  /* error_count, last_error, last_error_ns */
	TD_CATALOG_F_XATTRS = 1u << 11, /* xattrs */
	TD_CATALOG_F_ALL = (1u << 12) - 1,
};

/* A compare-and-set condition: the row must be in `state` (TD_CATALOG_ANY: any)
 * and at `step` (TD_CATALOG_ANY: any). */
struct td_catalog_expect {
	int state;
	int step;
};

struct td_catalog_error {
	int sqlite_code;      /* extended SQLite result code, 0 when the error is not SQLite's */
	char path[1024];      /* the catalog file (truncated if longer) */
	char sqlite_msg[256]; /* sqlite3_errmsg(), "" if none */
	char message[1536];   /* one line for a log, naming the file: "catalog PATH: what" */
};

/* td_catalog_open flags. */
enum {
	TD_CATALOG_CREATE = 1u << 0,   /* create the catalog if (and only if) it does not exist */
	TD_CATALOG_NO_CHECK = 1u << 1, /* skip PRAGMA quick_check (extra per-thread handles) */
};

struct td_catalog; /* opaque: one SQLite connection */

/*
 * Opens (with TD_CATALOG_CREATE: creates if missing) the catalog at `path`,
 * checks it (SQLite header, tierd application id, schema version, quick_check),
 * migrates an older schema forward in one transaction, and returns the handle in
 * *out. Errors, each with a message naming the file:
 *   -ENOENT    missing and not TD_CATALOG_CREATE (or a missing directory)
 *   -EACCES    not readable/writable
 *   -EBADMSG   not a tierd catalog: empty file, not SQLite, another program's DB
 *   -EUCLEAN   damaged (SQLite reports corruption or quick_check fails)
 *   -ENOTSUP   written by a newer tierd (schema version above ours)
 *   -EBUSY     locked by another process longer than the busy timeout
 * A refused file is left byte-for-byte as it was. Close with td_catalog_close.
 */
int td_catalog_open(struct td_catalog **out, const char *path, unsigned flags,
                    struct td_catalog_error *err);
/* Rolls back an unfinished explicit transaction and closes. Accepts NULL. */
void td_catalog_close(struct td_catalog *cat);

/* Writes a fresh 128-bit random id as 32 hex characters. Returns 0 or -errno. */
int td_catalog_new_id(char out[TD_CATALOG_ID_HEX]);

/*
 * Inserts e (e->id must be set). Returns 0, -EEXIST if the id exists, -EINVAL
 * for a malformed field, -ENAMETOOLONG past a cap.
 */
int td_catalog_insert(struct td_catalog *cat, const struct td_catalog_entry *e,
                      struct td_catalog_error *err);

/*
 * Lookups. Each returns 0 and a copy in *out (one malloc'd block: free it with
 * td_catalog_entry_free), or -ENOENT. By path and by inode there may be several
 * rows over time (tiered, recalled, tiered again): the most recently created one
 * is returned. By object: target and key identify at most one row.
 */
int td_catalog_get(struct td_catalog_entry **out, struct td_catalog *cat, const char *id,
                   struct td_catalog_error *err);
int td_catalog_get_by_path(struct td_catalog_entry **out, struct td_catalog *cat, const char *path,
                           size_t path_len, struct td_catalog_error *err);
int td_catalog_get_by_inode(struct td_catalog_entry **out, struct td_catalog *cat, uint64_t dev,
                            uint64_t ino, struct td_catalog_error *err);
int td_catalog_get_by_object(struct td_catalog_entry **out, struct td_catalog *cat,
                             const char *target, const char *object_key,
                             struct td_catalog_error *err);
void td_catalog_entry_free(struct td_catalog_entry *e);

/*
 * Writes the field groups in `fields` (TD_CATALOG_F_*) from e into the row
 * e->id, and sets updated_ns. With `expect` not NULL this is a compare-and-set:
 * the row is changed only if it is in the expected state and step. One statement,
 * so one transaction of its own unless inside td_catalog_begin.
 * Returns 0, -ENOENT (no such row), -ESTALE (the row is not as expected).
 */
int td_catalog_update(struct td_catalog *cat, const struct td_catalog_entry *e, unsigned fields,
                      const struct td_catalog_expect *expect, struct td_catalog_error *err);

/* CAS of the state alone: from `from` (any step) to (`to`, `to_step`).
 * Returns 0, -ENOENT, -ESTALE. */
int td_catalog_set_state(struct td_catalog *cat, const char *id, enum td_catalog_state from,
                         enum td_catalog_state to, int to_step, struct td_catalog_error *err);

/* Records that a user link to `id` was seen at `path` at time `when_ns`. */
int td_catalog_link_seen(struct td_catalog *cat, const char *id, const char *path, size_t path_len,
                         int64_t when_ns, struct td_catalog_error *err);

/* Increments error_count and sets last_error (truncated) and last_error_ns = now.
 * Atomic in SQL, so concurrent handles do not lose counts. */
int td_catalog_add_error(struct td_catalog *cat, const char *id, const char *message,
                         struct td_catalog_error *err);

/* Deletes the row, if `expect` is not NULL only when it matches.
 * Returns 0, -ENOENT, -ESTALE. */
int td_catalog_delete(struct td_catalog *cat, const char *id,
                      const struct td_catalog_expect *expect, struct td_catalog_error *err);

/*
 * Explicit transaction for multi-row changes. begin takes the write lock at
 * once (BEGIN IMMEDIATE), so a transaction never fails half-way with SQLITE_BUSY
 * on its first write. Not nestable: begin inside a transaction is -EALREADY.
 * commit outside one is -EINVAL (SQLite rolls a transaction back by itself after
 * some errors, e.g. -ENOSPC: its changes are then gone). rollback outside one
 * is a no-op returning 0, so cleanup paths may always call it. A failed commit
 * may leave the transaction open: roll it back. td_catalog_close rolls back an
 * unfinished one.
 */
int td_catalog_begin(struct td_catalog *cat, struct td_catalog_error *err);
int td_catalog_commit(struct td_catalog *cat, struct td_catalog_error *err);
int td_catalog_rollback(struct td_catalog *cat, struct td_catalog_error *err);

/* Which rows td_catalog_foreach visits: every set condition must hold. */
struct td_catalog_filter {
	int state;                   /* enum td_catalog_state or TD_CATALOG_ANY */
	const char *policy;          /* NULL: any */
	const char *target;          /* NULL: any */
	int64_t link_seen_before_ns; /* > 0: only rows whose link was last seen before this */
	const char *after_id;        /* NULL: from the start; else rows with id > after_id */
	uint32_t limit;              /* 0: no limit */
};
#define TD_CATALOG_FILTER_ALL                                                                      \
	{                                                                                          \
		.state = TD_CATALOG_ANY                                                            \
	}

/*
 * Calls cb for each matching row, in id order, streaming (one row in memory at
 * a time). The entry and its strings are valid only during the callback. cb
 * returns 0 to go on, anything else to stop: foreach then returns that value.
 * The callback must not change the catalog through the same handle (SQLite
 * leaves undefined what a running query then sees): to change rows while
 * walking, page through them with after_id and limit, changing each page after
 * its foreach returned.
 */
typedef int (*td_catalog_cb)(void *userdata, const struct td_catalog_entry *e);
int td_catalog_foreach(struct td_catalog *cat, const struct td_catalog_filter *filter,
                       td_catalog_cb cb, void *userdata, struct td_catalog_error *err);

/* Files and bytes (sum of `size`) per state, for `tierctl status`. */
struct td_catalog_stats {
	uint64_t files[TD_CATALOG_STATE_COUNT];
	uint64_t bytes[TD_CATALOG_STATE_COUNT];
};
int td_catalog_stats(struct td_catalog_stats *out, struct td_catalog *cat,
                     struct td_catalog_error *err);

/* The sum of `size` over the rows of uid that are pinned, into *out (pin_quota). */
int td_catalog_pinned_bytes(uint64_t *out, struct td_catalog *cat, uint32_t uid,
                            struct td_catalog_error *err);

/* Runs PRAGMA integrity_check (slow: reads everything; for `tierctl verify`).
 * Returns 0 if the catalog is sound, -EUCLEAN with the first problems in err. */
int td_catalog_check(struct td_catalog *cat, struct td_catalog_error *err);

/* "local", "migrating", ... / "none", "hydrating", ...; NULL for a bad value. */
const char *td_catalog_state_name(enum td_catalog_state s);
const char *td_catalog_cache_name(enum td_catalog_cache c);
/* Parses a state name into *out. Returns 0 or -EINVAL. */
int td_catalog_state_parse(enum td_catalog_state *out, const char *name);

/* The one mapping from an SQLite result code (primary or extended) to -errno;
 * sys_errno (sqlite3_system_errno) refines SQLITE_CANTOPEN. */
int td_catalog_errno(int sqlite_code, int sys_errno);
