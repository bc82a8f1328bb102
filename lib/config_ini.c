/*
 * config_ini — the INI reader: a file's bytes into sections and "key = value" calls.
 *
 * The whole file is read into memory first (capped), then fed to inih one line
 * at a time through a reader that does the line-level work inih cannot: it
 * counts lines (the handler API of Debian's libinih has no line numbers), strips
 * inline comments starting with ';' or '#', parses section headers, joins
 * indented continuation lines onto list values, and reports syntax errors.
 * Lines longer than inih's fixed 200-byte buffer (long paths) are handled here
 * too instead of being split silently. inih splits "key = value" and calls
 * handle_kv(), which finds the key in the key table (config_keys.c) and lets
 * its setter parse the value. Every problem is appended to the error list and
 * reading goes on, so one pass reports them all.
 *
 * Runs on the thread of td_config_load(); all state is in its struct cfg_ctx.
 */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- keys ------------------------------------------------------------------------------------ */

/* inih calls this for every "key = value" line, and the reader for long or indented ones. */
static void handle_kv(struct cfg_ctx *x, const char *name, const char *value, bool continuation)
{
	const struct cfg_keydef *keys;
	void *base;
	int i;

	switch (x->sect) {
	case SECT_NONE:
		cfg_add_error(x, x->lineno, name, "key outside any section (start with [tierd])");
		return;
	case SECT_IGNORE:
		return;
	case SECT_TIERD:
		keys = cfg_tierd_keys;
		base = x->c;
		break;
	case SECT_TARGET:
		keys = cfg_target_keys;
		base = &x->c->targets[x->idx];
		break;
	default:
		keys = cfg_policy_keys;
		base = &x->c->policies[x->idx];
		break;
	}
	if (strlen(value) > CFG_MAX_VALUE) {
		cfg_add_error(x, x->lineno, name, "value too long (over %d characters)",
		              CFG_MAX_VALUE);
		return;
	}
	i = cfg_key_index(keys, name);
	if (i < 0) {
		cfg_unknown_key(x, keys, name);
		return;
	}
	if (!continuation) {
		if (x->keys->line[i]) {
			cfg_add_error(x, x->lineno, name, "duplicate key (first set on line %u)",
			              x->keys->line[i]);
			return;
		}
		x->keys->line[i] = x->lineno;
	}
	size_t before = x->errs->n;
	cfg_set_value(x, &keys[i], name, base, value, continuation);
	if (x->errs->n > before)
		x->keys->bad[i] = true;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_ctx *x = user;

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

static void *grow(struct cfg_ctx *x, void *arr, size_t n, size_t size)
{
	void *p = realloc(arr, (n + 1) * size);

	if (!p) {
		x->oom = true;
		return NULL;
	}
	memset((char *)p + n * size, 0, size);
	return p;
}

static bool grow_keys(struct cfg_ctx *x, struct cfg_keylines **keys, size_t n)
{
	struct cfg_keylines *k = grow(x, *keys, n, sizeof(*k));

	if (k)
		*keys = k;
	return k != NULL;
}

/* Whether one more section of a kind may begin: its name is new, the count under the cap. */
static bool section_room(struct cfg_ctx *x, const char *what, const char *plural, const char *name,
                         unsigned dup_line, size_t n)
{
	if (dup_line) {
		cfg_add_error(x, x->lineno, NULL,
		              "duplicate section [%s \"%s\"] (first on line %u)", what, name,
		              dup_line);
		return false;
	}
	if (n >= CFG_MAX_SECTIONS) {
		cfg_add_error(x, x->lineno, NULL, "too many %s (at most %d)", plural,
		              CFG_MAX_SECTIONS);
		return false;
	}
	return true;
}

static void enter_section(struct cfg_ctx *x, enum cfg_sect sect, size_t idx,
                          struct cfg_keylines *keys)
{
	x->idx = idx;
	x->sect = sect;
	x->keys = keys;
}

/* Takes `name` (malloc'd), also on failure. */
static void begin_target(struct cfg_ctx *x, char *name)
{
	struct td_config *c = x->c;
	const struct td_target_conf *dup = td_config_target(c, name);
	struct td_target_conf *t;

	if (!section_room(x, "target", "targets", name, dup ? dup->line : 0, c->n_targets))
		goto fail;
	t = grow(x, c->targets, c->n_targets, sizeof(*t));
	if (!t)
		goto fail;
	c->targets = t;
	if (!grow_keys(x, &x->target_keys, c->n_targets))
		goto fail;
	t = &c->targets[c->n_targets];
	t->name = name;
	t->line = x->lineno;
	cfg_target_defaults(t);
	enter_section(x, SECT_TARGET, c->n_targets, &x->target_keys[c->n_targets]);
	c->n_targets++;
	return;
fail:
	free(name);
}

/* Takes `name` (malloc'd), also on failure. */
static void begin_policy(struct cfg_ctx *x, char *name)
{
	struct td_config *c = x->c;
	const struct td_policy_conf *dup = td_config_policy(c, name);
	struct td_policy_conf *p;

	if (!section_room(x, "policy", "policies", name, dup ? dup->line : 0, c->n_policies))
		goto fail;
	p = grow(x, c->policies, c->n_policies, sizeof(*p));
	if (!p)
		goto fail;
	c->policies = p;
	if (!grow_keys(x, &x->policy_keys, c->n_policies))
		goto fail;
	p = &c->policies[c->n_policies];
	p->name = name;
	p->line = x->lineno;
	if (cfg_policy_defaults(p) < 0)
		x->oom = true;
	enter_section(x, SECT_POLICY, c->n_policies, &x->policy_keys[c->n_policies]);
	c->n_policies++;
	return;
fail:
	free(name);
}

/* `h` is the text between '[' and ']'. */
static void begin_section(struct cfg_ctx *x, const char *h, size_t n)
{
	const char *kind, *q, *e;
	size_t kl;

	x->sect = SECT_IGNORE;
	x->prev_key[0] = '\0';
	while (n && cfg_is_blank(*h))
		h++, n--;
	while (n && cfg_is_blank(h[n - 1]))
		n--;
	if (n == 5 && memcmp(h, "tierd", 5) == 0) {
		if (x->tierd_line) {
			cfg_add_error(x, x->lineno, NULL,
			              "duplicate section [tierd] (first on line %u)",
			              x->tierd_line);
			return;
		}
		x->tierd_line = x->lineno;
		x->sect = SECT_TIERD;
		x->keys = &x->tierd_keys;
		return;
	}
	kind = h;
	for (kl = 0; kl < n && !cfg_is_blank(h[kl]) && h[kl] != '"'; kl++)
		;
	if (!((kl == 6 && memcmp(kind, "target", 6) == 0) ||
	      (kl == 6 && memcmp(kind, "policy", 6) == 0))) {
		cfg_add_error(x, x->lineno, NULL,
		              "unknown section [%.*s] (expected [tierd], [target \"NAME\"] or "
		              "[policy \"NAME\"])",
		              (int)TD_MIN(n, 64), h);
		return;
	}
	q = h + kl;
	while (q < h + n && cfg_is_blank(*q))
		q++;
	e = h + n;
	if (q >= e || *q != '"' || e - q < 2 || e[-1] != '"') {
		cfg_add_error(x, x->lineno, NULL, "section needs a quoted name: [%.*s \"NAME\"]",
		              (int)kl, kind);
		return;
	}
	q++;
	e--;
	if (!valid_name(q, (size_t)(e - q))) {
		cfg_add_error(x, x->lineno, NULL,
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

/* ---- the line reader ------------------------------------------------------------------------- */

/* Cuts a ';' or '#' comment: at the start, or after a blank. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == s || cfg_is_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
}

static char *trim(char *s)
{
	char *e;

	while (cfg_is_blank(*s))
		s++;
	e = s + strlen(s);
	while (e > s && (cfg_is_blank(e[-1]) || e[-1] == '\r'))
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
	while (cfg_is_blank(*p))
		p++;
	return *p == '=' || *p == ':';
}

/* Splits "name = value" (or "name: value", as inih does) and calls handle_kv. */
static void direct_kv(struct cfg_ctx *x, char *s)
{
	char *sep = s + strcspn(s, "=:");
	char *name, *value;

	*sep = '\0';
	name = trim(s);
	value = trim(sep + 1);
	snprintf(x->prev_key, sizeof(x->prev_key), "%s", name);
	handle_kv(x, name, value, false);
}

/* Takes the next line of x->buf into `line` (BOM dropped). Returns false when it is too long. */
static bool take_line(struct cfg_ctx *x, char *line, size_t size)
{
	const char *start = x->buf + x->pos, *nl;
	size_t n;

	nl = memchr(start, '\n', x->len - x->pos);
	n = nl ? (size_t)(nl - start) : x->len - x->pos;
	x->pos += n + (nl ? 1 : 0);
	x->lineno++;
	if (x->lineno == 1 && n >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0) {
		start += 3;
		n -= 3;
	}
	if (n >= size) {
		cfg_add_error(x, x->lineno, NULL, "line too long (over %zu characters)", size - 1);
		return false;
	}
	memcpy(line, start, n);
	line[n] = '\0';
	return true;
}

/* A "[...]" line. What inih is handed (str) is the header, when it fits. */
static void header_line(struct cfg_ctx *x, char *s, char *str, int num)
{
	char *close = strchr(s, ']');

	if (!close || close[1]) {
		cfg_add_error(x, x->lineno, NULL,
		              "bad section header: expected [tierd], "
		              "[target \"NAME\"] or [policy \"NAME\"]");
		x->sect = SECT_IGNORE;
		return;
	}
	begin_section(x, s + 1, (size_t)(close - s - 1));
	if (strlen(s) + 2 <= (size_t)num)
		snprintf(str, (size_t)num, "%s\n", s);
}

/* A key line (or a continuation). inih is handed the line when it fits its buffer. */
static void key_line(struct cfg_ctx *x, char *s, bool indented, char *str, int num)
{
	size_t kl;

	if (indented && x->prev_key[0] && x->sect != SECT_NONE && !looks_like_key(s)) {
		/* Indented: more items for the key above, as in Python's configparser. */
		handle_kv(x, x->prev_key, s, true);
		return;
	}
	if (!strpbrk(s, "=:")) {
		cfg_add_error(x, x->lineno, NULL, "expected 'key = value' or a [section] header");
		return;
	}
	if (*s == '=' || *s == ':') {
		cfg_add_error(x, x->lineno, NULL, "missing key name before '%c'", *s);
		return;
	}
	if (strlen(s) + 2 > (size_t)num) {
		/* inih's line buffer is fixed at 200 bytes: parse long lines here. */
		direct_kv(x, s);
		return;
	}
	kl = strcspn(s, "=:");
	while (kl && cfg_is_blank(s[kl - 1]))
		kl--;
	snprintf(x->prev_key, sizeof(x->prev_key), "%.*s", (int)kl, s);
	snprintf(str, (size_t)num, "%s\n", s);
}

/*
 * inih's reader: hands inih the next line, after doing the line-level work (see
 * the top of the file). Lines this function handled itself reach inih as empty.
 */
static char *reader_cb(char *str, int num, void *stream)
{
	struct cfg_ctx *x = stream;
	char line[CFG_MAX_VALUE + 256];
	bool indented;
	char *s;

	if (x->pos >= x->len || num < 4)
		return NULL;
	strcpy(str, "\n");
	if (!take_line(x, line, sizeof(line)))
		return str;
	indented = cfg_is_blank(line[0]);
	strip_comment(line);
	s = trim(line);
	if (*s == '[')
		header_line(x, s, str, num);
	else if (*s)
		key_line(x, s, indented, str, num);
	return str;
}

int cfg_parse_ini(struct cfg_ctx *x)
{
	int r = ini_parse_stream(reader_cb, x, ini_handler_cb, x);

	if (r == -2 || x->oom)
		return -ENOMEM;
	/* inih's own syntax errors are all caught by the reader first. */
	if (r > 0)
		cfg_add_error(x, (unsigned)r, NULL, "syntax error");
	return 0;
}

/* ---- the file -------------------------------------------------------------------------------- */

static int read_all(struct cfg_ctx *x, const char *path, char **out, size_t *out_len)
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
		cfg_add_error(x, 0, NULL, "cannot open: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		cfg_add_error(x, 0, NULL, "cannot stat: %s", strerror(-r));
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		cfg_add_error(x, 0, NULL, "is a directory, not a configuration file");
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
			cfg_add_error(x, 0, NULL, "cannot read: %s", strerror(-r));
			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > TD_CONFIG_MAX_BYTES) {
		cfg_add_error(x, 0, NULL, "file too big (over %d bytes)", TD_CONFIG_MAX_BYTES);
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

static int check_text(struct cfg_ctx *x, const char *buf, size_t len)
{
	size_t lines = 0;

	if (memchr(buf, '\0', len)) {
		cfg_add_error(x, 0, NULL, "contains a NUL byte: not a text file");
		return -EINVAL;
	}
	for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))); p++)
		lines++;
	if (lines > TD_CONFIG_MAX_LINES) {
		cfg_add_error(x, 0, NULL, "too many lines (over %d)", TD_CONFIG_MAX_LINES);
		return -EFBIG;
	}
	return 0;
}

int cfg_read_file(struct cfg_ctx *x, const char *path, char **out_buf)
{
	char *buf = NULL;
	int r;

	r = read_all(x, path, &buf, &x->len);
	if (r < 0)
		return r;
	r = check_text(x, buf, x->len);
	if (r < 0) {
		free(buf);
		return r;
	}
	x->buf = buf;
	*out_buf = buf;
	return 0;
}
