/* log — see log.h. Program state (the level, the journald flag) lives here, in
 * the daemon, never in lib/. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum td_log_level log_max = TD_LOG_INFO;
static bool log_journald;

static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void td_log_setup(enum td_log_level max_level)
{
	log_max = max_level;
	log_journald = stderr_is_journal();
}

void td_log_set_level(enum td_log_level max_level)
{
	log_max = max_level;
}

void td_log(enum td_log_level level, const char *fmt, ...)
{
	static const char *names[] = { [TD_LOG_ERROR] = "error",
		                       [TD_LOG_WARNING] = "warning",
		                       [TD_LOG_NOTICE] = "notice",
		                       [TD_LOG_INFO] = "info",
		                       [TD_LOG_DEBUG] = "debug" };
	char line[2048];
	int n = 0;
	va_list ap;

	if (level > log_max)
		return;
	if (log_journald) {
		n = snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n, "tierd[%d] %s: ", (int)getpid(),
		              names[level]);
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so concurrent lines never interleave. */
	fprintf(stderr, "%s\n", line);
}
