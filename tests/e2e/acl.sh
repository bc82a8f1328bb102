#!/usr/bin/env bash
# Issue 11 item 2, invariant 7 — POSIX ACLs and xattrs survive tiering, are
# enforced while tiered, and come back on recall. With [s3] the target is the
# test radosgw, else a dir target.
#
# A file of $own's, group $grp, 0640 with the ACL "group::--- user:$gra:r--
# mask::r-- other::---", and user.* xattrs with binary values (NUL and 0xff
# bytes): $mem (in $grp) may not read it, $gra (not in it) may, $oth may not.
#   cold  (keep_cached=no): through the link and the remote view, the ACL
#         decides (the kernel checks it: the view serves system.posix_acl_access);
#         getfacl and getfattr through the link show the original's;
#   hot   the read by $gra hydrated it: the cache copy has the ACL and xattrs;
#         a keep_cached file's copy (the cache is a tmpfs: a real copy) too;
#   recall both come back as regular files with getfacl and every xattr
#         (hex) identical to the original's, and the same access.
# Refusals, nothing changed: attributes over what tierd keeps (a file on a
# tmpfs with 80 KB of user.* xattrs), and a cache on ramfs, which holds no
# xattrs (a file without any still tiers there).
. "$(dirname "$0")/lib.sh"
mode=${1:-dir}
if [ "$mode" = s3 ]; then e2e_init acl s3; else e2e_init acl; fi
. "$E2E_LIB_DIR/users.sh"
td_need_cmds getfacl setfacl getfattr setfattr
own=tdao$$ mem=tdam$$ gra=tdau$$ oth=tdax$$ grp=tdag$$
e2e_group "$grp"
e2e_user "$own"
e2e_user "$mem" -G "$grp"
e2e_user "$gra"
e2e_user "$oth"
pass "users $own, $mem (in $grp), $gra, $oth made"

mnt() { # TYPE DIR
	mkdir -p "$2"
	mount -t "$1" -o size=64m "$1" "$2" 2>/dev/null || mount -t "$1" "$1" "$2" ||
		e2e_abort "cannot mount a $1 at $2"
	E2E_CLEANUP_HOOKS=("umount -l $2" "${E2E_CLEANUP_HOOKS[@]}")
}
mnt tmpfs "$T/cache"
mnt tmpfs "$T/big"
mkdir -p "$T/data/cold" "$T/data/hot" "$T/tier" "$T/orig"

# The probe's file, NAME in DIR, with its ACL and xattrs.
head -c 300000 /dev/urandom >"$T/orig/f"
mkacl() { # PATH: the bytes of orig/f
	cp "$T/orig/f" "$1"
	chown "$own:$grp" "$1"
	chmod 0640 "$1"
	setfacl -m "g::---,u:$gra:r--,m::r--,o::---" "$1"
	setfattr -n user.bin -v 0x00ff00017f80fe00 "$1"
	setfattr -n user.text -v "a note" "$1"
	setfattr -n trusted.tierd-test -v 0x0102 "$1"
}
facl() { getfacl -n --absolute-names "$1" 2>&1 | grep -v '^# file:'; }
fattr() { getfattr -h -d -m - -e hex --absolute-names "$1" 2>&1 | grep -v '^# file:'; }
# What USER sees of PATH's xattrs (trusted.* only for root), path left out.
fattr_as() { # USER PATH
	as_user "$1" getfattr -d -m - -e hex --absolute-names "$2" 2>&1 | grep -v '^# file:' |
		sed "s|$2|PATH|g"
}
mkacl "$T/data/cold/f"
mkacl "$T/data/hot/f"
mkacl "$T/data/cold/w"
want_acl=$(facl "$T/data/cold/f")
want_xa=$(fattr "$T/data/cold/f")
declare -A want_as
for u in "$mem" "$gra" "$oth"; do want_as[$u]=$(fattr_as "$u" "$T/data/cold/f"); done
[[ ${want_as[$gra]} == *user.bin* && ${want_as[$gra]} != *trusted* ]] ||
	e2e_abort "$gra's view of the xattrs: ${want_as[$gra]}"
[[ $want_acl == *"user:$(id -u "$gra"):r--"* && $want_xa == *"user.bin=0x00ff00017f80fe00"* ]] ||
	e2e_abort "the test file has no ACL or xattrs: $want_acl $want_xa"

reads() { as_user "$1" cat "$2" 2>/dev/null | cmp -s - "$T/orig/f"; }
denied() { # USER PATH: reading fails with EACCES
	local err
	err=$(as_user "$1" cat "$2" 2>&1 >/dev/null) && return 1
	[[ $err == *"Permission denied"* ]] || { echo "  ($2: $err)"; return 1; }
}
check() { # MSG CMD...
	local m=$1
	shift
	if "$@"; then pass "$m"; else fail "$m"; fi
}
access() { # WHERE PATH: the probe's four users, as on the original
	check "$1: $mem (in $grp, denied by group::---) cannot read" denied "$mem" "$2"
	check "$1: $oth cannot read" denied "$oth" "$2"
	check "$1: $own reads" reads "$own" "$2"
}
access "before tiering" "$T/data/cold/f"
check "before tiering: $gra (granted by user:$gra:r--) reads" reads "$gra" "$T/data/cold/f"

if [ "$mode" = s3 ]; then target=$(s3_target_conf nas); else target=$(dir_target_conf nas "$T/tier"); fi
e2e_conf "$target" "$(e2e_policy nas "$T/data/cold" age_by= min_age=0s keep_cached=no)" \
	"$(printf '\n[policy "h"]\npaths = %s %s\ntarget = nas\nschedule = manual\nmin_age = 0s\nkeep_cached = yes\n' "$T/data/hot" "$T/big")"
e2e_start

ctl migrate "$T/data/cold/f" "$T/data/hot/f" "$T/data/cold/w" >"$T/mig.out" 2>&1 &&
	[ -L "$T/data/cold/f" ] && [ -L "$T/data/hot/f" ] && [ -L "$T/data/cold/w" ] && pass "all three tiered" ||
	{ cat "$T/mig.out"; e2e_abort "migrate failed"; }
bound() { readlink "$(readlink "$1")"; }
dyn=$(readlink "$T/data/cold/f")
rv=$(bound "$T/data/cold/f")
id=$(basename "$(dirname "$dyn")")
[[ $rv == "$T/run/remote/"* ]] && pass "cold: bound to the remote view" || e2e_abort "cold file bound to $rv"

# The manifest beside the object records them too, losslessly (base64).
if [ "$mode" = s3 ]; then man=$(s3get "${E2E_PREFIX}${id:0:2}/$id.json"); else man=$(cat "$T/tier/${id:0:2}/$id.json"); fi
python3 -c '
import base64, json, sys
x = json.loads(sys.argv[1])["xattrs"]
assert base64.b64decode(x["user.bin"]) == bytes.fromhex("00ff00017f80fe00"), x
assert base64.b64decode(x["user.text"]) == b"a note" and "system.posix_acl_access" in x, x
' "$man" && pass "the manifest records every xattr and the ACL, binary values exact" ||
	fail "the manifest's xattrs: $man"

# ---- cold: the remote view ----
for p in "$T/data/cold/f" "$rv"; do
	w="cold ${p#"$T"/}"
	check "$w: $mem (in $grp, denied by group::---) cannot read" denied "$mem" "$p"
	check "$w: $oth cannot read" denied "$oth" "$p"
done
# The kernel refused those opens before they reached tierd: no copy, no .part.
[ "$(bound "$T/data/cold/f")" = "$rv" ] && [ -z "$(find "$T/cache" -name "$id*")" ] &&
	pass "cold: the denied opens did not hydrate it" || fail "cold: a denied open hydrated it"
check "cold: getfacl through the link is the original's" [ "$(facl "$T/data/cold/f")" = "$want_acl" ]
check "cold: getfacl in the remote view is the original's" [ "$(facl "$rv")" = "$want_acl" ]
check "cold: every xattr (hex) in the remote view is the original's" [ "$(fattr "$rv")" = "$want_xa" ]
for u in "$mem" "$gra" "$oth"; do
	for p in "$T/data/cold/f" "$rv"; do
		check "cold ${p#"$T"/}: $u sees the xattrs they saw on the original (no trusted.*)" \
			[ "$(fattr_as "$u" "$p")" = "${want_as[$u]}" ]
	done
done
check "cold: the view's mode keeps the mask as group bits (0640)" [ "$(stat -c %a "$rv")" = 640 ]
check "cold: $gra (granted by user:$gra:r--) reads it through the remote view" reads "$gra" "$rv"
check "cold: $gra reads it through the link" reads "$gra" "$T/data/cold/f"

# ---- hot: the copy the read hydrated, and keep_cached's ----
for _ in $(seq 300); do [[ $(bound "$T/data/cold/f") == "$T/cache/"* ]] && break; sleep 0.05; done
[[ $(bound "$T/data/cold/f") == "$T/cache/"* ]] && pass "the granted read hydrated it" ||
	e2e_abort "not hydrated: bound to $(bound "$T/data/cold/f")"
hid=$(basename "$(dirname "$(readlink "$T/data/hot/f")")")
# The copies, wherever the cache keeps them: the dynamic links say.
cache_copy=$(bound "$T/data/cold/f")
hot_copy=$(bound "$T/data/hot/f")
[ -f "$hot_copy" ] && [[ $hot_copy == "$T/cache/"*"$hid"* ]] &&
	pass "keep_cached: bound to its cache copy" || fail "keep_cached: bound to $hot_copy"
for f in cold hot; do
	c=$cache_copy
	[ $f = hot ] && c=$hot_copy
	for p in "$T/data/$f/f" "$c"; do
		w="hot ${p#"$T"/}"
		check "$w: $mem cannot read" denied "$mem" "$p"
		check "$w: $oth cannot read" denied "$oth" "$p"
		check "$w: $gra reads" reads "$gra" "$p"
	done
	check "hot $f: the cache copy's getfacl is the original's" [ "$(facl "$c")" = "$want_acl" ]
	check "hot $f: the cache copy's xattrs (hex) are the original's" [ "$(fattr "$c")" = "$want_xa" ]
done
check "hot: the remote view still gives $mem nothing" denied "$mem" "$rv"

# ---- a copy written through the view goes back to primary storage ----
# A truncating open makes an empty copy (no download); once closed, the written
# copy replaces the link, with the ACL and xattrs.
as_user "$own" sh -c "printf 'new bytes' >'$T/data/cold/w'" && pass "$own rewrote w through the link" ||
	fail "$own could not write w"
for _ in $(seq 400); do [ -L "$T/data/cold/w" ] || break; sleep 0.05; done
p=$T/data/cold/w
[ -f "$p" ] && [ ! -L "$p" ] && [ "$(cat "$p")" = "new bytes" ] &&
	pass "written: back on primary storage with the new bytes" || { fail "written: not back ($(ls -l "$p"))"; grep -v "info: tiered" "$T/tierd.log" | tail -20; }
check "written: getfacl identical to the original's" [ "$(facl "$p")" = "$want_acl" ]
check "written: every xattr (hex) identical" [ "$(fattr "$p")" = "$want_xa" ]
check "written: $mem cannot read" denied "$mem" "$p"

# ---- too large: 80 KB of user.* xattrs on a tmpfs file ----
head -c 5000 /dev/urandom >"$T/big/f"
setfattr -n user.a -v "0s$(head -c 40000 /dev/urandom | base64 -w0)" "$T/big/f"
setfattr -n user.b -v "0s$(head -c 40000 /dev/urandom | base64 -w0)" "$T/big/f"
big_xa=$(fattr "$T/big/f")
out=$(ctl migrate "$T/big/f" 2>&1) || true
[ -f "$T/big/f" ] && [ ! -L "$T/big/f" ] && [ "$(fattr "$T/big/f")" = "$big_xa" ] &&
	pass "too large: not tiered, its xattrs untouched" || fail "too large: changed ($out)"
[[ $out == *"extended attributes need"*"tierd keeps at most 65536"* ]] &&
	pass "too large: the reason is given: ${out##*: f: }" || fail "too large: reason: $out"

# ---- recall ----
ctl recall "$T/data/cold/f" "$T/data/hot/f" >"$T/rec.out" 2>&1 &&
	[ -f "$T/data/cold/f" ] && [ ! -L "$T/data/cold/f" ] && [ -f "$T/data/hot/f" ] && [ ! -L "$T/data/hot/f" ] &&
	pass "both recalled" || { cat "$T/rec.out"; fail "recall"; }
for f in cold hot; do
	p=$T/data/$f/f
	check "recalled $f: getfacl identical to the original's" [ "$(facl "$p")" = "$want_acl" ]
	check "recalled $f: every xattr (hex, binary values) identical" [ "$(fattr "$p")" = "$want_xa" ]
	check "recalled $f: bytes identical" cmp -s "$p" "$T/orig/f"
	access "recalled $f" "$p"
	check "recalled $f: $gra reads" reads "$gra" "$p"
done
tierd_stop

# ---- a cache without xattrs (ramfs): refused, nothing changed ----
mnt ramfs "$T/ramcache"
sed -i -e "s|^cache_dir.*|cache_dir = $T/ramcache|" -e "s|^state_dir.*|state_dir = $T/state2|" \
	-e "s|^run_dir.*|run_dir = $T/run2|" "$T/tierd.conf"
mkacl "$T/data/cold/g"
head -c 4000 /dev/urandom >"$T/data/cold/plain"
g_acl=$(facl "$T/data/cold/g")
g_xa=$(fattr "$T/data/cold/g")
e2e_start
out=$(ctl migrate "$T/data/cold/g" 2>&1) || true
[ -f "$T/data/cold/g" ] && [ ! -L "$T/data/cold/g" ] && [ "$(facl "$T/data/cold/g")" = "$g_acl" ] &&
	[ "$(fattr "$T/data/cold/g")" = "$g_xa" ] && cmp -s "$T/data/cold/g" "$T/orig/f" &&
	pass "ramfs cache: not tiered, ACL and xattrs untouched" || fail "ramfs cache: changed ($out)"
[[ $out == *"cache filesystem ($T/ramcache) cannot keep its extended attribute"*"not supported"* ]] &&
	pass "ramfs cache: the reason is given: ${out##*: g: }" || fail "ramfs cache: reason: $out"
grep -q "cannot keep its extended attribute" "$T/tierd.log" &&
	pass "ramfs cache: the log says why" || fail "ramfs cache: nothing in the log"
ctl --json info "$T/data/cold/g" | python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; assert f["state"] == "local" and "id" not in f, f' &&
	pass "ramfs cache: no catalog row left" || fail "ramfs cache: a row is left"
ctl migrate "$T/data/cold/plain" >/dev/null 2>&1 && [ -L "$T/data/cold/plain" ] &&
	pass "ramfs cache: a file without xattrs still tiers" || fail "ramfs cache: a plain file was not tiered"
kill -0 "$TDPID" && pass "tierd still serving" || fail "tierd died"
tierd_stop
finish
