/*
 * util — small helpers every module uses: cleanup attributes, hex, safe string
 * building, path escaping for logs. No globals, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#define TD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TD_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define TD_MAX(a, b)     ((a) > (b) ? (a) : (b))

static inline void td_freep(void *p)
{
	free(*(void **)p);
}
static inline void td_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_free_  __attribute__((cleanup(td_freep)))
#define _cleanup_close_ __attribute__((cleanup(td_closep)))

/* Writes 2*n lowercase hex characters and a NUL to out (size >= 2n+1). */
void td_hex(char *out, const void *in, size_t n);

/* Fills buf with n cryptographically random bytes. Returns 0 or -errno. */
int td_random_bytes(void *buf, size_t n);

/*
 * Escapes a path (arbitrary bytes) for a log line or terminal: printable ASCII
 * except '\\' as is, everything else as \n, \t, \\ or \xHH. Returns a malloc'd
 * string or NULL on ENOMEM.
 */
char *td_escape(const char *s, size_t len);

/* Full read/write loops that retry on EINTR and short counts. Return 0 or -errno
 * (td_read_full: -EIO on a premature EOF). */
int td_write_full(int fd, const void *buf, size_t n);
int td_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* Current time, CLOCK_REALTIME, in ns and s. */
int64_t td_now_ns(void);
int64_t td_monotonic_ns(void);

/* Where byte `at` of the buffers iov[0..cnt) is, and in *avail how many bytes
 * follow it in the same buffer; NULL past their end. */
void *td_iov_at(const struct iovec *iov, unsigned cnt, uint64_t at, size_t *avail);
