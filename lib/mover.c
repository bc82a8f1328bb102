/*
 * mover — see mover.h for the steps. This file is organised as the life of a
 * job: blocking steps are w_*() functions run on the thread pool, each
 * followed on the loop thread by the a_*() function that decides what comes
 * next. The catalog handle is shared by the pool threads under cat_lock.
 *
 * The swap never trusts a name twice: the user link is created under a name of
 * our own and exchanged atomically with the file (RENAME_EXCHANGE), and what
 * landed where is then checked by inode; if anything else is found the
 * exchange is undone. A filesystem without RENAME_EXCHANGE is not tiered.
 */
#include "mover.h"
#include "catalog.h"
#include "ns.h"
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_XATTR_MAX (64u * 1024) /* xattr bytes recorded in a manifest */
#define RECOVER_PAGE       64
#define MAX_IN_GRACE       256 /* default max_in_grace: two fds each */

struct td_mover;

struct job {
	struct td_mover *m;
	struct job *next, *prev;
	td_mover_cb cb;
	void *data;

	/* What to move. */
	char *root;
	char *path; /* root + "/" + rel */
	size_t path_len;
	const char *rel; /* points into path */
	size_t rel_len;
	const char *name; /* basename, points into path */
	size_t name_len;
	char *policy;
	char *target_name;
	bool keep_cached;
	bool check_stat;
	uint64_t exp_dev, exp_ino, exp_size;
	int64_t exp_mtime_ns, exp_ctime_ns;

	/* Where it is going. */
	char id[TD_CATALOG_ID_HEX];
	char key[64], mkey[64];
	char tmpname[64]; /* ".tierd-<id>": the user link before, the old inode after the swap */
	char link_target[4096];
	struct td_target *t;
	struct td_target_req *req;
	struct td_put_result put, mput; /* the data object's and the manifest's */
	struct td_object_info head;
	char *manifest;

	/* Held open while moving. */
	int parentfd, fd;
	bool leased;
	struct stat st, st_ref, st_swap; /* at open; what re-checks compare; after the swap */
	bool row;                        /* a catalog row exists */
	int step;                        /* last durable step */
	bool swapped;                    /* the old inode is at tmpname */
	bool cache_made;
	atomic_bool lease_broken;

	/* Thread pool plumbing: work.data is the job. */
	uv_work_t work;
	void (*work_fn)(struct job *j);
	void (*after)(struct job *j);
	uv_timer_t grace;
	bool grace_init, grace_armed;
	bool in_grace; /* counted in n_grace, not against max_transfers */

	/* Recovery of a row left by a crash; a recall rather than a migration. */
	bool recovering;
	bool recalling;
	bool entry_was_tiered;
	char **roots; /* recall: the policy roots */
	size_t n_roots;
	struct td_catalog_entry *entry;

	/* Result. */
	enum td_mover_outcome outcome;
	int status;
	bool need_rollback; /* object/manifest on the target must be deleted */
	char msg[512];
};

struct recover {
	struct td_mover *m;
	char **roots;
	size_t n_roots;
	char after_id[TD_CATALOG_ID_HEX];
	struct td_catalog_entry *page[RECOVER_PAGE];
	size_t n_page, next;
	unsigned finished, rolled_back, left;
	int status;
	bool eof;
	int pass;                          /* 0: migrations, 1: recalls */
	bool rollbacks_only;               /* td_mover_retry_rollbacks */
	char last_seen[TD_CATALOG_ID_HEX]; /* the page's last row, collected or not */
	size_t visited;
	uv_work_t work;
	void (*done)(void *data, int status, unsigned finished, unsigned rolled_back,
	             unsigned left);
	void *data;
};

struct td_mover {
	uv_loop_t *loop;
	struct td_mover_opts o;
	char *state_dir, *cache_dir, *run_dir;
	struct td_catalog *cat;
	uv_mutex_t cat_lock;
	struct job *queue_head, *queue_tail;
	unsigned n_queued;
	struct job *active; /* in-flight list, grace periods included */
	unsigned n_active;
	unsigned n_grace; /* of n_active: waiting out the grace period, not transferring */
	struct recover *recovering;
	bool closing;
	void (*close_cb)(void *data);
	void *close_data;
};

static void pump(struct td_mover *m);
static void finish(struct job *j);
static void rollback(struct job *j);
static void recover_next(struct recover *rc);

/* ---- helpers ------------------------------------------------------------- */

static void set_msg(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(struct job *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

static void fail(struct job *j, enum td_mover_outcome o, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct job *j, enum td_mover_outcome o, int status, const char *fmt, ...)
{
	va_list ap;

	/* The first reason is the one reported. */
	if (j->status != 0 || j->outcome != TD_MOVER_TIERED)
		return;
	j->outcome = o;
	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

static bool failed(const struct job *j)
{
	return j->outcome != TD_MOVER_TIERED;
}

static void hook(struct job *j, const char *step)
{
	if (j->m->o.step_hook)
		j->m->o.step_hook(j->m->o.ctx, j->id, step);
}

static void run_work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	j->work_fn(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;

	if (status < 0)
		fail(j, TD_MOVER_FAILED, status, "could not run on the thread pool: %s",
		     uv_strerror(status));
	j->after(j);
}

static void run_work(struct job *j, void (*fn)(struct job *), void (*after)(struct job *))
{
	int r;

	j->work.data = j;
	j->work_fn = fn;
	j->after = after;
	r = uv_queue_work(j->m->loop, &j->work, run_work_cb, after_work_cb);
	if (r < 0) {
		fail(j, TD_MOVER_FAILED, r, "could not queue work: %s", uv_strerror(r));
		after(j);
	}
}

static int cat_err(struct job *j, int r, const struct td_catalog_error *ce, const char *what)
{
	fail(j, TD_MOVER_FAILED, r, "catalog: %s: %s", what,
	     ce->message[0] ? ce->message : strerror(-r));
	return r;
}

static bool same_content(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* The identity and attributes a catalog row keeps of a file (TD_CATALOG_F_STAT). */
static void entry_stat(struct td_catalog_entry *e, const struct stat *st)
{
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = (uint64_t)st->st_size;
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->atime_ns = ts_ns(&st->st_atim);
	e->mtime_ns = ts_ns(&st->st_mtim);
	e->ctime_ns = ts_ns(&st->st_ctim);
}

static void release_file(struct job *j)
{
	if (j->fd >= 0) {
		if (j->leased)
			fcntl(j->fd, F_SETLEASE, F_UNLCK);
		close(j->fd);
		j->fd = -1;
		j->leased = false;
	}
	if (j->parentfd >= 0) {
		close(j->parentfd);
		j->parentfd = -1;
	}
}

/*
 * Opens the directory holding `rel` beneath root, one component at a time with
 * O_NOFOLLOW, so no symlink anywhere below the root is ever followed. Returns
 * an fd or -errno (-ELOOP/-ENOTDIR when a component is a symlink).
 */
static int open_parent(const char *root, const char *rel, size_t rel_len)
{
	const char *p = rel, *end = rel + rel_len, *slash;
	char comp[256];
	int fd, next;

	fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		slash = memchr(p, '/', (size_t)(end - p));
		if (!slash)
			return fd; /* what is left is the file's name */
		size_t n = (size_t)(slash - p);
		if (n == 0 || n >= sizeof(comp) || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			close(fd);
			return -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return errno == ENOTDIR ? -ELOOP : -errno;
		fd = next;
		p = slash + 1;
	}
}

static int job_set_path(struct job *j, const char *root, const char *rel, size_t rel_len)
{
	size_t rl = strlen(root);
	const char *slash;

	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	if (rel_len == 0 || rel[0] == '/' || memchr(rel, '\0', rel_len))
		return -EINVAL;
	j->root = strndup(root, rl);
	j->path = malloc(rl + 1 + rel_len + 1);
	if (!j->root || !j->path)
		return -ENOMEM;
	memcpy(j->path, root, rl);
	j->path[rl] = '/';
	memcpy(j->path + rl + 1, rel, rel_len);
	j->path[rl + 1 + rel_len] = '\0';
	j->path_len = rl + 1 + rel_len;
	j->rel = j->path + rl + 1;
	j->rel_len = rel_len;
	slash = memrchr(j->rel, '/', rel_len);
	j->name = slash ? slash + 1 : j->rel;
	j->name_len = (size_t)(j->rel + rel_len - j->name);
	return td_ns_valid_name(j->name, j->name_len) ? 0 : -EINVAL;
}

static int job_set_id(struct job *j, const char *id)
{
	int r;

	memcpy(j->id, id, TD_CATALOG_ID_HEX);
	snprintf(j->tmpname, sizeof(j->tmpname), ".tierd-%s", id);
	r = td_ns_object_key(j->key, sizeof(j->key), id, false);
	if (r == 0)
		r = td_ns_object_key(j->mkey, sizeof(j->mkey), id, true);
	if (r == 0)
		r = td_ns_link_path(j->link_target, sizeof(j->link_target), j->m->state_dir, id,
		                    j->name, j->name_len);
	return r;
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->n_roots; i++)
		free(j->roots[i]);
	free(j->roots);
	free(j->root);
	free(j->path);
	free(j->policy);
	free(j->target_name);
	free(j->manifest);
	td_catalog_entry_free(j->entry);
	free(j);
}

/* ---- step 1: open, check, lease, catalog row ------------------------------ */

static void w_open(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry e = { 0 };
	char nm[256];
	int r;

	j->parentfd = open_parent(j->root, j->rel, j->rel_len);
	if (j->parentfd < 0) {
		r = j->parentfd;
		fail(j, TD_MOVER_SKIPPED, r, "cannot open its directory beneath %s: %s", j->root,
		     r == -ELOOP ? "a component is a symlink" : strerror(-r));
		return;
	}
	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	j->fd = openat(j->parentfd, nm, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_NONBLOCK);
	if (j->fd < 0 && errno == EPERM) /* O_NOATIME needs ownership or CAP_FOWNER */
		j->fd = openat(j->parentfd, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (j->fd < 0) {
		r = -errno;
		fail(j, TD_MOVER_SKIPPED, r, "cannot open: %s",
		     r == -ELOOP ? "it is a symlink" : strerror(-r));
		return;
	}
	if (fstat(j->fd, &j->st) < 0) {
		fail(j, TD_MOVER_FAILED, -errno, "fstat: %s", strerror(errno));
		return;
	}
	j->st_ref = j->st;
	if (!S_ISREG(j->st.st_mode) || j->st.st_nlink != 1 ||
	    (j->st.st_mode & (S_ISUID | S_ISGID))) {
		fail(j, TD_MOVER_SKIPPED, -EINVAL, "%s",
		     !S_ISREG(j->st.st_mode) ? "not a regular file"
		     : j->st.st_nlink != 1   ? "hard-linked (nlink > 1): not tiered"
		                             : "setuid/setgid: not tiered");
		return;
	}
	if (j->check_stat &&
	    ((uint64_t)j->st.st_dev != j->exp_dev || (uint64_t)j->st.st_ino != j->exp_ino ||
	     (uint64_t)j->st.st_size != j->exp_size || ts_ns(&j->st.st_mtim) != j->exp_mtime_ns ||
	     ts_ns(&j->st.st_ctim) != j->exp_ctime_ns)) {
		fail(j, TD_MOVER_SKIPPED, -ESTALE,
		     "changed since the scan; retried on a later run");
		return;
	}
	/* A read lease: refused while anyone has the file open for writing, and
	 * broken (we are signalled) when anyone opens it for writing later. */
	if (fcntl(j->fd, F_SETLEASE, F_RDLCK) == 0) {
		j->leased = true;
	} else if (errno == EAGAIN || errno == EBUSY) {
		fail(j, TD_MOVER_SKIPPED, -EBUSY,
		     "open for writing by another process; retried later");
		return;
	} /* else: the filesystem has no leases; the stat checks still guard the swap */

	r = td_catalog_new_id(j->id);
	if (r == 0)
		r = job_set_id(j, j->id);
	if (r < 0) {
		fail(j, TD_MOVER_FAILED, r, "cannot make an id: %s", strerror(-r));
		return;
	}
	e.state = TD_CATALOG_MIGRATING;
	e.step = TD_MOVER_OPENED;
	memcpy(e.id, j->id, sizeof(e.id));
	e.policy = j->policy;
	e.path = j->path;
	e.path_len = j->path_len;
	e.name = j->name;
	e.name_len = j->name_len;
	entry_stat(&e, &j->st);
	e.target = j->target_name;
	e.object_key = j->key;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_insert(j->m->cat, &e, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		cat_err(j, r, &ce, "insert");
		return;
	}
	j->row = true;
	j->step = TD_MOVER_OPENED;
	hook(j, "opened");
}

/* ---- step 2: upload, manifest, verify -------------------------------------- */

static void on_head(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err);
static void on_manifest(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err);
static void w_prepare(struct job *j);
static void a_prepare(struct job *j);

static void target_failed(struct job *j, int status, const struct td_target_error *err,
                          const char *what)
{
	if (atomic_load(&j->lease_broken))
		fail(j, TD_MOVER_SKIPPED, -EBUSY,
		     "opened for writing during the upload; retried on a later run");
	else if (status == -ECANCELED && j->m->closing)
		fail(j, TD_MOVER_INTERRUPTED, status, "tierd is stopping");
	else
		fail(j, TD_MOVER_FAILED, status, "%s %s on target %s failed: %s%s%s", what, j->key,
		     j->target_name, err && err->message[0] ? err->message : strerror(-status),
		     err && err->code[0] ? " " : "", err && err->code[0] ? err->code : "");
}

static char *b64(const void *data, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	return out;
}

static json_t *manifest_xattrs(int fd)
{
	json_t *x = json_object();
	char names[8192], *val = NULL;
	ssize_t n = flistxattr(fd, names, sizeof(names));
	size_t total = 0;

	if (!x || n <= 0)
		return x;
	val = malloc(MANIFEST_XATTR_MAX);
	if (!val)
		return x;
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		ssize_t vl = fgetxattr(fd, p, val, MANIFEST_XATTR_MAX);
		char *enc;

		if (vl < 0 || total + (size_t)vl > MANIFEST_XATTR_MAX)
			continue;
		total += (size_t)vl;
		enc = b64(val, (size_t)vl);
		if (enc)
			json_object_set_new(x, p, json_string(enc));
		free(enc);
	}
	free(val);
	return x;
}

static char *manifest_text(struct job *j)
{
	char host[256] = "", when[64], *pb64 = b64(j->path, j->path_len), *text;
	time_t now = time(NULL);
	struct tm tm;
	json_t *doc, *pathstr = json_stringn(j->path, j->path_len); /* NULL if not UTF-8 */

	gethostname(host, sizeof(host) - 1);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	doc = json_pack(
	    "{s:i, s:s, s:o?, s:s?, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:s, s:s, s:s, "
	    "s:s, s:s, s:o}",
	    "version", 1, "id", j->id, "path", pathstr, "path_b64", pb64, "size",
	    (json_int_t)j->st.st_size, "mode", (int)j->st.st_mode, "uid", (int)j->st.st_uid, "gid",
	    (int)j->st.st_gid, "atime_ns", (json_int_t)ts_ns(&j->st.st_atim), "mtime_ns",
	    (json_int_t)ts_ns(&j->st.st_mtim), "ctime_ns", (json_int_t)ts_ns(&j->st.st_ctim),
	    "sha256", j->put.sha256_hex, "tiered_at", when, "host", host, "policy",
	    j->policy ? j->policy : "", "target", j->target_name, "xattrs", manifest_xattrs(j->fd));
	free(pb64);
	if (!doc)
		return NULL;
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

/* Gives up on a migration whose bytes may be on the target: they are deleted
 * and the file stays as it was. */
static void undo(struct job *j)
{
	j->need_rollback = true;
	rollback(j);
}

/* The prologue of every target step's callback. Returns true when the step
 * failed (or a writer broke the lease meanwhile): the job is then being
 * rolled back and the caller returns. */
static bool target_step_failed(struct job *j, int status, const struct td_target_error *err,
                               const char *what)
{
	j->req = NULL;
	if (status == 0 && atomic_load(&j->lease_broken))
		status = -ECANCELED;
	if (status >= 0)
		return false;
	target_failed(j, status, err, what);
	j->need_rollback = j->outcome != TD_MOVER_INTERRUPTED;
	rollback(j);
	return true;
}

/* The next target request could not even start: give up on the migration. */
static void start_failed(struct job *j, int r, const char *what)
{
	fail(j, TD_MOVER_FAILED, r, "cannot start the %s: %s", what, strerror(-r));
	undo(j);
}

static void on_put(void *data, struct td_target_req *req, int status,
                   const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	if (target_step_failed(j, status, err, "upload of"))
		return;
	if (j->put.size_bytes != (uint64_t)j->st.st_size) {
		fail(j, TD_MOVER_FAILED, -EIO, "target stored %llu bytes, the file has %llu",
		     (unsigned long long)j->put.size_bytes, (unsigned long long)j->st.st_size);
		undo(j);
		return;
	}
	j->manifest = manifest_text(j);
	if (!j->manifest) {
		fail(j, TD_MOVER_FAILED, -ENOMEM, "cannot build the manifest");
		undo(j);
		return;
	}
	r = td_target_put_buf(j->t, &j->req, j->mkey, j->manifest, strlen(j->manifest),
	                      "application/json", NULL, 0, &j->mput, on_manifest, j);
	if (r < 0)
		start_failed(j, r, "manifest upload");
}

static void on_manifest(void *data, struct td_target_req *req, int status,
                        const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	if (target_step_failed(j, status, err, "manifest upload of"))
		return;
	r = td_target_head(j->t, &j->req, j->key, &j->head, on_head, j);
	if (r < 0)
		start_failed(j, r, "verification");
}

static void on_head(void *data, struct td_target_req *req, int status,
                    const struct td_target_error *err)
{
	struct job *j = data;

	if (target_step_failed(j, status, err, "verification (HEAD) of"))
		return;
	if (j->head.size_bytes != (uint64_t)j->st.st_size ||
	    (j->put.etag[0] && j->head.etag[0] && strcmp(j->put.etag, j->head.etag) != 0)) {
		fail(
		    j, TD_MOVER_FAILED, -EIO,
		    "verification failed: target has %llu bytes, ETag %s; sent %llu bytes, ETag %s",
		    (unsigned long long)j->head.size_bytes, j->head.etag,
		    (unsigned long long)j->st.st_size, j->put.etag);
		undo(j);
		return;
	}
	if (!j->put.etag[0])
		memcpy(j->put.etag, j->head.etag, sizeof(j->put.etag));
	run_work(j, w_prepare, a_prepare);
}

static void start_upload(struct job *j)
{
	char size[32], mtime[32];
	struct td_target_kv meta[] = {
		{ "tierd-id", j->id },
		{ "tierd-size", size },
		{ "tierd-mtime-ns", mtime },
	};
	int r;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)j->st.st_size);
	snprintf(mtime, sizeof(mtime), "%lld", (long long)ts_ns(&j->st.st_mtim));
	r = td_target_put_fd(j->t, &j->req, j->key, j->fd, (uint64_t)j->st.st_size, meta,
	                     TD_ARRAY_SIZE(meta), &j->put, on_put, j);
	if (r < 0) {
		fail(j, TD_MOVER_FAILED, r, "cannot start the upload: %s", strerror(-r));
		rollback(j);
	}
}

static void a_open(struct job *j)
{
	if (failed(j)) {
		/* Nothing was uploaded; a row, if any, is removed by the undo step. */
		rollback(j);
		return;
	}
	if (j->m->closing) {
		fail(j, TD_MOVER_INTERRUPTED, -ECANCELED, "tierd is stopping");
		rollback(j);
		return;
	}
	start_upload(j);
}

/* ---- steps 3-5: re-check, link, swap --------------------------------------- */

static int set_step(struct job *j, int from, int to, unsigned extra_fields,
                    struct td_catalog_entry *e)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_MIGRATING, .step = from };
	struct td_catalog_entry local = { 0 };
	int r;

	if (!e)
		e = &local;
	memcpy(e->id, j->id, sizeof(e->id));
	e->state = TD_CATALOG_MIGRATING;
	e->step = to;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(j->m->cat, e, TD_CATALOG_F_STATE | extra_fields, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0)
		return cat_err(j, r, &ce, "update");
	j->step = to;
	return 0;
}

/* Is the file still exactly what we uploaded, still at its name, still leased? */
static bool unchanged(struct job *j, const struct stat *ref, const char *at_name)
{
	struct stat now, named;

	if (atomic_load(&j->lease_broken) || (j->leased && fcntl(j->fd, F_GETLEASE) != F_RDLCK))
		return false;
	if (fstat(j->fd, &now) < 0 || !same_content(&now, ref))
		return false;
	if (fstatat(j->parentfd, at_name, &named, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return named.st_dev == ref->st_dev && named.st_ino == ref->st_ino;
}

/* keep_cached: the bytes become the cache copy. On the same filesystem that is
 * a second link to the very inode (no copy, and a write through an old
 * descriptor lands in the copy); elsewhere a verified copy. */
static int make_cache_copy(struct job *j)
{
	char path[4096], dir[4096], part[4200], fdpath[64];
	unsigned char digest[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX];
	struct td_hash *h = NULL;
	char *buf = NULL;
	int r, out = -1;
	uint64_t off = 0;

	r = td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id);
	if (r < 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/objects/%.2s", j->m->cache_dir, j->id);
	r = td_ns_mkdirs(dir, TD_NS_DIR_MODE);
	if (r < 0)
		return r;
	unlink(path); /* a leftover of a crashed attempt with this id */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", j->fd);
	if (linkat(j->fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0 ||
	    linkat(AT_FDCWD, fdpath, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
		j->cache_made = true;
		return 0;
	}
	if (errno != EXDEV)
		return -errno;
	snprintf(part, sizeof(part), "%s.part", path);
	out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	buf = malloc(1 << 20);
	r = buf ? td_hash_new(&h, TD_HASH_SHA256) : -ENOMEM;
	while (r == 0 && off < (uint64_t)j->st.st_size) {
		ssize_t n = pread(j->fd, buf, 1 << 20, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		td_hash_update(h, buf, (size_t)n);
		r = td_write_full(out, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (r == 0) {
		td_hash_final(h, digest);
		td_hex(hex, digest, sizeof(digest));
		if (strcmp(hex, j->put.sha256_hex) != 0)
			r = -EIO;
	}
	if (r == 0 &&
	    (fchown(out, j->st.st_uid, j->st.st_gid) < 0 || fchmod(out, j->st.st_mode & 07777) < 0))
		r = -errno;
	if (r == 0) {
		struct timespec ts[2] = { j->st.st_atim, j->st.st_mtim };
		if (futimens(out, ts) < 0 || fsync(out) < 0)
			r = -errno;
	}
	if (r == 0 && rename(part, path) < 0)
		r = -errno;
	close(out);
	if (r < 0)
		unlink(part);
	else
		j->cache_made = true;
	td_hash_free(h);
	free(buf);
	return r;
}

/*
 * Puts the old inode back at its name (exchange again) and removes our link.
 * If the name no longer holds our link, somebody changed it: the old inode is
 * then left at .tierd-<id>, where nothing is lost, and the error says so.
 */
static int restore_swap(struct job *j)
{
	char nm[256], rb[4096];
	struct stat st;
	ssize_t n;

	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	n = readlinkat(j->parentfd, nm, rb, sizeof(rb) - 1);
	if (n < 0 || (size_t)n != strlen(j->link_target) || memcmp(rb, j->link_target, (size_t)n))
		goto stuck;
	if (renameat2(j->parentfd, j->tmpname, j->parentfd, nm, RENAME_EXCHANGE) < 0)
		goto stuck;
	j->swapped = false;
	if (fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		unlinkat(j->parentfd, j->tmpname, 0);
	fsync(j->parentfd);
	return 0;
stuck:
	j->outcome = TD_MOVER_FAILED;
	j->status = -EEXIST;
	set_msg(j,
	        "the link at the original name was replaced by someone else; the original "
	        "data is kept beside it as %s",
	        j->tmpname);
	return -EEXIST;
}

static void w_prepare(struct job *j)
{
	struct td_catalog_entry e = { 0 };
	char dest[4096], readback[4096];
	struct stat tmpst;
	ssize_t n;
	int r;

	memcpy(e.sha256, j->put.sha256_hex, sizeof(e.sha256));
	e.target = j->target_name;
	e.object_key = j->key;
	e.etag = j->put.etag;
	e.version_id = j->put.version_id;
	if (set_step(j, TD_MOVER_OPENED, TD_MOVER_UPLOADED,
	             TD_CATALOG_F_SHA256 | TD_CATALOG_F_OBJECT, &e) < 0) {
		j->need_rollback = true;
		return;
	}
	hook(j, "uploaded");

	{
		char nm[256];

		memcpy(nm, j->name, j->name_len);
		nm[j->name_len] = '\0';
		if (!unchanged(j, &j->st_ref, nm)) {
			fail(j, TD_MOVER_SKIPPED, -ESTALE,
			     "changed or opened for writing during the upload; retried on a later "
			     "run");
			j->need_rollback = true;
			return;
		}
	}

	if (j->keep_cached) {
		r = make_cache_copy(j);
		if (r < 0) {
			fail(j, TD_MOVER_FAILED, r, "cannot make the cache copy: %s", strerror(-r));
			j->need_rollback = true;
			return;
		}
		/* A second link to the inode moves its ctime: compare from here on. */
		if (fstat(j->fd, &j->st_ref) < 0 || j->st_ref.st_size != j->st.st_size ||
		    j->st_ref.st_mtim.tv_sec != j->st.st_mtim.tv_sec ||
		    j->st_ref.st_mtim.tv_nsec != j->st.st_mtim.tv_nsec) {
			fail(j, TD_MOVER_SKIPPED, -ESTALE,
			     "changed during the upload; retried later");
			j->need_rollback = true;
			return;
		}
		r = td_ns_cache_path(dest, sizeof(dest), j->m->cache_dir, j->id);
	} else {
		r = td_ns_remote_path(dest, sizeof(dest), j->m->run_dir, j->id, j->name,
		                      j->name_len);
	}
	if (r == 0)
		r = td_ns_bind(j->m->state_dir, j->id, j->name, j->name_len, dest);
	if (r < 0) {
		fail(j, TD_MOVER_FAILED, r, "cannot create the dynamic link: %s", strerror(-r));
		j->need_rollback = true;
		return;
	}
	if (set_step(j, TD_MOVER_UPLOADED, TD_MOVER_LINKED, 0, NULL) < 0) {
		j->need_rollback = true;
		return;
	}
	hook(j, "linked");

	/* Step 4 is durable before the temporary name exists, so recovery knows to
	 * look for it. */
	if (set_step(j, TD_MOVER_LINKED, TD_MOVER_SWAPPING, 0, NULL) < 0) {
		j->need_rollback = true;
		return;
	}
	if (symlinkat(j->link_target, j->parentfd, j->tmpname) < 0) {
		fail(j, TD_MOVER_FAILED, -errno, "cannot create the link: %s", strerror(errno));
		j->need_rollback = true;
		return;
	}
	/* The link shows the file's owner and times in `ls -l`. */
	if (fchownat(j->parentfd, j->tmpname, j->st.st_uid, j->st.st_gid, AT_SYMLINK_NOFOLLOW) <
	    0) {
		/* Cosmetic only: the link would show root as its owner. */
	}
	{
		struct timespec ts[2] = { j->st.st_atim, j->st.st_mtim };
		utimensat(j->parentfd, j->tmpname, ts, AT_SYMLINK_NOFOLLOW);
	}
	hook(j, "swapping");
	{
		char nm[256];

		memcpy(nm, j->name, j->name_len);
		nm[j->name_len] = '\0';
		if (!unchanged(j, &j->st_ref, nm)) {
			fail(j, TD_MOVER_SKIPPED, -ESTALE,
			     "changed just before the swap; retried later");
			j->need_rollback = true;
			return;
		}
		if (renameat2(j->parentfd, j->tmpname, j->parentfd, nm, RENAME_EXCHANGE) < 0) {
			r = -errno;
			fail(j, r == -EINVAL ? TD_MOVER_SKIPPED : TD_MOVER_FAILED, r,
			     "cannot swap the file for its link: %s",
			     r == -EINVAL
			         ? "the filesystem has no atomic exchange (RENAME_EXCHANGE)"
			         : strerror(-r));
			j->need_rollback = true;
			return;
		}
		/* Check by inode what landed where; undo anything unexpected. */
		n = readlinkat(j->parentfd, nm, readback, sizeof(readback) - 1);
		if (n >= 0)
			readback[n] = '\0';
		if (fstatat(j->parentfd, j->tmpname, &tmpst, AT_SYMLINK_NOFOLLOW) < 0 ||
		    tmpst.st_dev != j->st.st_dev || tmpst.st_ino != j->st.st_ino || n < 0 ||
		    strcmp(readback, j->link_target) != 0) {
			renameat2(j->parentfd, j->tmpname, j->parentfd, nm, RENAME_EXCHANGE);
			fail(j, TD_MOVER_SKIPPED, -ESTALE,
			     "the name was replaced during the swap; put back, retried later");
			j->need_rollback = true;
			return;
		}
	}
	j->swapped = true;
	fsync(j->parentfd);
	if (fstat(j->fd, &j->st_swap) < 0)
		j->st_swap = j->st;
	memset(&e, 0, sizeof(e));
	entry_stat(&e, &j->st);
	e.size = (uint64_t)j->st_swap.st_size;
	e.mtime_ns = ts_ns(&j->st_swap.st_mtim);
	e.ctime_ns = ts_ns(&j->st_swap.st_ctim); /* the exchange moved ctime */
	if (set_step(j, TD_MOVER_SWAPPING, TD_MOVER_SWAPPED, TD_CATALOG_F_STAT, &e) < 0) {
		/* The catalog cannot say "swapped": put the file back now. */
		restore_swap(j);
		j->need_rollback = true;
		return;
	}
	hook(j, "swapped");
}

/* ---- grace period and the final step ------------------------------------- */

static void w_finish(struct job *j);
static void a_finish(struct job *j);

static void on_grace(uv_timer_t *t)
{
	struct job *j = t->data;

	j->grace_armed = false;
	run_work(j, w_finish, a_finish);
}

static void a_prepare(struct job *j)
{
	if (j->need_rollback || failed(j)) {
		rollback(j);
		return;
	}
	if (j->m->closing || j->m->o.grace_ms <= 0) {
		run_work(j, w_finish, a_finish);
		return;
	}
	if (!j->grace_init) {
		uv_timer_init(j->m->loop, &j->grace);
		j->grace.data = j;
		j->grace_init = true;
	}
	/* The grace period moves no bytes: give the transfer slot to the next
	 * file, as long as the files waiting here (two fds each) stay bounded. */
	if (!j->in_grace && j->m->n_grace < j->m->o.max_in_grace) {
		j->in_grace = true;
		j->m->n_grace++;
		pump(j->m);
	}
	j->grace_armed = true;
	uv_timer_start(&j->grace, on_grace, (uint64_t)j->m->o.grace_ms, 0);
}

static void w_finish(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_MIGRATING, .step = TD_MOVER_SWAPPED };
	struct td_catalog_entry e = { 0 };
	int r;

	if (!unchanged(j, &j->st_swap, j->tmpname)) {
		/* A writer got to the old inode around the swap: it goes back. */
		if (restore_swap(j) == 0)
			fail(j, TD_MOVER_RESTORED, -ESTALE,
			     "written to during the swap; put back in place, retried later");
		else
			j->need_rollback = false; /* keep the object: the data is in two places */
		j->need_rollback = j->need_rollback || j->outcome == TD_MOVER_RESTORED;
		return;
	}
	if (unlinkat(j->parentfd, j->tmpname, 0) < 0) {
		fail(j, TD_MOVER_FAILED, -errno, "cannot remove %s: %s", j->tmpname,
		     strerror(errno));
		restore_swap(j);
		j->need_rollback = true;
		return;
	}
	fsync(j->parentfd);
	memcpy(e.id, j->id, sizeof(e.id));
	e.state = j->keep_cached ? TD_CATALOG_CACHED : TD_CATALOG_TIERED;
	e.step = 0;
	e.tiered_ns = td_now_ns();
	e.cache_state = j->keep_cached ? TD_CATALOG_CACHE_CACHED : TD_CATALOG_CACHE_NONE;
	e.cached_bytes = j->keep_cached ? (uint64_t)j->st.st_size : 0;
	e.cache_atime_ns = e.tiered_ns;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(
	    j->m->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_TIERED | TD_CATALOG_F_CACHE, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		/* The swap is done and durable on disk; the row still says "swapped",
		 * which recovery turns into "tiered" at the next start. */
		cat_err(j, r, &ce, "final update");
		j->outcome = TD_MOVER_INTERRUPTED;
	} else {
		hook(j, "tiered");
	}
	j->swapped = false;
	release_file(j);
}

static void a_finish(struct job *j)
{
	if (j->need_rollback) {
		rollback(j);
		return;
	}
	finish(j);
}

/* ---- rollback ------------------------------------------------------------- */

static void w_undo(struct job *j);
static void a_undo(struct job *j);

static void on_deleted_manifest(void *data, struct td_target_req *req, int status,
                                const struct td_target_error *err)
{
	struct job *j = data;

	j->req = NULL;
	if (status < 0)
		j->need_rollback = true; /* keep the row so recovery deletes it later */
	else
		j->need_rollback = false;
	run_work(j, w_undo, a_undo);
}

static void on_deleted_object(void *data, struct td_target_req *req, int status,
                              const struct td_target_error *err)
{
	struct job *j = data;
	int r;

	j->req = NULL;
	if (status < 0) {
		j->need_rollback = true;
		run_work(j, w_undo, a_undo);
		return;
	}
	r = td_target_delete(j->t, &j->req, j->mkey, on_deleted_manifest, j);
	if (r < 0)
		run_work(j, w_undo, a_undo);
}

/* Undoes a migration that did not finish: deletes what went to the target
 * (when need_rollback), then the local pieces and the row. */
static void rollback(struct job *j)
{
	int r;

	if (j->need_rollback && j->t && !j->m->closing) {
		r = td_target_delete(j->t, &j->req, j->key, on_deleted_object, j);
		if (r == 0)
			return;
	}
	run_work(j, w_undo, a_undo);
}

static void w_undo(struct job *j)
{
	struct td_catalog_error ce = { 0 };
	char path[4096];
	struct stat st;

	if (j->swapped)
		restore_swap(j);
	if (j->parentfd >= 0 && j->id[0] &&
	    fstatat(j->parentfd, j->tmpname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		char rb[4096];
		ssize_t n = readlinkat(j->parentfd, j->tmpname, rb, sizeof(rb) - 1);

		if (n >= 0 && (size_t)n == strlen(j->link_target) &&
		    memcmp(rb, j->link_target, (size_t)n) == 0)
			unlinkat(j->parentfd, j->tmpname, 0);
	}
	if (j->id[0] && j->outcome != TD_MOVER_INTERRUPTED &&
	    !(j->outcome == TD_MOVER_FAILED && j->status == -EEXIST)) {
		td_ns_remove(j->m->state_dir, j->id);
		if (td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id) == 0) {
			unlink(path);
			strncat(path, ".part", sizeof(path) - strlen(path) - 1);
			unlink(path);
		}
		/* The row goes only when the target holds nothing of ours any more;
		 * otherwise it stays "migrating" and recovery retries the deletion. */
		if (j->row && !j->need_rollback) {
			uv_mutex_lock(&j->m->cat_lock);
			td_catalog_delete(j->m->cat, j->id, NULL, &ce);
			uv_mutex_unlock(&j->m->cat_lock);
		} else if (j->row) {
			set_step(j, TD_CATALOG_ANY, TD_MOVER_ROLLBACK, 0, NULL);
		}
	}
	release_file(j);
}

static void a_undo(struct job *j)
{
	finish(j);
}

/* ---- job lifetime ------------------------------------------------------------- */

static void on_job_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	struct td_mover *m = j->m;

	job_free(j);
	pump(m);
}

static void finish(struct job *j)
{
	struct td_mover *m = j->m;
	struct recover *rc = j->recovering ? m->recovering : NULL;
	struct td_mover_result res = {
		.outcome = j->outcome,
		.status = j->status,
		.id = j->id,
		.path = j->path ? j->path : "",
		.path_len = j->path_len,
		.size_bytes = (uint64_t)j->st.st_size,
	};

	memcpy(res.message, j->msg, sizeof(res.message));
	if (j->outcome == TD_MOVER_TIERED && !res.message[0])
		snprintf(res.message, sizeof(res.message), "tiered as %s", j->id);
	if (j->prev)
		j->prev->next = j->next;
	else if (m->active == j)
		m->active = j->next;
	if (j->next)
		j->next->prev = j->prev;
	m->n_active--;
	if (j->in_grace)
		m->n_grace--;
	if (j->cb)
		j->cb(j->data, &res);
	if (j->grace_init) {
		uv_close((uv_handle_t *)&j->grace, on_job_closed);
		return;
	}
	job_free(j);
	pump(m); /* while rc is set, this never frees m */
	if (rc)
		recover_next(rc);
}

static void maybe_closed(struct td_mover *m)
{
	if (!m->closing || m->n_active || m->recovering || !m->close_cb)
		return;
	void (*cb)(void *) = m->close_cb;
	void *data = m->close_data;

	m->close_cb = NULL;
	td_catalog_close(m->cat);
	uv_mutex_destroy(&m->cat_lock);
	free(m->state_dir);
	free(m->cache_dir);
	free(m->run_dir);
	free(m);
	cb(data);
}

static void w_recover(struct job *j);
static void w_recall_recover(struct job *j);

static void start_job(struct td_mover *m, struct job *j)
{
	struct job *next = m->active;

	j->prev = NULL;
	if (next)
		next->prev = j;
	m->active = j;
	m->n_active++;
	j->next = next;
	if (j->recovering && j->recalling) {
		run_work(j, w_recall_recover, a_finish);
	} else if (j->recovering) {
		run_work(j, w_recover, a_finish);
	} else if (m->o.target_usable && !m->o.target_usable(m->o.ctx, j->target_name)) {
		fail(j, TD_MOVER_SKIPPED, -EHOSTDOWN,
		     "target %s is unreachable; retried when it is back", j->target_name);
		run_work(j, w_undo, a_undo);
	} else {
		run_work(j, w_open, a_open);
	}
}

static void pump(struct td_mover *m)
{
	while (!m->closing && m->queue_head && m->n_active - m->n_grace < m->o.max_transfers) {
		struct job *j = m->queue_head;

		m->queue_head = j->next;
		if (!m->queue_head)
			m->queue_tail = NULL;
		m->n_queued--;
		start_job(m, j);
	}
	maybe_closed(m);
}

/* ---- public API ------------------------------------------------------------- */

int td_mover_new(struct td_mover **out, const struct td_mover_opts *o, char *err, size_t errlen)
{
	struct td_catalog_error ce = { 0 };
	struct td_mover *m;
	int r;

	if (!o->loop || !o->catalog_path || !o->state_dir || !o->cache_dir || !o->run_dir ||
	    !o->target_for || o->max_transfers == 0) {
		snprintf(err, errlen, "mover: missing options");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = o->loop;
	m->o = *o;
	if (!m->o.max_queued)
		m->o.max_queued = 10000;
	if (!m->o.max_in_grace)
		m->o.max_in_grace = MAX_IN_GRACE;
	m->state_dir = strdup(o->state_dir);
	m->cache_dir = strdup(o->cache_dir);
	m->run_dir = strdup(o->run_dir);
	if (!m->state_dir || !m->cache_dir || !m->run_dir) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r = td_catalog_open(&m->cat, o->catalog_path, TD_CATALOG_CREATE, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message[0] ? ce.message : strerror(-r));
		goto fail;
	}
	uv_mutex_init(&m->cat_lock);
	*out = m;
	return 0;
fail:
	free(m->state_dir);
	free(m->cache_dir);
	free(m->run_dir);
	free(m);
	return r;
}

int td_mover_migrate(struct td_mover *m, const struct td_mover_file *f, td_mover_cb cb, void *data)
{
	struct job *j;
	int r;

	if (m->closing)
		return -ESHUTDOWN;
	if (m->n_queued >= m->o.max_queued)
		return -EAGAIN;
	if (!f->root || f->root[0] != '/' || !f->rel || !f->target || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->m = m;
	j->fd = j->parentfd = -1;
	atomic_init(&j->lease_broken, false);
	r = job_set_path(j, f->root, f->rel, f->rel_len);
	if (r < 0) {
		job_free(j);
		return r;
	}
	j->policy = f->policy ? strdup(f->policy) : NULL;
	j->target_name = strdup(f->target);
	if (!j->target_name || (f->policy && !j->policy)) {
		job_free(j);
		return -ENOMEM;
	}
	j->keep_cached = f->keep_cached;
	j->check_stat = f->check_stat;
	j->exp_dev = f->dev;
	j->exp_ino = f->ino;
	j->exp_size = f->size_bytes;
	j->exp_mtime_ns = f->mtime_ns;
	j->exp_ctime_ns = f->ctime_ns;
	j->cb = cb;
	j->data = data;
	j->t = m->o.target_for(m->o.ctx, j->target_name);
	if (!j->t) {
		job_free(j);
		return -ENOENT;
	}
	if (m->queue_tail)
		m->queue_tail->next = j;
	else
		m->queue_head = j;
	m->queue_tail = j;
	m->n_queued++;
	pump(m);
	return 0;
}

unsigned td_mover_in_flight(const struct td_mover *m)
{
	return m->n_active;
}

unsigned td_mover_queued(const struct td_mover *m)
{
	return m->n_queued;
}

void td_mover_check_leases(struct td_mover *m)
{
	for (struct job *j = m->active; j; j = j->next) {
		if (j->fd < 0 || !j->leased || atomic_load(&j->lease_broken))
			continue;
		if (fcntl(j->fd, F_GETLEASE) == F_RDLCK)
			continue;
		atomic_store(&j->lease_broken, true);
		if (j->req) {
			/* Still uploading: give the file back to the writer now. */
			fcntl(j->fd, F_SETLEASE, F_UNLCK);
			j->leased = false;
			td_target_cancel(j->req);
		} else if (j->grace_armed) {
			uv_timer_stop(&j->grace);
			j->grace_armed = false;
			run_work(j, w_finish, a_finish);
		}
		/* Otherwise a blocking step is running; it checks lease_broken. */
	}
}

void td_mover_close(struct td_mover *m, void (*close_cb)(void *data), void *data)
{
	struct job *j, *next;

	m->closing = true;
	m->close_cb = close_cb;
	m->close_data = data;
	for (j = m->queue_head; j; j = next) {
		struct td_mover_result res = { .outcome = TD_MOVER_SKIPPED,
			                       .status = -ESHUTDOWN,
			                       .id = "",
			                       .path = j->path,
			                       .path_len = j->path_len };

		next = j->next;
		snprintf(res.message, sizeof(res.message), "tierd is stopping");
		j->cb(j->data, &res);
		job_free(j);
	}
	m->queue_head = m->queue_tail = NULL;
	m->n_queued = 0;
	for (j = m->active; j; j = j->next) {
		if (j->req)
			td_target_cancel(j->req);
		else if (j->grace_armed) {
			uv_timer_stop(&j->grace);
			j->grace_armed = false;
			run_work(j, w_finish, a_finish);
		}
	}
	maybe_closed(m);
}

/* ---- recovery after a crash ------------------------------------------------- */

static void w_recover(struct job *j)
{
	const struct td_catalog_entry *e = j->entry;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry fin = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_MIGRATING, .step = TD_CATALOG_ANY };
	char nm[256], rb[4096], dest[4096];
	struct stat tst;
	bool ours_at_name = false;
	ssize_t n;
	int r, step = e->step;

	j->row = true;
	j->step = step;
	j->st.st_dev = (dev_t)e->dev;
	j->st.st_ino = (ino_t)e->ino;
	j->st.st_size = (off_t)e->size;
	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	j->parentfd = open_parent(j->root, j->rel, j->rel_len);
	if (j->parentfd >= 0) {
		n = readlinkat(j->parentfd, nm, rb, sizeof(rb) - 1);
		ours_at_name = n >= 0 && (size_t)n == strlen(j->link_target) &&
		               memcmp(rb, j->link_target, (size_t)n) == 0;
	}
	if (step < TD_MOVER_SWAPPING || step == TD_MOVER_ROLLBACK ||
	    (step == TD_MOVER_SWAPPING && j->parentfd >= 0 && !ours_at_name)) {
		/* The file was never swapped: undo the rest. */
		fail(j, TD_MOVER_SKIPPED, 0, "rolled back an unfinished migration");
		j->need_rollback = true;
		return;
	}
	if (j->parentfd < 0) {
		fail(j, TD_MOVER_FAILED, -EUCLEAN,
		     "cannot reach its directory to finish the swap: %s; left for the admin",
		     strerror(-j->parentfd));
		goto left;
	}
	/* Swapped: the old inode is at tmpname, or already unlinked. */
	if (fstatat(j->parentfd, j->tmpname, &tst, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(tst.st_mode) || tst.st_ino != (ino_t)e->ino ||
		    tst.st_dev != (dev_t)e->dev) {
			fail(j, TD_MOVER_FAILED, -EUCLEAN,
			     "%s is not the file we moved; left for "
			     "the admin",
			     j->tmpname);
			goto left;
		}
		if (!ours_at_name) {
			fail(j, TD_MOVER_FAILED, -EUCLEAN,
			     "the name no longer holds our link; the data is kept as %s",
			     j->tmpname);
			goto left;
		}
		if (step == TD_MOVER_SWAPPING || (uint64_t)tst.st_size != e->size ||
		    ts_ns(&tst.st_mtim) != e->mtime_ns || ts_ns(&tst.st_ctim) != e->ctime_ns) {
			/* Swapping (its post-swap times were never recorded) or written
			 * to since: the file goes back, the migration is undone. */
			j->swapped = true;
			if (restore_swap(j) < 0)
				goto left;
			fail(j, TD_MOVER_RESTORED, 0, "put back an unfinished swap");
			j->need_rollback = true;
			return;
		}
		if (unlinkat(j->parentfd, j->tmpname, 0) < 0) {
			fail(j, TD_MOVER_FAILED, -errno, "cannot remove %s: %s", j->tmpname,
			     strerror(errno));
			goto left;
		}
		fsync(j->parentfd);
	} else if (!ours_at_name) {
		fail(j, TD_MOVER_FAILED, -EUCLEAN,
		     "neither the file nor its link is where the catalog says; left for the admin");
		goto left;
	}
	/* Finished: the name holds our link and the old name is gone. */
	r = td_ns_read(j->m->state_dir, j->id, j->name, j->name_len, dest, sizeof(dest));
	memcpy(fin.id, j->id, sizeof(fin.id));
	fin.state = TD_CATALOG_TIERED;
	fin.cache_state = TD_CATALOG_CACHE_NONE;
	if (r > 0 && strncmp(dest, j->m->cache_dir, strlen(j->m->cache_dir)) == 0) {
		fin.state = TD_CATALOG_CACHED;
		fin.cache_state = TD_CATALOG_CACHE_CACHED;
		fin.cached_bytes = e->size;
	}
	fin.step = 0;
	fin.tiered_ns = td_now_ns();
	fin.cache_atime_ns = fin.tiered_ns;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(j->m->cat, &fin,
	                      TD_CATALOG_F_STATE | TD_CATALOG_F_TIERED | TD_CATALOG_F_CACHE, &ex,
	                      &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0)
		cat_err(j, r, &ce, "final update");
	else
		set_msg(j, "finished an interrupted migration");
	release_file(j);
	return;
left:
	uv_mutex_lock(&j->m->cat_lock);
	td_catalog_add_error(j->m->cat, j->id, j->msg, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	release_file(j);
}

static void rc_job_done(void *data, const struct td_mover_result *res)
{
	struct recover *rc = data;

	if (res->outcome == TD_MOVER_TIERED)
		rc->finished++;
	else if (res->status == -EUCLEAN || res->status == -EEXIST ||
	         res->outcome == TD_MOVER_INTERRUPTED)
		rc->left++;
	else if (res->outcome == TD_MOVER_FAILED)
		rc->left++;
	else
		rc->rolled_back++;
}

static int rc_collect(void *userdata, const struct td_catalog_entry *e)
{
	struct recover *rc = userdata;

	if (rc->n_page >= RECOVER_PAGE)
		return 1;
	rc->visited++;
	snprintf(rc->last_seen, sizeof(rc->last_seen), "%s", e->id);
	if (rc->rollbacks_only && e->step != TD_MOVER_ROLLBACK)
		return 0;
	/* Copied after the walk: entries are valid only during the callback. */
	rc->page[rc->n_page] = (struct td_catalog_entry *)strdup(e->id);
	if (!rc->page[rc->n_page])
		return -ENOMEM;
	rc->n_page++;
	return 0;
}

static void w_load_page(uv_work_t *w)
{
	struct recover *rc = w->data;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_filter f = { .state =
		                           rc->pass ? TD_CATALOG_RECALLING : TD_CATALOG_MIGRATING,
		                       .after_id = rc->after_id[0] ? rc->after_id : NULL,
		                       .limit = RECOVER_PAGE };
	int r;

	rc->n_page = rc->next = rc->visited = 0;
	uv_mutex_lock(&rc->m->cat_lock);
	r = td_catalog_foreach(rc->m->cat, &f, rc_collect, rc, &ce);
	/* Turn the collected ids into full copies. */
	for (size_t i = 0; r >= 0 && i < rc->n_page; i++) {
		char *id = (char *)rc->page[i];
		struct td_catalog_entry *e = NULL;

		snprintf(rc->after_id, sizeof(rc->after_id), "%s", id);
		r = td_catalog_get(&e, rc->m->cat, id, &ce);
		free(id);
		rc->page[i] = r == 0 ? e : NULL;
		if (r == -ENOENT)
			r = 0;
	}
	uv_mutex_unlock(&rc->m->cat_lock);
	if (r < 0)
		rc->status = r;
	if (rc->last_seen[0])
		memcpy(rc->after_id, rc->last_seen, sizeof(rc->after_id));
	rc->eof = rc->n_page < RECOVER_PAGE && rc->visited < RECOVER_PAGE;
}

static void a_load_page(uv_work_t *w, int status)
{
	struct recover *rc = w->data;

	if (status < 0)
		rc->status = status;
	recover_next(rc);
}

static void rc_free(struct recover *rc)
{
	for (size_t i = rc->next; i < rc->n_page; i++)
		td_catalog_entry_free(rc->page[i]);
	for (size_t i = 0; i < rc->n_roots; i++)
		free(rc->roots[i]);
	free(rc->roots);
	free(rc);
}

static void rc_one_done(void *data, const struct td_mover_result *res);

static bool active_id(const struct td_mover *m, const char *id)
{
	for (const struct job *j = m->active; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			return true;
	return false;
}

/* Recovery runs one row at a time: it happens once, at start-up, before any
 * new migration, and a crash leaves at most max_transfers rows behind. */
static void recover_next(struct recover *rc)
{
	struct td_mover *m = rc->m;

	if (m->closing && rc->status == 0)
		rc->status = -ESHUTDOWN; /* what is left waits for the next start */

	while (rc->next < rc->n_page && rc->status == 0) {
		struct td_catalog_entry *e = rc->page[rc->next++];
		const char *root;
		struct job *j;

		if (!e)
			continue;
		if (active_id(m, e->id)) { /* its own job is still finishing */
			td_catalog_entry_free(e);
			continue;
		}
		root = td_policy_root_of((const char *const *)rc->roots, rc->n_roots, e->path,
		                         e->path_len);
		j = calloc(1, sizeof(*j));
		if (!j) {
			td_catalog_entry_free(e);
			rc->status = -ENOMEM;
			break;
		}
		j->m = m;
		j->fd = j->parentfd = -1;
		j->recovering = true;
		j->recalling = rc->pass == 1;
		j->entry = e;
		atomic_init(&j->lease_broken, false);
		if (!root ||
		    job_set_path(j, root, e->path + strlen(root) + 1,
		                 e->path_len - strlen(root) - 1) < 0 ||
		    job_set_id(j, e->id) < 0 ||
		    !(j->target_name = strdup(e->target ? e->target : "")) ||
		    !(j->t = m->o.target_for(m->o.ctx, j->target_name))) {
			struct td_catalog_error ce = { 0 };

			uv_mutex_lock(&m->cat_lock);
			td_catalog_add_error(m->cat, e->id,
			                     !root ? "recovery: no policy root contains this path"
			                           : "recovery: its target is not configured",
			                     &ce);
			uv_mutex_unlock(&m->cat_lock);
			rc->left++;
			job_free(j);
			continue;
		}
		j->policy = e->policy ? strdup(e->policy) : NULL;
		j->cb = rc_one_done;
		j->data = rc;
		start_job(m, j);
		return;
	}
	if (rc->status == 0 && rc->eof && rc->pass == 0 && !rc->rollbacks_only) {
		rc->pass = 1;
		rc->eof = false;
		rc->after_id[0] = '\0';
		rc->last_seen[0] = '\0';
	}
	if (rc->status == 0 && !rc->eof) {
		rc->work.data = rc;
		if (uv_queue_work(m->loop, &rc->work, w_load_page, a_load_page) == 0)
			return;
		rc->status = -EAGAIN;
	}
	m->recovering = NULL;
	rc->done(rc->data, rc->status, rc->finished, rc->rolled_back, rc->left);
	rc_free(rc);
	maybe_closed(m);
}

static void rc_one_done(void *data, const struct td_mover_result *res)
{
	rc_job_done(data, res);
}

static int start_recover(struct td_mover *m, const char *const *roots, size_t n_roots,
                         bool rollbacks_only,
                         void (*done)(void *data, int status, unsigned finished,
                                      unsigned rolled_back, unsigned left),
                         void *data)
{
	struct recover *rc;

	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->m = m;
	rc->done = done;
	rc->data = data;
	rc->rollbacks_only = rollbacks_only;
	rc->roots = calloc(n_roots ? n_roots : 1, sizeof(char *));
	if (!rc->roots) {
		free(rc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_roots; i++) {
		rc->roots[i] = strdup(roots[i]);
		if (!rc->roots[i]) {
			rc->n_roots = i;
			rc_free(rc);
			return -ENOMEM;
		}
	}
	rc->n_roots = n_roots;
	rc->work.data = rc;
	m->recovering = rc;
	if (uv_queue_work(m->loop, &rc->work, w_load_page, a_load_page) < 0) {
		m->recovering = NULL;
		rc_free(rc);
		return -EAGAIN;
	}
	return 0;
}

int td_mover_recover(struct td_mover *m, const char *const *roots, size_t n_roots,
                     void (*done)(void *data, int status, unsigned finished, unsigned rolled_back,
                                  unsigned left),
                     void *data)
{
	if (m->recovering || m->n_active || m->closing || !done)
		return -EBUSY;
	return start_recover(m, roots, n_roots, false, done, data);
}

int td_mover_retry_rollbacks(struct td_mover *m, const char *const *roots, size_t n_roots,
                             void (*done)(void *data, int status, unsigned finished,
                                          unsigned rolled_back, unsigned left),
                             void *data)
{
	if (m->recovering || m->closing || !done)
		return -EBUSY;
	return start_recover(m, roots, n_roots, true, done, data);
}

/* ---- recall: the cache copy goes back in place of the link --------------------- */

static int recall_finish(struct job *j, bool unlink_copy)
{
	struct td_catalog_error ce = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_RECALLING, .step = TD_CATALOG_ANY };
	struct td_catalog_entry e = { 0 };
	char path[4096];
	int r;

	fsync(j->parentfd);
	td_ns_remove(j->m->state_dir, j->id);
	if (unlink_copy && td_ns_cache_path(path, sizeof(path), j->m->cache_dir, j->id) == 0)
		unlink(path);
	memcpy(e.id, j->id, sizeof(e.id));
	e.state = TD_CATALOG_LOCAL;
	e.step = 0;
	e.cache_state = TD_CATALOG_CACHE_NONE;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(j->m->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0)
		return cat_err(j, r, &ce, "final update");
	hook(j, "recalled");
	set_msg(j, "recalled to primary storage");
	return 0;
}

/* The placed file (inode `ino`) at tmpname is exchanged with our link at the
 * name, and checked by inode; anything unexpected is undone. */
static int recall_exchange(struct job *j, ino_t ino)
{
	char nm[256], rb[4096];
	struct stat st;
	ssize_t n;

	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	if (renameat2(j->parentfd, j->tmpname, j->parentfd, nm, RENAME_EXCHANGE) < 0) {
		fail(j, TD_MOVER_FAILED, -errno, "cannot put the file back: %s", strerror(errno));
		return -errno;
	}
	n = readlinkat(j->parentfd, j->tmpname, rb, sizeof(rb) - 1);
	if (fstatat(j->parentfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != ino || n < 0 ||
	    (size_t)n != strlen(j->link_target) || memcmp(rb, j->link_target, (size_t)n) != 0) {
		renameat2(j->parentfd, j->tmpname, j->parentfd, nm, RENAME_EXCHANGE);
		fail(j, TD_MOVER_FAILED, -ESTALE, "the name changed during the recall; undone");
		return -ESTALE;
	}
	unlinkat(j->parentfd, j->tmpname, 0);
	return 0;
}

static bool link_at_name(struct job *j)
{
	char nm[256], rb[4096];
	ssize_t n;

	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	n = readlinkat(j->parentfd, nm, rb, sizeof(rb) - 1);
	return n >= 0 && (size_t)n == strlen(j->link_target) &&
	       memcmp(rb, j->link_target, (size_t)n) == 0;
}

/* Copies the cache copy into a new file at tmpname (another filesystem). */
static int recall_copy_across(struct job *j, ino_t *ino_out)
{
	struct timespec ts[2] = { j->st.st_atim, j->st.st_mtim };
	char *buf = malloc(1 << 20);
	struct stat after;
	uint64_t off = 0;
	int out, r = 0;

	if (!buf)
		return -ENOMEM;
	out = openat(j->parentfd, j->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	             0600);
	if (out < 0) {
		free(buf);
		return -errno;
	}
	while (r == 0 && off < (uint64_t)j->st.st_size) {
		ssize_t n = pread(j->fd, buf, 1 << 20, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		r = td_write_full(out, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (r == 0 &&
	    (fchown(out, j->st.st_uid, j->st.st_gid) < 0 ||
	     fchmod(out, j->st.st_mode & 07777) < 0 || futimens(out, ts) < 0 || fsync(out) < 0))
		r = -errno;
	/* A write to the copy while it was being copied: not this time. */
	if (r == 0 && (fstat(j->fd, &after) < 0 || !same_content(&after, &j->st) ||
	               (j->leased && fcntl(j->fd, F_GETLEASE) != F_RDLCK)))
		r = -EBUSY;
	if (r == 0) {
		struct stat st;

		fstat(out, &st);
		*ino_out = st.st_ino;
	}
	close(out);
	if (r < 0)
		unlinkat(j->parentfd, j->tmpname, 0);
	free(buf);
	return r;
}

static void w_recall(struct job *j)
{
	const char *root = NULL;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry e = { 0 };
	struct td_catalog_expect ex = { .step = TD_CATALOG_ANY };
	char copy[4096];
	struct stat pst;
	ino_t placed = 0;
	bool same_fs;
	int r;

	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_get(&j->entry, j->m->cat, j->id, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		fail(j, TD_MOVER_FAILED, r, "no catalog entry %s", j->id);
		return;
	}
	root = td_policy_root_of((const char *const *)j->roots, j->n_roots, j->entry->path,
	                         j->entry->path_len);
	if (!root) {
		fail(j, TD_MOVER_FAILED, -ENOENT, "its path is below no policy root");
		return;
	}
	td_ns_cache_path(copy, sizeof(copy), j->m->cache_dir, j->id);
	/* A tiered row with a copy: written through the view before the catalog
	 * heard of the copy. It is the newest version; recall it. */
	if (j->entry->state == TD_CATALOG_TIERED && access(copy, F_OK) == 0) {
		j->entry->state = TD_CATALOG_DIRTY;
		j->entry_was_tiered = true;
	}
	if (j->entry->state != TD_CATALOG_CACHED && j->entry->state != TD_CATALOG_DIRTY) {
		fail(j, TD_MOVER_SKIPPED, -EINVAL, "not in the cache (state %s): hydrate it first",
		     td_catalog_state_name(j->entry->state));
		return;
	}
	if (job_set_path(j, root, j->entry->path + strlen(root) + 1,
	                 j->entry->path_len - strlen(root) - 1) < 0 ||
	    job_set_id(j, j->id) < 0) {
		fail(j, TD_MOVER_FAILED, -EINVAL, "its path is not below %s", j->root);
		return;
	}
	td_ns_cache_path(copy, sizeof(copy), j->m->cache_dir, j->id);
	j->fd = open(copy, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &j->st) < 0 || !S_ISREG(j->st.st_mode)) {
		fail(j, TD_MOVER_FAILED, -ENOENT, "its cache copy is missing");
		return;
	}
	if (fcntl(j->fd, F_SETLEASE, F_RDLCK) == 0)
		j->leased = true;
	else if (errno == EAGAIN || errno == EBUSY) {
		fail(j, TD_MOVER_SKIPPED, -EBUSY, "open for writing; recalled once closed");
		return;
	}
	j->parentfd = open_parent(j->root, j->rel, j->rel_len);
	if (j->parentfd < 0 || !link_at_name(j)) {
		struct td_catalog_entry pin = { 0 };

		memcpy(pin.id, j->id, sizeof(pin.id));
		pin.pinned = true;
		uv_mutex_lock(&j->m->cat_lock);
		td_catalog_update(j->m->cat, &pin, TD_CATALOG_F_PIN, NULL, &ce);
		td_catalog_add_error(j->m->cat, j->id,
		                     "recall: the link is no longer at its path; the copy is kept "
		                     "(pinned) in the cache",
		                     &ce);
		uv_mutex_unlock(&j->m->cat_lock);
		fail(j, TD_MOVER_FAILED, -ESTALE,
		     "the link is no longer at its path; the copy stays pinned in the cache");
		return;
	}
	/* Step 1: the copy's identity goes in the row before it moves. */
	memcpy(e.id, j->id, sizeof(e.id));
	e.state = TD_CATALOG_RECALLING;
	e.step = TD_RECALL_STARTED;
	entry_stat(&e, &j->st);
	ex.state = j->entry_was_tiered ? TD_CATALOG_TIERED : (int)j->entry->state;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(j->m->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_STAT, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		cat_err(j, r, &ce, "start the recall");
		return;
	}
	j->row = true;
	hook(j, "recall_started");
	same_fs = fstat(j->parentfd, &pst) == 0 && pst.st_dev == j->st.st_dev;
	if (same_fs) {
		if (renameat(AT_FDCWD, copy, j->parentfd, j->tmpname) < 0) {
			fail(j, TD_MOVER_FAILED, -errno, "cannot move the copy: %s",
			     strerror(errno));
			goto revert;
		}
		placed = j->st.st_ino;
	} else {
		r = recall_copy_across(j, &placed);
		if (r < 0) {
			fail(j, r == -EBUSY ? TD_MOVER_SKIPPED : TD_MOVER_FAILED, r,
			     "cannot copy it back: %s", strerror(-r));
			goto revert;
		}
	}
	e.state = TD_CATALOG_RECALLING;
	e.step = TD_RECALL_PLACED;
	e.ino = (uint64_t)placed;
	e.dev = (uint64_t)pst.st_dev;
	ex.state = TD_CATALOG_RECALLING;
	uv_mutex_lock(&j->m->cat_lock);
	r = td_catalog_update(j->m->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_STAT, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	if (r < 0) {
		/* Cannot record it: put the copy back where it was. */
		if (same_fs)
			renameat(j->parentfd, j->tmpname, AT_FDCWD, copy);
		else
			unlinkat(j->parentfd, j->tmpname, 0);
		cat_err(j, r, &ce, "record the recall");
		goto revert;
	}
	hook(j, "recall_placed");
	if (recall_exchange(j, placed) < 0) {
		/* The name is not ours to replace after all: the data goes back to
		 * the cache (same fs) or is dropped (it is only a copy). */
		if (same_fs)
			renameat(j->parentfd, j->tmpname, AT_FDCWD, copy);
		else
			unlinkat(j->parentfd, j->tmpname, 0);
		goto revert;
	}
	if (recall_finish(j, !same_fs) == 0)
		j->outcome = TD_MOVER_TIERED; /* "done" */
	release_file(j);
	return;
revert:
	e.state = TD_CATALOG_DIRTY; /* the copy still has to go back */
	e.step = 0;
	ex.state = TD_CATALOG_RECALLING;
	uv_mutex_lock(&j->m->cat_lock);
	td_catalog_update(j->m->cat, &e, TD_CATALOG_F_STATE, &ex, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	release_file(j);
}

static void a_recall(struct job *j)
{
	finish(j);
}

int td_mover_recall(struct td_mover *m, const char *id, const char *const *roots, size_t n_roots,
                    td_mover_cb cb, void *data)
{
	struct job *j;

	if (m->closing)
		return -ESHUTDOWN;
	if (!td_ns_valid_id(id) || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->m = m;
	j->fd = j->parentfd = -1;
	atomic_init(&j->lease_broken, false);
	memcpy(j->id, id, TD_CATALOG_ID_HEX);
	j->roots = calloc(n_roots ? n_roots : 1, sizeof(char *));
	for (size_t i = 0; j->roots && i < n_roots; i++)
		if ((j->roots[i] = strdup(roots[i])))
			j->n_roots++;
	j->cb = cb;
	j->data = data;
	j->recalling = true;
	j->next = m->active;
	if (m->active)
		m->active->prev = j;
	m->active = j;
	m->n_active++;
	run_work(j, w_recall, a_recall);
	return 0;
}

/* Recovery of a recall a crash interrupted. */
static void w_recall_recover(struct job *j)
{
	const struct td_catalog_entry *e = j->entry;
	struct td_catalog_error ce = { 0 };
	struct td_catalog_entry upd = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_RECALLING, .step = TD_CATALOG_ANY };
	char copy[4096], nm[256];
	struct stat st, tst;
	bool name_is_file, tmp_is_file;

	j->row = true;
	td_ns_cache_path(copy, sizeof(copy), j->m->cache_dir, j->id);
	j->parentfd = open_parent(j->root, j->rel, j->rel_len);
	if (j->parentfd < 0) {
		fail(j, TD_MOVER_FAILED, -EUCLEAN, "recall: cannot reach its directory");
		goto left;
	}
	memcpy(nm, j->name, j->name_len);
	nm[j->name_len] = '\0';
	name_is_file = fstatat(j->parentfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	               S_ISREG(st.st_mode) && st.st_ino == (ino_t)e->ino;
	tmp_is_file = fstatat(j->parentfd, j->tmpname, &tst, AT_SYMLINK_NOFOLLOW) == 0 &&
	              S_ISREG(tst.st_mode) && tst.st_ino == (ino_t)e->ino;
	if (name_is_file) {
		/* The exchange happened; only the tidying was left. */
		struct stat lst;

		if (fstatat(j->parentfd, j->tmpname, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(lst.st_mode))
			unlinkat(j->parentfd, j->tmpname, 0);
		if (recall_finish(j, true) == 0)
			j->outcome = TD_MOVER_TIERED;
		return;
	}
	if (tmp_is_file && link_at_name(j)) {
		if (recall_exchange(j, (ino_t)e->ino) == 0 && recall_finish(j, true) == 0) {
			j->outcome = TD_MOVER_TIERED;
			return;
		}
		goto left;
	}
	if (access(copy, F_OK) == 0 && link_at_name(j)) {
		/* Nothing moved yet: the copy still has to go back. */
		memcpy(upd.id, j->id, sizeof(upd.id));
		upd.state = TD_CATALOG_DIRTY;
		uv_mutex_lock(&j->m->cat_lock);
		td_catalog_update(j->m->cat, &upd, TD_CATALOG_F_STATE, &ex, &ce);
		uv_mutex_unlock(&j->m->cat_lock);
		fail(j, TD_MOVER_SKIPPED, 0, "recall not started; will be retried");
		return;
	}
	fail(j, TD_MOVER_FAILED, -EUCLEAN,
	     "recall: neither the copy nor the link is where "
	     "expected; left for the admin");
left:
	uv_mutex_lock(&j->m->cat_lock);
	td_catalog_add_error(j->m->cat, j->id, j->msg, &ce);
	uv_mutex_unlock(&j->m->cat_lock);
	release_file(j);
}
