/*
 * service_int — what service.c, commands.c and runs.c share. Loop thread only,
 * except where a field says otherwise.
 */
#pragma once

#include "catalog.h"
#include "policy.h"
#include "config.h"
#include "ctl.h"
#include "mover.h"
#include "reach.h"
#include "rview.h"
#include "scheduler.h"
#include "target.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/un.h>
#include <uv.h>

#define MAX_RECENT_ERRORS 20

/* A configuration shared by the service and the runs started under it: a run
 * keeps the configuration it started with alive across a reload. */
struct conf_ref {
	struct td_config *c;
	unsigned refs;
};

/* A configured target; whether it answers is kept in service.reach. */
struct target_slot {
	struct service *svc;
	char *name;
	struct td_target *t;
	bool probing;
	struct td_object_info probe_info;
};

struct svc_run; /* a policy run: runs.c */

struct service {
	uv_loop_t *loop;
	char *config_path;
	struct conf_ref *conf;
	const char *notify_socket;
	int64_t start_ns;
	bool stopping;
	bool draining; /* SIGTERM: letting the transfers in flight finish */
	uv_timer_t drain_timer;
	int64_t drain_deadline_ns;
	bool reloading;
	bool reload_again;

	uv_signal_t sig_term, sig_int, sig_hup, sig_io;
	uv_timer_t tick;
	int64_t last_probe_s;
	uv_pipe_t server;
	bool server_open;
	bool sock_owned;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client *clients;
	unsigned n_clients;      /* every connection */
	unsigned n_user_clients; /* those of peers that are not admins */
	unsigned user_jobs;      /* pool work queued for them (svc_queue_work) */

	struct target_slot *targets;
	size_t n_targets;
	unsigned targets_open;
	struct td_reach *reach; /* every target's reachability, published to subscribers */
	struct td_mover *mover;
	struct td_rview *rview;
	bool mover_ready; /* start-up recovery finished */
	bool mover_closed;
	char catalog_path[4096];
	struct td_catalog *rcat; /* queries, on the thread pool, under rcat_lock */
	uv_mutex_t rcat_lock;

	struct svc_run *runs;
	struct svc_life *life; /* verify and gc: cmd_lifecycle.c */
	struct td_scheduler *sched;

	char recent[MAX_RECENT_ERRORS][320];
	int64_t recent_ns[MAX_RECENT_ERRORS];
	unsigned n_recent, recent_next;
	uint64_t files_tiered, bytes_tiered, files_failed;
	int64_t last_dirty_scan_s;
	bool dirty_scanning;
	int64_t last_rollback_retry_s;
	bool retrying_rollbacks;
	uint64_t dirty_scans; /* completed, for status: tests wait for one */
	int64_t last_hot_scan_s;
	bool hot_scanning;
	uint64_t hot_scans; /* completed, for status */

	struct metrics_http *metrics; /* the metrics_listen server, or NULL */
	struct {
		char policy[128];
		int64_t ended_ns; /* wall clock */
	} last_runs[64];          /* each policy's last run, for the metrics */
	size_t n_last_runs;
	struct bulk *bulk; /* the bulk recall running (cmd_recall_bulk.c), or NULL */
};

struct client {
	struct service *svc;
	struct client *next, *prev;
	uv_pipe_t pipe;
	uv_timer_t idle;     /* reset by complete requests only */
	uv_timer_t deadline; /* runs while a request line is incomplete */
	int open_handles;
	unsigned refs; /* pending asynchronous replies */
	bool closing;
	struct td_ctl_framer framer;
	struct td_ctl_peer peer; /* immutable after accept: pool threads read it */
	bool privileged;         /* root or admin_group */
	bool user_slot;          /* counted in service.n_user_clients */
	/* A streaming reply waiting for the peer to read (client_when_drained). */
	void (*drain_cb)(struct client *c, void *data);
	void *drain_data;
	int64_t drain_since_ns;
};

/* Sends one line (steals msg). A no-op once the client is closing. */
void client_send(struct client *c, json_t *msg);
void client_ref(struct client *c);
/*
 * Flow control for replies of many lines (ls): whether more than
 * CLIENT_WQ_LOW bytes wait to be read, and a call of cb, once, when they have
 * been written down to that mark or the client is closing (then c->closing is
 * set: cb must finish without sending). One waiter per client. An admin may
 * read as slowly as it likes; a peer that is not one and reads nothing for
 * CLIENT_IDLE_MS while a reply waits is disconnected.
 */
bool client_congested(const struct client *c);
void client_when_drained(struct client *c, void (*cb)(struct client *c, void *data), void *data);
void client_unref(struct client *c);

/*
 * Queues a command's work on the thread pool for client c (uv_queue_work).
 * Work for peers that are not admins is capped (USER_JOBS_MAX in service.c):
 * beyond that it is refused with -EAGAIN at once, so users can never fill the
 * pool ahead of root. The after callback calls svc_work_done(c) once, when the
 * command no longer needs the pool (a paged command may queue more work with
 * uv_queue_work directly before that).
 */
int svc_queue_work(struct client *c, uv_work_t *w, uv_work_cb work, uv_after_work_cb after);
void svc_work_done(struct client *c);

/* Logs an error and keeps it for `tierctl status`. */
void svc_error(struct service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* svc_error, counted in tierd_errors_total under `kind` ("service" for
 * svc_error; NULL: counted where it happened already, e.g. by the mover). */
void svc_error_kind(struct service *s, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct target_slot *svc_target(struct service *s, const char *name);
/* Publishes what an operation on a target returned (td_reach_report). */
void svc_target_result(struct service *s, struct target_slot *ts, int status, const char *msg);
struct conf_ref *conf_get(struct service *s);
void conf_put(struct conf_ref *r);

void svc_reload(struct service *s);

/* ---- metrics.c ---- */
/* The metrics text (NULL and err < 0 when it could not be made), on the loop. */
typedef void (*svc_metrics_cb)(void *data, const char *text, size_t len, int err);
int svc_metrics_render(struct service *s, svc_metrics_cb cb, void *data);
/* Opens, moves or closes the /metrics listener to match metrics_listen. */
int svc_metrics_listen(struct service *s);
void svc_metrics_stop(struct service *s);
void cmd_metrics(struct service *s, struct client *c, json_t *args);
/* Recalls `id` (its cache copy replaces the link); done may be NULL. */
int svc_recall(struct service *s, const char *id, td_mover_cb done, void *data);
void svc_dirty_scan(struct service *s);
/* At start: warns when the catalog is empty but a target holds this host's
 * manifests (rebuild_check.c). */
void svc_check_lost_state(struct service *s);

/* Commands (commands.c). Each replies with client_send, now or later. */
struct command {
	const char *name;
	bool mutating; /* needs root or admin_group */
	void (*fn)(struct service *s, struct client *c, json_t *args);
};
/* Commands in files of their own (cmd_*.c). */
void cmd_restore(struct service *s, struct client *c, json_t *args);
void cmd_recall_bulk(struct service *s, struct client *c, json_t *args);
/* Resumes a bulk recall recorded before a crash or stop, once recovery is over. */
void svc_bulk_resume(struct service *s);
extern const struct command svc_commands[];
extern const size_t svc_n_commands;

/* Policy runs and their schedule (runs.c). runs_init creates the scheduler and
 * subscribes it to s->reach. */
int runs_init(struct service *s);
int run_start(struct service *s, const char *policy, char *err, size_t errlen);
bool run_active(struct service *s, const char *policy);
json_t *runs_status(struct service *s);
void runs_stop(struct service *s);
/* verify and gc (cmd_lifecycle.c): the commands, gc_schedule (every tick),
 * the last reports for status, cancelling at stop, freeing after the loop. */
void cmd_verify(struct service *s, struct client *c, json_t *args);
void cmd_gc(struct service *s, struct client *c, json_t *args);
void life_tick(struct service *s, int64_t now_s);
void life_status(struct service *s, json_t *reply);
void life_stop(struct service *s);
void life_free(struct service *s);

/* Schedules, watermarks: called every tick once recovery is over. */
void runs_tick(struct service *s, int64_t now_s);
void runs_reschedule(struct service *s);
