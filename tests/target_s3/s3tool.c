/*
 * s3tool — a small command-line client of the s3 target layer, for the interop
 * test and the benchmark. Settings come from TD_S3_* (endpoint, keys, bucket,
 * region) plus TD_S3_PREFIX, TD_S3_PART_SIZE (bytes), TD_S3_MAX_CONN.
 *
 *   s3tool mkbucket
 *   s3tool put KEY FILE [k=v ...]       prints "sha256 ETAG"
 *   s3tool get KEY FILE [SHA256]        whole object, verified when SHA256 is given
 *   s3tool pget KEY FILE SIZE           parallel ranged gets of part_size pieces
 *   s3tool head KEY                     prints size, etag and metadata
 *   s3tool put-tree DIR KEYPREFIX       every regular file in DIR, concurrently
 *   s3tool get-tree KEYPREFIX DIR       every object under KEYPREFIX, concurrently
 *   s3tool cleanup                      aborts stale multipart uploads, prints how many
 *   s3tool delete KEY                   the target's delete (TD_S3_DELETE_VERSIONS=1:
 *                                       with delete_versions = yes)
 */
#include "hash.h"
#include "target.h"
#include "target_s3.h"
#include "util.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uv_loop_t loop;
static struct td_target *t;
static unsigned max_conn = 8;

static int die(const char *what, int r, const struct td_target_error *e)
{
	fprintf(stderr, "s3tool: %s: %s%s%s\n", what, strerror(-r), e ? ": " : "",
	        e ? e->message : "");
	return 1;
}

static const char *env(const char *k, const char *def)
{
	const char *v = getenv(k);

	return v && *v ? v : def;
}

static int open_target(void)
{
	struct td_target_conf c;
	struct td_target_error err;
	int r;

	memset(&c, 0, sizeof(c));
	c.name = (char *)"s3tool";
	c.type = TD_TARGET_S3;
	c.endpoint = (char *)env("TD_S3_ENDPOINT", NULL);
	c.access_key = (char *)env("TD_S3_ACCESS_KEY", NULL);
	c.secret_key = (char *)env("TD_S3_SECRET_KEY", NULL);
	c.bucket = (char *)env("TD_S3_BUCKET", NULL);
	c.region = (char *)env("TD_S3_REGION", "us-east-1");
	c.prefix = (char *)env("TD_S3_PREFIX", "");
	c.storage_class = (char *)"STANDARD";
	c.part_size_bytes = strtoull(env("TD_S3_PART_SIZE", "16777216"), NULL, 10);
	c.multipart_threshold_bytes = c.part_size_bytes;
	c.delete_versions = strcmp(env("TD_S3_DELETE_VERSIONS", "0"), "1") == 0;
	max_conn = (unsigned)atoi(env("TD_S3_MAX_CONN", "8"));
	c.max_connections = max_conn;
	if (!c.endpoint || !c.access_key || !c.secret_key || !c.bucket) {
		fprintf(stderr, "s3tool: set TD_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _BUCKET\n");
		return -EINVAL;
	}
	r = td_target_new(&t, &loop, &c, &err);
	if (r < 0)
		return die("target", r, &err);
	return 0;
}

static void closed(void *data)
{
	*(bool *)data = true;
}

/* ---- concurrent batches ---- */

struct job {
	char key[TD_TARGET_KEY_MAX + 1];
	char path[4096];
	int fd;
	uint64_t size, off;
	struct td_put_result res;
};

struct batch {
	struct job *jobs;
	size_t n, next, done;
	unsigned in_flight, window;
	int failed;
	bool get;
	int range_fd; /* pget: pieces of one object into this fd */
};

static void batch_pump(struct batch *b);

static void on_job(void *data, struct td_target_req *req, int status,
                   const struct td_target_error *err)
{
	struct batch *b = data;

	(void)req;
	if (status < 0) {
		fprintf(stderr, "s3tool: %s\n", err ? err->message : strerror(-status));
		b->failed++;
	}
	b->in_flight--;
	b->done++;
	batch_pump(b);
}

static void batch_pump(struct batch *b)
{
	while (b->in_flight < b->window && b->next < b->n) {
		struct job *j = &b->jobs[b->next++];
		int r;

		if (b->range_fd >= 0) {
			r = td_target_get_fd(t, NULL, j->key, j->off, j->size, b->range_fd, j->off,
			                     NULL, on_job, b);
		} else if (b->get) {
			j->fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			r = j->fd < 0 ? -errno
			              : td_target_get_fd(t, NULL, j->key, 0, UINT64_MAX, j->fd, 0,
			                                 NULL, on_job, b);
		} else {
			struct stat st;

			j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
			r = j->fd < 0 || fstat(j->fd, &st) < 0 ? -errno : 0;
			if (r == 0) {
				j->size = (uint64_t)st.st_size;
				r = td_target_put_fd(t, NULL, j->key, j->fd, j->size, NULL, 0,
				                     &j->res, on_job, b);
			}
		}
		if (r < 0) {
			fprintf(stderr, "s3tool: %s: %s\n", j->key, strerror(-r));
			b->failed++;
			b->done++;
			continue;
		}
		b->in_flight++;
	}
}

static int run_batch(struct batch *b)
{
	if (!b->window)
		b->window = max_conn * 2;
	batch_pump(b);
	while (b->done < b->n)
		uv_run(&loop, UV_RUN_ONCE);
	for (size_t i = 0; i < b->n; i++)
		if (b->jobs[i].fd >= 0)
			close(b->jobs[i].fd);
	return b->failed ? 1 : 0;
}

static int put_tree(const char *dir, const char *kp)
{
	struct batch b = { .range_fd = -1 };
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;
	int rc;

	if (!d)
		return die(dir, -errno, NULL);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (b.n == cap) {
			cap = cap ? 2 * cap : 256;
			b.jobs = realloc(b.jobs, cap * sizeof(*b.jobs));
		}
		memset(&b.jobs[b.n], 0, sizeof(b.jobs[0]));
		b.jobs[b.n].fd = -1;
		snprintf(b.jobs[b.n].key, sizeof(b.jobs[0].key), "%s%s", kp, de->d_name);
		snprintf(b.jobs[b.n].path, sizeof(b.jobs[0].path), "%s/%s", dir, de->d_name);
		b.n++;
	}
	closedir(d);
	rc = run_batch(&b);
	printf("%zu files\n", b.n);
	free(b.jobs);
	return rc;
}

struct lister {
	struct td_target_sync s;
	struct batch *b;
	size_t cap;
	const char *dir;
	const char *kp;
};

static int on_listed(void *data, const struct td_object_info *info)
{
	struct lister *l = data;
	struct batch *b = l->b;
	const char *base = info->key + strlen(l->kp);

	if (strchr(base, '/'))
		return 0;
	if (b->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		b->jobs = realloc(b->jobs, l->cap * sizeof(*b->jobs));
	}
	memset(&b->jobs[b->n], 0, sizeof(b->jobs[0]));
	b->jobs[b->n].fd = -1;
	snprintf(b->jobs[b->n].key, sizeof(b->jobs[0].key), "%s", info->key);
	snprintf(b->jobs[b->n].path, sizeof(b->jobs[0].path), "%s/%s", l->dir, base);
	b->n++;
	return 0;
}

static int get_tree(const char *kp, const char *dir)
{
	struct batch b = { .get = true, .range_fd = -1 };
	struct lister l = { .b = &b, .dir = dir, .kp = kp };
	struct td_target_error err;
	int r, rc;

	r = td_target_sync_wait(
	    &loop, &l.s, td_target_list(t, NULL, kp, on_listed, td_target_sync_cb, &l), &err);
	if (r < 0)
		return die("list", r, &err);
	rc = run_batch(&b);
	printf("%zu files\n", b.n);
	free(b.jobs);
	return rc;
}

static int pget(const char *key, const char *path, uint64_t size)
{
	struct batch b = { .get = true };
	uint64_t piece = strtoull(env("TD_S3_PART_SIZE", "16777216"), NULL, 10);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t n = (size_t)((size + piece - 1) / piece);

	if (fd < 0)
		return die(path, -errno, NULL);
	if (ftruncate(fd, (off_t)size) < 0)
		return die(path, -errno, NULL);
	/* Pieces are started in order, so the file is written roughly in order. */
	b.jobs = calloc(n ? n : 1, sizeof(*b.jobs));
	b.n = n;
	b.window = max_conn;
	for (size_t i = 0; i < n; i++) {
		b.jobs[i].fd = -1;
		b.jobs[i].off = i * piece;
		b.jobs[i].size = TD_MIN(piece, size - i * piece);
		snprintf(b.jobs[i].key, sizeof(b.jobs[i].key), "%s", key);
	}
	b.range_fd = fd;
	run_batch(&b);
	close(fd);
	free(b.jobs);
	return b.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct td_target_error err;
	struct td_target_sync s = { 0 };
	bool done = false;
	int rc = 0, r;

	if (argc < 2) {
		fprintf(stderr, "usage: s3tool COMMAND ...\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	uv_loop_init(&loop);
	if (open_target() < 0)
		return 1;
	if (strcmp(argv[1], "mkbucket") == 0) {
		r = td_target_sync_wait(
		    &loop, &s, td_target_s3_create_bucket(t, NULL, td_target_sync_cb, &s), &err);
		rc = r < 0 ? die("mkbucket", r, &err) : 0;
	} else if (strcmp(argv[1], "put") == 0 && argc >= 4) {
		struct td_target_kv meta[TD_TARGET_META_MAX];
		struct td_put_result res;
		size_t nm = 0;
		struct stat st;
		int fd = open(argv[3], O_RDONLY | O_CLOEXEC);

		for (int i = 4; i < argc && nm < TD_TARGET_META_MAX; i++) {
			char *eq = strchr(argv[i], '=');

			if (!eq)
				continue;
			*eq = '\0';
			meta[nm].key = argv[i];
			meta[nm++].value = eq + 1;
		}
		if (fd < 0 || fstat(fd, &st) < 0)
			return die(argv[3], -errno, NULL);
		r = td_target_sync_wait(&loop, &s,
		                        td_target_put_fd(t, NULL, argv[2], fd, (uint64_t)st.st_size,
		                                         meta, nm, &res, td_target_sync_cb, &s),
		                        &err);
		close(fd);
		if (r < 0)
			rc = die("put", r, &err);
		else
			printf("%s %s\n", res.sha256_hex, res.etag);
	} else if (strcmp(argv[1], "get") == 0 && argc >= 4) {
		int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0)
			return die(argv[3], -errno, NULL);
		r = td_target_sync_wait(&loop, &s,
		                        td_target_get_fd(t, NULL, argv[2], 0, UINT64_MAX, fd, 0,
		                                         argc > 4 ? argv[4] : NULL,
		                                         td_target_sync_cb, &s),
		                        &err);
		close(fd);
		if (r < 0)
			rc = die("get", r, &err);
	} else if (strcmp(argv[1], "pget") == 0 && argc >= 5) {
		rc = pget(argv[2], argv[3], strtoull(argv[4], NULL, 10));
	} else if (strcmp(argv[1], "head") == 0 && argc >= 3) {
		struct td_object_info info;

		r = td_target_sync_wait(
		    &loop, &s, td_target_head(t, NULL, argv[2], &info, td_target_sync_cb, &s),
		    &err);
		if (r < 0) {
			rc = die("head", r, &err);
		} else {
			printf("size %" PRIu64 "\netag %s\n", info.size_bytes, info.etag);
			for (size_t i = 0; i < info.n_meta; i++)
				printf("meta %s=%s\n", info.meta[i].key, info.meta[i].value);
		}
	} else if (strcmp(argv[1], "put-tree") == 0 && argc >= 4) {
		rc = put_tree(argv[2], argv[3]);
	} else if (strcmp(argv[1], "get-tree") == 0 && argc >= 4) {
		rc = get_tree(argv[2], argv[3]);
	} else if (strcmp(argv[1], "delete") == 0 && argc >= 3) {
		r = td_target_sync_wait(
		    &loop, &s, td_target_delete(t, NULL, argv[2], td_target_sync_cb, &s), &err);
		if (r < 0)
			rc = die("delete", r, &err);
	} else if (strcmp(argv[1], "cleanup") == 0) {
		unsigned n = 0;

		r = td_target_sync_wait(
		    &loop, &s, td_target_cleanup_stale(t, NULL, &n, td_target_sync_cb, &s), &err);
		if (r < 0)
			rc = die("cleanup", r, &err);
		else
			printf("%u\n", n);
	} else {
		fprintf(stderr, "s3tool: bad command\n");
		rc = 2;
	}
	td_target_close(t, closed, &done);
	while (!done)
		uv_run(&loop, UV_RUN_ONCE);
	uv_loop_close(&loop);
	curl_global_cleanup();
	return rc;
}
