/*
 * reach — see reach.h. A small array of named states and a fixed list of
 * subscribers; the hub owns copies of the names. Loop thread only.
 */
#include "reach.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reach_slot {
	char *name;
	struct td_reach_state st;
};

struct reach_sub {
	td_reach_cb cb;
	void *data;
};

struct td_reach {
	struct reach_slot *slots;
	size_t n;
	struct reach_sub subs[TD_REACH_MAX_SUBS];
	size_t n_subs;
};

/* The daemon's two copies of this list disagreed (one lacked ENETUNREACH and
 * ECONNRESET); this is their union. */
bool td_reach_unreachable(int status)
{
	switch (-status) {
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ETIMEDOUT:
	case EAGAIN:
	case ECONNRESET:
		return true;
	default:
		return false;
	}
}

bool td_reach_refused(int status)
{
	return status == -EACCES || status == -EPERM;
}

int td_reach_new(struct td_reach **out, const char *const *names, size_t n)
{
	struct td_reach *r = calloc(1, sizeof(*r));

	if (!r || !(r->slots = calloc(n ? n : 1, sizeof(*r->slots)))) {
		free(r);
		return -ENOMEM;
	}
	for (; r->n < n; r->n++)
		if (!(r->slots[r->n].name = strdup(names[r->n]))) {
			td_reach_free(r);
			return -ENOMEM;
		}
	*out = r;
	return 0;
}

void td_reach_free(struct td_reach *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->slots[i].name);
	free(r->slots);
	free(r);
}

int td_reach_subscribe(struct td_reach *r, td_reach_cb cb, void *data)
{
	if (r->n_subs >= TD_REACH_MAX_SUBS)
		return -ENOSPC;
	r->subs[r->n_subs++] = (struct reach_sub){ cb, data };
	return 0;
}

static struct reach_slot *find(const struct td_reach *r, const char *target)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->slots[i].name, target) == 0)
			return &r->slots[i];
	return NULL;
}

int td_reach_report(struct td_reach *r, const char *target, int status, const char *msg,
                    int64_t now_ns)
{
	struct reach_slot *s = find(r, target);
	struct td_reach_event ev;
	bool refused = td_reach_refused(status);
	bool reachable = !td_reach_unreachable(status) && !refused;

	if (!s)
		return -ENOENT;
	ev.target = s->name;
	ev.reachable = reachable;
	ev.change = !s->st.checked || s->st.reachable == reachable ? TD_REACH_SAME
	            : reachable                                    ? TD_REACH_BACK
	                                                           : TD_REACH_LOST;
	s->st.checked = true;
	s->st.reachable = reachable;
	s->st.checked_ns = now_ns;
	snprintf(s->st.last_error, sizeof(s->st.last_error), "%s%s",
	         refused ? "it answers but refuses our requests: " : "",
	         reachable ? "" : (msg && *msg ? msg : strerror(-status)));
	ev.message = msg;
	for (size_t i = 0; i < r->n_subs; i++)
		r->subs[i].cb(r->subs[i].data, &ev);
	return 0;
}

const struct td_reach_state *td_reach_get(const struct td_reach *r, const char *target)
{
	const struct reach_slot *s = find(r, target);

	return s ? &s->st : NULL;
}

bool td_reach_usable(const struct td_reach *r, const char *target)
{
	const struct td_reach_state *st = td_reach_get(r, target);

	return !st || !st->checked || st->reachable;
}
