/*
 * rview_int.h — what the files of the remote view share (see rview.h for
 * what the view does). Nothing here is part of the library's API.
 *
 * The files, one concern each, all run on the loop thread (what runs on
 * the thread pool is named in each file's note):
 *   rview.c        the session: mount, the FUSE ops table, close
 *   rview_node.c   nodes (one per tiered file looked up), attributes,
 *                  lookup, forget, getattr, readdir
 *   rview_chunk.c  1 MiB chunks: the table, the idle LRU, buffers, range
 *                  fetches (one chunk or a group), read-ahead
 *   rview_read.c   open, read, release: reads from chunks, the .part or
 *                  the copy; which opens stream
 *   rview_write.c  write opens, writes, setattr, fsync: served on the copy
 *   rview_hydrate.c hydration: a whole object into the cache, verified,
 *                  bound; td_rview_hydrate
 *   rview_evict.c  keeping the cache under its limit; stale .part removal
 *
 * Every FUSE request is answered exactly once: from data in memory, from the
 * .part file or cache copy through a libuv fs request, or with an error.
 */
#pragma once

#define FUSE_USE_VERSION 34
#include "rview.h"
#include "catalog.h"
#include "hash.h"

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

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
/* The most chunk buffer memory the view holds: 16 big files read at once at
 * full read-ahead, or a hydration window each. */
#define CHUNK_MEM_MAX   (256u << 20)
#define COPY_FDS_MAX    256 /* cache copies' fds kept open by idle nodes */
#define AA_INO_BASE     2   /* inodes 2..257: the <aa> directories */
#define NODE_INO_BASE   1024
#define ENTRY_TIMEOUT_S 3600.0 /* a tiered file's facts never change under its id */
#define SCAN_WINDOW_NS  (10LL * 1000000000)
#define SCAN_OPENS      16 /* cold opens by one process in the window: a sweep */

struct node;
struct chunk;
struct group;
struct hyd_write;

/*
 * Lifetimes. A chunk and a node each carry one reference count (refs); each
 * holder below took one reference and drops it exactly once. An object is
 * freed when its count reaches zero, and by nothing else, except that the
 * session's end (rv_maybe_closed, once nothing is in flight) frees whatever
 * is left. The tables (rv->by_id, rv->by_ino, rv->chunks) hold no reference:
 * an object is in its table for exactly its lifetime.
 *
 * A chunk's holders (rv_chunk_hold / rv_chunk_put):
 *   - its fetch, while C_FETCHING: taken by chunk_add, dropped at the end of
 *     chunk_done (after its waiters, the hydration and the read-ahead it
 *     deferred were served); one per chunk also when a group fetches it;
 *   - each reader waiting for its bytes (struct waiter on c->waiters):
 *     taken when the read finds it fetching, dropped when the waiter is
 *     answered (on_chunk_progress or chunk_done);
 *   - the hydration of its node, for each chunk in [hash_next, next_fetch):
 *     taken in hyd_pump (it asked for it), dropped once it is hashed, in
 *     order (hyd_hash), or when the hydration ends (hyd_cleanup); this covers
 *     its write to the .part and its wait for the fetch (hyd_wanted);
 *   - a caller using it for the length of a call: rv_chunk_get and
 *     rv_chunk_get_run return a reference, which the caller drops or hands to
 *     one of the holders above (a read copying ready bytes, the read-ahead,
 *     reply_from_chunks);
 *   - the idle LRU, while in_lru: when the last holder of a ready chunk
 *     worth keeping lets go, its reference passes to the LRU instead of
 *     reaching zero (rv_chunk_put); a user taking it back takes that
 *     reference over (rv_chunk_hold). The LRU drops it when it trims its
 *     oldest (past CHUNKS_SOFT_MAX, or for a buffer at the memory cap:
 *     rv_buf_get), or when the chunk's node is freed.
 *   A failed chunk, every chunk while closing, and one a stream has read out
 *   that nobody else can want is freed when its last holder lets go.
 *
 * A node's holders (rv_node_hold / rv_node_put):
 *   - the kernel, while its lookup count (lookups) is above zero: taken by
 *     the lookup that raises it from zero (rv_node_lookup), dropped by the
 *     forget that brings it back;
 *   - each open handle (struct handle): op_open / wopen_reply, op_release;
 *   - its hydration, while n->hyd is set: rv_hyd_start, hyd_cleanup;
 *   - each hydration waiter (struct hwait): rv_hwait_add, hwait_fire after
 *     its callback ran;
 *   - each of its chunks not idle in the LRU: chunk_add, or a chunk leaving
 *     the LRU; dropped when the chunk goes idle into the LRU or is freed.
 *     An idle chunk does not keep its node: freeing a node frees its idle
 *     chunks with it;
 *   - a callback working on it across steps that may end its hydration
 *     (a catalog lookup's answer, hyd_pump, a .part write or read ending,
 *     hwait_fire): for the length of the call.
 *   rv_node_new returns the node with one reference, its creator's.
 * A read (struct pread) holds nothing: it belongs to an open handle, and the
 * kernel releases a file only after its reads are answered. A group (struct
 * group) belongs to its request and is freed when the request ends; a
 * chunk's g is cleared then.
 */

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
	bool verify;      /* reaches EOF: answered once the hydration verified the bytes */
	struct handle *h; /* whose read it is (a stream hashes what it serves) */
	struct pread *held_next;
};

struct chunk {
	struct chunk *hnext;
	struct chunk *lru_prev, *lru_next;
	bool in_lru; /* idle: the LRU holds its only reference */
	struct node *n;
	uint64_t idx;
	char *buf;
	size_t len, got;
	size_t avail; /* bytes in while fetching (progress) */
	enum { C_FETCHING, C_READY, C_FAILED } st;
	int err;
	unsigned refs; /* see "Lifetimes" above */
	struct waiter *waiters;
	struct td_target_req *req; /* its own fetch, or */
	struct group *g;           /* the group fetch it is part of */
	bool hyd_wanted;           /* its fetch's end goes to the hydration */
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
	unsigned refs; /* see "Lifetimes" above */
	struct node *id_next, *ino_next;
	uint64_t ino; /* the <id> directory; the file is ino + 1 */
	char id[TD_CATALOG_ID_HEX];
	char *name;
	size_t name_len;
	char *target_name, *key;
	char *etag; /* the tiered object's, "" unknown: every range GET is tied to it */
	char sha256[TD_SHA256_HEX];
	uint64_t size;
	uint32_t mode, uid, gid;
	int64_t mtime_ns, atime_ns;
	unsigned char *xattrs; /* the row's td_xattr blob (its ACL among them), or NULL */
	size_t xattrs_len;
	struct td_target *t;
	uint64_t lookups; /* the kernel's references to both inodes */
	unsigned opens;
	char opener[16];  /* the latest opener's process name, for the metrics */
	bool cached;      /* hydrated in this session: reads come from the copy */
	uv_file cache_fd; /* open on the cache copy, -1 (see rv_copy_fd) */
	uint64_t fd_used; /* rv->fd_tick when cache_fd was last used */
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
	/* A stream read in order from offset 0: the SHA-256 of what it served
	 * so far (NULL before the first read and once out of order). */
	struct td_hash *sha;
	uint64_t hashed;   /* bytes in sha */
	bool unverifiable; /* read out of order: no check is possible */
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
	/* The chunk memory cap, in buffers (CHUNK_MEM_MAX): n_bufs are
	 * allocated (busy, idle or pooled); see rv_buf_get. */
	unsigned n_bufs, buf_max;
	/* Cache copies' fds held open by nodes (COPY_FDS_MAX); fd_tick
	 * orders their last use (rv_copy_fd). */
	unsigned n_copy_fds, copy_fds_max;
	uint64_t fd_tick;
	struct pidrec pids[64];
	bool trimming, trim_again;
	uv_timer_t trim_timer; /* trims now and then: copies made elsewhere count */
	bool trim_timer_open;
	/* Tests only: TD_TEST_RVIEW_PAUSE, a directory (see rv_test_pause). */
	char *test_pause;

	struct td_rview_stats st;
};
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

/* A catalog lookup on the thread pool (rv_w_lookup). */
struct lookup_job {
	uv_work_t work;
	struct td_rview *rv;
	fuse_req_t req;
	char id[TD_CATALOG_ID_HEX];
	struct td_catalog_entry *e;
	int r;
};

/* rview.c */
/* Opens a cache copy on the loop thread. Copies belong to their file's owner,
 * who may hold a lease on one: O_NONBLOCK makes the open fail at once with
 * -EWOULDBLOCK instead of waiting out the lease-break time with the loop
 * (DESIGN invariant 9). Returns the fd or -errno. */
int rv_open_copy(const char *path, int flags);
void rv_report(struct td_rview *rv, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the session (frees rv, calls close_cb) if td_rview_close was called and
 * nothing is left in flight. Called last in each callback from libuv, the
 * target or td_rview_close, never from a step inside one: the caller must not
 * touch rv, or anything it owns, afterwards. */
void rv_maybe_closed(struct td_rview *rv);

/* rview_node.c */
/* A node's copy fd: rv_set_copy_fd takes fd (or -1) as n->cache_fd and, past
 * rv->copy_fds_max, closes the least recently used idle node's (not open, not
 * dirty, not hydrating). rv_copy_fd returns cache_fd, reopening a cached
 * node's copy that was closed so (-1 if it cannot be opened: a lease).
 * rv_close_copy_fd closes it. */
void rv_set_copy_fd(struct node *n, int fd);
int rv_copy_fd(struct node *n);
void rv_close_copy_fd(struct node *n);
struct node *rv_node_by_id(struct td_rview *rv, const char *id);
struct node *rv_node_by_ino(struct td_rview *rv, fuse_ino_t ino, bool *is_file);
struct node *rv_node_new(struct td_rview *rv, const struct td_catalog_entry *e);
struct node *rv_node_of_lookup(struct lookup_job *j, bool usable);
void rv_node_hold(struct node *n);
void rv_node_put(struct node *n);
void rv_node_lookup(struct node *n);
bool rv_nodes_hydrating(const struct td_rview *rv);
void rv_nodes_free_all(struct td_rview *rv);
void rv_file_attr(struct stat *st, const struct node *n);
void rv_copy_attr(const struct node *n, struct stat *st);
void rv_w_lookup(uv_work_t *w);
void rv_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void rv_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void rv_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void rv_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rv_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void rv_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void rv_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
/* Gives fd (a new cache copy, owned by root) the node's owner, then its
 * extended attributes (its ACL), then its mode. Returns 0 or -errno. */
int rv_copy_owner(const struct node *n, int fd);

/* rview_chunk.c */
/* Who asks for a buffer, in rising claim on the memory cap (rv_buf_get). */
enum rv_buf_use { RV_BUF_AHEAD, RV_BUF_HYD, RV_BUF_READER };
char *rv_buf_get(struct td_rview *rv, enum rv_buf_use use);
void rv_buf_put(struct td_rview *rv, char *b);
struct chunk *rv_chunk_find(struct td_rview *rv, struct node *n, uint64_t idx);
struct chunk *rv_chunk_get(struct td_rview *rv, struct node *n, uint64_t idx);
struct chunk *rv_chunk_get_run(struct td_rview *rv, struct node *n, uint64_t idx,
                               enum rv_buf_use use);
struct chunk *rv_chunk_get_as(struct td_rview *rv, struct node *n, uint64_t idx,
                              enum rv_buf_use use);
void rv_chunk_hold(struct td_rview *rv, struct chunk *c);
void rv_chunk_put(struct td_rview *rv, struct chunk *c);
void rv_chunks_drop_idle(struct td_rview *rv, const struct node *n);
bool rv_on_disk(const struct node *n, uint64_t i);
void rv_read_ahead(struct td_rview *rv, struct node *n, uint64_t from_idx);
void rv_chunks_cancel(struct td_rview *rv);
void rv_chunks_free_all(struct td_rview *rv);

/* rview_read.c */
void rv_pread_finish(struct pread *pr);
void rv_pread_copy_n(struct pread *pr, const struct chunk *c, size_t avail);
void rv_pread_copy(struct pread *pr, const struct chunk *c);
void rv_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void rv_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void rv_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* rview_write.c */
void rv_open_for_write(struct td_rview *rv, fuse_req_t req, struct node *n,
                       struct fuse_file_info *fi);
void rv_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi);
void rv_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                   struct fuse_file_info *fi);
void rv_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void rv_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* rview_hyd.c */
void rv_hyd_start(struct td_rview *rv, struct node *n);
void rv_hyd_chunk_ready(struct chunk *c);
void rv_hyd_part_read_done(struct node *n);
int rv_hwait_add(struct node *n, void (*done)(void *data, int status), void *data);

/* rview_evict.c */
void rv_remove_stale_parts(const char *cache_dir);
void rv_trim_timer_start(struct td_rview *rv);
void rv_trim_timer_close(struct td_rview *rv);
/* Tests only, on a pool thread: when <test_pause>/<step>-<id> exists, creates
 * <step>-<id>.paused and waits (20 s at most) for <step>-<id>.go, so a test can
 * act at exactly this step. Nothing happens without TD_TEST_RVIEW_PAUSE. */
void rv_test_pause(const struct td_rview *rv, const char *step, const char *id);
