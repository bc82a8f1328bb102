#!/usr/bin/env bash
# Runs a test against one of the two S3 servers of the suite:
#
#   tests/s3/on.sh radosgw CMD [ARGS...]   TD_S3_* as they are (scripts/test
#                                          exports radosgw's)
#   tests/s3/on.sh swift CMD [ARGS...]     TD_S3_* replaced by the ones in the
#                                          env file $TD_SWIFT_ENV (written by
#                                          tests/s3/swift.sh; scripts/test sets it)
#
# Each s3 test registered twice in ctest (NAME and NAME_swift) runs through
# this. Without the server's variables the test is missing a component
# (tests/lib/missing.sh: a failure under CI, a skip elsewhere).
set -euo pipefail
server=${1:-}
shift || true
[ $# -gt 0 ] || { echo "usage: $0 radosgw|swift CMD [ARGS...]" >&2; exit 2; }
. "$(dirname "$0")/../lib/missing.sh"
case $server in
radosgw)
	[ -n "${TD_S3_ENDPOINT:-}" ] || td_missing "TD_S3_* (radosgw; tests/s3/radosgw.sh start DIR)"
	export TD_S3_SERVER=radosgw
	;;
swift)
	[ -n "${TD_SWIFT_ENV:-}" ] && [ -r "$TD_SWIFT_ENV" ] ||
		td_missing "TD_SWIFT_ENV (the env file of tests/s3/swift.sh start DIR)"
	unset TD_S3_ENDPOINT TD_S3_ACCESS_KEY TD_S3_SECRET_KEY TD_S3_BUCKET TD_S3_REGION TD_RGW_CONF
	set -a
	# shellcheck disable=SC1090
	. "$TD_SWIFT_ENV"
	set +a
	;;
*) echo "on.sh: unknown server '$server' (radosgw|swift)" >&2; exit 2 ;;
esac
exec "$@"
