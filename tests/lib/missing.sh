# Sourced by the test scripts: what a test does when a component it needs
# (radosgw, FUSE, root, a reference tool) is not there.
#
# td_missing WHAT: fails (exit 1) under CI or in a build configured with
# -DTD_TESTS_MAY_SKIP=OFF (scripts/test; ctest passes TD_TESTS_MAY_SKIP=0);
# elsewhere (a developer's build) skips with exit 77.
td_missing() {
	if [ -n "${CI:-}" ] || [ "${TD_TESTS_MAY_SKIP:-1}" = 0 ]; then
		echo "FAIL: missing: $*"
		exit 1
	fi
	echo "SKIP: $* (this fails under CI and in scripts/test)"
	exit 77
}

# td_need_s3: the TD_S3_* variables of tests/s3/radosgw.sh are set.
td_need_s3() {
	[ -n "${TD_S3_ENDPOINT:-}" ] && [ -n "${TD_S3_ACCESS_KEY:-}" ] &&
		[ -n "${TD_S3_SECRET_KEY:-}" ] && [ -n "${TD_S3_BUCKET:-}" ] ||
		td_missing "TD_S3_* not set (start radosgw with tests/s3/radosgw.sh)"
}

# td_need_cmds CMD...: each command is installed.
td_need_cmds() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null || td_missing "$p is not installed"
	done
}
