#!/usr/bin/env bash
# Issue 11, invariant 7 — tierctl shows a user only what they could stat.
# alice's 0644 file inside her 0700 directory is tiered, and bob's in his:
# bob's ls, ls --json, info (of alice's path and of a path that does not
# exist: the same answer, the same exit status), info --json, recall, and info
# of a link to alice's tierd link show nothing of hers (no id, no path);
# alice sees hers and root all of them. admin_group is a supplementary group
# of carol's, read from SO_PEERGROUPS: she sees everything and may reload;
# dave, not in it, sees nothing and may not.
. "$(dirname "$0")/lib.sh"
e2e_init ctlvis
. "$E2E_LIB_DIR/users.sh"
alice=tdva$$ bob=tdvb$$ carol=tdvc$$ dave=tdvd$$ adm=tdvg$$
e2e_group "$adm"
e2e_user "$alice"
e2e_user "$bob"
e2e_user "$carol" -G "$adm"
e2e_user "$dave"
pass "users $alice, $bob, $carol (in $adm), $dave made"

mkdir -p "$T/tier" "$T/data/alice" "$T/data/bob" "$T/bobtmp"
head -c 7000 /dev/urandom >"$T/data/alice/secret"
head -c 3000 /dev/urandom >"$T/data/bob/mine"
chown -R "$alice:" "$T/data/alice"
chown -R "$bob:" "$T/data/bob" "$T/bobtmp"
chmod 0700 "$T/data/alice" "$T/data/bob"
chmod 0644 "$T/data/alice/secret" "$T/data/bob/mine"
ADMIN_GROUP=$adm e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data" age_by= min_age=0s)"
e2e_start
ctl migrate "$T/data/alice/secret" "$T/data/bob/mine" >/dev/null &&
	[ -L "$T/data/alice/secret" ] && [ -L "$T/data/bob/mine" ] &&
	pass "both files tiered" || e2e_abort "migrate failed"
sock=$T/run/tierd.sock
id_of() { ctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])'; }
aid=$(id_of "$T/data/alice/secret")
bid=$(id_of "$T/data/bob/mine")
[ -n "$aid" ] && [ -n "$bid" ] && pass "root's info gives both ids" || fail "root's info: no ids"

tc() { # USER ARGS...: tierctl as USER; prints stdout and stderr, then "rc=N"
	local u=$1 rc=0 out
	shift
	out=$(as_user "$u" "$TIERCTL" -s "$sock" "$@" 2>&1) || rc=$?
	printf '%s\nrc=%s\n' "$out" "$rc"
}
# Nothing of alice's file in OUT: neither its id nor its path.
nothing_of_alice() { # WHAT OUT
	if [[ $2 == *"$aid"* || $2 == *alice/secret* ]]; then
		fail "$1 shows alice's file:"
		echo "$2"
	else
		pass "$1 shows nothing of alice's file"
	fi
}

# ---- bob ----
out=$(tc "$bob" ls)
nothing_of_alice "bob's ls" "$out"
[[ $out == *bob/mine* ]] && pass "bob's ls lists his own file" || fail "bob's ls misses his file: $out"
out=$(tc "$bob" --json ls)
nothing_of_alice "bob's ls --json" "$out"
only_id() { # ID JSON: the ls --json output lists exactly that one file
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["count"] == 1 and [f["id"] for f in d["files"]] == [sys.argv[1]], d' "$1" <<<"$2"
}
only_id "$bid" "${out%rc=*}" && pass "bob's ls --json: only his file, with its id" || fail "bob's ls --json: $out"
for j in "" --json; do
	a=$(tc "$bob" $j info "$T/data/alice/secret")
	n=$(tc "$bob" $j info "$T/data/alice/nothere")
	nothing_of_alice "bob's info $j" "${a//"$T/data/alice/secret"/}"
	[ "${a//secret/X}" = "${n//nothere/X}" ] &&
		pass "bob's info $j: alice's file answers as a path that does not exist (${a##*rc=})" ||
		{ fail "bob's info $j differs for alice's file and a missing one:"; echo "$a"; echo "$n"; }
done
a=$(tc "$bob" --json recall "$T/data/alice/secret")
n=$(tc "$bob" --json recall "$T/data/alice/nothere")
nothing_of_alice "bob's recall" "${a//"$T/data/alice/secret"/}"
[ "${a//secret/X}" = "${n//nothere/X}" ] &&
	pass "bob's recall: alice's file answers as a missing one" ||
	{ fail "bob's recall differs:"; echo "$a"; echo "$n"; }
[ -L "$T/data/alice/secret" ] && pass "alice's file still tiered" || fail "bob recalled alice's file"
# bob's own link to alice's tierd link (as if he knew the id): still nothing.
ln -s "$(readlink "$T/data/alice/secret")" "$T/bobtmp/peek"
chown -h "$bob:" "$T/bobtmp/peek"
out=$(tc "$bob" --json info "$T/bobtmp/peek")
nothing_of_alice "bob's info of a link to alice's tierd link" "$out"
out=$(tc "$bob" --json status)
nothing_of_alice "bob's status" "$out"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["restricted"] and "recent_errors" not in d and "files" not in d, d' <<<"${out%rc=*}" &&
	pass "bob's status has no catalog counts or recent errors" || fail "bob's status: $out"

# ---- alice, root ----
out=$(tc "$alice" --json ls)
only_id "$aid" "${out%rc=*}" && pass "alice's ls --json: her file, with its id" || fail "alice's ls: $out"
out=$(tc "$alice" --json info "$T/data/alice/secret")
[[ $out == *"$aid"* && $out == *rc=0 ]] && pass "alice's info shows her id" || fail "alice's info: $out"
out=$(ctl --json ls)
[[ $out == *"$aid"* && $out == *"$bid"* ]] && pass "root's ls shows both" || fail "root's ls: $out"

# ---- admin_group as a supplementary group (SO_PEERGROUPS) ----
out=$(tc "$carol" --json ls)
[[ $out == *"$aid"* && $out == *"$bid"* ]] && pass "carol (in $adm) sees every file" || fail "carol's ls: $out"
out=$(tc "$carol" reload)
[[ $out == *rc=0 ]] && pass "carol may reload" || fail "carol's reload: $out"
out=$(tc "$dave" --json ls)
[[ $out != *"$aid"* && $out != *"$bid"* && $out == *'"count": 0'* ]] && pass "dave (not in $adm) sees no file" || fail "dave's ls: $out"
out=$(tc "$dave" reload)
[[ $out == *"needs root"*rc=2 ]] && pass "dave may not reload" || fail "dave's reload: $out"

kill -0 "$TDPID" && pass "tierd still serving" || fail "tierd died"
tierd_stop
finish
