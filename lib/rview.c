/*
 * rview — see rview.h.
 *
 * Objects in memory: a node per tiered file looked up through the view (its
 * catalog facts, found on the thread pool), a handle per open, chunks of 1 MiB
 * in a global table with an LRU of idle ones, read requests waiting for
 * chunks, and at most one hydration per node. Every FUSE request is answered
 * exactly once: from data in memory, from the .part file or cache copy through
 * a libuv fs request, or with an error.
 */
#define FUSE_USE_VERSION 34
#include "rview.h"
#include "catalog.h"
#include "hash.h"
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK      (1u << 20)
#define READAHEAD  16 /* chunks fetched ahead of a sequential reader */
#define HYD_WINDOW 16 /* chunk fetches in flight for one hydration */
/* Consecutive chunks one range request fetches for a sequential reader or a
 * hydration: S3 servers pay a fixed cost per request (radosgw: its CPU time
 * per MiB served drops ~3x from 1 MiB to 8 MiB requests). */
#define GROUP_CHUNKS    8
#define CHUNKS_SOFT_MAX 192 /* idle chunks kept in memory */
#define HASH_BUCKETS    4096
#define BUF_POOL_MAX    32 /* freed CHUNK-sized buffers kept for reuse */
#define AA_INO_BASE     2  /* inodes 2..257: the <aa> directories */
#define NODE_INO_BASE   1024
#define ENTRY_TIMEOUT_S 3600.0 /* a tiered file's facts never change under its id */
#define SCAN_WINDOW_NS  (10LL * 1000000000)
#define SCAN_OPENS      16 /* cold opens by one process in the window: a sweep */

struct rview;
struct node;
struct chunk;

struct waiter {
	struct waiter *next;
	struct pread *pr;
};

/* One FUSE read waiting for data. */
struct pread {
	struct td_rview *rv;
	fuse_req_t req;
	struct node *n;
	uint64_t off;
	size_t size;
	char *out;
	bool out_pooled;
	unsigned missing;
	int err;
	bool verify; /* reaches EOF: answered once the hydration verified the bytes */
	struct pread *held_next;
};

struct group;

struct chunk {
	struct chunk *hnext;
	struct chunk *lru_prev, *lru_next;
	bool in_lru;
	struct node *n;
	uint64_t idx;
	char *buf;
	size_t len, got;
	size_t avail; /* bytes in while fetching (progress) */
	enum { C_FETCHING, C_READY, C_FAILED } st;
	int err;
	unsigned pins; /* readers copying, the hydration writing or waiting to hash it */
	struct waiter *waiters;
	struct td_target_req *req; /* its own fetch, or */
	struct group *g;           /* the group fetch it is part of */
	bool hyd_wanted;           /* the hydration is waiting for it */
	bool ra_deferred;          /* start the read-ahead from ra_from when it arrives */
	uint64_t ra_from;
	bool read_out; /* a stream has read it to its end: free it when idle */
};

struct hyd {
	uv_file fd;
	char part[4096];
	uint64_t n_chunks;
	uint8_t *written;    /* bitmap: chunk is on disk in the .part file */
	uint64_t next_fetch; /* next chunk to ask for */
	uint64_t hash_next;  /* next chunk to feed to the hash, in order */
	unsigned in_flight;  /* fetches and writes under way */
	struct td_hash *h;
	bool failed;
	bool verified; /* the SHA-256 matched: reads of the end need not wait */
	/* Chunks to write to the .part, one write at a time: concurrent writes
	 * to one file only contend for its inode lock (and spin on it). */
	struct hyd_write *wq_head, *wq_tail;
	bool writing;
	bool finishing;
	int err;
};

struct node {
	struct td_rview *rv;
	struct node *id_next, *ino_next;
	uint64_t ino; /* the <id> directory; the file is ino + 1 */
	char id[TD_CATALOG_ID_HEX];
	char *name;
	size_t name_len;
	char *target_name, *key;
	char sha256[TD_SHA256_HEX];
	uint64_t size;
	uint32_t mode, uid, gid;
	int64_t mtime_ns, atime_ns;
	struct td_target *t;
	uint64_t lookups; /* the kernel's references to both inodes */
	unsigned opens;
	bool cached;      /* hydrated in this session: reads come from the copy */
	uv_file cache_fd; /* open on the cache copy, -1 */
	struct hyd *hyd;
	struct hwait *hwaiters;
	unsigned writers;
	bool dirty;         /* written through the view */
	struct pread *held; /* reads of the last bytes, waiting for the SHA-256 check */
	bool corrupt;       /* failed its SHA-256 check: every read gets EIO */
};

struct handle {
	struct node *n;
	uint64_t next_off;
	bool streaming;
	uv_file wfd; /* a write open: served on the cache copy; -1 otherwise */
};

/* Someone waiting for a node's hydration to end. */
struct hwait {
	struct hwait *next;
	void (*done)(void *data, int status);
	void *data;
};

struct pidrec {
	pid_t pid;
	int64_t window_start_ns;
	unsigned opens;
	int64_t sweeper_until_ns;
};

struct td_rview {
	struct td_rview_opts o;
	uv_loop_t *loop;
	char *mountpoint, *state_dir, *cache_dir, *run_dir;
	char **no_hydrate;
	size_t n_no_hydrate;
	bool stream_dio; /* streamed opens bypass the page cache */
	uint64_t cache_limit;
	struct fuse_session *se;
	struct fuse_buf fbuf;
	uv_poll_t poll;
	bool poll_open;
	bool closing;
	void (*close_cb)(void *data);
	void *close_data;
	unsigned pending_work; /* thread-pool jobs and fs requests under way */

	struct td_catalog *cat;
	uv_mutex_t cat_lock;
	/* Lookups read through their own handle: in WAL mode they never wait
	 * for a write's fsync (a cold open right after a hydration ended). */
	struct td_catalog *cat_rd;
	uv_mutex_t rd_lock;

	struct node *by_id[HASH_BUCKETS], *by_ino[HASH_BUCKETS];
	uint64_t next_ino;
	struct chunk *chunks[HASH_BUCKETS];
	struct chunk *lru_head, *lru_tail; /* idle READY chunks, oldest first */
	unsigned n_chunks, n_idle, n_fetching;
	/* A stream allocates and frees a MiB per chunk and per read: reused
	 * buffers spare the mmap, page faults and zeroing of fresh ones. */
	char *buf_pool[BUF_POOL_MAX];
	unsigned n_buf_pool;
	struct pidrec pids[64];
	bool trimming, trim_again;

	struct td_rview_stats st;
};

static void maybe_closed(struct td_rview *rv);
static void hyd_pump(struct node *n);
static void hyd_hash(struct node *n);
static void hyd_cleanup(struct node *n);
static void hyd_chunk_ready(struct chunk *c);
struct hyd_write;

static void report(struct td_rview *rv, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct td_rview *rv, const char *id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rv->o.on_error)
		rv->o.on_error(rv->o.ctx, id, msg);
}

static unsigned hash_str(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % HASH_BUCKETS;
}

/* ---- nodes ------------------------------------------------------------------ */

static struct node *node_by_id(struct td_rview *rv, const char *id)
{
	for (struct node *n = rv->by_id[hash_str(id)]; n; n = n->id_next)
		if (strcmp(n->id, id) == 0)
			return n;
	return NULL;
}

static struct node *node_by_ino(struct td_rview *rv, fuse_ino_t ino, bool *is_file)
{
	uint64_t dir = ino & ~(uint64_t)1;

	for (struct node *n = rv->by_ino[(dir / 2) % HASH_BUCKETS]; n; n = n->ino_next)
		if (n->ino == dir) {
			if (is_file)
				*is_file = ino != dir;
			return n;
		}
	return NULL;
}

static struct node *node_new(struct td_rview *rv, const struct td_catalog_entry *e)
{
	struct node *n = calloc(1, sizeof(*n));
	unsigned hb;

	if (!n)
		return NULL;
	n->rv = rv;
	memcpy(n->id, e->id, sizeof(n->id));
	n->name = malloc(e->name_len + 1);
	n->target_name = strdup(e->target ? e->target : "");
	n->key = strdup(e->object_key ? e->object_key : "");
	if (!n->name || !n->target_name || !n->key) {
		free(n->name);
		free(n->target_name);
		free(n->key);
		free(n);
		return NULL;
	}
	memcpy(n->name, e->name, e->name_len);
	n->name[e->name_len] = '\0';
	n->name_len = e->name_len;
	memcpy(n->sha256, e->sha256, sizeof(n->sha256));
	n->size = e->size;
	n->mode = e->mode;
	n->uid = e->uid;
	n->gid = e->gid;
	n->mtime_ns = e->mtime_ns;
	n->atime_ns = e->atime_ns;
	n->cache_fd = -1;
	n->t = rv->o.target_for(rv->o.ctx, n->target_name);
	n->ino = rv->next_ino;
	rv->next_ino += 2;
	n->id_next = rv->by_id[hash_str(n->id)];
	rv->by_id[hash_str(n->id)] = n;
	hb = (unsigned)((n->ino / 2) % HASH_BUCKETS);
	n->ino_next = rv->by_ino[hb];
	rv->by_ino[hb] = n;
	return n;
}

static void chunk_drop(struct td_rview *rv, struct chunk *c);

static void node_maybe_free(struct td_rview *rv, struct node *n)
{
	struct node **pp;

	if (n->lookups || n->opens || n->hyd || n->hwaiters)
		return;
	/* Drop its idle chunks; busy ones keep it alive. */
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct chunk *c = rv->chunks[b], *next; c; c = next) {
			next = c->hnext;
			if (c->n == n) {
				if (c->pins || c->st == C_FETCHING || c->waiters)
					return;
				chunk_drop(rv, c);
			}
		}
	for (pp = &rv->by_id[hash_str(n->id)]; *pp; pp = &(*pp)->id_next)
		if (*pp == n) {
			*pp = n->id_next;
			break;
		}
	for (pp = &rv->by_ino[(n->ino / 2) % HASH_BUCKETS]; *pp; pp = &(*pp)->ino_next)
		if (*pp == n) {
			*pp = n->ino_next;
			break;
		}
	if (n->cache_fd >= 0)
		close(n->cache_fd);
	free(n->name);
	free(n->target_name);
	free(n->key);
	free(n);
}

/* ---- attributes ---------------------------------------------------------- */

static void dir_attr(struct stat *st, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0711;
	st->st_nlink = 2;
}

static void file_attr(struct stat *st, const struct node *n)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino + 1;
	st->st_mode = S_IFREG | (n->mode & 07777);
	st->st_nlink = 1;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = (off_t)n->size;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_blksize = CHUNK;
	st->st_mtim.tv_sec = n->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = n->mtime_ns % 1000000000;
	st->st_atim.tv_sec = n->atime_ns / 1000000000;
	st->st_atim.tv_nsec = n->atime_ns % 1000000000;
	st->st_ctim = st->st_mtim;
}

/* Once there is a copy, it is the truth: it may have been written to. */
static void copy_attr(const struct node *n, struct stat *st)
{
	struct stat cs;

	if (!n->cached || n->cache_fd < 0 || fstat(n->cache_fd, &cs) < 0)
		return;
	st->st_size = cs.st_size;
	st->st_blocks = cs.st_blocks;
	st->st_mode = S_IFREG | (cs.st_mode & 07777);
	st->st_uid = cs.st_uid;
	st->st_gid = cs.st_gid;
	st->st_mtim = cs.st_mtim;
	st->st_ctim = cs.st_ctim;
	st->st_atim = cs.st_atim;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st)
{
	struct fuse_entry_param e = { 0 };

	e.ino = ino;
	e.generation = 1;
	e.attr = *st;
	e.attr_timeout = ENTRY_TIMEOUT_S;
	e.entry_timeout = ENTRY_TIMEOUT_S;
	fuse_reply_entry(req, &e);
}

static bool hexpair(const char *s, unsigned *v)
{
	unsigned x = 0;

	for (int i = 0; i < 2; i++) {
		char c = s[i];

		x <<= 4;
		if (c >= '0' && c <= '9')
			x |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x |= (unsigned)(c - 'a' + 10);
		else
			return false;
	}
	*v = x;
	return true;
}

/* ---- lookup: catalog on the thread pool ------------------------------------- */

struct lookup_job {
	uv_work_t work;
	struct td_rview *rv;
	fuse_req_t req;
	char id[TD_CATALOG_ID_HEX];
	struct td_catalog_entry *e;
	int r;
};

static void w_lookup(uv_work_t *w)
{
	struct lookup_job *j = w->data;
	struct td_catalog_error ce;

	uv_mutex_lock(&j->rv->rd_lock);
	j->r = td_catalog_get(&j->e, j->rv->cat_rd, j->id, &ce);
	uv_mutex_unlock(&j->rv->rd_lock);
}

static void a_lookup(uv_work_t *w, int status)
{
	struct lookup_job *j = w->data;
	struct td_rview *rv = j->rv;
	struct node *n;
	struct stat st;

	rv->pending_work--;
	n = node_by_id(rv, j->id); /* another lookup may have made it meanwhile */
	if (!n && j->r == 0 && j->e->sha256[0] && j->e->object_key && j->e->target &&
	    (j->e->state == TD_CATALOG_TIERED || j->e->state == TD_CATALOG_CACHED ||
	     j->e->state == TD_CATALOG_DIRTY || j->e->state == TD_CATALOG_MIGRATING))
		n = node_new(rv, j->e);
	if (!n || rv->closing) {
		fuse_reply_err(j->req, rv->closing ? EIO : ENOENT);
	} else {
		n->lookups++;
		dir_attr(&st, n->ino);
		reply_entry(j->req, n->ino, &st);
	}
	td_catalog_entry_free(j->e);
	free(j);
	maybe_closed(rv);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct lookup_job *j;
	struct stat st;
	struct node *n;
	unsigned aa;
	bool is_file;

	if (parent == FUSE_ROOT_ID) {
		if (strlen(name) != 2 || !hexpair(name, &aa)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		dir_attr(&st, AA_INO_BASE + aa);
		reply_entry(req, AA_INO_BASE + aa, &st);
		return;
	}
	if (parent >= AA_INO_BASE && parent < AA_INO_BASE + 256) {
		if (!td_ns_valid_id(name) || !hexpair(name, &aa) || aa != parent - AA_INO_BASE) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		n = node_by_id(rv, name);
		if (n) {
			n->lookups++;
			dir_attr(&st, n->ino);
			reply_entry(req, n->ino, &st);
			return;
		}
		j = calloc(1, sizeof(*j));
		if (!j) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		j->rv = rv;
		j->req = req;
		memcpy(j->id, name, sizeof(j->id));
		j->work.data = j;
		if (uv_queue_work(rv->loop, &j->work, w_lookup, a_lookup) < 0) {
			free(j);
			fuse_reply_err(req, EIO);
			return;
		}
		rv->pending_work++;
		return;
	}
	n = node_by_ino(rv, parent, &is_file);
	if (!n || is_file || strlen(name) != n->name_len || memcmp(name, n->name, n->name_len)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	n->lookups++;
	file_attr(&st, n);
	reply_entry(req, n->ino + 1, &st);
}

static void forget_one(struct td_rview *rv, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = ino >= NODE_INO_BASE ? node_by_ino(rv, ino, NULL) : NULL;

	if (!n)
		return;
	n->lookups = n->lookups > nlookup ? n->lookups - nlookup : 0;
	node_maybe_free(rv, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(fuse_req_userdata(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct stat st;
	struct node *n;
	bool is_file;

	if (ino == FUSE_ROOT_ID || (ino >= AA_INO_BASE && ino < AA_INO_BASE + 256)) {
		dir_attr(&st, ino);
		fuse_reply_attr(req, &st, ENTRY_TIMEOUT_S);
		return;
	}
	n = node_by_ino(rv, ino, &is_file);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (is_file) {
		file_attr(&st, n);
		copy_attr(n, &st);
	} else {
		dir_attr(&st, ino);
	}
	fuse_reply_attr(req, &st, is_file && n->cached ? 0 : ENTRY_TIMEOUT_S);
}

/* Directories list nothing but themselves: ids are unguessable on purpose, and
 * the kernel lets only root read a 0711 directory anyway. */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	char buf[512];
	size_t n = 0;
	struct stat st;

	if (off == 0) {
		dir_attr(&st, ino);
		n += fuse_add_direntry(req, buf + n, sizeof(buf) - n, ".", &st, 1);
		n += fuse_add_direntry(req, buf + n, sizeof(buf) - n, "..", &st, 2);
	}
	fuse_reply_buf(req, buf, n > size ? 0 : n);
}

/* ---- chunks ----------------------------------------------------------------- */

static char *buf_get(struct td_rview *rv)
{
	return rv->n_buf_pool ? rv->buf_pool[--rv->n_buf_pool] : malloc(CHUNK);
}

static void buf_put(struct td_rview *rv, char *b)
{
	if (b && rv->n_buf_pool < BUF_POOL_MAX && !rv->closing)
		rv->buf_pool[rv->n_buf_pool++] = b;
	else
		free(b);
}

static unsigned chunk_bucket(const struct node *n, uint64_t idx)
{
	return (unsigned)((((uintptr_t)n >> 4) * 2654435761u + idx * 40503u) % HASH_BUCKETS);
}

static struct chunk *chunk_find(struct td_rview *rv, struct node *n, uint64_t idx)
{
	for (struct chunk *c = rv->chunks[chunk_bucket(n, idx)]; c; c = c->hnext)
		if (c->n == n && c->idx == idx)
			return c;
	return NULL;
}

static void lru_remove(struct td_rview *rv, struct chunk *c)
{
	if (!c->in_lru)
		return;
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else
		rv->lru_head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		rv->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
	c->in_lru = false;
	rv->n_idle--;
}

static void chunk_drop(struct td_rview *rv, struct chunk *c)
{
	struct chunk **pp;

	lru_remove(rv, c);
	for (pp = &rv->chunks[chunk_bucket(c->n, c->idx)]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	rv->n_chunks--;
	buf_put(rv, c->buf);
	free(c);
}

/* A chunk nobody is using goes to the idle LRU (or away, if it failed). */
static void chunk_settle(struct td_rview *rv, struct chunk *c)
{
	if (c->pins || c->waiters || c->st == C_FETCHING || c->hyd_wanted)
		return;
	/* A chunk a stream has read through is not kept (nobody else has the
	 * file open, and no hydration wants it): its buffer goes straight back
	 * to the pool, where the read-ahead finds it, instead of new memory. */
	if (c->st == C_FAILED || rv->closing || (c->read_out && c->n->opens <= 1 && !c->n->hyd)) {
		struct node *n = c->n;

		chunk_drop(rv, c);
		node_maybe_free(rv, n);
		return;
	}
	if (!c->in_lru) {
		c->lru_prev = rv->lru_tail;
		c->lru_next = NULL;
		if (rv->lru_tail)
			rv->lru_tail->lru_next = c;
		else
			rv->lru_head = c;
		rv->lru_tail = c;
		c->in_lru = true;
		rv->n_idle++;
	}
	while (rv->n_idle > CHUNKS_SOFT_MAX)
		chunk_drop(rv, rv->lru_head);
}

static void pread_finish(struct pread *pr)
{
	struct td_rview *rv = pr->rv;

	/* A corrupt object must not read as a whole file: the read that ends
	 * it waits for the hydration's checksum, and gets EIO if it fails. */
	if (pr->verify && pr->err == 0 && pr->n->hyd && !pr->n->hyd->failed &&
	    !pr->n->hyd->verified) {
		pr->held_next = pr->n->held;
		pr->n->held = pr;
		return;
	}
	if (pr->err < 0) {
		fuse_reply_err(pr->req, -pr->err);
	} else {
		fuse_reply_buf(pr->req, pr->out, pr->size);
		rv->st.reads++;
		rv->st.read_bytes += pr->size;
	}
	if (pr->out_pooled)
		buf_put(rv, pr->out);
	else
		free(pr->out);
	free(pr);
}

/* Copies what pr wants of c's first `avail` bytes. */
static void pread_copy_n(struct pread *pr, const struct chunk *c, size_t avail)
{
	uint64_t c_off = c->idx * CHUNK;
	uint64_t s = TD_MAX(c_off, pr->off), e = TD_MIN(c_off + avail, pr->off + pr->size);

	if (e > s)
		memcpy(pr->out + (s - pr->off), c->buf + (s - c_off), e - s);
}

static void pread_copy(struct pread *pr, const struct chunk *c)
{
	pread_copy_n(pr, c, c->len);
}

/* Bytes of a chunk arrive: a reader whose part of it is in already is
 * answered now, not when the whole MiB is (time to first byte). */
static void on_chunk_progress(void *data, size_t got)
{
	struct chunk *c = data;
	uint64_t c_off = c->idx * CHUNK;
	struct waiter **pw = &c->waiters, *w;

	c->avail = got;
	while ((w = *pw)) {
		struct pread *pr = w->pr;

		if (TD_MIN(c_off + c->len, pr->off + pr->size) > c_off + got) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		free(w);
		pread_copy_n(pr, c, got);
		if (--pr->missing == 0)
			pread_finish(pr);
	}
}

static void read_ahead(struct td_rview *rv, struct node *n, uint64_t from_idx);

/* A chunk's fetch ended: serve its waiters and the hydration. */
static void chunk_done(struct chunk *c, int status, const struct td_target_error *err, bool quiet)
{
	struct node *n = c->n;
	struct td_rview *rv = n->rv;
	struct waiter *w;

	c->req = NULL;
	c->g = NULL;
	rv->n_fetching--;
	if (status == 0 && c->got != c->len)
		status = -EIO;
	if (status < 0) {
		c->st = C_FAILED;
		/* Readers get EIO: a missing object is not a missing file. */
		c->err = -EIO;
		if (status != -ECANCELED && !quiet)
			report(rv, n->id, "reading %s from target %s failed: %s", n->key,
			       n->target_name,
			       err && err->message[0] ? err->message : strerror(-status));
	} else {
		c->st = C_READY;
		rv->st.target_bytes += c->got;
	}
	while ((w = c->waiters)) {
		struct pread *pr = w->pr;

		c->waiters = w->next;
		free(w);
		if (c->st == C_READY)
			pread_copy(pr, c);
		else
			pr->err = c->err;
		if (--pr->missing == 0)
			pread_finish(pr);
	}
	if (c->hyd_wanted) {
		/* A failed hydration releases its pins and may drop c: hold it. */
		c->pins++;
		hyd_chunk_ready(c);
		c->pins--;
	}
	if (c->ra_deferred) {
		c->ra_deferred = false;
		if (c->st == C_READY && n->opens && !rv->closing) {
			c->pins++; /* read_ahead may trim idle chunks */
			read_ahead(rv, n, c->ra_from);
			c->pins--;
		}
	}
	chunk_settle(rv, c);
}

static void on_chunk(void *data, struct td_target_req *req, int status,
                     const struct td_target_error *err)
{
	struct chunk *c = data;
	struct td_rview *rv = c->n->rv;

	rv->st.target_requests++;
	chunk_done(c, status, err, false);
	maybe_closed(rv);
}

/* Consecutive chunks fetched by one range request into their own buffers.
 * Readers get each chunk's bytes as they arrive. The chunks are done (ready,
 * handed to the hydration, read-ahead from them) when the request ends: the
 * progress report comes from inside curl, where no request may be started. */
struct group {
	struct td_target_req *req;
	struct td_rview *rv;
	struct chunk *c[GROUP_CHUNKS];
	uint64_t idx0;      /* c[0]'s index: c[0] may be freed while the others end */
	unsigned n, n_full; /* chunks whose bytes are all in */
	size_t got, seen;
	bool cancelled;
};

static size_t group_start(const struct group *g, unsigned i)
{
	return (size_t)(g->c[i]->idx - g->idx0) * CHUNK;
}

static void on_group_progress(void *data, size_t got)
{
	struct group *g = data;

	g->seen = TD_MAX(g->seen, got);
	while (g->n_full < g->n) {
		struct chunk *c = g->c[g->n_full];
		size_t start = group_start(g, g->n_full);

		if (got < start + c->len) {
			if (got > start)
				on_chunk_progress(c, got - start);
			return;
		}
		on_chunk_progress(c, c->len);
		g->n_full++;
	}
}

static void on_group(void *data, struct td_target_req *req, int status,
                     const struct td_target_error *err)
{
	struct group *g = data;
	struct td_rview *rv = g->rv;
	bool reported = false;

	rv->st.target_requests++;
	if (status == 0)
		g->seen = TD_MAX(g->seen, g->got);
	for (unsigned i = 0; i < g->n; i++) {
		struct chunk *c = g->c[i];

		/* A chunk whose bytes all came is good even if the rest did not. */
		if (g->seen >= group_start(g, i) + c->len) {
			c->got = c->len;
			chunk_done(c, 0, NULL, false);
		} else {
			chunk_done(c, status < 0 ? status : -EIO, err, reported);
			reported = true;
		}
	}
	free(g);
	maybe_closed(rv);
}

/* A new chunk in the table, fetching (by the caller). NULL on ENOMEM. */
static struct chunk *chunk_add(struct td_rview *rv, struct node *n, uint64_t idx)
{
	struct chunk *c = calloc(1, sizeof(*c));
	unsigned b;

	if (!c)
		return NULL;
	c->buf = buf_get(rv);
	if (!c->buf) {
		free(c);
		return NULL;
	}
	c->n = n;
	c->idx = idx;
	c->len = (size_t)TD_MIN((uint64_t)CHUNK, n->size - idx * CHUNK);
	c->st = C_FETCHING;
	rv->n_fetching++;
	b = chunk_bucket(n, idx);
	c->hnext = rv->chunks[b];
	rv->chunks[b] = c;
	rv->n_chunks++;
	return c;
}

static bool on_disk(const struct node *n, uint64_t i)
{
	return n->hyd && n->hyd->written && (n->hyd->written[i / 8] & (1u << (i % 8)));
}

static struct chunk *chunk_get(struct td_rview *rv, struct node *n, uint64_t idx);

/* Like chunk_get, but a missing chunk is fetched with the missing chunks
 * after it (up to GROUP_CHUNKS, not past the object's end, not those already
 * on disk) by one request. */
static struct chunk *chunk_get_run(struct td_rview *rv, struct node *n, uint64_t idx)
{
	uint64_t last = n->size ? (n->size - 1) / CHUNK : 0;
	struct iovec iov[GROUP_CHUNKS];
	struct group *g;
	int r;

	if (chunk_find(rv, n, idx) || !n->t || idx >= last || chunk_find(rv, n, idx + 1) ||
	    on_disk(n, idx + 1))
		return chunk_get(rv, n, idx);
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->rv = rv;
	g->idx0 = idx;
	for (uint64_t i = idx; i <= last && g->n < GROUP_CHUNKS; i++) {
		struct chunk *c;

		if (i > idx && (chunk_find(rv, n, i) || on_disk(n, i)))
			break;
		c = chunk_add(rv, n, i);
		if (!c)
			break;
		c->g = g;
		iov[g->n].iov_base = c->buf;
		iov[g->n].iov_len = c->len;
		g->c[g->n++] = c;
	}
	if (g->n == 0) {
		free(g);
		return NULL;
	}
	r = td_target_get_range_v(n->t, &g->req, n->key, idx * CHUNK, iov, g->n, &g->got, on_group,
	                          g);
	if (r == 0) {
		td_target_req_on_progress(g->req, on_group_progress, g);
		return g->c[0];
	}
	for (unsigned i = 0; i < g->n; i++) {
		g->c[i]->g = NULL;
		g->c[i]->st = C_FAILED;
		g->c[i]->err = -EIO;
		rv->n_fetching--;
	}
	for (unsigned i = 1; i < g->n; i++)
		chunk_settle(rv, g->c[i]); /* nobody waits on these: dropped */
	idx = g->c[0]->idx;
	free(g);
	return chunk_find(rv, n, idx);
}

/* Finds or starts fetching a chunk. NULL on ENOMEM or a target that is gone. */
static struct chunk *chunk_get(struct td_rview *rv, struct node *n, uint64_t idx)
{
	struct chunk *c = chunk_find(rv, n, idx);
	int r;

	if (c) {
		lru_remove(rv, c);
		return c;
	}
	if (!n->t || !(c = chunk_add(rv, n, idx)))
		return NULL;
	r = td_target_get_range(n->t, &c->req, n->key, idx * CHUNK, c->len, c->buf, &c->got,
	                        on_chunk, c);
	if (r == 0)
		td_target_req_on_progress(c->req, on_chunk_progress, c);
	if (r < 0) {
		rv->n_fetching--;
		c->st = C_FAILED;
		c->err = r;
	}
	return c;
}

static void read_ahead(struct td_rview *rv, struct node *n, uint64_t from_idx)
{
	uint64_t last = n->size ? (n->size - 1) / CHUNK : 0;

	for (uint64_t i = from_idx; i <= last && i < from_idx + READAHEAD; i++) {
		struct chunk *c;

		if (on_disk(n, i))
			continue;
		c = chunk_get_run(rv, n, i);
		if (c)
			chunk_settle(rv, c);
	}
}

/* ---- reads ------------------------------------------------------------------- */

struct fsread {
	uv_fs_t fs;
	struct pread *pr;
	size_t want;
	struct node *part_of; /* a read of part_of->hyd's .part: counted in its in_flight */
};

static void on_fsread(uv_fs_t *fs)
{
	struct fsread *f = fs->data;
	struct pread *pr = f->pr;
	struct td_rview *rv = pr->rv;

	if (fs->result < 0)
		pr->err = (int)fs->result;
	else if ((size_t)fs->result != f->want)
		pr->err = -EIO;
	uv_fs_req_cleanup(fs);
	rv->pending_work--;
	if (--pr->missing == 0)
		pread_finish(pr);
	if (f->part_of) {
		struct node *n = f->part_of;

		/* The hydration may finish (and close the .part) only now. */
		n->hyd->in_flight--;
		if (n->hyd->failed) {
			hyd_cleanup(n);
		} else {
			hyd_hash(n);
			if (n->hyd && !n->hyd->failed && !n->hyd->finishing)
				hyd_pump(n); /* the read held a slot of the window */
		}
	}
	free(f);
	maybe_closed(rv);
}

/* Reads [off, off+len) of a local file (the .part, then part_of is the node,
 * or the copy) into pr->out. */
static int read_local(struct pread *pr, uv_file fd, uint64_t off, size_t len, struct node *part_of)
{
	struct fsread *f = calloc(1, sizeof(*f));
	uv_buf_t b;
	int r;

	if (!f)
		return -ENOMEM;
	f->pr = pr;
	f->want = len;
	f->fs.data = f;
	b = uv_buf_init(pr->out + (off - pr->off), (unsigned)len);
	r = uv_fs_read(pr->rv->loop, &f->fs, fd, &b, 1, (int64_t)off, on_fsread);
	if (r < 0) {
		free(f);
		return r;
	}
	pr->rv->pending_work++;
	pr->missing++;
	f->part_of = part_of;
	if (part_of)
		part_of->hyd->in_flight++;
	return 0;
}

/* Every byte of a read is in ready chunks (a stream behind its read-ahead):
 * the reply is written straight from them, with no buffer and no copy. */
/* A streaming handle's read that reaches the end of chunk c. */
static void stream_mark(const struct handle *h, struct chunk *c, uint64_t off, size_t size)
{
	if (h->streaming && c->idx * CHUNK + c->len <= off + size)
		c->read_out = true;
}

static bool reply_from_chunks(struct td_rview *rv, fuse_req_t req, const struct handle *h,
                              uint64_t off, size_t size)
{
	struct node *n = h->n;
	uint64_t first = off / CHUNK, last = (off + size - 1) / CHUNK;
	struct iovec iov[2];
	struct chunk *cs[2];
	unsigned k = 0;

	if (last - first >= 2)
		return false;
	for (uint64_t i = first; i <= last; i++) {
		struct chunk *c = chunk_find(rv, n, i);
		uint64_t c_off = i * CHUNK, s, e;

		if (!c || c->st != C_READY)
			return false;
		s = TD_MAX(c_off, off);
		e = TD_MIN(c_off + c->len, off + size);
		iov[k].iov_base = c->buf + (s - c_off);
		iov[k].iov_len = (size_t)(e - s);
		cs[k++] = c;
	}
	fuse_reply_iov(req, iov, (int)k);
	rv->st.reads++;
	rv->st.read_bytes += size;
	for (unsigned i = 0; i < k; i++) { /* used: to the young end of the LRU */
		stream_mark(h, cs[i], off, size);
		lru_remove(rv, cs[i]);
		chunk_settle(rv, cs[i]);
	}
	return true;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->n;
	struct pread *pr = NULL;
	uint64_t first, last;
	uint64_t fsize = n->size;

	if (n->corrupt) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (h->wfd >= 0) {
		struct stat st;

		fsize = fstat(h->wfd, &st) == 0 ? (uint64_t)st.st_size : 0;
	}
	if ((uint64_t)off >= fsize || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size = (size_t)TD_MIN((uint64_t)size, fsize - (uint64_t)off);
	/* Not for the read that ends a hydrating file: it waits for the check. */
	if (h->wfd < 0 && !(n->cached && n->cache_fd >= 0) &&
	    !(n->hyd && !n->hyd->verified && !h->streaming && (uint64_t)off + size == n->size) &&
	    reply_from_chunks(rv, req, h, (uint64_t)off, size)) {
		last = ((uint64_t)off + size - 1) / CHUNK;
		goto ahead;
	}
	pr = calloc(1, sizeof(*pr));
	if (pr) {
		pr->out_pooled = size > CHUNK / 4 && size <= CHUNK;
		pr->out = pr->out_pooled ? buf_get(rv) : malloc(size);
	}
	if (!pr || !pr->out) {
		free(pr);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pr->rv = rv;
	pr->req = req;
	pr->n = n;
	pr->off = (uint64_t)off;
	pr->size = size;
	pr->missing = 1; /* held until every piece is asked for */
	pr->verify =
	    n->hyd && !n->hyd->verified && !h->streaming && h->wfd < 0 && pr->off + size == n->size;
	if (h->wfd >= 0 || (n->cached && n->cache_fd >= 0)) {
		if (read_local(pr, h->wfd >= 0 ? h->wfd : n->cache_fd, pr->off, size, NULL) < 0)
			pr->err = -EIO;
		goto out;
	}
	first = pr->off / CHUNK;
	last = (pr->off + size - 1) / CHUNK;
	for (uint64_t i = first; i <= last; i++) {
		struct chunk *c = chunk_find(rv, n, i);

		/* Chunks already in the .part are read from it; once the hydration
		 * is finishing, its thread closes the .part, so fetch instead. */
		if (!c && n->hyd && !n->hyd->finishing && !n->hyd->failed &&
		    (n->hyd->written[i / 8] & (1u << (i % 8)))) {
			uint64_t s = TD_MAX(i * CHUNK, pr->off);
			uint64_t e = TD_MIN((i + 1) * CHUNK, pr->off + size);

			if (read_local(pr, n->hyd->fd, s, (size_t)(e - s), n) < 0)
				pr->err = -EIO;
			continue;
		}
		c = chunk_get(rv, n, i);
		if (!c) {
			pr->err = -EIO;
			continue;
		}
		stream_mark(h, c, pr->off, size);
		if (c->st == C_READY) {
			pread_copy(pr, c);
			chunk_settle(rv, c);
		} else if (c->st == C_FAILED) {
			pr->err = c->err;
			chunk_settle(rv, c);
		} else if (TD_MIN(i * CHUNK + c->len, pr->off + size) <= i * CHUNK + c->avail) {
			pread_copy_n(pr, c, c->avail); /* its bytes are in already */
		} else {
			struct waiter *w = malloc(sizeof(*w));

			if (!w) {
				pr->err = -ENOMEM;
				continue;
			}
			w->pr = pr;
			w->next = c->waiters;
			c->waiters = w;
			pr->missing++;
		}
	}
	/* Sequential access: keep the next chunks coming. First byte first: when
	 * a sequential run starts on a chunk still being fetched and nothing is
	 * read ahead yet (a fresh open), the read-ahead waits for that chunk, so
	 * the reader's chunk does not share the connection pool and the server
	 * with READAHEAD others (time to first byte of a 4 MiB cold file on
	 * radosgw: ~10 ms with them, ~4 ms without). */
ahead:
	if ((uint64_t)off == h->next_off || off == 0) {
		struct chunk *fc = chunk_find(rv, n, last);

		if (fc && fc->st == C_FETCHING && !chunk_find(rv, n, last + 1)) {
			fc->ra_deferred = true;
			fc->ra_from = last + 1;
		} else {
			read_ahead(rv, n, last + 1);
		}
	}
	h->next_off = (uint64_t)off + size;
	if (!pr)
		return;
out:
	if (--pr->missing == 0)
		pread_finish(pr);
}

/* ---- open, release ---------------------------------------------------------------- */

/* A process in no_hydrate, or one sweeping through many cold files (backup,
 * antivirus, indexer), is served by streaming. */
static bool should_stream(struct td_rview *rv, pid_t pid)
{
	char path[64], comm[64] = "";
	int64_t now = td_monotonic_ns();
	struct pidrec *slot = NULL, *oldest = &rv->pids[0];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = read(fd, comm, sizeof(comm) - 1);

		close(fd);
		if (k > 0) {
			comm[k] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
		}
	}
	for (size_t i = 0; i < rv->n_no_hydrate; i++)
		if (strcmp(comm, rv->no_hydrate[i]) == 0)
			return true;
	for (size_t i = 0; i < TD_ARRAY_SIZE(rv->pids); i++) {
		if (rv->pids[i].pid == pid)
			slot = &rv->pids[i];
		if (rv->pids[i].window_start_ns < oldest->window_start_ns)
			oldest = &rv->pids[i];
	}
	if (!slot) {
		slot = oldest;
		memset(slot, 0, sizeof(*slot));
		slot->pid = pid;
	}
	if (now - slot->window_start_ns > SCAN_WINDOW_NS) {
		slot->window_start_ns = now;
		slot->opens = 0;
	}
	if (++slot->opens > SCAN_OPENS)
		slot->sweeper_until_ns = now + 6 * SCAN_WINDOW_NS;
	return slot->sweeper_until_ns > now;
}

static void hyd_start(struct td_rview *rv, struct node *n);
static int hwait_add(struct node *n, void (*done)(void *data, int status), void *data);

/* ---- writes: served on the cache copy ------------------------------------------ */

struct wopen {
	struct td_rview *rv;
	fuse_req_t req;
	struct node *n;
	struct fuse_file_info fi;
};

static void wopen_reply(struct wopen *wo, int status)
{
	struct node *n = wo->n;
	struct td_rview *rv = wo->rv;
	char path[4096];
	struct handle *h;
	int flags = (wo->fi.flags & (O_ACCMODE | O_APPEND | O_TRUNC)) | O_NOFOLLOW | O_CLOEXEC;

	if (status < 0 || rv->closing) {
		fuse_reply_err(wo->req, status == -EFBIG ? EFBIG : EIO);
		goto out;
	}
	h = calloc(1, sizeof(*h));
	td_ns_cache_path(path, sizeof(path), rv->cache_dir, n->id);
	if (!h || (h->wfd = open(path, flags)) < 0) {
		int e = h ? errno : ENOMEM;

		free(h);
		fuse_reply_err(wo->req, e);
		goto out;
	}
	h->n = n;
	n->opens++;
	n->writers++;
	rv->st.opens++;
	if (wo->fi.flags & O_TRUNC)
		n->dirty = true;
	wo->fi.fh = (uint64_t)(uintptr_t)h;
	wo->fi.keep_cache = 0;
	wo->fi.direct_io = 0;
	fuse_reply_open(wo->req, &wo->fi);
out:
	free(wo);
}

static void wopen_hydrated(void *data, int status)
{
	wopen_reply(data, status);
}

struct dirty_job {
	uv_work_t work;
	struct td_rview *rv;
	char id[TD_CATALOG_ID_HEX];
};

static void w_mark_dirty(uv_work_t *w)
{
	struct dirty_job *d = w->data;
	struct td_catalog_entry e = { 0 };
	struct td_catalog_error ce;

	memcpy(e.id, d->id, sizeof(e.id));
	e.state = TD_CATALOG_DIRTY;
	e.cache_state = TD_CATALOG_CACHE_DIRTY;
	e.cache_atime_ns = td_now_ns();
	uv_mutex_lock(&d->rv->cat_lock);
	td_catalog_update(d->rv->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, NULL, &ce);
	uv_mutex_unlock(&d->rv->cat_lock);
}

static void a_mark_dirty(uv_work_t *w, int status)
{
	struct dirty_job *d = w->data;

	d->rv->pending_work--;
	maybe_closed(d->rv);
	free(d);
}

/* The catalog learns that this copy is the newest version of the file. */
static void mark_dirty(struct td_rview *rv, struct node *n)
{
	struct dirty_job *d = calloc(1, sizeof(*d));

	if (!d)
		return;
	d->rv = rv;
	memcpy(d->id, n->id, sizeof(d->id));
	d->work.data = d;
	if (uv_queue_work(rv->loop, &d->work, w_mark_dirty, a_mark_dirty) == 0)
		rv->pending_work++;
	else
		free(d);
}

/* O_TRUNC: no need for the old bytes; an empty copy with the file's owner
 * and mode takes its place. */
static int make_empty_copy(struct td_rview *rv, struct node *n)
{
	char path[4096], dir[4096];
	int fd, r;

	snprintf(dir, sizeof(dir), "%s/objects/%.2s", rv->cache_dir, n->id);
	if (td_ns_cache_path(path, sizeof(path), rv->cache_dir, n->id) < 0 ||
	    td_ns_mkdirs(dir, TD_NS_DIR_MODE) < 0)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchown(fd, n->uid, n->gid) < 0 || fchmod(fd, n->mode & 07777) < 0) {
		r = -errno;
		close(fd);
		unlink(path);
		return r;
	}
	close(fd);
	r = td_ns_bind(rv->state_dir, n->id, n->name, n->name_len, path);
	if (r < 0) {
		unlink(path);
		return r;
	}
	n->cache_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	n->cached = n->cache_fd >= 0;
	n->dirty = true;
	mark_dirty(rv, n);
	return 0;
}

/* Opening a cold file for writing hydrates it first; the writes then go to
 * the copy (and the link is already rebound to it). */
static void open_for_write(struct td_rview *rv, fuse_req_t req, struct node *n,
                           struct fuse_file_info *fi)
{
	struct wopen *wo = calloc(1, sizeof(*wo));
	int r;

	if (!wo) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	wo->rv = rv;
	wo->req = req;
	wo->n = n;
	wo->fi = *fi;
	if (n->cached) {
		wopen_reply(wo, 0);
		return;
	}
	if ((fi->flags & O_TRUNC) && !n->hyd) {
		r = make_empty_copy(rv, n);
		wopen_reply(wo, r);
		return;
	}
	if (hwait_add(n, wopen_hydrated, wo) < 0) {
		free(wo);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!n->hyd)
		hyd_start(rv, n);
}

struct fswrite {
	uv_fs_t fs;
	fuse_req_t req;
	struct td_rview *rv;
	char *buf;
};

static void on_fswrite(uv_fs_t *fs)
{
	struct fswrite *w = fs->data;

	if (fs->result < 0)
		fuse_reply_err(w->req, (int)-fs->result);
	else
		fuse_reply_write(w->req, (size_t)fs->result);
	w->rv->pending_work--;
	uv_fs_req_cleanup(fs);
	free(w->buf);
	free(w);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fswrite *w;
	uv_buf_t b;

	if (h->wfd < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc(size ? size : 1);
	if (!w || !w->buf) {
		free(w);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(w->buf, buf, size); /* buf belongs to libfuse only during this call */
	w->req = req;
	w->rv = rv;
	w->fs.data = w;
	h->n->dirty = true;
	b = uv_buf_init(w->buf, (unsigned)size);
	if (uv_fs_write(rv->loop, &w->fs, h->wfd, &b, 1, (fi->flags & O_APPEND) ? -1 : off,
	                on_fswrite) < 0) {
		free(w->buf);
		free(w);
		fuse_reply_err(req, EIO);
		return;
	}
	rv->pending_work++;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node *n;
	struct stat st;
	bool is_file;
	int fd;

	n = node_by_ino(rv, ino, &is_file);
	if (!n || !is_file) {
		fuse_reply_err(req, n ? EPERM : ENOENT);
		return;
	}
	fd = h && h->wfd >= 0 ? h->wfd : n->cached ? n->cache_fd : -1;
	if (fd < 0) {
		/* A cold file changes only after a write open has made its copy. */
		fuse_reply_err(req, EROFS);
		return;
	}
	if (((to_set & FUSE_SET_ATTR_SIZE) &&
	     ftruncate(h && h->wfd >= 0 ? h->wfd : fd, attr->st_size) < 0) ||
	    ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0) ||
	    ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	     fchown(fd, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
	            (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1) < 0)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE)
		n->dirty = true;
	file_attr(&st, n);
	copy_attr(n, &st);
	fuse_reply_attr(req, &st, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	/* A handful of ms at most on a local disk; the writer asked to wait. */
	if (h->wfd >= 0 && (datasync ? fdatasync(h->wfd) : fsync(h->wfd)) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h;
	struct node *n;
	bool is_file;

	n = node_by_ino(rv, ino, &is_file);
	if (!n || !is_file) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		open_for_write(rv, req, n, fi);
		return;
	}
	if (!n->t) {
		report(rv, n->id, "target %s is not configured", n->target_name);
		fuse_reply_err(req, EIO);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->n = n;
	h->wfd = -1;
	h->streaming = should_stream(rv, fuse_req_ctx(req)->pid);
	n->opens++;
	rv->st.opens++;
	if (h->streaming)
		rv->st.streamed_opens++;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1; /* the bytes under an id never change */
	/* A stream is read once: answered straight into the reader's buffer,
	 * not through the page cache (a third less CPU per byte, and a sweep
	 * does not push everything else out of memory). */
	fi->direct_io = h->streaming && rv->stream_dio;
	fuse_reply_open(req, fi);
	/* After the reply: the opener's first read need not wait for the .part
	 * file to be made. */
	if (!h->streaming && !n->cached && !n->hyd)
		hyd_start(rv, n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->n;

	if (h->wfd >= 0) {
		close(h->wfd);
		n->writers--;
		/* The last writer is gone: a changed copy goes back to primary storage. */
		if (!n->writers && n->dirty && rv->o.on_dirty && !rv->closing) {
			n->dirty = false;
			rv->o.on_dirty(rv->o.ctx, n->id);
		}
	}
	free(h);
	n->opens--;
	fuse_reply_err(req, 0);
	node_maybe_free(rv, n);
}

/* ---- hydration ------------------------------------------------------------------ */

static void hwait_fire(struct node *n, int status)
{
	struct hwait *w;

	while ((w = n->hwaiters)) {
		n->hwaiters = w->next;
		w->done(w->data, status);
		free(w);
	}
}

static int hwait_add(struct node *n, void (*done)(void *data, int status), void *data)
{
	struct hwait *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->done = done;
	w->data = data;
	w->next = n->hwaiters;
	n->hwaiters = w;
	return 0;
}

static void hyd_cleanup(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;

	if (!h || h->in_flight || h->finishing)
		return;
	/* Release the chunks still pinned for hashing. */
	for (uint64_t i = h->hash_next; i < h->next_fetch; i++) {
		struct chunk *c = chunk_find(rv, n, i);

		if (c && c->pins) {
			c->pins--;
			chunk_settle(rv, c);
		}
	}
	if (h->fd >= 0) {
		close(h->fd);
		unlink(h->part);
	}
	td_hash_free(h->h);
	free(h->written);
	n->hyd = NULL;
	while (n->held) {
		struct pread *pr = n->held;

		n->held = pr->held_next;
		pr->verify = false;
		if (h->failed)
			pr->err = -EIO;
		pread_finish(pr);
	}
	{
		int status = h->failed ? (h->err < 0 ? h->err : -EIO) : 0;

		free(h);
		hwait_fire(n, status);
	}
	node_maybe_free(rv, n);
	maybe_closed(rv);
}

static void hyd_drain_writes(struct hyd *h);

static void hyd_fail(struct node *n, int err, const char *why)
{
	struct hyd *h = n->hyd;

	hyd_drain_writes(h);
	if (!h->failed) {
		h->failed = true;
		h->err = err;
		if (!n->rv->closing) {
			n->rv->st.hydration_failures++;
			report(n->rv, n->id, "hydration of %s failed: %s", n->key, why);
		}
	}
	hyd_cleanup(n);
}

struct hyd_final {
	uv_work_t work;
	struct node *n;
	char final[4096];
	int r;
	char why[256];
};

static void w_hyd_final(uv_work_t *w)
{
	struct hyd_final *f = w->data;
	struct node *n = f->n;
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	struct timespec ts[2] = { { n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
		                  { n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 } };
	struct td_catalog_error ce;
	struct td_catalog_entry e = { 0 };
	struct td_catalog_expect ex = { .state = TD_CATALOG_TIERED, .step = TD_CATALOG_ANY };

	/* Invariant 7: the copy carries the original owner and mode. */
	if (fchown(h->fd, n->uid, n->gid) < 0 || fchmod(h->fd, n->mode & 07777) < 0 ||
	    futimens(h->fd, ts) < 0 || fsync(h->fd) < 0) {
		f->r = -errno;
		snprintf(f->why, sizeof(f->why), "cannot finish the copy: %s", strerror(errno));
		return;
	}
	/* RENAME_NOREPLACE: an existing copy (perhaps written to) is never overwritten. */
	if (td_ns_cache_path(f->final, sizeof(f->final), rv->cache_dir, n->id) < 0 ||
	    renameat2(AT_FDCWD, h->part, AT_FDCWD, f->final, RENAME_NOREPLACE) < 0) {
		f->r = -errno;
		snprintf(f->why, sizeof(f->why), "cannot rename the copy into place: %s",
		         strerror(errno));
		return;
	}
	close(h->fd);
	h->fd = -1;
	f->r = td_ns_bind(rv->state_dir, n->id, n->name, n->name_len, f->final);
	if (f->r < 0) {
		unlink(f->final);
		snprintf(f->why, sizeof(f->why), "cannot rebind the dynamic link: %s",
		         strerror(-f->r));
		return;
	}
	memcpy(e.id, n->id, sizeof(e.id));
	e.state = TD_CATALOG_CACHED;
	e.cache_state = TD_CATALOG_CACHE_CACHED;
	e.cached_bytes = n->size;
	e.cache_atime_ns = td_now_ns();
	uv_mutex_lock(&rv->cat_lock);
	td_catalog_update(rv->cat, &e, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE, &ex, &ce);
	uv_mutex_unlock(&rv->cat_lock);
}

static void a_hyd_final(uv_work_t *w, int status)
{
	struct hyd_final *f = w->data;
	struct node *n = f->n;
	struct td_rview *rv = n->rv;

	rv->pending_work--;
	n->hyd->finishing = false;
	if (f->r < 0 || status < 0) {
		hyd_fail(n, f->r < 0 ? f->r : status, f->why);
	} else {
		n->cached = true;
		n->cache_fd = open(f->final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		rv->st.hydrations++;
		hyd_cleanup(n);
		td_rview_trim(rv);
	}
	free(f);
	maybe_closed(rv);
}

static void hyd_finish(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	unsigned char digest[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX];
	struct hyd_final *f;

	td_hash_final(h->h, digest);
	td_hex(hex, digest, sizeof(digest));
	if (strcmp(hex, n->sha256) != 0) {
		/* Never bound: a copy that fails its checksum is deleted. */
		n->corrupt = true;
		hyd_fail(n, -EIO,
		         "the object's SHA-256 does not match the catalog (corrupt on the target)");
		return;
	}
	/* The bytes are right: the reads of the end go now, not after the
	 * copy is synced, renamed and bound. */
	h->verified = true;
	while (n->held) {
		struct pread *pr = n->held;

		n->held = pr->held_next;
		pr->verify = false;
		pread_finish(pr);
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		hyd_fail(n, -ENOMEM, "out of memory");
		return;
	}
	f->n = n;
	f->work.data = f;
	h->finishing = true;
	if (uv_queue_work(rv->loop, &f->work, w_hyd_final, a_hyd_final) < 0) {
		h->finishing = false;
		free(f);
		hyd_fail(n, -EIO, "cannot queue work");
		return;
	}
	rv->pending_work++;
}

static void hyd_hash(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;

	while (h->hash_next < h->n_chunks &&
	       (h->written[h->hash_next / 8] & (1u << (h->hash_next % 8)))) {
		struct chunk *c = chunk_find(rv, n, h->hash_next);

		if (!c) { /* cannot happen: pinned until hashed */
			hyd_fail(n, -EIO, "internal: chunk lost before hashing");
			return;
		}
		td_hash_update(h->h, c->buf, c->len);
		c->pins--;
		chunk_settle(rv, c);
		h->hash_next++;
	}
	if (h->hash_next == h->n_chunks && !h->in_flight && !h->finishing)
		hyd_finish(n);
}

struct hyd_write {
	uv_fs_t fs;
	struct chunk *c;
	struct hyd_write *next;
};

/* Queued writes that will not be made (the hydration failed). */
static void hyd_drain_writes(struct hyd *h)
{
	struct hyd_write *hw;

	while ((hw = h->wq_head)) {
		h->wq_head = hw->next;
		h->in_flight--;
		free(hw);
	}
	h->wq_tail = NULL;
}

static void on_hyd_write(uv_fs_t *fs);

static void hyd_write_next(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	struct hyd_write *hw = h->wq_head;
	uv_buf_t b;

	if (h->writing || !hw)
		return;
	h->wq_head = hw->next;
	if (!h->wq_head)
		h->wq_tail = NULL;
	b = uv_buf_init(hw->c->buf, (unsigned)hw->c->len);
	if (uv_fs_write(rv->loop, &hw->fs, h->fd, &b, 1, (int64_t)(hw->c->idx * CHUNK),
	                on_hyd_write) < 0) {
		free(hw);
		h->in_flight--;
		hyd_fail(n, -EIO, "cannot write the cache copy");
		return;
	}
	h->writing = true;
	rv->pending_work++;
}

static void on_hyd_write(uv_fs_t *fs)
{
	struct hyd_write *hw = fs->data;
	struct chunk *c = hw->c;
	struct node *n = c->n;
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	ssize_t res = fs->result;

	uv_fs_req_cleanup(fs);
	free(hw);
	rv->pending_work--;
	h->in_flight--;
	h->writing = false;
	if (res < 0 || (size_t)res != c->len) {
		hyd_fail(n, res < 0 ? (int)res : -EIO,
		         res < 0 ? "cannot write the cache copy (disk full?)" : "short write");
		return;
	}
	h->written[c->idx / 8] |= (uint8_t)(1u << (c->idx % 8));
	if (h->failed) {
		hyd_drain_writes(h);
		hyd_cleanup(n);
		return;
	}
	hyd_write_next(n);
	if (!n->hyd || n->hyd->failed)
		return;
	hyd_hash(n);
	if (n->hyd && !n->hyd->failed && !n->hyd->finishing)
		hyd_pump(n);
}

static void hyd_chunk_ready(struct chunk *c)
{
	struct node *n = c->n;
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	struct hyd_write *hw;

	c->hyd_wanted = false;
	if (!h)
		return;
	if (c->st != C_READY || h->failed || rv->closing) {
		h->in_flight--;
		hyd_fail(n, c->st == C_READY ? -ECANCELED : c->err, "the object could not be read");
		return;
	}
	hw = calloc(1, sizeof(*hw));
	if (!hw) {
		h->in_flight--;
		hyd_fail(n, -ENOMEM, "out of memory");
		return;
	}
	hw->c = c;
	hw->fs.data = hw;
	if (h->wq_tail)
		h->wq_tail->next = hw;
	else
		h->wq_head = hw;
	h->wq_tail = hw;
	hyd_write_next(n);
}

static void hyd_pump(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;

	/* Slow start: one fetch until the first chunk is in (see op_read: the
	 * opener's first read should not wait behind HYD_WINDOW fetches). */
	unsigned window = h->hash_next ? HYD_WINDOW : 1;

	while (!h->failed && !rv->closing && h->in_flight < window && h->next_fetch < h->n_chunks) {
		/* The first chunk alone (the opener's first read should not wait
		 * behind a large request), then several per request. */
		struct chunk *c = h->hash_next ? chunk_get_run(rv, n, h->next_fetch)
		                               : chunk_get(rv, n, h->next_fetch);

		if (!c) {
			hyd_fail(n, -EIO, "cannot fetch");
			return;
		}
		h->next_fetch++;
		c->pins++; /* until it is hashed, in order */
		h->in_flight++;
		c->hyd_wanted = true;
		if (c->st != C_FETCHING) {
			hyd_chunk_ready(c);
			if (!n->hyd)
				return;
		}
	}
	if (n->hyd && h->n_chunks == 0 && !h->finishing)
		hyd_finish(n);
}

static void hyd_start(struct td_rview *rv, struct node *n)
{
	char dir[4096];
	struct hyd *h;

	/* A file larger than the whole cache is only ever streamed. */
	if (rv->cache_limit && n->size > rv->cache_limit) {
		hwait_fire(n, -EFBIG);
		return;
	}
	/* Already in the cache (keep_cached, or an earlier session): use it. */
	if (td_ns_cache_path(dir, sizeof(dir), rv->cache_dir, n->id) == 0 &&
	    access(dir, F_OK) == 0) {
		n->cache_fd = open(dir, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		n->cached = n->cache_fd >= 0;
		hwait_fire(n, n->cached ? 0 : -EIO);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return;
	h->fd = -1;
	h->n_chunks = (n->size + CHUNK - 1) / CHUNK;
	h->written = calloc((size_t)(h->n_chunks / 8 + 1), 1);
	snprintf(dir, sizeof(dir), "%s/objects/%.2s", rv->cache_dir, n->id);
	if (!h->written || td_hash_new(&h->h, TD_HASH_SHA256) < 0 ||
	    td_ns_mkdirs(dir, TD_NS_DIR_MODE) < 0 ||
	    td_ns_cache_path(h->part, sizeof(h->part), rv->cache_dir, n->id) < 0) {
		td_hash_free(h->h);
		free(h->written);
		free(h);
		return;
	}
	strncat(h->part, ".part", sizeof(h->part) - strlen(h->part) - 1);
	h->fd = open(h->part, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (h->fd < 0 || ftruncate(h->fd, (off_t)n->size) < 0) {
		report(rv, n->id, "cannot create %s: %s", h->part, strerror(errno));
		if (h->fd >= 0) {
			close(h->fd);
			unlink(h->part);
		}
		td_hash_free(h->h);
		free(h->written);
		free(h);
		return;
	}
	n->hyd = h;
	hyd_pump(n);
}

/* ---- eviction ---------------------------------------------------------------- */

#define TRIM_BATCH 64

struct trim_job {
	uv_work_t work;
	struct td_rview *rv;
	uint64_t limit;
	uint64_t used;
	char evicted[TRIM_BATCH][TD_CATALOG_ID_HEX];
	unsigned n_evicted;
};

struct cand {
	int64_t atime_ns;
	char id[TD_CATALOG_ID_HEX];
};

/* Calls fn(dirfd, name, data) for each entry of <cache_dir>/objects/<aa>/. */
static void for_each_cache_entry(const char *cache_dir, void (*fn)(int, const char *, void *),
                                 void *data)
{
	char dir[4096];
	DIR *top, *sub;
	struct dirent *a, *b;

	snprintf(dir, sizeof(dir), "%s/objects", cache_dir);
	top = opendir(dir);
	if (!top)
		return;
	while ((a = readdir(top))) {
		char subdir[4400];

		if (strlen(a->d_name) != 2)
			continue;
		snprintf(subdir, sizeof(subdir), "%s/%s", dir, a->d_name);
		sub = opendir(subdir);
		if (!sub)
			continue;
		while ((b = readdir(sub)))
			fn(dirfd(sub), b->d_name, data);
		closedir(sub);
	}
	closedir(top);
}

struct oldest {
	struct cand *out;
	unsigned n;
};

static void oldest_one(int dfd, const char *name, void *data)
{
	struct oldest *o = data;
	struct stat st;
	unsigned k;
	int64_t at;

	if (!td_ns_valid_id(name) || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode))
		return;
	at = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
	if (o->n == TRIM_BATCH && at >= o->out[o->n - 1].atime_ns)
		return;
	k = o->n < TRIM_BATCH ? o->n++ : o->n - 1;
	while (k > 0 && o->out[k - 1].atime_ns > at) {
		o->out[k] = o->out[k - 1];
		k--;
	}
	o->out[k].atime_ns = at;
	memcpy(o->out[k].id, name, sizeof(o->out[k].id));
}

/* The TRIM_BATCH least recently accessed copies (by atime), oldest first. */
static unsigned oldest_copies(const char *cache_dir, struct cand *out)
{
	struct oldest o = { out, 0 };

	for_each_cache_entry(cache_dir, oldest_one, &o);
	return o.n;
}

static void w_trim(uv_work_t *w)
{
	struct trim_job *j = w->data;
	struct td_rview *rv = j->rv;
	struct td_catalog_stats cs;
	struct td_catalog_error ce;
	struct cand c[TRIM_BATCH];
	unsigned n;

	uv_mutex_lock(&rv->cat_lock);
	if (td_catalog_stats(&cs, rv->cat, &ce) < 0) {
		uv_mutex_unlock(&rv->cat_lock);
		return;
	}
	uv_mutex_unlock(&rv->cat_lock);
	j->used = cs.bytes[TD_CATALOG_CACHED] + cs.bytes[TD_CATALOG_DIRTY];
	if (!j->limit || j->used <= j->limit)
		return;
	n = oldest_copies(rv->cache_dir, c);
	for (unsigned i = 0; i < n && j->used > j->limit; i++) {
		struct td_catalog_entry *e = NULL, upd = { 0 };
		struct td_catalog_expect ex = { .state = TD_CATALOG_CACHED,
			                        .step = TD_CATALOG_ANY };
		char path[4096], remote[4096];
		struct stat st;
		int lfd;

		uv_mutex_lock(&rv->cat_lock);
		if (td_catalog_get(&e, rv->cat, c[i].id, &ce) < 0) {
			uv_mutex_unlock(&rv->cat_lock);
			continue;
		}
		uv_mutex_unlock(&rv->cat_lock);
		/* Pinned copies stay; so do copies written since (invariant 6: a
		 * modified copy is never thrown away). */
		if (e->state != TD_CATALOG_CACHED || e->pinned ||
		    td_ns_cache_path(path, sizeof(path), rv->cache_dir, e->id) < 0 ||
		    lstat(path, &st) < 0 || (uint64_t)st.st_size != e->size ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != e->mtime_ns ||
		    td_ns_remote_path(remote, sizeof(remote), rv->run_dir, e->id, e->name,
		                      e->name_len) < 0) {
			td_catalog_entry_free(e);
			continue;
		}
		/* A read lease: refused while anyone has the copy open for writing,
		 * broken if someone opens it for writing while we evict. */
		lfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (lfd < 0 || fcntl(lfd, F_SETLEASE, F_RDLCK) < 0) {
			if (lfd >= 0)
				close(lfd);
			td_catalog_entry_free(e);
			continue;
		}
		/* Rebind first, then unlink: a reader that already has the copy
		 * open keeps reading it; new opens go to the remote view. A writer
		 * that got to the copy meanwhile wins: the binding goes back. */
		if (td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, remote) == 0 &&
		    (fcntl(lfd, F_GETLEASE) != F_RDLCK || fstat(lfd, &st) < 0 ||
		     (uint64_t)st.st_size != e->size)) {
			td_ns_bind(rv->state_dir, e->id, e->name, e->name_len, path);
		} else if (unlink(path) == 0) {
			memcpy(upd.id, e->id, sizeof(upd.id));
			upd.state = TD_CATALOG_TIERED;
			upd.cache_state = TD_CATALOG_CACHE_NONE;
			uv_mutex_lock(&rv->cat_lock);
			td_catalog_update(rv->cat, &upd, TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE,
			                  &ex, &ce);
			uv_mutex_unlock(&rv->cat_lock);
			j->used -= TD_MIN(j->used, e->size);
			memcpy(j->evicted[j->n_evicted++], e->id, TD_CATALOG_ID_HEX);
		}
		fcntl(lfd, F_SETLEASE, F_UNLCK);
		close(lfd);
		td_catalog_entry_free(e);
	}
}

static void a_trim(uv_work_t *w, int status)
{
	struct trim_job *j = w->data;
	struct td_rview *rv = j->rv;

	rv->pending_work--;
	rv->trimming = false;
	rv->st.cache_used_bytes = j->used;
	rv->st.evictions += j->n_evicted;
	for (unsigned i = 0; i < j->n_evicted; i++) {
		struct node *n = node_by_id(rv, j->evicted[i]);

		if (n) {
			n->cached = false;
			if (n->cache_fd >= 0)
				close(n->cache_fd);
			n->cache_fd = -1;
		}
	}
	/* More to do: another batch. */
	if ((j->n_evicted == TRIM_BATCH || rv->trim_again) && !rv->closing) {
		rv->trim_again = false;
		free(j);
		td_rview_trim(rv);
		return;
	}
	free(j);
	maybe_closed(rv);
}

void td_rview_trim(struct td_rview *rv)
{
	struct trim_job *j;

	if (rv->closing)
		return;
	if (rv->trimming) {
		rv->trim_again = true;
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->rv = rv;
	j->limit = rv->cache_limit;
	j->work.data = j;
	if (uv_queue_work(rv->loop, &j->work, w_trim, a_trim) < 0) {
		free(j);
		return;
	}
	rv->trimming = true;
	rv->pending_work++;
}

/* ---- the session -------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* max_write sets max_pages, and so the largest read: 1 MiB per request. */
	conn->max_write = CHUNK;
	conn->max_readahead = CHUNK;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	/* O_TRUNC arrives with the open, so a truncating open needs no download. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.setattr = op_setattr,
	.fsync = op_fsync,
	.flush = op_flush,
	.release = op_release,
};

static void on_fuse(uv_poll_t *p, int status, int events)
{
	struct td_rview *rv = p->data;

	/* One message per read(2); take a bounded batch, then let the loop breathe. */
	for (int i = 0; i < 64 && !rv->closing; i++) {
		int r = fuse_session_receive_buf(rv->se, &rv->fbuf);

		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			break;
		if (r <= 0) {
			/* Unmounted from outside (umount -l): stop serving. */
			uv_poll_stop(&rv->poll);
			break;
		}
		fuse_session_process_buf(rv->se, &rv->fbuf);
	}
}

static void remove_part(int dfd, const char *name, void *data)
{
	size_t l = strlen(name);

	(void)data;
	if (l > 5 && strcmp(name + l - 5, ".part") == 0)
		unlinkat(dfd, name, 0);
}

static void remove_stale_parts(const char *cache_dir)
{
	for_each_cache_entry(cache_dir, remove_part, NULL);
}

int td_rview_set_limits(struct td_rview *rv, uint64_t cache_limit_bytes,
                        const char *const *no_hydrate, size_t n_no_hydrate, bool stream_direct_io)
{
	char **v = calloc(n_no_hydrate ? n_no_hydrate : 1, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_no_hydrate; i++)
		if (!(v[i] = strdup(no_hydrate[i]))) {
			while (i--)
				free(v[i]);
			free(v);
			return -ENOMEM;
		}
	for (size_t i = 0; i < rv->n_no_hydrate; i++)
		free(rv->no_hydrate[i]);
	free(rv->no_hydrate);
	rv->no_hydrate = v;
	rv->n_no_hydrate = n_no_hydrate;
	rv->cache_limit = cache_limit_bytes;
	rv->stream_dio = stream_direct_io;
	return 0;
}

static void rv_free(struct td_rview *rv)
{
	while (rv->n_buf_pool)
		free(rv->buf_pool[--rv->n_buf_pool]);
	for (size_t i = 0; i < rv->n_no_hydrate; i++)
		free(rv->no_hydrate[i]);
	free(rv->no_hydrate);
	free(rv->mountpoint);
	free(rv->state_dir);
	free(rv->cache_dir);
	free(rv->run_dir);
	free(rv);
}

int td_rview_new(struct td_rview **out, const struct td_rview_opts *o, char *err, size_t errlen)
{
	char *argv[] = { "tierd", "-o",
		         "allow_other,default_permissions,fsname=tierd,subtype=tierd", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct td_catalog_error ce;
	struct td_rview *rv;
	int r, fd;

	rv = calloc(1, sizeof(*rv));
	if (!rv)
		return -ENOMEM;
	rv->o = *o;
	rv->loop = o->loop;
	rv->next_ino = NODE_INO_BASE;
	rv->mountpoint = strdup(o->mountpoint);
	rv->state_dir = strdup(o->state_dir);
	rv->cache_dir = strdup(o->cache_dir);
	rv->run_dir = strdup(o->run_dir);
	if (!rv->mountpoint || !rv->state_dir || !rv->cache_dir || !rv->run_dir ||
	    td_rview_set_limits(rv, o->cache_limit_bytes, o->no_hydrate, o->n_no_hydrate,
	                        o->stream_direct_io) < 0) {
		rv_free(rv);
		return -ENOMEM;
	}
	/* A mount left behind by a crash answers ENOTCONN: detach it. */
	umount2(rv->mountpoint, MNT_DETACH);
	r = td_ns_mkdirs(rv->mountpoint, TD_NS_DIR_MODE);
	if (r < 0) {
		snprintf(err, errlen, "cannot create %s: %s", rv->mountpoint, strerror(-r));
		rv_free(rv);
		return r;
	}
	remove_stale_parts(rv->cache_dir);
	r = td_catalog_open(&rv->cat, o->catalog_path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message);
		rv_free(rv);
		return r;
	}
	r = td_catalog_open(&rv->cat_rd, o->catalog_path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		snprintf(err, errlen, "%s", ce.message);
		td_catalog_close(rv->cat);
		rv_free(rv);
		return r;
	}
	uv_mutex_init(&rv->cat_lock);
	uv_mutex_init(&rv->rd_lock);
	rv->se = fuse_session_new(&args, &ops, sizeof(ops), rv);
	fuse_opt_free_args(&args); /* the session keeps what it needs */
	if (!rv->se || fuse_session_mount(rv->se, rv->mountpoint) != 0) {
		snprintf(err, errlen,
		         "cannot mount the remote view at %s (is /dev/fuse there, and is tierd "
		         "root?)",
		         rv->mountpoint);
		if (rv->se)
			fuse_session_destroy(rv->se);
		td_catalog_close(rv->cat);
		td_catalog_close(rv->cat_rd);
		uv_mutex_destroy(&rv->cat_lock);
		uv_mutex_destroy(&rv->rd_lock);
		rv_free(rv);
		return -EIO;
	}
	fd = fuse_session_fd(rv->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uv_poll_init(rv->loop, &rv->poll, fd);
	rv->poll.data = rv;
	rv->poll_open = true;
	uv_poll_start(&rv->poll, UV_READABLE, on_fuse);
	*out = rv;
	return 0;
}

void td_rview_stats(const struct td_rview *rv, struct td_rview_stats *out)
{
	*out = rv->st;
}

static void on_poll_closed(uv_handle_t *h)
{
	struct td_rview *rv = h->data;

	rv->poll_open = false;
	maybe_closed(rv);
}

static void maybe_closed(struct td_rview *rv)
{
	void (*cb)(void *);
	void *data;

	if (!rv->closing || !rv->close_cb || rv->poll_open || rv->pending_work || rv->n_fetching)
		return;
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct node *n = rv->by_id[b]; n; n = n->id_next)
			if (n->hyd)
				return;
	cb = rv->close_cb;
	data = rv->close_data;
	rv->close_cb = NULL;
	fuse_session_destroy(rv->se);
	free(rv->fbuf.mem);
	for (unsigned b = 0; b < HASH_BUCKETS; b++) {
		while (rv->chunks[b]) {
			struct chunk *c = rv->chunks[b];

			rv->chunks[b] = c->hnext;
			while (c->waiters) {
				struct waiter *w = c->waiters;

				c->waiters = w->next;
				free(w);
			}
			free(c->buf);
			free(c);
		}
	}
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		while (rv->by_id[b]) {
			struct node *n = rv->by_id[b];

			rv->by_id[b] = n->id_next;
			if (n->cache_fd >= 0)
				close(n->cache_fd);
			free(n->name);
			free(n->target_name);
			free(n->key);
			free(n);
		}
	td_catalog_close(rv->cat);
	td_catalog_close(rv->cat_rd);
	uv_mutex_destroy(&rv->cat_lock);
	uv_mutex_destroy(&rv->rd_lock);
	rv_free(rv);
	cb(data);
}

void td_rview_close(struct td_rview *rv, void (*close_cb)(void *data), void *data)
{
	rv->closing = true;
	rv->close_cb = close_cb;
	rv->close_data = data;
	/* Unmount first: new opens fail at once; open files get errors, not hangs. */
	fuse_session_unmount(rv->se);
	if (rv->poll_open) {
		uv_poll_stop(&rv->poll);
		uv_close((uv_handle_t *)&rv->poll, on_poll_closed);
	}
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct chunk *c = rv->chunks[b]; c; c = c->hnext) {
			if (c->req)
				td_target_cancel(c->req);
			if (c->g && !c->g->cancelled) {
				c->g->cancelled = true;
				td_target_cancel(c->g->req);
			}
		}
	maybe_closed(rv);
}

/* A catalog lookup (w_lookup) followed by a hydration request. */
struct hyd_req {
	struct lookup_job lk; /* first: w_lookup sees a lookup_job */
	void (*done)(void *data, int status);
	void *data;
};

static void a_hyd_lookup(uv_work_t *w, int status)
{
	struct hyd_req *q = w->data;
	struct td_rview *rv = q->lk.rv;
	struct node *n = node_by_id(rv, q->lk.id);

	rv->pending_work--;
	if (!n && q->lk.r == 0 && q->lk.e->sha256[0] && q->lk.e->object_key)
		n = node_new(rv, q->lk.e);
	if (!n || rv->closing) {
		q->done(q->data, q->lk.r < 0 ? q->lk.r : -EIO);
	} else if (n->cached) {
		q->done(q->data, 0);
	} else if (hwait_add(n, q->done, q->data) < 0) {
		q->done(q->data, -ENOMEM);
	} else if (!n->hyd) {
		hyd_start(rv, n);
	}
	td_catalog_entry_free(q->lk.e);
	free(q);
	maybe_closed(rv);
}

int td_rview_hydrate(struct td_rview *rv, const char *id, void (*done)(void *data, int status),
                     void *data)
{
	struct hyd_req *q;

	if (rv->closing)
		return -ESHUTDOWN;
	if (!td_ns_valid_id(id) || !done)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->lk.rv = rv;
	memcpy(q->lk.id, id, sizeof(q->lk.id));
	q->done = done;
	q->data = data;
	q->lk.work.data = q;
	if (uv_queue_work(rv->loop, &q->lk.work, w_lookup, a_hyd_lookup) < 0) {
		free(q);
		return -EAGAIN;
	}
	rv->pending_work++;
	return 0;
}
