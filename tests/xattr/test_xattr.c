/*
 * test_xattr — lib/xattr on real files in a temp directory (the test runs as
 * root in CI, so trusted.* is covered too when it can be set).
 */
#include "testlib.h"
#include "xattr.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static const unsigned char BIN[] = { 0x00, 0xff, 0x00, 0x01, 0x7f, 0x80, 0xfe, 0x00 };

/* A POSIX ACL xattr: user::rw- user:1236:r-- group::--- mask::r-- other::--- */
static const unsigned char ACL[] = {
	2,    0, 0, 0,                         /* version */
	1,    0, 6, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_USER_OBJ rw- */
	2,    0, 4, 0, 0xd4, 0x04, 0,    0,    /* ACL_USER 1236 r-- */
	4,    0, 0, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_GROUP_OBJ --- */
	0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_MASK r-- */
	0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, /* ACL_OTHER --- */
};

static int mkfile(const char *dir, const char *name, mode_t mode)
{
	char p[4200];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || fchmod(fd, mode) < 0) {
		perror(p);
		exit(1);
	}
	return fd;
}

static void test_round_trip(void)
{
	const char *dir = td_test_tmpdir("xattr");
	struct td_xattrs x = { 0 }, y = { 0 };
	unsigned char got[64];
	char names[256];
	int a = mkfile(dir, "a", 0640), b = mkfile(dir, "b", 0600);
	struct stat st;
	ssize_t n;

	/* None: an empty blob. */
	REQUIRE(td_xattr_read(&x, a, NULL) == 0);
	CHECK(x.buf == NULL && x.len == 0);
	CHECK(td_xattr_valid(NULL, 0));
	CHECK_INT(td_xattr_count(NULL, 0), 0);

	REQUIRE(fsetxattr(a, "user.bin", BIN, sizeof(BIN), 0) == 0);
	REQUIRE(fsetxattr(a, "user.empty", "", 0, 0) == 0);
	REQUIRE(fsetxattr(a, TD_XATTR_ACL, ACL, sizeof(ACL), 0) == 0);
	REQUIRE(td_xattr_read(&x, a, NULL) == 0);
	CHECK(td_xattr_valid(x.buf, x.len));
	CHECK_INT(td_xattr_count(x.buf, x.len), 3);

	/* getxattr semantics on the blob. */
	CHECK_INT(td_xattr_get(x.buf, x.len, "user.bin", NULL, 0), sizeof(BIN));
	CHECK_INT(td_xattr_get(x.buf, x.len, "user.bin", got, 3), -ERANGE);
	CHECK_INT(td_xattr_get(x.buf, x.len, "user.bin", got, sizeof(got)), sizeof(BIN));
	CHECK(memcmp(got, BIN, sizeof(BIN)) == 0);
	CHECK_INT(td_xattr_get(x.buf, x.len, "user.empty", got, sizeof(got)), 0);
	CHECK_INT(td_xattr_get(x.buf, x.len, "user.none", got, sizeof(got)), -ENODATA);
	n = td_xattr_list(x.buf, x.len, NULL, 0);
	CHECK_INT(n, (ssize_t)(sizeof("user.bin") + sizeof("user.empty") + sizeof(TD_XATTR_ACL)));
	CHECK_INT(td_xattr_list(x.buf, x.len, names, 4), -ERANGE);
	CHECK_INT(td_xattr_list(x.buf, x.len, names, sizeof(names)), n);

	/* Applied to another file: every value byte for byte, and the ACL's
	 * mask is the mode's group bits (0600 became 0640). */
	REQUIRE(td_xattr_apply(b, x.buf, x.len, NULL) == 0);
	REQUIRE(td_xattr_read(&y, b, NULL) == 0);
	CHECK_INT(td_xattr_count(y.buf, y.len), 3);
	CHECK_INT(fgetxattr(b, "user.bin", got, sizeof(got)), sizeof(BIN));
	CHECK(memcmp(got, BIN, sizeof(BIN)) == 0);
	CHECK_INT(fgetxattr(b, TD_XATTR_ACL, got, sizeof(got)), sizeof(ACL));
	CHECK(memcmp(got, ACL, sizeof(ACL)) == 0);
	REQUIRE(fstat(b, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0640);
	td_xattr_free(&x);
	td_xattr_free(&y);
	td_xattr_free(NULL);
	close(a);
	close(b);
	td_test_rmtree(dir);
}

/* Mounts a TYPE filesystem on dir (root only). Returns true if it did. */
static bool mount_on(const char *type, const char *dir)
{
	char cmd[4300];

	snprintf(cmd, sizeof(cmd), "mount -t %s %s %s 2>/dev/null", type, type, dir);
	return geteuid() == 0 && system(cmd) == 0;
}

static void unmount(const char *dir)
{
	char cmd[4300];

	snprintf(cmd, sizeof(cmd), "umount %s", dir);
	CHECK_INT(system(cmd), 0);
}

static void test_too_big(void)
{
	const char *dir = td_test_tmpdir("xattr-big");
	struct td_xattrs x = { 0 };
	size_t need = 0;
	bool mounted = mount_on("tmpfs", dir);
	char *v = calloc(1, 40000);
	int fd = mkfile(dir, "f", 0600), r;

	REQUIRE(v);
	/* A tmpfs holds 80 KB of user.* xattrs; ext4 only one block of them. */
	r = fsetxattr(fd, "user.a", v, 40000, 0) == 0 && fsetxattr(fd, "user.b", v, 40000, 0) == 0;
	if (r) {
		CHECK_INT(td_xattr_read(&x, fd, &need), -E2BIG);
		CHECK(need > TD_XATTR_MAX);
		CHECK(x.buf == NULL);
	} else {
		printf("# %s holds no 80 KB of xattrs: the cap is checked by tests/e2e/acl.sh\n",
		       dir);
		CHECK(errno == ENOSPC || errno == E2BIG);
	}
	free(v);
	close(fd);
	if (mounted)
		unmount(dir);
	td_test_rmtree(dir);
}

static void test_malformed(void)
{
	unsigned char b[32];
	const char *name;
	const void *v;
	size_t pos = 0, vl;

	memcpy(b, "user.a\0\x02\0\0\0xy", 13);
	CHECK(td_xattr_valid(b, 13));
	CHECK_INT(td_xattr_next(b, 13, &pos, &name, &v, &vl), 1);
	CHECK_STR(name, "user.a");
	CHECK_INT(vl, 2);
	CHECK_INT(td_xattr_next(b, 13, &pos, &name, &v, &vl), 0);
	CHECK(!td_xattr_valid(b, 12));               /* value cut short */
	CHECK(!td_xattr_valid(b, 9));                /* length cut short */
	CHECK(!td_xattr_valid("user.a", 6));         /* no NUL */
	CHECK(!td_xattr_valid("\0\0\0\0\0", 5));     /* empty name */
	CHECK(!td_xattr_valid(b, TD_XATTR_MAX + 1)); /* over the cap */
	memcpy(b, "user.a\0\xff\xff\xff\xff", 11);
	CHECK(!td_xattr_valid(b, 11));
	CHECK_INT(td_xattr_apply(-1, b, 11, NULL), -EINVAL);
	CHECK_INT(td_xattr_count(b, 11), 0);
}

/* A filesystem that holds none (ramfs, as root): -ENOTSUP, naming it. */
static void test_unsupported(void)
{
	unsigned char blob[64];
	const char *bad = NULL;
	const char *dir = td_test_tmpdir("xattr-ramfs");
	int fd;

	memcpy(blob, "user.x\0\x01\0\0\0z", 12);
	if (!mount_on("ramfs", dir)) {
		printf("# cannot mount a ramfs here: ENOTSUP checked by tests/e2e/acl.sh\n");
		CHECK(1);
		td_test_rmtree(dir);
		return;
	}
	fd = mkfile(dir, "f", 0600);
	CHECK_INT(td_xattr_apply(fd, blob, 12, &bad), -ENOTSUP);
	CHECK_STR(bad, "user.x");
	CHECK_INT(td_xattr_apply(fd, NULL, 0, &bad), 0);
	CHECK(bad == NULL);
	close(fd);
	unmount(dir);
	td_test_rmtree(dir);
}

/* The manifest's JSON form is lossless: binary, empty and ACL values. */
static void test_json(void)
{
	unsigned char blob[256];
	size_t len = 0;
	struct td_xattrs x = { 0 };
	json_t *o, *bad;
	char *text;

	memcpy(blob, "user.bin\0\x08\0\0\0", 13);
	memcpy(blob + 13, BIN, sizeof(BIN));
	len = 13 + sizeof(BIN);
	memcpy(blob + len, "user.empty\0\0\0\0\0", 15);
	len += 15;
	memcpy(blob + len, TD_XATTR_ACL "\0", sizeof(TD_XATTR_ACL));
	len += sizeof(TD_XATTR_ACL);
	blob[len++] = sizeof(ACL);
	memset(blob + len, 0, 3);
	len += 3;
	memcpy(blob + len, ACL, sizeof(ACL));
	len += sizeof(ACL);
	REQUIRE(td_xattr_valid(blob, len));
	o = td_xattr_to_json(blob, len);
	REQUIRE(o);
	text = json_dumps(o, JSON_COMPACT);
	CHECK_CONTAINS(text, "\"user.bin\":\"AP8AAX+A/gA=\"");
	CHECK_CONTAINS(text, "\"user.empty\":\"\"");
	free(text);
	REQUIRE(td_xattr_from_json(&x, o) == 0);
	CHECK_INT(x.len, len);
	CHECK(x.buf && memcmp(x.buf, blob, len) == 0);
	td_xattr_free(&x);
	json_decref(o);
	bad = json_pack("{s:s}", "user.x", "not base64!");
	CHECK_INT(td_xattr_from_json(&x, bad), -EINVAL);
	json_decref(bad);
	bad = json_pack("{s:s}", "user.x", "!!!!");
	CHECK_INT(td_xattr_from_json(&x, bad), -EINVAL);
	json_decref(bad);
	bad = json_pack("{s:i}", "user.x", 3);
	CHECK_INT(td_xattr_from_json(&x, bad), -EINVAL);
	json_decref(bad);
	o = json_object();
	REQUIRE(td_xattr_from_json(&x, o) == 0);
	CHECK(x.buf == NULL && x.len == 0);
	json_decref(o);
}

int main(void)
{
	TD_RUN(test_round_trip);
	TD_RUN(test_too_big);
	TD_RUN(test_malformed);
	TD_RUN(test_unsupported);
	TD_RUN(test_json);
	return td_test_done();
}
