/*
 * Unit tests of lib/rebuild over a dir target: manifests become rows and
 * dynamic links; a second run adds nothing; a row that differs is a
 * conflict; a manifest without its object, one whose size disagrees, a
 * malformed one and keys that are not tierd's are reported or ignored, never
 * added; --dry-run changes nothing.
 */
#include "catalog.h"
#include "config.h"
#include "ns.h"
#include "rebuild.h"
#include "target.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID1 "0a000000000000000000000000000001"
#define ID2 "0a000000000000000000000000000002"
#define ID3 "ff000000000000000000000000000003"
#define ID4 "ff000000000000000000000000000004"
#define SHA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static char dir[512], tier[600], conf_path[600], cat_path[600];
static struct td_config *conf;
static uv_loop_t loop;
static struct td_target *t;
static unsigned events[6];

static void on_event(void *data, const struct td_rebuild_event *ev)
{
	events[ev->kind]++;
}

static void put(const char *key, const char *body)
{
	struct td_target_sync s = { 0 };
	struct td_target_error te;
	struct td_put_result res;

	CHECK_INT(td_target_sync_wait(&loop, &s,
	                              td_target_put_buf(t, NULL, key, body, strlen(body), NULL,
	                                                NULL, 0, &res, td_target_sync_cb, &s),
	                              &te),
	          0);
}

static void manifest(const char *id, const char *path, unsigned size)
{
	char key[64], body[1024];

	snprintf(key, sizeof(key), "%.2s/%s.json", id, id);
	snprintf(body, sizeof(body),
	         "{\"version\":1,\"id\":\"%s\",\"path\":\"%s\",\"size\":%u,\"mode\":33188,"
	         "\"uid\":1234,\"gid\":5678,\"atime_ns\":1,\"mtime_ns\":1500000000000000000,"
	         "\"ctime_ns\":3,\"sha256\":\"" SHA "\",\"tiered_at\":\"2026-01-02T03:04:05Z\","
	         "\"host\":\"h\",\"policy\":\"p\",\"target\":\"nas\",\"xattrs\":{}}",
	         id, path, size);
	put(key, body);
}

static int run(bool dry_run, struct td_rebuild_stats *st)
{
	struct td_rebuild_opts o = {
		.conf = conf, .dry_run = dry_run, .on_event = on_event, .data = NULL
	};
	char err[512] = "";

	memset(events, 0, sizeof(events));
	return td_rebuild_run(&o, st, err, sizeof(err));
}

static void closed(void *data)
{
	*(bool *)data = true;
}

int main(void)
{
	struct td_rebuild_stats st;
	struct td_catalog *cat;
	struct td_catalog_entry *e = NULL;
	struct td_catalog_error ce;
	struct td_target_error te;
	char buf[4096], link[4096];
	bool done = false;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", td_test_tmpdir("rebuild"));
	snprintf(tier, sizeof(tier), "%s/tier", dir);
	snprintf(conf_path, sizeof(conf_path), "%s/tierd.conf", dir);
	snprintf(cat_path, sizeof(cat_path), "%s/state/catalog.db", dir);
	mkdir(tier, 0700);
	f = fopen(conf_path, "w");
	CHECK(f != NULL);
	fprintf(f,
	        "[tierd]\nstate_dir = %s/state\ncache_dir = %s/cache\nrun_dir = %s/run\n"
	        "[target \"nas\"]\ntype = dir\npath = %s\n"
	        "[policy \"p\"]\npaths = %s/data\ntarget = nas\n",
	        dir, dir, dir, tier, dir);
	fclose(f);
	CHECK_INT(td_config_load(&conf, conf_path, NULL), 0);
	CHECK_INT(uv_loop_init(&loop), 0);
	CHECK_INT(td_target_new(&t, &loop, &conf->targets[0], &te), 0);

	put("0a/" ID1, "hello");
	manifest(ID1, "/srv/data/one.txt", 5);
	put("0a/" ID2, "abc");
	manifest(ID2, "/srv/data/two.txt", 99); /* the object is 3 bytes */
	manifest(ID3, "/srv/data/three", 1);    /* no object */
	put("ff/" ID4, "x");
	put("ff/" ID4 ".json", "{\"version\": 7}"); /* not ours to read */
	put("ff/notanid.json", "{}");               /* someone else's key */
	td_target_close(t, closed, &done);
	while (!done)
		uv_run(&loop, UV_RUN_ONCE);

	/* A dry run changes nothing, not even creating state_dir. */
	CHECK_INT(run(true, &st), 0);
	CHECK_INT((int)st.added, 1);
	CHECK(access(cat_path, F_OK) != 0);

	CHECK_INT(run(false, &st), 0);
	CHECK_INT((int)st.manifests, 4);
	CHECK_INT((int)st.added, 1);
	CHECK_INT((int)st.failed, 3);
	CHECK_INT((int)events[TD_REBUILD_FAILED], 3);
	CHECK_INT(td_catalog_open(&cat, cat_path, 0, &ce), 0);
	CHECK_INT(td_catalog_get(&e, cat, ID1, &ce), 0);
	CHECK_INT(e->state, TD_CATALOG_TIERED);
	CHECK_INT((int)e->uid, 1234);
	CHECK_INT((int)e->gid, 5678);
	CHECK(e->mtime_ns == 1500000000000000000);
	CHECK_INT((int)e->size, 5);
	CHECK_STR(e->name, "one.txt");
	CHECK_STR(e->object_key, "0a/" ID1);
	CHECK(e->link_seen_ns > 0); /* retention counts from the rebuild */
	td_catalog_entry_free(e);
	CHECK(td_catalog_get(&e, cat, ID2, &ce) == -ENOENT);
	CHECK(td_catalog_get(&e, cat, ID3, &ce) == -ENOENT);
	CHECK(td_catalog_get(&e, cat, ID4, &ce) == -ENOENT);
	CHECK(td_ns_read(conf->state_dir, ID1, "one.txt", 7, link, sizeof(link)) > 0);
	snprintf(buf, sizeof(buf), "%s/run/remote/0a/" ID1 "/one.txt", dir);
	CHECK_STR(link, buf);

	/* Again: nothing added; a lost dynamic link is made again. */
	CHECK_INT(td_ns_remove(conf->state_dir, ID1), 0);
	CHECK_INT(run(false, &st), 0);
	CHECK_INT((int)st.added, 0);
	CHECK_INT((int)st.relinked, 1);
	CHECK_INT(run(false, &st), 0);
	CHECK_INT((int)st.present, 1);

	/* A row that differs from its manifest is a conflict, and is kept. */
	CHECK_INT(td_catalog_get(&e, cat, ID1, &ce), 0);
	e->size = 6;
	CHECK_INT(td_catalog_update(cat, e, TD_CATALOG_F_STAT, NULL, &ce), 0);
	td_catalog_entry_free(e);
	CHECK_INT(run(false, &st), 0);
	CHECK_INT((int)st.conflicts, 1);
	CHECK_INT(td_catalog_get(&e, cat, ID1, &ce), 0);
	CHECK_INT((int)e->size, 6);
	td_catalog_entry_free(e);
	td_catalog_close(cat);

	/* An unknown target is an error of the whole run. */
	{
		struct td_rebuild_opts o = { .conf = conf, .target = "nope" };
		char err[256];

		CHECK_INT(td_rebuild_run(&o, &st, err, sizeof(err)), -ENOENT);
		CHECK_CONTAINS(err, "nope");
	}
	uv_loop_close(&loop);
	td_config_free(conf);
	return td_test_done();
}
