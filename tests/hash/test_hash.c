/* Unit tests for lib/hash.c: the one-shot SHA-256 and MD5 helpers against known digests. */
#include "hash.h"
#include "testlib.h"
#include "util.h"

static void test_sha256(void)
{
	unsigned char d[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX];
	char md5[25];

	td_sha256("abc", 3, d);
	td_hex(hex, d, sizeof(d));
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	td_md5_base64("", 0, md5);
	CHECK_STR(md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
}

int main(void)
{
	TD_RUN(test_sha256);
	return td_test_done();
}
