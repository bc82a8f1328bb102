#!/usr/bin/env bash
# Resolver acceptance: reads through the original paths of tiered files.
#
#   read.sh dir | s3
#
# Every tool gets its own set of cold files (sizes 0, 1, 4095, 1 MiB - 1,
# 1 MiB, 1 MiB + 1, 3 MiB + 5), so each one really reads through the remote
# view: cat, cp, sha256sum, dd at offsets (bs=4096 and odd sizes), tail -c,
# mmap, random seeks (hydrating, and streamed by a no_hydrate process), 8
# concurrent readers of one cold file, 100 readers of 100 cold files, a ~50 MiB
# file. All must be byte-identical to the originals. Then: after hydration the
# dynamic link points at the cache copy, a second read makes no target request,
# and the copy has the original owner, mode and mtime (invariant 7).
. "$(dirname "$0")/lib.sh"
kind=${1:-dir}
need_fuse
[ "$kind" = s3 ] && td_need_s3
rv_setup "read-$kind" "$kind"
rv_conf "no_hydrate = rvstream" "cache_size = 2G"
start_tierd || { fail "tierd start"; finish; }

sizes=(0 1 4095 1048575 1048576 1048577 3145733)
sets=(cat cp sha dd tail mmap rand stream)
names=()
for s in "${sets[@]}"; do
	for z in "${sizes[@]}"; do
		mkfile "$s-$z" "$z"
		names+=("$s-$z")
	done
done
# s3 (radosgw on memstore) is slower to fill: smaller big files there.
if [ "$kind" = s3 ]; then bigsz=20971529 concsz=8388611; else bigsz=52428807 concsz=20971523; fi
mkfile big $bigsz # ~50 MiB on dir
mkfile big2 $bigsz
mkfile conc $concsz
mkfile meta 7340037
for i in $(seq 100); do mkfile "many-$i" $((RANDOM + i)); done
# Invariant 7 material: another owner, an unusual mode, an old mtime with nanoseconds.
chown 1234:1235 "$t/data/meta"
chmod 0640 "$t/data/meta"
touch -m -d '2020-02-03 04:05:06.123456789' "$t/data/meta"
meta_stat=$(stat -c '%u:%g:%a:%s:%y' "$t/data/meta")

all=("${names[@]}" big big2 conc meta)
for i in $(seq 100); do all+=("many-$i"); done
tier "${all[@]}" && pass "tiered ${#all[@]} files" || { fail "migrate"; finish; }
cold=0
for f in "${all[@]}"; do is_cold "$f" || { echo "$f not cold: $(bound "$f")"; cold=1; }; done
check "every tiered file is bound to the remote view" [ $cold = 0 ]

D=$t/data
out=$t/out
mkdir -p "$out"
for z in "${sizes[@]}"; do
	check "cat $z bytes" bash -c "cat '$D/cat-$z' >'$out/cat-$z' && cmp -s '$out/cat-$z' '$t/orig/cat-$z'"
	check "cp $z bytes" bash -c "cp '$D/cp-$z' '$out/cp-$z' && cmp -s '$out/cp-$z' '$t/orig/cp-$z'"
	check "sha256sum $z bytes" [ "$(sha256sum <"$D/sha-$z" | cut -d' ' -f1)" = "$(sha256sum <"$t/orig/sha-$z" | cut -d' ' -f1)" ]
	check "mmap $z bytes" $RVIO mmap "$D/mmap-$z" "$t/orig/mmap-$z"
	check "random reads, hydrating, $z bytes" $RVIO random "$D/rand-$z" "$t/orig/rand-$z" 40
	check "random reads, streamed (no_hydrate), $z bytes" $RVIO --comm rvstream random "$D/stream-$z" "$t/orig/stream-$z" 40
done

# dd at offsets: bs=4096 and odd block sizes, byte offsets across chunk edges.
dd_same() { # NAME ARGS...
	local n=$1
	shift
	[ "$(dd if="$D/$n" status=none "$@" | sha256sum)" = "$(dd if="$t/orig/$n" status=none "$@" | sha256sum)" ]
}
ddok=0
for a in "bs=4096 skip=0 count=1" "bs=4096 skip=255 count=2" "bs=4096 skip=256 count=3" \
	"bs=4096 skip=700 count=100" "bs=4093 skip=3 count=7" "bs=65537 skip=15 count=3" \
	"bs=1 skip=1048575 count=2" "bs=1000003 skip=1 count=3" \
	"iflag=skip_bytes,count_bytes bs=777 skip=1048570 count=11" \
	"iflag=skip_bytes,count_bytes bs=4096 skip=3145730 count=100"; do
	for z in "${sizes[@]}"; do
		# shellcheck disable=SC2086
		dd_same "dd-$z" $a || { echo "dd $a on $z bytes differs"; ddok=1; }
	done
done
check "dd at offsets (bs=4096, odd sizes, byte offsets)" [ $ddok = 0 ]

tailok=0
for z in "${sizes[@]}"; do
	for c in 1 100 4097 1048577 +2 +1048577; do
		[ "$(tail -c "$c" "$D/tail-$z" | sha256sum)" = "$(tail -c "$c" "$t/orig/tail-$z" | sha256sum)" ] ||
			{ echo "tail -c $c on $z bytes differs"; tailok=1; }
	done
done
check "tail -c (from the end and from offsets)" [ $tailok = 0 ]

check "sha256sum of a $bigsz-byte cold file" [ "$(sha256sum <"$D/big" | cut -d' ' -f1)" = "$(sha256sum <"$t/orig/big" | cut -d' ' -f1)" ]
check "cp of a $bigsz-byte cold file" bash -c "cp '$D/big2' '$out/big2' && cmp -s '$out/big2' '$t/orig/big2'"

# 8 concurrent readers of one cold file.
rp=()
for i in $(seq 8); do cat "$D/conc" >"$out/conc-$i" & rp+=($!); done
wait "${rp[@]}"
cok=0
for i in $(seq 8); do same "$out/conc-$i" conc || cok=1; done
check "8 concurrent readers of one cold $concsz-byte file" [ $cok = 0 ]

# 100 readers of 100 different cold files at once.
rp=()
for i in $(seq 100); do cat "$D/many-$i" >"$out/many-$i" & rp+=($!); done
wait "${rp[@]}"
mok=0
for i in $(seq 100); do same "$out/many-$i" "many-$i" || { echo "many-$i differs"; mok=1; }; done
check "100 concurrent readers of 100 cold files" [ $mok = 0 ]

check "no hydration failures" [ "$(st remote_view.hydration_failures)" = 0 ]
check "streamed opens counted for the no_hydrate reader" [ "$(st remote_view.streamed_opens)" -ge 7 ]
check "no recent errors" [ "$(st recent_errors)" = "[]" ]

# ---- 2. hydration and rebinding -----------------------------------------------
sha_meta=$(sha256sum <"$t/orig/meta" | cut -d' ' -f1)
check "first read of a cold file" [ "$(sha256sum <"$D/meta" | cut -d' ' -f1)" = "$sha_meta" ]
check "after hydration the dynamic link points into cache_dir" wait_hot meta
check "  ... at the copy <cache_dir>/copies/<aa>/<id>/<id>" [ "$(bound meta)" = "$(cache_path meta)" ]
sleep 0.3 # let the status counters settle
req0=$(st remote_view.target_requests)
opens0=$(st remote_view.opens)
check "second full read is byte-identical" [ "$(sha256sum <"$D/meta" | cut -d' ' -f1)" = "$sha_meta" ]
cat "$D/meta" >/dev/null
req1=$(st remote_view.target_requests)
opens1=$(st remote_view.opens)
check "second read: no target request ($req0 -> $req1)" [ "$req0" = "$req1" ]
check "second read: tierd not involved, no open ($opens0 -> $opens1)" [ "$opens0" = "$opens1" ]
copy_stat=$(stat -c '%u:%g:%a:%s:%y' "$(cache_path meta)")
check "cache copy keeps owner, mode, size, mtime ($meta_stat vs $copy_stat)" [ "$meta_stat" = "$copy_stat" ]
check "the link shows them too" [ "$(stat -L -c '%u:%g:%a:%s:%y' "$D/meta")" = "$meta_stat" ]
# Every other file read above is hot now too.
hot=0
for f in "${all[@]}"; do
	case $f in stream-*) continue ;; esac
	wait_hot "$f" 10 || { echo "$f still $(bound "$f")"; hot=1; }
done
check "every hydrating reader's file ended up hot" [ $hot = 0 ]
sok=0
for z in "${sizes[@]}"; do is_cold "stream-$z" && [ ! -e "$(cache_path "stream-$z")" ] || sok=1; done
check "files read only by the no_hydrate process are not in the cache" [ $sok = 0 ]
check "hydrated files read back right (from the cache)" bash -c "for f in big conc cat-3145733; do cmp -s '$D/'\$f '$t/orig/'\$f || exit 1; done"
check "no .part files left" [ "$(parts)" = 0 ]
finish
