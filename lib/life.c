/*
 * life — see life.h. Runs on the thread of one verify or gc; owns its loop,
 * the target instances it made and its catalog handle.
 */
#include "life.h"
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIFE_TARGETS_MAX 64

struct td_life {
	const struct td_config *conf;
	uv_loop_t loop;
	struct td_catalog *cat;
	struct {
		const char *name;
		struct td_target *t;
	} targets[LIFE_TARGETS_MAX];
	size_t n_targets;
	unsigned closing;
};

int td_life_open(struct td_life **out, const struct td_config *conf, const char *catalog_path,
                 char *err, size_t errlen)
{
	struct td_catalog_error ce;
	struct td_life *l = calloc(1, sizeof(*l));
	int r;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	l->conf = conf;
	r = uv_loop_init(&l->loop);
	if (r < 0) {
		snprintf(err, errlen, "cannot start an event loop: %s", uv_strerror(r));
		free(l);
		return r;
	}
	r = td_catalog_open(&l->cat, catalog_path, TD_CATALOG_NO_CHECK, &ce);
	if (r < 0) {
		if (r == -EBUSY)
			snprintf(err, errlen, "%s (locked by another process; try again later)",
			         ce.message);
		else
			snprintf(err, errlen, "%s", ce.message);
		uv_loop_close(&l->loop);
		free(l);
		return r;
	}
	*out = l;
	return 0;
}

static void target_closed(void *data)
{
	struct td_life *l = data;

	l->closing--;
}

void td_life_close(struct td_life *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_targets; i++) {
		l->closing++;
		td_target_close(l->targets[i].t, target_closed, l);
	}
	while (l->closing)
		uv_run(&l->loop, UV_RUN_ONCE);
	uv_run(&l->loop, UV_RUN_NOWAIT);
	uv_loop_close(&l->loop);
	td_catalog_close(l->cat);
	free(l);
}

struct td_catalog *td_life_catalog(struct td_life *l)
{
	return l->cat;
}

struct td_target *td_life_target(struct td_life *l, const char *name, char *err, size_t errlen)
{
	const struct td_target_conf *tc = NULL;
	struct td_target_error te = { 0 };
	struct td_target *t;

	for (size_t i = 0; i < l->n_targets; i++)
		if (strcmp(l->targets[i].name, name) == 0)
			return l->targets[i].t;
	for (size_t i = 0; i < l->conf->n_targets; i++)
		if (strcmp(l->conf->targets[i].name, name) == 0)
			tc = &l->conf->targets[i];
	if (!tc) {
		snprintf(err, errlen, "target '%s' is not in the configuration", name);
		return NULL;
	}
	if (l->n_targets == LIFE_TARGETS_MAX) {
		snprintf(err, errlen, "too many targets");
		return NULL;
	}
	if (td_target_new(&t, &l->loop, tc, &te) < 0) {
		snprintf(err, errlen, "target %s: %s", name, te.message);
		return NULL;
	}
	l->targets[l->n_targets].name = tc->name;
	l->targets[l->n_targets].t = t;
	l->n_targets++;
	return t;
}

int td_life_head(struct td_life *l, struct td_target *t, const char *key,
                 struct td_object_info *info, struct td_target_error *terr)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&l->loop, &s,
	                           td_target_head(t, NULL, key, info, td_target_sync_cb, &s), terr);
}

int td_life_delete(struct td_life *l, struct td_target *t, const char *key,
                   struct td_target_error *terr)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&l->loop, &s,
	                           td_target_delete(t, NULL, key, td_target_sync_cb, &s), terr);
}

int td_life_read_verify(struct td_life *l, struct td_target *t, const char *key, int fd,
                        const char *sha256, struct td_target_error *terr)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(&l->loop, &s,
	                           td_target_get_fd(t, NULL, key, 0, UINT64_MAX, fd, 0,
	                                            sha256 && *sha256 ? sha256 : NULL,
	                                            td_target_sync_cb, &s),
	                           terr);
}

int td_life_put_fd(struct td_life *l, struct td_target *t, const char *key, int fd, uint64_t size,
                   struct td_put_result *res, struct td_target_error *terr)
{
	struct td_target_sync s = { 0 };

	return td_target_sync_wait(
	    &l->loop, &s,
	    td_target_put_fd(t, NULL, key, fd, size, NULL, 0, res, td_target_sync_cb, &s), terr);
}

/* td_target_list gives `each` and the completion one data pointer: the sync
 * state comes first, so td_target_sync_cb can take the whole of it. */
struct list_sync {
	struct td_target_sync s;
	td_target_list_each each;
	void *data;
};

static int list_each(void *data, const struct td_object_info *info)
{
	struct list_sync *ls = data;

	return ls->each(ls->data, info);
}

int td_life_list(struct td_life *l, struct td_target *t, const char *prefix,
                 td_target_list_each each, void *data, struct td_target_error *terr)
{
	struct list_sync ls = { .each = each, .data = data };

	return td_target_sync_wait(
	    &l->loop, &ls.s, td_target_list(t, NULL, prefix, list_each, td_target_sync_cb, &ls),
	    terr);
}

int td_life_stale_uploads(struct td_life *l, struct td_target *t, int64_t older_than_s, bool abort,
                          unsigned *found, unsigned *aborted, struct td_target_error *terr)
{
	struct td_target_sync s = { 0 };
	int r = td_target_stale_uploads(t, NULL, older_than_s, abort, found, aborted,
	                                td_target_sync_cb, &s);

	if (r == -ENOTSUP) {
		*found = *aborted = 0;
		return r;
	}
	return td_target_sync_wait(&l->loop, &s, r, terr);
}

void td_life_copy(char *out, size_t n, const char *src)
{
	size_t l = src ? strnlen(src, n - 1) : 0;

	memcpy(out, src ? src : "", l);
	out[l] = '\0';
}

void td_life_emit(const struct td_life_sink *sink, json_t *ev)
{
	if (sink && sink->on_event && ev)
		sink->on_event(sink->ctx, ev);
	else
		json_decref(ev);
}

bool td_life_cancelled(const struct td_life_sink *sink)
{
	return sink && sink->cancel && atomic_load(sink->cancel);
}

void td_life_time(char *out, size_t n, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns <= 0 || !gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, n, "%s", "");
}

void td_life_target_msg(char *out, size_t n, int r, const struct td_target_error *e)
{
	if (e && e->message[0] && e->http_status)
		snprintf(out, n, "%s (HTTP %d)", e->message, e->http_status);
	else if (e && e->message[0])
		snprintf(out, n, "%s", e->message);
	else
		snprintf(out, n, "%s", strerror(-r));
}
