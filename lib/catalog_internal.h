/*
 * catalog_internal — what the catalog's own tests need beyond catalog.h: opening
 * with another list of schema migrations, to exercise the migration machinery
 * with versions this build does not have, and the raw connection for the
 * catalog's other file (catalog_life.c). Not for other modules.
 */
#pragma once

#include "catalog.h"

#include <stddef.h>

/* Step `version` turns a catalog at version-1 into one at version; steps are
 * listed in order from version 1, and version 1 creates the schema. */
struct td_catalog_migration {
	int version;
	const char *sql;
};

/* td_catalog_open with `steps` instead of the built-in migrations. */
int td_catalog_open_with(struct td_catalog **out, const char *path, unsigned flags,
                         const struct td_catalog_migration *steps, size_t n_steps,
                         struct td_catalog_error *err);

/* The built-in migrations (*n of them), to make a catalog of an older version. */
const struct td_catalog_migration *td_catalog_builtin_migrations(size_t *n);
struct sqlite3;
/* The handle's connection and its file's path (catalog_life.c only). */
struct sqlite3 *td_catalog__db(struct td_catalog *cat, const char **path);
