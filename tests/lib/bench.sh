# Sourced by the benchmarks (tests/bench/*/*.sh): the clock and the reference
# S3 clients they share, with missing.sh (td_need_*) and conf.sh (td_conf_*).
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_LIB_DIR/missing.sh"
. "$BENCH_LIB_DIR/conf.sh"

td_now() { date +%s.%N; }

# td_time VAR DIGITS CMD...: runs CMD; its wall time in seconds, with DIGITS
# decimals, goes into VAR (a name, or an element such as "T[name]").
td_time() {
	local __var=$1 __digits=$2 __t0 __t1
	shift 2
	__t0=$(td_now)
	"$@"
	__t1=$(td_now)
	printf -v "$__var" '%s' "$(awk -v a="$__t0" -v b="$__t1" -v d="$__digits" 'BEGIN { printf "%." d "f", b - a }')"
}

# td_bench_s3_clients: the aws cli (awsc) and rclone (rcl, remote "x:") set up
# for the test server (TD_S3_*), from the environment only (never ~/.aws or
# an rclone.conf).
td_bench_s3_clients() {
	export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
	export AWS_DEFAULT_REGION=${TD_S3_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
	export RCLONE_CONFIG_X_TYPE=s3 RCLONE_CONFIG_X_PROVIDER=Ceph RCLONE_CONFIG_X_ENV_AUTH=false
	export RCLONE_CONFIG_X_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY RCLONE_CONFIG_X_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
	export RCLONE_CONFIG_X_ENDPOINT=$TD_S3_ENDPOINT RCLONE_CONFIG_X_REGION=$AWS_DEFAULT_REGION
}
awsc() { aws --endpoint-url "$TD_S3_ENDPOINT" "$@"; }
rcl() { env -u AWS_CA_BUNDLE rclone --config /dev/null "$@"; }

# td_bench_tree DIR N KIB: N files of KIB KiB (distinct bytes each) in
# 100-file directories under DIR, all old by mtime and atime (2000-01-01).
td_bench_tree() {
	python3 - "$1" "$2" "$3" <<'PY'
import os, sys
top, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blob = os.urandom(kib * 1024 + 4096)
for i in range(n):
    d = os.path.join(top, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%07d" % i)
    with open(p, "wb") as f:
        f.write(blob[i % 4096:i % 4096 + kib * 1024])
    os.utime(p, (946684800, 946684800))
PY
}

# td_bench_wait_links DATA SRC TIERCTL CONF: waits until every file of SRC has
# become a link at the same place under DATA and prints the time it happened
# (seconds since the epoch). Fails when tierd runs nothing any more with
# files left.
td_bench_wait_links() {
	python3 - "$@" <<'PY'
import json, os, subprocess, sys, time
top, src, ctl, conf = sys.argv[1:5]
left = [os.path.join(top, os.path.relpath(os.path.join(dp, f), src)) for dp, _, fs in os.walk(src) for f in fs]
last_check = time.time()
while left:
    left = [p for p in left if not os.path.islink(p)]
    if not left:
        break
    time.sleep(0.01)
    if time.time() - last_check > 2:
        last_check = time.time()
        st = json.loads(subprocess.run([ctl, "-c", conf, "--json", "status"], capture_output=True).stdout)
        if not st["runs"] and st["in_flight"] == 0 and st["queued"] == 0:
            print("run over with %d files not links" % len(left), file=sys.stderr)
            sys.exit(1)
print("%.6f" % time.time())
PY
}

# td_bench_wait_settled TIERCTL CONF N: waits until tierd runs nothing and N
# files are tiered (the watch on old inodes after the swaps has ended).
td_bench_wait_settled() {
	local ctl=$1 conf=$2 n=$3
	for _ in $(seq 1 72000); do
		"$ctl" -c "$conf" --json status | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["in_flight"] == 0 and not d["runs"] and d["files"].get("tiered", 0) == int(sys.argv[1]) else 1)' "$n" && return 0
		sleep 0.1
	done
	return 1
}
