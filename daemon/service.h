/*
 * service — tierd's event loop: signals, the control socket, sd_notify, and
 * config reloads. One libuv loop on the main thread; blocking work (config
 * reloads today, the mover and catalog later) runs on libuv's thread pool.
 */
#pragma once

#include "config.h"

/* Runs the service until SIGTERM/SIGINT. Takes ownership of `conf`. Returns the
 * process exit status (0 clean stop, 1 failure to start). */
int td_service_run(const char *config_path, struct td_config *conf);
