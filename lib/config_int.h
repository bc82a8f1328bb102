/*
 * config_int — what the files of the config module share; not for other modules.
 *
 * The module is cut along the steps of a load:
 *   config.c        the front door: td_config_load(), td_config_load_report(), the
 *                   error list, freeing and lookups;
 *   config_ini.c    the INI reader: file to lines, lines to sections and keys;
 *   config_keys.c   the key table: every key, its kind, its field and its default;
 *   config_value.c  value parsers and formatters with no parse state (sizes,
 *                   durations, schedules, paths, endpoints, ids);
 *   config_check.c  whole-file checks, once every line has been read;
 *   config_creds.c  credentials: the credentials file, the environment's keys;
 *   config_dump.c   the effective configuration as INI (--check-config).
 *
 * A load runs on one thread from start to end, and all its state lives in one
 * struct cfg_ctx on that thread's stack: no globals.
 */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KiB (UINT64_C(1024))
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define TiB (GiB * 1024)

#define CFG_MAX_KEYS     32   /* keys in one section's table */
#define CFG_MAX_SECTIONS 1024 /* targets, and policies, each */
#define CFG_MAX_ROOTS    4096 /* policy paths in all policies */
#define CFG_MAX_VALUE    8192

/* ---- the parse context (config.c, config_ini.c) ---- */

enum cfg_sect {
	SECT_NONE,   /* before the first header */
	SECT_TIERD,  /* [tierd] */
	SECT_TARGET, /* [target "NAME"] */
	SECT_POLICY, /* [policy "NAME"] */
	SECT_IGNORE, /* a bad or duplicate header, already reported: skip its keys quietly */
};

/* The line each key of one section was set on, 0 if not set; index = key table row. */
struct cfg_keylines {
	unsigned line[CFG_MAX_KEYS];
	bool bad[CFG_MAX_KEYS]; /* its value was rejected: whole-file checks skip it */
};

struct cfg_ctx {
	struct td_config *c;
	struct td_config_errors *errs;
	size_t first_err; /* errs->n before this load: the caller's own errors come first */
	const char *file;
	bool oom;
	bool too_many;

	/* The input, and the reader's position in it. */
	const char *buf;
	size_t len, pos;
	unsigned lineno;

	/* The current section. */
	enum cfg_sect sect;
	size_t idx;
	struct cfg_keylines *keys;

	/* The key of the last key line in this section, for continuation lines. */
	char prev_key[64];

	unsigned tierd_line;
	struct cfg_keylines tierd_keys;
	struct cfg_keylines *target_keys; /* parallel to c->targets */
	struct cfg_keylines *policy_keys; /* parallel to c->policies */
};

/* Appends one error; on failure sets x->oom. Stops at TD_CONFIG_MAX_ERRORS. */
void cfg_add_error(struct cfg_ctx *x, unsigned line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends an error that owns `msg` (freed on failure too). Returns 0 or -ENOMEM. */
int cfg_errors_append(struct td_config_errors *errs, const char *file, unsigned line,
                      const char *key, char *msg);
char *cfg_xstrdup(struct cfg_ctx *x, const char *s);       /* NULL and x->oom on failure */
int cfg_strlist_push(struct td_strlist *l, const char *s); /* -E2BIG past TD_CONFIG_MAX_LIST */
void cfg_strlist_free(struct td_strlist *l);

/* ---- the INI reader (config_ini.c) ---- */

/* Reads the file into x->buf/x->len (capped, text only); errors are reported. */
int cfg_read_file(struct cfg_ctx *x, const char *path, char **out_buf);
/* Feeds x->buf through inih, key by key. Returns 0 or -ENOMEM. */
int cfg_parse_ini(struct cfg_ctx *x);

/* ---- the key table (config_keys.c) ---- */

struct cfg_enumval {
	const char *name;
	int value;
};

struct cfg_keydef;

/* What a setter sees: where the value goes, and who to blame for it. */
struct cfg_setting {
	struct cfg_ctx *x;
	const struct cfg_keydef *k;
	const char *key; /* as written in the file */
	void *base;      /* the struct td_config, td_target_conf or td_policy_conf */
	void *field;     /* base + k->off */
	bool continuation;
};

/* Takes one item of a list value. */
typedef void cfg_item_fn(const struct cfg_setting *s, const char *item);

/* How one kind of value is parsed into its field, and written back by the dump. */
struct cfg_kind {
	void (*set)(const struct cfg_setting *s, const char *v);
	void (*dump)(FILE *f, const struct cfg_keydef *k, const char *key, const void *base,
	             const void *field); /* NULL: written by another row (low_watermark) */
	/* Lists only: takes one item; a kind with one also takes indented continuation lines. */
	cfg_item_fn *item;
};

#define F_S3  1u /* target key that only applies to type = s3 */
#define F_DIR 2u /* target key that only applies to type = dir */

struct cfg_keydef {
	const char *field; /* the struct member; the key is its name minus a unit suffix */
	const struct cfg_kind *kind;
	size_t off, off2; /* off2: the count beside an array (owners, groups) */
	uint64_t min, max;
	const struct cfg_enumval *ev;
	unsigned flags;
};

/* Each section's keys, ending in a row with field NULL. */
extern const struct cfg_keydef cfg_tierd_keys[], cfg_target_keys[], cfg_policy_keys[];

/* The key name as written in the file. */
void cfg_key_name(char *buf, size_t n, const struct cfg_keydef *k);
/* The row of `name` in `keys`, or -1. */
int cfg_key_index(const struct cfg_keydef *keys, const char *name);
/* Reports an unknown key, with a "did you mean" when one is close. */
void cfg_unknown_key(struct cfg_ctx *x, const struct cfg_keydef *keys, const char *name);
/* Parses one value into its field; errors are reported at x->lineno. */
void cfg_set_value(struct cfg_ctx *x, const struct cfg_keydef *k, const char *key, void *base,
                   const char *v, bool continuation);
int cfg_tierd_defaults(struct td_config *c);
void cfg_target_defaults(struct td_target_conf *t);
int cfg_policy_defaults(struct td_policy_conf *p);

/* ---- values with no parse state (config_value.c) ---- */

bool cfg_is_blank(char ch);
/* Normalizes an absolute path; malloc'd, or NULL with *why set (NULL why: no memory). */
char *cfg_normalize_path(const char *p, const char **why);
/* True if `inner` is `outer` or below it. Both normalized. */
bool cfg_path_within(const char *inner, const char *outer);
/* A decimal uid or gid below UINT32_MAX. */
bool cfg_parse_id(const char *s, uint32_t *out);
/* Resolves a user or group name. Returns 1 found, 0 unknown, -errno. */
int cfg_lookup_id(const char *name, bool group, uint32_t *out);
bool cfg_valid_bucket(const char *b);
/* Checks "http(s)://host[:port][/]" and returns it without the trailing '/'. */
char *cfg_check_endpoint(const char *v, const char **why);
void cfg_fmt_size(char *buf, size_t n, uint64_t v);
void cfg_fmt_duration(char *buf, size_t n, int64_t v);
void cfg_fmt_schedule(char *buf, size_t n, const struct td_schedule *s);

/* ---- whole-file checks (config_check.c) ---- */

/* Required keys, references, watermarks, overlaps, the admin group. */
void cfg_check_file(struct cfg_ctx *x);

/* ---- credentials (config_creds.c) ---- */

/* Zeroes a secret, then frees it. NULL is fine. */
void cfg_free_secret(char *s);
/* Appends an error (or, `warning`, a warning worded as one) for each s3 target without keys. */
int cfg_check_credentials(const struct td_config *c, struct td_config_errors *errs, bool warning);
/* Reads a credentials file into t's keys; problems are reported against `key`. */
void cfg_load_credentials(struct cfg_ctx *x, struct td_target_conf *t, const char *key,
                          const char *path);

/* ---- the dump (config_dump.c): one writer per kind of value ---- */

/* Writes one key of a section; `base` is the section's struct. NULL in a kind: not written. */
#define CFG_DUMPER(name)                                                                           \
	void name(FILE *f, const struct cfg_keydef *k, const char *key, const void *base,          \
	          const void *field)
CFG_DUMPER(cfg_dump_str);
CFG_DUMPER(cfg_dump_admin_group);
CFG_DUMPER(cfg_dump_credfile);
CFG_DUMPER(cfg_dump_size);
CFG_DUMPER(cfg_dump_optsize);
CFG_DUMPER(cfg_dump_sizepct);
CFG_DUMPER(cfg_dump_duration);
CFG_DUMPER(cfg_dump_watermarks); /* both watermarks of a policy, from the high one's row */
CFG_DUMPER(cfg_dump_bool);
CFG_DUMPER(cfg_dump_uint);
CFG_DUMPER(cfg_dump_u64);
CFG_DUMPER(cfg_dump_enum);
CFG_DUMPER(cfg_dump_list);
CFG_DUMPER(cfg_dump_owners);
CFG_DUMPER(cfg_dump_groups);
CFG_DUMPER(cfg_dump_schedule);
