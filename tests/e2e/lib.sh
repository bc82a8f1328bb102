# Shared helpers for the end-to-end tests (sourced, bash).
#
#   e2e_init NAME [s3]   temp dir $T, trap, counters; with "s3" requires the
#                        S3 server (tests/lib/missing.sh: fails under CI and
#                        in scripts/test when missing, else skips)
#   e2e_conf ARGS...     writes $T/tierd.conf: [tierd] under $T, then ARGS
#   e2e_policy TARGET PATHS [KEY=VALUE..]  the manual policy "p" the tests share
#   tierd_start [ENV=..] starts tierd (pid in $TDPID) and waits for "ready"
#   e2e_start [ENV=..]   tierd_start, a pass, or fail and end the test
#   tierd_stop           SIGTERM and wait
#   wait_idle [secs]     polls status until no run is active and nothing in flight
#   ctl ARGS...          $TIERCTL -c $T/tierd.conf ARGS
#   s3api ARGS...        aws s3api against the test server
#   n_migrating, check_no_orphans, check_ns_rows: catalog vs bucket and namespace
#   pass / fail / finish / e2e_abort MSG (fail and end the test)
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TDPID=
E2E_CLEANUP_HOOKS=()
. "$E2E_LIB_DIR/../lib/report.sh"
# A failure nothing after it can survive: counted, summed up, the test ends.
e2e_abort() { # MSG
	fail "$@"
	finish
	exit 1
}
. "$E2E_LIB_DIR/../lib/missing.sh"
. "$E2E_LIB_DIR/../lib/conf.sh"

e2e_cleanup() {
	local h
	set +e
	for h in "${E2E_CLEANUP_HOOKS[@]}"; do eval "$h"; done
	if [ -n "$TDPID" ] && kill -0 "$TDPID" 2>/dev/null; then
		kill -TERM "$TDPID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$TDPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$TDPID" 2>/dev/null
	fi
	if [ -n "${E2E_PREFIX:-}" ] && [ -n "${TD_S3_ENDPOINT:-}" ]; then
		s3_purge_prefix >/dev/null 2>&1
	fi
	[ -n "${T:-}" ] && [ -z "${E2E_KEEP:-}" ] && rm -rf "$T"
}

e2e_init() {
	local name=$1 need=${2:-}
	if [ "$need" = s3 ]; then
		td_need_s3
		command -v aws >/dev/null || { echo "FAIL awscli missing"; exit 1; }
		export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
		export AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
		export AWS_MAX_ATTEMPTS=2 AWS_PAGER=
		E2E_PREFIX="e2e-$$-$name-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')/"
	fi
	T=$(mktemp -d "/tmp/tierd-e2e-$name.XXXXXX")
	chmod 755 "$T"
	trap e2e_cleanup EXIT
	export TD_SWAP_GRACE_MS=${TD_SWAP_GRACE_MS:-100}
	mkdir -p "$T/data"
}

# The test's s3 target, under its own prefix, multipart from 5 MiB on.
s3_target_conf() { # NAME
	td_conf_s3_target "${1:-s3}" "$E2E_PREFIX" "part_size = 5M" "multipart_threshold = 5M"
}

dir_target_conf() { # NAME PATH
	td_conf_dir_target "$1" "$2"
}

# Writes $T/tierd.conf: [tierd] with paths under $T, then "$@" appended verbatim.
e2e_conf() {
	{
		cat <<CONF
[tierd]
state_dir = ${STATE_DIR:-$T/state}
cache_dir = $T/cache
run_dir   = $T/run
log_level = ${LOG_LEVEL:-info}
admin_group = ${ADMIN_GROUP:-root}
max_transfers = ${MAX_TRANSFERS:-4}

CONF
		printf '%s\n' "$@"
	} >"$T/tierd.conf"
}

# Prints policy "p": PATHS to TARGET by a manual run, files of any size older
# than a day by mtime, copies kept cached. KEY=VALUE replaces a default (an
# empty VALUE drops the key: tierd's default applies) or adds a key.
e2e_policy() { # TARGET PATHS [KEY=VALUE ...]
	local keys=(age_by min_age min_size schedule keep_cached) kv k
	local -A v=([age_by]=mtime [min_age]=1d [min_size]=0 [schedule]=manual [keep_cached]=yes)
	for kv in "${@:3}"; do
		k=${kv%%=*}
		[ -n "${v[$k]+set}" ] || keys+=("$k")
		v[$k]=${kv#*=}
	done
	printf '\n[policy "p"]\npaths = %s\ntarget = %s\n' "$2" "$1"
	for k in "${keys[@]}"; do
		[ -z "${v[$k]}" ] || printf '%s = %s\n' "$k" "${v[$k]}"
	done
}

ctl() { "$TIERCTL" -c "$T/tierd.conf" "$@"; }

s3api() { aws --endpoint-url "$TD_S3_ENDPOINT" s3api "$@"; }

# Keys under the test prefix, one per line.
s3_keys() {
	s3api list-objects-v2 --bucket "$TD_S3_BUCKET" --prefix "$E2E_PREFIX" \
		--query 'Contents[].Key' --output text | tr '\t' '\n' | grep -v '^None$' | grep -v '^$' || true
}
# Open multipart uploads under the prefix ("Key UploadId" per line).
s3_uploads() {
	s3api list-multipart-uploads --bucket "$TD_S3_BUCKET" --prefix "$E2E_PREFIX" \
		--query 'Uploads[].[Key,UploadId]' --output text | grep -v '^None$' | grep -v '^$' || true
}
s3_purge_prefix() {
	local k u
	s3_uploads | while read -r k u; do
		s3api abort-multipart-upload --bucket "$TD_S3_BUCKET" --key "$k" --upload-id "$u"
	done
	aws --endpoint-url "$TD_S3_ENDPOINT" s3 rm --quiet --recursive "s3://$TD_S3_BUCKET/$E2E_PREFIX"
}

# Status JSON field via python: jq-like expression on d.
status_get() { # PYEXPR
	ctl --json status 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

tierd_start() { # [VAR=VALUE ...] : extra environment
	env "$@" "$TIERD" -f -c "$T/tierd.conf" 2>>"$T/tierd.log" &
	TDPID=$!
	local deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		if [ "$(status_get 'd.get("ready")' 2>/dev/null)" = True ]; then
			return 0
		fi
		kill -0 "$TDPID" 2>/dev/null || { echo "tierd exited:"; tail -20 "$T/tierd.log"; return 1; }
		sleep 0.05
	done
	echo "tierd not ready after 60 s"
	tail -20 "$T/tierd.log"
	return 1
}

# Starts tierd (tierd_start's arguments) as a test's first step: a pass, or a
# failure that ends the test, since nothing after it can run.
e2e_start() { # [VAR=VALUE ...]
	tierd_start "$@" && pass "tierd ready" || e2e_abort "tierd did not start"
}

tierd_stop() {
	[ -n "$TDPID" ] || return 0
	kill -TERM "$TDPID" 2>/dev/null || true
	wait "$TDPID" 2>/dev/null || true
	TDPID=
}

# Waits until tierd runs nothing; returns 1 on timeout or if tierd died.
wait_idle() { # [secs]
	local deadline=$((SECONDS + ${1:-120})) v
	while [ $SECONDS -lt $deadline ]; do
		v=$(status_get 'len(d["runs"]) + d["in_flight"] + d.get("queued", 0)' 2>/dev/null) || v=x
		[ "$v" = 0 ] && return 0
		kill -0 "$TDPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Waits until two dirty scans have completed since the call (the second one
# started after it, so every copy written before the call has been checked and
# its recall started), then until tierd runs nothing. Start tierd with
# TD_DIRTY_SCAN_S=1 or this takes a minute.
wait_settled() { # [secs]
	local deadline=$((SECONDS + ${1:-120})) n0 n
	n0=$(status_get 'd["dirty_scans"]') || return 1
	while [ $SECONDS -lt $deadline ]; do
		n=$(status_get 'd["dirty_scans"]' 2>/dev/null) || n=$n0
		[ "$n" -ge $((n0 + 2)) ] && { wait_idle $((deadline - SECONDS)); return; }
		kill -0 "$TDPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Waits for tierd (started in the background) to exit; returns 1 on timeout.
wait_dead() { # secs
	local deadline=$((SECONDS + ${1:-60}))
	while [ $SECONDS -lt $deadline ]; do
		kill -0 "$TDPID" 2>/dev/null || { wait "$TDPID" 2>/dev/null || true; TDPID=; return 0; }
		sleep 0.05
	done
	return 1
}

# Records sha256, uid, gid, mode, mtime of every regular file under DIR in FILE
# (NUL-safe: python walks bytes paths).
snapshot() { # DIR OUT
	python3 "$E2E_LIB_DIR/tree.py" snapshot "$1" >"$2"
}

# GET/HEAD one object quickly (curl's SigV4; the aws cli takes ~0.5 s a call).
# The key goes in a netrc, not --user: that splits at the first ':', and
# Swift's keys are "account:user".
s3get() { # KEY [curl args]
	local k=$1 h=${TD_S3_ENDPOINT#*://}
	shift
	h=${h%%[:/]*}
	curl -sf -m 30 --aws-sigv4 "aws:amz:${TD_S3_REGION:-us-east-1}:s3" \
		--netrc-file <(printf 'machine %s login %s password %s\n' "$h" "$TD_S3_ACCESS_KEY" \
			"$TD_S3_SECRET_KEY") -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		"$@" "$TD_S3_ENDPOINT/$TD_S3_BUCKET/$k"
}

# Rows in the migrating state, from tierctl ls.
n_migrating() {
	ctl --json ls --state migrating | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))'
}

# Every object listed in $T/keys (s3_keys) has a catalog row in $T/ls.json
# (ctl --json ls): a pass, or a failure and the orphans.
check_no_orphans() { # PASS-MSG FAIL-MSG
	python3 "$E2E_LIB_DIR/tree.py" orphans "$E2E_PREFIX" "$T/ls.json" "$T/keys" >"$T/orph" &&
		pass "$1" || { fail "$2"; cat "$T/orph"; }
}

# Every namespace entry under STATE_DIR has a catalog row in $T/ls.json.
check_ns_rows() { # STATE_DIR PASS-MSG FAIL-MSG
	python3 "$E2E_LIB_DIR/tree.py" nscheck "$1" "$T/ls.json" >"$T/nso" &&
		pass "$2" || { fail "$3"; cat "$T/nso"; }
}

# verify DIR SNAP [tree.py verify options]: pass/fail with a message.
tree_verify() { # MSG DIR SNAP [opts]
	local msg=$1 out
	shift
	if out=$(python3 "$E2E_LIB_DIR/tree.py" verify "$1" "$2" "${STATE_DIR:-$T/state}" "${@:3}" 2>&1); then
		pass "$msg ($(tail -1 <<<"$out"))"
	else
		fail "$msg"
		echo "$out"
	fi
}
