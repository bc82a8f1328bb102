#!/usr/bin/env bash
# bench_target: the s3 target layer (through tests/target_s3/s3tool) against
# `rclone copy` and `aws s3 cp --recursive`, on the same radosgw, in one run:
# one big file and many small ones, each uploaded and downloaded by all three.
# TD_BENCH_SIZE=full: 1 GiB and 2,000 x 256 KiB; tiny (default): 16 MiB and 50.
# Prints MiB/s and files/s per tool and `ratio ...:` lines (tierd / reference).
# Every download is checked against the source's SHA-256. Usage: bench_target.sh S3TOOL
set -euo pipefail
tool=$1
. "$(dirname "$0")/../../lib/bench.sh"
td_need_s3
td_need_cmds aws rclone sha256sum python3
size=${TD_BENCH_SIZE:-tiny}
if [ "$size" = full ]; then big_mib=1024; n_small=2000; else big_mib=16; n_small=50; fi
small_kib=256
work=$(mktemp -d "${TMPDIR:-/tmp}/tierd-bench-target.XXXXXX")
pfx="bench-$$-$RANDOM/"
td_bench_s3_clients
# tierd's target: part_size = 8M and max_connections = 16 (settings an admin would use
# for a fast local cluster; TD_BENCH_PART / TD_BENCH_CONN override them).
export TD_S3_PART_SIZE=${TD_BENCH_PART:-$((8 * 1024 * 1024))} TD_S3_MAX_CONN=${TD_BENCH_CONN:-16}
b=$TD_S3_BUCKET
cleanup() {
	awsc s3 rm --recursive --only-show-errors "s3://$b/$pfx" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
sha() { sha256sum "$1" | cut -d' ' -f1; }
treesum() { (cd "$1" && sha256sum -- * | sort -k2 | sha256sum | cut -d' ' -f1); }
drop() { awsc s3 rm --recursive --only-show-errors "s3://$b/$pfx$1" >/dev/null || echo "warning: could not delete $pfx$1"; }

echo "bench_target: size=$size big=${big_mib} MiB small=${n_small}x${small_kib} KiB endpoint=$TD_S3_ENDPOINT part_size=$TD_S3_PART_SIZE max_connections=$TD_S3_MAX_CONN"
head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$work/big"
mkdir "$work/small"
python3 - "$work/small" "$n_small" "$small_kib" <<'PY'
import os, sys
d, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(k * 1024))
PY
big_sha=$(sha "$work/big")
small_sha=$(treesum "$work/small")
big_bytes=$((big_mib * 1024 * 1024))
sync

declare -A T
# run NAME CMD...: times one phase into T[NAME]
run() { td_time "T[$1]" 3 "${@:2}" >/dev/null; }
check() { [ "$1" = "$2" ] || { echo "FAIL: $3: wrong bytes"; exit 1; }; }

for who in tierd aws rclone; do
	rm -rf "$work/dl" && mkdir "$work/dl" "$work/dl/small"
	case $who in
	tierd)
		run tierd_big_up "$tool" put "${pfx}tierd/big" "$work/big"
		run tierd_big_down "$tool" pget "${pfx}tierd/big" "$work/dl/big" "$big_bytes"
		run tierd_small_up "$tool" put-tree "$work/small" "${pfx}tierd/small/"
		run tierd_small_down "$tool" get-tree "${pfx}tierd/small/" "$work/dl/small" ;;
	aws)
		run aws_big_up awsc s3 cp --only-show-errors "$work/big" "s3://$b/${pfx}aws/big"
		run aws_big_down awsc s3 cp --only-show-errors "s3://$b/${pfx}aws/big" "$work/dl/big"
		run aws_small_up awsc s3 cp --recursive --only-show-errors "$work/small" "s3://$b/${pfx}aws/small/"
		run aws_small_down awsc s3 cp --recursive --only-show-errors "s3://$b/${pfx}aws/small/" "$work/dl/small" ;;
	rclone)
		run rclone_big_up rcl copy "$work/big" "x:$b/${pfx}rclone/"
		run rclone_big_down rcl copy "x:$b/${pfx}rclone/big" "$work/dl/"
		run rclone_small_up rcl copy "$work/small" "x:$b/${pfx}rclone/small/"
		run rclone_small_down rcl copy "x:$b/${pfx}rclone/small/" "$work/dl/small" ;;
	esac
	check "$(sha "$work/dl/big")" "$big_sha" "$who big download"
	check "$(treesum "$work/dl/small")" "$small_sha" "$who small downloads"
	drop "$who/" # keep the memstore from filling up
done

mibs() { awk -v b="$big_bytes" -v t="$1" 'BEGIN { printf "%.1f", b / 1048576 / t }'; }
fps() { awk -v n="$n_small" -v t="$1" 'BEGIN { printf "%.1f", n / t }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-8s %14s %14s %16s %16s\n' tool "big up MiB/s" "big down MiB/s" "small up files/s" "small down files/s"
for who in tierd aws rclone; do
	printf '%-8s %14s %14s %16s %16s\n' $who "$(mibs "${T[${who}_big_up]}")" "$(mibs "${T[${who}_big_down]}")" \
		"$(fps "${T[${who}_small_up]}")" "$(fps "${T[${who}_small_down]}")"
done
for dir in up down; do
	td=$(mibs "${T[tierd_big_$dir]}")
	best=$(max "$(mibs "${T[aws_big_$dir]}")" "$(mibs "${T[rclone_big_$dir]}")")
	echo "ratio big $dir vs better client: $(ratio "$td" "$best") (goal 1.2)"
	td=$(fps "${T[tierd_small_$dir]}")
	echo "ratio small $dir vs rclone: $(ratio "$td" "$(fps "${T[rclone_small_$dir]}")") (goal 1.5)"
	best=$(max "$(fps "${T[aws_small_$dir]}")" "$(fps "${T[rclone_small_$dir]}")")
	echo "ratio small $dir vs better client: $(ratio "$td" "$best")"
done
