/*
 * s3t — helpers shared by the s3 target tests: a target from TD_S3_* (or any
 * endpoint), synchronous wrappers over the async calls, random files.
 */
#pragma once

#include "hash.h"
#include "target.h"
#include "target_s3.h"
#include "testlib.h"
#include "util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ull * 1024)

/* True when the test runs against Swift's s3api (tests/s3/on.sh swift). */
static inline bool s3t_is_swift(void)
{
	const char *s = getenv("TD_S3_SERVER");

	return s && strcmp(s, "swift") == 0;
}

static inline void s3t_conf(struct td_target_conf *c, const struct td_test_s3 *s3,
                            const char *prefix)
{
	memset(c, 0, sizeof(*c));
	c->name = (char *)"test";
	c->type = TD_TARGET_S3;
	c->endpoint = (char *)s3->endpoint;
	c->region = (char *)s3->region;
	c->bucket = (char *)s3->bucket;
	c->prefix = (char *)prefix;
	c->access_key = (char *)s3->access_key;
	c->secret_key = (char *)s3->secret_key;
	c->storage_class = (char *)"STANDARD";
	c->multipart_threshold_bytes = 5 * MIB;
	c->part_size_bytes = 5 * MIB;
	c->max_connections = 4;
}

static void s3t_closed(void *data)
{
	*(bool *)data = true;
}

/* Closes the target and checks the loop ends up empty. */
static inline void s3t_close(uv_loop_t *loop, struct td_target *t)
{
	bool closed = false;

	td_target_close(t, s3t_closed, &closed);
	while (!closed)
		uv_run(loop, UV_RUN_ONCE);
	CHECK_INT(uv_run(loop, UV_RUN_NOWAIT), 0);
}

/* Writes n pseudo-random bytes (seeded) to a new file; returns an O_RDONLY fd. */
static inline int s3t_make_file(const char *dir, const char *name, uint64_t n, unsigned seed,
                                char *path_out, size_t cap)
{
	char *buf = malloc(1 << 20);
	uint64_t x = seed * 2654435761u + 1, done = 0;
	int fd;

	snprintf(path_out, cap, "%s/%s", dir, name);
	fd = open(path_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !buf) {
		free(buf);
		return -1;
	}
	while (done < n) {
		size_t k = (size_t)TD_MIN(n - done, (uint64_t)(1 << 20));

		for (size_t i = 0; i < k; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (char)x;
		}
		if (td_write_full(fd, buf, k) < 0)
			break;
		done += k;
	}
	free(buf);
	close(fd);
	return open(path_out, O_RDONLY | O_CLOEXEC);
}
