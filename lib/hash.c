/* hash — see hash.h. */
#include "hash.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

struct td_hash {
	EVP_MD_CTX *ctx;
	const EVP_MD *md;
};

int td_hash_new(struct td_hash **out, enum td_hash_algo algo)
{
	struct td_hash *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->md = algo == TD_HASH_MD5 ? EVP_md5() : EVP_sha256();
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, h->md, NULL) != 1) {
		td_hash_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void td_hash_update(struct td_hash *h, const void *data, size_t n)
{
	EVP_DigestUpdate(h->ctx, data, n);
}

void td_hash_final(struct td_hash *h, unsigned char *digest)
{
	unsigned int len = 0;

	EVP_DigestFinal_ex(h->ctx, digest, &len);
	EVP_DigestInit_ex(h->ctx, h->md, NULL);
}

void td_hash_free(struct td_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void td_sha256(const void *data, size_t n, unsigned char out[TD_SHA256_LEN])
{
	unsigned int len = 0;

	EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

void td_md5_base64(const void *data, size_t n, char out[25])
{
	unsigned char d[TD_MD5_LEN];
	unsigned int len = 0;

	EVP_Digest(data, n, d, &len, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)out, d, TD_MD5_LEN);
}

int td_sha256_fd_hex(int fd, char out[TD_SHA256_HEX])
{
	enum { BUF = 1 << 20 };
	unsigned char digest[TD_SHA256_LEN];
	struct td_hash *h = NULL;
	char *buf = malloc(BUF);
	uint64_t off = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	r = td_hash_new(&h, TD_HASH_SHA256);
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = pread(fd, buf, BUF, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		td_hash_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	td_hash_final(h, digest);
	td_hex(out, digest, TD_SHA256_LEN);
	r = 0;
out:
	td_hash_free(h);
	free(buf);
	return r;
}
