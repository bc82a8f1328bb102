# tests/rview/lib.sh — sourced by the remote view's acceptance tests.
#
# Gives: a private tree under $t (state, cache, run, data, tier, orig), a
# config, tierd started and stopped by pid, helpers to tier files and read
# status, ok/FAIL lines and a final count. Cleanup (trap): tierd killed by
# pid, the remote view detached if still mounted, $t removed.
set -uo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The system python: reachable by the unprivileged uids used below.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
RVIO="$PY $here/rvio.py"

passes=0 fails=0
pass() { echo "ok $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
# check "description" command...: ok when the command succeeds.
check() {
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}
finish() {
	# A sanitized build's tierd reports into its log and may still pass
	# every check (a use-after-free while the view closes, a leak at exit).
	if [ -f "$t/tierd.log" ] && grep -q "ERROR: [A-Za-z]*Sanitizer\|: runtime error:" "$t/tierd.log"; then
		fail "tierd reported a sanitizer error:"
		grep -A 12 "ERROR: [A-Za-z]*Sanitizer\|: runtime error:" "$t/tierd.log" | head -40
	fi
	echo "$passes passed, $fails failed"
	[ "$fails" = 0 ] && exit 0
	[ -f "$t/tierd.log" ] && { echo "--- tierd.log (tail)"; tail -30 "$t/tierd.log"; }
	exit 1
}
# A missing component fails under CI and in scripts/test, skips elsewhere.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/missing.sh"
need_fuse() {
	[ "$(id -u)" = 0 ] || td_missing "root (the remote view)"
	[ -c /dev/fuse ] || td_missing "/dev/fuse"
	td_need_cmds setpriv
}

pid=
t=
rv_cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	[ -z "${bg_pids:-}" ] || kill $bg_pids 2>/dev/null || true
	if [ -n "$t" ]; then
		umount -l "$t/run/remote" 2>/dev/null || true # also a dead (ENOTCONN) mount
		rm -rf "$t"
	fi
}
trap rv_cleanup EXIT
trap 'exit 1' INT TERM

# rv_setup NAME [dir|s3]: the tree and $conf (call rv_conf to write it).
rv_setup() {
	t=$(mktemp -d "/tmp/rvt-$1.XXXXXX")
	chmod 755 "$t" # other uids must traverse to the links
	mkdir -p "$t/data" "$t/tier" "$t/orig"
	chmod 755 "$t/data"
	conf=$t/tierd.conf
	tgt=${2:-dir}
}

# rv_conf [line...]: writes the config; extra lines go to [tierd].
rv_conf() {
	{
		echo "[tierd]"
		echo "state_dir = $t/state"
		echo "cache_dir = $t/cache"
		echo "run_dir   = $t/run"
		echo "log_level = debug"
		echo "admin_group = root"
		for l in "$@"; do echo "$l"; done
		echo
		echo '[target "tier"]'
		if [ "$tgt" = s3 ]; then
			echo "type = s3"
			echo "endpoint = $TD_S3_ENDPOINT"
			echo "region = ${TD_S3_REGION:-us-east-1}"
			echo "bucket = $TD_S3_BUCKET"
			echo "prefix = rvt-$(basename "$t" | tr 'A-Z.' 'a-z-')-$$/"
			echo "addressing = path"
		else
			echo "type = dir"
			echo "path = $t/tier"
		fi
		echo
		echo '[policy "data"]'
		echo "paths = $t/data"
		echo "target = tier"
		echo "schedule = manual"
		echo "keep_cached = no"
		echo "min_size = 0"
	} >"$conf"
}

# rv_conf_nas CACHE_SIZE: the config of the write and pin tests: defaults
# (scheduled runs, keep_cached) but for the cache size; target "nas" on $t/tier.
rv_conf_nas() {
	cat >"$conf" <<CONF
[tierd]
state_dir = $t/state
cache_dir = $t/cache
run_dir = $t/run
cache_size = $1
[target "nas"]
type = dir
path = $t/tier
[policy "p"]
paths = $t/data
target = nas
min_size = 0
CONF
}

ctl() { "$TIERCTL" -c "$conf" "$@"; }

# start_tierd: starts it and waits for "ready": true (30 s).
start_tierd() {
	if [ "$tgt" = s3 ]; then
		AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY \
			TD_SWAP_GRACE_MS=50 "$TIERD" -f -c "$conf" 2>>"$t/tierd.log" &
	else
		TD_SWAP_GRACE_MS=50 "$TIERD" -f -c "$conf" 2>>"$t/tierd.log" &
	fi
	pid=$!
	for _ in $(seq 300); do
		if ctl --json status 2>/dev/null | "$PY" -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("ready") else 1)' 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "tierd did not become ready:"
	tail -20 "$t/tierd.log"
	return 1
}

# stop_tierd: SIGTERM, wait (20 s, then SIGKILL).
stop_tierd() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true # (safe under set -e, as writes.sh runs)
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

# st PATH: one value of `status --json`, e.g. st remote_view.target_requests
st() {
	ctl --json status | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[k]
print(json.dumps(d) if isinstance(d, (list, dict)) else d)' "$1"
}

# mkfile NAME SIZE: random bytes in data/NAME, a copy in orig/NAME.
mkfile() {
	head -c "$2" /dev/urandom >"$t/data/$1"
	cp -p "$t/data/$1" "$t/orig/$1"
}

# tier NAME...: migrate data/NAME...; every one must come back "tiered".
tier() {
	local args=()
	for f in "$@"; do args+=("$t/data/$f"); done
	ctl migrate "${args[@]}" >"$t/migrate.out" 2>&1 || { cat "$t/migrate.out"; return 1; }
	for f in "$@"; do [ -L "$t/data/$f" ] || { echo "$f is not a link"; return 1; }; done
}

dynlink() { readlink "$t/data/$1"; }            # the dynamic link
bound() { readlink "$(readlink "$t/data/$1")"; } # where it points now
file_id() { basename "$(dirname "$(dynlink "$1")")"; }
cache_path() { local id; id=$(file_id "$1"); echo "$t/cache/copies/${id:0:2}/$id/$id"; }
remote_path() { bound_remote "$1"; }
bound_remote() { local id; id=$(file_id "$1"); echo "$t/run/remote/${id:0:2}/$id/$1"; }
is_hot() { case "$(bound "$1")" in "$t/cache/"*) return 0 ;; *) return 1 ;; esac; }
is_cold() { [ "$(bound "$1")" = "$(bound_remote "$1")" ]; }

# wait_hot NAME [secs]: until the dynamic link points into the cache.
wait_hot() {
	local n=$((${2:-15} * 20))
	for _ in $(seq "$n"); do is_hot "$1" && return 0; sleep 0.05; done
	return 1
}
# same FILE NAME: FILE's bytes are orig/NAME's.
same() { cmp -s "$1" "$t/orig/$2"; }
# cache_files: regular files (copies, not .part) under cache/copies.
cache_files() { find "$t/cache/copies" -type f ! -name '*.part' 2>/dev/null | wc -l; }
cache_bytes() { find "$t/cache/copies" -type f ! -name '*.part' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
parts() { find "$t/cache/copies" -name '*.part' 2>/dev/null | wc -l; }
