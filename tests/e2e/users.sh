# Real users and groups for the permission tests (sourced after lib.sh, after
# e2e_init). Each is made with useradd/groupadd and removed when the test
# exits, passed or failed (e2e_init's trap runs E2E_CLEANUP_HOOKS); a test
# that cannot make them fails: it proves nothing without them.
#
#   e2e_group NAME                a new group
#   e2e_user NAME [useradd ARGS]  a new user with a group of its own
#   as_user NAME CMD...           CMD with NAME's uid, gid and groups
command -v useradd >/dev/null && command -v setpriv >/dev/null ||
	e2e_abort "useradd and setpriv (util-linux) are needed to make test users"

e2e_group() { # NAME
	groupadd "$1" || e2e_abort "cannot create group $1"
	E2E_CLEANUP_HOOKS+=("groupdel $1 >/dev/null 2>&1")
}

e2e_user() { # NAME [useradd ARGS]
	local name=$1
	shift
	useradd -M -U -d /nonexistent -s /usr/sbin/nologin "$@" "$name" ||
		e2e_abort "cannot create user $name"
	# -f: even while a process of theirs is still running.
	E2E_CLEANUP_HOOKS=("userdel -f $name >/dev/null 2>&1" "${E2E_CLEANUP_HOOKS[@]}")
}

as_user() { # NAME CMD...
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
}
