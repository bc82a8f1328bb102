/*
 * ctl — the control socket's wire format, shared by tierd and tierctl.
 *
 * One JSON object per line, each line at most TD_CTL_MAX_LINE bytes. A request
 * is {"cmd": "NAME", "args": {...}} ("args" optional); a reply is
 * {"ok": true, ...} or {"ok": false, "error": "sentence", "errno": "EPERM"}.
 * The framer never buffers more than one capped line, so a peer that sends
 * garbage or never sends a newline costs a bounded amount of memory.
 * Any thread; each framer is owned by one connection.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

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
