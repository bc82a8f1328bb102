#!/usr/bin/env bash
# The adversarial soak (issue 12): tests/soak/soak.py against tierd, its remote
# view (FUSE) and radosgw behind tests/soak/fault_proxy.py.
#   TD_SOAK_SECONDS=N  how long the workers run (default 60; 600 when
#                      TD_BENCH_SIZE=full, as scripts/bench sets)
#   TD_SOAK_SEED=N     replays a run's choices (printed at the start and end)
#   TD_SOAK_FAULT_RATE=R  the share of S3 requests that get a fault (0.08)
#   TD_SOAK_INJECT=model  a deliberate model mismatch: the run must report lost 1
#   TD_SOAK_KEEP=1     a failed run keeps its tree (log, catalog, cache) for a look
set -uo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/missing.sh"
[ "$(id -u)" = 0 ] || td_missing "root (the remote view, chown)"
[ -c /dev/fuse ] || td_missing "/dev/fuse"
td_need_s3
td_need_cmds aws
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ -n "${TD_SOAK_SECONDS:-}" ]; then
	secs=$TD_SOAK_SECONDS
elif [ "${TD_BENCH_SIZE:-}" = full ]; then
	secs=600
else
	secs=60
fi
seed=${TD_SOAK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "soak: seed $seed, $secs s (replay: TD_SOAK_SEED=$seed)"
t=$(mktemp -d /tmp/tierd-soak.XXXXXX)
cleanup() {
	umount -l "$t/run/remote" 2>/dev/null || true
	umount -l "$t/cache" 2>/dev/null || true # soak.py's tmpfs, if it made one
	if [ $rc != 0 ] && [ -f "$t/tierd.log" ]; then
		echo "--- tierd.log (errors, last 40)"
		grep -E " (error|warning): " "$t/tierd.log" | grep -v "plain http" | tail -40
		echo "--- tierd.log (tail)"
		tail -30 "$t/tierd.log"
	fi
	if [ $rc != 0 ] && [ -n "${TD_SOAK_KEEP:-}" ]; then
		echo "soak: kept $t"
	else
		rm -rf "$t"
	fi
}
rc=1
trap cleanup EXIT
"$PY" "$here/soak.py" "$t" "$secs" "$seed"
rc=$?
echo "soak: exit $rc (seed $seed)"
exit $rc
