/*
 * rview_read.c — opens for reading, reads and releases.
 *
 * Loop thread. A read (struct pread) is answered from ready chunks without a
 * copy when it can be, else into its own buffer from chunks, the .part file
 * or the cache copy (libuv fs reads), and once every piece is in. A read that
 * ends a hydrating file waits for the SHA-256 check (DESIGN: a corrupt object
 * never reads as a whole file). It owns the open handles, the reads in
 * progress and the per-process open counts that tell a sweep.
 */
#include "metrics.h"
#include "rview_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * A stream read from offset 0 to its end, in order, is checked against the
 * catalog's SHA-256 (a hydration checks its own bytes; a stream has no copy
 * to check later). The bytes a read is about to serve are hashed; the read
 * that reaches the end gets -EIO if the object's bytes are not the ones that
 * were tiered. A stream that skips or goes back cannot be checked this way.
 */
static int stream_check(struct td_rview *rv, struct handle *h, uint64_t off,
                        const struct iovec *iov, unsigned n_iov)
{
	struct node *n = h->n;
	unsigned char digest[TD_SHA256_LEN];
	char hex[TD_SHA256_HEX];

	if (!h->streaming || h->wfd >= 0 || !n->sha256[0])
		return 0;
	if (off == 0 && !h->sha) { /* from the start (again): a fresh check */
		h->unverifiable = false;
		h->hashed = 0;
		if (td_hash_new(&h->sha, TD_HASH_SHA256) < 0)
			h->unverifiable = true;
	}
	if (h->unverifiable || !h->sha)
		return 0;
	if (off != h->hashed) {
		h->unverifiable = true;
		td_hash_free(h->sha);
		h->sha = NULL;
		return 0;
	}
	for (unsigned i = 0; i < n_iov; i++) {
		td_hash_update(h->sha, iov[i].iov_base, iov[i].iov_len);
		h->hashed += iov[i].iov_len;
	}
	if (h->hashed < n->size)
		return 0;
	td_hash_final(h->sha, digest);
	td_hash_free(h->sha);
	h->sha = NULL;
	td_hex(hex, digest, sizeof(digest));
	if (strcmp(hex, n->sha256) == 0)
		return 0;
	rv_report(rv, n->id,
	          "streamed read of %s: object changed on the target (its bytes hash to %s, the "
	          "catalog has %s)",
	          n->key, hex, n->sha256);
	return -EIO;
}

void rv_pread_finish(struct pread *pr)
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
	if (pr->err == 0 && pr->h)
		pr->err =
		    stream_check(rv, pr->h, pr->off,
		                 &(struct iovec){ .iov_base = pr->out, .iov_len = pr->size }, 1);
	if (pr->err < 0) {
		fuse_reply_err(pr->req, -pr->err);
	} else {
		fuse_reply_buf(pr->req, pr->out, pr->size);
		rv->st.reads++;
		rv->st.read_bytes += pr->size;
	}
	if (pr->out_pooled)
		rv_buf_put(rv, pr->out);
	else
		free(pr->out);
	free(pr);
}

/* Copies what pr wants of c's first `avail` bytes. */
void rv_pread_copy_n(struct pread *pr, const struct chunk *c, size_t avail)
{
	uint64_t c_off = c->idx * CHUNK;
	uint64_t s = TD_MAX(c_off, pr->off), e = TD_MIN(c_off + avail, pr->off + pr->size);

	if (e > s)
		memcpy(pr->out + (s - pr->off), c->buf + (s - c_off), e - s);
}

void rv_pread_copy(struct pread *pr, const struct chunk *c)
{
	rv_pread_copy_n(pr, c, c->len);
}
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
		rv_pread_finish(pr);
	if (f->part_of)
		rv_hyd_part_read_done(f->part_of);
	free(f);
	rv_maybe_closed(rv);
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

static bool reply_from_chunks(struct td_rview *rv, fuse_req_t req, struct handle *h, uint64_t off,
                              size_t size)
{
	struct node *n = h->n;
	uint64_t first = off / CHUNK, last = (off + size - 1) / CHUNK;
	struct iovec iov[2];
	struct chunk *cs[2];
	unsigned k = 0;

	if (last - first >= 2)
		return false;
	for (uint64_t i = first; i <= last; i++) {
		struct chunk *c = rv_chunk_find(rv, n, i);
		uint64_t c_off = i * CHUNK, s, e;

		if (!c || c->st != C_READY)
			return false;
		s = TD_MAX(c_off, off);
		e = TD_MIN(c_off + c->len, off + size);
		iov[k].iov_base = c->buf + (s - c_off);
		iov[k].iov_len = (size_t)(e - s);
		cs[k++] = c;
	}
	if (stream_check(rv, h, off, iov, k) < 0) {
		fuse_reply_err(req, EIO);
	} else {
		fuse_reply_iov(req, iov, (int)k);
		rv->st.reads++;
		rv->st.read_bytes += size;
	}
	for (unsigned i = 0; i < k; i++) { /* used: to the young end of the LRU */
		stream_mark(h, cs[i], off, size);
		rv_chunk_hold(rv, cs[i]);
		rv_chunk_put(rv, cs[i]);
	}
	return true;
}

/* How much of [off, off+size) there is to read: 0 at or past the end. A
 * write handle reads its copy, whose size may have changed. */
static size_t read_size(const struct handle *h, uint64_t off, size_t size)
{
	uint64_t fsize = h->n->size;

	if (h->wfd >= 0) {
		struct stat st;

		fsize = fstat(h->wfd, &st) == 0 ? (uint64_t)st.st_size : 0;
	}
	return off >= fsize ? 0 : (size_t)TD_MIN((uint64_t)size, fsize - off);
}

/* The read that ends a file being hydrated: it waits for the SHA-256 check. */
static bool ends_unverified(const struct handle *h, uint64_t off, size_t size)
{
	const struct node *n = h->n;

	return n->hyd && !n->hyd->verified && !h->streaming && h->wfd < 0 && off + size == n->size;
}

static struct pread *pread_new(struct td_rview *rv, fuse_req_t req, struct handle *h, uint64_t off,
                               size_t size)
{
	struct pread *pr = calloc(1, sizeof(*pr));

	if (pr) {
		pr->out_pooled = size > CHUNK / 4 && size <= CHUNK;
		pr->out = pr->out_pooled ? rv_buf_get(rv, RV_BUF_AHEAD) : NULL;
		if (!pr->out) { /* near the memory cap: a buffer of its own */
			pr->out_pooled = false;
			pr->out = malloc(size);
		}
	}
	if (!pr || !pr->out) {
		free(pr);
		return NULL;
	}
	pr->rv = rv;
	pr->req = req;
	pr->n = h->n;
	pr->h = h->streaming ? h : NULL; /* only a stream's reads look at it */
	pr->off = off;
	pr->size = size;
	pr->missing = 1; /* held until every piece is asked for */
	pr->verify = ends_unverified(h, off, size);
	return pr;
}

/* Asks for pr's part of chunk i: from the .part if it is there, else from
 * the chunk (copied now if its bytes are in, else when they come). */
static void read_piece(struct pread *pr, const struct handle *h, uint64_t i)
{
	struct td_rview *rv = pr->rv;
	struct node *n = h->n;
	struct chunk *c = rv_chunk_find(rv, n, i);

	/* Chunks already in the .part are read from it; once the hydration
	 * is finishing, its thread closes the .part, so fetch instead. */
	if (!c && n->hyd && !n->hyd->finishing && !n->hyd->failed &&
	    (n->hyd->written[i / 8] & (1u << (i % 8)))) {
		uint64_t s = TD_MAX(i * CHUNK, pr->off);
		uint64_t e = TD_MIN((i + 1) * CHUNK, pr->off + pr->size);

		if (read_local(pr, n->hyd->fd, s, (size_t)(e - s), n) < 0)
			pr->err = -EIO;
		return;
	}
	c = rv_chunk_get(rv, n, i);
	if (!c && n->t) {
		rv_report(rv, n->id, "chunk memory cap (%u MiB) reached: a read of %s got EAGAIN",
		          rv->buf_max * (CHUNK >> 20), n->key);
		pr->err = -EAGAIN;
		return;
	}
	if (!c) {
		pr->err = -EIO;
		return;
	}
	stream_mark(h, c, pr->off, pr->size);
	if (c->st == C_READY) {
		rv_pread_copy(pr, c);
	} else if (c->st == C_FAILED) {
		pr->err = c->err;
	} else if (TD_MIN(i * CHUNK + c->len, pr->off + pr->size) <= i * CHUNK + c->avail) {
		rv_pread_copy_n(pr, c, c->avail); /* its bytes are in already */
	} else {
		struct waiter *w = malloc(sizeof(*w));

		if (w) {
			w->pr = pr;
			w->next = c->waiters;
			c->waiters = w;
			pr->missing++;
			return; /* our reference is the waiter's */
		}
		pr->err = -ENOMEM;
	}
	rv_chunk_put(rv, c);
}

/* Sequential access: keep the next chunks coming. First byte first: when a
 * sequential run starts on a chunk still being fetched and nothing is read
 * ahead yet (a fresh open), the read-ahead waits for that chunk, so the
 * reader's chunk does not share the connection pool and the server with
 * READAHEAD others (time to first byte of a 4 MiB cold file on radosgw:
 * ~10 ms with them, ~4 ms without). */
static void keep_ahead(struct td_rview *rv, struct handle *h, uint64_t off, size_t size)
{
	struct node *n = h->n;
	uint64_t last = (off + size - 1) / CHUNK;

	if (off == h->next_off || off == 0) {
		struct chunk *fc = rv_chunk_find(rv, n, last);

		if (fc && fc->st == C_FETCHING && !rv_chunk_find(rv, n, last + 1)) {
			fc->ra_deferred = true;
			fc->ra_from = last + 1;
		} else {
			rv_read_ahead(rv, n, last + 1);
		}
	}
	h->next_off = off + size;
}

void rv_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->n;
	uint64_t off = (uint64_t)offset;
	bool local = h->wfd >= 0 || (n->cached && rv_copy_fd(n) >= 0);
	struct pread *pr;

	if (n->corrupt) {
		fuse_reply_err(req, EIO);
		return;
	}
	size = size ? read_size(h, off, size) : 0;
	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (!local && !ends_unverified(h, off, size) && reply_from_chunks(rv, req, h, off, size)) {
		keep_ahead(rv, h, off, size);
		return;
	}
	pr = pread_new(rv, req, h, off, size);
	if (!pr) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (local) {
		if (read_local(pr, h->wfd >= 0 ? h->wfd : n->cache_fd, off, size, NULL) < 0)
			pr->err = -EIO;
	} else {
		for (uint64_t i = off / CHUNK; i <= (off + size - 1) / CHUNK; i++)
			read_piece(pr, h, i);
		keep_ahead(rv, h, off, size);
	}
	if (--pr->missing == 0)
		rv_pread_finish(pr);
}

/* The opener's name, from /proc (procfs: never blocks on a user's doing);
 * "" when it is gone. */
static void proc_comm(pid_t pid, char *comm, size_t n)
{
	char path[64];
	int fd;

	comm[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = read(fd, comm, n - 1);

		close(fd);
		if (k > 0) {
			comm[k] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
		}
	}
	for (char *p = comm; *p; p++) /* a name any user picks: printable ASCII only */
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

/* A process in no_hydrate, or one sweeping through many cold files (backup,
 * antivirus, indexer), is served by streaming. */
static bool should_stream(struct td_rview *rv, pid_t pid, const char *comm)
{
	int64_t now = td_monotonic_ns();
	struct pidrec *slot = NULL, *oldest = &rv->pids[0];

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
void rv_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct td_rview *rv = fuse_req_userdata(req);
	struct handle *h;
	struct node *n;
	bool is_file;
	char comm[64];

	n = rv_node_by_ino(rv, ino, &is_file);
	if (!n || !is_file) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		rv_open_for_write(rv, req, n, fi);
		return;
	}
	if (!n->t) {
		rv_report(rv, n->id, "target %s is not configured", n->target_name);
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
	proc_comm(fuse_req_ctx(req)->pid, comm, sizeof(comm));
	h->streaming = should_stream(rv, fuse_req_ctx(req)->pid, comm);
	/* The bytes fetched for this node count for its latest opener. */
	snprintf(n->opener, sizeof(n->opener), "%s", comm[0] ? comm : "unknown");
	td_metrics_add(TD_M_COLD_OPENS, 1, n->cached ? "cache" : "remote", NULL, NULL);
	n->opens++;
	rv_node_hold(n); /* the handle's, until rv_op_release */
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
		rv_hyd_start(rv, n);
}

void rv_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
	td_hash_free(h->sha);
	free(h);
	n->opens--;
	fuse_reply_err(req, 0);
	rv_node_put(n); /* the handle's */
}
