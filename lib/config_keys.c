/*
 * config_keys — the key table: every key tierd.conf knows, as data.
 *
 * Each section ([tierd], [target], [policy]) has one table row per key: the
 * struct field it fills, the kind of value it takes, its limits, and which
 * target type it applies to. A kind (struct cfg_kind) pairs a setter, which
 * parses a value into its field and words the error when it cannot, with the
 * dumper that writes the field back (config_dump.c); so one row drives parsing,
 * the whole-file checks that look keys up by name, and --check-config's output.
 * The key's name is the field's name minus a unit suffix (retention_s is
 * "retention"), so a field cannot drift from the key that sets it. The defaults
 * a section starts with live here too, beside the keys they are defaults of.
 *
 * Runs on the thread of td_config_load(); no globals, the tables are const.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* An error about the value being set, at the line being read. */
#define SET_ERROR(s, ...) cfg_add_error((s)->x, (s)->x->lineno, (s)->key, __VA_ARGS__)

static void bad_value(const struct cfg_setting *s, const char *v, int r, const char *what)
{
	if (r == -ERANGE)
		SET_ERROR(s, "'%s' is out of range for %s", v, what);
	else
		SET_ERROR(s, "'%s' is not %s", v, what);
}

/* Replaces a string field; the new value is already malloc'd (NULL: leave the field). */
static void put_str(const struct cfg_setting *s, char *d)
{
	char **dst = s->field;

	if (!d)
		return;
	free(*dst);
	*dst = d;
}

static void copy_str(const struct cfg_setting *s, const char *v)
{
	put_str(s, cfg_xstrdup(s->x, v));
}

/* A normalized absolute path, or NULL with the reason reported. */
static char *norm_path(const struct cfg_setting *s, const char *v)
{
	const char *why = NULL;
	char *norm = cfg_normalize_path(v, &why);

	if (!norm && why)
		SET_ERROR(s, "'%s' %s", v, why);
	else if (!norm)
		s->x->oom = true;
	return norm;
}

/* ---- setters: strings and paths -------------------------------------------------------------- */

static void set_path(const struct cfg_setting *s, const char *v)
{
	if (!*v) {
		SET_ERROR(s, "empty value (an absolute path is needed)");
		return;
	}
	put_str(s, norm_path(s, v));
}

/* An existing regular file; empty = none. */
static void set_cafile(const struct cfg_setting *s, const char *v)
{
	struct stat st;
	char *norm;

	if (!*v) {
		free(*(char **)s->field);
		*(char **)s->field = NULL;
		return;
	}
	norm = norm_path(s, v);
	if (!norm)
		return;
	if (stat(norm, &st) < 0)
		SET_ERROR(s, "cannot use '%s': %s", norm, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		SET_ERROR(s, "'%s' is not a regular file", norm);
	else {
		put_str(s, norm);
		return;
	}
	free(norm);
}

/* The path, and the keys read from the file at once (so errors point at this line). */
static void set_credfile(const struct cfg_setting *s, const char *v)
{
	char *norm;

	if (!*v) {
		SET_ERROR(s, "empty value (leave the key out to use AWS_ACCESS_KEY_ID and "
		             "AWS_SECRET_ACCESS_KEY)");
		return;
	}
	norm = norm_path(s, v);
	if (!norm)
		return;
	put_str(s, norm);
	cfg_load_credentials(s->x, s->base, s->key, norm);
}

static void set_str(const struct cfg_setting *s, const char *v)
{
	if (!*v)
		SET_ERROR(s, "empty value");
	else
		copy_str(s, v);
}

/* Non-empty, no blanks: region, storage class. */
static void set_token(const struct cfg_setting *s, const char *v)
{
	if (!*v)
		SET_ERROR(s, "empty value");
	else if (strpbrk(v, " \t"))
		SET_ERROR(s, "'%s' must be one word", v);
	else
		copy_str(s, v);
}

/* "ADDR:PORT" with a numeric IPv4 address or a bracketed IPv6 one, as the
 * metrics listener binds it; "" (or "off") turns it off. */
static void set_listen(const struct cfg_setting *s, const char *v)
{
	char host[64];
	struct in6_addr a6;
	struct in_addr a4;
	const char *colon = strrchr(v, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!*v || strcmp(v, "off") == 0) {
		free(*(char **)s->field);
		*(char **)s->field = NULL;
		return;
	}
	if (!colon || colon == v) {
		SET_ERROR(s, "'%s' is not ADDRESS:PORT (e.g. 127.0.0.1:9474 or [::1]:9474)", v);
		return;
	}
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port == 0 || port > 65535) {
		SET_ERROR(s, "'%s': the port must be 1..65535", v);
		return;
	}
	hl = (size_t)(colon - v);
	if (v[0] == '[' && hl >= 2 && v[hl - 1] == ']' && hl - 2 < sizeof(host)) {
		memcpy(host, v + 1, hl - 2);
		host[hl - 2] = '\0';
		if (inet_pton(AF_INET6, host, &a6) == 1) {
			copy_str(s, v);
			return;
		}
	} else if (hl < sizeof(host)) {
		memcpy(host, v, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET, host, &a4) == 1) {
			copy_str(s, v);
			return;
		}
	}
	SET_ERROR(s, "'%.*s' is not a numeric IPv4 address or a bracketed IPv6 one", (int)hl, v);
}

/* A group name or gid, resolved at the end; "" means no admin group: root only. */
static void set_groupname(const struct cfg_setting *s, const char *v)
{
	if (*v && strpbrk(v, " \t,"))
		SET_ERROR(s, "'%s' must be one group name or gid", v);
	else
		copy_str(s, v);
}

static void set_endpoint(const struct cfg_setting *s, const char *v)
{
	const char *why = NULL;
	char *e = cfg_check_endpoint(v, &why);

	if (!e && why && strstr(why, "credentials"))
		SET_ERROR(s, "%s", why); /* do not echo a secret */
	else if (!e && why)
		SET_ERROR(s, "'%s' %s", v, why);
	else if (!e)
		s->x->oom = true;
	put_str(s, e);
}

static void set_bucket(const struct cfg_setting *s, const char *v)
{
	if (!cfg_valid_bucket(v))
		SET_ERROR(s, "'%s' is not a valid bucket name (3..63 characters: a-z 0-9 . -)", v);
	else
		copy_str(s, v);
}

/* "" or a key prefix that ends in '/' (added when missing). */
static void set_prefix(const struct cfg_setting *s, const char *v)
{
	size_t n = strlen(v);
	char *d;

	bool ctl = false;

	/* Blanks and any other byte S3 takes in a key are fine (keys are
	 * percent-encoded); control characters and '\\' are not. */
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		ctl |= *p < 0x20 || *p == 0x7f || *p == '\\';
	if (v[0] == '/' || strstr(v, "//") || ctl || n > 512) {
		SET_ERROR(s,
		          "'%s' is not a valid key prefix (no leading '/', no '//', no "
		          "control characters or '\\', at most 512 characters)",
		          v);
		return;
	}
	d = malloc(n + 2);
	if (!d) {
		s->x->oom = true;
		return;
	}
	memcpy(d, v, n + 1);
	if (n && v[n - 1] != '/')
		strcpy(d + n, "/");
	put_str(s, d);
}

/* HOST:PORT or [IPV6]:PORT: where every connection of the target goes,
 * whatever DNS says of the endpoint's host (and of bucket.host). */
static void set_connect_to(const struct cfg_setting *s, const char *v)
{
	const char *colon = strrchr(v, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!*v) {
		copy_str(s, v);
		return;
	}
	if (!colon || colon == v || !colon[1])
		goto bad;
	hl = (size_t)(colon - v);
	if (v[0] == '[' ? v[hl - 1] != ']' || hl < 3 : memchr(v, ':', hl) != NULL)
		goto bad;
	if (strpbrk(v, " \t/@"))
		goto bad;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port < 1 || port > 65535)
		goto bad;
	copy_str(s, v);
	return;
bad:
	SET_ERROR(s, "'%s' is not HOST:PORT or [IPV6]:PORT (e.g. 127.0.0.1:7480)", v);
}

/* ---- setters: numbers, enums, schedules ------------------------------------------------------ */

static void set_size(const struct cfg_setting *s, const char *v)
{
	char lo[32], hi[32];
	uint64_t bytes;
	int r;

	r = td_parse_size(v, &bytes);
	if (r < 0) {
		bad_value(s, v, r, "a size (bytes, or a number with K, M, G or T)");
		return;
	}
	if (bytes < s->k->min || bytes > s->k->max) {
		cfg_fmt_size(lo, sizeof(lo), s->k->min);
		cfg_fmt_size(hi, sizeof(hi), s->k->max);
		SET_ERROR(s, "%s is out of range (%s..%s)", v, lo, hi);
		return;
	}
	*(uint64_t *)s->field = bytes;
}

/* A size; empty = no limit (UINT64_MAX). */
static void set_optsize(const struct cfg_setting *s, const char *v)
{
	if (!*v)
		*(uint64_t *)s->field = UINT64_MAX;
	else
		set_size(s, v);
}

static void set_sizepct(const struct cfg_setting *s, const char *v)
{
	int r = td_parse_size_or_pct(v, s->field);

	if (r < 0)
		bad_value(s, v, r, "a size (K, M, G, T) or a percentage (0..100%)");
}

static void set_duration(const struct cfg_setting *s, const char *v)
{
	int r = td_parse_duration(v, s->field);

	if (r < 0)
		bad_value(s, v, r, "a duration (a number with s, m, h, d or w: 90d)");
}

static void set_pct(const struct cfg_setting *s, const char *v)
{
	int r = td_parse_percent(v, s->field);

	if (r < 0)
		bad_value(s, v, r, "a percentage (0..100%)");
}

static void set_bool(const struct cfg_setting *s, const char *v)
{
	if (td_parse_bool(v, s->field) < 0)
		SET_ERROR(s, "'%s' is not yes or no", v);
}

/* Decimal digits only (no sign, no unit). */
static bool whole_number(const struct cfg_setting *s, const char *v, uint64_t *out)
{
	uint64_t n = 0;

	for (const char *q = v; *q; q++) {
		if (!isdigit((unsigned char)*q) || n > (UINT64_MAX - 9) / 10) {
			SET_ERROR(s, "'%s' is not a whole number", v);
			return false;
		}
		n = n * 10 + (unsigned)(*q - '0');
	}
	if (!*v) {
		SET_ERROR(s, "'%s' is not a whole number", v);
		return false;
	}
	*out = n;
	return true;
}

/* An unsigned in [min, max]. */
static void set_uint(const struct cfg_setting *s, const char *v)
{
	uint64_t n;

	if (!whole_number(s, v, &n))
		return;
	if (n < s->k->min || n > s->k->max)
		SET_ERROR(s, "%s is out of range (%" PRIu64 "..%" PRIu64 ")", v, s->k->min,
		          s->k->max);
	else
		*(unsigned *)s->field = (unsigned)n;
}

/* A uint64_t count, any size. */
static void set_u64(const struct cfg_setting *s, const char *v)
{
	uint64_t n;

	if (whole_number(s, v, &n))
		*(uint64_t *)s->field = n;
}

/* One of k->ev's names, into an int-sized enum field. */
static void set_enum(const struct cfg_setting *s, const char *v)
{
	char names[128] = "";

	for (const struct cfg_enumval *e = s->k->ev; e->name; e++) {
		if (strcmp(v, e->name) == 0) {
			*(int *)s->field = e->value;
			return;
		}
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         e == s->k->ev ? "" : " | ", e->name);
	}
	SET_ERROR(s, "'%s' is not one of %s", v, names);
}

static void set_schedule(const struct cfg_setting *s, const char *v)
{
	int r = td_parse_schedule(v, s->field);

	if (r < 0)
		bad_value(s, v, r,
		          "a schedule (manual | every 30m | hourly | daily HH:MM | "
		          "weekly mon HH:MM)");
}

/* ---- setters: lists ------------------------------------------------------------------------- */

/*
 * A list value is split at spaces, tabs and commas; an indented continuation line
 * adds to the list, any other line replaces it.
 */

static void split_list(const struct cfg_setting *s, const char *v, cfg_item_fn *fn)
{
	char *copy = cfg_xstrdup(s->x, v), *save = NULL;

	if (!copy)
		return;
	for (char *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save))
		fn(s, t);
	free(copy);
}

static void push_item(const struct cfg_setting *s, const char *item)
{
	int r = cfg_strlist_push(s->field, item);

	if (r == -E2BIG)
		SET_ERROR(s, "too many items (at most %d)", TD_CONFIG_MAX_LIST);
	else if (r < 0)
		s->x->oom = true;
}

static void path_item(const struct cfg_setting *s, const char *item)
{
	const struct td_strlist *l = s->field;
	char *norm = norm_path(s, item);

	if (!norm)
		return;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], norm) == 0) {
			SET_ERROR(s, "'%s' is listed twice", norm);
			free(norm);
			return;
		}
	}
	push_item(s, norm);
	free(norm);
}

static void glob_item(const struct cfg_setting *s, const char *item)
{
	/* fnmatch() would treat an unclosed '[' as a literal; that is never what was meant. */
	for (const char *q = item; (q = strchr(q, '['));) {
		const char *b = q + 1, *close;
		if (*b == '!' || *b == '^')
			b++;
		if (*b == ']') /* a ']' first in the set is a literal */
			b++;
		close = strchr(b, ']');
		if (!close) {
			SET_ERROR(s, "glob '%s' has an unclosed '['", item);
			return;
		}
		q = close + 1;
	}
	push_item(s, item);
}

/* A list of strings: each item goes through the kind's item function. */
static void set_strlist(const struct cfg_setting *s, const char *v)
{
	if (!s->continuation)
		cfg_strlist_free(s->field);
	split_list(s, v, s->k->kind->item);
}

/* Appends a uid or gid (a number, or a name looked up now) to the array at k->off. */
static void id_item(const struct cfg_setting *s, const char *item, bool group)
{
	uint32_t id = UINT32_MAX, **arr = s->field, *v;
	size_t *n = (size_t *)((char *)s->base + s->k->off2);
	int r;

	if (!cfg_parse_id(item, &id)) {
		id = UINT32_MAX;
		r = cfg_lookup_id(item, group, &id);
		if (r < 0) {
			SET_ERROR(s, "cannot look up %s '%s': %s", group ? "group" : "user", item,
			          strerror(-r));
			return;
		}
		if (r == 0) {
			SET_ERROR(s, "unknown %s '%s'", group ? "group" : "user", item);
			return;
		}
	}
	if (*n >= TD_CONFIG_MAX_LIST) {
		SET_ERROR(s, "too many items (at most %d)", TD_CONFIG_MAX_LIST);
		return;
	}
	v = realloc(*arr, (*n + 1) * sizeof(*v));
	if (!v) {
		s->x->oom = true;
		return;
	}
	v[(*n)++] = id;
	*arr = v;
}

static void user_item(const struct cfg_setting *s, const char *item)
{
	id_item(s, item, false);
}

static void group_item(const struct cfg_setting *s, const char *item)
{
	id_item(s, item, true);
}

/* An array of uids or gids at k->off, its count at k->off2. */
static void set_ids(const struct cfg_setting *s, const char *v)
{
	if (!s->continuation) {
		free(*(void **)s->field);
		*(void **)s->field = NULL;
		*(size_t *)((char *)s->base + s->k->off2) = 0;
	}
	split_list(s, v, s->k->kind->item);
}

/* ---- the kinds, and the tables --------------------------------------------------------------- */

/* Setter, dumper, and for lists the item taker. */
static const struct cfg_kind K_PATH = { set_path, cfg_dump_str, NULL };
static const struct cfg_kind K_CAFILE = { set_cafile, cfg_dump_str, NULL };
static const struct cfg_kind K_CREDFILE = { set_credfile, cfg_dump_credfile, NULL };
static const struct cfg_kind K_STR = { set_str, cfg_dump_str, NULL };
static const struct cfg_kind K_LISTEN = { set_listen, cfg_dump_str, NULL };
static const struct cfg_kind K_TOKEN = { set_token, cfg_dump_str, NULL };
static const struct cfg_kind K_GROUPNAME = { set_groupname, cfg_dump_admin_group, NULL };
static const struct cfg_kind K_ENDPOINT = { set_endpoint, cfg_dump_str, NULL };
static const struct cfg_kind K_BUCKET = { set_bucket, cfg_dump_str, NULL };
static const struct cfg_kind K_PREFIX = { set_prefix, cfg_dump_str, NULL };
static const struct cfg_kind K_CONNECT_TO = { set_connect_to, cfg_dump_str, NULL };
static const struct cfg_kind K_SIZE = { set_size, cfg_dump_size, NULL };
static const struct cfg_kind K_OPTSIZE = { set_optsize, cfg_dump_optsize, NULL };
static const struct cfg_kind K_SIZEPCT = { set_sizepct, cfg_dump_sizepct, NULL };
static const struct cfg_kind K_DURATION = { set_duration, cfg_dump_duration, NULL };
/* The dump writes both watermarks from the high one's row: one comment when unset. */
static const struct cfg_kind K_HIGH_WATERMARK = { set_pct, cfg_dump_watermarks, NULL };
static const struct cfg_kind K_LOW_WATERMARK = { set_pct, NULL, NULL };
static const struct cfg_kind K_BOOL = { set_bool, cfg_dump_bool, NULL };
static const struct cfg_kind K_UINT = { set_uint, cfg_dump_uint, NULL };
static const struct cfg_kind K_U64 = { set_u64, cfg_dump_u64, NULL };
static const struct cfg_kind K_ENUM = { set_enum, cfg_dump_enum, NULL };
static const struct cfg_kind K_SCHEDULE = { set_schedule, cfg_dump_schedule, NULL };
static const struct cfg_kind K_LIST = { set_strlist, cfg_dump_list, push_item };
static const struct cfg_kind K_PATHLIST = { set_strlist, cfg_dump_list, path_item };
static const struct cfg_kind K_GLOBS = { set_strlist, cfg_dump_list, glob_item };
static const struct cfg_kind K_OWNERS = { set_ids, cfg_dump_owners, user_item };
static const struct cfg_kind K_GROUPS = { set_ids, cfg_dump_groups, group_item };

static const struct cfg_enumval log_levels[] = {
	{ "error", TD_LOG_ERROR }, { "warning", TD_LOG_WARNING }, { "notice", TD_LOG_NOTICE },
	{ "info", TD_LOG_INFO },   { "debug", TD_LOG_DEBUG },     { NULL, 0 },
};
static const struct cfg_enumval target_types[] = {
	{ "s3", TD_TARGET_S3 },
	{ "dir", TD_TARGET_DIR },
	{ NULL, 0 },
};
static const struct cfg_enumval addressings[] = {
	{ "path", TD_ADDRESSING_PATH },
	{ "virtual", TD_ADDRESSING_VIRTUAL },
	{ NULL, 0 },
};
static const struct cfg_enumval age_bys[] = {
	{ "atime", TD_AGE_ATIME },
	{ "mtime", TD_AGE_MTIME },
	{ "ctime", TD_AGE_CTIME },
	{ "newest", TD_AGE_NEWEST },
	{ NULL, 0 },
};

/*
 * One row per key, in the order the dump writes them. The rows stay one long
 * list per section on purpose: reading down a table is how one checks what a
 * section accepts, and each row is one line.
 */
#define KEY(strct, kd, f, ...)                                                                     \
	{                                                                                          \
		.field = #f, .kind = &kd, .off = offsetof(strct, f), __VA_ARGS__                   \
	}
#define TK(kd, f, ...) KEY(struct td_config, kd, f, __VA_ARGS__)
#define GK(kd, f, ...) KEY(struct td_target_conf, kd, f, __VA_ARGS__)
#define PK(kd, f, ...) KEY(struct td_policy_conf, kd, f, __VA_ARGS__)

const struct cfg_keydef cfg_tierd_keys[] = {
	TK(K_PATH, state_dir),
	TK(K_PATH, cache_dir),
	TK(K_PATH, run_dir),
	TK(K_SIZEPCT, cache_size),
	TK(K_SIZEPCT, pin_quota), /* per uid not root or admin_group; % of the cache limit */
	TK(K_ENUM, log_level, .ev = log_levels),
	TK(K_GROUPNAME, admin_group),
	TK(K_UINT, max_transfers, .min = 1, .max = 1024),
	TK(K_DURATION, retention_s),
	TK(K_LIST, no_hydrate),
	TK(K_BOOL, stream_direct_io),
	TK(K_LISTEN, metrics_listen),   /* off by default */
	TK(K_DURATION, stop_timeout_s), /* under the unit's TimeoutStopSec */
	TK(K_SCHEDULE, gc_schedule),
	TK(K_PATHLIST, sighting_roots),
	{ NULL },
};

const struct cfg_keydef cfg_target_keys[] = {
	GK(K_ENUM, type, .ev = target_types),
	GK(K_ENDPOINT, endpoint, .flags = F_S3),
	GK(K_TOKEN, region, .flags = F_S3),
	GK(K_BUCKET, bucket, .flags = F_S3),
	GK(K_PREFIX, prefix, .flags = F_S3),
	GK(K_ENUM, addressing, .ev = addressings, .flags = F_S3),
	GK(K_CREDFILE, credentials_file, .flags = F_S3),
	GK(K_TOKEN, storage_class, .flags = F_S3),
	GK(K_SIZE, multipart_threshold_bytes, .min = 5 * MiB, .max = 5 * TiB, .flags = F_S3),
	GK(K_SIZE, part_size_bytes, .min = 5 * MiB, .max = 5 * GiB, .flags = F_S3),
	GK(K_UINT, max_connections, .min = 1, .max = 1024, .flags = F_S3),
	GK(K_SIZE, bandwidth_limit_bytes, .max = UINT64_MAX, .flags = F_S3),
	GK(K_CAFILE, ca_file, .flags = F_S3),
	GK(K_CONNECT_TO, connect_to, .flags = F_S3),
	GK(K_BOOL, delete_versions, .flags = F_S3),
	GK(K_PATH, path, .flags = F_DIR),
	{ NULL },
};

const struct cfg_keydef cfg_policy_keys[] = {
	PK(K_PATHLIST, paths),
	PK(K_STR, target),
	PK(K_ENUM, age_by, .ev = age_bys),
	PK(K_DURATION, min_age_s),
	PK(K_SIZE, min_size_bytes, .max = UINT64_MAX),
	PK(K_OPTSIZE, max_size_bytes, .max = UINT64_MAX),
	PK(K_GLOBS, include),
	PK(K_GLOBS, exclude),
	PK(K_OWNERS, owners, .off2 = offsetof(struct td_policy_conf, n_owners)),
	PK(K_GROUPS, groups, .off2 = offsetof(struct td_policy_conf, n_groups)),
	PK(K_SCHEDULE, schedule),
	PK(K_HIGH_WATERMARK, high_watermark_pct),
	PK(K_LOW_WATERMARK, low_watermark_pct),
	PK(K_SIZE, max_bytes_per_run, .max = UINT64_MAX),
	PK(K_U64, max_files_per_run),
	PK(K_BOOL, keep_cached),
	PK(K_BOOL, one_filesystem),
	PK(K_UINT, hot_recall_reads, .min = 0, .max = 1000), /* 0: off */
	PK(K_DURATION, hot_recall_window_s),
	{ NULL },
};
#undef KEY
#undef TK
#undef GK
#undef PK

_Static_assert(TD_ARRAY_SIZE(cfg_target_keys) <= CFG_MAX_KEYS, "cfg_keylines too small");
_Static_assert(TD_ARRAY_SIZE(cfg_policy_keys) <= CFG_MAX_KEYS, "cfg_keylines too small");

void cfg_set_value(struct cfg_ctx *x, const struct cfg_keydef *k, const char *key, void *base,
                   const char *v, bool continuation)
{
	const struct cfg_setting s = {
		.x = x,
		.k = k,
		.key = key,
		.base = base,
		.field = (char *)base + k->off,
		.continuation = continuation,
	};

	if (continuation && !k->kind->item) {
		SET_ERROR(&s, "continuation line (indented) for a key that is not a list");
		return;
	}
	k->kind->set(&s, v);
}

/* ---- key names ------------------------------------------------------------------------------- */

/* The key name as written in the file: field names minus their unit suffix. */
void cfg_key_name(char *buf, size_t n, const struct cfg_keydef *k)
{
	static const char *const suffixes[] = { "_bytes", "_pct", "_s" };
	size_t len = strlen(k->field);

	snprintf(buf, n, "%s", k->field);
	/* max_bytes_per_run and max_files_per_run keep their names. */
	for (size_t i = 0; i < TD_ARRAY_SIZE(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		if (len > sl && strcmp(k->field + len - sl, suffixes[i]) == 0 && len - sl < n) {
			buf[len - sl] = '\0';
			break;
		}
	}
}

int cfg_key_index(const struct cfg_keydef *keys, const char *name)
{
	char kn[64];

	for (int i = 0; keys[i].field; i++) {
		cfg_key_name(kn, sizeof(kn), &keys[i]);
		if (strcmp(kn, name) == 0)
			return i;
	}
	return -1;
}

static unsigned edit_distance(const char *a, const char *b)
{
	unsigned d[64], prev, tmp;
	size_t la = strlen(a), lb = strlen(b);

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		d[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		prev = d[0];
		d[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			tmp = d[j];
			d[j] =
			    TD_MIN(TD_MIN(d[j] + 1, d[j - 1] + 1), prev + (a[i - 1] != b[j - 1]));
			prev = tmp;
		}
	}
	return d[lb];
}

static const char *section_label(enum cfg_sect k)
{
	return k == SECT_TIERD ? "[tierd]" : k == SECT_TARGET ? "[target]" : "[policy]";
}

void cfg_unknown_key(struct cfg_ctx *x, const struct cfg_keydef *keys, const char *name)
{
	char kn[64], best[64] = "";
	unsigned bestd = 3;

	for (int i = 0; keys[i].field; i++) {
		cfg_key_name(kn, sizeof(kn), &keys[i]);
		unsigned d = edit_distance(name, kn);
		if (d < bestd) {
			bestd = d;
			snprintf(best, sizeof(best), "%s", kn);
		}
	}
	if (*best)
		cfg_add_error(x, x->lineno, name, "unknown key in %s (did you mean '%s'?)",
		              section_label(x->sect), best);
	else
		cfg_add_error(x, x->lineno, name, "unknown key in %s", section_label(x->sect));
}

/* ---- defaults -------------------------------------------------------------------------------- */

int cfg_tierd_defaults(struct td_config *c)
{
	c->state_dir = strdup("/var/lib/tierd");
	c->cache_dir = strdup("/var/cache/tierd");
	c->run_dir = strdup("/run/tierd");
	c->admin_group = strdup("tierd");
	c->cache_size = (struct td_size_or_pct){ .is_pct = true, .pct = 10 };
	c->pin_quota = (struct td_size_or_pct){ .is_pct = true, .pct = 10 };
	c->log_level = TD_LOG_INFO;
	c->max_transfers = 8;
	c->retention_s = 30 * 86400;
	c->stop_timeout_s = 60;
	c->stream_direct_io = true;
	if (!c->state_dir || !c->cache_dir || !c->run_dir || !c->admin_group ||
	    cfg_strlist_push(&c->no_hydrate, "updatedb") < 0 ||
	    cfg_strlist_push(&c->no_hydrate, "clamscan") < 0)
		return -ENOMEM;
	return 0;
}

/* Region, prefix and storage class are filled in by the whole-file check, for s3 only. */
void cfg_target_defaults(struct td_target_conf *t)
{
	t->multipart_threshold_bytes = 64 * MiB;
	t->part_size_bytes = 16 * MiB;
	t->max_connections = 8;
	t->addressing = TD_ADDRESSING_PATH;
}

int cfg_policy_defaults(struct td_policy_conf *p)
{
	p->age_by = TD_AGE_ATIME;
	p->min_age_s = 90 * 86400;
	p->min_size_bytes = MiB;
	p->max_size_bytes = UINT64_MAX;
	p->schedule.kind = TD_SCHEDULE_MANUAL;
	p->one_filesystem = true;
	p->hot_recall_window_s = 7 * 86400;
	return cfg_strlist_push(&p->include, "*");
}
