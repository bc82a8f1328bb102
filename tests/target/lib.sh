# Sourced by check_target_dir.sh and check_target_s3.sh: tierctl check-target
# run against the config each writes to $work/tierd.conf. Stops at the first
# failure (set -u only: a check-target that fails is what these tests look at).
tierctl=${TIERCTL:?TIERCTL not set (run under ctest)}
TARGET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$TARGET_LIB_DIR/../lib/missing.sh"
. "$TARGET_LIB_DIR/../lib/conf.sh"

fail() {
	echo "FAIL: $*"
	exit 1
}

# ct_run [PREFIX...] NAME: runs [PREFIX...] tierctl check-target NAME (PREFIX:
# env VAR=VALUE, timeout N), prints its output and keeps it in $out, its exit
# status in $rc.
ct_run() {
	out=$("${@:1:$#-1}" "$tierctl" -c "$work/tierd.conf" check-target "${@: -1}" 2>&1)
	rc=$?
	echo "$out"
}

# ct_expect RC WHAT [PREFIX...] NAME: ct_run, and a failure (WHAT) unless it
# exits RC.
ct_expect() {
	local want=$1 what=$2
	shift 2
	ct_run "$@"
	[ "$rc" -eq "$want" ] || fail "$what: exit $rc, want $want"
}

# ct_steps_ok STEP...: each step (an extended regex) has an "ok" line in $out.
ct_steps_ok() {
	local step
	for step in "$@"; do
		grep -qE "^  ok +$step" <<<"$out" || fail "step '$step' not ok"
	done
}
