/*
 * config — tierd.conf into validated, typed structs. See config.h.
 *
 * The whole file is read into memory first (capped), then fed to inih one line
 * at a time through a reader that does the line-level work inih cannot: it
 * counts lines (the handler API of Debian's libinih has no line numbers), strips
 * inline comments starting with ';' or '#', parses section headers, joins
 * indented continuation lines onto list values, and reports syntax errors.
 * Lines longer than inih's fixed 200-byte buffer (long paths) are handled here
 * too instead of being split silently. inih splits "key = value" and calls
 * handle_kv(); every check appends to an error list instead of stopping, and
 * whole-file checks (required keys, references, overlaps) run once at the end.
 *
 * Any thread: no globals, getpwnam_r/getgrnam_r only.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define KiB (UINT64_C(1024))
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define TiB (GiB * 1024)

#define MAX_KEYS        32
#define MAX_SECTIONS    1024 /* targets, and policies, each */
#define MAX_ROOTS       4096 /* policy paths in all policies */
#define MAX_VALUE       8192
#define MAX_CREDS_BYTES 65536
#define MAX_SECRET      256

/* ---- value parsers -------------------------------------------------------------------------- */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Parses "123" or "123.456" into an integer part and a fraction numerator/denominator. */
static int parse_decimal(const char **sp, uint64_t *out_int, uint64_t *out_num, uint64_t *out_den)
{
	const char *s = *sp;
	uint64_t v = 0, num = 0, den = 1;
	bool digits = false;

	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		digits = true;
		s++;
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		while (isdigit((unsigned char)*s)) {
			if (den >= UINT64_C(1000000000))
				return -EINVAL; /* more than 9 fraction digits */
			num = num * 10 + (unsigned)(*s - '0');
			den *= 10;
			s++;
		}
		digits = true;
	}
	if (!digits)
		return -EINVAL;
	*sp = s;
	*out_int = v;
	*out_num = num;
	*out_den = den;
	return 0;
}

static int size_unit(const char *s, uint64_t *out_mult)
{
	uint64_t m;

	switch (*s) {
	case '\0':
		*out_mult = 1;
		return 0;
	case 'k':
	case 'K':
		m = KiB;
		break;
	case 'm':
	case 'M':
		m = MiB;
		break;
	case 'g':
	case 'G':
		m = GiB;
		break;
	case 't':
	case 'T':
		m = TiB;
		break;
	default:
		return -EINVAL;
	}
	s++;
	/* Also accept "KB", "KiB": people write them, and they mean the same here. */
	if (*s == 'i')
		s++;
	if (*s == 'B' || *s == 'b')
		s++;
	if (*s)
		return -EINVAL;
	*out_mult = m;
	return 0;
}

int td_parse_size(const char *s, uint64_t *out_bytes)
{
	uint64_t ip, num, den, mult, v, frac;
	int r;

	if (!s || !*s)
		return -EINVAL;
	r = parse_decimal(&s, &ip, &num, &den);
	if (r < 0)
		return r;
	r = size_unit(s, &mult);
	if (r < 0)
		return r;
	if (mult == 1 && num != 0)
		return -EINVAL; /* fractional bytes */
	if (ip > UINT64_MAX / mult)
		return -ERANGE;
	v = ip * mult;
	/* num < den <= 1e9 and mult <= 2^40: the product fits in 70 bits, so split it. */
	frac = (mult / den) * num + ((mult % den) * num) / den;
	if (v > UINT64_MAX - frac)
		return -ERANGE;
	*out_bytes = v + frac;
	return 0;
}

int td_parse_percent(const char *s, double *out_pct)
{
	uint64_t ip, num, den;
	double v;
	int r;

	if (!s || !*s)
		return -EINVAL;
	r = parse_decimal(&s, &ip, &num, &den);
	if (r < 0)
		return r == -ERANGE ? -ERANGE : -EINVAL;
	if (*s == '%')
		s++;
	if (*s)
		return -EINVAL;
	if (ip > 100)
		return -ERANGE;
	v = (double)ip + (double)num / (double)den;
	if (v > 100.0)
		return -ERANGE;
	*out_pct = v;
	return 0;
}

int td_parse_size_or_pct(const char *s, struct td_size_or_pct *out)
{
	size_t n = s ? strlen(s) : 0;
	int r;

	if (n && s[n - 1] == '%') {
		double pct;
		r = td_parse_percent(s, &pct);
		if (r < 0)
			return r;
		*out = (struct td_size_or_pct){ .is_pct = true, .pct = pct };
		return 0;
	}
	uint64_t bytes;
	r = td_parse_size(s, &bytes);
	if (r < 0)
		return r;
	*out = (struct td_size_or_pct){ .is_pct = false, .bytes = bytes };
	return 0;
}

int td_parse_duration(const char *s, int64_t *out_s)
{
	int64_t total = 0;
	bool any = false;

	if (!s || !*s)
		return -EINVAL;
	/* One or more number+unit groups: "90d", "1h30m". A bare "0" is allowed. */
	if (strcmp(s, "0") == 0) {
		*out_s = 0;
		return 0;
	}
	while (*s) {
		uint64_t v = 0;
		int64_t mult;
		bool digits = false;

		while (isdigit((unsigned char)*s)) {
			unsigned d = (unsigned)(*s - '0');
			if (v > ((uint64_t)INT64_MAX - d) / 10)
				return -ERANGE;
			v = v * 10 + d;
			digits = true;
			s++;
		}
		if (!digits)
			return -EINVAL;
		switch (*s) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case 'w':
			mult = 7 * 86400;
			break;
		default:
			return -EINVAL;
		}
		s++;
		if (v > (uint64_t)(INT64_MAX / mult))
			return -ERANGE;
		if ((int64_t)v * mult > INT64_MAX - total)
			return -ERANGE;
		total += (int64_t)v * mult;
		any = true;
	}
	if (!any)
		return -EINVAL;
	*out_s = total;
	return 0;
}

int td_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < TD_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* "HH:MM" (H:MM too), 00:00..23:59, nothing after it. */
static int parse_hhmm(const char *s, int *hour, int *minute)
{
	int h = 0, m;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	h = s[0] - '0';
	s++;
	if (isdigit((unsigned char)*s)) {
		h = h * 10 + (*s - '0');
		s++;
	}
	if (*s != ':' || !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]) || s[3])
		return -EINVAL;
	m = (s[1] - '0') * 10 + (s[2] - '0');
	if (h > 23 || m > 59)
		return -ERANGE;
	*hour = h;
	*minute = m;
	return 0;
}

static const char *const weekdays[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
static const char *const weekdays_long[] = { "sunday",   "monday", "tuesday", "wednesday",
	                                     "thursday", "friday", "saturday" };

int td_parse_schedule(const char *s, struct td_schedule *out)
{
	char buf[64], *tok[4], *save = NULL, *t;
	size_t n = 0;
	struct td_schedule sch = { .kind = TD_SCHEDULE_MANUAL };
	int r;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == TD_ARRAY_SIZE(tok))
			return -EINVAL;
		tok[n++] = t;
	}
	if (n == 1 && strcmp(tok[0], "manual") == 0) {
		sch.kind = TD_SCHEDULE_MANUAL;
	} else if (n == 1 && strcmp(tok[0], "hourly") == 0) {
		sch.kind = TD_SCHEDULE_HOURLY;
	} else if (n == 2 && strcmp(tok[0], "every") == 0) {
		sch.kind = TD_SCHEDULE_EVERY;
		r = td_parse_duration(tok[1], &sch.every_s);
		if (r < 0)
			return r;
		if (sch.every_s <= 0)
			return -ERANGE;
	} else if (n == 2 && strcmp(tok[0], "daily") == 0) {
		sch.kind = TD_SCHEDULE_DAILY;
		r = parse_hhmm(tok[1], &sch.hour, &sch.minute);
		if (r < 0)
			return r;
	} else if (n == 3 && strcmp(tok[0], "weekly") == 0) {
		sch.kind = TD_SCHEDULE_WEEKLY;
		sch.weekday = -1;
		for (int i = 0; i < 7; i++)
			if (strcasecmp(tok[1], weekdays[i]) == 0 ||
			    strcasecmp(tok[1], weekdays_long[i]) == 0)
				sch.weekday = i;
		if (sch.weekday < 0)
			return -EINVAL;
		r = parse_hhmm(tok[2], &sch.hour, &sch.minute);
		if (r < 0)
			return r;
	} else {
		return -EINVAL;
	}
	*out = sch;
	return 0;
}

/* ---- formatting helpers (for messages and the dump) --------------------------------------- */

static void fmt_size(char *buf, size_t n, uint64_t v)
{
	static const struct {
		uint64_t m;
		char c;
	} units[] = { { TiB, 'T' }, { GiB, 'G' }, { MiB, 'M' }, { KiB, 'K' } };

	for (size_t i = 0; i < TD_ARRAY_SIZE(units); i++) {
		if (v && v % units[i].m == 0) {
			snprintf(buf, n, "%" PRIu64 "%c", v / units[i].m, units[i].c);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64, v);
}

static void fmt_duration(char *buf, size_t n, int64_t v)
{
	static const struct {
		int64_t m;
		char c;
	} units[] = { { 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };

	if (v == 0) {
		snprintf(buf, n, "0");
		return;
	}
	for (size_t i = 0; i < TD_ARRAY_SIZE(units); i++) {
		if (v % units[i].m == 0) {
			snprintf(buf, n, "%" PRId64 "%c", v / units[i].m, units[i].c);
			return;
		}
	}
	snprintf(buf, n, "%" PRId64 "s", v);
}

static void fmt_schedule(char *buf, size_t n, const struct td_schedule *s)
{
	char d[32];

	switch (s->kind) {
	case TD_SCHEDULE_EVERY:
		fmt_duration(d, sizeof(d), s->every_s);
		snprintf(buf, n, "every %s", d);
		break;
	case TD_SCHEDULE_HOURLY:
		snprintf(buf, n, "hourly");
		break;
	case TD_SCHEDULE_DAILY:
		snprintf(buf, n, "daily %02d:%02d", s->hour, s->minute);
		break;
	case TD_SCHEDULE_WEEKLY:
		snprintf(buf, n, "weekly %s %02d:%02d", weekdays[s->weekday % 7], s->hour,
		         s->minute);
		break;
	default:
		snprintf(buf, n, "manual");
		break;
	}
}

/* ---- the parse context ------------------------------------------------------------------- */

enum sect_kind {
	SECT_NONE,   /* before the first header */
	SECT_TIERD,  /* [tierd] */
	SECT_TARGET, /* [target "NAME"] */
	SECT_POLICY, /* [policy "NAME"] */
	SECT_IGNORE, /* a bad or duplicate header, already reported: skip its keys quietly */
};

/* The line each key of one section was set on, 0 if not set. */
struct keylines {
	unsigned line[MAX_KEYS];
	bool bad[MAX_KEYS]; /* its value was rejected: whole-file checks skip it */
};

struct ctx {
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
	enum sect_kind sect;
	size_t idx;
	struct keylines *keys;

	/* The key of the last key line in this section, for continuation lines. */
	char prev_key[64];

	unsigned tierd_line;
	struct keylines tierd_keys;
	struct keylines *target_keys; /* parallel to c->targets */
	struct keylines *policy_keys; /* parallel to c->policies */
};

static void add_error(struct ctx *x, unsigned line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errors_append(struct td_config_errors *errs, const char *file, unsigned line,
                         const char *key, char *msg)
{
	struct td_config_error *v;

	v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	if (!v)
		goto fail;
	errs->v = v;
	v[errs->n] = (struct td_config_error){ .line = line, .msg = msg };
	v[errs->n].file = strdup(file ? file : "");
	v[errs->n].key = key ? strdup(key) : NULL;
	if (!v[errs->n].file || (key && !v[errs->n].key)) {
		free(v[errs->n].file);
		free(v[errs->n].key);
		goto fail;
	}
	errs->n++;
	return 0;
fail:
	free(msg);
	return -ENOMEM;
}

static void add_error(struct ctx *x, unsigned line, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (x->too_many)
		return;
	if (x->errs->n - x->first_err >= TD_CONFIG_MAX_ERRORS) {
		x->too_many = true;
		msg = strdup("too many errors; stopping here");
		if (!msg || errors_append(x->errs, x->file, line, NULL, msg) < 0)
			x->oom = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) {
		va_end(ap);
		x->oom = true;
		return;
	}
	va_end(ap);
	if (errors_append(x->errs, x->file, line, key, msg) < 0)
		x->oom = true;
}

static char *xstrdup(struct ctx *x, const char *s)
{
	char *d = strdup(s);

	if (!d)
		x->oom = true;
	return d;
}

static void set_str(struct ctx *x, char **dst, const char *v)
{
	char *d = xstrdup(x, v);

	if (!d)
		return;
	free(*dst);
	*dst = d;
}

static void strlist_free(struct td_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strlist_push(struct td_strlist *l, const char *s)
{
	char **v, *d;

	if (l->n >= TD_CONFIG_MAX_LIST)
		return -E2BIG;
	d = strdup(s);
	if (!d)
		return -ENOMEM;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v) {
		free(d);
		return -ENOMEM;
	}
	l->v = v;
	l->v[l->n++] = d;
	return 0;
}

/*
 * Normalizes an absolute path: collapses "//" and "/./", drops a trailing '/'.
 * Returns a malloc'd string, or NULL with *why set.
 */
static char *normalize_path(const char *p, const char **why)
{
	size_t n = strlen(p);
	char *out, *o;

	if (p[0] != '/') {
		*why = "must be an absolute path (start with '/')";
		return NULL;
	}
	if (n >= PATH_MAX) {
		*why = "path too long";
		return NULL;
	}
	for (const char *q = p; *q; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			*why = "path contains a control character";
			return NULL;
		}
	}
	out = malloc(n + 1);
	if (!out) {
		*why = NULL;
		return NULL;
	}
	o = out;
	while (*p) {
		const char *seg;
		size_t len;

		while (*p == '/')
			p++;
		seg = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			free(out);
			*why = "must not contain '..'";
			return NULL;
		}
		*o++ = '/';
		memcpy(o, seg, len);
		o += len;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	return out;
}

/* True if `inner` is `outer` or below it. Both normalized. */
static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

/* Splits a list value at spaces, tabs and commas; calls fn for each item. */
static void split_list(struct ctx *x, const char *v, void (*fn)(struct ctx *, void *, const char *),
                       void *arg)
{
	char *copy = xstrdup(x, v), *save = NULL;

	if (!copy)
		return;
	for (char *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save))
		fn(x, arg, t);
	free(copy);
}

/* ---- keys ---------------------------------------------------------------------------------- */

enum vkind {
	V_PATH,      /* absolute path, normalized */
	V_OPTPATH,   /* same, empty = NULL */
	V_STR,       /* non-empty string */
	V_OPTSTR,    /* string, empty = NULL */
	V_SIZE,      /* uint64_t bytes, [min, max] */
	V_OPTSIZE,   /* same, empty = UINT64_MAX */
	V_SIZEPCT,   /* struct td_size_or_pct */
	V_DURATION,  /* int64_t seconds */
	V_PCT,       /* double 0..100 */
	V_BOOL,      /* bool */
	V_UINT,      /* unsigned, [min, max] */
	V_U64,       /* uint64_t count */
	V_ENUM,      /* int-sized enum, from names[] */
	V_LIST,      /* struct td_strlist */
	V_PATHLIST,  /* struct td_strlist of absolute paths */
	V_GLOBS,     /* struct td_strlist of globs */
	V_OWNERS,    /* uid_t array at off, count at off2 */
	V_GROUPS,    /* gid_t array at off, count at off2 */
	V_SCHEDULE,  /* struct td_schedule */
	V_ENDPOINT,  /* http(s)://host[:port] */
	V_BUCKET,    /* S3 bucket name */
	V_PREFIX,    /* "" or ends in '/' */
	V_CREDFILE,  /* credentials file: path, and its keys loaded */
	V_TOKEN,     /* non-empty, no blanks (region, storage class) */
	V_GROUPNAME, /* group name or gid, may be empty; resolved at the end */
	V_CAFILE,    /* an existing regular file, empty = NULL */
};

struct enumval {
	const char *name;
	int value;
};

#define F_S3  1u /* target key that only applies to type = s3 */
#define F_DIR 2u /* target key that only applies to type = dir */

struct keydef {
	const char *name;
	enum vkind kind;
	size_t off, off2;
	uint64_t min, max;
	const struct enumval *ev;
	unsigned flags;
};

static const struct enumval log_levels[] = {
	{ "error", TD_LOG_ERROR }, { "warning", TD_LOG_WARNING }, { "notice", TD_LOG_NOTICE },
	{ "info", TD_LOG_INFO },   { "debug", TD_LOG_DEBUG },     { NULL, 0 },
};
static const struct enumval target_types[] = {
	{ "s3", TD_TARGET_S3 },
	{ "dir", TD_TARGET_DIR },
	{ NULL, 0 },
};
static const struct enumval addressings[] = {
	{ "path", TD_ADDRESSING_PATH },
	{ "virtual", TD_ADDRESSING_VIRTUAL },
	{ NULL, 0 },
};
static const struct enumval age_bys[] = {
	{ "atime", TD_AGE_ATIME },
	{ "mtime", TD_AGE_MTIME },
	{ "ctime", TD_AGE_CTIME },
	{ "newest", TD_AGE_NEWEST },
	{ NULL, 0 },
};

#define TK(n, k, f, ...)                                                                           \
	{                                                                                          \
		.name = #f, .kind = k, .off = offsetof(struct td_config, f), __VA_ARGS__           \
	}
static const struct keydef tierd_keys[] = {
	TK(0, V_PATH, state_dir),
	TK(0, V_PATH, cache_dir),
	TK(0, V_PATH, run_dir),
	TK(0, V_SIZEPCT, cache_size),
	TK(0, V_ENUM, log_level, .ev = log_levels),
	TK(0, V_GROUPNAME, admin_group),
	TK(0, V_UINT, max_transfers, .min = 1, .max = 1024),
	TK(0, V_DURATION, retention_s, .max = INT64_MAX),
	TK(0, V_LIST, no_hydrate),
	TK(0, V_BOOL, stream_direct_io),
	{ NULL },
};
#undef TK

#define GK(k, f, ...)                                                                              \
	{                                                                                          \
		.name = #f, .kind = k, .off = offsetof(struct td_target_conf, f), __VA_ARGS__      \
	}
static const struct keydef target_keys[] = {
	GK(V_ENUM, type, .ev = target_types),
	GK(V_ENDPOINT, endpoint, .flags = F_S3),
	GK(V_TOKEN, region, .flags = F_S3),
	GK(V_BUCKET, bucket, .flags = F_S3),
	GK(V_PREFIX, prefix, .flags = F_S3),
	GK(V_ENUM, addressing, .ev = addressings, .flags = F_S3),
	GK(V_CREDFILE, credentials_file, .flags = F_S3),
	GK(V_TOKEN, storage_class, .flags = F_S3),
	GK(V_SIZE, multipart_threshold_bytes, .min = 5 * MiB, .max = 5 * TiB, .flags = F_S3),
	GK(V_SIZE, part_size_bytes, .min = 5 * MiB, .max = 5 * GiB, .flags = F_S3),
	GK(V_UINT, max_connections, .min = 1, .max = 1024, .flags = F_S3),
	GK(V_SIZE, bandwidth_limit_bytes, .max = UINT64_MAX, .flags = F_S3),
	GK(V_CAFILE, ca_file, .flags = F_S3),
	GK(V_PATH, path, .flags = F_DIR),
	{ NULL },
};
#undef GK

#define PK(k, f, ...)                                                                              \
	{                                                                                          \
		.name = #f, .kind = k, .off = offsetof(struct td_policy_conf, f), __VA_ARGS__      \
	}
static const struct keydef policy_keys[] = {
	PK(V_PATHLIST, paths),
	PK(V_STR, target),
	PK(V_ENUM, age_by, .ev = age_bys),
	PK(V_DURATION, min_age_s, .max = INT64_MAX),
	PK(V_SIZE, min_size_bytes, .max = UINT64_MAX),
	PK(V_OPTSIZE, max_size_bytes, .max = UINT64_MAX),
	PK(V_GLOBS, include),
	PK(V_GLOBS, exclude),
	PK(V_OWNERS, owners, .off2 = offsetof(struct td_policy_conf, n_owners)),
	PK(V_GROUPS, groups, .off2 = offsetof(struct td_policy_conf, n_groups)),
	PK(V_SCHEDULE, schedule),
	PK(V_PCT, high_watermark_pct),
	PK(V_PCT, low_watermark_pct),
	PK(V_SIZE, max_bytes_per_run, .max = UINT64_MAX),
	PK(V_U64, max_files_per_run),
	PK(V_BOOL, keep_cached),
	PK(V_BOOL, one_filesystem),
	{ NULL },
};
#undef PK

/* The key name as written in the file: field names minus their unit suffix. */
static void key_name(char *buf, size_t n, const struct keydef *k)
{
	static const char *const suffixes[] = { "_bytes", "_pct", "_s" };
	size_t len = strlen(k->name);

	snprintf(buf, n, "%s", k->name);
	/* max_bytes_per_run and max_files_per_run keep their names. */
	for (size_t i = 0; i < TD_ARRAY_SIZE(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		if (len > sl && strcmp(k->name + len - sl, suffixes[i]) == 0 && len - sl < n) {
			buf[len - sl] = '\0';
			break;
		}
	}
}

static int key_index(const struct keydef *keys, const char *name)
{
	char kn[64];

	for (int i = 0; keys[i].name; i++) {
		key_name(kn, sizeof(kn), &keys[i]);
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

static const char *section_label(enum sect_kind k)
{
	return k == SECT_TIERD ? "[tierd]" : k == SECT_TARGET ? "[target]" : "[policy]";
}

static void unknown_key(struct ctx *x, const struct keydef *keys, const char *name)
{
	char kn[64], best[64] = "";
	unsigned bestd = 3;

	for (int i = 0; keys[i].name; i++) {
		key_name(kn, sizeof(kn), &keys[i]);
		unsigned d = edit_distance(name, kn);
		if (d < bestd) {
			bestd = d;
			snprintf(best, sizeof(best), "%s", kn);
		}
	}
	if (*best)
		add_error(x, x->lineno, name, "unknown key in %s (did you mean '%s'?)",
		          section_label(x->sect), best);
	else
		add_error(x, x->lineno, name, "unknown key in %s", section_label(x->sect));
}

/* ---- value handlers ------------------------------------------------------------------------- */

struct item_arg {
	const char *key;
	void *dst;
	void *count;
	enum vkind kind;
};

static void list_item(struct ctx *x, void *arg, const char *item)
{
	struct item_arg *a = arg;
	struct td_strlist *l = a->dst;
	const char *why = NULL;
	char *norm = NULL;
	int r;

	if (a->kind == V_PATHLIST) {
		norm = normalize_path(item, &why);
		if (!norm) {
			if (why)
				add_error(x, x->lineno, a->key, "'%s' %s", item, why);
			else
				x->oom = true;
			return;
		}
		for (size_t i = 0; i < l->n; i++) {
			if (strcmp(l->v[i], norm) == 0) {
				add_error(x, x->lineno, a->key, "'%s' is listed twice", norm);
				free(norm);
				return;
			}
		}
		item = norm;
	} else if (a->kind == V_GLOBS) {
		/* fnmatch() would treat an unclosed '[' as a literal; that is never what was meant.
		 */
		const char *q = item;
		while ((q = strchr(q, '['))) {
			const char *b = q + 1, *close;
			if (*b == '!' || *b == '^')
				b++;
			if (*b == ']') /* a ']' first in the set is a literal */
				b++;
			close = strchr(b, ']');
			if (!close) {
				add_error(x, x->lineno, a->key, "glob '%s' has an unclosed '['",
				          item);
				return;
			}
			q = close + 1;
		}
	}
	r = strlist_push(l, item);
	if (r == -E2BIG)
		add_error(x, x->lineno, a->key, "too many items (at most %d)", TD_CONFIG_MAX_LIST);
	else if (r < 0)
		x->oom = true;
	free(norm);
}

static bool parse_id(const char *s, uint32_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (unsigned)(*s - '0');
		if (v >= UINT32_MAX) /* (uid_t)-1 means "no change" to chown() */
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* Resolves a user or group name. Returns 1 found, 0 unknown, -errno. */
static int lookup_id(const char *name, bool group, uint32_t *out)
{
	char buf[16384];
	int r;

	if (group) {
		struct group gr, *res = NULL;
		r = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
		if (r == 0 && res)
			*out = (uint32_t)res->gr_gid;
	} else {
		struct passwd pw, *res = NULL;
		r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
		if (r == 0 && res)
			*out = (uint32_t)res->pw_uid;
	}
	if (r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
		return *out != UINT32_MAX ? 1 : 0;
	return -r;
}

static void id_item(struct ctx *x, void *arg, const char *item)
{
	struct item_arg *a = arg;
	bool group = a->kind == V_GROUPS;
	uint32_t id = UINT32_MAX, **arr = a->dst;
	size_t *n = a->count;
	uint32_t *v;
	int r;

	if (!parse_id(item, &id)) {
		id = UINT32_MAX;
		r = lookup_id(item, group, &id);
		if (r < 0) {
			add_error(x, x->lineno, a->key, "cannot look up %s '%s': %s",
			          group ? "group" : "user", item, strerror(-r));
			return;
		}
		if (r == 0) {
			add_error(x, x->lineno, a->key, "unknown %s '%s'", group ? "group" : "user",
			          item);
			return;
		}
	}
	if (*n >= TD_CONFIG_MAX_LIST) {
		add_error(x, x->lineno, a->key, "too many items (at most %d)", TD_CONFIG_MAX_LIST);
		return;
	}
	v = realloc(*arr, (*n + 1) * sizeof(*v));
	if (!v) {
		x->oom = true;
		return;
	}
	v[(*n)++] = id;
	*arr = v;
}

static bool valid_bucket(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)b[i]) && !isdigit((unsigned char)b[i]) && b[i] != '.' &&
		    b[i] != '-')
			return false;
	return true;
}

/* Checks "http(s)://host[:port][/]" and returns it without the trailing '/'. */
static char *check_endpoint(const char *v, const char **why)
{
	const char *host, *end, *p;
	size_t n;
	char *out;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else {
		*why = "must start with http:// or https://";
		return NULL;
	}
	end = host + strcspn(host, "/?#");
	if (*end && strcmp(end, "/") != 0) {
		*why = "must be scheme://host[:port], without a path";
		return NULL;
	}
	if (memchr(host, '@', (size_t)(end - host))) {
		*why = "must not contain credentials; use credentials_file";
		return NULL;
	}
	p = host;
	if (*p == '[') { /* IPv6 literal */
		p = memchr(p, ']', (size_t)(end - p));
		if (!p || p == host + 1) {
			*why = "has a bad IPv6 address";
			return NULL;
		}
		p++;
	} else {
		while (p < end && *p != ':') {
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') {
				*why = "has a bad host name";
				return NULL;
			}
			p++;
		}
		if (p == host) {
			*why = "has no host";
			return NULL;
		}
	}
	if (p < end) {
		unsigned long port = 0;
		if (*p != ':' || p + 1 == end) {
			*why = "has a bad port";
			return NULL;
		}
		for (p++; p < end; p++) {
			if (!isdigit((unsigned char)*p) ||
			    (port = port * 10 + (unsigned)(*p - '0')) > 65535) {
				*why = "has a bad port (1..65535)";
				return NULL;
			}
		}
		if (port == 0) {
			*why = "has a bad port (1..65535)";
			return NULL;
		}
	}
	n = (size_t)(end - v);
	out = strndup(v, n);
	if (!out)
		*why = NULL;
	return out;
}

/*
 * Reads a credentials file: "access_key = …" and "secret_key = …" lines, '#' or ';'
 * comments. It must be a regular file that neither group nor others can read or
 * write. Messages never quote the file's contents: they may be secrets.
 */
static void load_credentials(struct ctx *x, struct td_target_conf *t, const char *key,
                             const char *path)
{
	_cleanup_close_ int fd = -1;
	char *buf = NULL;
	char *access = NULL, *secret = NULL;
	struct stat st;
	unsigned line = 0;
	ssize_t n;
	char *p, *eol;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		add_error(x, x->lineno, key, "cannot open '%s': %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		add_error(x, x->lineno, key, "cannot stat '%s': %s", path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		add_error(x, x->lineno, key, "'%s' is not a regular file", path);
		return;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		/* Its owner could swap the keys, or read them: only root or us. */
		add_error(x, x->lineno, key, "'%s' is owned by uid %u, not by root or uid %u", path,
		          (unsigned)st.st_uid, (unsigned)geteuid());
		return;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		add_error(x, x->lineno, key,
		          "'%s' is accessible by group or others (mode %04o); run chmod 600 on it",
		          path, (unsigned)(st.st_mode & 07777));
		return;
	}
	if (st.st_size > MAX_CREDS_BYTES) {
		add_error(x, x->lineno, key, "'%s' is too big (over %d bytes)", path,
		          MAX_CREDS_BYTES);
		return;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		x->oom = true;
		return;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		add_error(x, x->lineno, key, "cannot read '%s': %s", path, strerror(errno));
		free(buf);
		return;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n)) {
		add_error(x, x->lineno, key, "'%s' contains a NUL byte", path);
		goto out;
	}
	for (p = buf; *p; p = eol) {
		char *name, *val, *eq, *end, **dst;

		line++;
		eol = strchr(p, '\n');
		eol = eol ? (*eol = '\0', eol + 1) : p + strlen(p);
		while (is_blank(*p))
			p++;
		end = p + strlen(p);
		while (end > p && (is_blank(end[-1]) || end[-1] == '\r'))
			*--end = '\0';
		if (!*p || *p == '#' || *p == ';')
			continue;
		eq = strchr(p, '=');
		if (!eq) {
			add_error(x, x->lineno, key,
			          "%s:%u: expected 'access_key = ...' or "
			          "'secret_key = ...'",
			          path, line);
			continue;
		}
		name = p;
		for (end = eq; end > name && is_blank(end[-1]);)
			*--end = '\0';
		*eq = '\0';
		val = eq + 1;
		while (is_blank(*val))
			val++;
		if (strcmp(name, "access_key") == 0)
			dst = &access;
		else if (strcmp(name, "secret_key") == 0)
			dst = &secret;
		else {
			add_error(x, x->lineno, key,
			          "%s:%u: unknown key (expected access_key or secret_key)", path,
			          line);
			continue;
		}
		if (*dst) {
			add_error(x, x->lineno, key, "%s:%u: %s is given twice", path, line, name);
			continue;
		}
		if (!*val || strlen(val) > MAX_SECRET || strpbrk(val, " \t")) {
			add_error(x, x->lineno, key, "%s:%u: %s is empty, too long or has blanks",
			          path, line, name);
			continue;
		}
		*dst = xstrdup(x, val);
	}
	if (!access)
		add_error(x, x->lineno, key, "'%s' has no access_key line", path);
	if (!secret)
		add_error(x, x->lineno, key, "'%s' has no secret_key line", path);
	if (access && secret) {
		free(t->access_key);
		free(t->secret_key);
		t->access_key = access;
		t->secret_key = secret;
		t->creds_from_env = false;
		access = secret = NULL;
	}
out:
	free(access);
	if (secret)
		explicit_bzero(secret, strlen(secret));
	free(secret);
	explicit_bzero(buf, (size_t)n);
	free(buf);
}

static void bad_value(struct ctx *x, const char *key, const char *v, int r, const char *what)
{
	if (r == -ERANGE)
		add_error(x, x->lineno, key, "'%s' is out of range for %s", v, what);
	else
		add_error(x, x->lineno, key, "'%s' is not %s", v, what);
}

static void set_value(struct ctx *x, const struct keydef *k, const char *key, void *base,
                      const char *v, bool continuation)
{
	char *p = (char *)base + k->off;
	const char *why = NULL;
	char buf[32], buf2[32];
	int r;

	if (continuation && k->kind != V_LIST && k->kind != V_PATHLIST && k->kind != V_GLOBS &&
	    k->kind != V_OWNERS && k->kind != V_GROUPS) {
		add_error(x, x->lineno, key,
		          "continuation line (indented) for a key that is not a list");
		return;
	}

	switch (k->kind) {
	case V_PATH:
	case V_OPTPATH:
	case V_CAFILE: {
		char *norm;
		struct stat st;
		if (!*v) {
			if (k->kind != V_PATH) {
				free(*(char **)p);
				*(char **)p = NULL;
			} else {
				add_error(x, x->lineno, key,
				          "empty value (an absolute path is needed)");
			}
			return;
		}
		norm = normalize_path(v, &why);
		if (!norm) {
			if (why)
				add_error(x, x->lineno, key, "'%s' %s", v, why);
			else
				x->oom = true;
			return;
		}
		if (k->kind == V_CAFILE && stat(norm, &st) < 0) {
			add_error(x, x->lineno, key, "cannot use '%s': %s", norm, strerror(errno));
			free(norm);
			return;
		}
		if (k->kind == V_CAFILE && !S_ISREG(st.st_mode)) {
			add_error(x, x->lineno, key, "'%s' is not a regular file", norm);
			free(norm);
			return;
		}
		free(*(char **)p);
		*(char **)p = norm;
		return;
	}
	case V_STR:
	case V_TOKEN:
		if (!*v) {
			add_error(x, x->lineno, key, "empty value");
			return;
		}
		if (k->kind == V_TOKEN && strpbrk(v, " \t")) {
			add_error(x, x->lineno, key, "'%s' must be one word", v);
			return;
		}
		set_str(x, (char **)p, v);
		return;
	case V_OPTSTR:
		if (!*v) {
			free(*(char **)p);
			*(char **)p = NULL;
			return;
		}
		set_str(x, (char **)p, v);
		return;
	case V_GROUPNAME:
		if (*v && strpbrk(v, " \t,")) {
			add_error(x, x->lineno, key, "'%s' must be one group name or gid", v);
			return;
		}
		set_str(x, (char **)p, v); /* "" means no admin group: root only */
		return;
	case V_SIZE:
	case V_OPTSIZE: {
		uint64_t bytes;
		if (!*v && k->kind == V_OPTSIZE) {
			*(uint64_t *)p = UINT64_MAX;
			return;
		}
		r = td_parse_size(v, &bytes);
		if (r < 0) {
			bad_value(x, key, v, r, "a size (bytes, or a number with K, M, G or T)");
			return;
		}
		if (bytes < k->min || bytes > k->max) {
			fmt_size(buf, sizeof(buf), k->min);
			fmt_size(buf2, sizeof(buf2), k->max);
			add_error(x, x->lineno, key, "%s is out of range (%s..%s)", v, buf, buf2);
			return;
		}
		*(uint64_t *)p = bytes;
		return;
	}
	case V_SIZEPCT:
		r = td_parse_size_or_pct(v, (struct td_size_or_pct *)p);
		if (r < 0)
			bad_value(x, key, v, r, "a size (K, M, G, T) or a percentage (0..100%)");
		return;
	case V_DURATION: {
		int64_t s;
		r = td_parse_duration(v, &s);
		if (r < 0) {
			bad_value(x, key, v, r, "a duration (a number with s, m, h, d or w: 90d)");
			return;
		}
		*(int64_t *)p = s;
		return;
	}
	case V_PCT: {
		double pct;
		r = td_parse_percent(v, &pct);
		if (r < 0) {
			bad_value(x, key, v, r, "a percentage (0..100%)");
			return;
		}
		*(double *)p = pct;
		return;
	}
	case V_BOOL:
		if (td_parse_bool(v, (bool *)p) < 0)
			add_error(x, x->lineno, key, "'%s' is not yes or no", v);
		return;
	case V_UINT:
	case V_U64: {
		uint64_t n = 0;
		bool ok = *v != '\0';
		for (const char *q = v; *q && ok; q++) {
			if (!isdigit((unsigned char)*q) || n > (UINT64_MAX - 9) / 10)
				ok = false;
			else
				n = n * 10 + (unsigned)(*q - '0');
		}
		if (!ok) {
			add_error(x, x->lineno, key, "'%s' is not a whole number", v);
			return;
		}
		if (k->kind == V_U64) {
			*(uint64_t *)p = n;
			return;
		}
		if (n < k->min || n > k->max) {
			add_error(x, x->lineno, key,
			          "%s is out of range (%" PRIu64 "..%" PRIu64 ")", v, k->min,
			          k->max);
			return;
		}
		*(unsigned *)p = (unsigned)n;
		return;
	}
	case V_ENUM: {
		char names[128] = "";
		for (const struct enumval *e = k->ev; e->name; e++) {
			if (strcmp(v, e->name) == 0) {
				*(int *)p = e->value;
				return;
			}
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			         e == k->ev ? "" : " | ", e->name);
		}
		add_error(x, x->lineno, key, "'%s' is not one of %s", v, names);
		return;
	}
	case V_LIST:
	case V_PATHLIST:
	case V_GLOBS: {
		struct item_arg a = { .key = key, .dst = p, .kind = k->kind };
		if (!continuation)
			strlist_free((struct td_strlist *)p);
		split_list(x, v, list_item, &a);
		return;
	}
	case V_OWNERS:
	case V_GROUPS: {
		struct item_arg a = {
			.key = key, .dst = p, .count = (char *)base + k->off2, .kind = k->kind
		};
		if (!continuation) {
			free(*(void **)p);
			*(void **)p = NULL;
			*(size_t *)a.count = 0;
		}
		split_list(x, v, id_item, &a);
		return;
	}
	case V_SCHEDULE:
		r = td_parse_schedule(v, (struct td_schedule *)p);
		if (r < 0)
			bad_value(x, key, v, r,
			          "a schedule (manual | every 30m | hourly | daily HH:MM | "
			          "weekly mon HH:MM)");
		return;
	case V_ENDPOINT: {
		char *e = check_endpoint(v, &why);
		if (!e) {
			if (why && strstr(why, "credentials"))
				add_error(x, x->lineno, key, "%s", why); /* do not echo a secret */
			else if (why)
				add_error(x, x->lineno, key, "'%s' %s", v, why);
			else
				x->oom = true;
			return;
		}
		free(*(char **)p);
		*(char **)p = e;
		return;
	}
	case V_BUCKET:
		if (!valid_bucket(v)) {
			add_error(x, x->lineno, key,
			          "'%s' is not a valid bucket name (3..63 characters: a-z 0-9 . -)",
			          v);
			return;
		}
		set_str(x, (char **)p, v);
		return;
	case V_PREFIX: {
		size_t n = strlen(v);
		char *d;
		if (v[0] == '/' || strstr(v, "//") || strpbrk(v, " \t\\") || n > 512) {
			add_error(x, x->lineno, key,
			          "'%s' is not a valid key prefix (no leading '/', no '//', no "
			          "blanks, at most 512 characters)",
			          v);
			return;
		}
		d = malloc(n + 2);
		if (!d) {
			x->oom = true;
			return;
		}
		memcpy(d, v, n + 1);
		if (n && v[n - 1] != '/')
			strcpy(d + n, "/");
		free(*(char **)p);
		*(char **)p = d;
		return;
	}
	case V_CREDFILE: {
		char *norm;
		if (!*v) {
			add_error(x, x->lineno, key,
			          "empty value (leave the key out to use AWS_ACCESS_KEY_ID and "
			          "AWS_SECRET_ACCESS_KEY)");
			return;
		}
		norm = normalize_path(v, &why);
		if (!norm) {
			if (why)
				add_error(x, x->lineno, key, "'%s' %s", v, why);
			else
				x->oom = true;
			return;
		}
		free(*(char **)p);
		*(char **)p = norm;
		load_credentials(x, (struct td_target_conf *)base, key, norm);
		return;
	}
	}
}

/* inih calls this for every "key = value" line, and the reader for long or indented ones. */
static void handle_kv(struct ctx *x, const char *name, const char *value, bool continuation)
{
	const struct keydef *keys;
	void *base;
	int i;

	switch (x->sect) {
	case SECT_NONE:
		add_error(x, x->lineno, name, "key outside any section (start with [tierd])");
		return;
	case SECT_IGNORE:
		return;
	case SECT_TIERD:
		keys = tierd_keys;
		base = x->c;
		break;
	case SECT_TARGET:
		keys = target_keys;
		base = &x->c->targets[x->idx];
		break;
	default:
		keys = policy_keys;
		base = &x->c->policies[x->idx];
		break;
	}
	if (strlen(value) > MAX_VALUE) {
		add_error(x, x->lineno, name, "value too long (over %d characters)", MAX_VALUE);
		return;
	}
	i = key_index(keys, name);
	if (i < 0) {
		unknown_key(x, keys, name);
		return;
	}
	if (!continuation) {
		if (x->keys->line[i]) {
			add_error(x, x->lineno, name, "duplicate key (first set on line %u)",
			          x->keys->line[i]);
			return;
		}
		x->keys->line[i] = x->lineno;
	}
	size_t before = x->errs->n;
	set_value(x, &keys[i], name, base, value, continuation);
	if (x->errs->n > before)
		x->keys->bad[i] = true;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
	struct ctx *x = user;

	(void)section; /* the reader tracks sections itself, with their lines */
	handle_kv(x, name, value ? value : "", false);
	return 1;
}

/* ---- sections -------------------------------------------------------------------------------- */

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || n > TD_CONFIG_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static void *grow(struct ctx *x, void *arr, size_t n, size_t size)
{
	void *p = realloc(arr, (n + 1) * size);

	if (!p) {
		x->oom = true;
		return NULL;
	}
	memset((char *)p + n * size, 0, size);
	return p;
}

static void begin_target(struct ctx *x, char *name)
{
	struct td_config *c = x->c;
	struct td_target_conf *t;
	struct keylines *k;

	for (size_t i = 0; i < c->n_targets; i++) {
		if (strcmp(c->targets[i].name, name) == 0) {
			add_error(x, x->lineno, NULL,
			          "duplicate section [target \"%s\"] (first on line %u)", name,
			          c->targets[i].line);
			free(name);
			return;
		}
	}
	if (c->n_targets >= MAX_SECTIONS) {
		add_error(x, x->lineno, NULL, "too many targets (at most %d)", MAX_SECTIONS);
		free(name);
		return;
	}
	t = grow(x, c->targets, c->n_targets, sizeof(*t));
	if (!t) {
		free(name);
		return;
	}
	c->targets = t;
	k = grow(x, x->target_keys, c->n_targets, sizeof(*k));
	if (!k) {
		free(name);
		return;
	}
	x->target_keys = k;
	t = &c->targets[c->n_targets];
	t->name = name;
	t->line = x->lineno;
	t->multipart_threshold_bytes = 64 * MiB;
	t->part_size_bytes = 16 * MiB;
	t->max_connections = 8;
	t->addressing = TD_ADDRESSING_PATH;
	x->idx = c->n_targets++;
	x->sect = SECT_TARGET;
	x->keys = &x->target_keys[x->idx];
}

static int policy_defaults(struct td_policy_conf *p)
{
	p->age_by = TD_AGE_ATIME;
	p->min_age_s = 90 * 86400;
	p->min_size_bytes = MiB;
	p->max_size_bytes = UINT64_MAX;
	p->schedule.kind = TD_SCHEDULE_MANUAL;
	p->one_filesystem = true;
	return strlist_push(&p->include, "*");
}

static void begin_policy(struct ctx *x, char *name)
{
	struct td_config *c = x->c;
	struct td_policy_conf *p;
	struct keylines *k;

	for (size_t i = 0; i < c->n_policies; i++) {
		if (strcmp(c->policies[i].name, name) == 0) {
			add_error(x, x->lineno, NULL,
			          "duplicate section [policy \"%s\"] (first on line %u)", name,
			          c->policies[i].line);
			free(name);
			return;
		}
	}
	if (c->n_policies >= MAX_SECTIONS) {
		add_error(x, x->lineno, NULL, "too many policies (at most %d)", MAX_SECTIONS);
		free(name);
		return;
	}
	p = grow(x, c->policies, c->n_policies, sizeof(*p));
	if (!p) {
		free(name);
		return;
	}
	c->policies = p;
	k = grow(x, x->policy_keys, c->n_policies, sizeof(*k));
	if (!k) {
		free(name);
		return;
	}
	x->policy_keys = k;
	p = &c->policies[c->n_policies];
	p->name = name;
	p->line = x->lineno;
	if (policy_defaults(p) < 0)
		x->oom = true;
	x->idx = c->n_policies++;
	x->sect = SECT_POLICY;
	x->keys = &x->policy_keys[x->idx];
}

/* `h` is the text between '[' and ']'. */
static void begin_section(struct ctx *x, const char *h, size_t n)
{
	const char *kind, *q, *e;
	size_t kl;

	x->sect = SECT_IGNORE;
	x->prev_key[0] = '\0';
	while (n && is_blank(*h))
		h++, n--;
	while (n && is_blank(h[n - 1]))
		n--;
	if (n == 5 && memcmp(h, "tierd", 5) == 0) {
		if (x->tierd_line) {
			add_error(x, x->lineno, NULL,
			          "duplicate section [tierd] (first on line %u)", x->tierd_line);
			return;
		}
		x->tierd_line = x->lineno;
		x->sect = SECT_TIERD;
		x->keys = &x->tierd_keys;
		return;
	}
	kind = h;
	for (kl = 0; kl < n && !is_blank(h[kl]) && h[kl] != '"'; kl++)
		;
	if (!((kl == 6 && memcmp(kind, "target", 6) == 0) ||
	      (kl == 6 && memcmp(kind, "policy", 6) == 0))) {
		add_error(x, x->lineno, NULL,
		          "unknown section [%.*s] (expected [tierd], [target \"NAME\"] or "
		          "[policy \"NAME\"])",
		          (int)TD_MIN(n, 64), h);
		return;
	}
	q = h + kl;
	while (q < h + n && is_blank(*q))
		q++;
	e = h + n;
	if (q >= e || *q != '"' || e - q < 2 || e[-1] != '"') {
		add_error(x, x->lineno, NULL, "section needs a quoted name: [%.*s \"NAME\"]",
		          (int)kl, kind);
		return;
	}
	q++;
	e--;
	if (!valid_name(q, (size_t)(e - q))) {
		add_error(x, x->lineno, NULL,
		          "bad %.*s name \"%.*s\" (1..%d characters: letters, digits, _ - .)",
		          (int)kl, kind, (int)TD_MIN(e - q, 64), q, TD_CONFIG_MAX_NAME);
		return;
	}
	char *name = strndup(q, (size_t)(e - q));
	if (!name) {
		x->oom = true;
		return;
	}
	if (kind[0] == 't')
		begin_target(x, name);
	else
		begin_policy(x, name);
}

/* ---- the line reader --------------------------------------------------------------------------
 */

/* Cuts a ';' or '#' comment: at the start, or after a blank. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == s || is_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
}

static char *trim(char *s)
{
	char *e;

	while (is_blank(*s))
		s++;
	e = s + strlen(s);
	while (e > s && (is_blank(e[-1]) || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* "word =" or "word:" at the start: an indented key line, not a continuation. */
static bool looks_like_key(const char *s)
{
	const char *p = s;

	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	if (p == s)
		return false;
	while (is_blank(*p))
		p++;
	return *p == '=' || *p == ':';
}

/* Splits "name = value" (or "name: value", as inih does) and calls handle_kv. */
static void direct_kv(struct ctx *x, char *s)
{
	char *sep = s + strcspn(s, "=:");
	char *name, *value;

	*sep = '\0';
	name = trim(s);
	value = trim(sep + 1);
	snprintf(x->prev_key, sizeof(x->prev_key), "%s", name);
	handle_kv(x, name, value, false);
}

/*
 * inih's reader: hands inih the next line, after doing the line-level work (see
 * the top of the file). Lines this function handled itself reach inih as empty.
 */
static char *reader_cb(char *str, int num, void *stream)
{
	struct ctx *x = stream;
	char line[MAX_VALUE + 256];
	const char *start, *nl;
	size_t n;
	bool indented;
	char *s;

	if (x->pos >= x->len || num < 4)
		return NULL;
	start = x->buf + x->pos;
	nl = memchr(start, '\n', x->len - x->pos);
	n = nl ? (size_t)(nl - start) : x->len - x->pos;
	x->pos += n + (nl ? 1 : 0);
	x->lineno++;
	strcpy(str, "\n");

	if (x->lineno == 1 && n >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0) {
		start += 3;
		n -= 3;
	}
	if (n >= sizeof(line)) {
		add_error(x, x->lineno, NULL, "line too long (over %zu characters)",
		          sizeof(line) - 1);
		return str;
	}
	memcpy(line, start, n);
	line[n] = '\0';
	indented = is_blank(line[0]);
	strip_comment(line);
	s = trim(line);
	if (!*s)
		return str;

	if (*s == '[') {
		char *close = strchr(s, ']');
		if (!close || close[1]) {
			add_error(x, x->lineno, NULL,
			          "bad section header: expected [tierd], "
			          "[target \"NAME\"] or [policy \"NAME\"]");
			x->sect = SECT_IGNORE;
			return str;
		}
		begin_section(x, s + 1, (size_t)(close - s - 1));
		if (strlen(s) + 2 <= (size_t)num)
			snprintf(str, (size_t)num, "%s\n", s);
		return str;
	}
	if (indented && x->prev_key[0] && x->sect != SECT_NONE && !looks_like_key(s)) {
		/* Indented: more items for the key above, as in Python's configparser. */
		handle_kv(x, x->prev_key, s, true);
		return str;
	}
	if (!strpbrk(s, "=:")) {
		add_error(x, x->lineno, NULL, "expected 'key = value' or a [section] header");
		return str;
	}
	if (*s == '=' || *s == ':') {
		add_error(x, x->lineno, NULL, "missing key name before '%c'", *s);
		return str;
	}
	if (strlen(s) + 2 > (size_t)num) {
		/* inih's line buffer is fixed at 200 bytes: parse long lines here. */
		direct_kv(x, s);
		return str;
	}
	{
		char *sep = s + strcspn(s, "=:");
		size_t kl = (size_t)(sep - s);
		while (kl && is_blank(s[kl - 1]))
			kl--;
		snprintf(x->prev_key, sizeof(x->prev_key), "%.*s", (int)kl, s);
	}
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

/* ---- whole-file checks ---------------------------------------------------------------------- */

static unsigned key_line(const struct keylines *k, const struct keydef *keys, const char *name)
{
	int i = key_index(keys, name);

	return i < 0 ? 0 : k->line[i];
}

/* The line of a key whose value was accepted, else 0. */
static unsigned good_line(const struct keylines *k, const struct keydef *keys, const char *name)
{
	int i = key_index(keys, name);

	return i < 0 || k->bad[i] ? 0 : k->line[i];
}

static void finish_target(struct ctx *x, struct td_target_conf *t, const struct keylines *k)
{
	char kn[64];

	if (!key_line(k, target_keys, "type")) {
		add_error(x, t->line, "type", "target \"%s\": missing required key (s3 | dir)",
		          t->name);
		return;
	}
	if (!good_line(k, target_keys, "type"))
		return; /* reported already; the rest depends on it */
	for (int i = 0; target_keys[i].name; i++) {
		unsigned f = target_keys[i].flags;
		key_name(kn, sizeof(kn), &target_keys[i]);
		if (k->line[i] && ((f & F_S3 && t->type != TD_TARGET_S3) ||
		                   (f & F_DIR && t->type != TD_TARGET_DIR)))
			add_error(x, k->line[i], kn, "only for targets of type %s",
			          f & F_S3 ? "s3" : "dir");
	}
	if (t->type == TD_TARGET_S3) {
		if (!key_line(k, target_keys, "endpoint"))
			add_error(x, t->line, "endpoint", "target \"%s\": missing required key",
			          t->name);
		if (!key_line(k, target_keys, "bucket"))
			add_error(x, t->line, "bucket", "target \"%s\": missing required key",
			          t->name);
		if (!t->region)
			t->region = xstrdup(x, "us-east-1");
		if (!t->prefix)
			t->prefix = xstrdup(x, "");
		if (!t->storage_class)
			t->storage_class = xstrdup(x, "STANDARD");
	} else {
		if (!key_line(k, target_keys, "path"))
			add_error(x, t->line, "path", "target \"%s\": missing required key",
			          t->name);
	}
}

static void finish_policy(struct ctx *x, struct td_policy_conf *p, const struct keylines *k)
{
	unsigned hi = key_line(k, policy_keys, "high_watermark");
	unsigned lo = key_line(k, policy_keys, "low_watermark");
	unsigned tl = good_line(k, policy_keys, "target");
	unsigned ml = good_line(k, policy_keys, "max_size");
	bool wm_ok = good_line(k, policy_keys, "high_watermark") == hi &&
	             good_line(k, policy_keys, "low_watermark") == lo;
	char a[32], b[32];

	if (!key_line(k, policy_keys, "paths"))
		add_error(x, p->line, "paths", "policy \"%s\": missing required key", p->name);
	else if (p->paths.n == 0 && good_line(k, policy_keys, "paths"))
		add_error(x, key_line(k, policy_keys, "paths"), "paths", "no paths given");
	if (!key_line(k, policy_keys, "target")) {
		add_error(x, p->line, "target", "policy \"%s\": missing required key", p->name);
	} else if (tl && p->target) {
		p->target_conf = td_config_target(x->c, p->target);
		if (!p->target_conf)
			add_error(x, tl, "target",
			          "undefined target '%s' (no [target \"%s\"] section)", p->target,
			          p->target);
	}
	if (!wm_ok)
		; /* a watermark value was rejected: reported already */
	else if (hi && !lo)
		add_error(x, hi, "high_watermark", "needs low_watermark too");
	else if (lo && !hi)
		add_error(x, lo, "low_watermark", "needs high_watermark too");
	else if (hi && lo && p->low_watermark_pct >= p->high_watermark_pct)
		add_error(x, lo, "low_watermark", "%g%% must be below high_watermark (%g%%)",
		          p->low_watermark_pct, p->high_watermark_pct);
	else if (hi && lo)
		p->has_watermarks = true;
	if (ml && good_line(k, policy_keys, "min_size") == key_line(k, policy_keys, "min_size") &&
	    p->max_size_bytes < p->min_size_bytes) {
		fmt_size(a, sizeof(a), p->max_size_bytes);
		fmt_size(b, sizeof(b), p->min_size_bytes);
		add_error(x, ml, "max_size", "%s is below min_size (%s)", a, b);
	}
}

struct root {
	const char *path;
	const char *what; /* "policy \"x\"" etc. for messages */
	size_t policy;    /* SIZE_MAX: not a policy root */
	unsigned line;
	const char *key;
};

static void check_overlaps(struct ctx *x)
{
	struct td_config *c = x->c;
	struct root *r = NULL;
	size_t n = 0, cap = 0;
	char(*labels)[64] = NULL;

	for (size_t i = 0; i < c->n_policies; i++)
		cap += c->policies[i].paths.n;
	cap += 3 + c->n_targets;
	if (cap > MAX_ROOTS + 3 + MAX_SECTIONS) {
		add_error(x, 0, NULL, "too many policy paths (at most %d)", MAX_ROOTS);
		return;
	}
	r = calloc(cap, sizeof(*r));
	labels = calloc(c->n_policies + c->n_targets + 1, sizeof(*labels));
	if (!r || !labels) {
		x->oom = true;
		goto out;
	}
	for (size_t i = 0; i < c->n_policies; i++) {
		struct td_policy_conf *p = &c->policies[i];
		snprintf(labels[i], sizeof(labels[i]), "policy \"%s\"", p->name);
		for (size_t j = 0; j < p->paths.n; j++)
			r[n++] = (struct root){ p->paths.v[j], labels[i], i,
				                key_line(&x->policy_keys[i], policy_keys, "paths"),
				                "paths" };
	}
	size_t np = n;
	r[n++] = (struct root){ c->state_dir, "state_dir", SIZE_MAX,
		                key_line(&x->tierd_keys, tierd_keys, "state_dir"), "state_dir" };
	r[n++] = (struct root){ c->cache_dir, "cache_dir", SIZE_MAX,
		                key_line(&x->tierd_keys, tierd_keys, "cache_dir"), "cache_dir" };
	r[n++] = (struct root){ c->run_dir, "run_dir", SIZE_MAX,
		                key_line(&x->tierd_keys, tierd_keys, "run_dir"), "run_dir" };
	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_conf *t = &c->targets[i];
		if (t->type != TD_TARGET_DIR || !t->path)
			continue;
		snprintf(labels[c->n_policies + i], sizeof(labels[0]), "target \"%s\"", t->name);
		r[n++] = (struct root){ t->path, labels[c->n_policies + i], SIZE_MAX,
			                key_line(&x->target_keys[i], target_keys, "path"), "path" };
	}

	/* Policy roots against each other: one inside another (or equal) is an error. */
	for (size_t i = 0; i < np; i++) {
		for (size_t j = i + 1; j < np; j++) {
			const struct root *a = &r[i], *b = &r[j];
			if (!path_within(a->path, b->path) && !path_within(b->path, a->path))
				continue;
			const char *rel = strcmp(a->path, b->path) == 0   ? "is the same as"
			                  : path_within(b->path, a->path) ? "is inside"
			                                                  : "contains";
			add_error(x, b->line, "paths",
			          "'%s' %s '%s' (%s, line %u): roots must not overlap", b->path,
			          rel, a->path, a->what, a->line);
		}
	}
	/* tierd's own directories and dir targets must not be inside a policy root, or hold one. */
	for (size_t j = np; j < n; j++) {
		if (!r[j].path)
			continue;
		for (size_t i = 0; i < np; i++) {
			if (path_within(r[j].path, r[i].path))
				/* A default directory has no line: blame the root's. */
				add_error(x, r[j].line ? r[j].line : r[i].line,
				          r[j].line ? r[j].key : "paths",
				          "%s '%s' is inside the root '%s' of %s (line %u)",
				          r[j].what, r[j].path, r[i].path, r[i].what, r[i].line);
			else if (path_within(r[i].path, r[j].path))
				add_error(x, r[i].line, "paths", "'%s' (%s) is inside %s '%s'",
				          r[i].path, r[i].what, r[j].what, r[j].path);
		}
	}
out:
	free(r);
	free(labels);
}

static void resolve_admin_group(struct ctx *x)
{
	struct td_config *c = x->c;
	uint32_t id = UINT32_MAX;

	if (!c->admin_group || !*c->admin_group)
		return;
	if (parse_id(c->admin_group, &id) || lookup_id(c->admin_group, true, &id) == 1) {
		c->has_admin_gid = true;
		c->admin_gid = (gid_t)id;
	}
}

static int tierd_defaults(struct td_config *c)
{
	c->state_dir = strdup("/var/lib/tierd");
	c->cache_dir = strdup("/var/cache/tierd");
	c->run_dir = strdup("/run/tierd");
	c->admin_group = strdup("tierd");
	c->cache_size = (struct td_size_or_pct){ .is_pct = true, .pct = 10 };
	c->log_level = TD_LOG_INFO;
	c->max_transfers = 8;
	c->retention_s = 30 * 86400;
	c->stream_direct_io = true;
	if (!c->state_dir || !c->cache_dir || !c->run_dir || !c->admin_group ||
	    strlist_push(&c->no_hydrate, "updatedb") < 0 ||
	    strlist_push(&c->no_hydrate, "clamscan") < 0)
		return -ENOMEM;
	return 0;
}

/* Stable sort of the errors this load added, by line, so the output reads top to bottom. */
static void sort_errors(struct td_config_errors *errs, size_t from)
{
	for (size_t i = from + 1; i < errs->n; i++) {
		struct td_config_error e = errs->v[i];
		size_t j = i;
		while (j > from && errs->v[j - 1].line > e.line) {
			errs->v[j] = errs->v[j - 1];
			j--;
		}
		errs->v[j] = e;
	}
}

static int read_file(struct ctx *x, const char *path, char **out, size_t *out_len)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		add_error(x, 0, NULL, "cannot open: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		add_error(x, 0, NULL, "cannot stat: %s", strerror(-r));
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		add_error(x, 0, NULL, "is a directory, not a configuration file");
		return -EISDIR;
	}
	buf = malloc(TD_CONFIG_MAX_BYTES + 1);
	if (!buf)
		return -ENOMEM;
	/* Read up to one byte past the cap, so a file that grows meanwhile is caught too. */
	while (len <= TD_CONFIG_MAX_BYTES) {
		n = read(fd, buf + len, TD_CONFIG_MAX_BYTES + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			add_error(x, 0, NULL, "cannot read: %s", strerror(-r));
			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > TD_CONFIG_MAX_BYTES) {
		add_error(x, 0, NULL, "file too big (over %d bytes)", TD_CONFIG_MAX_BYTES);
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

static int check_text(struct ctx *x, const char *buf, size_t len)
{
	size_t lines = 0;

	if (memchr(buf, '\0', len)) {
		add_error(x, 0, NULL, "contains a NUL byte: not a text file");
		return -EINVAL;
	}
	for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))); p++)
		lines++;
	if (lines > TD_CONFIG_MAX_LINES) {
		add_error(x, 0, NULL, "too many lines (over %d)", TD_CONFIG_MAX_LINES);
		return -EFBIG;
	}
	return 0;
}

int td_config_load(struct td_config **out, const char *path, struct td_config_errors *errs)
{
	struct td_config_errors local = { 0 };
	struct ctx x = { .errs = errs ? errs : &local, .file = path };
	size_t first_err = x.errs->n;
	char *buf = NULL;

	x.first_err = first_err;
	int r;

	x.c = calloc(1, sizeof(*x.c));
	if (!x.c) {
		r = -ENOMEM;
		goto out;
	}
	x.c->path = strdup(path);
	if (!x.c->path || tierd_defaults(x.c) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = read_file(&x, path, &buf, &x.len);
	if (r < 0)
		goto out;
	r = check_text(&x, buf, x.len);
	if (r < 0)
		goto out;
	x.buf = buf;
	r = ini_parse_stream(reader_cb, &x, ini_handler_cb, &x);
	if (r == -2 || x.oom) {
		r = -ENOMEM;
		goto out;
	}
	/* inih's own syntax errors are all caught by the reader first. */
	if (r > 0)
		add_error(&x, (unsigned)r, NULL, "syntax error");

	for (size_t i = 0; i < x.c->n_targets; i++)
		finish_target(&x, &x.c->targets[i], &x.target_keys[i]);
	for (size_t i = 0; i < x.c->n_policies; i++)
		finish_policy(&x, &x.c->policies[i], &x.policy_keys[i]);
	check_overlaps(&x);
	resolve_admin_group(&x);
	if (x.oom) {
		r = -ENOMEM;
		goto out;
	}
	if (x.errs->n > first_err) {
		r = -EINVAL;
		goto out;
	}
	*out = x.c;
	x.c = NULL;
	r = 0;
out:
	if (x.errs->n > first_err)
		sort_errors(x.errs, first_err);
	td_config_free(x.c);
	free(x.target_keys);
	free(x.policy_keys);
	free(buf);
	td_config_errors_clear(&local);
	return r;
}

/* ---- credentials from the environment ------------------------------------------------------- */

int td_config_apply_env_credentials(struct td_config *c, const char *access_key,
                                    const char *secret_key)
{
	if (!access_key || !*access_key || !secret_key || !*secret_key)
		return 0;
	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_conf *t = &c->targets[i];
		char *a, *s;

		if (t->type != TD_TARGET_S3 || t->credentials_file)
			continue;
		a = strdup(access_key);
		s = strdup(secret_key);
		if (!a || !s) {
			free(a);
			free(s);
			return -ENOMEM;
		}
		free(t->access_key);
		free(t->secret_key);
		t->access_key = a;
		t->secret_key = s;
		t->creds_from_env = true;
	}
	return 0;
}

int td_config_check_credentials(const struct td_config *c, struct td_config_errors *errs)
{
	int r = 0;

	for (size_t i = 0; i < c->n_targets; i++) {
		const struct td_target_conf *t = &c->targets[i];
		char *msg;

		if (t->type != TD_TARGET_S3 || (t->access_key && t->secret_key))
			continue;
		r = -EINVAL;
		if (!errs)
			continue;
		if (asprintf(&msg,
		             "target \"%s\" has no credentials: give it a credentials_file, or "
		             "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in tierd's "
		             "environment",
		             t->name) < 0)
			return -ENOMEM;
		if (errors_append(errs, c->path, t->line, "credentials_file", msg) < 0)
			return -ENOMEM;
	}
	return r;
}

/* ---- freeing, printing, lookups ------------------------------------------------------------- */

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void td_config_free(struct td_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_targets; i++) {
		struct td_target_conf *t = &c->targets[i];
		free(t->name);
		free(t->endpoint);
		free(t->region);
		free(t->bucket);
		free(t->prefix);
		free(t->credentials_file);
		free_secret(t->access_key);
		free_secret(t->secret_key);
		free(t->storage_class);
		free(t->ca_file);
		free(t->path);
	}
	free(c->targets);
	for (size_t i = 0; i < c->n_policies; i++) {
		struct td_policy_conf *p = &c->policies[i];
		free(p->name);
		strlist_free(&p->paths);
		free(p->target);
		strlist_free(&p->include);
		strlist_free(&p->exclude);
		free(p->owners);
		free(p->groups);
	}
	free(c->policies);
	free(c->path);
	free(c->state_dir);
	free(c->cache_dir);
	free(c->run_dir);
	free(c->admin_group);
	strlist_free(&c->no_hydrate);
	free(c);
}

void td_config_errors_clear(struct td_config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].file);
		free(errs->v[i].key);
		free(errs->v[i].msg);
	}
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

void td_config_errors_print(const struct td_config_errors *errs, FILE *f)
{
	for (size_t i = 0; i < errs->n; i++) {
		const struct td_config_error *e = &errs->v[i];
		if (e->line)
			fprintf(f, "%s:%u: ", e->file, e->line);
		else
			fprintf(f, "%s: ", e->file);
		if (e->key)
			fprintf(f, "%s: ", e->key);
		fprintf(f, "%s\n", e->msg);
	}
}

const struct td_target_conf *td_config_target(const struct td_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_targets; i++)
		if (strcmp(c->targets[i].name, name) == 0)
			return &c->targets[i];
	return NULL;
}

const struct td_policy_conf *td_config_policy(const struct td_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_policies; i++)
		if (strcmp(c->policies[i].name, name) == 0)
			return &c->policies[i];
	return NULL;
}

/* ---- the dump ------------------------------------------------------------------------------- */

static const char *enum_name(const struct enumval *ev, int v)
{
	for (; ev->name; ev++)
		if (ev->value == v)
			return ev->name;
	return "?";
}

static void dump_list(FILE *f, const char *key, const struct td_strlist *l)
{
	fprintf(f, "%s =", key);
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, " %s", l->v[i]);
	fputc('\n', f);
}

static void dump_ids(FILE *f, const char *key, const uint32_t *ids, size_t n, bool group)
{
	char buf[16384];

	fprintf(f, "%s =", key);
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %" PRIu32, ids[i]);
	if (n)
		fprintf(f, " ;");
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;
		if (group) {
			struct group gr, *res = NULL;
			if (getgrgid_r((gid_t)ids[i], &gr, buf, sizeof(buf), &res) == 0 && res)
				name = res->gr_name;
		} else {
			struct passwd pw, *res = NULL;
			if (getpwuid_r((uid_t)ids[i], &pw, buf, sizeof(buf), &res) == 0 && res)
				name = res->pw_name;
		}
		fprintf(f, " %s", name ? name : "?");
	}
	fputc('\n', f);
}

static void dump_pct(FILE *f, const char *key, double v)
{
	fprintf(f, "%s = %.10g%%\n", key, v);
}

int td_config_dump(const struct td_config *c, FILE *f)
{
	char b[64];

	fprintf(f, "# effective configuration of %s (defaults filled in, secrets redacted)\n",
	        c->path);
	fprintf(f, "[tierd]\n");
	fprintf(f, "state_dir = %s\n", c->state_dir);
	fprintf(f, "cache_dir = %s\n", c->cache_dir);
	fprintf(f, "run_dir = %s\n", c->run_dir);
	if (c->cache_size.is_pct) {
		dump_pct(f, "cache_size", c->cache_size.pct);
	} else {
		fmt_size(b, sizeof(b), c->cache_size.bytes);
		fprintf(f, "cache_size = %s\n", b);
	}
	fprintf(f, "log_level = %s\n", enum_name(log_levels, (int)c->log_level));
	fprintf(f, "admin_group =%s%s", c->admin_group && *c->admin_group ? " " : "",
	        c->admin_group ? c->admin_group : "");
	if (c->admin_group && *c->admin_group && !c->has_admin_gid)
		fprintf(f, " ; no such group on this system: only root may administer");
	fputc('\n', f);
	fprintf(f, "max_transfers = %u\n", c->max_transfers);
	fmt_duration(b, sizeof(b), c->retention_s);
	fprintf(f, "retention = %s\n", b);
	dump_list(f, "no_hydrate", &c->no_hydrate);
	fprintf(f, "stream_direct_io = %s\n", c->stream_direct_io ? "yes" : "no");

	for (size_t i = 0; i < c->n_targets; i++) {
		const struct td_target_conf *t = &c->targets[i];
		fprintf(f, "\n[target \"%s\"]\n", t->name);
		fprintf(f, "type = %s\n", enum_name(target_types, (int)t->type));
		if (t->type == TD_TARGET_DIR) {
			fprintf(f, "path = %s\n", t->path);
			continue;
		}
		fprintf(f, "endpoint = %s\n", t->endpoint);
		fprintf(f, "region = %s\n", t->region);
		fprintf(f, "bucket = %s\n", t->bucket);
		fprintf(f, "prefix =%s%s\n", *t->prefix ? " " : "", t->prefix);
		fprintf(f, "addressing = %s\n", enum_name(addressings, (int)t->addressing));
		if (t->credentials_file)
			fprintf(f, "credentials_file = %s\n", t->credentials_file);
		else
			fprintf(
			    f,
			    "; credentials: from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY%s\n",
			    t->access_key ? "" : " (not set here)");
		if (t->access_key)
			fprintf(f, "; access_key = <redacted>\n; secret_key = <redacted>\n");
		fprintf(f, "storage_class = %s\n", t->storage_class);
		fmt_size(b, sizeof(b), t->multipart_threshold_bytes);
		fprintf(f, "multipart_threshold = %s\n", b);
		fmt_size(b, sizeof(b), t->part_size_bytes);
		fprintf(f, "part_size = %s\n", b);
		fprintf(f, "max_connections = %u\n", t->max_connections);
		fmt_size(b, sizeof(b), t->bandwidth_limit_bytes);
		fprintf(f, "bandwidth_limit = %s\n", b);
		fprintf(f, "ca_file =%s%s\n", t->ca_file ? " " : "", t->ca_file ? t->ca_file : "");
	}

	for (size_t i = 0; i < c->n_policies; i++) {
		const struct td_policy_conf *p = &c->policies[i];
		fprintf(f, "\n[policy \"%s\"]\n", p->name);
		dump_list(f, "paths", &p->paths);
		fprintf(f, "target = %s\n", p->target);
		fprintf(f, "age_by = %s\n", enum_name(age_bys, (int)p->age_by));
		fmt_duration(b, sizeof(b), p->min_age_s);
		fprintf(f, "min_age = %s\n", b);
		fmt_size(b, sizeof(b), p->min_size_bytes);
		fprintf(f, "min_size = %s\n", b);
		if (p->max_size_bytes == UINT64_MAX) {
			fprintf(f, "max_size =\n");
		} else {
			fmt_size(b, sizeof(b), p->max_size_bytes);
			fprintf(f, "max_size = %s\n", b);
		}
		dump_list(f, "include", &p->include);
		dump_list(f, "exclude", &p->exclude);
		dump_ids(f, "owners", (const uint32_t *)p->owners, p->n_owners, false);
		dump_ids(f, "groups", (const uint32_t *)p->groups, p->n_groups, true);
		fmt_schedule(b, sizeof(b), &p->schedule);
		fprintf(f, "schedule = %s\n", b);
		if (p->has_watermarks) {
			dump_pct(f, "high_watermark", p->high_watermark_pct);
			dump_pct(f, "low_watermark", p->low_watermark_pct);
		} else {
			fprintf(f, "; no high_watermark / low_watermark\n");
		}
		fmt_size(b, sizeof(b), p->max_bytes_per_run);
		fprintf(f, "max_bytes_per_run = %s\n", b);
		fprintf(f, "max_files_per_run = %" PRIu64 "\n", p->max_files_per_run);
		fprintf(f, "keep_cached = %s\n", p->keep_cached ? "yes" : "no");
		fprintf(f, "one_filesystem = %s\n", p->one_filesystem ? "yes" : "no");
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
