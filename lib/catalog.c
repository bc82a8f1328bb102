/*
 * catalog — see catalog.h for the contract (threads, durability, errors).
 *
 * Design notes. One table, `files`, one row per tiered file, a STRICT table so
 * SQLite refuses a value of the wrong type instead of storing it. States are
 * stored by name, not number, so that an admin reading the catalog with the
 * sqlite3 CLI during an incident sees what tierd sees. Paths are BLOBs: they are
 * bytes, and SQLite must never reinterpret them as text.
 *
 * The schema evolves only forward through `migrations[]`: entry N turns version
 * N-1 into N and all pending steps run in one transaction together with the
 * new PRAGMA user_version, so a crash mid-migration leaves the old version.
 *
 * Creating a catalog happens in "<path>.new", which is linked to <path> only
 * when it is complete: a crash during creation cannot leave a half-made
 * catalog that a later start would refuse (or worse, accept). link() fails if
 * <path> appeared meanwhile, so an existing catalog is never replaced, and an
 * flock on "<path>.new" makes concurrent creators take turns.
 *
 * Before SQLite sees an existing file we check it ourselves (regular file, not
 * empty, SQLite header, tierd's application id): SQLite treats an empty file as
 * a fresh database, and we want a refusal, not a silently new catalog. Nothing
 * is written until the file has passed every check.
 */
#include "catalog.h"
#include "catalog_internal.h"
#include "util.h"
#include "xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TD_CATALOG_APP_ID 0x74696572 /* "tier", PRAGMA application_id */
/* Long enough to ride out another handle's commit (an fsync) and a checkpoint. */
#define BUSY_TIMEOUT_MS 10000
/* The WAL is truncated back to this after a checkpoint, so it cannot keep the
 * size of the largest transaction ever made. */
#define WAL_LIMIT_BYTES 67108864 /* 64 MiB */
#define CHECK_ROWS      8        /* problems quoted from quick_check/integrity_check */
/* Page cache per handle (a ceiling; SQLite grows it as pages are used). The
 * id, object and state indexes are keyed by random ids, so at a million rows the
 * 2 MiB default misses on nearly every lookup. */
#define CACHE_KIB  16384
#define TD_STR_(x) #x
#define TD_STR(x)  TD_STR_(x)

static const char *const state_names[TD_CATALOG_STATE_COUNT] = {
	"local", "migrating", "tiered", "cached", "dirty", "recalling",
};
static const char *const cache_names[TD_CATALOG_CACHE_COUNT] = {
	"none",
	"hydrating",
	"cached",
	"dirty",
};

/* Version 1. Timestamps are ns since the epoch; 0 means "never". */
static const char schema_v1[] =
    "CREATE TABLE files ("
    " id TEXT PRIMARY KEY NOT NULL"
    "  CHECK (length(id) = 32 AND NOT id GLOB '*[^0-9a-f]*'),"
    " state TEXT NOT NULL"
    "  CHECK (state IN ('local','migrating','tiered','cached','dirty','recalling')),"
    " step INTEGER NOT NULL DEFAULT 0 CHECK (step >= 0),"
    " policy TEXT,"
    " path BLOB NOT NULL CHECK (length(path) > 0),"
    " basename BLOB NOT NULL CHECK (length(basename) > 0),"
    " dev INTEGER NOT NULL DEFAULT 0,"
    " ino INTEGER NOT NULL DEFAULT 0,"
    " size INTEGER NOT NULL DEFAULT 0,"
    " mode INTEGER NOT NULL DEFAULT 0,"
    " uid INTEGER NOT NULL DEFAULT 0,"
    " gid INTEGER NOT NULL DEFAULT 0,"
    " atime_ns INTEGER NOT NULL DEFAULT 0,"
    " mtime_ns INTEGER NOT NULL DEFAULT 0,"
    " ctime_ns INTEGER NOT NULL DEFAULT 0,"
    " sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),"
    " target TEXT,"
    " object_key TEXT,"
    " etag TEXT,"
    " version_id TEXT,"
    " created_ns INTEGER NOT NULL,"
    " tiered_ns INTEGER NOT NULL DEFAULT 0,"
    " updated_ns INTEGER NOT NULL,"
    " cache_state TEXT NOT NULL DEFAULT 'none'"
    "  CHECK (cache_state IN ('none','hydrating','cached','dirty')),"
    " cached_bytes INTEGER NOT NULL DEFAULT 0,"
    " pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),"
    " cache_atime_ns INTEGER NOT NULL DEFAULT 0,"
    " link_seen_ns INTEGER NOT NULL DEFAULT 0,"
    " link_seen_path BLOB,"
    " error_count INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " last_error_ns INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE INDEX files_path ON files (path);"
    "CREATE INDEX files_inode ON files (dev, ino);"
    /* (state, id) serves paging through one state in id order; size makes it
     * covering for the per-state sums of `tierctl status`. */
    "CREATE INDEX files_state ON files (state, id, size);"
    /* NULLs are distinct in a UNIQUE index: rows without an object yet coexist. */
    "CREATE UNIQUE INDEX files_object ON files (target, object_key);";

/* Version 2: the file's extended attributes (its POSIX ACL among them), as a
 * td_xattr blob; NULL for none, and for rows tiered before version 2. */
static const char schema_v2[] = "ALTER TABLE files ADD COLUMN xattrs BLOB;";
/* Version 3: what verify and gc keep between runs (catalog_life.c). */
static const char schema_v3[] = "CREATE TABLE lifecycle ("
                                " name TEXT PRIMARY KEY NOT NULL,"
                                " value TEXT NOT NULL,"
                                " updated_ns INTEGER NOT NULL"
                                ") STRICT;"
                                "CREATE TABLE gc_pending ("
                                " id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
                                " target TEXT,"
                                " object_key TEXT,"
                                " path BLOB,"
                                " claimed_ns INTEGER NOT NULL"
                                ") STRICT;";

static const struct td_catalog_migration migrations[] = {
	{ 1, schema_v1 },
	{ 2, schema_v2 },
	{ 3, schema_v3 },
};

/* Column numbers (1-based, as in the SELECT list and as SQL parameters ?N). */
enum {
	C_ID = 1,
	C_STATE,
	C_STEP,
	C_POLICY,
	C_PATH,
	C_BASENAME,
	C_DEV,
	C_INO,
	C_SIZE,
	C_MODE,
	C_UID,
	C_GID,
	C_ATIME,
	C_MTIME,
	C_CTIME,
	C_SHA256,
	C_TARGET,
	C_KEY,
	C_ETAG,
	C_VERSION,
	C_CREATED,
	C_TIERED,
	C_UPDATED,
	C_CACHE_STATE,
	C_CACHED_BYTES,
	C_PINNED,
	C_CACHE_ATIME,
	C_LINK_SEEN,
	C_LINK_PATH,
	C_ERROR_COUNT,
	C_LAST_ERROR,
	C_LAST_ERROR_NS,
	C_XATTRS,
	C_NCOLS = C_XATTRS,
	P_EXPECT_STATE, /* parameters of a compare-and-set */
	P_EXPECT_STEP,
};

static const char *const col_names[C_NCOLS + 1] = {
	[C_ID] = "id",
	[C_STATE] = "state",
	[C_STEP] = "step",
	[C_POLICY] = "policy",
	[C_PATH] = "path",
	[C_BASENAME] = "basename",
	[C_DEV] = "dev",
	[C_INO] = "ino",
	[C_SIZE] = "size",
	[C_MODE] = "mode",
	[C_UID] = "uid",
	[C_GID] = "gid",
	[C_ATIME] = "atime_ns",
	[C_MTIME] = "mtime_ns",
	[C_CTIME] = "ctime_ns",
	[C_SHA256] = "sha256",
	[C_TARGET] = "target",
	[C_KEY] = "object_key",
	[C_ETAG] = "etag",
	[C_VERSION] = "version_id",
	[C_CREATED] = "created_ns",
	[C_TIERED] = "tiered_ns",
	[C_UPDATED] = "updated_ns",
	[C_CACHE_STATE] = "cache_state",
	[C_CACHED_BYTES] = "cached_bytes",
	[C_PINNED] = "pinned",
	[C_CACHE_ATIME] = "cache_atime_ns",
	[C_LINK_SEEN] = "link_seen_ns",
	[C_LINK_PATH] = "link_seen_path",
	[C_ERROR_COUNT] = "error_count",
	[C_LAST_ERROR] = "last_error",
	[C_LAST_ERROR_NS] = "last_error_ns",
	[C_XATTRS] = "xattrs",
};

/* Which columns each TD_CATALOG_F_* group writes (0-terminated). */
static const unsigned char group_cols[][10] = {
	{ C_STATE, C_STEP },
	{ C_POLICY },
	{ C_PATH, C_BASENAME },
	{ C_DEV, C_INO, C_SIZE, C_MODE, C_UID, C_GID, C_ATIME, C_MTIME, C_CTIME },
	{ C_SHA256 },
	{ C_TARGET, C_KEY, C_ETAG, C_VERSION },
	{ C_TIERED },
	{ C_CACHE_STATE, C_CACHED_BYTES, C_CACHE_ATIME },
	{ C_PINNED },
	{ C_LINK_SEEN, C_LINK_PATH },
	{ C_ERROR_COUNT, C_LAST_ERROR, C_LAST_ERROR_NS },
	{ C_XATTRS },
};
#define N_GROUPS TD_ARRAY_SIZE(group_cols)

#define COLS                                                                                       \
	"id, state, step, policy, path, basename, dev, ino, size, mode, uid, gid, atime_ns, "      \
	"mtime_ns, ctime_ns, sha256, target, object_key, etag, version_id, created_ns, "           \
	"tiered_ns, updated_ns, cache_state, cached_bytes, pinned, cache_atime_ns, "               \
	"link_seen_ns, link_seen_path, error_count, last_error, last_error_ns, xattrs"
#define CAS_WHERE "id = ?1 AND (?34 IS NULL OR state = ?34) AND (?35 IS NULL OR step = ?35)"

/* Statements prepared on first use and kept for the handle's life. */
enum {
	ST_INSERT,
	ST_GET,
	ST_GET_PATH,
	ST_GET_INODE,
	ST_GET_OBJECT,
	ST_EXISTS,
	ST_ADD_ERROR,
	ST_DELETE,
	ST_STATS,
	ST_PINNED_BYTES,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_COUNT,
};
static const char *const stmt_sql[ST_COUNT] = {
	[ST_INSERT] = "INSERT INTO files (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
	              "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
	              "?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)",
	[ST_GET] = "SELECT " COLS " FROM files WHERE id = ?1",
	[ST_GET_PATH] =
	    "SELECT " COLS " FROM files WHERE path = ?1 ORDER BY created_ns DESC LIMIT 1",
	[ST_GET_INODE] = "SELECT " COLS " FROM files WHERE dev = ?1 AND ino = ?2 "
	                 "ORDER BY created_ns DESC LIMIT 1",
	[ST_GET_OBJECT] = "SELECT " COLS " FROM files WHERE target = ?1 AND object_key = ?2",
	[ST_EXISTS] = "SELECT state, step FROM files WHERE id = ?1",
	[ST_ADD_ERROR] = "UPDATE files SET error_count = error_count + 1, last_error = ?2, "
	                 "last_error_ns = ?3, updated_ns = ?3 WHERE id = ?1",
	[ST_DELETE] = "DELETE FROM files WHERE " CAS_WHERE,
	[ST_STATS] = "SELECT state, count(*), sum(size) FROM files GROUP BY state",
	[ST_PINNED_BYTES] =
	    "SELECT coalesce(sum(size), 0) FROM files WHERE pinned = 1 AND uid = ?1",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

struct td_catalog {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[ST_COUNT];
	sqlite3_stmt *update[TD_CATALOG_F_ALL + 1]; /* by field mask */
};

sqlite3 *td_catalog__db(struct td_catalog *cat, const char **path)
{
	if (path)
		*path = cat->path;
	return cat->db;
}

/* ---- errors ---------------------------------------------------------------- */

int td_catalog_errno(int sqlite_code, int sys_errno)
{
	switch (sqlite_code & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_IOERR:
		return sqlite_code == SQLITE_IOERR_NOMEM ? -ENOMEM : -EIO;
	case SQLITE_CORRUPT:
		return -EUCLEAN;
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		/* SQLite keeps the open(2) errno; without it we only know "I/O". */
		return sys_errno > 0 ? -sys_errno : -EIO;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_SCHEMA:
		return -EAGAIN;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_NOLFS:
		return -EFBIG;
	case SQLITE_CONSTRAINT:
		if (sqlite_code == SQLITE_CONSTRAINT_PRIMARYKEY ||
		    sqlite_code == SQLITE_CONSTRAINT_UNIQUE)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
		return -EINVAL;
	default: /* SQLITE_ERROR, SQLITE_INTERNAL, ...: a failed statement */
		return -EIO;
	}
}

/* Fills err (if any) and returns r. `db` and `code` add SQLite's detail. */
__attribute__((format(printf, 6, 7))) static int set_err(struct td_catalog_error *err,
                                                         const char *path, int r, sqlite3 *db,
                                                         int code, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	char *esc;
	int n;

	if (!err)
		return r;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	err->sqlite_code = code;
	err->sqlite_msg[0] = '\0';
	if (code != SQLITE_OK)
		snprintf(err->sqlite_msg, sizeof(err->sqlite_msg), "%s",
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(code));
	snprintf(err->path, sizeof(err->path), "%s", path ? path : "");
	/* The path is an admin's setting but may still hold control bytes. */
	esc = td_escape(err->path, strlen(err->path));
	/* A very long path may cut the message short: it still names the file. */
	if (err->sqlite_msg[0])
		n = snprintf(err->message, sizeof(err->message), "catalog %s: %s: %s",
		             esc ? esc : err->path, what, err->sqlite_msg);
	else
		n = snprintf(err->message, sizeof(err->message), "catalog %s: %s",
		             esc ? esc : err->path, what);
	(void)n;
	free(esc);
	return r;
}

/* An SQLite failure on an open handle. */
#define db_err(cat, err, code, ...)                                                                \
	set_err((err), (cat)->path, td_catalog_errno((code), sqlite3_system_errno((cat)->db)),     \
	        (cat)->db, (code), __VA_ARGS__)

static void clear_err(struct td_catalog_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

/* ---- names --------------------------------------------------------------------- */

const char *td_catalog_state_name(enum td_catalog_state s)
{
	return (unsigned)s < TD_CATALOG_STATE_COUNT ? state_names[s] : NULL;
}

const char *td_catalog_cache_name(enum td_catalog_cache c)
{
	return (unsigned)c < TD_CATALOG_CACHE_COUNT ? cache_names[c] : NULL;
}

int td_catalog_state_parse(enum td_catalog_state *out, const char *name)
{
	for (int i = 0; name && i < TD_CATALOG_STATE_COUNT; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum td_catalog_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int cache_parse(enum td_catalog_cache *out, const char *name)
{
	for (int i = 0; name && i < TD_CATALOG_CACHE_COUNT; i++) {
		if (strcmp(name, cache_names[i]) == 0) {
			*out = (enum td_catalog_cache)i;
			return 0;
		}
	}
	return -EINVAL;
}

int td_catalog_new_id(char out[TD_CATALOG_ID_HEX])
{
	unsigned char raw[TD_CATALOG_ID_LEN];
	int r = td_random_bytes(raw, sizeof(raw));

	if (r < 0)
		return r;
	td_hex(out, raw, sizeof(raw));
	return 0;
}

static bool valid_id(const char *id)
{
	size_t i;

	if (!id)
		return false;
	for (i = 0; i < TD_CATALOG_ID_HEX - 1; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return id[i] == '\0';
}

/* ---- low-level helpers ------------------------------------------------------------ */

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Runs a statement returning one integer (a PRAGMA). Returns an SQLite code. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Runs quick_check or integrity_check. Returns an SQLite code; *ok says whether
 * the answer was "ok", else `problems` holds the first ones, "; "-separated.
 */
static int run_check(sqlite3 *db, const char *pragma, bool *ok, char *problems, size_t size)
{
	sqlite3_stmt *st = NULL;
	size_t used = 0;
	int rc = sqlite3_prepare_v2(db, pragma, -1, &st, NULL);

	*ok = false;
	problems[0] = '\0';
	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && strcmp(t, "ok") == 0) {
			*ok = true;
			continue;
		}
		if (used < size)
			used += (size_t)snprintf(problems + used, size - used, "%s%s",
			                         used ? "; " : "", t ? t : "?");
	}
	/* Rows may hold newlines; the message is one log line. */
	for (char *c = problems; *c; c++)
		if (*c == '\n')
			*c = ' ';
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	if (problems[0])
		*ok = false;
	return rc;
}

static int stmt(struct td_catalog *cat, int which, sqlite3_stmt **out, struct td_catalog_error *err)
{
	int rc;

	if (!cat->stmt[which]) {
		rc = sqlite3_prepare_v3(cat->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
		                        &cat->stmt[which], NULL);
		if (rc != SQLITE_OK)
			return db_err(cat, err, rc, "preparing a statement");
	}
	*out = cat->stmt[which];
	return 0;
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Executes a statement that returns no rows. Returns an SQLite code. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	done(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- binding and reading rows ----------------------------------------------------- */

/* NULL and "" are both stored as NULL, so "none" has one representation. */
static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t cap)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0)
		return sqlite3_bind_null(st, i);
	if (n > cap)
		return SQLITE_TOOBIG;
	return sqlite3_bind_text(st, i, s, (int)n, SQLITE_STATIC);
}

static int bind_bytes(sqlite3_stmt *st, int i, const char *p, size_t n)
{
	if (!p || n == 0)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	/* SQLite integers are signed 64-bit: store the bit pattern, read it back the
	 * same way, so inode numbers above 2^63 survive. */
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int bind_col(sqlite3_stmt *st, int c, const struct td_catalog_entry *e)
{
	switch (c) {
	case C_STATE:
		return sqlite3_bind_text(st, c, state_names[e->state], -1, SQLITE_STATIC);
	case C_STEP:
		return sqlite3_bind_int(st, c, e->step);
	case C_POLICY:
		return bind_text(st, c, e->policy, TD_CATALOG_NAME_MAX);
	case C_PATH:
		return bind_bytes(st, c, e->path, e->path_len);
	case C_BASENAME:
		return bind_bytes(st, c, e->name, e->name_len);
	case C_DEV:
		return bind_u64(st, c, e->dev);
	case C_INO:
		return bind_u64(st, c, e->ino);
	case C_SIZE:
		return bind_u64(st, c, e->size);
	case C_MODE:
		return sqlite3_bind_int64(st, c, e->mode);
	case C_UID:
		return sqlite3_bind_int64(st, c, e->uid);
	case C_GID:
		return sqlite3_bind_int64(st, c, e->gid);
	case C_ATIME:
		return sqlite3_bind_int64(st, c, e->atime_ns);
	case C_MTIME:
		return sqlite3_bind_int64(st, c, e->mtime_ns);
	case C_CTIME:
		return sqlite3_bind_int64(st, c, e->ctime_ns);
	case C_SHA256:
		return bind_text(st, c, e->sha256, TD_CATALOG_SHA256_HEX - 1);
	case C_TARGET:
		return bind_text(st, c, e->target, TD_CATALOG_NAME_MAX);
	case C_KEY:
		return bind_text(st, c, e->object_key, TD_CATALOG_NAME_MAX);
	case C_ETAG:
		return bind_text(st, c, e->etag, TD_CATALOG_NAME_MAX);
	case C_VERSION:
		return bind_text(st, c, e->version_id, TD_CATALOG_NAME_MAX);
	case C_TIERED:
		return sqlite3_bind_int64(st, c, e->tiered_ns);
	case C_CACHE_STATE:
		return sqlite3_bind_text(st, c, cache_names[e->cache_state], -1, SQLITE_STATIC);
	case C_CACHED_BYTES:
		return bind_u64(st, c, e->cached_bytes);
	case C_PINNED:
		return sqlite3_bind_int(st, c, e->pinned ? 1 : 0);
	case C_CACHE_ATIME:
		return sqlite3_bind_int64(st, c, e->cache_atime_ns);
	case C_LINK_SEEN:
		return sqlite3_bind_int64(st, c, e->link_seen_ns);
	case C_LINK_PATH:
		return bind_bytes(st, c, e->link_seen_path, e->link_seen_path_len);
	case C_ERROR_COUNT:
		return sqlite3_bind_int64(st, c, e->error_count);
	case C_LAST_ERROR: {
		/* An error text is informative only: truncate rather than fail. */
		size_t n = e->last_error ? strnlen(e->last_error, TD_CATALOG_ERROR_MAX) : 0;
		if (n == 0)
			return sqlite3_bind_null(st, c);
		return sqlite3_bind_text(st, c, e->last_error, (int)n, SQLITE_STATIC);
	}
	case C_LAST_ERROR_NS:
		return sqlite3_bind_int64(st, c, e->last_error_ns);
	case C_XATTRS:
		if (!e->xattrs || e->xattrs_len == 0)
			return sqlite3_bind_null(st, c);
		return sqlite3_bind_blob(st, c, e->xattrs, (int)e->xattrs_len, SQLITE_STATIC);
	default:
		return SQLITE_RANGE;
	}
}

static bool valid_bytes(const char *p, size_t n, size_t max)
{
	return p && n > 0 && n <= max && !memchr(p, '\0', n);
}

static bool valid_sha256(const char *s)
{
	size_t n = strnlen(s, TD_CATALOG_SHA256_HEX);

	if (n == 0)
		return true;
	if (n != TD_CATALOG_SHA256_HEX - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool too_long(const char *s)
{
	return s && strnlen(s, TD_CATALOG_NAME_MAX + 1) > TD_CATALOG_NAME_MAX;
}

/* Checks the fields of `fields` before SQLite sees them, for precise errors. */
static int validate(struct td_catalog *cat, const struct td_catalog_entry *e, unsigned fields,
                    struct td_catalog_error *err)
{
	if (!valid_id(e->id))
		return set_err(err, cat->path, -EINVAL, NULL, 0,
		               "invalid id (want 32 lowercase hex characters)");
	if ((fields & TD_CATALOG_F_STATE) &&
	    ((unsigned)e->state >= TD_CATALOG_STATE_COUNT || e->step < 0))
		return set_err(err, cat->path, -EINVAL, NULL, 0, "%s: invalid state %d step %d",
		               e->id, (int)e->state, e->step);
	if (fields & TD_CATALOG_F_PATH) {
		if ((e->path_len > TD_CATALOG_PATH_MAX) || e->name_len > NAME_MAX)
			return set_err(err, cat->path, -ENAMETOOLONG, NULL, 0,
			               "%s: path or name too long", e->id);
		if (!valid_bytes(e->path, e->path_len, TD_CATALOG_PATH_MAX) ||
		    !valid_bytes(e->name, e->name_len, NAME_MAX) ||
		    memchr(e->name, '/', e->name_len))
			return set_err(err, cat->path, -EINVAL, NULL, 0,
			               "%s: empty path, or a NUL byte in it, or a '/' in the name",
			               e->id);
	}
	if ((fields & TD_CATALOG_F_SHA256) && !valid_sha256(e->sha256))
		return set_err(err, cat->path, -EINVAL, NULL, 0,
		               "%s: sha256 is not 64 lowercase hex characters", e->id);
	if (((fields & TD_CATALOG_F_POLICY) && too_long(e->policy)) ||
	    ((fields & TD_CATALOG_F_OBJECT) && (too_long(e->target) || too_long(e->object_key) ||
	                                        too_long(e->etag) || too_long(e->version_id))))
		return set_err(err, cat->path, -ENAMETOOLONG, NULL, 0,
		               "%s: a name is longer than %d bytes", e->id, TD_CATALOG_NAME_MAX);
	if ((fields & TD_CATALOG_F_CACHE) && (unsigned)e->cache_state >= TD_CATALOG_CACHE_COUNT)
		return set_err(err, cat->path, -EINVAL, NULL, 0, "%s: invalid cache state %d",
		               e->id, (int)e->cache_state);
	if ((fields & TD_CATALOG_F_XATTRS) && !td_xattr_valid(e->xattrs, e->xattrs_len))
		return set_err(err, cat->path, -EINVAL, NULL, 0,
		               "%s: malformed or over %u bytes of extended attributes", e->id,
		               TD_XATTR_MAX);
	if ((fields & TD_CATALOG_F_LINK) && e->link_seen_path &&
	    !valid_bytes(e->link_seen_path, e->link_seen_path_len, TD_CATALOG_PATH_MAX) &&
	    e->link_seen_path_len != 0)
		return set_err(err, cat->path, -EINVAL, NULL, 0, "%s: invalid link path", e->id);
	return 0;
}

static int bind_fields(sqlite3_stmt *st, const struct td_catalog_entry *e, unsigned fields)
{
	int rc = SQLITE_OK;

	for (size_t g = 0; g < N_GROUPS && rc == SQLITE_OK; g++) {
		if (!(fields & (1u << g)))
			continue;
		for (size_t i = 0; i < sizeof(group_cols[g]) && group_cols[g][i] && rc == SQLITE_OK;
		     i++)
			rc = bind_col(st, group_cols[g][i], e);
	}
	return rc;
}

static int bind_expect(sqlite3_stmt *st, const struct td_catalog_expect *x)
{
	int rc = SQLITE_OK;

	if (x && x->state != TD_CATALOG_ANY)
		rc =
		    sqlite3_bind_text(st, P_EXPECT_STATE, state_names[x->state], -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && x && x->step != TD_CATALOG_ANY)
		rc = sqlite3_bind_int(st, P_EXPECT_STEP, x->step);
	return rc;
}

static bool valid_expect(const struct td_catalog_expect *x)
{
	return !x || ((x->state == TD_CATALOG_ANY ||
	               (x->state >= 0 && x->state < TD_CATALOG_STATE_COUNT)) &&
	              (x->step == TD_CATALOG_ANY || x->step >= 0));
}

/* Text and blob columns read through column_text, which NUL-terminates BLOBs
 * too; the pointers live until the statement steps or resets. */
static const char *col_text(sqlite3_stmt *st, int c, size_t *len)
{
	const char *t = (const char *)sqlite3_column_text(st, c - 1);

	if (len)
		*len = t ? (size_t)sqlite3_column_bytes(st, c - 1) : 0;
	return t;
}

static int64_t col_i64(sqlite3_stmt *st, int c)
{
	return sqlite3_column_int64(st, c - 1);
}

/* Fills e with pointers into the current row. Returns 0 or -EUCLEAN. */
static int read_row(struct td_catalog_entry *e, sqlite3_stmt *st)
{
	const char *s;

	memset(e, 0, sizeof(*e));
	s = col_text(st, C_ID, NULL);
	if (!s || strlen(s) != TD_CATALOG_ID_HEX - 1)
		return -EUCLEAN;
	memcpy(e->id, s, TD_CATALOG_ID_HEX);
	if (td_catalog_state_parse(&e->state, col_text(st, C_STATE, NULL)) < 0 ||
	    cache_parse(&e->cache_state, col_text(st, C_CACHE_STATE, NULL)) < 0)
		return -EUCLEAN;
	e->step = (int)col_i64(st, C_STEP);
	e->policy = col_text(st, C_POLICY, NULL);
	e->path = col_text(st, C_PATH, &e->path_len);
	e->name = col_text(st, C_BASENAME, &e->name_len);
	e->dev = (uint64_t)col_i64(st, C_DEV);
	e->ino = (uint64_t)col_i64(st, C_INO);
	e->size = (uint64_t)col_i64(st, C_SIZE);
	e->mode = (uint32_t)col_i64(st, C_MODE);
	e->uid = (uint32_t)col_i64(st, C_UID);
	e->gid = (uint32_t)col_i64(st, C_GID);
	e->atime_ns = col_i64(st, C_ATIME);
	e->mtime_ns = col_i64(st, C_MTIME);
	e->ctime_ns = col_i64(st, C_CTIME);
	s = col_text(st, C_SHA256, NULL);
	if (s)
		snprintf(e->sha256, sizeof(e->sha256), "%s", s);
	e->target = col_text(st, C_TARGET, NULL);
	e->object_key = col_text(st, C_KEY, NULL);
	e->etag = col_text(st, C_ETAG, NULL);
	e->version_id = col_text(st, C_VERSION, NULL);
	e->created_ns = col_i64(st, C_CREATED);
	e->tiered_ns = col_i64(st, C_TIERED);
	e->updated_ns = col_i64(st, C_UPDATED);
	e->cached_bytes = (uint64_t)col_i64(st, C_CACHED_BYTES);
	e->pinned = col_i64(st, C_PINNED) != 0;
	e->cache_atime_ns = col_i64(st, C_CACHE_ATIME);
	e->link_seen_ns = col_i64(st, C_LINK_SEEN);
	e->link_seen_path = col_text(st, C_LINK_PATH, &e->link_seen_path_len);
	e->error_count = (uint32_t)col_i64(st, C_ERROR_COUNT);
	e->last_error = col_text(st, C_LAST_ERROR, NULL);
	e->last_error_ns = col_i64(st, C_LAST_ERROR_NS);
	e->xattrs = sqlite3_column_blob(st, C_XATTRS - 1);
	e->xattrs_len = e->xattrs ? (size_t)sqlite3_column_bytes(st, C_XATTRS - 1) : 0;
	if (!td_xattr_valid(e->xattrs, e->xattrs_len))
		return -EUCLEAN;
	return 0;
}

static const char *put(char **p, const char *s, size_t n)
{
	char *d = *p;

	if (!s)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	*p += n + 1;
	return d;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies e and everything it points to into one malloc'd block. */
static int entry_dup(struct td_catalog_entry **out, const struct td_catalog_entry *e)
{
	size_t n = sizeof(*e) + slen(e->policy) + e->path_len + 1 + e->name_len + 1 +
	           slen(e->target) + slen(e->object_key) + slen(e->etag) + slen(e->version_id) +
	           e->link_seen_path_len + 1 + slen(e->last_error) + e->xattrs_len;
	struct td_catalog_entry *c = malloc(n);
	char *p;

	if (!c)
		return -ENOMEM;
	*c = *e;
	p = (char *)(c + 1);
	c->policy = put(&p, e->policy, slen(e->policy) - !!e->policy);
	c->path = put(&p, e->path, e->path_len);
	c->name = put(&p, e->name, e->name_len);
	c->target = put(&p, e->target, slen(e->target) - !!e->target);
	c->object_key = put(&p, e->object_key, slen(e->object_key) - !!e->object_key);
	c->etag = put(&p, e->etag, slen(e->etag) - !!e->etag);
	c->version_id = put(&p, e->version_id, slen(e->version_id) - !!e->version_id);
	c->link_seen_path = put(&p, e->link_seen_path, e->link_seen_path_len);
	c->last_error = put(&p, e->last_error, slen(e->last_error) - !!e->last_error);
	c->xattrs = NULL;
	if (e->xattrs && e->xattrs_len) {
		memcpy(p, e->xattrs, e->xattrs_len);
		c->xattrs = p;
	}
	*out = c;
	return 0;
}

void td_catalog_entry_free(struct td_catalog_entry *e)
{
	free(e);
}

/* ---- opening --------------------------------------------------------------------- */

static int configure(sqlite3 *db)
{
	int rc;

	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	/* Hardening: no writable_schema tricks that could corrupt the file, no
	 * functions from the schema, no double-quoted string literals. */
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
	return rc;
}

/*
 * Brings the schema from `from` to the last step, in the caller's transaction.
 * Returns an SQLite code; *failed says which step failed.
 */
static int migrate(sqlite3 *db, int64_t from, const struct td_catalog_migration *steps,
                   size_t n_steps, int *failed)
{
	char sql[64];
	int rc = SQLITE_OK;

	for (size_t i = 0; i < n_steps && rc == SQLITE_OK; i++) {
		if (steps[i].version <= from)
			continue;
		*failed = steps[i].version;
		rc = exec(db, steps[i].sql);
		if (rc == SQLITE_OK) {
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", steps[i].version);
			rc = exec(db, sql);
		}
	}
	return rc;
}

/* Checks a migration list: versions 1, 2, ..., n in order. */
static bool valid_steps(const struct td_catalog_migration *steps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (steps[i].version != (int)i + 1 || !steps[i].sql)
			return false;
	return n > 0;
}

static int fsync_path(const char *path, int flags)
{
	_cleanup_close_ int fd = open(path, flags | O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/*
 * Creates a complete catalog at "<path>.new" and links it to `path`. Returns 0,
 * -EEXIST if `path` exists (created meanwhile: open that one), or -errno.
 */
static int create(const char *path, const struct td_catalog_migration *steps, size_t n_steps,
                  struct td_catalog_error *err)
{
	_cleanup_free_ char *tmp = NULL, *journal = NULL, *dir = NULL;
	_cleanup_close_ int fd = -1;
	sqlite3 *db = NULL;
	char sql[64], *slash;
	int rc, r, failed = 0;

	if (asprintf(&tmp, "%s.new", path) < 0) {
		tmp = NULL; /* asprintf leaves it undefined on failure */
		return set_err(err, path, -ENOMEM, NULL, 0, "out of memory");
	}
	if (asprintf(&journal, "%s-journal", tmp) < 0) {
		journal = NULL;
		return set_err(err, path, -ENOMEM, NULL, 0, "out of memory");
	}
	dir = strdup(path);
	if (!dir)
		return set_err(err, path, -ENOMEM, NULL, 0, "out of memory");
	/* 0600: the catalog lists every user's files. SQLite gives its WAL and
	 * shared-memory files the database file's mode. */
	fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return set_err(err, path, -errno, NULL, 0, "cannot create %s: %s", tmp,
		               strerror(errno));
	/* Two processes creating the same catalog take turns; the flock (separate
	 * from SQLite's fcntl locks) is held until the name is linked and the
	 * temporary name removed. The loser finds `path` and opens that. */
	if (flock(fd, LOCK_EX) < 0)
		return set_err(err, path, -errno, NULL, 0, "cannot lock %s: %s", tmp,
		               strerror(errno));
	if (access(path, F_OK) == 0) {
		struct stat a, b;
		/* Remove the temporary name we may have just created, if still ours. */
		if (fstat(fd, &a) == 0 && lstat(tmp, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			(void)unlink(tmp);
		return -EEXIST;
	}
	/* Whatever is in tmp now is a leftover of a creation that crashed: it was
	 * never linked, so never used. Start it over. */
	(void)unlink(journal);
	if (ftruncate(fd, 0) < 0)
		return set_err(err, path, -errno, NULL, 0, "cannot truncate %s: %s", tmp,
		               strerror(errno));

	rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = configure(db);
	if (rc == SQLITE_OK)
		rc = exec(db, "PRAGMA synchronous = FULL; BEGIN IMMEDIATE");
	if (rc != SQLITE_OK) {
		r = set_err(err, path, td_catalog_errno(rc, db ? sqlite3_system_errno(db) : 0), db,
		            rc, "cannot create %s", tmp);
		goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", TD_CATALOG_APP_ID);
	rc = exec(db, sql);
	if (rc == SQLITE_OK)
		rc = migrate(db, 0, steps, n_steps, &failed);
	if (rc == SQLITE_OK)
		rc = exec(db, "COMMIT");
	if (rc != SQLITE_OK) {
		r = set_err(err, path, td_catalog_errno(rc, sqlite3_system_errno(db)), db, rc,
		            "cannot create the schema (version %d)", failed);
		goto fail;
	}
	rc = sqlite3_close(db);
	db = NULL;
	if (rc != SQLITE_OK) {
		r = set_err(err, path, td_catalog_errno(rc, 0), NULL, rc, "cannot close %s", tmp);
		goto fail;
	}
	if (fsync(fd) < 0) {
		r = set_err(err, path, -errno, NULL, 0, "fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	/* link() never replaces: if a catalog appeared meanwhile, it wins. */
	if (link(tmp, path) < 0) {
		r = -errno;
		if (r != -EEXIST)
			set_err(err, path, r, NULL, 0, "cannot create: %s", strerror(-r));
		goto fail;
	}
	(void)unlink(tmp);
	/* The new name must survive a crash too. */
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	r = fsync_path(slash ? dir : ".", O_DIRECTORY);
	if (r < 0)
		return set_err(err, path, r, NULL, 0, "fsync of its directory: %s", strerror(-r));
	return 0;
fail:
	sqlite3_close(db);
	(void)unlink(journal);
	(void)unlink(tmp);
	return r;
}

/*
 * A further handle (TD_CATALOG_NO_CHECK) in a process that may have the catalog
 * open already: stat only. Opening and closing the file here would drop every
 * POSIX lock SQLite holds on it in this process (close() releases a process's
 * locks on the inode), and another process (the sqlite3 CLI, a second tool)
 * could then believe itself the last connection and checkpoint and delete the
 * WAL under us. The header is checked through SQLite instead (check_app_id).
 */
static int precheck_stat(const char *path, struct td_catalog_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return set_err(err, path, -errno, NULL, 0, "cannot stat: %s", strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return set_err(err, path, -EISDIR, NULL, 0, "is a directory, not a catalog");
	if (!S_ISREG(st.st_mode))
		return set_err(err, path, -EINVAL, NULL, 0, "is not a regular file");
	if (st.st_size == 0)
		return set_err(err, path, -EBADMSG, NULL, 0,
		               "is empty (0 bytes), not a tierd catalog (truncated?); refusing to "
		               "use or recreate it");
	return 0;
}

/*
 * Our own look at an existing file before SQLite opens it. Returns 0, -ENOENT
 * (missing: no error filled in) or -errno with err filled in.
 */
static int precheck(const char *path, unsigned flags, struct td_catalog_error *err)
{
	static const char magic[16] = "SQLite format 3";
	unsigned char hdr[100];
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint32_t app;
	ssize_t n;

	if (flags & TD_CATALOG_NO_CHECK)
		return precheck_stat(path, err);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return set_err(err, path, -errno, NULL, 0, "cannot open: %s", strerror(errno));
	}
	if (fstat(fd, &st) < 0)
		return set_err(err, path, -errno, NULL, 0, "cannot stat: %s", strerror(errno));
	if (S_ISDIR(st.st_mode))
		return set_err(err, path, -EISDIR, NULL, 0, "is a directory, not a catalog");
	if (!S_ISREG(st.st_mode))
		return set_err(err, path, -EINVAL, NULL, 0, "is not a regular file");
	if (st.st_size == 0)
		return set_err(err, path, -EBADMSG, NULL, 0,
		               "is empty (0 bytes), not a tierd catalog (truncated?); refusing to "
		               "use or recreate it");
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n < 0)
		return set_err(err, path, -errno, NULL, 0, "cannot read: %s", strerror(errno));
	if ((size_t)n < sizeof(hdr) || memcmp(hdr, magic, sizeof(magic)) != 0)
		return set_err(err, path, -EBADMSG, NULL, 0,
		               "is not an SQLite database (bad header); refusing to use it");
	/* The application id never changes after creation, so the file header is
	 * authoritative even with transactions still in the WAL. */
	app = (uint32_t)hdr[68] << 24 | (uint32_t)hdr[69] << 16 | (uint32_t)hdr[70] << 8 | hdr[71];
	if (app != TD_CATALOG_APP_ID)
		return set_err(err, path, -EBADMSG, NULL, 0,
		               "is an SQLite database but not a tierd catalog (application_id "
		               "0x%08x); refusing to use it",
		               app);
	return 0;
}

/* Read-only checks of an existing file: its schema version (not newer than
 * ours, not missing) and, unless told not to, SQLite's quick_check. A refused
 * file must be left as it was, so nothing here writes. */
static int check_existing(struct td_catalog *cat, unsigned flags, int64_t latest, int64_t *version,
                          struct td_catalog_error *err)
{
	char problems[1024];
	bool ok;
	int rc;

	rc = query_int(cat->db, "PRAGMA user_version", version);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "%s; refusing to use it",
		              (rc & 0xff) == SQLITE_CORRUPT  ? "is damaged"
		              : (rc & 0xff) == SQLITE_NOTADB ? "is not a database"
		                                             : "cannot be read");
	if (*version > latest)
		return set_err(
		    err, cat->path, -ENOTSUP, NULL, 0,
		    "has schema version %lld, newer than this tierd's %lld: written by a "
		    "newer tierd; refusing to open it (upgrade tierd)",
		    (long long)*version, (long long)latest);
	if (*version < 1)
		return set_err(
		    err, cat->path, -EBADMSG, NULL, 0,
		    "has no schema (version 0): not a tierd catalog; refusing to use it");
	if (flags & TD_CATALOG_NO_CHECK)
		return 0;
	rc = run_check(cat->db, "PRAGMA quick_check(" TD_STR(CHECK_ROWS) ")", &ok, problems,
	               sizeof(problems));
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "is damaged; refusing to use it");
	if (!ok)
		return set_err(err, cat->path, -EUCLEAN, NULL, 0,
		               "is damaged (quick_check: %s); refusing to use it: restore "
		               "it from a backup or rebuild it (tierctl rebuild)",
		               problems);
	return 0;
}

/* Makes sure the file is in WAL mode. Catalogs are created in WAL mode, so this
 * is normally a read. Setting the mode takes a lock that SQLite does not wait
 * for (it answers "database is locked" at once while another process opens
 * the file), so it is only set when the file is not in WAL mode already. */
static int ensure_wal(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc = SQLITE_OK;

	for (int set = 0, waited_ms = 0; set < 2; set++) {
		rc = sqlite3_prepare_v2(
		    db, set ? "PRAGMA journal_mode = WAL" : "PRAGMA journal_mode", -1, &st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			mode = (const char *)sqlite3_column_text(st, 0);
			rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
		}
		sqlite3_finalize(st);
		if (rc == SQLITE_OK)
			break;
		/* While another process sets up the WAL index, SQLite answers BUSY
		 * here without calling its busy handler; wait as that handler
		 * would (there is no event to wait for), up to the busy timeout. */
		if ((rc & 0xff) == SQLITE_BUSY && waited_ms < BUSY_TIMEOUT_MS) {
			struct timespec ts = { 0, 5 * 1000000 };

			nanosleep(&ts, NULL);
			waited_ms += 5;
			set--;
		}
	}
	return rc;
}

/* Brings an older schema up to `latest`, in one transaction. */
static int upgrade_existing(struct td_catalog *cat, int64_t version,
                            const struct td_catalog_migration *steps, size_t n_steps,
                            struct td_catalog_error *err)
{
	const int64_t latest = steps[n_steps - 1].version;
	int64_t v2 = 0;
	int rc, failed = 0;

	rc = exec(cat->db, "BEGIN IMMEDIATE");
	/* Another process may have migrated it while we waited for the lock. */
	if (rc == SQLITE_OK)
		rc = query_int(cat->db, "PRAGMA user_version", &v2);
	if (rc == SQLITE_OK)
		rc = migrate(cat->db, v2, steps, n_steps, &failed);
	if (rc == SQLITE_OK)
		rc = exec(cat->db, "COMMIT");
	if (rc != SQLITE_OK) {
		int r = db_err(cat, err, rc,
		               "migrating schema version %lld to %lld failed at step %d "
		               "(nothing was changed)",
		               (long long)version, (long long)latest, failed);
		exec(cat->db, "ROLLBACK");
		return r;
	}
	return 0;
}

static int open_existing(struct td_catalog *cat, unsigned flags,
                         const struct td_catalog_migration *steps, size_t n_steps,
                         struct td_catalog_error *err)
{
	const int64_t latest = steps[n_steps - 1].version;
	int64_t version = 0;
	int rc;

	/* Without SQLITE_OPEN_CREATE: if the file vanished since precheck, fail. */
	rc =
	    sqlite3_open_v2(cat->path, &cat->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = configure(cat->db);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "cannot open");
	if (flags & TD_CATALOG_NO_CHECK) {
		int64_t app = 0;

		/* precheck_stat did not read the header: SQLite does. */
		rc = query_int(cat->db, "PRAGMA application_id", &app);
		if (rc == SQLITE_NOTADB || (rc == SQLITE_OK && app != TD_CATALOG_APP_ID))
			return set_err(err, cat->path, -EBADMSG, NULL, 0,
			               "is not a tierd catalog; refusing to use it");
		if (rc != SQLITE_OK)
			return db_err(cat, err, rc, "cannot read");
	}
	rc = check_existing(cat, flags, latest, &version, err);
	if (rc < 0)
		return rc;
	/* See catalog.h: synchronous=FULL makes each commit durable on return. With
	 * NORMAL a power cut could undo the commit that said "tiered" after the
	 * swap had already happened, breaking invariant 1. */
	rc = ensure_wal(cat->db);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "cannot switch to WAL mode");
	rc = exec(cat->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
	                   "PRAGMA cell_size_check = ON;"
	                   "PRAGMA cache_size = -" TD_STR(
	                       CACHE_KIB) ";"
	                                  "PRAGMA journal_size_limit = " TD_STR(WAL_LIMIT_BYTES));
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "cannot configure");
	if (version < latest)
		return upgrade_existing(cat, version, steps, n_steps, err);
	return 0;
}

int td_catalog_open_with(struct td_catalog **out, const char *path, unsigned flags,
                         const struct td_catalog_migration *steps, size_t n_steps,
                         struct td_catalog_error *err)
{
	struct td_catalog *cat = NULL;
	int r;

	clear_err(err);
	if (!path || !*path || !valid_steps(steps, n_steps) ||
	    (flags & ~(unsigned)(TD_CATALOG_CREATE | TD_CATALOG_NO_CHECK)))
		return set_err(err, path, -EINVAL, NULL, 0, "invalid arguments to open");
	if (!sqlite3_threadsafe())
		return set_err(err, path, -ENOTSUP, NULL, 0,
		               "libsqlite3 was built without thread support");
	r = precheck(path, flags, err);
	if (r == -ENOENT) {
		if (!(flags & TD_CATALOG_CREATE))
			return set_err(err, path, -ENOENT, NULL, 0, "does not exist");
		r = create(path, steps, n_steps, err);
		if (r == -EEXIST)
			clear_err(err);
		if (r < 0 && r != -EEXIST)
			return r;
		r = precheck(path, flags, err);
	}
	if (r < 0)
		return r;

	cat = calloc(1, sizeof(*cat));
	if (!cat || !(cat->path = strdup(path))) {
		free(cat);
		return set_err(err, path, -ENOMEM, NULL, 0, "out of memory");
	}
	r = open_existing(cat, flags, steps, n_steps, err);
	if (r < 0) {
		td_catalog_close(cat);
		return r;
	}
	*out = cat;
	return 0;
}

const struct td_catalog_migration *td_catalog_builtin_migrations(size_t *n)
{
	*n = TD_ARRAY_SIZE(migrations);
	return migrations;
}

int td_catalog_open(struct td_catalog **out, const char *path, unsigned flags,
                    struct td_catalog_error *err)
{
	return td_catalog_open_with(out, path, flags, migrations, TD_ARRAY_SIZE(migrations), err);
}

void td_catalog_close(struct td_catalog *cat)
{
	if (!cat)
		return;
	if (cat->db && !sqlite3_get_autocommit(cat->db))
		exec(cat->db, "ROLLBACK");
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(cat->stmt[i]);
	for (size_t i = 0; i < TD_ARRAY_SIZE(cat->update); i++)
		sqlite3_finalize(cat->update[i]);
	/* close_v2: the handle is released even if something still holds it. */
	sqlite3_close_v2(cat->db);
	free(cat->path);
	free(cat);
}

/* ---- rows ---------------------------------------------------------------------------- */

int td_catalog_insert(struct td_catalog *cat, const struct td_catalog_entry *e,
                      struct td_catalog_error *err)
{
	const int64_t now = td_now_ns();
	sqlite3_stmt *st = NULL;
	int rc, r;

	clear_err(err);
	r = validate(cat, e, TD_CATALOG_F_ALL, err);
	if (r < 0)
		return r;
	r = stmt(cat, ST_INSERT, &st, err);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, C_ID, e->id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = bind_fields(st, e, TD_CATALOG_F_ALL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, C_CREATED, e->created_ns ? e->created_ns : now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, C_UPDATED, now);
	if (rc == SQLITE_OK)
		return (rc = run(st)) == SQLITE_OK ? 0 : db_err(cat, err, rc, "insert %s", e->id);
	done(st);
	return db_err(cat, err, rc, "insert %s", e->id);
}

/* Steps st (already bound) expecting at most one row, copied into *out. */
static int get_one(struct td_catalog_entry **out, struct td_catalog *cat, sqlite3_stmt *st,
                   struct td_catalog_error *err)
{
	struct td_catalog_entry e;
	int rc = sqlite3_step(st), r;

	if (rc == SQLITE_DONE) {
		done(st);
		return -ENOENT;
	}
	if (rc != SQLITE_ROW) {
		done(st);
		return db_err(cat, err, rc, "lookup");
	}
	r = read_row(&e, st);
	if (r < 0)
		set_err(err, cat->path, r, NULL, 0, "row %s holds an invalid state", e.id);
	else
		r = entry_dup(out, &e);
	done(st);
	return r;
}

int td_catalog_get(struct td_catalog_entry **out, struct td_catalog *cat, const char *id,
                   struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	clear_err(err);
	if (!valid_id(id))
		return -ENOENT;
	r = stmt(cat, ST_GET, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return get_one(out, cat, st, err);
}

int td_catalog_get_by_path(struct td_catalog_entry **out, struct td_catalog *cat, const char *path,
                           size_t path_len, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	clear_err(err);
	if (!path || path_len == 0 || path_len > TD_CATALOG_PATH_MAX)
		return -ENOENT;
	r = stmt(cat, ST_GET_PATH, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_blob(st, 1, path, (int)path_len, SQLITE_STATIC);
	return get_one(out, cat, st, err);
}

int td_catalog_get_by_inode(struct td_catalog_entry **out, struct td_catalog *cat, uint64_t dev,
                            uint64_t ino, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	clear_err(err);
	r = stmt(cat, ST_GET_INODE, &st, err);
	if (r < 0)
		return r;
	bind_u64(st, 1, dev);
	bind_u64(st, 2, ino);
	return get_one(out, cat, st, err);
}

int td_catalog_get_by_object(struct td_catalog_entry **out, struct td_catalog *cat,
                             const char *target, const char *object_key,
                             struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int r;

	clear_err(err);
	if (!target || !*target || !object_key || !*object_key)
		return -ENOENT;
	r = stmt(cat, ST_GET_OBJECT, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, object_key, -1, SQLITE_STATIC);
	return get_one(out, cat, st, err);
}

/* After a change matched no row: -ENOENT if the row is missing, else -ESTALE. */
static int no_match(struct td_catalog *cat, const char *id, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = stmt(cat, ST_EXISTS, &st, err);

	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r = set_err(err, cat->path, -ESTALE, NULL, 0,
		            "%s is not in the expected state (it is %s, step %d)", id,
		            (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
		done(st);
		return r;
	}
	done(st);
	if (rc == SQLITE_DONE)
		return set_err(err, cat->path, -ENOENT, NULL, 0, "%s: no such entry", id);
	return db_err(cat, err, rc, "lookup %s", id);
}

static int update_stmt(struct td_catalog *cat, unsigned fields, sqlite3_stmt **out,
                       struct td_catalog_error *err)
{
	char sql[1024];
	size_t n;
	int rc;

	if (cat->update[fields]) {
		*out = cat->update[fields];
		return 0;
	}
	n = (size_t)snprintf(sql, sizeof(sql), "UPDATE files SET updated_ns = ?%d", C_UPDATED);
	for (size_t g = 0; g < N_GROUPS; g++) {
		if (!(fields & (1u << g)))
			continue;
		for (size_t i = 0; i < sizeof(group_cols[g]) && group_cols[g][i]; i++)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s = ?%d",
			                      col_names[group_cols[g][i]], group_cols[g][i]);
	}
	snprintf(sql + n, sizeof(sql) - n, " WHERE " CAS_WHERE);
	rc = sqlite3_prepare_v3(cat->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &cat->update[fields],
	                        NULL);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "preparing an update");
	*out = cat->update[fields];
	return 0;
}

int td_catalog_update(struct td_catalog *cat, const struct td_catalog_entry *e, unsigned fields,
                      const struct td_catalog_expect *expect, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	clear_err(err);
	if (fields == 0 || (fields & ~(unsigned)TD_CATALOG_F_ALL) || !valid_expect(expect))
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid update");
	r = validate(cat, e, fields, err);
	if (r < 0)
		return r;
	r = update_stmt(cat, fields, &st, err);
	if (r < 0)
		return r;
	rc = sqlite3_bind_text(st, C_ID, e->id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, C_UPDATED, td_now_ns());
	if (rc == SQLITE_OK)
		rc = bind_fields(st, e, fields);
	if (rc == SQLITE_OK)
		rc = bind_expect(st, expect);
	if (rc != SQLITE_OK) {
		done(st);
		return db_err(cat, err, rc, "update %s", e->id);
	}
	rc = run(st);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "update %s", e->id);
	if (sqlite3_changes(cat->db) == 0)
		return no_match(cat, e->id, err);
	return 0;
}

static int entry_for(struct td_catalog_entry *e, const char *id)
{
	memset(e, 0, sizeof(*e));
	if (!valid_id(id))
		return -EINVAL;
	memcpy(e->id, id, TD_CATALOG_ID_HEX);
	return 0;
}

int td_catalog_set_state(struct td_catalog *cat, const char *id, enum td_catalog_state from,
                         enum td_catalog_state to, int to_step, struct td_catalog_error *err)
{
	struct td_catalog_expect x = { .state = (int)from, .step = TD_CATALOG_ANY };
	struct td_catalog_entry e;

	if (entry_for(&e, id) < 0)
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid id");
	e.state = to;
	e.step = to_step;
	return td_catalog_update(cat, &e, TD_CATALOG_F_STATE, &x, err);
}

int td_catalog_link_seen(struct td_catalog *cat, const char *id, const char *path, size_t path_len,
                         int64_t when_ns, struct td_catalog_error *err)
{
	struct td_catalog_entry e;

	if (entry_for(&e, id) < 0)
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid id");
	e.link_seen_ns = when_ns;
	e.link_seen_path = path;
	e.link_seen_path_len = path_len;
	return td_catalog_update(cat, &e, TD_CATALOG_F_LINK, NULL, err);
}

int td_catalog_add_error(struct td_catalog *cat, const char *id, const char *message,
                         struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	size_t n;
	int rc, r;

	clear_err(err);
	if (!valid_id(id))
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid id");
	r = stmt(cat, ST_ADD_ERROR, &st, err);
	if (r < 0)
		return r;
	n = message ? strnlen(message, TD_CATALOG_ERROR_MAX) : 0;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (n)
		sqlite3_bind_text(st, 2, message, (int)n, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, td_now_ns());
	rc = run(st);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "recording an error for %s", id);
	return sqlite3_changes(cat->db) ? 0 : no_match(cat, id, err);
}

int td_catalog_delete(struct td_catalog *cat, const char *id,
                      const struct td_catalog_expect *expect, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	clear_err(err);
	if (!valid_id(id) || !valid_expect(expect))
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid delete");
	r = stmt(cat, ST_DELETE, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = bind_expect(st, expect);
	if (rc == SQLITE_OK)
		rc = run(st);
	else
		done(st);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "delete %s", id);
	return sqlite3_changes(cat->db) ? 0 : no_match(cat, id, err);
}

/* ---- transactions -------------------------------------------------------------------- */

static int txn(struct td_catalog *cat, int which, const char *what, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = stmt(cat, which, &st, err);
	if (r < 0)
		return r;
	rc = run(st);
	return rc == SQLITE_OK ? 0 : db_err(cat, err, rc, "%s", what);
}

int td_catalog_begin(struct td_catalog *cat, struct td_catalog_error *err)
{
	clear_err(err);
	if (!sqlite3_get_autocommit(cat->db))
		return set_err(err, cat->path, -EALREADY, NULL, 0, "a transaction is already open");
	return txn(cat, ST_BEGIN, "begin", err);
}

int td_catalog_commit(struct td_catalog *cat, struct td_catalog_error *err)
{
	clear_err(err);
	if (sqlite3_get_autocommit(cat->db))
		return set_err(err, cat->path, -EINVAL, NULL, 0,
		               "commit without a transaction (an earlier error may have rolled "
		               "it back)");
	return txn(cat, ST_COMMIT, "commit", err);
}

int td_catalog_rollback(struct td_catalog *cat, struct td_catalog_error *err)
{
	clear_err(err);
	if (sqlite3_get_autocommit(cat->db))
		return 0;
	return txn(cat, ST_ROLLBACK, "rollback", err);
}

/* ---- queries --------------------------------------------------------------------- */

int td_catalog_foreach(struct td_catalog *cat, const struct td_catalog_filter *f, td_catalog_cb cb,
                       void *userdata, struct td_catalog_error *err)
{
	static const struct td_catalog_filter all = TD_CATALOG_FILTER_ALL;
	struct td_catalog_entry e;
	sqlite3_stmt *st = NULL;
	char sql[1024];
	size_t n;
	int rc, r = 0;

	clear_err(err);
	if (!f)
		f = &all;
	if (f->state != TD_CATALOG_ANY && (f->state < 0 || f->state >= TD_CATALOG_STATE_COUNT))
		return set_err(err, cat->path, -EINVAL, NULL, 0, "invalid state filter");
	/* Prepared per call: a callback may run another foreach on the same handle. */
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT " COLS " FROM files WHERE 1");
	if (f->state != TD_CATALOG_ANY)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND state = ?1");
	if (f->policy)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND policy = ?2");
	if (f->target)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND target = ?3");
	if (f->link_seen_before_ns > 0)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND link_seen_ns < ?4");
	if (f->after_id)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND id > ?5");
	n += (size_t)snprintf(sql + n, sizeof(sql) - n, " ORDER BY id");
	if (f->limit)
		snprintf(sql + n, sizeof(sql) - n, " LIMIT ?6");

	rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "preparing a query");
	if (f->state != TD_CATALOG_ANY)
		sqlite3_bind_text(st, 1, state_names[f->state], -1, SQLITE_STATIC);
	if (f->policy)
		sqlite3_bind_text(st, 2, f->policy, -1, SQLITE_STATIC);
	if (f->target)
		sqlite3_bind_text(st, 3, f->target, -1, SQLITE_STATIC);
	if (f->link_seen_before_ns > 0)
		sqlite3_bind_int64(st, 4, f->link_seen_before_ns);
	if (f->after_id)
		sqlite3_bind_text(st, 5, f->after_id, -1, SQLITE_STATIC);
	if (f->limit)
		sqlite3_bind_int64(st, 6, f->limit);

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = read_row(&e, st);
		if (r < 0) {
			set_err(err, cat->path, r, NULL, 0, "a row holds an invalid state");
			goto out;
		}
		r = cb(userdata, &e);
		if (r != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = db_err(cat, err, rc, "query");
out:
	sqlite3_finalize(st);
	return r;
}

int td_catalog_stats(struct td_catalog_stats *out, struct td_catalog *cat,
                     struct td_catalog_error *err)
{
	struct td_catalog_stats s = { 0 };
	enum td_catalog_state state;
	sqlite3_stmt *st = NULL;
	int rc, r;

	clear_err(err);
	r = stmt(cat, ST_STATS, &st, err);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (td_catalog_state_parse(&state, (const char *)sqlite3_column_text(st, 0)) < 0)
			continue; /* impossible: the schema's CHECK allows only known names */
		s.files[state] = (uint64_t)sqlite3_column_int64(st, 1);
		s.bytes[state] = (uint64_t)sqlite3_column_int64(st, 2);
	}
	done(st);
	if (rc != SQLITE_DONE)
		return db_err(cat, err, rc, "counting files");
	*out = s;
	return 0;
}

int td_catalog_pinned_bytes(uint64_t *out, struct td_catalog *cat, uint32_t uid,
                            struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	clear_err(err);
	r = stmt(cat, ST_PINNED_BYTES, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, uid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	done(st);
	if (rc != SQLITE_ROW)
		return db_err(cat, err, rc, "summing pinned bytes");
	return 0;
}

int td_catalog_check(struct td_catalog *cat, struct td_catalog_error *err)
{
	char problems[1024];
	bool ok;
	int rc;

	clear_err(err);
	rc = run_check(cat->db, "PRAGMA integrity_check(" TD_STR(CHECK_ROWS) ")", &ok, problems,
	               sizeof(problems));
	if (rc != SQLITE_OK)
		return db_err(cat, err, rc, "integrity_check");
	if (!ok)
		return set_err(err, cat->path, -EUCLEAN, NULL, 0,
		               "is damaged (integrity_check: %s)", problems);
	return 0;
}
