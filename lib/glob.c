/*
 * glob — see glob.h. A backtracking matcher; recursion depth is bounded by the
 * number of '*' in the pattern (config-controlled, short), never by the path.
 */
#include "glob.h"

#include <string.h>

/* Parses a bracket class at p (just after '['). Returns the pointer after the
 * closing ']' and sets *hit, or NULL when the class is unterminated (then the
 * '[' is an ordinary character). */
static const char *match_class(const char *p, unsigned char c, bool *hit)
{
	bool neg = false, found = false;
	const char *q = p;

	if (*q == '!' || *q == '^') {
		neg = true;
		q++;
	}
	for (bool first = true; *q && (first || *q != ']'); first = false) {
		unsigned char lo = (unsigned char)*q, hi;
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
		if (c >= lo && c <= hi)
			found = true;
	}
	if (*q != ']')
		return NULL;
	/* A class never matches '/', negated or not. */
	*hit = c != '/' && (found != neg);
	return q + 1;
}

static bool match(const char *pat, const char *p, const char *s, const char *e)
{
	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			const char *q = p + 2;
			while (*q == '*')
				q++;
			bool at_comp = p == pat || p[-1] == '/';
			if (at_comp && *q == '/') {
				/* "**" "/": zero or more whole directories. */
				q++;
				for (const char *t = s;; t++) {
					if ((t == s || t[-1] == '/') && match(pat, q, t, e))
						return true;
					if (t == e)
						return false;
				}
			}
			for (const char *t = s;; t++) {
				if (match(pat, q, t, e))
					return true;
				if (t == e)
					return false;
			}
		}
		if (*p == '*') {
			p++;
			for (const char *t = s;; t++) {
				if (match(pat, p, t, e))
					return true;
				if (t == e || *t == '/')
					return false;
			}
		}
		if (s == e)
			return false;
		unsigned char c = (unsigned char)*s;
		if (*p == '?') {
			if (c == '/')
				return false;
			p++;
		} else if (*p == '[') {
			bool hit = false;
			const char *q = match_class(p + 1, c, &hit);
			if (q) {
				if (!hit)
					return false;
				p = q;
			} else {
				if (c != '[')
					return false;
				p++;
			}
		} else {
			if (*p == '\\' && p[1])
				p++;
			if ((unsigned char)*p != c)
				return false;
			p++;
		}
		s++;
	}
	return s == e;
}

bool td_glob_match_raw(const char *pat, const char *s, size_t len)
{
	return match(pat, pat, s, s + len);
}

bool td_glob_match(const char *pat, const char *path, size_t len)
{
	if (!strchr(pat, '/')) {
		const char *slash = memrchr(path, '/', len);
		const char *name = slash ? slash + 1 : path;
		return td_glob_match_raw(pat, name, len - (size_t)(name - path));
	}
	while (*pat == '/')
		pat++;
	return td_glob_match_raw(pat, path, len);
}
