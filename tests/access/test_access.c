/* access: the fold of the original's ancestors into one directory's owner,
 * group and mode. The pure fold against hand-made ancestors (modes, ACLs),
 * then the walk of a real tree (as root: chown; ACLs by setxattr). */
#include "access.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ALICE 5001u
#define BOB   5002u
#define AG    5001u /* alice's group; bob is in it */
#define PROJ  5100u

static struct td_access_dir dir(uint32_t uid, uint32_t gid, uint32_t mode)
{
	struct td_access_dir d;

	memset(&d, 0, sizeof(d));
	d.uid = uid;
	d.gid = gid;
	d.mode = mode;
	return d;
}

static void acl_add(struct td_access_dir *d, uint16_t tag, uint16_t perm, uint32_t id)
{
	d->acl[d->n_acl].tag = tag;
	d->acl[d->n_acl].perm = perm;
	d->acl[d->n_acl].id = id;
	d->n_acl++;
}

/* The fold of "/" (root 0755) + "/home" (root 0755) + last, for alice's file
 * of group AG, alice in groups {AG}. */
static struct td_access_fold fold3(struct td_access_dir last)
{
	struct td_access_dir d[3] = { dir(0, 0, 0755), dir(0, 0, 0755), last };
	const uint32_t ug[] = { AG };
	struct td_access_fold f;

	td_access_fold_dirs(&f, d, 3, ALICE, AG, ug, 1);
	return f;
}

static void test_modes(void)
{
	struct td_access_fold f;

	f = fold3(dir(ALICE, AG, 0700));
	CHECK_INT(f.uid, ALICE);
	CHECK_INT(f.mode, 0100);
	f = fold3(dir(ALICE, AG, 0750));
	CHECK_INT(f.gid, AG);
	CHECK_INT(f.mode, 0110);
	f = fold3(dir(ALICE, AG, 0755));
	CHECK_INT(f.mode, 0111);
	f = fold3(dir(ALICE, AG, 0711)); /* search only: enough */
	CHECK_INT(f.mode, 0111);
	f = fold3(dir(ALICE, AG, 0701)); /* the group is denied, others pass */
	CHECK_INT(f.mode, 0101);
	f = fold3(dir(ALICE, AG, 0070)); /* the owner denied itself */
	CHECK_INT(f.mode, 0010);
	/* A project directory of another group: its members get the group class. */
	f = fold3(dir(0, PROJ, 0750));
	CHECK_INT(f.gid, PROJ);
	CHECK_INT(f.mode, 0010); /* alice is not in PROJ */
	/* A parent that others may not search spoils "other" whatever is below. */
	{
		struct td_access_dir d[3] = { dir(0, 0, 0755), dir(0, 0, 0750),
			                      dir(ALICE, AG, 0755) };
		const uint32_t ug[] = { AG, 0 };

		td_access_fold_dirs(&f, d, 3, ALICE, AG, ug, 2); /* alice in group root */
		CHECK_INT(f.mode, 0110);
		CHECK_INT(f.gid, 0); /* root's members pass, AG's may not */
		td_access_fold_dirs(&f, d, 3, ALICE, AG, ug, 1);
		CHECK_INT(f.mode, 0010);
	}
	/* Another user's directory in the chain that denies its own owner: the
	 * owner may be in our group, so the group loses. */
	{
		struct td_access_dir d[2] = { dir(0, 0, 0755), dir(BOB, AG, 0071) };
		const uint32_t ug[] = { AG };

		td_access_fold_dirs(&f, d, 2, ALICE, AG, ug, 1);
		CHECK_INT(f.mode, 0100);
	}
	/* Unknown groups (no passwd entry): pass only if it would either way. */
	{
		struct td_access_dir d[2] = { dir(0, 0, 0755), dir(0, AG, 0751) };

		td_access_fold_dirs(&f, d, 2, ALICE, AG, NULL, 0);
		CHECK_INT(f.mode, 0111);
		d[1].mode = 0750;
		td_access_fold_dirs(&f, d, 2, ALICE, AG, NULL, 0);
		CHECK_INT(f.mode, 0010);
		d[1].mode = 0705; /* in AG or not decides for alice: denied */
		td_access_fold_dirs(&f, d, 2, ALICE, AG, NULL, 0);
		CHECK_INT(f.mode, 0001);
	}
}

static void test_acls(void)
{
	struct td_access_dir d;
	struct td_access_fold f;

	/* group::--- with a named user granted: the group is denied; nobody
	 * named gets in through the fold (conservative) */
	d = dir(ALICE, AG, 0750);
	acl_add(&d, TD_ACL_USER_OBJ, 7, 0);
	acl_add(&d, TD_ACL_USER, 5, BOB);
	acl_add(&d, TD_ACL_GROUP_OBJ, 0, 0);
	acl_add(&d, TD_ACL_MASK, 5, 0);
	acl_add(&d, TD_ACL_OTHER, 0, 0);
	f = fold3(d);
	CHECK_INT(f.mode, 0100);
	/* group::r-x, but a named user denied: a group member may be that user */
	d = dir(ALICE, AG, 0750);
	acl_add(&d, TD_ACL_USER_OBJ, 7, 0);
	acl_add(&d, TD_ACL_USER, 0, BOB);
	acl_add(&d, TD_ACL_GROUP_OBJ, 5, 0);
	acl_add(&d, TD_ACL_MASK, 5, 0);
	acl_add(&d, TD_ACL_OTHER, 5, 0);
	f = fold3(d);
	CHECK_INT(f.mode, 0100);
	/* the mask takes the group's search bit away */
	d = dir(ALICE, AG, 0750);
	acl_add(&d, TD_ACL_USER_OBJ, 7, 0);
	acl_add(&d, TD_ACL_GROUP_OBJ, 5, 0);
	acl_add(&d, TD_ACL_GROUP, 5, PROJ);
	acl_add(&d, TD_ACL_MASK, 4, 0);
	acl_add(&d, TD_ACL_OTHER, 0, 0);
	f = fold3(d);
	CHECK_INT(f.mode, 0100);
	/* a named group granting, the owning group too: members of both pass */
	d = dir(ALICE, AG, 0750);
	acl_add(&d, TD_ACL_USER_OBJ, 7, 0);
	acl_add(&d, TD_ACL_GROUP_OBJ, 5, 0);
	acl_add(&d, TD_ACL_GROUP, 1, PROJ);
	acl_add(&d, TD_ACL_MASK, 5, 0);
	acl_add(&d, TD_ACL_OTHER, 0, 0);
	f = fold3(d);
	CHECK_INT(f.mode, 0110);
	/* an ACL that could not be read denies everyone (but root) */
	d = dir(ALICE, AG, 0755);
	d.acl_unknown = true;
	f = fold3(d);
	CHECK_INT(f.mode, 0);
	/* the raw format */
	{
		unsigned char raw[4 + 8 * 2] = { 2, 0, 0, 0, 1, 0, 7,    0,    0, 0,
			                         0, 0, 2, 0, 5, 0, 0x89, 0x13, 0, 0 };

		memset(&d, 0, sizeof(d));
		CHECK_INT(td_access_parse_acl(&d, raw, sizeof(raw)), 0);
		CHECK_INT(d.n_acl, 2);
		CHECK_INT(d.acl[1].tag, TD_ACL_USER);
		CHECK_INT(d.acl[1].perm, 5);
		CHECK_INT(d.acl[1].id, 5001);
		CHECK_INT(td_access_parse_acl(&d, raw, 7), -EINVAL);
		raw[0] = 1;
		CHECK_INT(td_access_parse_acl(&d, raw, sizeof(raw)), -EINVAL);
	}
}

/* The walk of a real tree: modes, a symlinked ancestor (denied), a missing
 * one (denied), and an ACL set on disk. */
static void test_walk(void)
{
	const char *tmp = td_test_tmpdir("access_walk");
	char top[600], a[700], f_[800], ln[700], p[900], abs_[800];
	struct td_access_fold f;

	snprintf(top, sizeof(top), "%s/top", tmp);
	snprintf(a, sizeof(a), "%s/a", top);
	snprintf(f_, sizeof(f_), "%s/f", a);
	REQUIRE(mkdir(top, 0755) == 0 && mkdir(a, 0750) == 0);
	REQUIRE(chown(a, ALICE, AG) == 0);
	REQUIRE(chmod(a, 0750) == 0);
	REQUIRE(chmod(tmp, 0755) == 0); /* mkdtemp's 0700 would deny all but root */
	CHECK_INT(td_access_fold_path(&f, f_, strlen(f_), ALICE, AG), 0);
	CHECK_INT(f.uid, ALICE);
	CHECK_INT(f.mode & 01, 0); /* a is 0750 */
	{
		struct stat st;
		bool others = true;
		char up[800];

		/* whether everyone can pass tmp's ancestors (TMPDIR may be odd) */
		snprintf(up, sizeof(up), "%s", tmp);
		while (strlen(up) > 1) {
			*strrchr(up, '/') = '\0';
			if (stat(up[0] ? up : "/", &st) == 0 && (st.st_mode & 0111) != 0111)
				others = false;
		}
		if (others) {
			CHECK_INT(f.mode, 0110);
			CHECK_INT(f.gid, AG);
		} else {
			printf("  (an ancestor of %s denies others: the full check is skipped)\n",
			       tmp);
		}
	}
	REQUIRE(chmod(a, 0700) == 0);
	CHECK_INT(td_access_fold_path(&f, f_, strlen(f_), ALICE, AG), 0);
	CHECK_INT(f.mode & 011, 0);
	/* an ACL on a: group::--x grants AG's members again */
	{
		unsigned char raw[4 + 8 * 4] = { 2, 0, 0, 0 };
		uint16_t tags[] = { TD_ACL_USER_OBJ, TD_ACL_GROUP_OBJ, TD_ACL_MASK, TD_ACL_OTHER };
		uint16_t perms[] = { 7, 1, 1, 0 };

		for (int i = 0; i < 4; i++) {
			memcpy(raw + 4 + i * 8, &tags[i], 2);
			memcpy(raw + 6 + i * 8, &perms[i], 2);
		}
		if (setxattr(a, "system.posix_acl_access", raw, sizeof(raw), 0) == 0) {
			CHECK_INT(td_access_fold_path(&f, f_, strlen(f_), ALICE, AG), 0);
			CHECK_INT(f.mode & 01, 0);
			CHECK_INT(f.gid, AG);
		} else {
			printf("  (no ACLs on %s: %s; the ACL case is the pure test's)\n", tmp,
			       strerror(errno));
		}
	}
	/* through a cache: the same answers; the second file of a directory
	 * reuses its walk (a change meanwhile is seen by the next pass) */
	{
		struct td_access_cache *c = td_access_cache_new();
		struct td_access_fold g;
		char f2[900];

		REQUIRE(c);
		snprintf(f2, sizeof(f2), "%s/g", a);
		CHECK_INT(td_access_fold_path(&f, f_, strlen(f_), ALICE, AG), 0);
		CHECK_INT(td_access_fold_path_cached(&g, c, f_, strlen(f_), ALICE, AG), 0);
		CHECK(f.uid == g.uid && f.gid == g.gid && f.mode == g.mode);
		REQUIRE(chmod(a, 0755) == 0);
		CHECK_INT(td_access_fold_path_cached(&g, c, f2, strlen(f2), ALICE, AG), 0);
		CHECK_INT(g.mode, f.mode); /* cached */
		CHECK_INT(td_access_fold_path_cached(&g, c, "/f", 2, ALICE, AG), 0);
		CHECK_INT(td_access_fold_path_cached(&g, c, f2, strlen(f2), ALICE, AG), 0);
		CHECK_INT(td_access_fold_path(&f, f2, strlen(f2), ALICE, AG), 0);
		CHECK_INT(g.mode, f.mode); /* walked again: another parent came between */
		td_access_cache_free(c);
		td_access_cache_free(NULL);
		REQUIRE(chmod(a, 0700) == 0);
	}
	/* a root-owned symlink on the way is followed (an admin's /srv ->
	 * /data/srv), its target's directories counted; a user's denies, as does
	 * a missing ancestor */
	snprintf(ln, sizeof(ln), "%s/ln", top);
	REQUIRE(symlink("a", ln) == 0);
	snprintf(p, sizeof(p), "%s/f", ln);
	{
		struct td_access_fold g;

		CHECK_INT(td_access_fold_path(&g, f_, strlen(f_), ALICE, AG), 0);
		CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), 0);
		CHECK(f.uid == g.uid && f.gid == g.gid && f.mode == g.mode);
		REQUIRE(chmod(a, 0755) == 0);
		CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), 0);
		CHECK_INT(td_access_fold_path(&g, f_, strlen(f_), ALICE, AG), 0);
		CHECK(f.uid == g.uid && f.gid == g.gid && f.mode == g.mode);
		snprintf(abs_, sizeof(abs_), "%s/abs", top);
		REQUIRE(symlink(a, abs_) == 0); /* absolute */
		snprintf(p, sizeof(p), "%s/abs/f", top);
		CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), 0);
		CHECK(f.uid == g.uid && f.gid == g.gid && f.mode == g.mode);
		REQUIRE(chmod(a, 0700) == 0);
	}
	REQUIRE(lchown(ln, ALICE, AG) == 0);
	snprintf(p, sizeof(p), "%s/f", ln);
	CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), -ENOENT);
	CHECK_INT(f.uid, 0);
	CHECK_INT(f.mode, 0);
	snprintf(p, sizeof(p), "%s/gone/f", top);
	CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), -ENOENT);
	CHECK_INT(f.mode, 0);
	snprintf(p, sizeof(p), "%s/../a/f", top);
	CHECK_INT(td_access_fold_path(&f, p, strlen(p), ALICE, AG), -ENOENT);
	CHECK_INT(f.mode, 0);
	CHECK_INT(td_access_fold_path(&f, "rel/f", 5, ALICE, AG), -EINVAL);
	/* root's file at the top: "/" alone */
	CHECK_INT(td_access_fold_path(&f, "/f", 2, 0, 0), 0);
	CHECK_INT(f.mode & 0100, 0100);
}

int main(void)
{
	TD_RUN(test_modes);
	TD_RUN(test_acls);
	TD_RUN(test_walk);
	return td_test_done();
}
