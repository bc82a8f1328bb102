#!/usr/bin/env bash
# The cache holds its limit (issue 12 item 5). cache_size = 1M.
#  (d) status cache.used_bytes counts a dirty copy (one being written).
#  (a, b) 70 pinned 4 KiB copies, the oldest by their originals' atimes, and
#      30 unpinned 64 KiB copies: eviction walks past the pinned ones (more
#      than one batch of 64) and the cache goes back under 1 MiB; the pinned
#      copies all stay.
#  (c) tiering with keep_cached = yes makes copies without a hydration: a trim
#      runs anyway and the cache goes back under 1 MiB.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup limit
rv_conf "cache_size = 1M"
LIMIT=1048576
start_tierd || { fail "tierd start"; finish; }
under() { # until the copies and status used_bytes are <= 1 MiB (20 s)
	for _ in $(seq 200); do
		[ "$(cache_bytes)" -le $LIMIT ] && [ "$(st cache.used_bytes)" -le $LIMIT ] && return 0
		sleep 0.1
	done
	echo "  copies: $(cache_bytes) bytes, used_bytes $(st cache.used_bytes)"
	return 1
}

# (d) a dirty copy, held open for writing.
mkfile d 300000
tier d && pass "(d) tiered" || fail "(d) migrate"
exec 3>"$t/data/d" # O_TRUNC through the link: the copy is dirty at once
echo "new" >&3
for _ in $(seq 50); do [ "$(st cache.used_bytes)" -ge 300000 ] && break; sleep 0.1; done
check "(d) used_bytes counts the dirty copy ($(st cache.used_bytes) >= 300000)" [ "$(st cache.used_bytes)" -ge 300000 ]
exec 3>&-
for _ in $(seq 100); do [ -L "$t/data/d" ] || break; sleep 0.1; done
check "(d) the written file went back to primary storage" [ ! -L "$t/data/d" ]

# (a, b) pinned copies first in line.
pinned=() loose=()
for i in $(seq 70); do mkfile "p$i" 4096; pinned+=("p$i"); done
for i in $(seq 30); do mkfile "u$i" 65536; loose+=("u$i"); done
touch -a -d 2001-01-01 "${pinned[@]/#/$t/data/}"
touch -a -d 2002-01-01 "${loose[@]/#/$t/data/}"
tier "${pinned[@]}" "${loose[@]}" && pass "tiered 100 files" || { fail "migrate"; finish; }
ctl pin "${pinned[@]/#/$t/data/}" >"$t/pin.out" 2>&1
check "pinned 70 files" [ $? = 0 ]
ok=0
for f in "${loose[@]}"; do cmp -s "$t/data/$f" "$t/orig/$f" || ok=1; done
check "(a) 30 unpinned files read right" [ $ok = 0 ]
check "(a) the cache goes back under its limit past 70 pinned copies" under
ok=0
for f in "${pinned[@]}"; do is_hot "$f" || ok=1; done
check "(a) every pinned copy stayed" [ $ok = 0 ]
check "(a) evictions ran ($(st remote_view.evictions))" [ "$(st remote_view.evictions)" -gt 0 ]

# (c) keep_cached copies.
stop_tierd
sed -i 's/^keep_cached = no/keep_cached = yes/' "$conf"
start_tierd || fail "(c) restart"
for i in 1 2 3; do mkfile "k$i" 600000; done
tier k1 k2 k3 && pass "(c) tiered 3 x 600 KB with keep_cached" || fail "(c) migrate"
check "(c) the cache goes back under its limit without a hydration" under
ok=0
for i in 1 2 3; do cmp -s "$t/data/k$i" "$t/orig/k$i" || ok=1; done
check "(c) the files read right" [ $ok = 0 ]
stop_tierd
finish
