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
 *   rview_hyd.c    hydration: a whole object into the cache, verified,
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
#define AA_INO_BASE     2  /* inodes 2..257: the <aa> directories */
#define NODE_INO_BASE   1024
#define ENTRY_TIMEOUT_S 3600.0 /* a tiered file's facts never change under its id */
#define SCAN_WINDOW_NS  (10LL * 1000000000)
#define SCAN_OPENS      16 /* cold opens by one process in the window: a sweep */

struct node;
struct chunk;
struct group;
struct hyd_write;

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
void rv_report(struct td_rview *rv, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rv_maybe_closed(struct td_rview *rv);

/* rview_node.c */
struct node *rv_node_by_id(struct td_rview *rv, const char *id);
struct node *rv_node_by_ino(struct td_rview *rv, fuse_ino_t ino, bool *is_file);
struct node *rv_node_new(struct td_rview *rv, const struct td_catalog_entry *e);
void rv_node_maybe_free(struct td_rview *rv, struct node *n);
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

/* rview_chunk.c */
char *rv_buf_get(struct td_rview *rv);
void rv_buf_put(struct td_rview *rv, char *b);
struct chunk *rv_chunk_find(struct td_rview *rv, struct node *n, uint64_t idx);
struct chunk *rv_chunk_get(struct td_rview *rv, struct node *n, uint64_t idx);
struct chunk *rv_chunk_get_run(struct td_rview *rv, struct node *n, uint64_t idx);
void rv_lru_remove(struct td_rview *rv, struct chunk *c);
void rv_chunk_drop(struct td_rview *rv, struct chunk *c);
void rv_chunk_settle(struct td_rview *rv, struct chunk *c);
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
