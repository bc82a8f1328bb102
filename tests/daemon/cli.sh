#!/usr/bin/env bash
# tierctl's habits: every command answers --help, options may follow the
# command (git/aws style), a global option without its value is a usage error.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../lib/conf.sh"
. "$(dirname "$0")/../lib/daemon.sh"
. "$(dirname "$0")/../lib/report.sh"
t=$(mktemp -d /tmp/tierd-cli.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	fi
	fusermount3 -uz "$t/run/remote" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

# Every command tierctl --help lists answers COMMAND --help with its usage, exit 0.
cmds=$("$TIERCTL" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1} /^$/{if (on>1) on=0; else if (on) on++}')
[ "$(echo "$cmds" | wc -w)" -ge 10 ] && pass "tierctl --help lists $(echo "$cmds" | wc -w) commands" ||
	fail "tierctl --help lists too few commands: $cmds"
for c in $cmds; do
	out=$("$TIERCTL" "$c" --help 2>&1) && [[ $out == *"usage: tierctl"*"$c"* ]] ||
		{ fail "tierctl $c --help: $out"; continue; }
	out=$("$TIERCTL" "$c" -h 2>&1) && [[ $out == *"usage: tierctl"* ]] || fail "tierctl $c -h: $out"
done
pass "COMMAND --help and -h print each command's usage"

mkdir -p "$t/data" "$t/tier"
{
	td_conf_tierd "$t"
	td_conf_dir_target nas "$t/tier"
	printf '\n[policy "data"]\npaths = %s\ntarget = nas\nschedule = manual\n' "$t/data"
} >"$t/tierd.conf"

# Bash completion: commands from --help, a command's flags, policy names from -c.
comp() { # WORDS... : completes the last word
	PATH=$(dirname "$TIERCTL"):$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tierctl; echo "${COMPREPLY[*]}"' \
		_ "$(dirname "$0")/../../contrib/tierctl.bash-completion" "$@"
}
[ "$(comp tierctl sta)" = status ] && [[ " $(comp tierctl migrate --t) " == *" --target "* ]] &&
	[ "$(comp tierctl -c "$t/tierd.conf" run d)" = data ] &&
	pass "bash completion: commands, a command's flags, policy names" ||
	fail "bash completion: '$(comp tierctl sta)' / '$(comp tierctl migrate --t)' / '$(comp tierctl -c "$t/tierd.conf" run d)'"
echo hello >"$t/data/f"
"$TIERD" -f -c "$t/tierd.conf" 2>"$t/log" &
pid=$!
td_daemon_wait "$t/tierd.conf" "$pid" || { fail "tierd did not start: $(cat "$t/log")"; finish; exit 1; }

# The same request, options before and after the command.
a=$("$TIERCTL" -c "$t/tierd.conf" --json info "$t/data/f")
b=$("$TIERCTL" info --json "$t/data/f" -c "$t/tierd.conf")
c=$("$TIERCTL" info "$t/data/f" --config="$t/tierd.conf" --json)
[ "$a" = "$b" ] && [ "$a" = "$c" ] && python3 -c 'import json,sys; f=json.loads(sys.argv[1])["files"]; assert len(f)==1 and f[0]["path"].endswith("/data/f"), f' "$a" &&
	pass "info --json PATH -c CONF = --json info PATH: one file, not a path named --json" ||
	fail "options after the command differ: '$a' / '$b' / '$c'"
sock=$t/run/tierd.sock
"$TIERCTL" status --socket "$sock" --json | python3 -c 'import json,sys; json.load(sys.stdin)["version"]' &&
	pass "status --socket S --json after the command" || fail "status --socket S --json"
# '--' ends the options: a file named --json is a path.
: >"$t/data/--json"
out=$("$TIERCTL" -c "$t/tierd.conf" info -- "$t/data/--json" 2>&1) && [[ $out == *"--json"* ]] &&
	pass "'--' ends the options (a file named --json)" || fail "info -- --json: $out"

# A run that moves nothing says why, in plan's words ("too_small 1" for f).
want=$("$TIERCTL" -c "$t/tierd.conf" plan | sed -n 's/^  skipped: //p')
"$TIERCTL" -c "$t/tierd.conf" run data >/dev/null || fail "run data"
for _ in $(seq 200); do
	grep -q 'policy data: scanned' "$t/log" && break
	sleep 0.05
done
got=$(sed -n 's/.*policy data: scanned.*not candidates: //p' "$t/log")
[ -n "$want" ] && [ "$want" != none ] && [ "$got" = "$want" ] &&
	pass "the run's summary gives plan's skip reasons: $got" ||
	fail "run summary '$got', plan '$want': $(grep 'policy data' "$t/log")"

set +e
out=$("$TIERCTL" info "$t/data/f" --config 2>&1)
rc=$?
set -e
[ $rc = 2 ] && [[ $out == *"--config needs a value"* ]] && pass "--config without a value: usage error, exit 2" ||
	fail "--config without a value: exit $rc, $out"
finish
