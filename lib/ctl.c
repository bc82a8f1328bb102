/* ctl — see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void td_ctl_framer_init(struct td_ctl_framer *f)
{
	memset(f, 0, sizeof(*f));
}

void td_ctl_framer_free(struct td_ctl_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
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
