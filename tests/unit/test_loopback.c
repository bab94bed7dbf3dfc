/* Unit tests: which endpoint hosts are this machine (core/base/loopback.h). */
#include "check.h"
#include "base/loopback.h"

static void test_hosts(void)
{
	static const char *const yes[] = {"localhost", "LocalHost", "127.0.0.1",
					  "127.8.9.10", "[::1]", NULL};
	static const char *const no[] = {"", "example.com", "128.0.0.1",
					 "192.0.2.2", "[fd00::2]", "::1",
					 "localhost.example.com", "[::1", NULL};

	for (const char *const *h = yes; *h; h++)
		CHECK(host_is_loopback(*h));
	for (const char *const *h = no; *h; h++)
		CHECK(!host_is_loopback(*h));
}

static void test_host_and_port(void)
{
	CHECK(hostport_is_loopback("127.0.0.1:7480"));
	CHECK(hostport_is_loopback("localhost"));
	CHECK(hostport_is_loopback("[::1]:443"));
	CHECK(!hostport_is_loopback("s3.amazonaws.com:443"));
	CHECK(!hostport_is_loopback("[fd00::2]:80"));
	CHECK(!hostport_is_loopback("10.0.0.1"));
}

int main(void)
{
	test_hosts();
	test_host_and_port();
	return check_done("loopback");
}
