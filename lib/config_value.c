/*
 * config_value — parsers and formatters for single values, with no parse state.
 *
 * Sizes, percentages, durations and schedules are public (td_parse_*) because
 * command-line flags take them too; the rest (paths, endpoints, bucket names,
 * uids and gids) serve the key table in config_keys.c. Nothing here reports an
 * error itself: each function returns -EINVAL/-ERANGE, or a reason string, and
 * the caller words the message. The formatters are the parsers' inverses, for
 * messages and the dump: what they print parses back to the same value.
 *
 * Any thread; no globals. Name lookups use getpwnam_r/getgrnam_r only.
 */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

bool cfg_is_blank(char ch)
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

/* ---- formatting helpers (for messages and the dump) ------------------------------------------ */

void cfg_fmt_size(char *buf, size_t n, uint64_t v)
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

void cfg_fmt_duration(char *buf, size_t n, int64_t v)
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

void cfg_fmt_schedule(char *buf, size_t n, const struct td_schedule *s)
{
	char d[32];

	switch (s->kind) {
	case TD_SCHEDULE_EVERY:
		cfg_fmt_duration(d, sizeof(d), s->every_s);
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

/*
 * Normalizes an absolute path: collapses "//" and "/./", drops a trailing '/'.
 * Returns a malloc'd string, or NULL with *why set.
 */
char *cfg_normalize_path(const char *p, const char **why)
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
bool cfg_path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

bool cfg_parse_id(const char *s, uint32_t *out)
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
int cfg_lookup_id(const char *name, bool group, uint32_t *out)
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

bool cfg_valid_bucket(const char *b)
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
char *cfg_check_endpoint(const char *v, const char **why)
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
