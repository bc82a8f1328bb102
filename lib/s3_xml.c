/*
 * s3_xml — see s3_xml.h. One pass over the input with an explicit stack; all
 * strings go into one arena sized from the input length up front, so nothing
 * is reallocated while nodes point into it. Only leaf elements keep their text
 * (S3 never uses mixed content); a container's whitespace is dropped.
 */
#include "s3_xml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN    256
#define TD_MIN_SZ(a, b) ((size_t)(a) < (size_t)(b) ? (size_t)(a) : (size_t)(b))

struct td_s3_xml {
	struct td_s3_xml_node *nodes;
	size_t n_nodes, cap_nodes;
	char *arena;
	size_t used, cap;
	struct td_s3_xml_node *root;
};

struct frame {
	struct td_s3_xml_node *node;
	struct td_s3_xml_node *last_child;
	char *text_start; /* where this element's text begins in the arena */
	size_t raw_name_len;
	const char *raw_name;
};

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
	return !is_ws(c) && c != '<' && c != '>' && c != '/' && c != '=' && c != '"' && c != '\'' &&
	       c != '&' && c != '\0';
}

static const char *find(const char *p, const char *end, const char *needle)
{
	size_t k = strlen(needle);

	while ((size_t)(end - p) >= k) {
		if (memcmp(p, needle, k) == 0)
			return p;
		p++;
	}
	return NULL;
}

static int put_utf8(char **w, uint32_t cp)
{
	unsigned char *o = (unsigned char *)*w;

	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -EPROTO;
	if (cp < 0x80) {
		*o++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*o++ = (unsigned char)(0xC0 | (cp >> 6));
		*o++ = (unsigned char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (unsigned char)(0xE0 | (cp >> 12));
		*o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (unsigned char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (unsigned char)(0xF0 | (cp >> 18));
		*o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (unsigned char)(0x80 | (cp & 0x3F));
	}
	*w = (char *)o;
	return 0;
}

/* Decodes one entity starting at p ('&'); an entity is never longer than its
 * UTF-8 expansion's source, so decoding in place into the arena cannot overrun. */
static int decode_entity(const char **pp, const char *end, char **w)
{
	const char *p = *pp + 1, *semi;
	size_t len;

	semi = memchr(p, ';', (size_t)TD_MIN_SZ(end - p, 12));
	if (!semi)
		return -EPROTO;
	len = (size_t)(semi - p);
	if (len == 2 && memcmp(p, "lt", 2) == 0)
		*(*w)++ = '<';
	else if (len == 2 && memcmp(p, "gt", 2) == 0)
		*(*w)++ = '>';
	else if (len == 3 && memcmp(p, "amp", 3) == 0)
		*(*w)++ = '&';
	else if (len == 4 && memcmp(p, "quot", 4) == 0)
		*(*w)++ = '"';
	else if (len == 4 && memcmp(p, "apos", 4) == 0)
		*(*w)++ = '\'';
	else if (len >= 2 && p[0] == '#') {
		uint32_t cp = 0;
		bool hex = p[1] == 'x';
		const char *q = p + (hex ? 2 : 1);

		if (q == semi)
			return -EPROTO;
		for (; q < semi; q++) {
			unsigned d;

			if (*q >= '0' && *q <= '9')
				d = (unsigned)(*q - '0');
			else if (hex && *q >= 'a' && *q <= 'f')
				d = (unsigned)(*q - 'a' + 10);
			else if (hex && *q >= 'A' && *q <= 'F')
				d = (unsigned)(*q - 'A' + 10);
			else
				return -EPROTO;
			cp = cp * (hex ? 16 : 10) + d;
			if (cp > 0x10FFFF)
				return -EPROTO;
		}
		if (put_utf8(w, cp) < 0)
			return -EPROTO;
	} else {
		return -EPROTO;
	}
	*pp = semi + 1;
	return 0;
}

static int append_text(struct td_s3_xml *d, struct frame *f, const char *p, const char *end,
                       bool raw)
{
	char *w;

	if (f->node->child) /* a container: its text is whitespace we do not keep */
		return 0;
	w = d->arena + d->used;
	while (p < end) {
		if (*p == '&' && !raw) {
			int r = decode_entity(&p, end, &w);

			if (r < 0)
				return r;
		} else {
			*w++ = *p++;
		}
		if ((size_t)(w - f->text_start) > TD_S3_XML_MAX_TEXT)
			return -EPROTO;
	}
	d->used = (size_t)(w - d->arena);
	return 0;
}

static void finish_text(struct td_s3_xml *d, struct frame *f)
{
	if (f->node->child) {
		f->node->text = "";
		f->node->text_len = 0;
		return;
	}
	f->node->text = f->text_start;
	f->node->text_len = (size_t)(d->arena + d->used - f->text_start);
	d->arena[d->used++] = '\0';
}

static bool only_ws(const char *p, const char *end)
{
	for (; p < end; p++)
		if (!is_ws(*p))
			return false;
	return true;
}

int td_s3_xml_parse(struct td_s3_xml **out, const char *buf, size_t n)
{
	struct frame stack[TD_S3_XML_MAX_DEPTH];
	const char *p = buf, *end = buf + n;
	struct td_s3_xml *d;
	size_t depth = 0;
	int r = -EPROTO;

	if (!buf || n == 0 || n > TD_S3_XML_MAX_INPUT)
		return -EPROTO;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cap_nodes = TD_MIN_SZ(n / 4 + 1, TD_S3_XML_MAX_NODES);
	d->nodes = calloc(d->cap_nodes, sizeof(*d->nodes));
	/* Names and decoded text never exceed the input; plus one NUL per node. */
	d->cap = 2 * n + d->cap_nodes + 16;
	d->arena = malloc(d->cap);
	if (!d->nodes || !d->arena) {
		r = -ENOMEM;
		goto fail;
	}

	while (p < end) {
		if (*p != '<') {
			const char *lt = memchr(p, '<', (size_t)(end - p));

			if (!lt)
				lt = end;
			if (depth == 0) {
				if (!only_ws(p, lt))
					goto fail;
			} else if ((r = append_text(d, &stack[depth - 1], p, lt, false)) < 0) {
				goto fail;
			}
			r = -EPROTO;
			p = lt;
			continue;
		}
		if (end - p >= 2 && p[1] == '?') {
			const char *q = find(p + 2, end, "?>");

			if (!q || depth > 0 || d->root)
				goto fail;
			p = q + 2;
		} else if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
			const char *q = find(p + 4, end, "-->");

			if (!q)
				goto fail;
			p = q + 3;
		} else if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
			const char *q = find(p + 9, end, "]]>");

			if (!q || depth == 0)
				goto fail;
			if ((r = append_text(d, &stack[depth - 1], p + 9, q, true)) < 0)
				goto fail;
			r = -EPROTO;
			p = q + 3;
		} else if (end - p >= 2 && p[1] == '!') {
			goto fail; /* DOCTYPE and friends: refused */
		} else if (end - p >= 2 && p[1] == '/') {
			const char *name = p + 2, *q = name;
			struct frame *f;

			while (q < end && is_name_char(*q))
				q++;
			if (depth == 0)
				goto fail;
			f = &stack[depth - 1];
			if ((size_t)(q - name) != f->raw_name_len ||
			    memcmp(name, f->raw_name, f->raw_name_len) != 0)
				goto fail;
			while (q < end && is_ws(*q))
				q++;
			if (q >= end || *q != '>')
				goto fail;
			finish_text(d, f);
			depth--;
			p = q + 1;
		} else {
			const char *name = p + 1, *q = name, *local;
			struct td_s3_xml_node *node;
			bool self_close = false;
			size_t nl;
			char *nm;

			while (q < end && is_name_char(*q))
				q++;
			nl = (size_t)(q - name);
			if (nl == 0 || nl > NAME_MAX_LEN)
				goto fail;
			if (depth == 0 && d->root)
				goto fail; /* a second root */
			if (depth >= TD_S3_XML_MAX_DEPTH || d->n_nodes >= d->cap_nodes)
				goto fail;
			/* Attributes: skipped, but their syntax is checked. */
			for (;;) {
				while (q < end && is_ws(*q))
					q++;
				if (q >= end)
					goto fail;
				if (*q == '>') {
					q++;
					break;
				}
				if (*q == '/') {
					if (q + 1 >= end || q[1] != '>')
						goto fail;
					self_close = true;
					q += 2;
					break;
				}
				if (!is_name_char(*q))
					goto fail;
				while (q < end && is_name_char(*q))
					q++;
				while (q < end && is_ws(*q))
					q++;
				if (q >= end || *q != '=')
					goto fail;
				q++;
				while (q < end && is_ws(*q))
					q++;
				if (q >= end || (*q != '"' && *q != '\''))
					goto fail;
				{
					const char *cq = memchr(q + 1, *q, (size_t)(end - q - 1));

					if (!cq)
						goto fail;
					q = cq + 1;
				}
			}
			/* A container drops the text it had before its first child. */
			if (depth > 0) {
				struct frame *pf = &stack[depth - 1];

				if (!pf->node->child)
					d->used = (size_t)(pf->text_start - d->arena);
			}
			local =
			    memchr(name, ':', nl) ? (const char *)memrchr(name, ':', nl) + 1 : name;
			if (local >= name + nl)
				goto fail;
			node = &d->nodes[d->n_nodes++];
			nm = d->arena + d->used;
			memcpy(nm, local, (size_t)(name + nl - local));
			d->used += (size_t)(name + nl - local);
			d->arena[d->used++] = '\0';
			node->name = nm;
			node->text = "";
			if (depth == 0) {
				d->root = node;
			} else {
				struct frame *pf = &stack[depth - 1];

				if (pf->last_child)
					pf->last_child->next = node;
				else
					pf->node->child = node;
				pf->last_child = node;
			}
			if (!self_close) {
				struct frame *f = &stack[depth++];

				f->node = node;
				f->last_child = NULL;
				f->text_start = d->arena + d->used;
				f->raw_name = name;
				f->raw_name_len = nl;
			}
			p = q;
		}
	}
	if (depth != 0 || !d->root)
		goto fail;
	*out = d;
	return 0;
fail:
	td_s3_xml_free(d);
	return r;
}

void td_s3_xml_free(struct td_s3_xml *doc)
{
	if (!doc)
		return;
	free(doc->nodes);
	free(doc->arena);
	free(doc);
}

const struct td_s3_xml_node *td_s3_xml_root(const struct td_s3_xml *doc)
{
	return doc->root;
}

const struct td_s3_xml_node *td_s3_xml_child(const struct td_s3_xml_node *n, const char *name)
{
	const struct td_s3_xml_node *c;

	if (!n)
		return NULL;
	for (c = n->child; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const char *td_s3_xml_child_text(const struct td_s3_xml_node *n, const char *name)
{
	const struct td_s3_xml_node *c = td_s3_xml_child(n, name);

	return c ? c->text : NULL;
}
