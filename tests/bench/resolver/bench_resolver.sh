#!/usr/bin/env bash
# bench_resolver: reading tiered files through their original paths, in one run.
#  1. HOT: a big file and many 4 KiB files tiered with keep_cached = yes, read
#     through their links (-> the cache copy) vs direct reads: of the cache
#     copy by its own path (big), of a plain copy on the same filesystem
#     (small); page cache warm for both, and dropped before each (cold).
#  2. COLD: a big object on an s3 target (radosgw), read sequentially through
#     its link (a) streamed by the remote view alone (the reader's name is in
#     no_hydrate) and (b) the default, hydrating open, vs `curl` GET of the same
#     object from the same radosgw.
#  3. TTFB: open + read of the first 4 KiB of a cold file (a fresh one each
#     sample, median) vs curl's time_starttransfer for a ranged GET.
# TD_BENCH_SIZE=full: 1 GiB and 10,000 x 4 KiB; tiny (default): 32 MiB and 300;
# TD_BENCH_BIG_MIB, TD_BENCH_N_SMALL, TD_BENCH_N_TTFB override the sizes.
# Every read is checked against the source's SHA-256. Needs root (FUSE,
# drop_caches) and TD_S3_* (tests/s3/radosgw.sh). Prints figures and
# `ratio ...:` lines (tierd / reference).
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../../lib/bench.sh"
td_need_s3
[ "$(id -u)" = 0 ] || td_missing "root (FUSE mount, drop_caches)"
[ -c /dev/fuse ] || td_missing "/dev/fuse"
td_need_cmds curl python3 sha256sum dd
size=${TD_BENCH_SIZE:-tiny}
# hot_reps: the hot reads are short (a 1 GiB read from a warm page cache takes
# ~50 ms), so more of them, interleaved, keep one hiccup from being the figure.
if [ "$size" = full ]; then big_mib=1024; n_small=10000; n_ttfb=21; reps=3; hot_reps=7
else big_mib=32; n_small=300; n_ttfb=9; reps=2; hot_reps=2; fi
# Overrides, for a look between tiny and full.
big_mib=${TD_BENCH_BIG_MIB:-$big_mib}
n_small=${TD_BENCH_N_SMALL:-$n_small}
n_ttfb=${TD_BENCH_N_TTFB:-$n_ttfb}
cold_mib=$big_mib
big_bytes=$((big_mib * 1048576))
region=${TD_S3_REGION:-us-east-1}
w=$(mktemp -d "${TMPDIR:-/tmp}/tierd-bench-resolver.XXXXXX")
chmod 755 "$w"
pfx="bench-resolver-$$-$RANDOM"
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null || true
	fi
	# Objects of this run (the memstore is in RAM): all under its prefix.
	if command -v aws >/dev/null; then
		AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY \
			timeout 120 aws --endpoint-url "$TD_S3_ENDPOINT" s3 rm --quiet --recursive \
			"s3://$TD_S3_BUCKET/$pfx/" >/dev/null 2>&1 || true
	fi
	python3 - "$w/keys" <<'PY' 2>/dev/null || true
import os, sys, subprocess
try:
    keys = open(sys.argv[1]).read().split()
except OSError:
    keys = []
e = os.environ
for k in keys:
    subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-X", "DELETE", "--aws-sigv4",
                    "aws:amz:%s:s3" % e.get("TD_S3_REGION", "us-east-1"),
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    "--user", e["TD_S3_ACCESS_KEY"] + ":" + e["TD_S3_SECRET_KEY"],
                    "%s/%s/%s" % (e["TD_S3_ENDPOINT"], e["TD_S3_BUCKET"], k)])
PY
	umount -l "$w/run/remote" 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT
trap "exit 143" TERM INT
sha() { sha256sum "$1" | cut -d' ' -f1; }
treesum() { (cd "$1" && find . -name 'f*' -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1); }
fail() { echo "FAIL: $*"; [ -f "$w/tierd.log" ] && tail -20 "$w/tierd.log"; exit 1; }
check() { [ "$1" = "$2" ] || fail "$3: wrong bytes"; }
dropc() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# tm VAR CMD...: wall time of CMD (stdout to /dev/null) into VAR
tm() { td_time "$1" 4 "${@:2}" >/dev/null; }
mibs() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / 1048576 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
minof() { printf '%s\n' "$@" | sort -g | head -1; }

echo "bench_resolver: size=$size big=${big_mib} MiB small=${n_small}x4 KiB ttfb samples=$n_ttfb endpoint=$TD_S3_ENDPOINT"
mkdir -p "$w/hot/small" "$w/cold/ttfb" "$w/direct" "$w/orig"
head -c $big_bytes /dev/urandom >"$w/orig/big"
cp "$w/orig/big" "$w/hot/big"
head -c $((cold_mib * 1048576)) /dev/urandom >"$w/orig/cold_big"
cp "$w/orig/cold_big" "$w/cold/"
python3 - "$w/hot/small" "$n_small" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(4096))
PY
cp -a "$w/hot/small" "$w/direct/small"
for i in $(seq -w 1 $n_ttfb); do
	head -c $((4 * 1048576)) /dev/urandom >"$w/cold/ttfb/f$i"
	head -c $((4 * 1048576)) /dev/urandom >"$w/cold/ttfb/b$i"
done
cp -a "$w/cold/ttfb" "$w/orig/ttfb"
big_sha=$(sha "$w/orig/big")
small_sha=$(treesum "$w/direct/small")

# The reader named in no_hydrate: a dd under its own name, so the streamed
# case measures the remote view alone.
streamer=rvb_stream
ln -s "$(command -v dd)" "$w/$streamer"

{
	td_conf_tierd "$w" "log_level = info" "cache_size = 100%" "no_hydrate = $streamer"
	td_conf_s3_target rgw "$pfx/" "addressing = path"
	cat <<CONF

[policy "hot"]
paths = $w/hot
target = rgw
schedule = manual
min_age = 0s
min_size = 0
keep_cached = yes

[policy "cold"]
paths = $w/cold
target = rgw
schedule = manual
min_age = 0s
min_size = 0
keep_cached = no
CONF
} >"$w/tierd.conf"
export AWS_ACCESS_KEY_ID=$TD_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TD_S3_SECRET_KEY
TD_SWAP_GRACE_MS=100 "$TIERD" -f -c "$w/tierd.conf" 2>"$w/tierd.log" &
pid=$!
for _ in $(seq 1 300); do
	"$TIERCTL" -c "$w/tierd.conf" status >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || fail "tierd did not start"
	sleep 0.1
done
tctl() { "$TIERCTL" -c "$w/tierd.conf" "$@"; }
t0=$(td_now)
tctl migrate "$w/hot/big" "$w/cold/cold_big" >/dev/null
find "$w/hot/small" "$w/cold/ttfb" -type f -print0 | xargs -0 -n 500 "$TIERCTL" -c "$w/tierd.conf" migrate >/dev/null
echo "tiered in $(awk -v a="$t0" -v b="$(td_now)" 'BEGIN { printf "%.1f", b - a }') s"
n_links=$(find "$w/hot" "$w/cold" -type l | wc -l)
[ "$n_links" = $((n_small + 2 * n_ttfb + 2)) ] || fail "$n_links links, expected $((n_small + 2 * n_ttfb + 2))"
# Wait for every swap's grace period to end.
for _ in $(seq 1 600); do
	tctl --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["in_flight"]==0 else 1)' && break
	sleep 0.1
done
key_of() { tctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["key"])'; }
for f in "$w/cold/cold_big" "$w/hot/big" "$w"/cold/ttfb/*; do key_of "$f"; done >"$w/keys"
k_cold=$(key_of "$w/cold/cold_big")
k_hot=$(key_of "$w/hot/big")
case $k_cold in "$pfx"/*) ;; *) k_cold="$pfx/$k_cold"; k_hot="$pfx/$k_hot"
	sed -i "s|^|$pfx/|" "$w/keys" ;; esac
url() { echo "$TD_S3_ENDPOINT/$TD_S3_BUCKET/$1"; }
sig=(--aws-sigv4 "aws:amz:$region:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --user "$TD_S3_ACCESS_KEY:$TD_S3_SECRET_KEY")
# The hot files' links must lead to the cache copy, not the remote view.
case $(readlink -f "$w/hot/big") in "$w/cache/"*) ;; *) fail "hot link leads to $(readlink -f "$w/hot/big")" ;; esac
case $(readlink -f "$w/cold/cold_big") in "$w/run/remote/"*) ;; *) fail "cold link leads to $(readlink -f "$w/cold/cold_big")" ;; esac

# The hot part never reads the target: drop the big hot object to keep the
# memstore (RAM) small.
curl -sf --max-time 60 -X DELETE "${sig[@]}" "$(url "$k_hot")" || fail "cannot delete the hot object"

# ---- 1. HOT -----------------------------------------------------------------------
readbig() { dd if="$1" of=/dev/null bs=1M status=none; }
readsmall() { (cd "$1" && find . -name 'f*' -print0 | xargs -0 cat); }
check "$(sha "$w/hot/big")" "$big_sha" "hot big through the link"
check "$(treesum "$w/hot/small")" "$small_sha" "hot small files through the links"
# The big file's reference is the very file the link leads to (the cache
# copy, by its own path): the same bytes in the same disk blocks, so the
# figure is the link's cost alone. A separate copy differed by its place on
# the (virtual) disk: 0.93-1.04x from run to run. The small files' reference
# stays a plain copy in one directory (stricter: it also has the simpler layout).
big_copy=$(readlink -f "$w/hot/big")
declare -A H R
for mode in warm cold; do
	for what in big small; do
		for who in direct link; do H[$mode.$what.$who]=; done
		for _ in $(seq $hot_reps); do
			for who in direct link; do
				p=$w/direct/$what
				[ $what = big ] && p=$big_copy
				[ $who = link ] && p=$w/hot/$what
				if [ $mode = warm ]; then read$what "$p" >/dev/null; else dropc; fi
				tm t read$what "$p"
				H[$mode.$what.$who]+=" $t"
			done
		done
	done
done
echo "HOT (best of $hot_reps; warm: page cache filled first; cold: drop_caches before each)"
printf '  %-5s %-16s %12s %12s %8s\n' cache what direct link ratio
for mode in warm cold; do
	td=$(minof ${H[$mode.big.direct]}); tl=$(minof ${H[$mode.big.link]})
	a=$(mibs $big_bytes "$td"); b=$(mibs $big_bytes "$tl")
	printf '  %-5s %-16s %8s MiB/s %6s MiB/s %8s\n' $mode "big ${big_mib} MiB" "$a" "$b" "$(ratio "$b" "$a")"
	R[$mode.big]=$(ratio "$b" "$a")
	td=$(minof ${H[$mode.small.direct]}); tl=$(minof ${H[$mode.small.link]})
	a=$(awk -v n=$n_small -v t="$td" 'BEGIN { printf "%.0f", n / t }')
	b=$(awk -v n=$n_small -v t="$tl" 'BEGIN { printf "%.0f", n / t }')
	printf '  %-5s %-16s %6s files/s %4s files/s %6s\n' $mode "${n_small} x 4 KiB" "$a" "$b" "$(ratio "$b" "$a")"
	R[$mode.small]=$(ratio "$b" "$a")
done
echo "ratio hot_big_vs_direct: ${R[cold.big]} (page cache dropped; warm: ${R[warm.big]}) (goal 0.97)"
echo "ratio hot_small_vs_direct: ${R[cold.small]} (page cache dropped; warm: ${R[warm.small]}) (goal 0.97)"

# ---- 2. COLD sequential -------------------------------------------------------------
cold_bytes=$((cold_mib * 1048576))
s_cold=$(sha "$w/orig/cold_big")
get() { curl -sf "${sig[@]}" -o "$2" "$(url "$1")"; }
# curl GET: best of $reps, the last one's bytes checked.
g=
for _ in $(seq $reps); do
	tm t get "$k_cold" /dev/null
	g+=" $t"
done
get "$k_cold" "$w/got"
check "$(sha "$w/got")" "$s_cold" "curl GET"
rm -f "$w/got"
t_get=$(minof $g)
# Streamed (no_hydrate): the remote view alone. The kernel keeps a FUSE file's
# pages (keep_cache), so the page cache is dropped before each read; that also
# makes the kernel forget the inode, and tierd drops the file's chunks with it.
st=
for _ in $(seq $reps); do
	dropc
	tm t "$w/$streamer" if="$w/cold/cold_big" of=/dev/null bs=1M status=none
	st+=" $t"
done
t_stream=$(minof $st)
dropc
check "$("$w/$streamer" if="$w/cold/cold_big" bs=1M status=none | sha256sum | cut -d' ' -f1)" "$s_cold" "streamed cold read"
case $(readlink -f "$w/cold/cold_big") in "$w/run/remote/"*) ;; *) fail "the streamed file was hydrated" ;; esac
# Hydrating (a plain dd), the same object: the first open starts the download
# into the cache.
dropc
tm t_hyd dd if="$w/cold/cold_big" of=/dev/null bs=1M status=none
hyd_ok=no
for _ in $(seq 1 600); do
	case $(readlink -f "$w/cold/cold_big") in "$w/cache/"*) hyd_ok=yes; break ;; esac
	sleep 0.1
done
[ $hyd_ok = yes ] || fail "cold_big was not hydrated"
dropc
check "$(sha "$w/cold/cold_big")" "$s_cold" "hydrated copy"
echo "COLD sequential read of ${cold_mib} MiB (best of $reps; hydrating: one run)"
printf '  %-34s %8s MiB/s\n' "curl GET" "$(mibs $cold_bytes "$t_get")" \
	"link, streamed (no_hydrate)" "$(mibs $cold_bytes "$t_stream")" \
	"link, hydrating open (default)" "$(mibs $cold_bytes "$t_hyd")"
echo "ratio cold_seq_vs_get: $(ratio "$t_get" "$t_stream") (streamed; goal 0.9)"
echo "ratio cold_seq_hydrating_vs_get: $(ratio "$t_get" "$t_hyd")"

# ---- 3. time to first byte -------------------------------------------------------------
# The link: a python process per sample (one process opening many cold files
# in a row is taken for a sweep and streamed) opens and reads 4 KiB of a fresh
# cold file (the default, hydrating open), timed in-process. Quiet (the goal's
# measure, like each GET's): the next sample waits for the previous file's
# hydration to end. Back to back (informational, one process): each open
# shares the server with the previous files' hydrations. Then curl's time_starttransfer of a
# 4 KiB ranged GET of the same objects.
cat >"$w/ttfb.py" <<'PY'
import os, sys, time
p, orig, cache, wait = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "wait"
t0 = time.perf_counter()
fd = os.open(p, os.O_RDONLY)
tb = time.perf_counter()
b = os.read(fd, 4096)
t1 = time.perf_counter()
os.close(fd)
with open(orig, "rb") as f:
    if f.read(4096) != b:
        print("WRONG", p); sys.exit(1)
deadline = time.monotonic() + 30
while wait and not os.path.realpath(p).startswith(cache):
    if time.monotonic() > deadline:
        print("NOT HYDRATED", p); sys.exit(1)
    time.sleep(0.005)
print("%.3f %.3f" % ((t1 - t0) * 1000, (tb - t0) * 1000))
PY
dropc
: >"$w/ttfb_link"
for f in "$w"/cold/ttfb/f*; do
	python3 "$w/ttfb.py" "$f" "$w/orig/ttfb/$(basename "$f")" "$w/cache/" wait >>"$w/ttfb_link" ||
		fail "TTFB read (quiet): $(tail -1 "$w/ttfb_link")"
done
dropc
# Back to back: one process, no waiting (past 16 files it counts as a sweep
# and the rest are streamed, as they would be for any such program).
python3 - "$w/cold/ttfb" "$w/orig/ttfb" >"$w/ttfb_b2b" <<'PY' || fail "TTFB reads (back to back): $(tail -1 "$w/ttfb_b2b")"
import os, sys, time
d, o = sys.argv[1:3]
for name in sorted(n for n in os.listdir(d) if n.startswith("b")):
    p = os.path.join(d, name)
    t0 = time.perf_counter()
    fd = os.open(p, os.O_RDONLY)
    b = os.read(fd, 4096)
    t1 = time.perf_counter()
    os.close(fd)
    with open(os.path.join(o, name), "rb") as f:
        if f.read(4096) != b:
            print("WRONG", name); sys.exit(1)
    print("%.3f" % ((t1 - t0) * 1000))
PY
: >"$w/ttfb_get"
for f in "$w"/orig/ttfb/f*; do
	k=$(key_of "$w/cold/ttfb/$(basename "$f")")
	case $k in "$pfx"/*) ;; *) k="$pfx/$k" ;; esac
	curl -sf "${sig[@]}" -H "Range: bytes=0-4095" -o "$w/got" -w '%{time_starttransfer}\n' "$(url "$k")" |
		awk '{ printf "%.3f\n", $1 * 1000 }' >>"$w/ttfb_get"
	cmp -s "$w/got" <(head -c 4096 "$f") || fail "ranged GET of $k: wrong bytes"
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m_link=$(cut -d' ' -f1 "$w/ttfb_link" | median /dev/stdin)
m_open=$(cut -d' ' -f2 "$w/ttfb_link" | median /dev/stdin)
m_b2b=$(cut -d' ' -f1 "$w/ttfb_b2b" | median /dev/stdin)
m_get=$(median "$w/ttfb_get")
echo "TTFB (median of $n_ttfb fresh cold files, 4 KiB)"
echo "  link open+read, quiet: $m_link ms, of which open $m_open ms  (all: $(cut -d' ' -f1 "$w/ttfb_link" | tr '\n' ' '))"
echo "  link open+read, back to back: $m_b2b ms  (all: $(cut -d' ' -f1 "$w/ttfb_b2b" | tr '\n' ' '))"
echo "  curl ranged GET time_starttransfer: $m_get ms  (all: $(tr '\n' ' ' <"$w/ttfb_get"))"
echo "  goal: <= $(awk -v g="$m_get" 'BEGIN { printf "%.3f", 1.2 * g + 2 }') ms (1.2 x GET + 2 ms)"
echo "ratio cold_ttfb_vs_get: $(ratio "$m_link" "$m_get")"

tctl --json status | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("tierd:", json.dumps(d.get("rview", d.get("remote", {}))))' || true
grep -iE "error|fail" "$w/tierd.log" | head -5 || true
[ -n "${TD_BENCH_HOLD:-}" ] && { echo "holding $w for ${TD_BENCH_HOLD}s (tierd pid $pid)"; sleep "$TD_BENCH_HOLD"; }
echo "bench_resolver: OK"
