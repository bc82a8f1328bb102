/*
 * ctl — the control socket's wire format, shared by tierd and tierctl.
 *
 * One JSON object per line, each line at most TD_CTL_MAX_LINE bytes. A request
 * is {"cmd": "NAME", "args": {...}} ("args" optional); a reply is
 * {"ok": true, ...} or {"ok": false, "error": "sentence", "errno": "EPERM"}.
 * The framer never buffers more than one capped line, so a peer that sends
 * garbage or never sends a newline costs a bounded amount of memory.
 * Any thread; each framer is owned by one connection.
 *
 * Paths are bytes, not text: one that is valid UTF-8 travels as a string, any
 * other as base64 under the key with "_b64" appended, so no byte is lost or
 * guessed. The helpers for that, for who counts as an admin on the socket, and
 * for checking a path with a peer's own permissions are here too.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TD_CTL_MAX_LINE (64u * 1024)
#define TD_CTL_MAX_CMD  64

struct td_ctl_framer {
	char *buf;
	size_t len;
	bool discarding; /* inside an over-long line: drop bytes until '\n' */
};

/* Called for each complete line (without its '\n', NUL-terminated for
 * convenience; it may contain NULs of its own, so trust `len`). err is 0, or
 * -EMSGSIZE for a line that was too long (then line is NULL). Return nonzero to
 * stop feeding; td_ctl_framer_feed returns that value. */
typedef int (*td_ctl_line_cb)(void *ctx, int err, const char *line, size_t len);

void td_ctl_framer_init(struct td_ctl_framer *f);
void td_ctl_framer_free(struct td_ctl_framer *f);
/* Whether part of a line has been fed and its '\n' has not come yet. */
bool td_ctl_framer_pending(const struct td_ctl_framer *f);
/* Returns 0, a callback's nonzero value, or -ENOMEM. */
int td_ctl_framer_feed(struct td_ctl_framer *f, const char *data, size_t n, td_ctl_line_cb cb,
                       void *ctx);

/*
 * Parses a request line. Returns 0 with *cmd_out (a malloc'd string) and
 * *args_out (a new reference, an empty object when "args" was absent), or
 * -EINVAL / -EMSGSIZE / -ENOMEM with a sentence in err explaining what is wrong
 * with the message. Outputs are untouched on failure.
 */
int td_ctl_parse_request(const char *line, size_t len, char **cmd_out, json_t **args_out, char *err,
                         size_t errlen);

/* {"ok": false, "error": <message>, "errno": <symbolic name of -err>}. New reference. */
json_t *td_ctl_error_reply(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Serializes a reply or request as one line with its '\n'. malloc'd, or NULL
 * when it would not fit TD_CTL_MAX_LINE or on ENOMEM. */
char *td_ctl_encode(const json_t *msg, size_t *len_out);

/* "EPERM" for EPERM, …; "E?" for numbers it does not know. */
const char *td_errno_name(int errnum);

/* ---- paths on the wire ---------------------------------------------------- */

/* Base64 of n bytes, NUL-terminated and malloc'd; NULL on ENOMEM or n > INT32_MAX. */
char *td_ctl_b64_encode(const void *data, size_t n);
/* Decodes base64 (a multiple of 4 characters) into *out (malloc'd, NUL-terminated)
 * and *len_out. Returns 0, -EINVAL for malformed input, or -ENOMEM. */
int td_ctl_b64_decode(const char *s, char **out, size_t *len_out);

/*
 * Sets obj[key] to the path when it is valid UTF-8; otherwise obj[key] is the
 * td_escape()'d path (\xHH for the bad bytes) and obj[key "_b64"] holds the raw
 * bytes in base64, so consumers that need the exact bytes use the _b64 key when
 * present. Returns 0 or -ENOMEM.
 */
int td_ctl_set_path(json_t *obj, const char *key, const char *path, size_t len);

/* Appends a path to a request's "paths" (UTF-8) or "paths_b64" (anything else)
 * array, creating it. Returns 0 or -ENOMEM. */
int td_ctl_add_path(json_t *args, const char *path, size_t len);

/*
 * The paths of a request: "paths" (strings) and "paths_b64" (raw bytes,
 * base64), at most `max`, each absolute and free of NULs. Returns 0 with
 * malloc'd arrays (td_ctl_paths_free), or -EINVAL / -E2BIG with a sentence in
 * err; outputs are untouched on failure.
 */
int td_ctl_request_paths(json_t *args, size_t max, char ***paths_out, size_t **lens_out,
                         size_t *n_out, char *err, size_t errlen);
void td_ctl_paths_free(char **paths, size_t *lens, size_t n);

/* ---- who may change things, and who may see what ---------------------------- */

/* Root, the admin group as primary group, or as one of `groups`. Without an
 * admin group (has_admin_gid false) only root. */
bool td_ctl_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, bool has_admin_gid,
                     gid_t admin_gid);

/*
 * A socket peer's credentials, as the kernel recorded them when it connected
 * (SO_PEERCRED and SO_PEERGROUPS): nothing the peer does afterwards, and no
 * recycled pid, changes them. Immutable once read, so any thread may use one.
 */
struct td_ctl_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t *groups; /* supplementary groups, malloc'd */
	size_t n_groups;
};

/* Reads the peer of a connected unix socket. Returns 0 or -errno; before Linux
 * 4.13 (no SO_PEERGROUPS) the peer has no supplementary groups. On success
 * free it with td_ctl_peer_free. */
int td_ctl_peer_get(struct td_ctl_peer *out, int fd);
void td_ctl_peer_free(struct td_ctl_peer *p);
/* td_ctl_is_admin for a peer. */
bool td_ctl_peer_is_admin(const struct td_ctl_peer *p, bool has_admin_gid, gid_t admin_gid);

/*
 * Acting as a peer on the file system: the calling thread's fsuid, fsgid and
 * supplementary groups become the peer's (setfsuid, setfsgid and the raw
 * setgroups syscall all change only the calling thread on Linux; the fs
 * capabilities drop with a nonzero fsuid), so the kernel checks each path with
 * the peer's permissions, ACLs included. Needs CAP_SETUID and CAP_SETGID.
 * td_ctl_as_peer returns 0 or -errno (then nothing changed); every successful
 * call is paired with td_ctl_as_self on the same thread, before that thread
 * does anything else. td_ctl_as_self aborts the process if it cannot restore
 * the thread's own credentials: a pool thread left with a user's is worse than
 * a crash, which systemd restarts and recovery finishes.
 */
struct td_ctl_self {
	uid_t fsuid;
	gid_t fsgid;
	gid_t *groups;
	int n_groups;
};
int td_ctl_as_peer(struct td_ctl_self *saved, const struct td_ctl_peer *p);
void td_ctl_as_self(struct td_ctl_self *saved);
