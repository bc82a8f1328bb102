#!/usr/bin/env bash
# A reload (SIGHUP) checks credentials as start-up does: a config whose s3
# target has a credentials_file of the wrong mode, a missing one, or no keys at
# all is rejected with file:line in the log, and the running config stays (its
# cache_size shows in `tierctl status`). A reload with good keys is taken. No
# secret ever reaches the log.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../lib/conf.sh"
. "$(dirname "$0")/../lib/daemon.sh"
. "$(dirname "$0")/../lib/report.sh"
t=$(mktemp -d /tmp/tierd-reload-creds.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

SECRET=wJalrXUtnFEMIreloadSECRET42
ACCESS=AKIDRELOADACCESS42
mkdir -p "$t/data" "$t/tier"
printf 'access_key = %s\nsecret_key = %s\n' "$ACCESS" "$SECRET" >"$t/creds"
chmod 600 "$t/creds"
cp "$t/creds" "$t/creds644"
chmod 644 "$t/creds644"

# conf CACHE_SIZE [lines for an s3 target]: writes tierd.conf.
conf() {
	local cache=$1
	shift
	{
		td_conf_tierd "$t" "log_level = debug" "admin_group = root" "cache_size = $cache"
		td_conf_dir_target nas "$t/tier"
		printf '\n[policy "data"]\npaths  = %s\ntarget = nas\n' "$t/data"
	} >"$t/tierd.conf"
	if [ $# -gt 0 ]; then
		printf '\n[target "s3t"]\ntype = s3\nendpoint = http://127.0.0.1:1\nbucket = tier\n' \
			>>"$t/tierd.conf"
		printf '%s\n' "$@" >>"$t/tierd.conf"
	fi
}

limit() {
	"$TIERCTL" -s "$t/run/tierd.sock" --json status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["limit_bytes"])'
}

# reload WORD: SIGHUP, then waits until the log has one more line with WORD.
reload() {
	local n0
	n0=$(grep -c "$1" "$t/tierd.log" || true)
	kill -HUP "$pid"
	for _ in $(seq 200); do
		[ "$(grep -c "$1" "$t/tierd.log" || true)" -gt "$n0" ] && return 0
		sleep 0.05
	done
	return 1
}

# The service's environment has no keys: an s3 target needs a credentials_file.
conf 1G
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$TIERD" -f -c "$t/tierd.conf" 2>"$t/tierd.log" &
pid=$!
td_daemon_wait "$t/tierd.conf" "$pid" && pass "tierd is up" ||
	{ cat "$t/tierd.log"; fail "tierd did not come up"; exit 1; }
[ "$(limit)" = $((1 << 30)) ] && pass "cache limit 1G" || fail "cache limit $(limit)"

# rejected NAME PATTERN LINE: the last reload was rejected for PATTERN at tierd.conf:LINE.
rejected() {
	if grep -q "tierd.conf:$3: credentials_file: .*$2" "$t/tierd.log"; then
		pass "$1: rejected at tierd.conf:$3"
	else
		fail "$1: no 'tierd.conf:$3: credentials_file: ... $2' in the log: $(tail -5 "$t/tierd.log")"
	fi
	[ "$(limit)" = $((1 << 30)) ] && pass "$1: the running config stays" ||
		fail "$1: cache limit is now $(limit)"
	kill -0 "$pid" 2>/dev/null && pass "$1: still running" || fail "$1: tierd died"
}

conf 2G "credentials_file = $t/creds644"
reload "rejected" || fail "no rejection logged for a group-readable credentials_file"
rejected "mode 0644" "accessible by group or others (mode 0644)" 21

conf 2G "credentials_file = $t/no-such-file"
reload "rejected" || fail "no rejection logged for a missing credentials_file"
rejected "missing file" "cannot open '$t/no-such-file'" 21

# No credentials_file and no keys in the environment: start-up refuses this, so
# reload must too (it used to take it).
conf 2G
printf '\n[target "s3t"]\ntype = s3\nendpoint = http://127.0.0.1:1\nbucket = tier\n' >>"$t/tierd.conf"
reload "rejected" || fail "no rejection logged for an s3 target without keys"
rejected "no keys" "target \"s3t\" has no credentials" 17

conf 3G "credentials_file = $t/creds"
reload "reloaded" || fail "a good config was not reloaded: $(tail -5 "$t/tierd.log")"
[ "$(limit)" = $((3 << 30)) ] && pass "good keys: reloaded (cache limit 3G)" ||
	fail "good keys: cache limit $(limit)"

if grep -q -e "$SECRET" -e "$ACCESS" "$t/tierd.log"; then
	fail "a key reached the log"
else
	pass "no key in the log"
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc = 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM exit $rc"
finish
