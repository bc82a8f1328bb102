/*
 * config — tierd.conf (INI, parsed with inih) into validated, typed structs.
 *
 * Any thread; no globals. td_config_load() reads the whole file, checks every
 * key, and reports every problem it finds in one pass (file:line, key, message).
 * The result is immutable once returned; the daemon swaps whole configs on
 * SIGHUP. Strings are owned by the config and freed by td_config_free().
 * Programs load through td_config_load_report(), which adds the credentials
 * step; start-up, reload and every tierctl command share it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define TD_DEFAULT_CONFIG "/etc/tierd/tierd.conf"

/* Caps on what td_config_load() accepts; anything bigger is an error. */
#define TD_CONFIG_MAX_BYTES  (1024 * 1024)
#define TD_CONFIG_MAX_LINES  10000
#define TD_CONFIG_MAX_ERRORS 1000
#define TD_CONFIG_MAX_LIST   1024 /* items in one list value */
#define TD_CONFIG_MAX_NAME   40   /* target and policy names: [A-Za-z0-9_.-] */

enum td_log_level {
	TD_LOG_ERROR = 3, /* syslog priorities, so they double as journald <N> prefixes */
	TD_LOG_WARNING = 4,
	TD_LOG_NOTICE = 5,
	TD_LOG_INFO = 6,
	TD_LOG_DEBUG = 7,
};

/* A list of strings from a space- or comma-separated value. */
struct td_strlist {
	char **v;
	size_t n;
};

/* Bytes, or a percentage of a filesystem's size when is_pct. */
struct td_size_or_pct {
	bool is_pct;
	uint64_t bytes;
	double pct; /* 0..100 */
};

enum td_target_type {
	TD_TARGET_S3,
	TD_TARGET_DIR,
};

enum td_addressing {
	TD_ADDRESSING_PATH,
	TD_ADDRESSING_VIRTUAL,
};

struct td_target_conf {
	char *name;
	unsigned line; /* line of the [target "NAME"] header, for messages */
	enum td_target_type type;

	/* type = s3 */
	char *endpoint; /* scheme://host[:port], no trailing slash */
	char *region;   /* default us-east-1 */
	char *bucket;
	char *prefix; /* "" or ends in '/' */
	enum td_addressing addressing;
	char *credentials_file; /* NULL: use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY */
	char *access_key;       /* secret: never printed or logged */
	char *secret_key;       /* secret: never printed or logged */
	char *storage_class;    /* default STANDARD */
	uint64_t multipart_threshold_bytes; /* default 64M */
	uint64_t part_size_bytes;           /* default 16M, 5M..5G */
	unsigned max_connections;           /* default 8 */
	uint64_t bandwidth_limit_bytes;     /* bytes per second, 0 = unlimited */
	char *ca_file;                      /* NULL: system bundle only */
	char *connect_to;                   /* HOST:PORT every connection goes to; NULL/"": DNS */
	bool delete_versions;               /* deletes remove every version of the key */
	bool creds_from_env;                /* keys came from td_config_apply_env_credentials */

	/* type = dir */
	char *path;
};

enum td_age_by {
	TD_AGE_ATIME,
	TD_AGE_MTIME,
	TD_AGE_CTIME,
	TD_AGE_NEWEST, /* the latest of the three */
};

enum td_schedule_kind {
	TD_SCHEDULE_MANUAL,
	TD_SCHEDULE_EVERY,  /* every every_s seconds */
	TD_SCHEDULE_HOURLY, /* at minute `minute` of every hour (0) */
	TD_SCHEDULE_DAILY,  /* at hour:minute local time */
	TD_SCHEDULE_WEEKLY, /* on weekday (0 = Sunday) at hour:minute */
};

struct td_schedule {
	enum td_schedule_kind kind;
	int64_t every_s;
	int weekday;
	int hour;
	int minute;
};

struct td_policy_conf {
	char *name;
	unsigned line;
	struct td_strlist paths; /* absolute, normalized (no trailing '/', no "..") */
	char *target;            /* name of a [target] section */
	const struct td_target_conf *target_conf; /* resolved; points into td_config.targets */
	enum td_age_by age_by;                    /* default atime */
	int64_t min_age_s;                        /* default 90d */
	uint64_t min_size_bytes;                  /* default 1M */
	uint64_t max_size_bytes;                  /* UINT64_MAX when empty */
	struct td_strlist include;                /* default "*" */
	struct td_strlist exclude;                /* default empty */
	uid_t *owners;                            /* resolved uids; n_owners = 0: anyone */
	size_t n_owners;
	gid_t *groups;
	size_t n_groups;
	struct td_schedule schedule; /* default manual */
	bool has_watermarks;
	double high_watermark_pct; /* 0..100 */
	double low_watermark_pct;
	uint64_t max_bytes_per_run; /* 0 = unlimited */
	uint64_t max_files_per_run; /* 0 = unlimited */
	bool keep_cached;           /* default no */
	bool one_filesystem;        /* default yes */
	/* A tiered file read on this many days (cache-copy atime advances)
	 * within hot_recall_window_s goes back to primary storage; 0: never. */
	unsigned hot_recall_reads;   /* default 0 */
	int64_t hot_recall_window_s; /* default 7d */
};

struct td_config {
	char *path; /* the file it was read from */
	char *state_dir;
	char *cache_dir;
	char *run_dir;
	struct td_size_or_pct cache_size; /* default 10% */
	struct td_size_or_pct pin_quota;  /* per non-admin uid; % of the cache limit; default 10% */
	enum td_log_level log_level;      /* default info */
	char *admin_group;                /* default "tierd"; may not exist */
	bool has_admin_gid;
	gid_t admin_gid;
	unsigned max_transfers;         /* default 8 */
	int64_t retention_s;            /* default 30d */
	struct td_strlist no_hydrate;   /* process names */
	bool stream_direct_io;          /* default yes: streamed reads bypass the page cache */
	char *metrics_listen;           /* "ADDR:PORT" of the /metrics listener; NULL: off */
	int64_t stop_timeout_s;         /* SIGTERM lets transfers finish this long; default 60 s */
	struct td_schedule gc_schedule; /* when `tierctl gc` runs by itself; default manual */
	struct td_strlist sighting_roots; /* trees outside the policies walked for links (gc) */
	struct td_target_conf *targets;
	size_t n_targets;
	struct td_policy_conf *policies;
	size_t n_policies;
};

struct td_config_error {
	char *file;
	unsigned line; /* 0 when the error is about the file as a whole */
	char *key;     /* NULL when not about one key */
	char *msg;
};

struct td_config_errors {
	struct td_config_error *v;
	size_t n;
};

/*
 * Reads and validates `path`. Returns 0 and a new config in *out, or a negative
 * errno (-EINVAL for validation errors, others for I/O) with every problem
 * appended to `errs` and *out untouched. `errs` may be NULL.
 */
int td_config_load(struct td_config **out, const char *path, struct td_config_errors *errs);
void td_config_free(struct td_config *c);
void td_config_errors_clear(struct td_config_errors *errs);
/* Writes "FILE:LINE: key: message" lines. */
void td_config_errors_print(const struct td_config_errors *errs, FILE *f);

/* Prints the effective configuration as INI, defaults filled in, secrets redacted. */
int td_config_dump(const struct td_config *c, FILE *f);

const struct td_target_conf *td_config_target(const struct td_config *c, const char *name);
const struct td_policy_conf *td_config_policy(const struct td_config *c, const char *name);

/* Value parsers, shared with command-line flags. Return 0 or -EINVAL/-ERANGE. */
int td_parse_size(const char *s, uint64_t *out_bytes); /* "10", "64M", "1.5G" */
int td_parse_duration(const char *s, int64_t *out_s);  /* "30s", "90d", "2w" */
int td_parse_percent(const char *s, double *out_pct);  /* "85%" */
int td_parse_bool(const char *s, bool *out);           /* yes/no/true/false/on/off/1/0 */
int td_parse_schedule(const char *s, struct td_schedule *out);
/* A size ("64M") or a percentage ("10%", 0..100). */
int td_parse_size_or_pct(const char *s, struct td_size_or_pct *out);

/*
 * Gives every s3 target that has no credentials_file the keys from the
 * environment (the daemon passes getenv("AWS_ACCESS_KEY_ID") and
 * getenv("AWS_SECRET_ACCESS_KEY"); either may be NULL or empty, then nothing
 * changes). Call it once, right after td_config_load(). Returns 0 or -ENOMEM.
 */
int td_config_apply_env_credentials(struct td_config *c, const char *access_key,
                                    const char *secret_key);
/*
 * Appends an error for every s3 target that still has no keys (neither a
 * credentials_file nor the environment gave them). Returns 0 when every s3
 * target has keys, else -EINVAL (or -ENOMEM). `errs` may be NULL.
 */
int td_config_check_credentials(const struct td_config *c, struct td_config_errors *errs);

/* What td_config_load_report() does about s3 targets' keys. */
enum td_config_creds {
	TD_CONFIG_CREDS_NONE, /* nothing: the caller reads no keys (tierctl status, plan) */
	TD_CONFIG_CREDS_ENV,  /* give the environment's keys to targets without credentials_file */
	/* As ENV, and a target still without keys is a warning: tierd --check-config, where
	 * the service's environment (systemd's EnvironmentFile=) may differ from this one. */
	TD_CONFIG_CREDS_WARN,
	TD_CONFIG_CREDS_REQUIRE, /* as ENV, and a target still without keys is an error */
};

struct td_config_load_opts {
	enum td_config_creds creds;
	const char *access_key; /* the environment's AWS_ACCESS_KEY_ID; NULL or "" = none */
	const char *secret_key; /* AWS_SECRET_ACCESS_KEY */
};

/* Every problem of one load, each with file:line; no message holds a secret. */
struct td_config_report {
	struct td_config_errors errors;   /* why the load failed; empty on success */
	struct td_config_errors warnings; /* TD_CONFIG_CREDS_WARN: "FILE:LINE: warning: ..." */
};

/*
 * The one way a program loads its configuration: td_config_load(), then the
 * credentials step `o` asks for (NULL: TD_CONFIG_CREDS_NONE). Returns 0 and a
 * new config in *out, or a negative errno with *out untouched. Either way the
 * problems are appended to `rep` for the caller to print (td_config_errors_print)
 * or log; on failure rep->errors is not empty (a failure with no message of its
 * own, out of memory, becomes "FILE: <strerror>"), unless memory ran out for that
 * too. Free with td_config_report_clear().
 */
int td_config_load_report(struct td_config **out, const char *path,
                          const struct td_config_load_opts *o, struct td_config_report *rep);
void td_config_report_clear(struct td_config_report *rep);
