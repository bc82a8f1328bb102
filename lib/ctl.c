/* ctl — see ctl.h. Any thread; no state of its own: each function works on what
 * it is given (a framer belongs to its connection), except td_ctl_as_peer and
 * td_ctl_as_self, which change and restore the calling thread's credentials. */
#include "ctl.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

void td_ctl_framer_init(struct td_ctl_framer *f)
{
	memset(f, 0, sizeof(*f));
}

void td_ctl_framer_free(struct td_ctl_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

bool td_ctl_framer_pending(const struct td_ctl_framer *f)
{
	return f->len > 0 || f->discarding;
}

int td_ctl_framer_feed(struct td_ctl_framer *f, const char *data, size_t n, td_ctl_line_cb cb,
                       void *ctx)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		int r;

		if (f->discarding) {
			if (nl)
				f->discarding = false;
		} else if (f->len + take > TD_CTL_MAX_LINE) {
			f->len = 0;
			f->discarding = !nl;
			r = cb(ctx, -EMSGSIZE, NULL, 0);
			if (r)
				return r;
		} else {
			if (!f->buf) {
				f->buf = malloc(TD_CTL_MAX_LINE + 1);
				if (!f->buf)
					return -ENOMEM;
			}
			memcpy(f->buf + f->len, data, take);
			f->len += take;
			if (nl) {
				size_t len = f->len;

				f->buf[len] = '\0';
				f->len = 0;
				r = cb(ctx, 0, f->buf, len);
				if (r)
					return r;
			}
		}
		if (!nl)
			break;
		n -= take + 1;
		data = nl + 1;
	}
	return 0;
}

static int fail(char *err, size_t errlen, int r, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return r;
}

int td_ctl_parse_request(const char *line, size_t len, char **cmd_out, json_t **args_out, char *err,
                         size_t errlen)
{
	json_error_t jerr;
	json_t *doc, *cmd, *args;
	const char *name;
	char *copy;
	int r;

	if (len > TD_CTL_MAX_LINE)
		return fail(err, errlen, -EMSGSIZE, "request too long");
	doc = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		snprintf(err, errlen, "malformed request: %s at byte %d", jerr.text, jerr.position);
		return -EINVAL;
	}
	if (!json_is_object(doc)) {
		r = fail(err, errlen, -EINVAL, "malformed request: not a JSON object");
		goto out;
	}
	cmd = json_object_get(doc, "cmd");
	if (!json_is_string(cmd)) {
		r = fail(err, errlen, -EINVAL, "malformed request: \"cmd\" must be a string");
		goto out;
	}
	name = json_string_value(cmd);
	if (json_string_length(cmd) == 0 || json_string_length(cmd) > TD_CTL_MAX_CMD ||
	    strlen(name) != json_string_length(cmd)) {
		r = fail(err, errlen, -EINVAL, "malformed request: bad \"cmd\"");
		goto out;
	}
	args = json_object_get(doc, "args");
	if (args && !json_is_object(args)) {
		r = fail(err, errlen, -EINVAL, "malformed request: \"args\" must be an object");
		goto out;
	}
	copy = strdup(name);
	if (!copy) {
		r = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	*cmd_out = copy;
	*args_out = args ? json_incref(args) : json_object();
	r = 0;
out:
	json_decref(doc);
	return r;
}

const char *td_errno_name(int errnum)
{
	switch (errnum) {
	case EPERM:
		return "EPERM";
	case ENOENT:
		return "ENOENT";
	case EIO:
		return "EIO";
	case EAGAIN:
		return "EAGAIN";
	case ENOMEM:
		return "ENOMEM";
	case EACCES:
		return "EACCES";
	case EBUSY:
		return "EBUSY";
	case EEXIST:
		return "EEXIST";
	case EINVAL:
		return "EINVAL";
	case ENOSPC:
		return "ENOSPC";
	case EDQUOT:
		return "EDQUOT";
	case ENOSYS:
		return "ENOSYS";
	case ENOTSUP:
		return "ENOTSUP";
	case EMSGSIZE:
		return "EMSGSIZE";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case EHOSTUNREACH:
		return "EHOSTUNREACH";
	case ECANCELED:
		return "ECANCELED";
	case EPROTO:
		return "EPROTO";
	case ESTALE:
		return "ESTALE";
	case ELOOP:
		return "ELOOP";
	case EXDEV:
		return "EXDEV";
	default:
		return "E?";
	}
}

json_t *td_ctl_error_reply(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "errno",
	                 td_errno_name(err < 0 ? -err : err));
}

char *td_ctl_encode(const json_t *msg, size_t *len_out)
{
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII), *line;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	if (n + 1 > TD_CTL_MAX_LINE) {
		free(s);
		return NULL;
	}
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	if (len_out)
		*len_out = n + 1;
	return line;
}

/* ---- paths on the wire ---------------------------------------------------- */

char *td_ctl_b64_encode(const void *data, size_t n)
{
	char *b;

	if (n > INT32_MAX)
		return NULL;
	b = malloc(4 * ((n + 2) / 3) + 1);
	if (b)
		EVP_EncodeBlock((unsigned char *)b, data, (int)n);
	return b;
}

int td_ctl_b64_decode(const char *s, char **out, size_t *len_out)
{
	size_t sl = strlen(s);
	char *v;
	int dl;

	if (sl % 4 || sl > INT32_MAX)
		return -EINVAL;
	v = malloc(sl / 4 * 3 + 1);
	if (!v)
		return -ENOMEM;
	dl = EVP_DecodeBlock((unsigned char *)v, (const unsigned char *)s, (int)sl);
	if (dl < 0) {
		free(v);
		return -EINVAL;
	}
	while (sl > 0 && s[sl - 1] == '=') { /* DecodeBlock counts padding as zeros */
		dl--;
		sl--;
	}
	v[dl] = '\0';
	*out = v;
	*len_out = (size_t)dl;
	return 0;
}

int td_ctl_set_path(json_t *obj, const char *key, const char *path, size_t len)
{
	/* jansson refuses invalid UTF-8, which is exactly the test we need. */
	json_t *s = json_stringn(path, len);
	char *esc = NULL, *b64 = NULL, *k64 = NULL;
	int r = -ENOMEM;

	if (s)
		return json_object_set_new(obj, key, s) == 0 ? 0 : -ENOMEM;
	esc = td_escape(path, len);
	b64 = td_ctl_b64_encode(path, len);
	k64 = malloc(strlen(key) + sizeof("_b64"));
	if (!esc || !b64 || !k64)
		goto out;
	strcpy(k64, key);
	strcat(k64, "_b64");
	if (json_object_set_new(obj, key, json_string(esc)) < 0 ||
	    json_object_set_new(obj, k64, json_string(b64)) < 0)
		goto out;
	r = 0;
out:
	free(esc);
	free(b64);
	free(k64);
	return r;
}

static int append(json_t *args, const char *key, json_t *v)
{
	json_t *a = json_object_get(args, key);

	if (!v)
		return -ENOMEM;
	if (!a) {
		a = json_array();
		if (!a || json_object_set_new(args, key, a) < 0) {
			json_decref(v);
			return -ENOMEM;
		}
	}
	return json_array_append_new(a, v) == 0 ? 0 : -ENOMEM;
}

int td_ctl_add_path(json_t *args, const char *path, size_t len)
{
	json_t *str = json_stringn(path, len);
	char *b;
	int r;

	if (str)
		return append(args, "paths", str);
	b = td_ctl_b64_encode(path, len);
	if (!b)
		return -ENOMEM;
	r = append(args, "paths_b64", json_string(b));
	free(b);
	return r;
}

void td_ctl_paths_free(char **paths, size_t *lens, size_t n)
{
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
	free(lens);
}

/* Copies the strings of "paths", then decodes "paths_b64", into v/l from *k. */
static int collect_paths(json_t *a, json_t *b, char **v, size_t *l, size_t *k)
{
	size_t i;
	json_t *e;
	int r;

	json_array_foreach(a, i, e)
	{
		if (!json_is_string(e))
			return -EINVAL;
		v[*k] = malloc(json_string_length(e) + 1);
		if (!v[*k])
			return -ENOMEM;
		memcpy(v[*k], json_string_value(e), json_string_length(e) + 1);
		l[(*k)++] = json_string_length(e);
	}
	json_array_foreach(b, i, e)
	{
		if (!json_is_string(e))
			return -EINVAL;
		r = td_ctl_b64_decode(json_string_value(e), &v[*k], &l[*k]);
		if (r < 0)
			return r;
		(*k)++;
	}
	return 0;
}

int td_ctl_request_paths(json_t *args, size_t max, char ***paths_out, size_t **lens_out,
                         size_t *n_out, char *err, size_t errlen)
{
	json_t *a = json_object_get(args, "paths"), *b = json_object_get(args, "paths_b64");
	size_t total = json_array_size(a) + json_array_size(b), k = 0;
	char **v;
	size_t *l;
	int r;

	if ((a && !json_is_array(a)) || (b && !json_is_array(b)) || total == 0)
		return fail(err, errlen, -EINVAL, "expected \"paths\": a list of absolute paths");
	if (total > max) {
		snprintf(err, errlen, "at most %zu paths per request", max);
		return -E2BIG;
	}
	v = calloc(total, sizeof(char *));
	l = calloc(total, sizeof(size_t));
	r = v && l ? collect_paths(a, b, v, l, &k) : -ENOMEM;
	if (r < 0) {
		fail(err, errlen, 0, r == -ENOMEM ? "out of memory" : "malformed \"paths\"");
		goto fail;
	}
	for (size_t i = 0; i < k; i++)
		if (l[i] == 0 || v[i][0] != '/' || memchr(v[i], '\0', l[i])) {
			fail(err, errlen, 0, "paths must be absolute");
			goto fail;
		}
	*paths_out = v;
	*lens_out = l;
	*n_out = k;
	return 0;
fail:
	td_ctl_paths_free(v, l, total);
	return -EINVAL;
}

/* ---- who may change things ------------------------------------------------- */

bool td_ctl_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, bool has_admin_gid,
                     gid_t admin_gid)
{
	if (uid == 0)
		return true;
	if (!has_admin_gid)
		return false;
	if (gid == admin_gid)
		return true;
	for (size_t i = 0; i < n_groups; i++)
		if (groups[i] == admin_gid)
			return true;
	return false;
}

int td_ctl_peer_get(struct td_ctl_peer *out, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred), glen = 0;
	gid_t *groups = NULL;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	/* The size first: ERANGE with the length needed (0 for no groups). A
	 * kernel before 4.13 has no SO_PEERGROUPS: then no supplementary group
	 * counts, which errs on the side of refusing. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &glen) < 0 && errno != ERANGE) {
		if (errno != ENOPROTOOPT)
			return -errno;
		glen = 0;
	}
	if (glen > 0) {
		groups = malloc(glen);
		if (!groups)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0) {
			free(groups);
			return -errno;
		}
	}
	out->uid = cred.uid;
	out->gid = cred.gid;
	out->pid = cred.pid;
	out->groups = groups;
	out->n_groups = glen / sizeof(gid_t);
	return 0;
}

void td_ctl_peer_free(struct td_ctl_peer *p)
{
	free(p->groups);
	p->groups = NULL;
	p->n_groups = 0;
}

bool td_ctl_peer_is_admin(const struct td_ctl_peer *p, bool has_admin_gid, gid_t admin_gid)
{
	return td_ctl_is_admin(p->uid, p->gid, p->groups, p->n_groups, has_admin_gid, admin_gid);
}

/* glibc's setgroups() changes every thread (POSIX semantics); the syscall
 * changes only this one. */
static int thread_setgroups(size_t n, const gid_t *g)
{
#ifdef SYS_setgroups32
	long nr = SYS_setgroups32;
#else
	long nr = SYS_setgroups;
#endif
	return syscall(nr, n, g) < 0 ? -errno : 0;
}

/* setfsuid/setfsgid return the previous id whether or not they worked: a
 * second call with the same id reports what is in force. */
static bool thread_setfsuid(uid_t uid)
{
	setfsuid(uid);
	return (uid_t)setfsuid(uid) == uid;
}

static bool thread_setfsgid(gid_t gid)
{
	setfsgid(gid);
	return (gid_t)setfsgid(gid) == gid;
}

int td_ctl_as_peer(struct td_ctl_self *saved, const struct td_ctl_peer *p)
{
	int n = getgroups(0, NULL), r;

	if (n < 0)
		return -errno;
	saved->groups = malloc((size_t)(n ? n : 1) * sizeof(gid_t));
	if (!saved->groups)
		return -ENOMEM;
	n = getgroups(n, saved->groups);
	if (n < 0) {
		r = -errno;
		free(saved->groups);
		return r;
	}
	saved->n_groups = n;
	saved->fsuid = (uid_t)setfsuid((uid_t)-1); /* an invalid id changes nothing */
	saved->fsgid = (gid_t)setfsgid((gid_t)-1);
	r = thread_setgroups(p->n_groups, p->groups);
	if (r == 0 && !thread_setfsgid(p->gid))
		r = -EPERM;
	if (r == 0 && !thread_setfsuid(p->uid))
		r = -EPERM;
	if (r < 0)
		td_ctl_as_self(saved);
	return r;
}

void td_ctl_as_self(struct td_ctl_self *saved)
{
	bool ok = thread_setfsuid(saved->fsuid) && thread_setfsgid(saved->fsgid) &&
	          thread_setgroups((size_t)saved->n_groups, saved->groups) == 0;

	free(saved->groups);
	saved->groups = NULL;
	if (!ok)
		abort();
}
