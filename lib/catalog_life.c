/*
 * catalog_life — see catalog_life.h. The tables are schema version 3
 * (catalog.c's migrations). Statements are prepared per call: these run a
 * few times per gc or verify, never per request.
 */
#include "catalog_life.h"
#include "catalog_internal.h"
#include "util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(struct td_catalog *cat, struct td_catalog_error *err, int code, const char *what)
{
	const char *path;
	sqlite3 *db = td_catalog__db(cat, &path);
	int r = td_catalog_errno(code, sqlite3_system_errno(db));

	if (r == 0)
		r = -EIO;
	if (err) {
		memset(err, 0, sizeof(*err));
		err->sqlite_code = code;
		snprintf(err->path, sizeof(err->path), "%s", path);
		snprintf(err->sqlite_msg, sizeof(err->sqlite_msg), "%s", sqlite3_errmsg(db));
		snprintf(err->message, sizeof(err->message), "catalog %s: %s: %s", path, what,
		         code == SQLITE_BUSY || (code & 0xff) == SQLITE_BUSY
		             ? "locked by another process"
		             : sqlite3_errmsg(db));
	}
	return r;
}

static void ok(struct td_catalog_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

static int prep(sqlite3_stmt **st, struct td_catalog *cat, const char *sql,
                struct td_catalog_error *err)
{
	int rc = sqlite3_prepare_v2(td_catalog__db(cat, NULL), sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : fail(cat, err, rc, "prepare");
}

int td_catalog_life_put(struct td_catalog *cat, const char *name, const char *value,
                        struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (!name || !value || strlen(value) > TD_CATALOG_LIFE_VALUE_MAX)
		return -EINVAL;
	r = prep(&st, cat,
	         "INSERT INTO lifecycle (name, value, updated_ns) VALUES (?1, ?2, ?3)"
	         " ON CONFLICT (name) DO UPDATE SET value = ?2, updated_ns = ?3",
	         err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, td_now_ns());
	rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : fail(cat, err, rc, "storing a lifecycle record");
	sqlite3_finalize(st);
	if (r == 0)
		ok(err);
	return r;
}

int td_catalog_life_get(char **out, int64_t *updated_ns, struct td_catalog *cat, const char *name,
                        struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = prep(&st, cat, "SELECT value, updated_ns FROM lifecycle WHERE name = ?1", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		char *copy = strdup(v ? v : "");

		r = copy ? 0 : -ENOMEM;
		if (copy) {
			*out = copy;
			if (updated_ns)
				*updated_ns = sqlite3_column_int64(st, 1);
			ok(err);
		}
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : fail(cat, err, rc, "reading a lifecycle record");
	}
	sqlite3_finalize(st);
	return r;
}

int td_catalog_life_del(struct td_catalog *cat, const char *name, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = prep(&st, cat, "DELETE FROM lifecycle WHERE name = ?1", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : fail(cat, err, rc, "deleting a lifecycle record");
	sqlite3_finalize(st);
	return r;
}

static int exec1(struct td_catalog *cat, const char *sql, struct td_catalog_error *err)
{
	int rc = sqlite3_exec(td_catalog__db(cat, NULL), sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(cat, err, rc, sql);
}

int td_catalog_gc_claim(struct td_catalog *cat, const struct td_catalog_entry *e,
                        struct td_catalog_error *err)
{
	sqlite3 *db = td_catalog__db(cat, NULL);
	sqlite3_stmt *ins = NULL, *del = NULL;
	int rc, r;

	if (!td_catalog_state_name(e->state))
		return -EINVAL;
	r = exec1(cat, "BEGIN IMMEDIATE", err);
	if (r < 0)
		return r;
	r = prep(&ins, cat,
	         "INSERT INTO gc_pending (id, target, object_key, path, claimed_ns)"
	         " SELECT id, target, object_key, path, ?2 FROM files WHERE id = ?1"
	         " AND updated_ns = ?3 AND link_seen_ns = ?4 AND pinned = 0"
	         " AND ((state = 'tiered' AND cache_state = 'none') OR state = 'local')",
	         err);
	if (r < 0)
		goto out;
	sqlite3_bind_text(ins, 1, e->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, td_now_ns());
	sqlite3_bind_int64(ins, 3, e->updated_ns);
	sqlite3_bind_int64(ins, 4, e->link_seen_ns);
	rc = sqlite3_step(ins);
	if (rc != SQLITE_DONE) {
		r = fail(cat, err, rc, "journalling a deletion");
		goto out;
	}
	if (sqlite3_changes(db) != 1) {
		r = -ESTALE;
		goto out;
	}
	r = prep(&del, cat, "DELETE FROM files WHERE id = ?1", err);
	if (r < 0)
		goto out;
	sqlite3_bind_text(del, 1, e->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(del);
	if (rc != SQLITE_DONE) {
		r = fail(cat, err, rc, "deleting a row");
		goto out;
	}
	r = exec1(cat, "COMMIT", err);
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	if (r < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	else
		ok(err);
	return r;
}

static const char *col_text(sqlite3_stmt *st, int c)
{
	return (const char *)sqlite3_column_text(st, c);
}

int td_catalog_gc_foreach(struct td_catalog *cat, unsigned limit,
                          int (*cb)(void *data, const struct td_catalog_gc_item *it), void *data,
                          struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = prep(&st, cat,
	         "SELECT id, target, object_key, path, claimed_ns FROM gc_pending"
	         " ORDER BY claimed_ns, id LIMIT ?1",
	         err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, limit ? (int64_t)limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct td_catalog_gc_item it = { 0 };
		const char *id = col_text(st, 0);

		snprintf(it.id, sizeof(it.id), "%s", id ? id : "");
		it.target = col_text(st, 1);
		it.object_key = col_text(st, 2);
		it.path = (const char *)sqlite3_column_blob(st, 3);
		it.path_len = (size_t)sqlite3_column_bytes(st, 3);
		it.claimed_ns = sqlite3_column_int64(st, 4);
		r = cb(data, &it);
		if (r)
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = fail(cat, err, rc, "reading the gc journal");
	sqlite3_finalize(st);
	return r;
}

int td_catalog_gc_done(struct td_catalog *cat, const char *id, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = prep(&st, cat, "DELETE FROM gc_pending WHERE id = ?1", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : fail(cat, err, rc, "updating the gc journal");
	sqlite3_finalize(st);
	return r;
}

int td_catalog_gc_pending(struct td_catalog *cat, const char *id, struct td_catalog_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = prep(&st, cat, "SELECT 1 FROM gc_pending WHERE id = ?1", err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW    ? 1
	    : rc == SQLITE_DONE ? 0
	                        : fail(cat, err, rc, "reading the gc journal");
	sqlite3_finalize(st);
	return r;
}
