#!/usr/bin/env bash
# Resolver acceptance: permissions (invariant 7). A 0600 file of uid 1234 is
# unreadable by uid 1235 through the link, the dynamic link, the remote view
# and the cache copy; uid 1234 reads it through the link; non-root users cannot
# list the namespace, the remote view or their <aa> directories.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup perms
rv_conf "cache_size = 1G"
start_tierd || { fail "tierd start"; finish; }
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
mkfile secret 2097157
chown 1234:1234 "$t/data/secret"
chmod 0600 "$t/data/secret"
mkfile public 1048581
chown 1234:1234 "$t/data/public"
chmod 0644 "$t/data/public"
tier secret public && pass "tiered" || { fail "migrate"; finish; }
dl=$(dynlink secret)
rp=$(bound_remote secret)
cp_=$(cache_path secret)
denied() { # uid path: reading fails (and not because the path is missing)
	local u=$1 p=$2 err
	err=$(as "$u" cat "$p" 2>&1 >/dev/null) && return 1
	[[ $err == *"Permission denied"* ]] || { echo "  ($p: $err)"; return 1; }
}
check "cold: uid 1235 cannot read it through the link" denied 1235 "$t/data/secret"
check "cold: uid 1235 cannot read it through the dynamic link" denied 1235 "$dl"
check "cold: uid 1235 cannot read it in the remote view" denied 1235 "$rp"
check "cold: the denied opens did not hydrate it" is_cold secret
check "cold: uid 1235 may read a 0644 file of uid 1234 (the paths work)" \
	bash -c "setpriv --reuid=1235 --regid=1235 --clear-groups cat '$t/data/public' | cmp -s - '$t/orig/public'"
check "uid 1234 reads its 0600 file through the link" \
	bash -c "setpriv --reuid=1234 --regid=1234 --clear-groups cat '$t/data/secret' | cmp -s - '$t/orig/secret'"
check "it is hydrated" wait_hot secret
check "hot: uid 1235 cannot read it through the link" denied 1235 "$t/data/secret"
check "hot: uid 1235 cannot read it through the dynamic link" denied 1235 "$dl"
check "hot: uid 1235 cannot read the cache copy" denied 1235 "$cp_"
check "hot: uid 1235 cannot read it in the remote view" denied 1235 "$rp"
check "hot: the cache copy is 1234:1234 0600" [ "$(stat -c '%u:%g:%a' "$cp_")" = "1234:1234:600" ]
check "hot: uid 1234 reads it" bash -c "setpriv --reuid=1234 --regid=1234 --clear-groups cat '$t/data/secret' | cmp -s - '$t/orig/secret'"
id=$(file_id secret)
for d in "$t/state/links" "$t/state/links/${id:0:2}" "$t/run/remote" "$t/run/remote/${id:0:2}" \
	"$t/cache/copies" "$t/cache/copies/${id:0:2}"; do
	for u in 1234 1235; do
		err=$(as "$u" ls "$d" 2>&1) && { fail "uid $u could list $d"; continue; }
		[[ $err == *"Permission denied"* ]] && pass "uid $u cannot list ${d#"$t"/} (EACCES)" ||
			fail "uid $u listing $d: $err"
	done
done
check "root can list the remote view's <aa> (it is there)" ls "$t/run/remote/${id:0:2}"
finish
