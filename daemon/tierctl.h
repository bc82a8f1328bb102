/*
 * tierctl — the command-line client. tierctl.c parses the global options and
 * dispatches; each command lives in its own tierctl_<command>.c.
 */
#pragma once

#include <stdbool.h>

/* Exit codes, from INTERFACE.md. */
enum {
	TIERCTL_OK = 0,
	TIERCTL_FAILED = 1,      /* the operation failed (for some paths: each reported) */
	TIERCTL_USAGE = 2,       /* usage or configuration error */
	TIERCTL_UNREACHABLE = 3, /* the daemon is unreachable */
};

struct tierctl_opts {
	const char *config_path; /* -c, default TD_DEFAULT_CONFIG */
	const char *socket_path; /* -s, NULL: <run_dir>/tierd.sock from the config */
	bool json;               /* --json */
	bool tty;                /* stdout is a terminal: progress lines allowed */
};

#include <jansson.h>

/* Sends {"cmd": cmd, "args": args} to tierd and returns its reply in *reply
 * (a new reference). Returns TIERCTL_OK, TIERCTL_USAGE (no socket path), or
 * TIERCTL_UNREACHABLE, having printed why. */
int tierctl_request(const struct tierctl_opts *o, const char *cmd, json_t *args, json_t **reply);
/* The same, passing each streamed {"event": ...} line to on_event first. */
int tierctl_request_stream(const struct tierctl_opts *o, const char *cmd, json_t *args,
                           int (*on_event)(void *ctx, json_t *ev), void *ctx, json_t **reply);
/* A path made absolute against the current directory and cleaned of "." and
 * ".." lexically, never resolved (tierctl_files.c). malloc'd; NULL on error. */
char *tierctl_absolute(const char *p);
/* Prints a reply's error; returns the exit code for it. */
int tierctl_reply_error(json_t *reply);

/* Each command gets argv[0] = its own name; returns an exit code above. */
int tierctl_plan(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_status(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_reload(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_run(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_migrate(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_recall(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_pin(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_unpin(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_info(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_ls(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_metrics(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_verify(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_gc(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_check_target(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_recall_bulk(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_restore(const struct tierctl_opts *o, int argc, char **argv);
int tierctl_rebuild(const struct tierctl_opts *o, int argc, char **argv);
