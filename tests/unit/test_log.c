/* log_key: no key can forge a log line or reach a terminal as an escape. */
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static void expect(const char *key, const char *want)
{
	struct log_key e;

	CHECK_STR(log_key(&e, key), want);
}

int main(void)
{
	char *dup, long_key[LOG_KEY_MAX + 20];

	expect("uploads/a b/cat.jpg", "uploads/a b/cat.jpg");
	expect(NULL, "(none)");
	/* a newline and a fake timestamp stay on the one line */
	expect("x\n2026-01-01T00:00:00.000Z imgfs error: forged",
	       "x\\x0a2026-01-01T00:00:00.000Z imgfs error: forged");
	expect("a\rb\tc", "a\\x0db\\x09c");
	/* terminal escapes: ESC (CSI), DEL, C1 CSI as UTF-8 */
	expect("\x1b[2Jclear", "\\x1b[2Jclear");
	expect("del\x7f", "del\\x7f");
	expect("c1\xc2\x9b" "31m", "c1\\xc2\\x9b31m");
	/* the backslash itself, so an escape cannot be faked */
	expect("a\\x0ab", "a\\x5cx0ab");
	/* valid UTF-8 is kept; invalid bytes, overlongs, surrogates are not */
	expect("caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x98\xba", "caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x98\xba");
	expect("bad\xff\xfe", "bad\\xff\\xfe");
	expect("over\xc0\xaf", "over\\xc0\\xaf");
	expect("sur\xed\xa0\x80", "sur\\xed\\xa0\\x80");
	expect("cut\xe7\x8c", "cut\\xe7\\x8c");
	/* line separators and bidi controls */
	expect("ls\xe2\x80\xa8ps\xe2\x80\xa9", "ls\\xe2\\x80\\xa8ps\\xe2\\x80\\xa9");
	expect("rlo\xe2\x80\xae" "gpj.exe", "rlo\\xe2\\x80\\xaegpj.exe");
	expect("fsi\xe2\x81\xa8", "fsi\\xe2\\x81\\xa8");
	expect("dash\xe2\x80\x94", "dash\xe2\x80\x94");
	/* long keys are cut and marked */
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	{
		struct log_key e;
		const char *s = log_key(&e, long_key);

		CHECK_INT(strlen(s), LOG_KEY_MAX + 3);
		CHECK(strcmp(s + LOG_KEY_MAX, "...") == 0);
	}
	/* the worst case fits: every byte escaped */
	memset(long_key, '\n', sizeof(long_key) - 1);
	{
		struct log_key e;

		CHECK_INT(strlen(log_key(&e, long_key)), LOG_KEY_MAX * 4 + 3);
	}
	dup = log_key_dup("a\nb");
	CHECK_STR(dup, "a\\x0ab");
	free(dup);
	return check_done("test_log");
}
