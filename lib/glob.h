/*
 * glob — the include/exclude patterns of a policy (tierd.conf(5)).
 *
 * A compiled pattern is immutable and may be used by any number of threads.
 * A pattern without '/' matches the file name at any depth; a pattern with
 * one matches the path relative to the policy root (leading '/'s are
 * ignored). '*', '?' and [classes] ([!..] or [^..] negate, a-z ranges) never
 * match '/'; '**' matches across directories, and a '**' component followed
 * by '/' also matches zero directories ("**" "/x" matches "x"). '\\' quotes
 * the next character; an unterminated '[' is an ordinary character. Paths are
 * arbitrary bytes (no NUL). Matching costs O(path x pattern), never more.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define TD_GLOB_MAX 1024 /* longest pattern, bytes */

struct td_glob;

/* Returns 0 and a new pattern in *out, or -EINVAL (too long) / -ENOMEM. */
int td_glob_compile(struct td_glob **out, const char *pat);
void td_glob_free(struct td_glob *g);

/* Matches the root-relative path of `len` bytes. */
bool td_glob_exec(const struct td_glob *g, const char *path, size_t len);

/* True when every path below directory `dir` (root-relative, len > 0)
 * matches, e.g. "**" "/.git/" "**" for "src/.git": the walker then need not
 * enter it. Conservative: false when unsure. */
bool td_glob_covers_dir(const struct td_glob *g, const char *dir, size_t len);

/* Compile, match, free: for tests and one-off use (false if it cannot compile). */
bool td_glob_match(const char *pat, const char *path, size_t len);
