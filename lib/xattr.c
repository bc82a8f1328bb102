/*
 * xattr — see xattr.h. The blob's records are laid out as they are read, in
 * the order flistxattr gives the names; lookups walk it (a file has a few
 * attributes, and the blob is capped).
 */
#include "xattr.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define LIST_MAX (64u * 1024) /* XATTR_LIST_MAX */
#define TRIES    4            /* reads raced by a change of the attributes */

void td_xattr_free(struct td_xattrs *x)
{
	if (!x)
		return;
	free(x->buf);
	x->buf = NULL;
	x->len = 0;
}

int td_xattr_next(const void *blob, size_t len, size_t *pos, const char **name, const void **value,
                  size_t *value_len)
{
	const unsigned char *b = blob, *nul;
	size_t p = *pos, nl;
	uint32_t vl;

	if (p >= len)
		return 0;
	nul = memchr(b + p, '\0', len - p);
	if (!nul)
		return -EINVAL;
	nl = (size_t)(nul - (b + p));
	if (nl == 0 || nl > TD_XATTR_NAMELEN || len - p - nl - 1 < 4)
		return -EINVAL;
	vl = (uint32_t)b[p + nl + 1] | (uint32_t)b[p + nl + 2] << 8 |
	     (uint32_t)b[p + nl + 3] << 16 | (uint32_t)b[p + nl + 4] << 24;
	if (vl > len - p - nl - 5)
		return -EINVAL;
	*name = (const char *)(b + p);
	*value = b + p + nl + 5;
	*value_len = vl;
	*pos = p + nl + 5 + vl;
	return 1;
}

bool td_xattr_valid(const void *blob, size_t len)
{
	const char *name;
	const void *v;
	size_t pos = 0, vl;
	int r;

	if (len > TD_XATTR_MAX || (len && !blob))
		return false;
	while ((r = td_xattr_next(blob, len, &pos, &name, &v, &vl)) > 0)
		;
	return r == 0;
}

unsigned td_xattr_count(const void *blob, size_t len)
{
	const char *name;
	const void *v;
	size_t pos = 0, vl;
	unsigned n = 0;
	int r;

	while ((r = td_xattr_next(blob, len, &pos, &name, &v, &vl)) > 0)
		n++;
	return r == 0 ? n : 0;
}

/* The names of fd's attributes, malloc'd; *n their bytes. 0 or -errno. */
static int list_names(int fd, char **out, size_t *n)
{
	for (int i = 0; i < TRIES; i++) {
		ssize_t want = flistxattr(fd, NULL, 0), got;
		char *names;

		if (want < 0)
			return errno == ENOTSUP ? (*out = NULL, *n = 0, 0) : -errno;
		if (want == 0) {
			*out = NULL;
			*n = 0;
			return 0;
		}
		if ((size_t)want > LIST_MAX)
			return -E2BIG;
		names = malloc((size_t)want);
		if (!names)
			return -ENOMEM;
		got = flistxattr(fd, names, (size_t)want);
		if (got >= 0) {
			*out = names;
			*n = (size_t)got;
			return 0;
		}
		free(names);
		if (errno != ERANGE)
			return -errno;
	}
	return -EAGAIN;
}

/* Appends one record of `name`'s value; *len grows. 0, 1 when the attribute
 * went meanwhile, -E2BIG past the cap (*need gets the size so far), -errno. */
static int add_one(int fd, const char *name, unsigned char *buf, size_t *len, size_t *need)
{
	size_t nl = strlen(name), room;
	ssize_t vl;

	for (int i = 0; i < TRIES; i++) {
		vl = fgetxattr(fd, name, NULL, 0);
		if (vl < 0)
			return errno == ENODATA ? 1 : -errno;
		if (*len + nl + 5 + (size_t)vl > TD_XATTR_MAX) {
			*need = *len + nl + 5 + (size_t)vl;
			return -E2BIG;
		}
		room = TD_XATTR_MAX - *len - nl - 5;
		vl = fgetxattr(fd, name, buf + *len + nl + 5, room);
		if (vl >= 0)
			break;
		if (errno == ENODATA)
			return 1;
		if (errno != ERANGE)
			return -errno;
	}
	if (vl < 0)
		return -EAGAIN;
	memcpy(buf + *len, name, nl + 1);
	buf[*len + nl + 1] = (unsigned char)((uint32_t)vl & 0xff);
	buf[*len + nl + 2] = (unsigned char)(((uint32_t)vl >> 8) & 0xff);
	buf[*len + nl + 3] = (unsigned char)(((uint32_t)vl >> 16) & 0xff);
	buf[*len + nl + 4] = (unsigned char)(((uint32_t)vl >> 24) & 0xff);
	*len += nl + 5 + (size_t)vl;
	return 0;
}

int td_xattr_read(struct td_xattrs *out, int fd, size_t *need)
{
	char *names = NULL;
	unsigned char *buf = NULL;
	size_t n = 0, len = 0, big = 0;
	int r;

	r = list_names(fd, &names, &n);
	if (r == -E2BIG && need)
		*need = LIST_MAX;
	if (r < 0 || n == 0) {
		if (r == 0) {
			out->buf = NULL;
			out->len = 0;
		}
		return r;
	}
	buf = malloc(TD_XATTR_MAX);
	if (!buf) {
		free(names);
		return -ENOMEM;
	}
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (!*p || strncmp(p, TD_XATTR_OWN, sizeof(TD_XATTR_OWN) - 1) == 0)
			continue; /* tierd's own bookkeeping on a cache copy, not the file's */
		r = add_one(fd, p, buf, &len, &big);
		if (r < 0)
			break;
		r = 0;
	}
	free(names);
	if (r < 0) {
		if (r == -E2BIG && need)
			*need = big;
		free(buf);
		return r;
	}
	if (len == 0) {
		free(buf);
		buf = NULL;
	}
	out->buf = buf;
	out->len = len;
	return 0;
}

int td_xattr_apply(int fd, const void *blob, size_t len, const char **failed)
{
	const char *name;
	const void *v;
	size_t pos, vl;
	int r;

	if (failed)
		*failed = NULL;
	/* Pass 0: the ACL, so the mode's bits are its own from the first moment. */
	for (int pass = 0; pass < 2; pass++) {
		pos = 0;
		while ((r = td_xattr_next(blob, len, &pos, &name, &v, &vl)) > 0) {
			if ((strcmp(name, TD_XATTR_ACL) == 0) != (pass == 0))
				continue;
			if (fsetxattr(fd, name, v, vl, 0) < 0) {
				r = errno == EOPNOTSUPP ? -ENOTSUP : -errno;
				if (failed)
					*failed = name;
				return r;
			}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

ssize_t td_xattr_get(const void *blob, size_t len, const char *name, void *buf, size_t size)
{
	const char *n;
	const void *v;
	size_t pos = 0, vl;

	while (td_xattr_next(blob, len, &pos, &n, &v, &vl) > 0) {
		if (strcmp(n, name) != 0)
			continue;
		if (size == 0)
			return (ssize_t)vl;
		if (size < vl)
			return -ERANGE;
		memcpy(buf, v, vl);
		return (ssize_t)vl;
	}
	return -ENODATA;
}

ssize_t td_xattr_list(const void *blob, size_t len, char *buf, size_t size)
{
	const char *n;
	const void *v;
	size_t pos = 0, vl, total = 0, nl;

	while (td_xattr_next(blob, len, &pos, &n, &v, &vl) > 0) {
		nl = strlen(n) + 1;
		if (size && total + nl > size)
			return -ERANGE;
		if (size)
			memcpy(buf + total, n, nl);
		total += nl;
	}
	return (ssize_t)total;
}

json_t *td_xattr_to_json(const void *blob, size_t len)
{
	json_t *x = json_object();
	const char *name;
	const void *v;
	size_t pos = 0, vl;

	while (x && td_xattr_next(blob, len, &pos, &name, &v, &vl) > 0) {
		char *enc = malloc(4 * ((vl + 2) / 3) + 1);

		if (enc)
			EVP_EncodeBlock((unsigned char *)enc, v, (int)vl);
		if (!enc || json_object_set_new(x, name, json_string(enc)) < 0) {
			free(enc);
			json_decref(x);
			return NULL;
		}
		free(enc);
	}
	return x;
}

int td_xattr_from_json(struct td_xattrs *out, const json_t *obj)
{
	unsigned char *buf;
	const char *name;
	json_t *val;
	size_t len = 0;

	if (!json_is_object(obj))
		return -EINVAL;
	buf = malloc(TD_XATTR_MAX);
	if (!buf)
		return -ENOMEM;
	json_object_foreach((json_t *)obj, name, val)
	{
		const char *enc = json_string_value(val);
		size_t nl = strlen(name), el = enc ? strlen(enc) : 0, vl;
		int got;

		if (!enc || el % 4 || nl == 0 || nl > TD_XATTR_NAMELEN)
			goto bad;
		vl = el / 4 * 3 - (el && enc[el - 1] == '=') - (el > 1 && enc[el - 2] == '=');
		if (len + nl + 5 + el / 4 * 3 > TD_XATTR_MAX) {
			free(buf);
			return -E2BIG;
		}
		memcpy(buf + len, name, nl + 1);
		got = EVP_DecodeBlock(buf + len + nl + 5, (const unsigned char *)enc, (int)el);
		if (got < 0 || (size_t)got != el / 4 * 3)
			goto bad;
		buf[len + nl + 1] = (unsigned char)(vl & 0xff);
		buf[len + nl + 2] = (unsigned char)((vl >> 8) & 0xff);
		buf[len + nl + 3] = (unsigned char)((vl >> 16) & 0xff);
		buf[len + nl + 4] = (unsigned char)((vl >> 24) & 0xff);
		len += nl + 5 + vl;
	}
	if (len == 0) {
		free(buf);
		buf = NULL;
	}
	out->buf = buf;
	out->len = len;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}
