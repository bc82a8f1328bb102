/*
 * config_creds — an s3 target's keys: from its credentials_file, or from the
 * environment the program passes in.
 *
 * The credentials file is read while its key line is parsed (so its problems
 * point at that line), and must be a regular file owned by root or by us that
 * neither group nor others can read or write. Keys are secrets (DESIGN
 * invariant 8): no message quotes the file's contents, and every copy that is
 * dropped is zeroed first.
 *
 * Runs on the thread of td_config_load() or of the caller; no globals.
 */
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAX_CREDS_BYTES 65536
#define MAX_SECRET      256

/* An error about the credentials_file key being read. */
#define CRED_ERROR(x, key, ...) cfg_add_error((x), (x)->lineno, (key), __VA_ARGS__)

void cfg_free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Opens the file and checks its type, owner, mode and size. Returns an fd, or -1 (reported). */
static int open_credentials(struct cfg_ctx *x, const char *key, const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		CRED_ERROR(x, key, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0)
		CRED_ERROR(x, key, "cannot stat '%s': %s", path, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		CRED_ERROR(x, key, "'%s' is not a regular file", path);
	else if (st->st_uid != 0 && st->st_uid != geteuid())
		/* Its owner could swap the keys, or read them: only root or us. */
		CRED_ERROR(x, key, "'%s' is owned by uid %u, not by root or uid %u", path,
		           (unsigned)st->st_uid, (unsigned)geteuid());
	else if (st->st_mode & (S_IRWXG | S_IRWXO))
		CRED_ERROR(x, key,
		           "'%s' is accessible by group or others (mode %04o); run chmod 600 on it",
		           path, (unsigned)(st->st_mode & 07777));
	else if (st->st_size > MAX_CREDS_BYTES)
		CRED_ERROR(x, key, "'%s' is too big (over %d bytes)", path, MAX_CREDS_BYTES);
	else
		return fd;
	close(fd);
	return -1;
}

/* The file's text, NUL-terminated, in *out (*out_n bytes); false when reported. */
static bool read_credentials(struct cfg_ctx *x, const char *key, const char *path, char **out,
                             size_t *out_n)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	ssize_t n;
	char *buf;

	fd = open_credentials(x, key, path, &st);
	if (fd < 0)
		return false;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		x->oom = true;
		return false;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		CRED_ERROR(x, key, "cannot read '%s': %s", path, strerror(errno));
		free(buf);
		return false;
	}
	buf[n] = '\0';
	*out = buf;
	*out_n = (size_t)n;
	return true;
}

/* The two keys a credentials file gives, as they are read. */
struct cred_keys {
	char *access;
	char *secret;
};

/* One line, trimmed: "access_key = …" or "secret_key = …". */
static void credentials_line(struct cfg_ctx *x, const char *key, const char *path, unsigned line,
                             char *p, struct cred_keys *ck)
{
	char *name, *val, *eq, *end, **dst;

	eq = strchr(p, '=');
	if (!eq) {
		CRED_ERROR(x, key, "%s:%u: expected 'access_key = ...' or 'secret_key = ...'", path,
		           line);
		return;
	}
	name = p;
	for (end = eq; end > name && cfg_is_blank(end[-1]);)
		*--end = '\0';
	*eq = '\0';
	val = eq + 1;
	while (cfg_is_blank(*val))
		val++;
	if (strcmp(name, "access_key") == 0)
		dst = &ck->access;
	else if (strcmp(name, "secret_key") == 0)
		dst = &ck->secret;
	else {
		CRED_ERROR(x, key, "%s:%u: unknown key (expected access_key or secret_key)", path,
		           line);
		return;
	}
	if (*dst)
		CRED_ERROR(x, key, "%s:%u: %s is given twice", path, line, name);
	else if (!*val || strlen(val) > MAX_SECRET || strpbrk(val, " \t"))
		CRED_ERROR(x, key, "%s:%u: %s is empty, too long or has blanks", path, line, name);
	else
		*dst = cfg_xstrdup(x, val);
}

/* Splits the text into lines; blank lines and '#' or ';' comments are skipped. */
static void credentials_lines(struct cfg_ctx *x, const char *key, const char *path, char *buf,
                              struct cred_keys *ck)
{
	unsigned line = 0;
	char *p, *eol, *end;

	for (p = buf; *p; p = eol) {
		line++;
		eol = strchr(p, '\n');
		eol = eol ? (*eol = '\0', eol + 1) : p + strlen(p);
		while (cfg_is_blank(*p))
			p++;
		end = p + strlen(p);
		while (end > p && (cfg_is_blank(end[-1]) || end[-1] == '\r'))
			*--end = '\0';
		if (*p && *p != '#' && *p != ';')
			credentials_line(x, key, path, line, p, ck);
	}
}

void cfg_load_credentials(struct cfg_ctx *x, struct td_target_conf *t, const char *key,
                          const char *path)
{
	struct cred_keys ck = { 0 };
	char *buf = NULL;
	size_t n = 0;

	if (!read_credentials(x, key, path, &buf, &n))
		return;
	if (memchr(buf, '\0', n)) {
		CRED_ERROR(x, key, "'%s' contains a NUL byte", path);
		goto out;
	}
	credentials_lines(x, key, path, buf, &ck);
	if (!ck.access)
		CRED_ERROR(x, key, "'%s' has no access_key line", path);
	if (!ck.secret)
		CRED_ERROR(x, key, "'%s' has no secret_key line", path);
	if (ck.access && ck.secret) {
		cfg_free_secret(t->access_key);
		cfg_free_secret(t->secret_key);
		t->access_key = ck.access;
		t->secret_key = ck.secret;
		t->creds_from_env = false;
		ck.access = ck.secret = NULL;
	}
out:
	cfg_free_secret(ck.access);
	cfg_free_secret(ck.secret);
	explicit_bzero(buf, n);
	free(buf);
}

/* ---- credentials from the environment -------------------------------------------------------- */

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
			cfg_free_secret(a);
			cfg_free_secret(s);
			return -ENOMEM;
		}
		cfg_free_secret(t->access_key);
		cfg_free_secret(t->secret_key);
		t->access_key = a;
		t->secret_key = s;
		t->creds_from_env = true;
	}
	return 0;
}

/* The message for an s3 target without keys; malloc'd, NULL when out of memory. */
static char *no_credentials_msg(const struct td_target_conf *t, bool warning)
{
	char *msg;

	if (asprintf(&msg,
	             "%starget \"%s\" has no credentials: give it a credentials_file, or "
	             "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in tierd's "
	             "environment%s",
	             warning ? "warning: " : "", t->name,
	             warning ? " (needed when the service starts)" : "") < 0)
		return NULL;
	return msg;
}

int cfg_check_credentials(const struct td_config *c, struct td_config_errors *errs, bool warning)
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
		msg = no_credentials_msg(t, warning);
		if (!msg)
			return -ENOMEM;
		/* A warning is printed without its key, as tierd --check-config always has. */
		if (cfg_errors_append(errs, c->path, t->line, warning ? NULL : "credentials_file",
		                      msg) < 0)
			return -ENOMEM;
	}
	return r;
}

int td_config_check_credentials(const struct td_config *c, struct td_config_errors *errs)
{
	return cfg_check_credentials(c, errs, false);
}
