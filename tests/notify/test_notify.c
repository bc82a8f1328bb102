/* Unit tests for lib/notify.c: td_notify speaks systemd's notify protocol, a
 * datagram on $NOTIFY_SOCKET (a path or an abstract "@name"). */
#include "notify.h"
#include "testlib.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_dgram(const char *path, int abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	strcpy(sa.sun_path, path);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	if (abstract) {
		sa.sun_path[0] = '\0';
		len--;
	}
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* td_notify(addr, msg) returns 0 and `fd`, bound at addr, receives exactly msg. */
static void check_delivered(int fd, const char *addr, const char *msg)
{
	char buf[256];
	ssize_t n;

	CHECK_INT(td_notify(addr, msg), 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	REQUIRE(n > 0);
	buf[n] = '\0';
	CHECK_STR(buf, msg);
}

static void test_path_socket(void)
{
	char path[4200];
	const char *dir = td_test_tmpdir("notify");
	int fd;

	snprintf(path, sizeof(path), "%s/notify.sock", dir);
	fd = bind_dgram(path, 0);
	REQUIRE(fd >= 0);
	check_delivered(fd, path, "READY=1\nSTATUS=idle");
	close(fd);
	td_test_rmtree(dir);
}

static void test_abstract_socket(void)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@tierd-test-notify-%d", (int)getpid());
	fd = bind_dgram(name, 1);
	REQUIRE(fd >= 0);
	check_delivered(fd, name, "STOPPING=1");
	close(fd);
}

static void test_errors(void)
{
	char longpath[200];

	CHECK_INT(td_notify(NULL, "READY=1"), 0); /* not under systemd */
	CHECK_INT(td_notify("", "READY=1"), 0);
	CHECK_INT(td_notify("relative/path", "READY=1"), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK_INT(td_notify(longpath, "READY=1"), -ENAMETOOLONG);
	CHECK_INT(td_notify("/nonexistent/tierd/notify.sock", "READY=1"), -ENOENT);
}

int main(void)
{
	TD_RUN(test_path_socket);
	TD_RUN(test_abstract_socket);
	TD_RUN(test_errors);
	return td_test_done();
}
