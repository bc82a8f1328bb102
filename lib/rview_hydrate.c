/*
 * rview_hydrate.c — hydration: the whole object of a node into
 * <cache_dir>/copies/<aa>/<id>/<id>.part, through the same chunks readers use,
 * at most HYD_WINDOW fetches and one write at a time; hashed in order;
 * once its SHA-256 matches, given the file's owner, mode and times, synced,
 * renamed into place (never over an existing copy) and bound; then the
 * catalog says CACHED. A copy that fails its check is deleted, never bound.
 *
 * Loop thread, except w_hyd_final (thread pool: fsync, rename, bind, catalog
 * write). It owns each node's struct hyd (its .part fd, the written bitmap,
 * the hash, the write queue) and the hydration waiters (struct hwait).
 */
#include "metrics.h"
#include "rview_int.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void hyd_free(struct hyd *h)
{
	td_hash_free(h->h);
	free(h->written);
	free(h);
}

static void hyd_drain_writes(struct hyd *h);
static void on_hyd_write(uv_fs_t *fs);
static void hyd_pump(struct node *n);

/* Calls every waiter's done with status, once. A waiter's reference is
 * dropped after its callback ran (which may have taken one of its own, a
 * handle's). */
static void hwait_fire(struct node *n, int status)
{
	struct hwait *w;

	rv_node_hold(n);
	while ((w = n->hwaiters)) {
		n->hwaiters = w->next;
		w->done(w->data, status);
		free(w);
		rv_node_put(n);
	}
	rv_node_put(n);
}

/* done(data, status) runs when the node's hydration ends (or fails to start). */
int rv_hwait_add(struct node *n, void (*done)(void *data, int status), void *data)
{
	struct hwait *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	rv_node_hold(n);
	w->done = done;
	w->data = data;
	w->next = n->hwaiters;
	n->hwaiters = w;
	return 0;
}

/* Ends the hydration once nothing of it is in flight: the .part goes, held
 * reads and waiters are answered, its references are dropped. The callback
 * that led here ends the session if it was the last thing (rv_maybe_closed). */
static void hyd_cleanup(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;

	if (!h || h->in_flight || h->finishing)
		return;
	/* Drop the chunks it asked for and has not hashed. */
	for (uint64_t i = h->hash_next; i < h->next_fetch; i++) {
		struct chunk *c = rv_chunk_find(rv, n, i);

		if (c)
			rv_chunk_put(rv, c);
	}
	if (h->fd >= 0) {
		close(h->fd);
		unlink(h->part);
	}
	n->hyd = NULL;
	while (n->held) {
		struct pread *pr = n->held;

		n->held = pr->held_next;
		pr->verify = false;
		if (h->failed)
			pr->err = -EIO;
		rv_pread_finish(pr);
	}
	{
		int status = h->failed ? (h->err < 0 ? h->err : -EIO) : 0;

		hyd_free(h);
		hwait_fire(n, status);
	}
	rv_node_put(n); /* the hydration's: n may be gone now */
}

static void hyd_fail(struct node *n, int err, const char *why)
{
	struct hyd *h = n->hyd;

	hyd_drain_writes(h);
	if (!h->failed) {
		h->failed = true;
		h->err = err;
		if (!n->rv->closing) {
			n->rv->st.hydration_failures++;
			td_metrics_add(TD_M_HYDRATIONS, 1, "failed", NULL, NULL);
			rv_report(n->rv, n->id, "hydration of %s failed: %s", n->key, why);
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

/* The catalog says CACHED, with the copy's ctime after tierd's last change of
 * it in ctime_ns (the original's ctime is of no use once the file is tiered;
 * 0: not known, then the row's stat fields are left alone). */
static void record_cached(struct td_rview *rv, const struct node *n, int64_t copy_ctime_ns)
{
	struct td_catalog_expect ex = { .state = TD_CATALOG_TIERED, .step = TD_CATALOG_ANY };
	struct td_catalog_entry *row = NULL, e = { 0 };
	struct td_catalog_error ce;
	unsigned fields = TD_CATALOG_F_STATE | TD_CATALOG_F_CACHE;

	uv_mutex_lock(&rv->cat_lock);
	if (copy_ctime_ns && td_catalog_get(&row, rv->cat, n->id, &ce) == 0) {
		e = *row; /* F_STAT writes all the stat fields: the row's, but for ctime */
		e.ctime_ns = copy_ctime_ns;
		fields |= TD_CATALOG_F_STAT;
	}
	memcpy(e.id, n->id, sizeof(e.id));
	e.state = TD_CATALOG_CACHED;
	e.cache_state = TD_CATALOG_CACHE_CACHED;
	e.cached_bytes = n->size;
	e.cache_atime_ns = td_now_ns();
	td_catalog_update(rv->cat, &e, fields, &ex, &ce);
	uv_mutex_unlock(&rv->cat_lock);
	td_catalog_entry_free(row);
}

static void w_hyd_final(uv_work_t *w)
{
	struct hyd_final *f = w->data;
	struct node *n = f->n;
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;
	struct timespec ts[2] = { { n->atime_ns / 1000000000, n->atime_ns % 1000000000 },
		                  { n->mtime_ns / 1000000000, n->mtime_ns % 1000000000 } };
	struct stat st;

	/* Invariant 7: the copy carries the original owner, ACL, xattrs and mode. */
	f->r = rv_copy_owner(n, h->fd);
	if (f->r == 0 && (futimens(h->fd, ts) < 0 || fsync(h->fd) < 0))
		f->r = -errno;
	if (f->r < 0) {
		snprintf(f->why, sizeof(f->why), "cannot finish the copy: %s", strerror(-f->r));
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
	/* The rename was tierd's last change of the copy: its ctime from here on
	 * tells a user's change (td_cache_copy_unchanged). */
	if (fstat(h->fd, &st) < 0)
		st.st_ctim = (struct timespec){ 0, 0 };
	close(h->fd);
	h->fd = -1;
	f->r = td_ns_bind(rv->state_dir, n->id, n->name, n->name_len, f->final);
	if (f->r < 0) {
		unlink(f->final);
		snprintf(f->why, sizeof(f->why), "cannot rebind the dynamic link: %s",
		         strerror(-f->r));
		return;
	}
	record_cached(rv, n, (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec);
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
		/* Without it (a lease in the way) reads come from the target. */
		rv_set_copy_fd(n, rv_open_copy(f->final, O_RDONLY));
		rv->st.hydrations++;
		td_metrics_add(TD_M_HYDRATIONS, 1, "ok", NULL, NULL);
		hyd_cleanup(n);
		td_rview_trim(rv);
	}
	free(f);
	rv_maybe_closed(rv);
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
		rv_pread_finish(pr);
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
		struct chunk *c = rv_chunk_find(rv, n, h->hash_next);

		if (!c) { /* cannot happen: pinned until hashed */
			hyd_fail(n, -EIO, "internal: chunk lost before hashing");
			return;
		}
		td_hash_update(h->h, c->buf, c->len);
		h->hash_next++;
		rv_chunk_put(rv, c);
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

/* Chunk c is in the .part (res: the write's result): the next write, the
 * hash, more fetches. */
static void hyd_written(struct node *n, const struct chunk *c, ssize_t res)
{
	struct hyd *h = n->hyd;

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

static void on_hyd_write(uv_fs_t *fs)
{
	struct hyd_write *hw = fs->data;
	struct chunk *c = hw->c; /* the hydration holds it until it is hashed */
	struct node *n = c->n;
	struct td_rview *rv = n->rv;
	ssize_t res = fs->result;

	uv_fs_req_cleanup(fs);
	free(hw);
	rv->pending_work--;
	rv_node_hold(n); /* the hydration may end, and drop n, in any step */
	hyd_written(n, c, res);
	rv_node_put(n);
	rv_maybe_closed(rv);
}

void rv_hyd_chunk_ready(struct chunk *c)
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

/* A read of the .part ended (rview_read.c): it held a slot of the window, and
 * the hydration may finish (and close the .part) only now. */
void rv_hyd_part_read_done(struct node *n)
{
	rv_node_hold(n); /* the hydration may end, and drop n, in any step */
	n->hyd->in_flight--;
	if (n->hyd->failed) {
		hyd_cleanup(n);
	} else {
		hyd_hash(n);
		if (n->hyd && !n->hyd->failed && !n->hyd->finishing)
			hyd_pump(n);
	}
	rv_node_put(n);
}

/* Asks for the next chunks, up to the window. */
static void hyd_pump(struct node *n)
{
	struct td_rview *rv = n->rv;
	struct hyd *h = n->hyd;

	/* Slow start: one fetch until the first chunk is in (see rv_op_read: the
	 * opener's first read should not wait behind HYD_WINDOW fetches). */
	unsigned window = h->hash_next ? HYD_WINDOW : 1;

	rv_node_hold(n); /* a chunk that failed already may end the hydration */
	while (!h->failed && !rv->closing && h->in_flight < window && h->next_fetch < h->n_chunks) {
		/* The first chunk alone (the opener's first read should not wait
		 * behind a large request), then several per request. */
		struct chunk *c = h->hash_next
		                      ? rv_chunk_get_run(rv, n, h->next_fetch, RV_BUF_AHEAD)
		                      : rv_chunk_get_as(rv, n, h->next_fetch, RV_BUF_HYD);

		/* Near the memory cap the window shrinks; the one fetch a
		 * hydration needs to go on has a better claim. */
		if (!c && h->in_flight)
			break;
		if (!c && h->hash_next)
			c = rv_chunk_get_as(rv, n, h->next_fetch, RV_BUF_HYD);
		if (!c) {
			hyd_fail(n, n->t ? -EAGAIN : -EIO,
			         n->t ? "chunk memory cap reached" : "cannot fetch");
			goto out;
		}
		h->next_fetch++; /* c's reference is the hydration's until it is hashed */
		h->in_flight++;
		c->hyd_wanted = true;
		if (c->st != C_FETCHING) {
			rv_hyd_chunk_ready(c);
			if (!n->hyd)
				goto out;
		}
	}
	if (n->hyd && h->n_chunks == 0 && !h->finishing)
		hyd_finish(n);
out:
	rv_node_put(n);
}

/* A new hydration's state and its empty .part file, as large as the object. */
static int hyd_new(struct td_rview *rv, const struct node *n, struct hyd **out)
{
	struct hyd *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->n_chunks = (n->size + CHUNK - 1) / CHUNK;
	h->written = calloc((size_t)(h->n_chunks / 8 + 1), 1);
	r = !h->written || td_hash_new(&h->h, TD_HASH_SHA256) < 0 ? -ENOMEM : 0;
	if (r == 0)
		r = td_ns_cache_mkdir(rv->state_dir, rv->cache_dir, n->id);
	if (r == 0)
		r = td_ns_cache_path(h->part, sizeof(h->part), rv->cache_dir, n->id);
	if (r < 0) {
		hyd_free(h);
		return r;
	}
	strncat(h->part, ".part", sizeof(h->part) - strlen(h->part) - 1);
	h->fd = open(h->part, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (h->fd < 0 || ftruncate(h->fd, (off_t)n->size) < 0) {
		r = -errno;
		rv_report(rv, n->id, "cannot create %s: %s", h->part, strerror(errno));
		if (h->fd >= 0) {
			close(h->fd);
			unlink(h->part);
		}
		hyd_free(h);
		return r;
	}
	*out = h;
	return 0;
}

/* Starts hydrating n (the caller checked it has no copy in this session and
 * no hydration). Its waiters are called now if there is nothing to do or it
 * cannot start, else when it ends. */
void rv_hyd_start(struct td_rview *rv, struct node *n)
{
	char path[4096];
	struct hyd *h = NULL;
	int r;

	/* A file larger than the whole cache is only ever streamed. */
	if (rv->cache_limit && n->size > rv->cache_limit) {
		hwait_fire(n, -EFBIG);
		return;
	}
	/* Already in the cache (keep_cached, or an earlier session): use it. */
	if (td_ns_cache_path(path, sizeof(path), rv->cache_dir, n->id) == 0 &&
	    access(path, F_OK) == 0) {
		r = rv_open_copy(path, O_RDONLY);
		/* A lease in the way (the owner's, or tierd's own): the copy is
		 * there all the same. Reads come from the target meanwhile, and a
		 * write open waits for the lease on the thread pool. */
		n->cached = r >= 0 || r == -EWOULDBLOCK;
		rv_set_copy_fd(n, r >= 0 ? r : -1);
		hwait_fire(n, n->cached ? 0 : -EIO);
		td_rview_trim(rv); /* a copy made elsewhere (keep_cached) counts too */
		return;
	}
	r = hyd_new(rv, n, &h);
	if (r < 0) {
		hwait_fire(n, r);
		return;
	}
	n->hyd = h;
	rv_node_hold(n); /* the hydration's, until hyd_cleanup */
	hyd_pump(n);
}

/* A catalog lookup (rv_w_lookup) followed by a hydration request. */
struct hyd_req {
	struct lookup_job lk; /* first: rv_w_lookup sees a lookup_job */
	void (*done)(void *data, int status);
	void *data;
};

static void a_hyd_lookup(uv_work_t *w, int status)
{
	struct hyd_req *q = w->data;
	struct td_rview *rv = q->lk.rv;
	struct node *n;

	rv->pending_work--;
	n = rv_node_of_lookup(&q->lk, q->lk.r == 0 && q->lk.e->sha256[0] && q->lk.e->object_key);
	if (!n || rv->closing) {
		q->done(q->data, q->lk.r < 0 ? q->lk.r : -EIO);
	} else if (n->cached) {
		q->done(q->data, 0);
		td_rview_trim(rv); /* a pin of a copy in place: the others may go now */
	} else if (rv_hwait_add(n, q->done, q->data) < 0) {
		q->done(q->data, -ENOMEM);
	} else if (!n->hyd) {
		rv_hyd_start(rv, n);
	}
	if (n)
		rv_node_put(n);
	td_catalog_entry_free(q->lk.e);
	free(q);
	rv_maybe_closed(rv);
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
	if (uv_queue_work(rv->loop, &q->lk.work, rv_w_lookup, a_hyd_lookup) < 0) {
		free(q);
		return -EAGAIN;
	}
	rv->pending_work++;
	return 0;
}
