#!/usr/bin/env bash
# Issue 11 item 1, invariant 7 — an id is not a capability. alice's files in
# directories 0700, 0750, 0711 and 0755, with modes 0600, 0640 and 0644; the
# users alice, bob (in alice's group), carol (neither) and nobody. What each
# may read (and stat) at the original path is taken from an untiered twin of
# the tree, the same owners and modes; every tierd path to the bytes must give
# exactly that: the original path (now a link), the dynamic link
# links/<aa>/<id>/<name> and the remote view's <aa>/<id>/<name> while cold,
# then the same and the cache copy while hot. Then d755 becomes 0700 (twin
# too), a run of the policy refolds it, and the matrix is checked again. Root
# reads everything throughout. Real FUSE, real users; a dir target.
. "$(dirname "$0")/lib.sh"
e2e_init permmx
. "$E2E_LIB_DIR/users.sh"
[ -e /dev/fuse ] || e2e_abort "/dev/fuse missing: the remote view cannot mount"
alice=tdma$$ bob=tdmb$$ carol=tdmc$$
e2e_user "$alice"
e2e_user "$bob" -G "$alice"
e2e_user "$carol"
id nobody >/dev/null || e2e_abort "no user nobody"
users=("$alice" "$bob" "$carol" nobody)
pass "users $alice, $bob (in group $alice), $carol made; nobody exists"

dirs=(d700 d750 d711 d755) modes=(600 640 644)
mkdir -p "$T/tier" "$T/twin"
for tree in data twin; do
	for d in "${dirs[@]}"; do
		mkdir "$T/$tree/$d"
		for m in "${modes[@]}"; do
			[ "$tree" = data ] && head -c 5000 /dev/urandom >"$T/$tree/$d/f$m" ||
				cp "$T/data/$d/f$m" "$T/$tree/$d/f$m"
			chmod "$m" "$T/$tree/$d/f$m"
		done
		chown -R "$alice:$alice" "$T/$tree/$d"
		chmod "${d#d}" "$T/$tree/$d"
	done
done

# Each user's numeric credentials, looked up once: other tests on the machine
# add and remove users meanwhile, and a lookup that fails then must not read
# as "denied".
declare -A cred
for u in "${users[@]}"; do
	cred[$u]="--reuid=$(id -u "$u") --regid=$(id -g "$u") --groups=$(id -G "$u" | tr ' ' ,)"
done
# cell USER PATH: "r" if USER reads it, "s" if USER can only stat it, "-" if
# neither (one setpriv: its own failure prints nothing, and is retried).
cell() {
	local out i
	for i in 1 2 3; do
		# shellcheck disable=SC2086 # cred holds several options
		out=$(setpriv ${cred[$1]} sh -c 'if head -c 1 "$1" >/dev/null 2>&1; then echo r;
			elif stat -L "$1" >/dev/null 2>&1; then echo s; else echo -; fi' sh "$2" 2>/dev/null)
		[ -n "$out" ] && break
	done
	echo "${out:-?}"
}
declare -A want
expect() { # from the twin, now
	local u d m
	for u in "${users[@]}"; do for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
		want[$u/$d/f$m]=$(cell "$u" "$T/twin/$d/f$m")
	done; done; done
}
expect
[ "${want[$alice/d700/f600]}" = r ] && [ "${want[$carol/d700/f644]}" = - ] &&
	[ "${want[$bob/d750/f640]}" = r ] && [ "${want[$carol/d711/f600]}" = s ] &&
	pass "the twin's matrix is as the modes say" || fail "the twin's matrix is odd"

# no_hydrate = head: the readers stream, so cold stays cold until root hydrates.
e2e_conf "no_hydrate = head" "$(dir_target_conf nas "$T/tier")" \
	"$(e2e_policy nas "$T/data" age_by= min_age=0s keep_cached=no)"
e2e_start
files=()
for d in "${dirs[@]}"; do for m in "${modes[@]}"; do files+=("$T/data/$d/f$m"); done; done
ctl migrate "${files[@]}" >/dev/null || e2e_abort "migrate failed"
for f in "${files[@]}"; do [ -L "$f" ] || e2e_abort "$f not tiered"; done
pass "${#files[@]} files tiered (cold)"
declare -A idof
for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
	idof[$d/f$m]=$(ctl --json info "$T/data/$d/f$m" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])')
done; done

# path KIND D/F: the file's path of that kind.
path() {
	local id=${idof[$2]}
	case $1 in
	orig) echo "$T/data/$2" ;;
	link) echo "$T/state/links/${id:0:2}/$id/${2#*/}" ;;
	remote) echo "$T/run/remote/${id:0:2}/$id/${2#*/}" ;;
	cache) readlink "$T/state/links/${id:0:2}/$id/${2#*/}" ;; # bound to it when hot
	esac
}

# matrix TITLE KIND...: prints the matrix (want/got per cell when they differ)
# and counts one check per kind and user.
matrix() {
	local title=$1 k u d m f got bad line
	shift
	echo "# $title: want (from the twin) | ${*}"
	for u in "${users[@]}"; do
		line=$(printf '%-10s' "${u:0:10}")
		for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
			f=$d/f$m
			line+=" $d/$m:${want[$u/$f]}|"
			for k in "$@"; do
				got=$(cell "$u" "$(path "$k" "$f")")
				line+=$got
				# shellcheck disable=SC2086 # cred holds several options
				[ "$got" = "${want[$u/$f]}" ] ||
					bad+=" $u:$k:$f(want ${want[$u/$f]} got $got: $(setpriv ${cred[$u]} head -c 1 "$(path "$k" "$f")" 2>&1 >/dev/null))"
			done
		done; done
		echo "$line"
	done
	[ -z "${bad:-}" ] && pass "$title: every cell as at the original" ||
		{ fail "$title: cells differ:$bad"; tail -5 "$T/tierd.log"; }
}
rootreads() { # KIND...
	local k d m bad=
	for k in "$@"; do for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
		cmp -s "$(path "$k" "$d/f$m")" "$T/twin/$d/f$m" || bad+=" $k:$d/f$m($(head -c1 "$(path "$k" "$d/f$m")" 2>&1 >/dev/null))"
	done; done; done
	[ -z "$bad" ] && pass "root reads every file by every path ($*)" || fail "root cannot read:$bad"
}

matrix cold orig link remote
bound_cold=0
for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
	[[ $(path cache "$d/f$m") == "$T/run/remote/"* ]] && bound_cold=$((bound_cold + 1))
done; done
[ "$bound_cold" = "${#files[@]}" ] && pass "still cold: every dynamic link points at the remote view" ||
	fail "only $bound_cold of ${#files[@]} still cold"
rootreads orig link remote

# Hot: root's cat hydrates; wait until each dynamic link is rebound off the view.
for f in "${files[@]}"; do cat "$f" >/dev/null; done
deadline=$((SECONDS + 60))
while :; do
	n=0
	for d in "${dirs[@]}"; do for m in "${modes[@]}"; do
		[[ $(path cache "$d/f$m") == "$T/cache/"* ]] && n=$((n + 1))
	done; done
	[ "$n" = "${#files[@]}" ] && break
	[ $SECONDS -lt $deadline ] || e2e_abort "only $n of ${#files[@]} hydrated after 60 s"
	sleep 0.1
done
pass "all hydrated (bound to their cache copies)"
matrix hot orig link cache remote
rootreads orig link cache remote

# The file's own directories are root's (its owner named in an ACL): alice
# cannot chmod them wider, nor list or write in them.
id=${idof[d700/f644]}
ld=$T/state/links/${id:0:2}/$id cd=$T/cache/copies/${id:0:2}/$id
[ "$(stat -c %u "$ld"):$(stat -c %u "$cd")" = 0:0 ] && pass "d700/f644's directories are root's" ||
	fail "d700/f644's directories: $(stat -c %U:%G:%a "$ld" "$cd")"
for d in "$ld" "$cd" "$T/run/remote/${id:0:2}/$id"; do
	if as_user "$alice" chmod 0777 "$d" 2>/dev/null || as_user "$alice" ls "$d" >/dev/null 2>&1 ||
		as_user "$alice" touch "$d/x" 2>/dev/null; then
		fail "alice could chmod, list or write in ${d#"$T"/}"
	else
		pass "alice can neither chmod, list nor write in ${d#"$T"/}"
	fi
done

# A parent chmod'ed after tiering: the next run of the policy folds it in.
chmod 0700 "$T/data/d755" "$T/twin/d755"
expect
out=$(ctl run p 2>&1) || fail "tierctl run p: $out"
wait_idle 60 || fail "the run did not end"
matrix "after chmod 0700 d755 and a run" orig link cache remote
rootreads orig link cache remote

kill -0 "$TDPID" && pass "tierd still serving" || fail "tierd died"
tierd_stop
finish
