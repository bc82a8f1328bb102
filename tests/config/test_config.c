/* Unit tests for config: value parsers, broken configurations, dump, credentials. */
#include "config.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[4096];
static char cred_ok[4200], cred_644[4200], cred_bad[4200], cred_nosecret[4200];

#define ACCESS "AKIDEXAMPLEACCESS42"
#define SECRET "wJalrXUtnFEMIexampleSECRETkey42"

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) < 0) {
		perror(path);
		exit(1);
	}
	close(fd);
}

/* Replaces @OK@, @644@, @BAD@, @NOSECRET@ with the credentials files' paths. */
static char *expand(const char *text)
{
	static const struct {
		const char *tag;
		const char *path;
	} subst[] = {
		{ "@OK@", cred_ok },
		{ "@644@", cred_644 },
		{ "@BAD@", cred_bad },
		{ "@NOSECRET@", cred_nosecret },
	};
	char *out = malloc(strlen(text) + 4 * 4200 + 1), *o = out;

	if (!out)
		exit(1);
	while (*text) {
		size_t i;
		for (i = 0; i < TD_ARRAY_SIZE(subst); i++) {
			size_t n = strlen(subst[i].tag);
			if (strncmp(text, subst[i].tag, n) == 0) {
				o += sprintf(o, "%s", subst[i].path);
				text += n;
				break;
			}
		}
		if (i == TD_ARRAY_SIZE(subst))
			*o++ = *text++;
	}
	*o = '\0';
	return out;
}

static int load_text(const char *name, const char *text, struct td_config **out,
                     struct td_config_errors *errs, char *path, size_t pathlen)
{
	char *t = expand(text);

	snprintf(path, pathlen, "%s/%s.conf", tmp, name);
	write_file(path, t, 0644);
	free(t);
	return td_config_load(out, path, errs);
}

/* ---- value parsers -------------------------------------------------------------------------- */

static void test_parse_size(void)
{
	uint64_t v = 7;

	CHECK_INT(td_parse_size("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(td_parse_size("10", &v), 0);
	CHECK_INT(v, 10);
	CHECK_INT(td_parse_size("64M", &v), 0);
	CHECK_INT(v, 64ull << 20);
	CHECK_INT(td_parse_size("1.5G", &v), 0);
	CHECK_INT(v, 3ull << 29);
	CHECK_INT(td_parse_size("1k", &v), 0);
	CHECK_INT(v, 1024);
	CHECK_INT(td_parse_size("2KiB", &v), 0);
	CHECK_INT(v, 2048);
	CHECK_INT(td_parse_size("1T", &v), 0);
	CHECK_INT(v, 1ull << 40);
	CHECK_INT(td_parse_size("0.5K", &v), 0);
	CHECK_INT(v, 512);
	CHECK_INT(td_parse_size("16777215T", &v), 0);
	CHECK_INT(v, 16777215ull << 40);
	CHECK_INT(td_parse_size("18446744073709551615", &v), 0);
	CHECK(v == UINT64_MAX);

	v = 7;
	CHECK_INT(td_parse_size("", &v), -EINVAL);
	CHECK_INT(td_parse_size("-1", &v), -EINVAL);
	CHECK_INT(td_parse_size("-1M", &v), -EINVAL);
	CHECK_INT(td_parse_size("10%", &v), -EINVAL);
	CHECK_INT(td_parse_size("1.5", &v), -EINVAL); /* fractional bytes */
	CHECK_INT(td_parse_size("M", &v), -EINVAL);
	CHECK_INT(td_parse_size("1.M", &v), -EINVAL);
	CHECK_INT(td_parse_size("10 M", &v), -EINVAL);
	CHECK_INT(td_parse_size("10MM", &v), -EINVAL);
	CHECK_INT(td_parse_size("10P", &v), -EINVAL);
	CHECK_INT(td_parse_size("0x10", &v), -EINVAL);
	CHECK_INT(td_parse_size(" 1", &v), -EINVAL);
	CHECK_INT(td_parse_size("18446744073709551616", &v), -ERANGE);
	CHECK_INT(td_parse_size("16777216T", &v), -ERANGE);
	CHECK_INT(td_parse_size("99999999999999999999999", &v), -ERANGE);
	CHECK_INT(v, 7); /* untouched on failure */
}

static void test_parse_size_or_pct(void)
{
	struct td_size_or_pct s;

	CHECK_INT(td_parse_size_or_pct("10%", &s), 0);
	CHECK(s.is_pct && s.pct == 10.0);
	CHECK_INT(td_parse_size_or_pct("2.5%", &s), 0);
	CHECK(s.is_pct && s.pct == 2.5);
	CHECK_INT(td_parse_size_or_pct("20G", &s), 0);
	CHECK(!s.is_pct && s.bytes == 20ull << 30);
	CHECK_INT(td_parse_size_or_pct("101%", &s), -ERANGE);
	CHECK_INT(td_parse_size_or_pct("%", &s), -EINVAL);
	CHECK_INT(td_parse_size_or_pct("", &s), -EINVAL);
}

static void test_parse_duration(void)
{
	int64_t v = 7;

	CHECK_INT(td_parse_duration("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(td_parse_duration("30s", &v), 0);
	CHECK_INT(v, 30);
	CHECK_INT(td_parse_duration("30m", &v), 0);
	CHECK_INT(v, 1800);
	CHECK_INT(td_parse_duration("90d", &v), 0);
	CHECK_INT(v, 90 * 86400);
	CHECK_INT(td_parse_duration("2w", &v), 0);
	CHECK_INT(v, 14 * 86400);
	CHECK_INT(td_parse_duration("1h30m", &v), 0);
	CHECK_INT(v, 5400);
	CHECK_INT(td_parse_duration("0d", &v), 0);
	CHECK_INT(v, 0);

	v = 7;
	CHECK_INT(td_parse_duration("", &v), -EINVAL);
	CHECK_INT(td_parse_duration("30", &v), -EINVAL); /* a unit is required */
	CHECK_INT(td_parse_duration("-1d", &v), -EINVAL);
	CHECK_INT(td_parse_duration("1y", &v), -EINVAL);
	CHECK_INT(td_parse_duration("1.5h", &v), -EINVAL);
	CHECK_INT(td_parse_duration("d", &v), -EINVAL);
	CHECK_INT(td_parse_duration("1 d", &v), -EINVAL);
	CHECK_INT(td_parse_duration("10%", &v), -EINVAL);
	CHECK_INT(td_parse_duration("9223372036854775807s", &v), 0);
	CHECK(v == INT64_MAX);
	v = 7;
	CHECK_INT(td_parse_duration("9223372036854775808s", &v), -ERANGE);
	CHECK_INT(td_parse_duration("99999999999999999w", &v), -ERANGE);
	CHECK_INT(td_parse_duration("9223372036854775807s1s", &v), -ERANGE);
	CHECK_INT(v, 7);
}

static void test_parse_percent(void)
{
	double v = 7;

	CHECK_INT(td_parse_percent("85%", &v), 0);
	CHECK(v == 85.0);
	CHECK_INT(td_parse_percent("0%", &v), 0);
	CHECK(v == 0.0);
	CHECK_INT(td_parse_percent("100%", &v), 0);
	CHECK(v == 100.0);
	CHECK_INT(td_parse_percent("12.5%", &v), 0);
	CHECK(v == 12.5);
	CHECK_INT(td_parse_percent("70", &v), 0);
	CHECK(v == 70.0);
	v = 7;
	CHECK_INT(td_parse_percent("100.1%", &v), -ERANGE);
	CHECK_INT(td_parse_percent("250%", &v), -ERANGE);
	CHECK_INT(td_parse_percent("-5%", &v), -EINVAL);
	CHECK_INT(td_parse_percent("", &v), -EINVAL);
	CHECK_INT(td_parse_percent("%", &v), -EINVAL);
	CHECK_INT(td_parse_percent("nan", &v), -EINVAL);
	CHECK_INT(td_parse_percent("inf%", &v), -EINVAL);
	CHECK_INT(td_parse_percent("5%%", &v), -EINVAL);
	CHECK_INT(td_parse_percent("1e2%", &v), -EINVAL);
	CHECK(v == 7);
}

static void test_parse_bool(void)
{
	bool b = false;

	CHECK_INT(td_parse_bool("yes", &b), 0);
	CHECK(b);
	CHECK_INT(td_parse_bool("Off", &b), 0);
	CHECK(!b);
	CHECK_INT(td_parse_bool("TRUE", &b), 0);
	CHECK(b);
	CHECK_INT(td_parse_bool("0", &b), 0);
	CHECK(!b);
	CHECK_INT(td_parse_bool("", &b), -EINVAL);
	CHECK_INT(td_parse_bool("maybe", &b), -EINVAL);
	CHECK_INT(td_parse_bool("2", &b), -EINVAL);
}

static void test_parse_schedule(void)
{
	struct td_schedule s;

	CHECK_INT(td_parse_schedule("manual", &s), 0);
	CHECK_INT(s.kind, TD_SCHEDULE_MANUAL);
	CHECK_INT(td_parse_schedule("every 30m", &s), 0);
	CHECK_INT(s.kind, TD_SCHEDULE_EVERY);
	CHECK_INT(s.every_s, 1800);
	CHECK_INT(td_parse_schedule("hourly", &s), 0);
	CHECK_INT(s.kind, TD_SCHEDULE_HOURLY);
	CHECK_INT(td_parse_schedule("daily 02:00", &s), 0);
	CHECK_INT(s.kind, TD_SCHEDULE_DAILY);
	CHECK_INT(s.hour, 2);
	CHECK_INT(s.minute, 0);
	CHECK_INT(td_parse_schedule("daily 2:05", &s), 0);
	CHECK_INT(s.minute, 5);
	CHECK_INT(td_parse_schedule("daily  23:59", &s), 0);
	CHECK_INT(s.hour, 23);
	CHECK_INT(td_parse_schedule("weekly mon 03:30", &s), 0);
	CHECK_INT(s.kind, TD_SCHEDULE_WEEKLY);
	CHECK_INT(s.weekday, 1);
	CHECK_INT(s.hour, 3);
	CHECK_INT(s.minute, 30);
	CHECK_INT(td_parse_schedule("weekly Sunday 00:00", &s), 0);
	CHECK_INT(s.weekday, 0);

	CHECK_INT(td_parse_schedule("", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("sometimes", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("every", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("every 0s", &s), -ERANGE);
	CHECK_INT(td_parse_schedule("every 30", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("daily", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("daily 24:00", &s), -ERANGE);
	CHECK_INT(td_parse_schedule("daily 12:60", &s), -ERANGE);
	CHECK_INT(td_parse_schedule("daily 12:5", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("daily 12:00 extra", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("daily -1:00", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("weekly 03:30", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("weekly mon", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("weekly mond 03:30", &s), -EINVAL);
	CHECK_INT(td_parse_schedule("hourly 5", &s), -EINVAL);
}

/* ---- broken configurations ---------------------------------------------------------------- */

struct broken {
	const char *name;
	const char *text;
	unsigned line; /* expected line of the (only) error */
	const char *key;
	const char *msg; /* a substring of the message */
};

#define S3  "[target \"t\"]\ntype = s3\nendpoint = http://127.0.0.1:9000\nbucket = tier\n"
#define POL "[policy \"p\"]\npaths = /srv/data\ntarget = t\n"

static const struct broken broken[] = {
	{ "unknown_section", "[tierd]\n[storage]\n", 2, NULL, "unknown section [storage]" },
	{ "unknown_key", "[tierd]\nstate_dri = /x\n", 2, "state_dri",
	  "unknown key in [tierd] (did you mean 'state_dir'?)" },
	{ "key_outside_section", "; hello\nstate_dir = /x\n", 2, "state_dir",
	  "key outside any section" },
	{ "syntax", "[tierd]\n\nthis is not ini\n", 3, NULL, "expected 'key = value'" },
	{ "bad_header", "[tierd]\n[target \"x\"\n", 2, NULL, "bad section header" },
	{ "unquoted_name", "[target x]\n", 1, NULL, "section needs a quoted name" },
	{ "bad_name", "[policy \"a b\"]\n", 1, NULL, "bad policy name \"a b\"" },
	{ "duplicate_tierd", "[tierd]\nlog_level = info\n[tierd]\n", 3, NULL,
	  "duplicate section [tierd] (first on line 1)" },
	{ "duplicate_target", S3 "[target \"t\"]\ntype = dir\npath = /x\n", 5, NULL,
	  "duplicate section [target \"t\"] (first on line 1)" },
	{ "duplicate_key", "[tierd]\nlog_level = info\n\nlog_level = debug\n", 4, "log_level",
	  "duplicate key (first set on line 2)" },
	{ "bad_size", "[tierd]\ncache_size = 10X\n", 2, "cache_size", "'10X' is not a size" },
	{ "pct_range", "[tierd]\ncache_size = 150%\n", 2, "cache_size", "out of range" },
	{ "pin_quota_bad", "[tierd]\nlog_level = info\npin_quota = lots\n", 3, "pin_quota",
	  "'lots' is not a size" },
	{ "pin_quota_range", "[tierd]\npin_quota = 101%\n", 2, "pin_quota", "out of range" },
	{ "relative_path", "[tierd]\nstate_dir = var/lib/tierd\n", 2, "state_dir",
	  "must be an absolute path" },
	{ "dotdot_path", "[tierd]\ncache_dir = /var/../tmp\n", 2, "cache_dir",
	  "must not contain '..'" },
	{ "log_level", "[tierd]\nlog_level = loud\n", 2, "log_level",
	  "'loud' is not one of error | warning | notice | info | debug" },
	{ "max_transfers", "[tierd]\nmax_transfers = 0\n", 2, "max_transfers",
	  "out of range (1..1024)" },
	{ "max_transfers_neg", "[tierd]\nmax_transfers = -3\n", 2, "max_transfers",
	  "not a whole number" },
	{ "duration_no_unit", "[tierd]\nretention = 30\n", 2, "retention", "is not a duration" },
	{ "stream_direct_io", "[tierd]\nstream_direct_io = sometimes\n", 2, "stream_direct_io",
	  "'sometimes' is not yes or no" },
	{ "bad_type", "[target \"t\"]\ntype = nfs\npath = /x\n", 2, "type",
	  "'nfs' is not one of s3 | dir" },
	{ "missing_type", "[target \"t\"]\npath = /x\n", 1, "type", "missing required key" },
	{ "s3_missing_bucket", "[target \"t\"]\ntype = s3\nendpoint = https://s3.example.com\n", 1,
	  "bucket", "target \"t\": missing required key" },
	{ "s3_missing_endpoint", "[target \"t\"]\ntype = s3\nbucket = tier\n", 1, "endpoint",
	  "missing required key" },
	{ "dir_missing_path", "[target \"t\"]\ntype = dir\n", 1, "path", "missing required key" },
	{ "endpoint_scheme", "[target \"t\"]\ntype = s3\nendpoint = ftp://x\nbucket = tier\n", 3,
	  "endpoint", "must start with http:// or https://" },
	{ "endpoint_path", "[target \"t\"]\ntype = s3\nendpoint = http://x/bucket\nbucket = tier\n",
	  3, "endpoint", "without a path" },
	{ "endpoint_port", "[target \"t\"]\ntype = s3\nendpoint = http://x:99999\nbucket = tier\n",
	  3, "endpoint", "bad port" },
	{ "endpoint_userinfo",
	  "[target \"t\"]\ntype = s3\nendpoint = http://key:secret@x\nbucket = tier\n", 3,
	  "endpoint", "must not contain credentials" },
	{ "duplicate_bucket", S3 "bucket = other\n", 5, "bucket",
	  "duplicate key (first set on line 4)" },
	{ "bucket_invalid", "[target \"t\"]\ntype = s3\nendpoint = http://x\nbucket = Bad_B\n", 4,
	  "bucket", "not a valid bucket name" },
	{ "addressing", S3 "addressing = host\n", 5, "addressing",
	  "'host' is not one of path | virtual" },
	{ "part_size_small", S3 "part_size = 1M\n", 5, "part_size", "out of range (5M..5G)" },
	{ "part_size_big", S3 "part_size = 6G\n", 5, "part_size", "out of range (5M..5G)" },
	{ "max_connections", S3 "max_connections = 2000\n", 5, "max_connections",
	  "out of range (1..1024)" },
	{ "prefix_slash", S3 "prefix = /host1/\n", 5, "prefix", "not a valid key prefix" },
	{ "prefix_control", S3 "prefix = a\tb/\n", 5, "prefix", "no control characters" },
	{ "connect_to_noport", S3 "connect_to = 127.0.0.1\n", 5, "connect_to",
	  "is not HOST:PORT or [IPV6]:PORT" },
	{ "connect_to_port", S3 "connect_to = 127.0.0.1:70000\n", 5, "connect_to",
	  "is not HOST:PORT" },
	{ "connect_to_v6", S3 "connect_to = ::1:80\n", 5, "connect_to", "is not HOST:PORT" },
	{ "wrong_type_key", S3 "path = /mnt/tier\n", 5, "path", "only for targets of type dir" },
	{ "wrong_type_key_dir", "[target \"t\"]\ntype = dir\npath = /x\nbucket = tier\n", 4,
	  "bucket", "only for targets of type s3" },
	{ "creds_mode", S3 "credentials_file = @644@\n", 5, "credentials_file",
	  "accessible by group or others (mode 0644)" },
	{ "creds_missing", S3 "credentials_file = /nonexistent/tierd.cred\n", 5, "credentials_file",
	  "cannot open '/nonexistent/tierd.cred'" },
	{ "creds_malformed", S3 "credentials_file = @BAD@\n", 5, "credentials_file",
	  ":2: unknown key (expected access_key or secret_key)" },
	{ "creds_no_secret", S3 "credentials_file = @NOSECRET@\n", 5, "credentials_file",
	  "has no secret_key line" },
	{ "creds_relative", S3 "credentials_file = etc/x.cred\n", 5, "credentials_file",
	  "must be an absolute path" },
	{ "policy_undefined_target", S3 "[policy \"p\"]\npaths = /srv\ntarget = nope\n", 7,
	  "target", "undefined target 'nope'" },
	{ "policy_missing_paths", S3 "[policy \"p\"]\ntarget = t\n", 5, "paths",
	  "policy \"p\": missing required key" },
	{ "policy_missing_target", S3 "[policy \"p\"]\npaths = /srv\n", 5, "target",
	  "policy \"p\": missing required key" },
	{ "policy_relative_path", S3 "[policy \"p\"]\npaths = /srv srv2\ntarget = t\n", 6, "paths",
	  "'srv2' must be an absolute path" },
	{ "overlap_within", S3 "[policy \"p\"]\npaths = /srv /srv/data/\ntarget = t\n", 6, "paths",
	  "'/srv/data' is inside '/srv'" },
	{ "overlap_across", S3 POL "[policy \"q\"]\npaths = /home, /srv\ntarget = t\n", 9, "paths",
	  "'/srv' contains '/srv/data' (policy \"p\", line 6)" },
	{ "overlap_same", S3 POL "[policy \"q\"]\npaths = //srv/data\ntarget = t\n", 9, "paths",
	  "'/srv/data' is the same as '/srv/data'" },
	{ "same_path_twice", S3 "[policy \"p\"]\npaths = /srv, /srv/\ntarget = t\n", 6, "paths",
	  "'/srv' is listed twice" },
	{ "state_dir_in_root", "[tierd]\nstate_dir = /srv/data/.tierd\n" S3 POL, 2, "state_dir",
	  "state_dir '/srv/data/.tierd' is inside the root '/srv/data'" },
	{ "default_state_dir_in_root", S3 "[policy \"p\"]\npaths = /var/lib\ntarget = t\n", 6,
	  "paths", "state_dir '/var/lib/tierd' is inside the root '/var/lib'" },
	{ "dir_target_in_root", "[target \"t\"]\ntype = dir\npath = /srv/data/tier\n" POL, 3,
	  "path", "target \"t\" '/srv/data/tier' is inside the root" },
	{ "watermark_order", S3 POL "high_watermark = 70%\nlow_watermark = 85%\n", 9,
	  "low_watermark", "85% must be below high_watermark (70%)" },
	{ "watermark_equal", S3 POL "high_watermark = 80%\nlow_watermark = 80\n", 9,
	  "low_watermark", "must be below high_watermark" },
	{ "watermark_only_high", S3 POL "high_watermark = 85%\n", 8, "high_watermark",
	  "needs low_watermark too" },
	{ "watermark_only_low", S3 POL "low_watermark = 70%\n", 8, "low_watermark",
	  "needs high_watermark too" },
	{ "watermark_range", S3 POL "high_watermark = 101%\nlow_watermark = 50%\n", 8,
	  "high_watermark", "out of range" },
	{ "schedule_bad", S3 POL "schedule = sometimes\n", 8, "schedule", "is not a schedule" },
	{ "schedule_time", S3 POL "schedule = daily 25:00\n", 8, "schedule",
	  "'daily 25:00' is out of range" },
	{ "schedule_weekday", S3 POL "schedule = weekly someday 03:00\n", 8, "schedule",
	  "is not a schedule" },
	{ "age_by", S3 POL "age_by = birthtime\n", 8, "age_by",
	  "'birthtime' is not one of atime | mtime | ctime | newest" },
	{ "min_age", S3 POL "min_age = 3 months\n", 8, "min_age", "is not a duration" },
	{ "max_below_min", S3 POL "min_size = 10M\nmax_size = 1M\n", 9, "max_size",
	  "1M is below min_size (10M)" },
	{ "unknown_owner", S3 POL "owners = root no-such-user-tierd\n", 8, "owners",
	  "unknown user 'no-such-user-tierd'" },
	{ "unknown_group", S3 POL "groups = no-such-group-tierd\n", 8, "groups",
	  "unknown group 'no-such-group-tierd'" },
	{ "bad_bool", S3 POL "keep_cached = maybe\n", 8, "keep_cached",
	  "'maybe' is not yes or no" },
	{ "max_files", S3 POL "max_files_per_run = 10%\n", 8, "max_files_per_run",
	  "not a whole number" },
	{ "size_pct_not_allowed", S3 POL "min_size = 10%\n", 8, "min_size", "is not a size" },
	{ "continuation_scalar", S3 POL "min_age = 30d\n   40d\n", 9, "min_age",
	  "continuation line (indented) for a key that is not a list" },
	{ "glob_bracket", S3 POL "exclude = *.tmp [abc\n", 8, "exclude",
	  "glob '[abc' has an unclosed '['" },
	{ "ca_file_missing", S3 "ca_file = /nonexistent/ca.pem\n", 5, "ca_file",
	  "cannot use '/nonexistent/ca.pem': No such file" },
	{ "ca_file_dir", S3 "ca_file = /\n", 5, "ca_file", "'/' is not a regular file" },
	{ "missing_key_name", "[tierd]\n= 5\n", 2, NULL, "missing key name" },
	{ "empty_target", S3 "[policy \"p\"]\npaths = /srv\ntarget =\n", 7, "target",
	  "empty value" },
};

/* Finds the one error of a broken configuration and checks its file, line, key and text. */
static void test_broken(void)
{
	char path[4300];

	for (size_t i = 0; i < TD_ARRAY_SIZE(broken); i++) {
		const struct broken *b = &broken[i];
		struct td_config_errors errs = { 0 };
		struct td_config *c = NULL;
		int r = load_text(b->name, b->text, &c, &errs, path, sizeof(path));

		td_test_checks++;
		if (r != -EINVAL || c || errs.n != 1 || errs.v[0].line != b->line ||
		    strcmp(errs.v[0].file, path) != 0 || !strstr(errs.v[0].msg, b->msg) ||
		    (b->key ? !errs.v[0].key || strcmp(errs.v[0].key, b->key) != 0
		            : errs.v[0].key != NULL)) {
			td_test_fail(__FILE__, __LINE__,
			             "case %s: r=%d, %zu errors, want one at line %u key %s with "
			             "\"%s\"; got:",
			             b->name, r, errs.n, b->line, b->key ? b->key : "(none)",
			             b->msg);
			td_config_errors_print(&errs, stdout);
		}
		for (size_t j = 0; j < errs.n; j++) {
			CHECK(strstr(errs.v[j].msg, SECRET) == NULL);
			CHECK(strstr(errs.v[j].msg, "secret@") == NULL);
		}
		td_config_errors_clear(&errs);
		td_config_free(c);
	}
	printf("  %zu broken configurations\n", TD_ARRAY_SIZE(broken));
}

static void test_many_errors_one_pass(void)
{
	static const char text[] = "[tierd]\n"                   /* 1 */
	                           "log_level = loud\n"          /* 2 */
	                           "bogus = 1\n"                 /* 3 */
	                           "[target \"t\"]\n"            /* 4 */
	                           "type = s3\n"                 /* 5 */
	                           "endpoint = s3.example.com\n" /* 6 */
	                           "part_size = 1K\n"            /* 7 */
	                           "[policy \"p\"]\n"            /* 8 */
	                           "paths = /srv /srv/x\n"       /* 9 */
	                           "target = other\n"            /* 10 */
	                           "schedule = daily 99:00\n"    /* 11 */
	                           "[nonsense]\n";               /* 12 */
	static const unsigned lines[] = { 2, 3, 4, 6, 7, 9, 10, 11, 12 };
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL;
	char path[4300], *out = NULL;
	size_t outlen = 0;
	FILE *f;

	CHECK_INT(load_text("many", text, &c, &errs, path, sizeof(path)), -EINVAL);
	CHECK(c == NULL);
	CHECK_INT(errs.n, TD_ARRAY_SIZE(lines));
	for (size_t i = 0; i < errs.n && i < TD_ARRAY_SIZE(lines); i++)
		CHECK_INT(errs.v[i].line, lines[i]);
	f = open_memstream(&out, &outlen);
	REQUIRE(f);
	td_config_errors_print(&errs, f);
	fclose(f);
	char want[4400];
	snprintf(want, sizeof(want), "%s:2: log_level: 'loud' is not one of", path);
	CHECK_CONTAINS(out, want);
	snprintf(want, sizeof(want), "%s:4: bucket: target \"t\": missing required key", path);
	CHECK_CONTAINS(out, want);
	snprintf(want, sizeof(want), "%s:12: unknown section [nonsense]", path);
	CHECK_CONTAINS(out, want);
	free(out);
	td_config_errors_clear(&errs);
}

/* ---- good configurations ---------------------------------------------------------------- */

static void test_defaults(void)
{
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL;
	char path[4300];

	REQUIRE(load_text("empty", "", &c, &errs, path, sizeof(path)) == 0);
	CHECK_INT(errs.n, 0);
	CHECK_STR(c->path, path);
	CHECK_STR(c->state_dir, "/var/lib/tierd");
	CHECK_STR(c->cache_dir, "/var/cache/tierd");
	CHECK_STR(c->run_dir, "/run/tierd");
	CHECK(c->cache_size.is_pct && c->cache_size.pct == 10.0);
	CHECK(c->pin_quota.is_pct && c->pin_quota.pct == 10.0);
	CHECK_INT(c->log_level, TD_LOG_INFO);
	CHECK_STR(c->admin_group, "tierd");
	CHECK_INT(c->max_transfers, 8);
	CHECK_INT(c->retention_s, 30 * 86400);
	CHECK_INT(c->no_hydrate.n, 2);
	CHECK(c->stream_direct_io);
	CHECK_INT(c->n_targets, 0);
	CHECK_INT(c->n_policies, 0);
	td_config_free(c);
}

static void test_full(void)
{
	static const char text[] = "\xef\xbb\xbf# a full config, with every kind of value\r\n"
	                           "[tierd]\n"
	                           "state_dir = /var/lib/tierd/ ; trailing slash goes\n"
	                           "cache_dir=/var//cache/./tierd\n"
	                           "cache_size = 20G # hash comments work inline too\n"
	                           "log_level = debug\n"
	                           "admin_group = 0\n"
	                           "max_transfers = 16\n"
	                           "retention = 2w\n"
	                           "no_hydrate = updatedb, clamscan,rsync\n"
	                           "stream_direct_io = no\n"
	                           "pin_quota = 1.5G\n" /* in place of a blank line: lines stay */
	                           "[target \"s3\"]\n"
	                           "  type = s3\n"
	                           "  endpoint = https://s3.example.com:8443/\n"
	                           "  region = eu-west-1\n"
	                           "  bucket = my.tier-bucket\n"
	                           "  prefix = host 1/ünï+%~\n"
	                           "  connect_to = [::1]:7480\n"
	                           "  addressing = virtual\n"
	                           "  credentials_file = @OK@\n"
	                           "  storage_class = STANDARD_IA\n"
	                           "  multipart_threshold = 128M\n"
	                           "  part_size = 5G\n"
	                           "  max_connections = 1024\n"
	                           "  bandwidth_limit = 1.5M\n"
	                           "  ca_file =\n"
	                           "[target \"nas\"]\n"
	                           "type: dir\n"
	                           "path = /mnt/nas/tier/\n"
	                           "[policy \"projects\"]\n"
	                           "paths = /srv/data/projects /srv/data/shared\n"
	                           "target = s3\n"
	                           "age_by = newest\n"
	                           "min_age = 1h30m\n"
	                           "min_size = 0\n"
	                           "max_size = 1T\n"
	                           "include = *.iso *.img ; two globs\n"
	                           "          **/*.tar\n"
	                           "          ; a comment between continuation lines\n"
	                           "          *.zip\n"
	                           "exclude = **/.git/**\n"
	                           "owners = root 1234\n"
	                           "groups = 0\n"
	                           "schedule = weekly fri 23:15\n"
	                           "high_watermark = 90%\n"
	                           "low_watermark = 72.5%\n"
	                           "max_bytes_per_run = 100G\n"
	                           "max_files_per_run = 5000\n"
	                           "keep_cached = yes\n"
	                           "one_filesystem = no\n"
	                           "[policy \"home\"]\n"
	                           "paths = /home\n"
	                           "target = nas\n";
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL;
	char path[4300];

	if (load_text("full", text, &c, &errs, path, sizeof(path)) != 0) {
		td_config_errors_print(&errs, stdout);
		td_config_errors_clear(&errs);
		CHECK(!"full config loads");
		return;
	}
	CHECK_STR(c->state_dir, "/var/lib/tierd");
	CHECK_STR(c->cache_dir, "/var/cache/tierd");
	CHECK(!c->cache_size.is_pct && c->cache_size.bytes == 20ull << 30);
	CHECK(!c->pin_quota.is_pct && c->pin_quota.bytes == 3ull << 29);
	CHECK_INT(c->log_level, TD_LOG_DEBUG);
	CHECK(c->has_admin_gid && c->admin_gid == 0);
	CHECK_INT(c->max_transfers, 16);
	CHECK_INT(c->retention_s, 14 * 86400);
	REQUIRE(c->no_hydrate.n == 3);
	CHECK_STR(c->no_hydrate.v[2], "rsync");
	CHECK(!c->stream_direct_io);

	REQUIRE(c->n_targets == 2);
	const struct td_target_conf *t = td_config_target(c, "s3");
	REQUIRE(t);
	CHECK_INT(t->type, TD_TARGET_S3);
	CHECK_INT(t->line, 13);
	CHECK_STR(t->endpoint, "https://s3.example.com:8443");
	CHECK_STR(t->region, "eu-west-1");
	CHECK_STR(t->bucket, "my.tier-bucket");
	CHECK_STR(t->prefix, "host 1/ünï+%~/");
	CHECK_STR(t->connect_to, "[::1]:7480");
	CHECK_INT(t->addressing, TD_ADDRESSING_VIRTUAL);
	CHECK_STR(t->credentials_file, cred_ok);
	CHECK_STR(t->access_key, ACCESS);
	CHECK_STR(t->secret_key, SECRET);
	CHECK_STR(t->storage_class, "STANDARD_IA");
	CHECK_INT(t->multipart_threshold_bytes, 128ull << 20);
	CHECK_INT(t->part_size_bytes, 5ull << 30);
	CHECK_INT(t->max_connections, 1024);
	CHECK_INT(t->bandwidth_limit_bytes, 3ull << 19);
	CHECK(t->ca_file == NULL);
	t = td_config_target(c, "nas");
	REQUIRE(t);
	CHECK_INT(t->type, TD_TARGET_DIR);
	CHECK_STR(t->path, "/mnt/nas/tier");
	CHECK(td_config_target(c, "none") == NULL);

	REQUIRE(c->n_policies == 2);
	const struct td_policy_conf *p = td_config_policy(c, "projects");
	REQUIRE(p);
	CHECK_INT(p->line, 31);
	REQUIRE(p->paths.n == 2);
	CHECK_STR(p->paths.v[1], "/srv/data/shared");
	CHECK_STR(p->target, "s3");
	CHECK(p->target_conf == td_config_target(c, "s3"));
	CHECK_INT(p->age_by, TD_AGE_NEWEST);
	CHECK_INT(p->min_age_s, 5400);
	CHECK_INT(p->min_size_bytes, 0);
	CHECK_INT(p->max_size_bytes, 1ull << 40);
	REQUIRE(p->include.n == 4);
	CHECK_STR(p->include.v[0], "*.iso");
	CHECK_STR(p->include.v[2], "**/*.tar");
	CHECK_STR(p->include.v[3], "*.zip");
	REQUIRE(p->exclude.n == 1);
	CHECK_STR(p->exclude.v[0], "**/.git/**");
	REQUIRE(p->n_owners == 2);
	CHECK_INT(p->owners[0], 0);
	CHECK_INT(p->owners[1], 1234);
	REQUIRE(p->n_groups == 1);
	CHECK_INT(p->groups[0], 0);
	CHECK_INT(p->schedule.kind, TD_SCHEDULE_WEEKLY);
	CHECK_INT(p->schedule.weekday, 5);
	CHECK_INT(p->schedule.hour, 23);
	CHECK_INT(p->schedule.minute, 15);
	CHECK(p->has_watermarks);
	CHECK(p->high_watermark_pct == 90.0);
	CHECK(p->low_watermark_pct == 72.5);
	CHECK_INT(p->max_bytes_per_run, 100ull << 30);
	CHECK_INT(p->max_files_per_run, 5000);
	CHECK(p->keep_cached);
	CHECK(!p->one_filesystem);

	p = td_config_policy(c, "home");
	REQUIRE(p);
	CHECK(p->target_conf == td_config_target(c, "nas"));
	CHECK_INT(p->min_age_s, 90 * 86400);
	CHECK_INT(p->min_size_bytes, 1 << 20);
	CHECK(p->max_size_bytes == UINT64_MAX);
	REQUIRE(p->include.n == 1);
	CHECK_STR(p->include.v[0], "*");
	CHECK_INT(p->exclude.n, 0);
	CHECK_INT(p->n_owners, 0);
	CHECK_INT(p->schedule.kind, TD_SCHEDULE_MANUAL);
	CHECK(!p->has_watermarks);
	CHECK(!p->keep_cached);
	CHECK(p->one_filesystem);
	td_config_free(c);
}

/* Lines longer than inih's 200-byte buffer are parsed whole, not split. */
static void test_long_line(void)
{
	char text[2048], longpath[600];
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL;
	char path[4300];

	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	snprintf(text, sizeof(text), "[tierd]\nstate_dir = %s ; long\nlog_level = debug\n",
	         longpath);
	REQUIRE(load_text("long", text, &c, &errs, path, sizeof(path)) == 0);
	CHECK_STR(c->state_dir, longpath);
	CHECK_INT(c->log_level, TD_LOG_DEBUG);
	td_config_free(c);

	snprintf(text, sizeof(text), "[tierd]\ncache_dir = %s\nlog_level = x\n", longpath + 1);
	CHECK_INT(load_text("long2", text, &c, &errs, path, sizeof(path)), -EINVAL);
	REQUIRE(errs.n == 2);
	CHECK_INT(errs.v[0].line, 2);
	CHECK_CONTAINS(errs.v[0].msg, "must be an absolute path");
	CHECK_INT(errs.v[1].line, 3);
	td_config_errors_clear(&errs);
}

static void test_file_errors(void)
{
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL;
	char path[4300];
	char *big;

	snprintf(path, sizeof(path), "%s/missing.conf", tmp);
	CHECK_INT(td_config_load(&c, path, &errs), -ENOENT);
	REQUIRE(errs.n == 1);
	CHECK_INT(errs.v[0].line, 0);
	CHECK_STR(errs.v[0].file, path);
	CHECK_CONTAINS(errs.v[0].msg, "No such file");
	td_config_errors_clear(&errs);

	CHECK_INT(td_config_load(&c, tmp, &errs), -EISDIR);
	CHECK_INT(errs.n, 1);
	td_config_errors_clear(&errs);

	/* NULL errs is allowed. */
	CHECK_INT(td_config_load(&c, path, NULL), -ENOENT);

	big = malloc(TD_CONFIG_MAX_BYTES + 2);
	REQUIRE(big);
	memset(big, '#', TD_CONFIG_MAX_BYTES + 1);
	big[TD_CONFIG_MAX_BYTES + 1] = '\0';
	CHECK_INT(load_text("big", big, &c, &errs, path, sizeof(path)), -EFBIG);
	REQUIRE(errs.n == 1);
	CHECK_CONTAINS(errs.v[0].msg, "file too big");
	td_config_errors_clear(&errs);

	memset(big, '\n', TD_CONFIG_MAX_LINES + 1);
	big[TD_CONFIG_MAX_LINES + 1] = '\0';
	CHECK_INT(load_text("lines", big, &c, &errs, path, sizeof(path)), -EFBIG);
	REQUIRE(errs.n == 1);
	CHECK_CONTAINS(errs.v[0].msg, "too many lines");
	td_config_errors_clear(&errs);
	free(big);

	snprintf(path, sizeof(path), "%s/nul.conf", tmp);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	CHECK_INT(write(fd, "[tierd]\n\0\n", 10), 10);
	close(fd);
	CHECK_INT(td_config_load(&c, path, &errs), -EINVAL);
	REQUIRE(errs.n == 1);
	CHECK_CONTAINS(errs.v[0].msg, "NUL byte");
	td_config_errors_clear(&errs);
}

static char *dump_str(const struct td_config *c)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	if (td_config_dump(c, f) < 0) {
		fclose(f);
		free(out);
		return NULL;
	}
	fclose(f);
	return out;
}

static void test_dump_redacts_and_round_trips(void)
{
	static const char text[] = "[target \"file\"]\n"
	                           "type = s3\n"
	                           "endpoint = http://127.0.0.1:7480\n"
	                           "bucket = tier\n"
	                           "credentials_file = @OK@\n"
	                           "[target \"env\"]\n"
	                           "type = s3\n"
	                           "endpoint = http://127.0.0.1:7480\n"
	                           "bucket = tier2\n"
	                           "[policy \"p\"]\n"
	                           "paths = /srv\n"
	                           "target = env\n"
	                           "owners = 0\n"
	                           "schedule = every 90m\n"
	                           "high_watermark = 85%\n"
	                           "low_watermark = 70%\n"
	                           "max_size = 3G\n";
	struct td_config_errors errs = { 0 };
	struct td_config *c = NULL, *c2 = NULL;
	char path[4300], path2[4300];
	char *d1, *d2;

	REQUIRE(load_text("dump", text, &c, &errs, path, sizeof(path)) == 0);
	/* Before the environment gives keys, the env target has none. */
	CHECK_INT(td_config_check_credentials(c, &errs), -EINVAL);
	REQUIRE(errs.n == 1);
	CHECK_INT(errs.v[0].line, 6);
	CHECK_CONTAINS(errs.v[0].msg, "target \"env\" has no credentials");
	td_config_errors_clear(&errs);
	CHECK_INT(td_config_apply_env_credentials(c, "", ""), 0);
	CHECK_INT(td_config_check_credentials(c, NULL), -EINVAL);
	CHECK_INT(td_config_apply_env_credentials(c, "ENVACCESSKEY77", "ENVSECRETKEY77"), 0);
	CHECK_INT(td_config_check_credentials(c, &errs), 0);
	CHECK_INT(errs.n, 0);
	CHECK_STR(td_config_target(c, "env")->secret_key, "ENVSECRETKEY77");
	CHECK(td_config_target(c, "env")->creds_from_env);
	/* A credentials file wins over the environment. */
	CHECK_STR(td_config_target(c, "file")->secret_key, SECRET);

	d1 = dump_str(c);
	REQUIRE(d1);
	CHECK(strstr(d1, SECRET) == NULL);
	CHECK(strstr(d1, ACCESS) == NULL);
	CHECK(strstr(d1, "ENVSECRETKEY77") == NULL);
	CHECK(strstr(d1, "ENVACCESSKEY77") == NULL);
	CHECK_CONTAINS(d1, "secret_key = <redacted>");
	CHECK_CONTAINS(d1, "credentials_file = ");
	CHECK_CONTAINS(d1, "schedule = every 90m\n");
	CHECK_CONTAINS(d1, "max_size = 3G\n");
	CHECK_CONTAINS(d1, "high_watermark = 85%\n");
	CHECK_CONTAINS(d1, "min_age = 90d\n");

	/* The dump is a valid config that dumps the same (but for the header line). */
	snprintf(path2, sizeof(path2), "%s/dump2.conf", tmp);
	write_file(path2, d1, 0600);
	if (td_config_load(&c2, path2, &errs) != 0) {
		td_config_errors_print(&errs, stdout);
		td_config_errors_clear(&errs);
		CHECK(!"the dump re-parses");
	} else {
		td_config_apply_env_credentials(c2, "ENVACCESSKEY77", "ENVSECRETKEY77");
		d2 = dump_str(c2);
		REQUIRE(d2);
		CHECK_STR(strchr(d1, '\n'), strchr(d2, '\n'));
		free(d2);
		td_config_free(c2);
	}
	free(d1);
	td_config_free(c);
}

/*
 * td_config_load_report(): the load every program runs. Each credentials mode,
 * on a config with one target keyed by its file and one left to the environment.
 */
static void test_load_report(void)
{
	static const char text[] = "[target \"file\"]\n"
	                           "type = s3\n"
	                           "endpoint = http://127.0.0.1:7480\n"
	                           "bucket = tier\n"
	                           "credentials_file = @OK@\n"
	                           "[target \"env\"]\n"
	                           "type = s3\n"
	                           "endpoint = http://127.0.0.1:7480\n"
	                           "bucket = tier2\n";
	struct td_config_load_opts o = { .creds = TD_CONFIG_CREDS_REQUIRE };
	struct td_config_report rep = { 0 };
	struct td_config *c = NULL;
	char path[4300];
	char *t = expand(text);

	snprintf(path, sizeof(path), "%s/report.conf", tmp);
	write_file(path, t, 0644);
	free(t);

	/* REQUIRE without keys in the environment: an error at the target's header. */
	CHECK_INT(td_config_load_report(&c, path, &o, &rep), -EINVAL);
	CHECK(c == NULL);
	REQUIRE(rep.errors.n == 1);
	CHECK_STR(rep.errors.v[0].file, path);
	CHECK_INT(rep.errors.v[0].line, 6);
	CHECK_STR(rep.errors.v[0].key, "credentials_file");
	CHECK_CONTAINS(rep.errors.v[0].msg, "target \"env\" has no credentials");
	CHECK_INT(rep.warnings.n, 0);
	td_config_report_clear(&rep);

	/* WARN: the same finding is a warning, worded as tierd --check-config prints it. */
	o.creds = TD_CONFIG_CREDS_WARN;
	REQUIRE(td_config_load_report(&c, path, &o, &rep) == 0);
	CHECK_INT(rep.errors.n, 0);
	REQUIRE(rep.warnings.n == 1);
	CHECK_INT(rep.warnings.v[0].line, 6);
	CHECK(rep.warnings.v[0].key == NULL);
	CHECK_CONTAINS(rep.warnings.v[0].msg, "warning: target \"env\" has no credentials");
	CHECK_CONTAINS(rep.warnings.v[0].msg, "(needed when the service starts)");
	td_config_report_clear(&rep);
	td_config_free(c);
	c = NULL;

	/* REQUIRE with the environment's keys: taken by the env target only. */
	o = (struct td_config_load_opts){ .creds = TD_CONFIG_CREDS_REQUIRE,
		                          .access_key = "ENVACCESSKEY77",
		                          .secret_key = "ENVSECRETKEY77" };
	REQUIRE(td_config_load_report(&c, path, &o, &rep) == 0);
	CHECK_INT(rep.errors.n + rep.warnings.n, 0);
	CHECK_STR(td_config_target(c, "env")->secret_key, "ENVSECRETKEY77");
	CHECK(td_config_target(c, "env")->creds_from_env);
	CHECK_STR(td_config_target(c, "file")->secret_key, SECRET);
	td_config_free(c);
	c = NULL;

	/* NONE (and NULL options): no keys are given, and none are asked for. */
	o.creds = TD_CONFIG_CREDS_NONE;
	REQUIRE(td_config_load_report(&c, path, &o, &rep) == 0);
	CHECK(td_config_target(c, "env")->secret_key == NULL);
	td_config_free(c);
	c = NULL;
	REQUIRE(td_config_load_report(&c, path, NULL, &rep) == 0);
	CHECK_INT(rep.errors.n + rep.warnings.n, 0);
	td_config_free(c);
	c = NULL;

	/* ENV: keys given, a target without them is not this call's business. */
	o = (struct td_config_load_opts){ .creds = TD_CONFIG_CREDS_ENV };
	REQUIRE(td_config_load_report(&c, path, &o, &rep) == 0);
	CHECK_INT(rep.errors.n + rep.warnings.n, 0);
	td_config_free(c);
	c = NULL;

	/* A broken file: the load's own errors, and no credentials step. */
	snprintf(path, sizeof(path), "%s/report-missing.conf", tmp);
	o.creds = TD_CONFIG_CREDS_REQUIRE;
	CHECK_INT(td_config_load_report(&c, path, &o, &rep), -ENOENT);
	CHECK(c == NULL);
	REQUIRE(rep.errors.n == 1);
	CHECK_INT(rep.errors.v[0].line, 0);
	CHECK_CONTAINS(rep.errors.v[0].msg, "No such file");
	td_config_report_clear(&rep);
	td_config_report_clear(NULL);
}

/*
 * Mutates the example config (seeded, so failures reproduce) and loads each
 * variant: every load must end in success or -EINVAL with in-range line numbers,
 * and never crash or leak (the sanitizer build checks those).
 */
static void test_mutations(void)
{
	const char *src = getenv("TD_SOURCE_DIR");
	char path[4300], *base = NULL, *text;
	size_t len = 0, lines = 1;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	static const char alphabet[] = "[]\"=:;# \t\n/.,%*abcdeKMGT0123456789";
	FILE *f;

	if (!src) {
		printf("  TD_SOURCE_DIR not set: mutating a built-in config\n");
		base = strdup("[tierd]\nlog_level = info\n[target \"t\"]\ntype = dir\npath = /x\n"
		              "[policy \"p\"]\npaths = /srv\ntarget = t\nmin_age = 1d\n");
		REQUIRE(base);
		len = strlen(base);
	} else {
		snprintf(path, sizeof(path), "%s/conf/tierd.conf", src);
		f = fopen(path, "re");
		REQUIRE(f);
		base = malloc(1 << 16);
		REQUIRE(base);
		len = fread(base, 1, (1 << 16) - 1, f);
		base[len] = '\0';
		fclose(f);
	}
	for (size_t i = 0; i < len; i++)
		lines += base[i] == '\n';
	text = malloc(len + 64);
	REQUIRE(text);
	for (int iter = 0; iter < 3000; iter++) {
		struct td_config_errors errs = { 0 };
		struct td_config *c = NULL;
		size_t n = len;
		int r;

		memcpy(text, base, len + 1);
		for (int m = 0; m < 1 + iter % 4; m++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			size_t at = (size_t)(rng % n);
			char ch = alphabet[(rng >> 32) % (sizeof(alphabet) - 1)];
			if (((rng >> 40) & 3) == 0) /* delete a byte */
				memmove(text + at, text + at + 1, n-- - at);
			else
				text[at] = ch;
		}
		text[n] = '\0';
		snprintf(path, sizeof(path), "%s/mutant.conf", tmp);
		write_file(path, text, 0600);
		r = td_config_load(&c, path, &errs);
		td_test_checks++;
		if (!((r == 0 && c && errs.n == 0) || (r == -EINVAL && !c && errs.n > 0))) {
			td_test_fail(__FILE__, __LINE__, "iteration %d: r=%d errs=%zu", iter, r,
			             errs.n);
			td_config_free(c);
			td_config_errors_clear(&errs);
			break;
		}
		for (size_t j = 0; j < errs.n; j++)
			CHECK(errs.v[j].line <= lines + 1);
		if (c) {
			char *d = dump_str(c);
			CHECK(d != NULL);
			free(d);
		}
		td_config_free(c);
		td_config_errors_clear(&errs);
	}
	free(text);
	free(base);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "%s", td_test_tmpdir("config"));
	snprintf(cred_ok, sizeof(cred_ok), "%s/ok.cred", tmp);
	snprintf(cred_644, sizeof(cred_644), "%s/644.cred", tmp);
	snprintf(cred_bad, sizeof(cred_bad), "%s/bad.cred", tmp);
	snprintf(cred_nosecret, sizeof(cred_nosecret), "%s/nosecret.cred", tmp);
	write_file(cred_ok, "# keys\naccess_key = " ACCESS "\nsecret_key=" SECRET "\n", 0600);
	write_file(cred_644, "access_key = " ACCESS "\nsecret_key = " SECRET "\n", 0644);
	write_file(cred_bad, "access_key = " ACCESS "\nfoo = " SECRET "\nsecret_key = x\n", 0600);
	write_file(cred_nosecret, "access_key = " ACCESS "\n", 0600);

	TD_RUN(test_parse_size);
	TD_RUN(test_parse_size_or_pct);
	TD_RUN(test_parse_duration);
	TD_RUN(test_parse_percent);
	TD_RUN(test_parse_bool);
	TD_RUN(test_parse_schedule);
	TD_RUN(test_broken);
	TD_RUN(test_many_errors_one_pass);
	TD_RUN(test_defaults);
	TD_RUN(test_full);
	TD_RUN(test_long_line);
	TD_RUN(test_file_errors);
	TD_RUN(test_dump_redacts_and_round_trips);
	TD_RUN(test_load_report);
	TD_RUN(test_mutations);
	td_test_rmtree(tmp);
	return td_test_done();
}
