/*
 * rebuild_check — at start, a catalog with no rows while a target holds
 * manifests under this host's prefix means state_dir was lost (or replaced)
 * and every user link into the namespace dangles: tierd says so, plainly, in
 * the log and in `tierctl status` (recent_errors), and points at
 * `tierctl rebuild`. It does not refuse to start: the manifests stay where
 * they are, the rebuild merges into whatever catalog tierd has made
 * meanwhile, and a tierd that will not start also serves no file that is
 * still local (see tierd(8), REBUILD).
 *
 * Loop thread, except the row count (thread pool, under rcat_lock).
 */
#include "log.h"
#include "ns.h"
#include "service_int.h"

#include <stdlib.h>
#include <string.h>

struct lost_check {
	uv_work_t work;
	struct service *s;
	struct td_catalog_stats st;
	int r;
};

struct lost_list {
	struct service *s;
	struct target_slot *ts;
	bool found;
};

static int on_listed(void *data, const struct td_object_info *info)
{
	struct lost_list *l = data;
	size_t n = strlen(info->key);
	char id[33];

	if (n != 3 + 32 + 5 || info->key[2] != '/' || strcmp(info->key + 35, ".json") != 0)
		return 0;
	memcpy(id, info->key + 3, 32);
	id[32] = '\0';
	if (!td_ns_valid_id(id))
		return 0;
	l->found = true;
	return 1; /* one is enough */
}

static void on_list_done(void *data, struct td_target_req *req, int status,
                         const struct td_target_error *err)
{
	struct lost_list *l = data;
	struct service *s = l->s;

	if (l->found) {
		const struct td_target_conf *tc = td_config_target(s->conf->c, l->ts->name);

		svc_error(s,
		          "the catalog in %s is empty, but target %s holds manifests of this "
		          "host under %s: state_dir was lost and the links to those files "
		          "dangle; stop tierd and run 'tierctl rebuild' (tierd(8), REBUILD)",
		          s->conf->c->state_dir, l->ts->name,
		          !tc ? "its prefix"
		          : tc->type == TD_TARGET_S3
		              ? (tc->prefix && *tc->prefix ? tc->prefix : "/")
		              : tc->path);
	} else if (status < 0)
		log_info("target %s: could not look for manifests of a lost catalog: %s",
		         l->ts->name, err && err->message[0] ? err->message : strerror(-status));
	free(l);
}

static void w_count(uv_work_t *w)
{
	struct lost_check *j = w->data;
	struct td_catalog_error ce;

	uv_mutex_lock(&j->s->rcat_lock);
	j->r = td_catalog_stats(&j->st, j->s->rcat, &ce);
	uv_mutex_unlock(&j->s->rcat_lock);
}

static void a_count(uv_work_t *w, int status)
{
	struct lost_check *j = w->data;
	struct service *s = j->s;
	uint64_t rows = 0;

	for (int i = 0; i < TD_CATALOG_STATE_COUNT; i++)
		rows += j->st.files[i];
	if (j->r == 0 && rows == 0 && !s->stopping) {
		for (size_t i = 0; i < s->n_targets; i++) {
			struct lost_list *l;

			if (!s->targets[i].t || !(l = calloc(1, sizeof(*l))))
				continue;
			l->s = s;
			l->ts = &s->targets[i];
			if (td_target_list(l->ts->t, NULL, "", on_listed, on_list_done, l) < 0)
				free(l);
		}
	}
	free(j);
}

void svc_check_lost_state(struct service *s)
{
	struct lost_check *j;

	if (!s->rcat || !(j = calloc(1, sizeof(*j))))
		return;
	j->s = s;
	j->work.data = j;
	if (uv_queue_work(s->loop, &j->work, w_count, a_count) < 0)
		free(j);
}
