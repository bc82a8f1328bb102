/*
 * glob — the include/exclude patterns of a policy (tierd.conf(5)).
 *
 * Pure functions, any thread. A pattern without '/' matches the file name at
 * any depth; a pattern with one matches the path relative to the policy root
 * (a leading '/' anchors nothing extra and is ignored). '*', '?' and [classes]
 * never match '/'; '**' matches across directories, and a '**' component
 * followed by '/' also matches zero directories ("**" "/x" matches "x").
 * '\\' quotes the next character. Paths are arbitrary bytes (no NUL).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Matches `pat` (NUL-terminated) against the root-relative path `path` of
 * `len` bytes, choosing name or path matching as described above. */
bool td_glob_match(const char *pat, const char *path, size_t len);

/* Matches `pat` against exactly the bytes given (no basename selection). */
bool td_glob_match_raw(const char *pat, const char *s, size_t len);
