#!/usr/bin/env bash
# bench_mover: tierd end to end (files -> links, `tierctl migrate` against a
# running tierd with an s3 target and keep_cached = no) against `rclone move`
# and `aws s3 mv --recursive` of the same data to the same radosgw, in one run.
# Every contender consumes its own copy of one pristine data set, into its own
# key prefix; the prefix is emptied before the next contender starts, so the
# radosgw memstore holds one copy at a time.
#   TD_BENCH_SIZE=full: 2,000 x 256 KiB and 4 x 1 GiB; tiny (default): 50 x 256 KiB
#   and 2 x 8 MiB. TD_BENCH_CONC (default 8): tierd's max_transfers and the s3
#   target's max_connections, rclone's --transfers, aws's max_concurrent_requests.
#   TD_BENCH_GRACE_MS (default: unset, tierd's own grace period): a swap grace
#   period to report beside the default (TD_SWAP_GRACE_MS), never instead of it.
# Prints seconds, MiB/s and files/s per tool and set, then `ratio ...:` lines
# (tierd / reference, > 1 means tierd is faster). Fails when any contender
# loses or mangles data: tierd's paths must all be links into state_dir/links
# with their objects of the right size and SHA-256 in the bucket, and a sample
# of every contender's objects is fetched back and compared with the original.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../../lib/bench.sh"
td_need_s3
td_need_cmds aws rclone sha256sum python3
size=${TD_BENCH_SIZE:-tiny}
if [ "$size" = full ]; then n_small=2000 n_big=4 big_mib=1024; else n_small=50 n_big=2 big_mib=8; fi
# For profiling one side: TD_BENCH_N_SMALL, TD_BENCH_N_BIG, TD_BENCH_BIG_MIB;
#   TD_BENCH_KEEP_LOG=FILE keeps tierd's log.
n_small=${TD_BENCH_N_SMALL:-$n_small} n_big=${TD_BENCH_N_BIG:-$n_big} big_mib=${TD_BENCH_BIG_MIB:-$big_mib}
small_kib=256
conc=${TD_BENCH_CONC:-8}
grace_ms=${TD_BENCH_GRACE_MS:-}
part_mib=16
b=$TD_S3_BUCKET
pfx="bench-mover-$$-$RANDOM/"
work=$(mktemp -d "${TMPDIR:-/tmp}/tierd-bench-mover.XXXXXX")
pid=

td_bench_s3_clients
# The aws cli's transfer settings, from a private config file (never ~/.aws).
export AWS_CONFIG_FILE=$work/aws.conf AWS_SHARED_CREDENTIALS_FILE=/dev/null
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
s3 =
  max_concurrent_requests = $conc
  multipart_threshold = 64MB
  multipart_chunksize = ${part_mib}MB
EOF
tctl() { "$TIERCTL" -c "$work/tierd.conf" "$@"; }
# drop KEYS: deletes a contender's objects, then has radosgw collect their
# garbage now (multipart tails otherwise wait hours for rgw gc, in memstore).
drop() {
	awsc s3 rm --recursive --only-show-errors "s3://$b/$pfx$1" >/dev/null
	if [ -n "${TD_RGW_CONF:-}" ] && command -v radosgw-admin >/dev/null; then
		radosgw-admin -c "$TD_RGW_CONF" gc process --include-all >/dev/null 2>&1 || true
	fi
}
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	drop "" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}

echo "bench_mover: size=$size small=${n_small}x${small_kib} KiB big=${n_big}x${big_mib} MiB" \
	"concurrency=$conc part=${part_mib} MiB grace=${grace_ms:-default} ms endpoint=$TD_S3_ENDPOINT"

# The pristine data set, from /dev/urandom once; its SHA-256 sums are the truth.
mkdir -p "$work/src/small" "$work/src/big"
python3 - "$work/src/small" "$n_small" "$small_kib" <<'PY'
import os, sys
d, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("/dev/urandom", "rb") as rnd:
    for i in range(n):
        with open(os.path.join(d, "f%05d" % i), "wb") as f:
            f.write(rnd.read(k * 1024))
PY
for i in $(seq 0 $((n_big - 1))); do
	head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$work/src/big/b$i"
done
(cd "$work/src" && sha256sum small/* big/*) >"$work/sums"
small_bytes=$((n_small * small_kib * 1024))
big_bytes=$((n_big * big_mib * 1024 * 1024))

# copy WHO: a fresh copy of the data set for one contender (each one moves, so
# consumes, its input), written back before the clock starts.
copy() {
	rm -rf "${work:?}/$1"
	mkdir -p "$work/$1"
	cp -r "$work/src/small" "$work/src/big" "$work/$1/"
	sync
}

declare -A T
# timed NAME CMD...: runs CMD, its time in seconds into T[NAME].
timed() { td_time "T[$1]" 3 "${@:2}"; }

# gone WHO: the contender's input files are all gone from the disk.
gone() {
	local left
	left=$(find "$work/$1" -type f | wc -l)
	[ "$left" = 0 ] || fail "$1 left $left files on the disk"
}

# sample WHO KEYPREFIX: fetches a few of the contender's objects back (first and
# last small file, first big file) and compares them with the originals.
sample() {
	local who=$1 kp=$2 f got want
	for f in small/f00000 "small/$(printf f%05d $((n_small - 1)))" big/b0; do
		rm -f "$work/fetched"
		awsc s3 cp --only-show-errors "s3://$b/$kp$f" "$work/fetched" >/dev/null ||
			fail "$who: cannot fetch $f back"
		got=$(sha256sum "$work/fetched" | cut -d' ' -f1)
		want=$(grep " $f\$" "$work/sums" | cut -d' ' -f1)
		[ "$got" = "$want" ] || fail "$who: $f came back with the wrong bytes"
	done
	rm -f "$work/fetched"
}

# count_objects KEYPREFIX: the number and total bytes of objects under it.
count_objects() {
	awsc s3api list-objects-v2 --bucket "$b" --prefix "$1" --output json |
		python3 -c 'import json,sys; c=json.load(sys.stdin).get("Contents",[]); print(len(c), sum(o["Size"] for o in c))'
}

# moved WHO: after a reference tool's move, its input is gone from the disk, every
# file is in the bucket under its prefix (count and bytes), and a sample reads
# back right; then its objects and its copy are deleted.
moved() {
	local who=$1 n bytes
	gone "$who"
	read -r n bytes < <(count_objects "$pfx$who/")
	[ "$n" = $((n_small + n_big)) ] && [ "$bytes" = $((small_bytes + big_bytes)) ] ||
		fail "$who: $n objects, $bytes bytes in the bucket"
	sample "$who" "$pfx$who/"
	drop "$who/"
	rm -rf "${work:?}/$who"
}

# ---- (a) tierd ---------------------------------------------------------------
copy tierd
mkdir -p "$work/state"
{
	td_conf_tierd "$work" "log_level = info" "admin_group = root" "max_transfers = $conc"
	td_conf_s3_target s3 "${pfx}tierd/" "addressing = path" "multipart_threshold = 64M" \
		"part_size = ${part_mib}M" "max_connections = $conc"
	cat <<CONF

[policy "bench"]
paths = $work/tierd
target = s3
schedule = manual
keep_cached = no
CONF
} >"$work/tierd.conf"
if [ -n "$grace_ms" ]; then export TD_SWAP_GRACE_MS=$grace_ms; else unset TD_SWAP_GRACE_MS; fi
"$TIERD" -f -c "$work/tierd.conf" 2>"$work/tierd.log" &
pid=$!
ready=0
for _ in $(seq 400); do
	if tctl --json status 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["ready"] else 1)' 2>/dev/null; then
		ready=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
[ $ready = 1 ] || { cat "$work/tierd.log"; fail "tierd did not become ready"; }

migrate() { tctl migrate "$@" >"$work/migrate.out" 2>&1 || { tail -20 "$work/migrate.out"; fail "tierctl migrate failed"; }; }
timed tierd_small migrate "$work"/tierd/small/*
timed tierd_big migrate "$work"/tierd/big/*

# Every path is a link into the namespace; nothing is left on the disk.
for f in "$work"/tierd/small/* "$work"/tierd/big/*; do
	[ -L "$f" ] || fail "tierd: $f is not a link"
	case $(readlink "$f") in
	"$work/state/links/"*) ;;
	*) fail "tierd: $f points outside state_dir/links: $(readlink "$f")" ;;
	esac
done
gone tierd
# The catalog's object for every file, of the right size and SHA-256 (as tierd
# recorded it), is in the bucket.
find "$work/tierd" -type l -print0 | xargs -0 -n 100 "$TIERCTL" -c "$work/tierd.conf" --json info |
	python3 -c 'import json,sys
d=json.JSONDecoder(); s=sys.stdin.read(); i=0
while i < len(s):
    while i < len(s) and s[i].isspace(): i += 1
    if i >= len(s): break
    o, i = d.raw_decode(s, i)
    for f in o["files"]: print(f["path"], f["state"], f.get("key",""), f["size"], f.get("sha256",""))' >"$work/info"
awsc s3api list-objects-v2 --bucket "$b" --prefix "${pfx}tierd/" --output json |
	python3 -c 'import json,sys
for o in json.load(sys.stdin).get("Contents",[]): print(o["Key"], o["Size"])' >"$work/objects"
python3 - "$work/info" "$work/objects" "$work/sums" "$work/tierd/" "${pfx}tierd/" "$((n_small + n_big))" <<'PY' || fail "tierd: objects do not match the files"
import sys
info, objs, sums, root, kp, n = sys.argv[1:7]
size = {}
for line in open(objs):
    k, s = line.rsplit(" ", 1)
    size[k] = int(s)
want = {}
for line in open(sums):
    h, p = line.split(None, 1)
    want[p.strip()] = h
seen = 0
for line in open(info):
    path, state, key, sz, sha = line.split(" ")
    rel = path[len(root):]
    assert state == "tiered", (path, state)
    assert sha.strip() == want[rel], (path, "sha256")
    key = key if key.startswith(kp) else kp + key  # info gives the whole key
    assert size.get(key) == int(sz), (path, key, size.get(key), sz)
    assert size.get(key + ".json", 0) > 0, (path, "no manifest")
    seen += 1
assert seen == int(n), ("files", seen, n)
PY
# Fetch a sample back through the catalog's keys.
while read -r path _ key _; do
	case ${path#"$work/tierd/"} in
	small/f00000 | big/b0) ;;
	*) continue ;;
	esac
	rm -f "$work/fetched"
	case $key in "${pfx}tierd/"*) ;; *) key=${pfx}tierd/$key ;; esac
	awsc s3 cp --only-show-errors "s3://$b/$key" "$work/fetched" >/dev/null ||
		fail "tierd: cannot fetch $key"
	[ "$(sha256sum "$work/fetched" | cut -d' ' -f1)" = "$(grep " ${path#"$work/tierd/"}\$" "$work/sums" | cut -d' ' -f1)" ] ||
		fail "tierd: $path came back with the wrong bytes"
done <"$work/info"
kill -TERM "$pid"
wait "$pid" || fail "tierd exited with $?"
pid=
[ -z "${TD_BENCH_KEEP_LOG:-}" ] || cp "$work/tierd.log" "$TD_BENCH_KEEP_LOG"
drop tierd/
rm -rf "${work:?}/tierd"

# ---- (b) rclone move ---------------------------------------------------------
copy rclone
timed rclone_small rcl move --transfers "$conc" --s3-chunk-size ${part_mib}M \
	--s3-upload-cutoff 64M "$work/rclone/small" "x:$b/${pfx}rclone/small/"
timed rclone_big rcl move --transfers "$conc" --s3-chunk-size ${part_mib}M \
	--s3-upload-cutoff 64M "$work/rclone/big" "x:$b/${pfx}rclone/big/"
moved rclone

# ---- (c) aws s3 mv --recursive -----------------------------------------------
copy aws
timed aws_small awsc s3 mv --recursive --only-show-errors "$work/aws/small" "s3://$b/${pfx}aws/small/"
timed aws_big awsc s3 mv --recursive --only-show-errors "$work/aws/big" "s3://$b/${pfx}aws/big/"
moved aws

# ---- figures -------------------------------------------------------------------
mibs() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / 1048576 / t }'; }
fps() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.1f", n / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; } # of times: ref/tierd
printf '%-7s %9s %9s %9s   %9s %9s\n' tool "small s" "MiB/s" "files/s" "big s" "MiB/s"
for who in tierd rclone aws; do
	ts=${T[${who}_small]} tb=${T[${who}_big]}
	printf '%-7s %9s %9s %9s   %9s %9s\n' $who "$ts" "$(mibs $small_bytes "$ts")" \
		"$(fps $n_small "$ts")" "$tb" "$(mibs $big_bytes "$tb")"
done
echo "ratio small_files_vs_rclone: $(ratio "${T[tierd_small]}" "${T[rclone_small]}")"
echo "ratio small_files_vs_aws: $(ratio "${T[tierd_small]}" "${T[aws_small]}")"
echo "ratio big_files_vs_rclone: $(ratio "${T[tierd_big]}" "${T[rclone_big]}")"
echo "ratio big_files_vs_aws: $(ratio "${T[tierd_big]}" "${T[aws_big]}")"
