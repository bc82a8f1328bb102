/*
 * target_s3 — extras of the s3 backend beyond the generic target interface:
 * retry/time-out tuning (tests shorten them), the plaintext check the daemon
 * warns about, and bucket creation for tests and tools. Loop thread only.
 */
#pragma once

#include "target.h"

struct td_s3_tuning {
	unsigned max_attempts;     /* per HTTP request, first try included (default 6) */
	int64_t backoff_base_ms;   /* first retry delay cap; doubles each time (default 200) */
	int64_t backoff_max_ms;    /* cap of one delay (default 10000) */
	int64_t retry_budget_ms;   /* no retry starts after this much time (default 120000) */
	int64_t connect_timeout_s; /* default 10 */
	int64_t low_speed_time_s;  /* below 1 KiB/s for this long = stalled (default 30) */
};

/* Replaces the tuning of an s3 target; -EINVAL for another type. */
int td_target_s3_tune(struct td_target *t, const struct td_s3_tuning *tu);
void td_target_s3_tuning_default(struct td_s3_tuning *tu);

/* True when an s3 target talks plain http (the daemon warns: credentials are
 * signed, not sent, but the data travels in the clear). */
bool td_target_is_plaintext(const struct td_target *t);

/* Creates the target's bucket (PUT bucket); an existing bucket owned by us is
 * success. For tests and tools. */
int td_target_s3_create_bucket(struct td_target *t, struct td_target_req **req_out, td_target_cb cb,
                               void *data);

/* Percent-encodes `in` into out (size cap) as SigV4 wants: unreserved characters
 * as they are, '/' kept when keep_slash. Returns the length or -ENAMETOOLONG. */
int td_s3_uri_encode(char *out, size_t cap, const char *in, int keep_slash);
