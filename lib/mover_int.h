/*
 * mover_int.h — what the mover's files share; not for use outside lib/mover*.c.
 *
 * The files, in the order a job lives through them:
 *   mover.c          the queue and the worker plumbing: the public entry points
 *                    of a migration, the job object, running a blocking step on
 *                    libuv's thread pool, ending a job, closing the mover;
 *   mover_migrate.c  the steps of one migration (open, upload, link, swap,
 *                    grace period, final step) and its rollback;
 *   mover_manifest.c the manifest that describes an object in the bucket;
 *   mover_recover.c  restart recovery and the retry of unfinished rollbacks;
 *   mover_recall.c   recall, and the recovery of an interrupted recall.
 *
 * Threads: a job is touched by one thread at a time. Its blocking steps (the
 * w_*() functions and whatever they call) run on a pool thread; every a_*()
 * and on_*() function, and every function that touches the mover's lists,
 * runs on the loop thread. The catalog handle is shared by the pool threads
 * under cat_lock, the root fds under roots_lock. lease_broken is the one
 * field both sides touch at once, hence atomic.
 */
#pragma once

#include "catalog.h"
#include "mover.h"
#include "target.h"
#include "xattr.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

struct td_hash;

#define MOVER_RECOVER_PAGE 64
#define MOVER_ROOTS_MAX    256 /* root fds kept open; beyond, each job opens its own */

struct td_mover;

/* One file being migrated, recalled or recovered. */
struct job {
	struct td_mover *m;
	struct job *next, *prev;
	td_mover_cb cb;
	void *data;

	/* What to move. */
	char *root;
	char *path; /* root + "/" + rel, NUL-terminated */
	size_t path_len;
	const char *rel; /* points into path */
	size_t rel_len;
	const char *name; /* basename, points into path (so NUL-terminated) */
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
	struct td_xattrs xa;             /* its extended attributes, read at open */
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

typedef void (*mover_recover_done)(void *data, int status, unsigned finished, unsigned rolled_back,
                                   unsigned left);

/* A recovery pass over the catalog (mover_recover.c), one page of rows at a time. */
struct recover {
	struct td_mover *m;
	char **roots;
	size_t n_roots;
	char after_id[TD_CATALOG_ID_HEX];
	struct td_catalog_entry *page[MOVER_RECOVER_PAGE];
	size_t n_page, next;
	unsigned finished, rolled_back, left;
	int status;
	bool eof;
	int pass;                          /* 0: migrations, 1: recalls */
	bool rollbacks_only;               /* td_mover_retry_rollbacks */
	char last_seen[TD_CATALOG_ID_HEX]; /* the page's last row, collected or not */
	size_t visited;
	uv_work_t work;
	mover_recover_done done;
	void *data;
};

/* A policy root, opened once (O_PATH) and walked from for every job beneath it. */
struct mover_root {
	char *path; /* without a trailing '/' */
	int fd;
};

struct td_mover {
	uv_loop_t *loop;
	struct td_mover_opts o;
	char *state_dir, *cache_dir, *run_dir;
	struct td_catalog *cat;
	uv_mutex_t cat_lock;
	struct mover_root roots[MOVER_ROOTS_MAX];
	size_t n_roots;
	uv_mutex_t roots_lock;
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

/* ---- mover.c: results and helpers (any thread that holds the job) ---- */

/* Sets the job's message without touching its outcome. */
void mover_set_msg(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records why the job did not tier its file; the first reason is the one kept. */
void mover_fail(struct job *j, enum td_mover_outcome o, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool mover_failed(const struct job *j);
/* Records a catalog error as the job's failure; returns r. */
int mover_cat_err(struct job *j, int r, const struct td_catalog_error *ce, const char *what);
/* Tells the test hook that `step` is durable. */
void mover_hook(struct job *j, const char *step);

bool mover_same_content(const struct stat *a, const struct stat *b);
int64_t mover_ts_ns(const struct timespec *t);
/* The identity and attributes a catalog row keeps of a file (TD_CATALOG_F_STAT). */
void mover_entry_stat(struct td_catalog_entry *e, const struct stat *st);
/* True when `name` in the job's directory is a symlink to its dynamic link. */
bool mover_link_is_ours(const struct job *j, const char *name);

/* The catalog calls the pool threads make, each under cat_lock. */
int mover_cat_update(struct td_mover *m, const struct td_catalog_entry *e, unsigned fields,
                     const struct td_catalog_expect *ex, struct td_catalog_error *ce);
void mover_cat_add_error(struct td_mover *m, const char *id, const char *message);

/* Copies size bytes from `in` to `out`, hashing them into h when not NULL.
 * Returns 0 or -errno (-EIO when `in` is shorter). */
int mover_copy_bytes(int in, int out, uint64_t size, struct td_hash *h);
/* Opens `name` beneath dirfd (O_NOFOLLOW added) without waiting on a lease:
 * a file's owner may hold a write lease on it, and a plain open would then
 * stall this thread for the kernel's lease-break time (45 s by default), as
 * often as the owner likes. The open is O_NONBLOCK, retried a few times over
 * about 100 ms while the holder is asked to give way; returns an fd (blocking
 * again) or -errno, -EAGAIN when a lease is still held. */
int mover_open_user_file(int dirfd, const char *name, int flags);
/* Gives out st's owner, the extended attributes of blob (its ACL among them),
 * st's mode and times, then fsyncs it. Returns 0 or -errno. */
int mover_copy_attrs(int out, const struct stat *st, const void *xattrs, size_t xattrs_len);

/* ---- mover.c: the job ---- */

struct job *mover_job_new(struct td_mover *m);
void mover_job_free(struct job *j);
/* Sets root, path, rel and name; refuses an empty, absolute or unsafe rel. */
int mover_job_set_path(struct job *j, const char *root, const char *rel, size_t rel_len);
/* The same, from an absolute path below root (as the catalog stores it). */
int mover_job_set_abs_path(struct job *j, const char *root, const char *path, size_t path_len);
/* Sets the id and the names derived from it (object keys, tmpname, link target). */
int mover_job_set_id(struct job *j, const char *id);
/* Opens the job's directory beneath its root's fd (pool thread) with
 * td_fsat_open_parent, so no symlink is followed. Returns an fd the job owns,
 * or -errno as fsat.h lists them (-ELOOP: a component is a symlink). */
int mover_open_parent(struct job *j);
/* Drops the lease and closes the job's fds. */
void mover_release_file(struct job *j);

/* ---- mover.c: running steps (loop thread) ---- */

/* Runs fn on the thread pool, then after on the loop thread. */
void mover_run_work(struct job *j, void (*fn)(struct job *), void (*after)(struct job *));
/* Puts the job on the in-flight list. */
void mover_active_add(struct td_mover *m, struct job *j);
/* Starts a job taken from the queue (or made by recovery). */
void mover_start_job(struct td_mover *m, struct job *j);
/* Reports the result, takes the job off the in-flight list, frees it and
 * starts the next queued one. */
void mover_finish(struct job *j);
void mover_pump(struct td_mover *m);
void mover_maybe_closed(struct td_mover *m);

/* ---- mover_migrate.c (loop thread unless said) ---- */

/* Starts a migration at step 1. */
void mover_migrate_start(struct job *j);
/* Ends a queued migration that was refused before it touched anything. */
void mover_migrate_drop(struct job *j);
/* Ends the grace period now (a lease break, or the mover closing). */
void mover_end_grace(struct job *j);
/* After a job's last blocking step: rolls back what need_rollback says, or ends it. */
void mover_settle(struct job *j);
/* Pool thread: puts the old inode back at its name; -EEXIST (outcome failed,
 * message set) when the name no longer holds our link. */
int mover_restore_swap(struct job *j);
/* Pool thread: the row's final update of a migration, from step `from`. */
int mover_set_tiered(struct job *j, int from, bool cached, uint64_t cached_bytes);

/* ---- mover_manifest.c (pool thread) ---- */

/* The manifest of the job's object, as JSON text to free(), or NULL. */
char *mover_manifest_text(struct job *j);

/* ---- mover_recover.c (loop thread) ---- */

/* Starts the recovery of a migration left by a crash (j->entry is its row). */
void mover_recover_start(struct job *j);
/* Goes on with a recovery pass after one of its jobs ended. */
void mover_recover_next(struct recover *rc);

/* ---- mover_recall.c (loop thread) ---- */

/* Starts the recovery of a recall left by a crash (j->entry is its row). */
void mover_recall_recover_start(struct job *j);
