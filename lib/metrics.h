/*
 * metrics — the process's counters and histograms, and the Prometheus text
 * exposition (format 0.0.4) they are printed in.
 *
 * Counters and histograms live here, process-wide: the code that sees an
 * event (a request done, bytes fetched for a reader) adds to them from any
 * thread. Gauges (files by state, cache use, queue lengths) are the daemon's
 * current state: it prints them at scrape time with td_metrics_family and
 * td_metrics_sample, next to td_metrics_write's families.
 *
 * Names follow the Prometheus conventions: a tierd_ prefix, base units
 * (_bytes, _seconds), _total on counters, labels rather than name suffixes.
 * A family keeps at most TD_METRICS_MAX_SERIES label sets; events past that
 * are counted under the label value "other", so a user who runs programs
 * with ever new names cannot grow tierd's memory.
 *
 * Any thread (one mutex).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#define TD_METRICS_MAX_SERIES 128

enum td_metric {
	TD_M_TIERED_FILES,   /* files replaced by links */
	TD_M_TIERED_BYTES,   /* their bytes */
	TD_M_RECALLED_FILES, /* files brought back to primary storage */
	TD_M_RECALLED_BYTES,
	TD_M_FETCHED_BYTES, /* {process}: bytes read from a target for a reader's open */
	TD_M_COLD_OPENS,    /* {served = cache|remote}: opens through the remote view */
	TD_M_HYDRATIONS,    /* {result = ok|failed} */
	TD_M_S3_REQUESTS,   /* {target, operation, code} */
	TD_M_ERRORS,        /* {kind} */
	TD_M_S3_FIRST_BYTE, /* histogram {target, operation}: seconds to the first byte */
	TD_M_S3_DURATION,   /* histogram {target, operation}: seconds to the last byte */
	TD_M__COUNT,
};

/* Adds v to the series of m with these label values (as many as m has labels;
 * NULL stands for ""). */
void td_metrics_add(enum td_metric m, uint64_t v, const char *l1, const char *l2, const char *l3);
/* Records one observation of `seconds` in histogram m. */
void td_metrics_observe(enum td_metric m, double seconds, const char *l1, const char *l2);

/* Prints every counter and histogram family (those without samples too, so
 * a dashboard finds every name from the start). Returns 0 or -errno. */
int td_metrics_write(FILE *f);

/* For the caller's gauges: the # HELP and # TYPE lines of one family... */
void td_metrics_family(FILE *f, const char *name, const char *type, const char *help);
/* ...and one sample: `labels` is NULL or "k1", "v1", "k2", "v2", ..., NULL. */
void td_metrics_sample(FILE *f, const char *name, double value, const char *const *labels);

/* Drops every series (tests). */
void td_metrics_reset(void);
