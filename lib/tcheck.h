/*
 * tcheck — the target check behind `tierctl check-target`: tests a target's
 * settings the way an admin needs before enabling it, without the daemon.
 * Runs put / head / range get / verified get / list / multipart / delete on
 * scratch keys under "<prefix>.tierd-check/<random>", checks the server's
 * clock and measures the round trip. The scratch keys are deleted even when a
 * step fails.
 *
 * td_tcheck_run() blocks its caller: it runs a private libuv loop on the
 * calling thread. Each step and warning is reported through the callbacks as
 * it happens, and kept in the caller's result.
 */
#pragma once

#include "config.h"
#include "target.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_TCHECK_MAX_STEPS 16

struct td_tcheck_step {
	const char *name; /* static */
	bool ok;
	double ms;
	char error[768]; /* why it failed; on success, an optional note */
};

struct td_tcheck_result {
	struct td_tcheck_step steps[TD_TCHECK_MAX_STEPS];
	size_t n_steps;
	char warnings[4][256];
	size_t n_warnings;
	int64_t skew_s; /* the target's clock minus ours, when have_skew */
	bool have_skew;
	double latency_ms; /* best round trip; < 0 when not measured */
	bool ok;           /* every step passed */
};

struct td_tcheck_opts {
	void *data;
	void (*on_step)(void *data, const struct td_tcheck_step *step);
	void (*on_warning)(void *data, const char *warning);
};

/* Checks the target `tc` (credentials already applied). Returns 0 with the
 * verdict in res->ok, or -errno when the check could not run at all (then no
 * callback was called). */
int td_tcheck_run(struct td_tcheck_result *res, const struct td_target_conf *tc,
                  const struct td_tcheck_opts *o);
