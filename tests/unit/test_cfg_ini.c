/*
 * test_cfg_ini: the configuration file: INI errors with their line, long
 * lines, and keys read in order (test_cfg.c has the options themselves).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg_rig.h"

static void test_ini_errors(void)
{
	expect_error(vec("imgfs", "--config", DATA "unknown_key.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), DATA "unknown_key.ini:3", "unknown key 'colour'");
	expect_error(vec("imgfs", "--config", DATA "bad_value.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), DATA "bad_value.ini:2", "thumb_size");
	expect_error(vec("imgfs", "--config", DATA "garbage.ini", "bkt", "/tmp",
			 NULL),
		     base_env(), DATA "garbage.ini:3", NULL);
	expect_error(vec("imgfs", "--config", DATA "wrong_section.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), "wrong_section.ini:2", "[imgsf]");
	expect_error(vec("imgfs", "--config", DATA "no_section.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), "no_section.ini:1", "[imgfs]");
	expect_error(vec("imgfs", "--config", DATA "unterminated.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), "unterminated.ini:1", NULL);
	expect_error(vec("imgfs", "--config", DATA "missing.ini", "bkt", "/tmp",
			 NULL),
		     base_env(), DATA "missing.ini", "No such file");
	/* a key given twice is refused, naming both lines */
	expect_error(vec("imgfs", "--config", DATA "duplicate_key.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), DATA "duplicate_key.ini:4",
		     "key 'region' set again (first on line 2)");
	expect_error(vec("imgfs", "--config", "/dev/zero", "bkt", "/tmp", NULL),
		     base_env(), "/dev/zero", "regular file");
	expect_error(vec("imgfs", "--config", "tests", "bkt", "/tmp", NULL),
		     base_env(), "tests", NULL);
	/* control characters from the input never break the line */
	expect_error(vec("imgfs", "-o", "bad\nkey\x1b[2J", "bkt", "/tmp",
			 NULL),
		     base_env(), "unknown option", NULL);
	/* -o wins over a bad file value: the file value is never used */
	{
		struct run r;

		run(&r, vec("imgfs", "--config", DATA "bad_value.ini", "-o",
			    "thumb_size=100", "bkt", "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, CFG_OK);
		CHECK_INT(r.c.thumb.size, 100);
		done(&r);
		run(&r, vec("imgfs", "--config", DATA "empty.ini", "bkt",
			    "/tmp", NULL),
		    base_env());
		CHECK_INT(r.res, CFG_OK);
		done(&r);
	}
}

/* inih stops at 200 bytes a line; longer values arrive whole and line
 * numbers stay those of the file. */
static void test_long_lines(void)
{
	char want[1024];
	struct run r;
	int n = snprintf(want, sizeof(want), "/var/tmp");

	for (int i = 0; i < 30; i++)
		n += snprintf(want + n, sizeof(want) - (size_t)n,
			      "%sdir %02d with spaces", i ? "/" : "/", i);
	run(&r, vec("imgfs", "--config", DATA "long_lines.ini", "bkt", "/tmp",
		    NULL),
	    base_env());
	CHECK_INT(r.res, CFG_OK);
	CHECK_STR(r.c.cache.dir, want);
	CHECK(r.c.s3.sse_kms_key_id && strlen(r.c.s3.sse_kms_key_id) == 250 &&
	      strspn(r.c.s3.sse_kms_key_id, "k") == 250);
	CHECK_INT(r.c.thumb.size, 64);
	done(&r);
	expect_error(vec("imgfs", "--config", DATA "long_then_unknown.ini",
			 "bkt", "/tmp", NULL),
		     base_env(), "long_then_unknown.ini:4", "'colour'");
	expect_error(vec("imgfs", "--config", DATA "long_garbage.ini", "bkt",
			 "/tmp", NULL),
		     base_env(), "long_garbage.ini:3", "syntax error");
}

static int count_keys(void *user, const char *section, const char *name,
		      const char *value, int line)
{
	int *lines = user;

	if (lines[0] < 63)
		lines[++lines[0]] = line;
	return strcmp(name, "refuse") != 0;
}

static void test_ini_read(void)
{
	int lines[64] = {0}, bad = -1;

	CHECK_INT(cfg_ini_read(DATA "full.ini", count_keys, lines, &bad), 0);
	CHECK_INT(bad, 0);
	CHECK_INT(lines[0], 27);
	CHECK_INT(lines[1], 3);
	CHECK_INT(lines[27], 29);
	CHECK_INT(cfg_ini_read(DATA "missing.ini", count_keys, lines, &bad),
		  ENOENT);
	CHECK_INT(cfg_ini_read("/dev/null", count_keys, lines, &bad), EFBIG);
	CHECK_INT(cfg_ini_read(DATA, count_keys, lines, &bad), EFBIG);
	CHECK_INT(cfg_ini_read("/proc/self/pagemap", count_keys, lines, &bad),
		  EFBIG);
	CHECK_INT(cfg_ini_read(DATA "garbage.ini", count_keys, lines, &bad),
		  EBADMSG);
	CHECK_INT(bad, 3);
}

int main(void)
{
	test_ini_errors();
	test_long_lines();
	test_ini_read();
	return check_done("test_cfg_ini");
}
