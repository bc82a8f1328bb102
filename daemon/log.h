/*
 * log — the daemon's only log sink: one line per event on stderr, with a
 * "<N>" syslog-priority prefix when stderr is journald's stream (JOURNAL_STREAM),
 * else with an ISO timestamp. Library code never logs; the daemon logs errors
 * once, where it handles them. Paths must be passed through td_escape first.
 */
#pragma once

#include "config.h"

void td_log_setup(enum td_log_level max_level);
void td_log_set_level(enum td_log_level max_level);
void td_log(enum td_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   td_log(TD_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) td_log(TD_LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  td_log(TD_LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    td_log(TD_LOG_INFO, __VA_ARGS__)
#define log_debug(...)   td_log(TD_LOG_DEBUG, __VA_ARGS__)
