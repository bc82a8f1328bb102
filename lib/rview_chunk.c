/*
 * rview_chunk.c — chunks: 1 MiB pieces of an object, fetched by range
 * requests, shared by every reader and the hydration of their node.
 *
 * Loop thread; the progress callbacks run inside curl's callbacks on the
 * loop thread, where no request may be started. It owns the chunk table, the
 * LRU of idle chunks (at most CHUNKS_SOFT_MAX), the pool of free buffers and
 * the groups (several chunks fetched by one request).
 */
#include "metrics.h"
#include "rview_int.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

static void lru_evict(struct td_rview *rv, struct chunk *c);

/* Every CHUNK-sized buffer the view holds (chunks', reads' and the pool's)
 * counts against rv->buf_max (the chunk memory cap). Idle chunks and the pool
 * are reclaimed first. Read-ahead and a hydration's window may fill only 5/8
 * and the one fetch a hydration needs to go on 6/8 of the cap with busy
 * buffers: the rest is kept for readers' own chunks. NULL at the cap. */
char *rv_buf_get(struct td_rview *rv, enum rv_buf_use use)
{
	unsigned busy = rv->n_bufs - rv->n_buf_pool - rv->n_idle;
	char *b;

	if ((use == RV_BUF_AHEAD && busy >= rv->buf_max * 5 / 8) ||
	    (use == RV_BUF_HYD && busy >= rv->buf_max * 6 / 8))
		return NULL;
	while (!rv->n_buf_pool && rv->n_bufs >= rv->buf_max && rv->lru_head)
		lru_evict(rv, rv->lru_head);
	if (rv->n_buf_pool)
		return rv->buf_pool[--rv->n_buf_pool];
	if (rv->n_bufs >= rv->buf_max || !(b = malloc(CHUNK)))
		return NULL;
	rv->n_bufs++;
	rv->st.chunk_mem_peak_bytes =
	    TD_MAX(rv->st.chunk_mem_peak_bytes, (uint64_t)rv->n_bufs * CHUNK);
	return b;
}

void rv_buf_put(struct td_rview *rv, char *b)
{
	if (!b)
		return;
	if (rv->n_buf_pool < BUF_POOL_MAX && !rv->closing) {
		rv->buf_pool[rv->n_buf_pool++] = b;
	} else {
		free(b);
		rv->n_bufs--;
	}
}

static unsigned chunk_bucket(const struct node *n, uint64_t idx)
{
	return (unsigned)((((uintptr_t)n >> 4) * 2654435761u + idx * 40503u) % HASH_BUCKETS);
}

struct chunk *rv_chunk_find(struct td_rview *rv, struct node *n, uint64_t idx)
{
	for (struct chunk *c = rv->chunks[chunk_bucket(n, idx)]; c; c = c->hnext)
		if (c->n == n && c->idx == idx)
			return c;
	return NULL;
}

static void lru_unlink(struct td_rview *rv, struct chunk *c)
{
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

/* To the young end. */
static void lru_link(struct td_rview *rv, struct chunk *c)
{
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

/* Out of the table, its buffer back to the pool. Its last reference is gone;
 * the caller deals with the node reference a busy chunk held. */
static void chunk_free(struct td_rview *rv, struct chunk *c)
{
	struct chunk **pp;

	for (pp = &rv->chunks[chunk_bucket(c->n, c->idx)]; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	rv->n_chunks--;
	rv_buf_put(rv, c->buf);
	free(c);
}

/* The LRU lets go of an idle chunk: its reference was the last. */
static void lru_evict(struct td_rview *rv, struct chunk *c)
{
	lru_unlink(rv, c);
	c->refs--;
	chunk_free(rv, c);
}

void rv_chunk_hold(struct td_rview *rv, struct chunk *c)
{
	if (c->in_lru) { /* the LRU's reference becomes the caller's */
		lru_unlink(rv, c);
		rv_node_hold(c->n);
		return;
	}
	c->refs++;
}

/* Whether an idle chunk goes to the LRU. A chunk a stream has read through is
 * not kept (nobody else has the file open, and no hydration wants it): its
 * buffer goes straight back to the pool, where the read-ahead finds it,
 * instead of new memory. */
static bool chunk_worth_keeping(const struct td_rview *rv, const struct chunk *c)
{
	return c->st == C_READY && !rv->closing && !(c->read_out && c->n->opens <= 1 && !c->n->hyd);
}

void rv_chunk_put(struct td_rview *rv, struct chunk *c)
{
	struct node *n = c->n;

	if (c->refs == 1 && chunk_worth_keeping(rv, c)) {
		lru_link(rv, c); /* the last reference passes to the LRU */
		while (rv->n_idle > CHUNKS_SOFT_MAX)
			lru_evict(rv, rv->lru_head);
		rv_node_put(n); /* an idle chunk does not keep its node */
		return;
	}
	if (--c->refs == 0) {
		chunk_free(rv, c);
		rv_node_put(n);
	}
}

/* The node n is being freed: its chunks are all idle (a busy one would hold
 * it), and go with it. */
void rv_chunks_drop_idle(struct td_rview *rv, const struct node *n)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct chunk *c = rv->chunks[b], *next; c; c = next) {
			next = c->hnext;
			if (c->n == n && c->in_lru)
				lru_evict(rv, c);
		}
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
		rv_pread_copy_n(pr, c, got);
		if (--pr->missing == 0)
			rv_pread_finish(pr);
		rv_chunk_put(c->n->rv, c); /* the waiter's; the fetch still holds c */
	}
}

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
			rv_report(rv, n->id, "reading %s from target %s failed: %s", n->key,
			          n->target_name,
			          err && err->message[0] ? err->message : strerror(-status));
	} else {
		c->st = C_READY;
		rv->st.target_bytes += c->got;
		td_metrics_add(TD_M_FETCHED_BYTES, c->got, n->opener[0] ? n->opener : "unknown",
		               NULL, NULL);
	}
	while ((w = c->waiters)) {
		struct pread *pr = w->pr;

		c->waiters = w->next;
		free(w);
		if (c->st == C_READY)
			rv_pread_copy(pr, c);
		else
			pr->err = c->err;
		if (--pr->missing == 0)
			rv_pread_finish(pr);
		rv_chunk_put(rv, c); /* the waiter's */
	}
	if (c->hyd_wanted)
		rv_hyd_chunk_ready(c);
	if (c->ra_deferred) {
		c->ra_deferred = false;
		if (c->st == C_READY && n->opens && !rv->closing)
			rv_read_ahead(rv, n, c->ra_from);
	}
	rv_chunk_put(rv, c); /* the fetch's: c may be gone now */
}

static void on_chunk(void *data, struct td_target_req *req, int status,
                     const struct td_target_error *err)
{
	struct chunk *c = data;
	struct td_rview *rv = c->n->rv;

	rv->st.target_requests++;
	chunk_done(c, status, err, false);
	rv_maybe_closed(rv);
}

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
	rv_maybe_closed(rv);
}

/* A new chunk in the table, fetching (by the caller): its one reference is
 * the fetch's, and it holds its node. NULL on ENOMEM or at the memory cap
 * (rv_buf_get). */
static struct chunk *chunk_add(struct td_rview *rv, struct node *n, uint64_t idx,
                               enum rv_buf_use use)
{
	struct chunk *c = calloc(1, sizeof(*c));
	unsigned b;

	if (!c)
		return NULL;
	c->buf = rv_buf_get(rv, use);
	if (!c->buf) {
		free(c);
		return NULL;
	}
	c->n = n;
	rv_node_hold(n);
	c->refs = 1;
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

bool rv_on_disk(const struct node *n, uint64_t i)
{
	return n->hyd && n->hyd->written && (n->hyd->written[i / 8] & (1u << (i % 8)));
}

/* Like rv_chunk_get, but a missing chunk is fetched with the missing chunks
 * after it (up to GROUP_CHUNKS, not past the object's end, not those already
 * on disk) by one request. */
static struct chunk *chunk_get(struct td_rview *rv, struct node *n, uint64_t idx,
                               enum rv_buf_use use);

struct chunk *rv_chunk_get_run(struct td_rview *rv, struct node *n, uint64_t idx,
                               enum rv_buf_use use)
{
	uint64_t last = n->size ? (n->size - 1) / CHUNK : 0;
	struct iovec iov[GROUP_CHUNKS];
	struct chunk *c0;
	struct group *g;
	int r;

	if (rv_chunk_find(rv, n, idx) || !n->t || idx >= last || rv_chunk_find(rv, n, idx + 1) ||
	    rv_on_disk(n, idx + 1))
		return chunk_get(rv, n, idx, use);
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->rv = rv;
	g->idx0 = idx;
	for (uint64_t i = idx; i <= last && g->n < GROUP_CHUNKS; i++) {
		struct chunk *c;

		if (i > idx && (rv_chunk_find(rv, n, i) || rv_on_disk(n, i)))
			break;
		c = chunk_add(rv, n, i, use);
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
	r = td_target_get_range_etag(n->t, &g->req, n->key, idx * CHUNK, iov, g->n, n->etag,
	                             &g->got, on_group, g);
	c0 = g->c[0];
	c0->refs++; /* the caller's */
	if (r == 0) {
		td_target_req_on_progress(g->req, on_group_progress, g);
		return c0;
	}
	for (unsigned i = 0; i < g->n; i++) {
		struct chunk *c = g->c[i];

		c->g = NULL;
		c->st = C_FAILED;
		c->err = -EIO;
		rv->n_fetching--;
		rv_chunk_put(rv, c); /* the fetch's: all but c0 go */
	}
	free(g);
	return c0;
}

static struct chunk *chunk_get(struct td_rview *rv, struct node *n, uint64_t idx,
                               enum rv_buf_use use)
{
	struct chunk *c = rv_chunk_find(rv, n, idx);
	int r;

	if (c) {
		rv_chunk_hold(rv, c);
		return c;
	}
	if (!n->t || !(c = chunk_add(rv, n, idx, use)))
		return NULL;
	c->refs++; /* the caller's */
	r = td_target_get_range_etag(n->t, &c->req, n->key, idx * CHUNK,
	                             &(struct iovec){ .iov_base = c->buf, .iov_len = c->len }, 1,
	                             n->etag, &c->got, on_chunk, c);
	if (r == 0)
		td_target_req_on_progress(c->req, on_chunk_progress, c);
	if (r < 0) {
		rv->n_fetching--;
		c->st = C_FAILED;
		c->err = r;
		rv_chunk_put(rv, c); /* the fetch's, which never started */
	}
	return c;
}

/* Finds or starts fetching a chunk, and returns a reference to it for the
 * caller (which may be a failed chunk). NULL on ENOMEM, at the memory cap or
 * with a target that is gone. */
struct chunk *rv_chunk_get(struct td_rview *rv, struct node *n, uint64_t idx)
{
	return chunk_get(rv, n, idx, RV_BUF_READER);
}

struct chunk *rv_chunk_get_as(struct td_rview *rv, struct node *n, uint64_t idx,
                              enum rv_buf_use use)
{
	return chunk_get(rv, n, idx, use);
}

/* Stops early near the memory cap (rv_buf_get): the window shrinks. */
void rv_read_ahead(struct td_rview *rv, struct node *n, uint64_t from_idx)
{
	uint64_t last = n->size ? (n->size - 1) / CHUNK : 0;

	for (uint64_t i = from_idx; i <= last && i < from_idx + READAHEAD; i++) {
		struct chunk *c;

		if (rv_on_disk(n, i))
			continue;
		c = rv_chunk_get_run(rv, n, i, RV_BUF_AHEAD);
		if (!c)
			break;
		rv_chunk_put(rv, c);
	}
}

/* td_rview_close: every fetch ends (ECANCELED) soon. */
void rv_chunks_cancel(struct td_rview *rv)
{
	for (unsigned b = 0; b < HASH_BUCKETS; b++)
		for (struct chunk *c = rv->chunks[b]; c; c = c->hnext) {
			if (c->req)
				td_target_cancel(c->req);
			if (c->g && !c->g->cancelled) {
				c->g->cancelled = true;
				td_target_cancel(c->g->req);
			}
		}
}

/* The session's end: every chunk left goes, whoever held it. */
void rv_chunks_free_all(struct td_rview *rv)
{
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
}
