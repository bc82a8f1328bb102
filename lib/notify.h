/*
 * notify — the sd_notify(3) protocol without libsystemd: one datagram of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
 * '@' for the abstract namespace). Any thread; no state.
 */
#pragma once

/* Sends `state` (e.g. "READY=1\nSTATUS=scanning") to `socket_path`. A NULL or
 * empty socket_path is "not under systemd" and returns 0 without sending.
 * Returns 0 or -errno (-EINVAL for a path that is neither absolute nor '@…',
 * -ENAMETOOLONG for one that does not fit sockaddr_un). */
int td_notify(const char *socket_path, const char *state);
