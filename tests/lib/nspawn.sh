# Sourced by the tests that boot a Debian 12 root under systemd-nspawn
# (tests/systemd/nspawn.sh): a real systemd as the container's PID 1.
#
#   ct_boot ROOT NAME [nspawn args]  boots ROOT (a copy: it is written to),
#                                    waits until systemd is up; sets CT_LEADER
#   ct CMD...                        runs CMD in the container's init
#                                    namespaces (never a service's): as a
#                                    login shell (`machinectl shell`) would
#   ct_halt                          powers the container off (kills it after 30 s)
#
# The host need not run systemd: nspawn runs with --register=no --keep-unit,
# so it asks no host service for anything, and the container shares the
# host's network (radosgw on 127.0.0.1 is reachable from it).
CT_NSPAWN_PID=
CT_LEADER=

ct_boot() { # ROOT NAME [args]
	local root=$1 name=$2 deadline st
	shift 2
	systemd-nspawn -q -D "$root" --boot --register=no --keep-unit --machine="$name" \
		--bind=/dev/fuse "$@" >"$root.console" 2>&1 </dev/null &
	CT_NSPAWN_PID=$!
	deadline=$((SECONDS + 90))
	while [ -z "$CT_LEADER" ] && [ $SECONDS -lt $deadline ]; do
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		CT_LEADER=$(pgrep -P "$CT_NSPAWN_PID" -x systemd || true)
		[ -n "$CT_LEADER" ] || sleep 0.1
	done
	if [ -z "$CT_LEADER" ]; then
		echo "systemd-nspawn did not start the container:"
		tail -20 "$root.console"
		return 1
	fi
	# running, or degraded (a unit the minimal root cannot start): both are up.
	# Until its bus is up, systemctl fails at once: ask again.
	while [ $SECONDS -lt $deadline ]; do
		st=$(timeout 60 nsenter -t "$CT_LEADER" -a systemctl is-system-running --wait 2>/dev/null || true)
		case $st in
		running | degraded) return 0 ;;
		esac
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "container's systemd is not up: '$st'"
	tail -20 "$root.console"
	return 1
}

ct() { nsenter -t "$CT_LEADER" -a "$@"; }

ct_halt() {
	[ -n "$CT_NSPAWN_PID" ] || return 0
	if [ -n "$CT_LEADER" ]; then
		kill -RTMIN+4 "$CT_LEADER" 2>/dev/null || true # systemd: poweroff
	fi
	for _ in $(seq 300); do
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$CT_NSPAWN_PID" 2>/dev/null || true
	wait "$CT_NSPAWN_PID" 2>/dev/null || true
	CT_NSPAWN_PID=
	CT_LEADER=
}
