# Sourced by the test scripts that count their checks instead of stopping at
# the first failure: each check says "ok ..." or "FAIL ...", and finish, last,
# prints the count of failures and returns nonzero if there was one.
fails=0
pass() { echo "ok $*"; }
fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}
finish() {
	echo "$fails failed"
	[ "$fails" = 0 ]
}
