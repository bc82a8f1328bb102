/*
 * hash — streaming SHA-256 and MD5 over OpenSSL EVP, so a file is hashed in the
 * same pass that moves it (never read twice). Any thread; each context is owned
 * by its caller.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TD_SHA256_LEN 32
#define TD_SHA256_HEX (2 * TD_SHA256_LEN + 1)
#define TD_MD5_LEN    16

struct td_hash; /* opaque */

enum td_hash_algo {
	TD_HASH_SHA256,
	TD_HASH_MD5,
};

/* Returns 0 and a new context in *out, or -ENOMEM. */
int td_hash_new(struct td_hash **out, enum td_hash_algo algo);
void td_hash_update(struct td_hash *h, const void *data, size_t n);
/* Writes the digest (32 or 16 bytes) and resets the context for reuse. */
void td_hash_final(struct td_hash *h, unsigned char *digest);
void td_hash_free(struct td_hash *h);

/* One-shot helpers. */
void td_sha256(const void *data, size_t n, unsigned char out[TD_SHA256_LEN]);
void td_md5_base64(const void *data, size_t n, char out[25]); /* for Content-MD5 */
/* SHA-256 of a whole fd from offset 0 by pread; writes hex. Returns 0 or -errno. */
int td_sha256_fd_hex(int fd, char out[TD_SHA256_HEX]);
