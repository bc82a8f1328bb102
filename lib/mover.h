/*
 * mover — turns a cold file into a link, crash-safely, and cleans up after a
 * crash. Loop thread: every function here and every callback runs on the loop
 * given to td_mover_new(); blocking steps (opening files, leases, SQLite, the
 * swap) run on libuv's thread pool; transfers use the target layer.
 *
 * One migration, each step durable in the catalog (state migrating, `step`)
 * before the next begins:
 *   1 opened    the file is open (O_NOFOLLOW|O_NOATIME, through directory fds
 *               from the policy root), matches what the scan saw, holds a read
 *               lease, and has a catalog row;
 *   2 uploaded  object and manifest on the target, verified by HEAD;
 *   3 linked    re-checked unchanged; dynamic link (and, with keep_cached, the
 *               cache copy) in place;
 *   4 swapping  the user link is being created under ".tierd-<id>" beside the
 *               file and exchanged with it (renameat2 RENAME_EXCHANGE), so the
 *               name never points at anything but the file or our link;
 *   5 swapped   the old inode sits at ".tierd-<id>", still open and leased,
 *               for a grace period: a write to it (or a lease break) puts it
 *               back in place of the link and the migration is rolled back;
 *   final       tiered (or cached, with keep_cached); the old name is unlinked.
 * td_mover_recover() finishes or rolls back every row left in `migrating` by a
 * crash, from the catalog alone.
 *
 * When a function that takes a callback returns an error, the callback is
 * never called; otherwise it is called exactly once, later.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "target.h"

enum td_mover_step {
	TD_MOVER_OPENED = 1,
	TD_MOVER_UPLOADED = 2,
	TD_MOVER_LINKED = 3,
	TD_MOVER_SWAPPING = 4,
	TD_MOVER_SWAPPED = 5,
	/* Undone locally; only the target's copy is left to delete (the target
	 * was unreachable). Recovery deletes it and then the row. */
	TD_MOVER_ROLLBACK = 9,
};

enum td_mover_outcome {
	TD_MOVER_TIERED,     /* the file is now a link */
	TD_MOVER_SKIPPED,    /* not moved, nothing changed: busy, changed, not eligible */
	TD_MOVER_RESTORED,   /* a writer raced the swap: the file was put back */
	TD_MOVER_FAILED,     /* an error; the file is as it was */
	TD_MOVER_INTERRUPTED /* stopped by td_mover_close; recovery finishes the job */
};

struct td_mover_result {
	enum td_mover_outcome outcome;
	int status;       /* 0 or -errno */
	const char *id;   /* "" when no catalog row was made */
	const char *path; /* absolute original path (bytes; escape before printing) */
	size_t path_len;
	uint64_t size_bytes;
	char message[512]; /* one sentence: why it was skipped or failed */
};

typedef void (*td_mover_cb)(void *data, const struct td_mover_result *res);

struct td_mover_opts {
	uv_loop_t *loop;
	const char *catalog_path; /* the mover opens its own handle */
	const char *state_dir, *cache_dir, *run_dir;
	unsigned max_transfers; /* files in flight at once (>= 1) */
	unsigned max_queued;    /* td_mover_migrate returns -EAGAIN beyond this (0: 10000) */
	int64_t grace_ms;       /* how long the old inode is watched after the swap */
	/* Files in their grace period do not hold one of max_transfers; at most
	 * this many at once (0: 256), beyond it they do. */
	unsigned max_in_grace;
	/* Looks up a target by name (the daemon owns them). */
	struct td_target *(*target_for)(void *ctx, const char *name);
	/* Optional: false when the daemon knows the target is unreachable; a queued
	 * file whose turn comes then is skipped at once (nothing touched) instead
	 * of failing through every retry of its upload and rollback. */
	bool (*target_usable)(void *ctx, const char *name);
	/* Tests only: called (from any thread) right after each step is durable. */
	void (*step_hook)(void *ctx, const char *id, const char *step);
	void *ctx;
};

struct td_mover_file {
	const char *root; /* the policy root, absolute */
	const char *rel;  /* path below root, bytes, no leading '/' */
	size_t rel_len;
	const char *policy;
	const char *target;
	bool keep_cached;
	/* What the scan saw; with check_stat the file must still match. */
	bool check_stat;
	uint64_t dev, ino, size_bytes;
	int64_t mtime_ns, ctime_ns;
};

struct td_mover;

/* Returns 0 or -errno with a sentence in err (catalog open failure, ...). */
int td_mover_new(struct td_mover **out, const struct td_mover_opts *o, char *err, size_t errlen);

/* Queues one file. -EAGAIN when max_queued are waiting, -ESHUTDOWN after close. */
int td_mover_migrate(struct td_mover *m, const struct td_mover_file *f, td_mover_cb cb, void *data);

/* Finishes or rolls back every row left in `migrating` (and aborts stale
 * uploads on each target). roots: every policy root of the configuration, so
 * rows are reopened beneath the root they were found under. done() gets the
 * counts. */
int td_mover_recover(struct td_mover *m, const char *const *roots, size_t n_roots,
                     void (*done)(void *data, int status, unsigned finished, unsigned rolled_back,
                                  unsigned left),
                     void *data);

/* While running: retries the rows a rollback left at step 9 (its object could
 * not be deleted from the target then), as recovery would. Rows whose job is
 * still finishing are left alone. -EBUSY while a recovery runs. */
int td_mover_retry_rollbacks(struct td_mover *m, const char *const *roots, size_t n_roots,
                             void (*done)(void *data, int status, unsigned finished,
                                          unsigned rolled_back, unsigned left),
                             void *data);

/*
 * Recall: brings a tiered file back to primary storage. Its cache copy (which
 * must exist: the file is `cached` or `dirty`) replaces the user link at the
 * catalog's path (below one of `roots`, the policy roots): on the same filesystem by rename,
 * elsewhere by a verified copy; then the exchange is the same atomic RENAME_EXCHANGE the migration
 * uses, checked by inode. The row becomes `local`; the object stays on the target until garbage
 * collection (DESIGN.md invariant 5). If the user link is no longer at that path, the copy is
 * pinned, the row keeps an error for `tierctl status`, and the result is -ESTALE. A copy someone
 * holds open for writing, or opens for writing during the recall, is not recalled yet (-EBUSY: the
 * recall gives way, and the write lands in the copy); one under another process's lease is not
 * waited for (-EAGAIN). Steps, durable in the catalog (state
 * recalling): 1 started, 2 placed beside the link.
 */
enum td_mover_recall_step {
	TD_RECALL_STARTED = 1,
	TD_RECALL_PLACED = 2,
};
int td_mover_recall(struct td_mover *m, const char *id, const char *const *roots, size_t n_roots,
                    td_mover_cb cb, void *data);

/* Call when the process gets the lease-break signal (SIGIO): every file whose
 * read lease is being broken is given back at once. */
void td_mover_check_leases(struct td_mover *m);

unsigned td_mover_in_flight(const struct td_mover *m);
unsigned td_mover_queued(const struct td_mover *m);

/* Drops the files waiting for a transfer slot (callback: skipped, -ESHUTDOWN,
 * "tierd is stopping"); what is in flight goes on. */
void td_mover_drop_queued(struct td_mover *m);

/* Stops: queued files are dropped (callback: skipped), uploads are cancelled
 * (their rows stay for recovery), files in their grace period are finished now.
 * close_cb runs when nothing is in flight. */
void td_mover_close(struct td_mover *m, void (*close_cb)(void *data), void *data);
