/*
 * scan — see scan.h.
 *
 * Threads: td_scan_run()'s caller (progress, final watermark delivery) and
 * `threads` workers. Workers take directory items from a bounded shared queue;
 * when it is full, a worker keeps the new items on its own LIFO stack, so the
 * walk degrades into a depth-first one whose frontier is proportional to the
 * tree's depth times its fan-out, never to the file count. Items carry the
 * root-relative path; the directory is re-opened beneath the root fd with
 * symlinks refused at every component (td_fsat_open_dir), which is what makes
 * a concurrent "replace a directory with a symlink to /etc" harmless.
 */
#include "scan.h"
#include "fsat.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DENTS_BUF (64 * 1024)

/* Every directory the walk queues can be reopened by fsat. */
_Static_assert(TD_SCAN_PATH_MAX <= TD_FSAT_PATH_MAX, "scan paths fit fsat's limit");

struct dir_item {
	size_t root;
	size_t len;
	char path[]; /* root-relative, NUL-terminated; "" is the root itself */
};

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

struct sel_entry {
	int64_t age_ns;
	uint64_t size;
	size_t root;
	size_t len;
	uint64_t dev, ino;
	struct td_file_meta meta;
	char *path;
};

struct devino {
	dev_t dev;
	ino_t ino;
};

struct scan {
	const struct td_scan_opts *o;
	const struct td_policy_conf *conf;
	size_t n_roots;
	const char *const *roots;
	int *root_fd;
	dev_t *root_dev;
	struct devino own[3];
	size_t n_own;
	char *links_prefix;
	size_t links_prefix_len;
	unsigned statx_mask;

	pthread_mutex_t lock;
	pthread_cond_t cond;      /* queue became non-empty, or all done */
	pthread_cond_t done_cond; /* pending reached 0 */
	struct dir_item **q;
	size_t q_cap, q_head, q_n;
	size_t pending; /* items queued anywhere or being processed */
	bool fatal;
	int fatal_err;

	_Atomic uint64_t files_seen, dirs_seen;
	/* streaming run limits */
	_Atomic uint64_t lim_files, lim_bytes;

	/* watermark selection: a min-heap on age, root = the least cold kept */
	bool wm;
	uint64_t wm_needed;
	pthread_mutex_t sel_lock;
	struct sel_entry *sel;
	size_t sel_n, sel_cap;
	uint64_t sel_sum;
	uint64_t sel_dropped;
};

struct worker {
	struct scan *s;
	pthread_t tid;
	struct td_scan_stats st;
	struct dir_item **stack; /* [st_lo, st_n): popped at the top, shared from the bottom */
	size_t st_lo, st_n, st_cap;
	char *path;
	size_t path_cap;
	char *dents;
	int err;
};

static struct dir_item *item_new(size_t root, const char *path, size_t len)
{
	struct dir_item *it = malloc(sizeof(*it) + len + 1);

	if (!it)
		return NULL;
	it->root = root;
	it->len = len;
	memcpy(it->path, path, len);
	it->path[len] = '\0';
	return it;
}

/* Queues a new item: shared queue if there is room, else the worker's stack.
 * Returns 0 or -ENOMEM. */
static int push_item(struct worker *w, struct dir_item *it)
{
	struct scan *s = w->s;
	bool shared = false;

	pthread_mutex_lock(&s->lock);
	s->pending++;
	if (s->q_n < s->q_cap) {
		s->q[(s->q_head + s->q_n) % s->q_cap] = it;
		s->q_n++;
		shared = true;
		pthread_cond_signal(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	if (shared)
		return 0;
	if (w->st_n == w->st_cap && w->st_lo > 0) {
		memmove(w->stack, w->stack + w->st_lo, (w->st_n - w->st_lo) * sizeof(*w->stack));
		w->st_n -= w->st_lo;
		w->st_lo = 0;
	}
	if (w->st_n == w->st_cap) {
		size_t ncap = w->st_cap ? w->st_cap * 2 : 64;
		struct dir_item **n = realloc(w->stack, ncap * sizeof(*n));
		if (!n) {
			pthread_mutex_lock(&s->lock);
			s->pending--;
			pthread_mutex_unlock(&s->lock);
			free(it);
			return -ENOMEM;
		}
		w->stack = n;
		w->st_cap = ncap;
	}
	w->stack[w->st_n++] = it;
	return 0;
}

/* Next item for this worker, or NULL when the walk is over. */
static struct dir_item *pop_item(struct worker *w)
{
	struct scan *s = w->s;
	struct dir_item *it = NULL;

	pthread_mutex_lock(&s->lock);
	/* Share the oldest local items while other workers may be idle. */
	while (w->st_n - w->st_lo > 1 && s->q_n < s->q_cap / 2) {
		s->q[(s->q_head + s->q_n) % s->q_cap] = w->stack[w->st_lo++];
		s->q_n++;
		pthread_cond_signal(&s->cond);
	}
	if (w->st_n > w->st_lo) {
		it = w->stack[--w->st_n];
		if (w->st_n == w->st_lo)
			w->st_n = w->st_lo = 0;
		goto out;
	}
	while (s->q_n == 0 && s->pending > 0 && !s->fatal)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->q_n > 0 && !s->fatal) {
		it = s->q[s->q_head];
		s->q_head = (s->q_head + 1) % s->q_cap;
		s->q_n--;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return it;
}

static void item_done(struct scan *s)
{
	pthread_mutex_lock(&s->lock);
	if (--s->pending == 0) {
		pthread_cond_broadcast(&s->cond);
		pthread_cond_broadcast(&s->done_cond);
	}
	pthread_mutex_unlock(&s->lock);
}

static enum td_skip_reason errno_reason(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ELOOP: /* a component became a symlink under us */
	case ESTALE:
		return TD_SKIP_VANISHED;
	case EACCES:
	case EPERM:
		return TD_SKIP_PERMISSION_DENIED;
	case EXDEV:
		return TD_SKIP_OTHER_FILESYSTEM;
	case ENAMETOOLONG:
		return TD_SKIP_PATH_TOO_LONG;
	default:
		return TD_SKIP_ERROR;
	}
}

static bool is_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* A symlink entry: a sighting when it points at <state>/links/<aa>/<id>/<name>. */
static void handle_symlink(struct worker *w, int dfd, const char *name, size_t root, size_t plen)
{
	struct scan *s = w->s;
	char buf[PATH_MAX + 1];
	ssize_t n;

	if (!s->links_prefix) {
		w->st.skipped[TD_SKIP_NOT_REGULAR]++;
		return;
	}
	n = readlinkat(dfd, name, buf, sizeof(buf) - 1);
	if (n < 0) {
		w->st.skipped[errno_reason(errno)]++;
		return;
	}
	buf[n] = '\0';
	if ((size_t)n > s->links_prefix_len &&
	    memcmp(buf, s->links_prefix, s->links_prefix_len) == 0) {
		char *aa = buf + s->links_prefix_len;
		char *id = strchr(aa, '/');
		char *base = id ? strchr(id + 1, '/') : NULL;
		if (id && base && id - aa == 2 && base - id - 1 >= 2 && base[1] &&
		    !strchr(base + 1, '/') && is_hex(aa, 2) &&
		    is_hex(id + 1, (size_t)(base - id - 1)) && memcmp(aa, id + 1, 2) == 0) {
			*base = '\0';
			w->st.skipped[TD_SKIP_ALREADY_TIERED]++;
			w->st.links_seen++;
			if (s->o->on_link)
				s->o->on_link(s->o->ctx, root, id + 1, w->path, plen);
			return;
		}
	}
	w->st.skipped[TD_SKIP_NOT_REGULAR]++;
}

/* Reserves a slot against max_files_per_run / max_bytes_per_run. */
static bool reserve(struct scan *s, uint64_t size)
{
	uint64_t mf = s->conf->max_files_per_run, mb = s->conf->max_bytes_per_run;
	uint64_t cur;

	if (mf) {
		cur = atomic_load(&s->lim_files);
		do {
			if (cur >= mf)
				return false;
		} while (!atomic_compare_exchange_weak(&s->lim_files, &cur, cur + 1));
	}
	if (mb) {
		cur = atomic_load(&s->lim_bytes);
		do {
			if (cur + size > mb || cur + size < cur) {
				if (mf)
					atomic_fetch_sub(&s->lim_files, 1);
				return false;
			}
		} while (!atomic_compare_exchange_weak(&s->lim_bytes, &cur, cur + size));
	}
	return true;
}

static void sel_swap(struct sel_entry *a, struct sel_entry *b)
{
	struct sel_entry t = *a;
	*a = *b;
	*b = t;
}

static void sel_down(struct scan *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->sel_n && s->sel[l].age_ns < s->sel[m].age_ns)
			m = l;
		if (r < s->sel_n && s->sel[r].age_ns < s->sel[m].age_ns)
			m = r;
		if (m == i)
			return;
		sel_swap(&s->sel[i], &s->sel[m]);
		i = m;
	}
}

static void sel_up(struct scan *s, size_t i)
{
	while (i > 0 && s->sel[(i - 1) / 2].age_ns > s->sel[i].age_ns) {
		sel_swap(&s->sel[i], &s->sel[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static void sel_pop_root(struct scan *s)
{
	s->sel_sum -= s->sel[0].size;
	free(s->sel[0].path);
	s->sel[0] = s->sel[--s->sel_n];
	sel_down(s, 0);
	s->sel_dropped++;
}

/* Offers an eligible file to the coldest-first selection. Keeps the coldest
 * files whose sizes add up to the bytes needed, and at most sel_cap of them. */
static int sel_offer(struct scan *s, const struct td_scan_entry *e, const char *path)
{
	struct sel_entry n = {
		.age_ns = e->age_ns,
		.size = e->meta->size,
		.root = e->root,
		.len = e->path_len,
		.dev = e->dev,
		.ino = e->ino,
		.meta = *e->meta,
	};
	int r = 0;

	pthread_mutex_lock(&s->sel_lock);
	if (s->sel_n == s->sel_cap && s->sel[0].age_ns >= n.age_ns) {
		s->sel_dropped++;
		goto out;
	}
	n.path = malloc(e->path_len + 1);
	if (!n.path) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(n.path, path, e->path_len);
	n.path[e->path_len] = '\0';
	if (s->sel_n == s->sel_cap)
		sel_pop_root(s);
	s->sel[s->sel_n++] = n;
	s->sel_sum += n.size;
	sel_up(s, s->sel_n - 1);
	while (s->sel_n > 1 && s->sel_sum - s->sel[0].size >= s->wm_needed)
		sel_pop_root(s);
out:
	pthread_mutex_unlock(&s->sel_lock);
	return r;
}

static int64_t ts_ns(const struct statx_timestamp *t)
{
	return t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void handle_file(struct worker *w, size_t root, size_t plen, const struct statx *stx,
                        uint64_t *dir_files, uint64_t *dir_bytes)
{
	struct scan *s = w->s;
	const struct td_policy *pol = s->o->policy;
	struct td_file_meta m = {
		.mode = stx->stx_mode,
		.nlink = stx->stx_nlink,
		.uid = stx->stx_uid,
		.gid = stx->stx_gid,
		.size = stx->stx_size,
		/* Times not asked for (statx_mask) read as 0. */
		.atime_ns = stx->stx_mask & STATX_ATIME ? ts_ns(&stx->stx_atime) : 0,
		.mtime_ns = stx->stx_mask & STATX_MTIME ? ts_ns(&stx->stx_mtime) : 0,
		.ctime_ns = stx->stx_mask & STATX_CTIME ? ts_ns(&stx->stx_ctime) : 0,
	};
	struct td_scan_entry e = {
		.root = root,
		.path = w->path,
		.path_len = plen,
		.meta = &m,
		.dev = makedev(stx->stx_dev_major, stx->stx_dev_minor),
		.ino = stx->stx_ino,
	};
	enum td_skip_reason r;

	w->st.scanned_files++;
	w->st.scanned_bytes += m.size;
	w->st.age_bytes[td_policy_age_bucket(pol, &m)] += m.size;
	r = td_policy_check(pol, w->path, plen, &m);
	if (r != TD_SKIP_NONE) {
		w->st.skipped[r]++;
		return;
	}
	e.age_ns = td_policy_age_ns(pol, &m);
	w->st.eligible_files++;
	w->st.eligible_bytes += m.size;
	(*dir_files)++;
	*dir_bytes += m.size;
	if (s->wm) {
		if (sel_offer(s, &e, w->path) < 0)
			w->st.skipped[TD_SKIP_ERROR]++;
		return;
	}
	if (!reserve(s, m.size)) {
		w->st.skipped[TD_SKIP_RUN_LIMIT]++;
		return;
	}
	w->st.candidate_files++;
	w->st.candidate_bytes += m.size;
	if (s->o->on_candidate)
		s->o->on_candidate(s->o->ctx, &e);
}

static bool is_own_dir(const struct scan *s, const struct stat *st)
{
	for (size_t i = 0; i < s->n_own; i++)
		if (s->own[i].dev == st->st_dev && s->own[i].ino == st->st_ino)
			return true;
	return false;
}

/* Makes room for `need` bytes in the worker's path buffer (capped). */
static bool path_room(struct worker *w, size_t need)
{
	if (need <= w->path_cap)
		return true;
	if (need > TD_SCAN_PATH_MAX + 1)
		return false;
	size_t ncap = TD_MAX(need, w->path_cap * 2);
	ncap = TD_MIN(ncap, (size_t)TD_SCAN_PATH_MAX + 1);
	char *n = realloc(w->path, ncap);
	if (!n)
		return false;
	w->path = n;
	w->path_cap = ncap;
	return true;
}

/* Opens the directory of `it` beneath its root; -1 when it is skipped (and
 * counted), else the fd of a directory the walk enters. */
static int enter_dir(struct worker *w, const struct dir_item *it)
{
	struct scan *s = w->s;
	struct stat st;
	int fd;

	fd = td_fsat_open_dir(s->root_fd[it->root], it->path, it->len,
	                      s->conf->one_filesystem ? TD_FSAT_NO_XDEV : 0);
	if (fd < 0) {
		w->st.skipped[errno_reason(-fd)]++;
		return -1;
	}
	if (fstat(fd, &st) < 0)
		w->st.skipped[errno_reason(errno)]++;
	else if (s->conf->one_filesystem && st.st_dev != s->root_dev[it->root])
		w->st.skipped[TD_SKIP_OTHER_FILESYSTEM]++;
	else if (is_own_dir(s, &st))
		w->st.skipped[TD_SKIP_TIERD_DIR]++;
	else
		return fd;
	close(fd);
	return -1;
}

/* A subdirectory at w->path[0, plen): queued unless too deep or pruned.
 * Returns 0 or -ENOMEM. */
static int queue_subdir(struct worker *w, size_t root, size_t plen)
{
	struct dir_item *ni;

	if (plen >= TD_SCAN_PATH_MAX) {
		w->st.skipped[TD_SKIP_PATH_TOO_LONG]++;
		return 0;
	}
	if (td_policy_prune_dir(w->s->o->policy, w->path, plen)) {
		w->st.skipped[TD_SKIP_EXCLUDED]++;
		return 0;
	}
	ni = item_new(root, w->path, plen);
	if (!ni || push_item(w, ni) < 0)
		return -ENOMEM;
	return 0;
}

/* The eligible files of one directory, for on_dir. */
struct dir_sum {
	uint64_t files, bytes;
};

/*
 * One entry `name` (d_type `type`) of directory fd, whose path is it's: a
 * subdirectory is queued, a symlink may be a sighting, a regular file goes to
 * the rules; anything else is skipped. Returns 0 or -ENOMEM.
 */
static int process_entry(struct worker *w, const struct dir_item *it, int fd, const char *name,
                         unsigned type, struct dir_sum *sum)
{
	size_t nl = strlen(name), plen = it->len ? it->len + 1 + nl : nl;
	struct statx stx;

	if (!path_room(w, plen + 1)) {
		w->st.skipped[TD_SKIP_PATH_TOO_LONG]++;
		return 0;
	}
	if (it->len) {
		w->path[it->len] = '/';
		memcpy(w->path + it->len + 1, name, nl + 1);
	} else {
		memcpy(w->path, name, nl + 1);
	}
	if (type == DT_DIR)
		return queue_subdir(w, it->root, plen);
	if (type == DT_LNK) {
		handle_symlink(w, fd, name, it->root, plen);
		return 0;
	}
	if (type != DT_REG && type != DT_UNKNOWN) {
		w->st.skipped[TD_SKIP_NOT_REGULAR]++;
		return 0;
	}
	if (statx(fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT,
	          w->s->statx_mask, &stx) < 0) {
		w->st.skipped[errno_reason(errno)]++;
		return 0;
	}
	if (S_ISDIR(stx.stx_mode))
		return queue_subdir(w, it->root, plen);
	if (S_ISLNK(stx.stx_mode))
		handle_symlink(w, fd, name, it->root, plen);
	else if (!S_ISREG(stx.stx_mode))
		w->st.skipped[TD_SKIP_NOT_REGULAR]++;
	else
		handle_file(w, it->root, plen, &stx, &sum->files, &sum->bytes);
	return 0;
}

/* Reads one directory, entry by entry. Returns 0, or -ENOMEM (fatal). */
static int process_dir(struct worker *w, struct dir_item *it)
{
	struct scan *s = w->s;
	struct dir_sum sum = { 0 };
	uint64_t batch = 0;
	int fd, r = 0;

	fd = enter_dir(w, it);
	if (fd < 0)
		return 0;
	w->st.dirs++;
	atomic_fetch_add_explicit(&s->dirs_seen, 1, memory_order_relaxed);
	if (!path_room(w, it->len + 2)) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(w->path, it->path, it->len);
	for (;;) {
		long n = syscall(SYS_getdents64, fd, w->dents, DENTS_BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->st.skipped[errno_reason(errno)]++;
			break;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(w->dents + off);
			const char *name = d->d_name;

			off += d->d_reclen;
			if (name[0] == '.' &&
			    (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
				continue;
			r = process_entry(w, it, fd, name, d->d_type, &sum);
			if (r < 0)
				goto out;
			if (++batch >= 4096) {
				atomic_fetch_add_explicit(&s->files_seen, batch,
				                          memory_order_relaxed);
				batch = 0;
			}
		}
	}
	if (sum.files && s->o->on_dir)
		s->o->on_dir(s->o->ctx, it->root, it->path, it->len, sum.files, sum.bytes);
out:
	atomic_fetch_add_explicit(&s->files_seen, batch, memory_order_relaxed);
	close(fd);
	return r;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct scan *s = w->s;
	struct dir_item *it;

	while ((it = pop_item(w))) {
		int r = process_dir(w, it);
		free(it);
		if (r < 0) {
			pthread_mutex_lock(&s->lock);
			s->fatal = true;
			if (!s->fatal_err)
				s->fatal_err = r;
			pthread_cond_broadcast(&s->cond);
			pthread_cond_broadcast(&s->done_cond);
			pthread_mutex_unlock(&s->lock);
		}
		item_done(s);
	}
	return NULL;
}

static void merge(struct td_scan_stats *a, const struct td_scan_stats *b)
{
	a->dirs += b->dirs;
	a->scanned_files += b->scanned_files;
	a->scanned_bytes += b->scanned_bytes;
	for (size_t i = 0; i < TD_AGE__MAX; i++)
		a->age_bytes[i] += b->age_bytes[i];
	a->eligible_files += b->eligible_files;
	a->eligible_bytes += b->eligible_bytes;
	a->candidate_files += b->candidate_files;
	a->candidate_bytes += b->candidate_bytes;
	a->links_seen += b->links_seen;
	for (size_t i = 0; i < TD_SKIP__MAX; i++)
		a->skipped[i] += b->skipped[i];
}

static int cmp_colder(const void *a, const void *b)
{
	const struct sel_entry *x = a, *y = b;
	return x->age_ns < y->age_ns ? 1 : x->age_ns > y->age_ns ? -1 : 0;
}

/* After the walk: hands the selection to on_candidate, coldest first, until
 * the projected usage is below low_watermark or a run limit is reached. */
static void sel_deliver(struct scan *s, struct td_scan_stats *st)
{
	uint64_t files = 0, bytes = 0;

	qsort(s->sel, s->sel_n, sizeof(*s->sel), cmp_colder);
	for (size_t i = 0; i < s->sel_n; i++) {
		struct sel_entry *e = &s->sel[i];
		uint64_t mf = s->conf->max_files_per_run, mb = s->conf->max_bytes_per_run;
		if (bytes >= s->wm_needed) {
			st->skipped[TD_SKIP_WATERMARK]++;
			continue;
		}
		if ((mf && files >= mf) || (mb && bytes + e->size > mb)) {
			st->skipped[TD_SKIP_RUN_LIMIT]++;
			continue;
		}
		files++;
		bytes += e->size;
		if (s->o->on_candidate) {
			struct td_scan_entry te = {
				.root = e->root,
				.path = e->path,
				.path_len = e->len,
				.meta = &e->meta,
				.dev = e->dev,
				.ino = e->ino,
				.age_ns = e->age_ns,
			};
			s->o->on_candidate(s->o->ctx, &te);
		}
	}
	st->candidate_files += files;
	st->candidate_bytes += bytes;
	st->skipped[TD_SKIP_WATERMARK] += s->sel_dropped;
}

static void add_own(struct scan *s, const char *dir)
{
	struct stat st;

	if (dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		s->own[s->n_own].dev = st.st_dev;
		s->own[s->n_own].ino = st.st_ino;
		s->n_own++;
	}
}

/* The scan's own state: locks, the queue, tierd's directories, the prefix of
 * sightings. The locks are always initialised, so scan_free() can run.
 * Returns 0 or -ENOMEM. */
static int scan_init(struct scan *s)
{
	const struct td_scan_opts *o = s->o;
	pthread_condattr_t ca;

	s->conf = td_policy_conf(o->policy);
	s->roots = o->roots ? o->roots : (const char *const *)s->conf->paths.v;
	s->n_roots = o->roots ? o->n_roots : s->conf->paths.n;
	/* The rules read one of the times, but every candidate carries mtime and
	 * ctime too: the mover compares them before it swaps (a file changed
	 * since the scan is not tiered), so zeros would make every file look
	 * changed. They come with the same inode read. */
	s->statx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_INO |
	                STATX_SIZE | STATX_ATIME | STATX_MTIME | STATX_CTIME;
	s->q_cap = o->queue_cap ? o->queue_cap : 4096;
	if (s->q_cap < s->n_roots)
		s->q_cap = s->n_roots; /* every root starts queued */
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->sel_lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->q = calloc(s->q_cap, sizeof(*s->q));
	s->root_fd = malloc((s->n_roots + 1) * sizeof(*s->root_fd));
	s->root_dev = calloc(s->n_roots + 1, sizeof(*s->root_dev));
	if (!s->q || !s->root_fd || !s->root_dev)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_roots; i++)
		s->root_fd[i] = -1;
	add_own(s, o->state_dir);
	add_own(s, o->cache_dir);
	add_own(s, o->run_dir);
	if (o->state_dir) {
		size_t l = strlen(o->state_dir);
		while (l > 1 && o->state_dir[l - 1] == '/')
			l--;
		s->links_prefix = malloc(l + sizeof("/links/"));
		if (!s->links_prefix)
			return -ENOMEM;
		memcpy(s->links_prefix, o->state_dir, l);
		strcpy(s->links_prefix + l, "/links/");
		s->links_prefix_len = l + strlen("/links/");
	}
	return 0;
}

/* Opens every root (their fds anchor every later open) and reads the first
 * one's filesystem usage. Returns the -errno of the first root that failed. */
static int open_roots(struct scan *s, struct td_scan_stats *st)
{
	const struct td_scan_opts *o = s->o;
	int root_err = 0;

	for (size_t i = 0; i < s->n_roots; i++) {
		struct stat rst;
		int fd = open(s->roots[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &rst) < 0) {
			int e = -errno;
			if (fd >= 0)
				close(fd);
			st->failed_roots++;
			if (!root_err)
				root_err = e;
			if (o->on_root_error)
				o->on_root_error(o->ctx, i, e);
			continue;
		}
		s->root_fd[i] = fd;
		s->root_dev[i] = rst.st_dev;
		if (st->fs_total_bytes == 0) {
			struct statvfs v;
			if (fstatvfs(fd, &v) == 0) {
				st->fs_total_bytes = (uint64_t)v.f_blocks * v.f_frsize;
				st->fs_used_bytes = (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
			}
		}
	}
	if (o->fs_override) {
		st->fs_total_bytes = o->fs_total_bytes;
		st->fs_used_bytes = o->fs_used_bytes;
	}
	return root_err;
}

/* With watermarks: whether the filesystem is above high, how many bytes
 * bring it below low, and room for the selection. Returns 0 or -ENOMEM. */
static int watermark_setup(struct scan *s, struct td_scan_stats *st)
{
	const struct td_policy_conf *c = s->conf;
	double used_pct, low_bytes;

	if (!c->has_watermarks || st->fs_total_bytes == 0)
		return 0;
	used_pct = 100.0 * (double)st->fs_used_bytes / (double)st->fs_total_bytes;
	low_bytes = c->low_watermark_pct / 100.0 * (double)st->fs_total_bytes;
	s->wm = true;
	st->watermark_active = used_pct > c->high_watermark_pct;
	s->wm_needed = st->watermark_active && (double)st->fs_used_bytes > low_bytes
	                   ? st->fs_used_bytes - (uint64_t)low_bytes
	                   : 0;
	s->sel_cap = s->o->select_cap ? s->o->select_cap : 262144;
	s->sel = calloc(s->sel_cap, sizeof(*s->sel));
	return s->sel ? 0 : -ENOMEM;
}

/* Every open root starts the walk as one queued item. Returns 0 or -ENOMEM. */
static int queue_roots(struct scan *s)
{
	for (size_t i = 0; i < s->n_roots; i++) {
		if (s->root_fd[i] < 0)
			continue;
		struct dir_item *it = item_new(i, "", 0);
		if (!it)
			return -ENOMEM;
		s->q[s->q_n++] = it;
		s->pending++;
	}
	return 0;
}

/* Starts up to n workers; *started says how many run. Returns 0 when at least
 * one does, else -EAGAIN. */
static int start_workers(struct scan *s, struct worker *ws, unsigned n, unsigned *started)
{
	for (unsigned i = 0; i < n; i++) {
		ws[i].s = s;
		ws[i].dents = malloc(DENTS_BUF);
		ws[i].path_cap = 4096;
		ws[i].path = malloc(ws[i].path_cap);
		if (!ws[i].dents || !ws[i].path ||
		    pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
			break;
		(*started)++;
	}
	return *started ? 0 : -EAGAIN;
}

/* Waits for the walk to end, reporting progress every `every_ns`. Returns 0
 * or the workers' fatal error. */
static int wait_walk(struct scan *s, int64_t t0, int64_t every_ns)
{
	const struct td_scan_opts *o = s->o;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while (s->pending > 0 && !s->fatal) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += every_ns / 1000000000LL;
		ts.tv_nsec += every_ns % 1000000000LL;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->done_cond, &s->lock, &ts);
		if (o->on_progress && s->pending > 0) {
			pthread_mutex_unlock(&s->lock);
			o->on_progress(o->ctx, atomic_load(&s->files_seen),
			               atomic_load(&s->dirs_seen), td_monotonic_ns() - t0);
			pthread_mutex_lock(&s->lock);
		}
	}
	if (s->fatal)
		r = s->fatal_err;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Frees what scan_init, the roots, the selection and the workers left;
 * after a fatal error items may remain queued. */
static void scan_free(struct scan *s, struct worker *ws, unsigned nthreads)
{
	for (size_t i = 0; s->q && i < s->q_n; i++)
		free(s->q[(s->q_head + i) % s->q_cap]);
	for (unsigned i = 0; ws && i < nthreads; i++) {
		for (size_t j = ws[i].st_lo; j < ws[i].st_n; j++)
			free(ws[i].stack[j]);
		free(ws[i].stack);
		free(ws[i].path);
		free(ws[i].dents);
	}
	for (size_t i = 0; i < s->sel_n; i++)
		free(s->sel[i].path);
	free(s->sel);
	for (size_t i = 0; s->root_fd && i < s->n_roots; i++)
		if (s->root_fd[i] >= 0)
			close(s->root_fd[i]);
	free(s->root_fd);
	free(s->root_dev);
	free(s->q);
	free(ws);
	free(s->links_prefix);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->sel_lock);
}

static unsigned thread_count(const struct td_scan_opts *o)
{
	long n;

	if (o->threads)
		return o->threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)TD_MIN(n, 64) : 1;
}

int td_scan_run(struct td_scan_stats *out, const struct td_scan_opts *o)
{
	struct scan s = { .o = o };
	unsigned nthreads = thread_count(o), started = 0;
	struct worker *ws = calloc(nthreads, sizeof(*ws));
	int64_t t0 = td_monotonic_ns();
	int64_t every_ns = o->progress_ns > 0 ? o->progress_ns : 250000000LL;
	struct td_scan_stats st = { 0 };
	int r, root_err = 0;

	r = scan_init(&s);
	if (r == 0 && !ws)
		r = -ENOMEM;
	if (r == 0) {
		root_err = open_roots(&s, &st);
		r = watermark_setup(&s, &st);
	}
	if (r == 0)
		r = queue_roots(&s);
	if (r == 0)
		r = start_workers(&s, ws, nthreads, &started);
	if (started > 0) {
		r = wait_walk(&s, t0, every_ns);
		for (unsigned i = 0; i < started; i++)
			pthread_join(ws[i].tid, NULL);
		for (unsigned i = 0; i < nthreads; i++)
			merge(&st, &ws[i].st);
		if (s.wm && r == 0)
			sel_deliver(&s, &st);
		if (o->on_progress)
			o->on_progress(o->ctx, atomic_load(&s.files_seen),
			               atomic_load(&s.dirs_seen), td_monotonic_ns() - t0);
	}
	scan_free(&s, ws, nthreads);
	st.elapsed_ns = td_monotonic_ns() - t0;
	*out = st;
	if (r == 0)
		r = root_err;
	return r;
}
