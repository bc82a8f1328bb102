/* Unit tests for lib/metrics.c: the text format, label escaping, the series cap. */
#include "metrics.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		abort();
	CHECK_INT(td_metrics_write(f), 0);
	fclose(f);
	return text;
}

static void test_counters_and_escaping(void)
{
	char *t;

	td_metrics_reset();
	td_metrics_add(TD_M_TIERED_BYTES, 5, NULL, NULL, NULL);
	td_metrics_add(TD_M_TIERED_BYTES, 7, NULL, NULL, NULL);
	td_metrics_add(TD_M_FETCHED_BYTES, 10, "a\"b\\c\nd", NULL, NULL);
	td_metrics_add(TD_M_S3_REQUESTS, 1, "s3", "GetObject", "206");
	t = render();
	CHECK_CONTAINS(t, "# TYPE tierd_tiered_bytes_total counter\ntierd_tiered_bytes_total 12\n");
	CHECK_CONTAINS(t, "tierd_fetched_bytes_total{process=\"a\\\"b\\\\c\\nd\"} 10\n");
	CHECK_CONTAINS(
	    t, "tierd_s3_requests_total{target=\"s3\",operation=\"GetObject\",code=\"206\"} 1\n");
	/* An unlabelled counter is there before its first event. */
	CHECK_CONTAINS(t, "tierd_recalled_files_total 0\n");
	free(t);
}

static void test_histogram(void)
{
	char *t;

	td_metrics_reset();
	td_metrics_observe(TD_M_S3_DURATION, 0.003, "s3", "PutObject");
	td_metrics_observe(TD_M_S3_DURATION, 0.2, "s3", "PutObject");
	td_metrics_observe(TD_M_S3_DURATION, 500, "s3", "PutObject");
	t = render();
	CHECK_CONTAINS(t, "# TYPE tierd_s3_request_duration_seconds histogram\n");
	CHECK_CONTAINS(t, "tierd_s3_request_duration_seconds_bucket{target=\"s3\",operation="
	                  "\"PutObject\",le=\"0.005\"} 1\n");
	CHECK_CONTAINS(t, "tierd_s3_request_duration_seconds_bucket{target=\"s3\",operation="
	                  "\"PutObject\",le=\"0.25\"} 2\n");
	CHECK_CONTAINS(t, "tierd_s3_request_duration_seconds_bucket{target=\"s3\",operation="
	                  "\"PutObject\",le=\"120\"} 2\n");
	CHECK_CONTAINS(t, "tierd_s3_request_duration_seconds_bucket{target=\"s3\",operation="
	                  "\"PutObject\",le=\"+Inf\"} 3\n");
	CHECK_CONTAINS(t, "tierd_s3_request_duration_seconds_count{target=\"s3\",operation="
	                  "\"PutObject\"} 3\n");
	free(t);
}

/* A user running programs with ever new names cannot grow the registry. */
static void test_cap(void)
{
	char name[32], *t, *p;
	unsigned series = 0;

	td_metrics_reset();
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "prog%d", i);
		td_metrics_add(TD_M_FETCHED_BYTES, 1, name, NULL, NULL);
	}
	t = render();
	for (p = t; (p = strstr(p, "\ntierd_fetched_bytes_total{")); p++)
		series++;
	CHECK(series <= TD_METRICS_MAX_SERIES);
	CHECK_CONTAINS(t, "tierd_fetched_bytes_total{process=\"other\"} ");
	CHECK_CONTAINS(t, "tierd_fetched_bytes_total{process=\"prog0\"} 1\n");
	free(t);
	td_metrics_reset();
}

int main(void)
{
	TD_RUN(test_counters_and_escaping);
	TD_RUN(test_histogram);
	TD_RUN(test_cap);
	return td_test_done();
}
