/*
 * test_s3_classify — the s3 backend's table of HTTP error answers (label unit):
 * each status and S3 error code gives the errno and retry verdict target.h
 * promises. In particular 507 is "target full" (-ENOSPC, not retried), not one
 * more 5xx to retry as "busy".
 */
#include "target_s3_int.h"
#include "testlib.h"

#include <errno.h>

static void check_row(long status, const char *code, int want_err, bool want_retry)
{
	bool retry = !want_retry;

	CHECK_INT(s3__classify_http(status, code, &retry), want_err);
	CHECK_INT(retry, want_retry);
	if (retry != want_retry)
		printf("  HTTP %ld %s: retry %d\n", status, code ? code : "-", retry);
}

static void test_full(void)
{
	check_row(507, NULL, -ENOSPC, false);
	check_row(507, "", -ENOSPC, false);
	check_row(507, "InternalError", -ENOSPC, false);
	check_row(400, "EntityTooLarge", -ENOSPC, false);
	check_row(403, "QuotaExceeded", -EACCES, false); /* 403 comes first, as before */
	check_row(400, "QuotaExceeded", -ENOSPC, false);
}

static void test_busy(void)
{
	check_row(500, "InternalError", -EAGAIN, true);
	check_row(502, NULL, -EAGAIN, true);
	check_row(503, "SlowDown", -EAGAIN, true);
	check_row(504, "", -EAGAIN, true);
	check_row(599, NULL, -EAGAIN, true);
	check_row(408, NULL, -EAGAIN, true);
	check_row(429, NULL, -EAGAIN, true);
	check_row(400, "RequestTimeout", -EAGAIN, true);
	check_row(400, "SlowDown", -EAGAIN, true);
	check_row(200, "InternalError", -EAGAIN, true);
}

static void test_clear(void)
{
	check_row(403, "InvalidAccessKeyId", -EACCES, false);
	check_row(403, "SignatureDoesNotMatch", -EACCES, false);
	check_row(403, "RequestTimeTooSkewed", -EACCES, false);
	check_row(404, "NoSuchBucket", -ENOENT, false);
	check_row(404, "NoSuchKey", -ENOENT, false);
	check_row(404, NULL, -ENOENT, false);
	check_row(401, NULL, -EACCES, false);
	check_row(403, "AccessDenied", -EACCES, false);
	check_row(400, "BadDigest", -EIO, false);
	check_row(400, "InvalidDigest", -EIO, false);
	check_row(412, NULL, -EIO, false);
	check_row(409, "BucketNotEmpty", -EEXIST, false);
	check_row(400, "InvalidArgument", -EIO, false);
	check_row(418, NULL, -EIO, false);
}

int main(void)
{
	TD_RUN(test_full);
	TD_RUN(test_busy);
	TD_RUN(test_clear);
	return td_test_done();
}
