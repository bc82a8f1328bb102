/*
 * s3_xml — see s3_xml.h. One pass over the input with an explicit stack; all
 * strings go into one arena sized from the input length up front, so nothing
 * is reallocated while nodes point into it. Only leaf elements keep their text
 * (S3 never uses mixed content); a container's whitespace is dropped.
 *
 * The parse is a loop of steps (parse_step): text, markup (declarations,
 * comments, CDATA), a close tag, an open tag; each returns 0 or -EPROTO and
 * moves the parser on. Any thread: the parse owns nothing but its document,
 * which owns every node and string. Tested by tests/target_s3/test_s3_xml
 * (with the corpus in tests/fuzz/corpus) and fuzzed by tests/fuzz/fuzz_s3_xml.
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

/* The state of one parse: the input still to read and the open elements. */
struct parser {
	struct td_s3_xml *d;
	const char *p, *end;
	struct frame stack[TD_S3_XML_MAX_DEPTH];
	size_t depth;
};

static struct frame *top(struct parser *ps)
{
	return ps->depth ? &ps->stack[ps->depth - 1] : NULL;
}

/* Character data up to the next '<': kept by a leaf, whitespace elsewhere. */
static int parse_text(struct parser *ps)
{
	const char *lt = memchr(ps->p, '<', (size_t)(ps->end - ps->p));
	int r = 0;

	if (!lt)
		lt = ps->end;
	if (ps->depth == 0) {
		if (!only_ws(ps->p, lt))
			return -EPROTO;
	} else {
		r = append_text(ps->d, top(ps), ps->p, lt, false);
	}
	ps->p = lt;
	return r;
}

/* "<?...?>" (only before the root), "<!--...-->", "<![CDATA[...]]>" (text of
 * the open element); any other "<!" (DOCTYPE and friends) is refused.
 * Returns 1 when p is at none of these. */
static int parse_markup(struct parser *ps)
{
	const char *p = ps->p, *end = ps->end, *q;

	if (end - p >= 2 && p[1] == '?') {
		q = find(p + 2, end, "?>");
		if (!q || ps->depth > 0 || ps->d->root)
			return -EPROTO;
		ps->p = q + 2;
		return 0;
	}
	if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
		q = find(p + 4, end, "-->");
		if (!q)
			return -EPROTO;
		ps->p = q + 3;
		return 0;
	}
	if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
		q = find(p + 9, end, "]]>");
		if (!q || ps->depth == 0 || append_text(ps->d, top(ps), p + 9, q, true) < 0)
			return -EPROTO;
		ps->p = q + 3;
		return 0;
	}
	if (end - p >= 2 && p[1] == '!')
		return -EPROTO;
	return 1;
}

/* "</name>": must close the open element, by the same raw name. */
static int parse_close_tag(struct parser *ps)
{
	const char *name = ps->p + 2, *q = name, *end = ps->end;
	struct frame *f = top(ps);

	while (q < end && is_name_char(*q))
		q++;
	if (!f)
		return -EPROTO;
	if ((size_t)(q - name) != f->raw_name_len ||
	    memcmp(name, f->raw_name, f->raw_name_len) != 0)
		return -EPROTO;
	while (q < end && is_ws(*q))
		q++;
	if (q >= end || *q != '>')
		return -EPROTO;
	finish_text(ps->d, f);
	ps->depth--;
	ps->p = q + 1;
	return 0;
}

/* Skips a start tag's attributes, checking their syntax, to just past its
 * '>' or "/>". */
static int skip_attributes(const char **qq, const char *end, bool *self_close)
{
	const char *q = *qq, *cq;

	for (;;) {
		while (q < end && is_ws(*q))
			q++;
		if (q >= end)
			return -EPROTO;
		if (*q == '>') {
			*qq = q + 1;
			return 0;
		}
		if (*q == '/') {
			if (q + 1 >= end || q[1] != '>')
				return -EPROTO;
			*self_close = true;
			*qq = q + 2;
			return 0;
		}
		if (!is_name_char(*q))
			return -EPROTO;
		while (q < end && is_name_char(*q))
			q++;
		while (q < end && is_ws(*q))
			q++;
		if (q >= end || *q != '=')
			return -EPROTO;
		q++;
		while (q < end && is_ws(*q))
			q++;
		if (q >= end || (*q != '"' && *q != '\''))
			return -EPROTO;
		cq = memchr(q + 1, *q, (size_t)(end - q - 1));
		if (!cq)
			return -EPROTO;
		q = cq + 1;
	}
}

/* A new element named by its local name (a "p:" prefix dropped), linked as
 * the root or as the open element's last child. */
static int add_node(struct parser *ps, const char *name, size_t nl, struct td_s3_xml_node **out)
{
	struct td_s3_xml *d = ps->d;
	struct frame *pf = top(ps);
	const char *local = memchr(name, ':', nl) ? (const char *)memrchr(name, ':', nl) + 1 : name;
	struct td_s3_xml_node *node;
	char *nm;

	if (local >= name + nl)
		return -EPROTO;
	/* A container drops the text it had before its first child. */
	if (pf && !pf->node->child)
		d->used = (size_t)(pf->text_start - d->arena);
	node = &d->nodes[d->n_nodes++];
	nm = d->arena + d->used;
	memcpy(nm, local, (size_t)(name + nl - local));
	d->used += (size_t)(name + nl - local);
	d->arena[d->used++] = '\0';
	node->name = nm;
	node->text = "";
	if (!pf) {
		d->root = node;
	} else {
		if (pf->last_child)
			pf->last_child->next = node;
		else
			pf->node->child = node;
		pf->last_child = node;
	}
	*out = node;
	return 0;
}

/* "<name attr='v'>" or "<name/>": a new element, opened unless self-closed. */
static int parse_open_tag(struct parser *ps)
{
	const char *name = ps->p + 1, *q = name;
	struct td_s3_xml_node *node;
	bool self_close = false;
	size_t nl;

	while (q < ps->end && is_name_char(*q))
		q++;
	nl = (size_t)(q - name);
	if (nl == 0 || nl > NAME_MAX_LEN)
		return -EPROTO;
	if (ps->depth == 0 && ps->d->root)
		return -EPROTO; /* a second root */
	if (ps->depth >= TD_S3_XML_MAX_DEPTH || ps->d->n_nodes >= ps->d->cap_nodes)
		return -EPROTO;
	if (skip_attributes(&q, ps->end, &self_close) < 0 || add_node(ps, name, nl, &node) < 0)
		return -EPROTO;
	if (!self_close) {
		struct frame *f = &ps->stack[ps->depth++];

		f->node = node;
		f->last_child = NULL;
		f->text_start = ps->d->arena + ps->d->used;
		f->raw_name = name;
		f->raw_name_len = nl;
	}
	ps->p = q;
	return 0;
}

/* One piece of the input: text, markup, or a tag. */
static int parse_step(struct parser *ps)
{
	int r;

	if (*ps->p != '<')
		return parse_text(ps);
	r = parse_markup(ps);
	if (r != 1)
		return r;
	if (ps->end - ps->p >= 2 && ps->p[1] == '/')
		return parse_close_tag(ps);
	return parse_open_tag(ps);
}

/* A document sized for n bytes of input, with nothing in it yet. */
static int doc_new(struct td_s3_xml **out, size_t n)
{
	struct td_s3_xml *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->cap_nodes = TD_MIN_SZ(n / 4 + 1, TD_S3_XML_MAX_NODES);
	d->nodes = calloc(d->cap_nodes, sizeof(*d->nodes));
	/* Names and decoded text never exceed the input; plus one NUL per node. */
	d->cap = 2 * n + d->cap_nodes + 16;
	d->arena = malloc(d->cap);
	if (!d->nodes || !d->arena) {
		td_s3_xml_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

int td_s3_xml_parse(struct td_s3_xml **out, const char *buf, size_t n)
{
	struct parser ps = { .p = buf, .end = buf + n };
	int r;

	if (!buf || n == 0 || n > TD_S3_XML_MAX_INPUT)
		return -EPROTO;
	r = doc_new(&ps.d, n);
	if (r < 0)
		return r;
	while (r == 0 && ps.p < ps.end)
		r = parse_step(&ps);
	if (r < 0 || ps.depth != 0 || !ps.d->root) {
		td_s3_xml_free(ps.d);
		return -EPROTO;
	}
	*out = ps.d;
	return 0;
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
