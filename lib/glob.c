/*
 * glob — see glob.h. A pattern compiles to a small token program that runs as
 * an NFA over the path: O(path length x pattern length) time whatever the
 * pattern, so a hostile file name cannot make a many-star pattern explode
 * (a backtracking matcher is exponential in the number of stars).
 */
#include "glob.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind {
	T_BYTES, /* one byte from the set (a literal, '?', or a [class]) */
	T_STAR,  /* '*': any run of bytes without '/' */
	T_DSTAR, /* '**' inside a component: any run of bytes */
	T_DS_A,  /* '**' '/' at a component start: zero or more whole directories; */
	T_DS_B,  /*   A = may leave (at start or just after a '/'), B = inside a name */
};

struct tok {
	enum tok_kind kind;
	uint8_t set[32]; /* T_BYTES: bitmap of accepted bytes */
};

struct td_glob {
	size_t n;
	bool name_only; /* no '/' in the pattern: match the last component */
	bool match_all; /* the pattern is "*" (the default include) */
	struct tok t[];
};

static void set_bit(uint8_t *set, unsigned c)
{
	set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool has_bit(const uint8_t *set, unsigned c)
{
	return set[c >> 3] & (1u << (c & 7));
}

/* Parses a bracket class at p (just after '['). Returns the pointer after the
 * closing ']', or NULL when unterminated (then '[' is an ordinary byte). */
static const char *parse_class(const char *p, uint8_t *set)
{
	bool neg = false;
	const char *q = p;

	memset(set, 0, 32);
	if (*q == '!' || *q == '^') {
		neg = true;
		q++;
	}
	for (bool first = true; *q && (first || *q != ']'); first = false) {
		unsigned lo = (unsigned char)*q, hi;
		if (lo == '\\' && q[1])
			lo = (unsigned char)*++q;
		q++;
		hi = lo;
		if (q[0] == '-' && q[1] && q[1] != ']') {
			q++;
			if (*q == '\\' && q[1])
				q++;
			hi = (unsigned char)*q++;
		}
		for (unsigned c = lo; c <= hi && c < 256; c++)
			set_bit(set, c);
	}
	if (*q != ']')
		return NULL;
	if (neg)
		for (unsigned i = 0; i < 32; i++)
			set[i] = (uint8_t)~set[i];
	/* A class never matches '/', negated or not. */
	set[(unsigned)'/' >> 3] &= (uint8_t) ~(1u << ('/' & 7));
	return q + 1;
}

int td_glob_compile(struct td_glob **out, const char *pat)
{
	size_t plen = strlen(pat);
	struct td_glob *g;
	const char *p;

	if (plen > TD_GLOB_MAX)
		return -EINVAL;
	/* at most two tokens per pattern byte */
	g = calloc(1, sizeof(*g) + (2 * plen + 1) * sizeof(g->t[0]));
	if (!g)
		return -ENOMEM;
	g->name_only = !strchr(pat, '/');
	if (!g->name_only)
		while (*pat == '/')
			pat++;
	for (p = pat; *p;) {
		struct tok *t = &g->t[g->n];
		if (p[0] == '*' && p[1] == '*') {
			const char *q = p + 2;
			while (*q == '*')
				q++;
			if ((p == pat || p[-1] == '/') && *q == '/') {
				t->kind = T_DS_A;
				g->t[g->n + 1].kind = T_DS_B;
				g->n += 2;
				p = q + 1;
			} else {
				t->kind = T_DSTAR;
				g->n++;
				p = q;
			}
			continue;
		}
		g->n++;
		if (*p == '*') {
			t->kind = T_STAR;
			p++;
			continue;
		}
		t->kind = T_BYTES;
		if (*p == '?') {
			memset(t->set, 0xff, sizeof(t->set));
			t->set[(unsigned)'/' >> 3] &= (uint8_t) ~(1u << ('/' & 7));
			p++;
			continue;
		}
		if (*p == '[') {
			const char *q = parse_class(p + 1, t->set);
			if (q) {
				p = q;
				continue;
			}
		} else if (*p == '\\' && p[1]) {
			p++;
		}
		memset(t->set, 0, sizeof(t->set));
		set_bit(t->set, (unsigned char)*p);
		p++;
	}
	g->match_all = g->name_only && g->n == 1 && g->t[0].kind == T_STAR;
	*out = g;
	return 0;
}

void td_glob_free(struct td_glob *g)
{
	free(g);
}

/* Adds the states reachable without consuming a byte; they all lie ahead. */
static void closure(const struct td_glob *g, uint8_t *st)
{
	for (size_t i = 0; i < g->n; i++) {
		if (!st[i])
			continue;
		if (g->t[i].kind == T_STAR || g->t[i].kind == T_DSTAR)
			st[i + 1] = 1;
		else if (g->t[i].kind == T_DS_A)
			st[i + 2] = 1;
	}
}

/* Runs the NFA over s..e from the states in cur; returns the final state set
 * (cur or nxt) or NULL when no state survives. */
static uint8_t *run(const struct td_glob *g, uint8_t *cur, uint8_t *nxt, const unsigned char *s,
                    const unsigned char *e)
{
	for (; s < e; s++) {
		unsigned c = *s;
		bool any = false;
		memset(nxt, 0, g->n + 1);
		for (size_t i = 0; i < g->n; i++) {
			if (!cur[i])
				continue;
			switch (g->t[i].kind) {
			case T_BYTES:
				if (has_bit(g->t[i].set, c))
					nxt[i + 1] = 1, any = true;
				break;
			case T_STAR:
				if (c != '/')
					nxt[i] = 1, any = true;
				break;
			case T_DSTAR:
				nxt[i] = 1, any = true;
				break;
			case T_DS_A:
			case T_DS_B: {
				size_t base = g->t[i].kind == T_DS_A ? i : i - 1;
				nxt[c == '/' ? base : base + 1] = 1;
				any = true;
				break;
			}
			}
		}
		if (!any)
			return NULL;
		closure(g, nxt);
		uint8_t *t = cur;
		cur = nxt;
		nxt = t;
	}
	return cur;
}

bool td_glob_exec(const struct td_glob *g, const char *path, size_t len)
{
	uint8_t a[2 * TD_GLOB_MAX + 2], b[2 * TD_GLOB_MAX + 2], *st;
	const unsigned char *s = (const unsigned char *)path, *e = s + len;

	if (g->name_only) {
		const unsigned char *slash = memrchr(s, '/', len);
		if (slash)
			s = slash + 1;
		if (g->match_all)
			return true;
	}
	memset(a, 0, g->n + 1);
	a[0] = 1;
	closure(g, a);
	st = run(g, a, b, s, e);
	return st && st[g->n];
}

bool td_glob_covers_dir(const struct td_glob *g, const char *dir, size_t len)
{
	uint8_t a[2 * TD_GLOB_MAX + 2], b[2 * TD_GLOB_MAX + 2], *st;
	const unsigned char slash = '/';

	if (g->name_only)
		return false;
	memset(a, 0, g->n + 1);
	a[0] = 1;
	closure(g, a);
	st = run(g, a, b, (const unsigned char *)dir, (const unsigned char *)dir + len);
	if (!st)
		return false;
	st = run(g, st, st == a ? b : a, &slash, &slash + 1);
	if (!st)
		return false;
	/* Everything below matches when a live '**' has only '**'s after it. */
	for (size_t i = 0; i < g->n; i++) {
		if (!st[i] || g->t[i].kind != T_DSTAR)
			continue;
		size_t j = i + 1;
		while (j < g->n && g->t[j].kind == T_DSTAR)
			j++;
		if (j == g->n)
			return true;
	}
	return false;
}

bool td_glob_match(const char *pat, const char *path, size_t len)
{
	struct td_glob *g = NULL;
	bool r;

	if (td_glob_compile(&g, pat) < 0)
		return false;
	r = td_glob_exec(g, path, len);
	td_glob_free(g);
	return r;
}
