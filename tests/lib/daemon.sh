# Sourced by the script tests that run tierd themselves (not through
# tests/e2e/lib.sh): waiting for it to answer on its control socket.

# td_daemon_wait CONF PID: waits until the tierd with PID answers `status` on
# the socket CONF names. Returns 0 once it does, 1 when it exits first or has
# not answered within 10 s.
td_daemon_wait() {
	local conf=$1 pid=$2
	for _ in $(seq 200); do
		"$TIERCTL" -c "$conf" status >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
