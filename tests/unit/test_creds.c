/*
 * Unit tests of core/creds: the environment and shared-file providers,
 * profiles, their precedence, the warning about readable credential files,
 * broken files, and the checks the HTTP providers make before sending
 * anything. Requests in these tests only ever go to closed loopback ports;
 * tests/e2e/test_creds_providers.py covers the HTTP providers against a
 * real local server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "vec.h"
#include "aws/creds.h"
#include "base/log.h"

static char tmpdir[] = "/tmp/imgfs-test-creds-XXXXXX";
static char cred_path[128], conf_path[128];

static void write_file(const char *path, mode_t mode, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* Captures stderr (where log lines go) into a file while in use. */
struct capture {
	int saved;
	char path[160];
};

static void capture_start(struct capture *cap)
{
	int fd;

	snprintf(cap->path, sizeof(cap->path), "%s/stderr", tmpdir);
	fflush(stderr);
	cap->saved = dup(2);
	fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
}

/* Stop capturing; return what was written (caller frees). */
static char *capture_end(struct capture *cap)
{
	char *text = calloc(1, 65536);
	FILE *f;

	fflush(stderr);
	dup2(cap->saved, 2);
	close(cap->saved);
	f = fopen(cap->path, "r");
	if (f) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

struct attempt {
	struct creds *c;
	struct aws_creds a;
	char err[1024];
	int get_rc;
	char *log;
};

/* creds_create for profile with the test's two files and env (freed). */
static void attempt(struct attempt *t, const char *profile, char **env)
{
	char prof[64];
	struct creds_conf conf = {.profile = prof,
				  .credentials_file = cred_path,
				  .config_file = conf_path};
	struct capture cap;

	snprintf(prof, sizeof(prof), "%s", profile);
	memset(t, 0, sizeof(*t));
	capture_start(&cap);
	t->c = creds_create(&conf, env, t->err, sizeof(t->err));
	t->get_rc = t->c ? creds_get(t->c, &t->a) : -1;
	t->log = capture_end(&cap);
	vec_free(env);
}

static void attempt_done(struct attempt *t)
{
	creds_destroy(t->c);
	free(t->log);
}

/* An environment with no other provider reachable. */
static char **quiet_env(void)
{
	return vec("AWS_EC2_METADATA_DISABLED=true", NULL);
}

static void expect_fail(const char *profile, char **env, const char *frag1,
			const char *frag2)
{
	struct attempt t;

	attempt(&t, profile, env);
	CHECK(t.c == NULL);
	CHECK(t.err[0] && strncmp(t.err, "imgfs: ", 7) != 0);
	CHECK(strchr(t.err, '\n') == NULL);
	if (frag1 && !strstr(t.err, frag1))
		fprintf(stderr, "  error '%s' lacks '%s'\n", t.err, frag1);
	CHECK(!frag1 || strstr(t.err, frag1));
	if (frag2 && !strstr(t.err, frag2))
		fprintf(stderr, "  error '%s' lacks '%s'\n", t.err, frag2);
	CHECK(!frag2 || strstr(t.err, frag2));
	attempt_done(&t);
}

static void test_environment(void)
{
	struct attempt t;

	write_file(cred_path, 0600, "[default]\naws_access_key_id = AKFILE\n"
		   "aws_secret_access_key = skfile\n");
	attempt(&t, "default",
		vec("AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=skenv",
		    "AWS_SESSION_TOKEN=tokenv", NULL));
	CHECK(t.c != NULL);
	CHECK_INT(t.get_rc, 0);
	CHECK_STR(t.a.access_key, "AKENV");
	CHECK_STR(t.a.secret_key, "skenv");
	CHECK_STR(t.a.token, "tokenv");
	CHECK_INT(t.a.expiry, 0);
	CHECK_STR(t.c ? creds_source(t.c) : NULL, "environment");
	CHECK(strstr(t.log, "skenv") == NULL && strstr(t.log, "tokenv") == NULL);
	attempt_done(&t);
	attempt(&t, "default",
		vec("AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=skenv",
		    NULL));
	CHECK_STR(t.a.token, "");
	attempt_done(&t);
	expect_fail("default", vec("AWS_ACCESS_KEY_ID=AKENV", NULL),
		    "AWS_SECRET_ACCESS_KEY", NULL);
	expect_fail("default", vec("AWS_SECRET_ACCESS_KEY=x", NULL),
		    "AWS_ACCESS_KEY_ID", NULL);
	/* values go into HTTP headers: no line breaks, no blanks */
	expect_fail("default",
		    vec("AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=s",
			"AWS_SESSION_TOKEN=tok\r\nX-Injected: 1", NULL),
		    "invalid characters", NULL);
	expect_fail("default",
		    vec("AWS_ACCESS_KEY_ID=AK EY", "AWS_SECRET_ACCESS_KEY=s",
			NULL),
		    "invalid characters", NULL);
}

static void test_profiles(void)
{
	struct attempt t;

	write_file(cred_path, 0600,
		   "# comment\n[default]\naws_access_key_id = AKDEF\n"
		   "aws_secret_access_key = skdef\n\n[work]\n"
		   "aws_access_key_id=AKWORK\naws_secret_access_key=skwork\n"
		   "aws_session_token=tokwork\nregion=eu-west-1\n");
	write_file(conf_path, 0600,
		   "[default]\nregion = us-east-1\n[profile work]\n"
		   "aws_access_key_id=AKWORKCONF\naws_secret_access_key=x\n"
		   "[profile conf]\naws_access_key_id = AKCONF\n"
		   "aws_secret_access_key = skconf\ns3 =\n"
		   "    addressing_style = path\n[profile role]\n"
		   "role_arn = arn:aws:iam::123456789012:role/r\n"
		   "source_profile = default\n[profile empty]\n"
		   "region = eu-west-2\n");
	attempt(&t, "default", quiet_env());
	CHECK_STR(t.a.access_key, "AKDEF");
	CHECK_STR(t.a.secret_key, "skdef");
	CHECK(t.c && strstr(creds_source(t.c), "profile default"));
	attempt_done(&t);
	/* the credentials file wins over the config file */
	attempt(&t, "work", quiet_env());
	CHECK_STR(t.a.access_key, "AKWORK");
	CHECK_STR(t.a.token, "tokwork");
	CHECK(t.c && strstr(creds_source(t.c), cred_path));
	attempt_done(&t);
	/* [profile NAME] in the config file */
	attempt(&t, "conf", quiet_env());
	CHECK_STR(t.a.access_key, "AKCONF");
	CHECK_STR(t.a.secret_key, "skconf");
	CHECK(t.c && strstr(creds_source(t.c), conf_path));
	attempt_done(&t);
	expect_fail("nosuch", quiet_env(), "'nosuch'", "not found");
	expect_fail("role", quiet_env(), "role_arn", "'role'");
	/* a profile without keys falls through to the next provider */
	expect_fail("empty", quiet_env(), "no AWS credentials", NULL);
	/* environment wins over a profile */
	attempt(&t, "work",
		vec("AWS_ACCESS_KEY_ID=AKENV", "AWS_SECRET_ACCESS_KEY=s", NULL));
	CHECK_STR(t.a.access_key, "AKENV");
	attempt_done(&t);
}

/* Real session tokens run past inih's 200-byte lines. */
static void test_long_token(void)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	char token[1601], text[2048];
	struct attempt t;

	for (size_t i = 0; i < sizeof(token) - 1; i++)
		token[i] = alphabet[(i * 7 + i / 13) % (sizeof(alphabet) - 1)];
	token[sizeof(token) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "[default]\naws_access_key_id = ASIALONG\n"
		 "aws_session_token = %s\naws_secret_access_key = sk\n"
		 "[next]\nbogus line\n", token);
	write_file(cred_path, 0600, text);
	expect_fail("default", quiet_env(), ":6:", "syntax error");
	snprintf(text, sizeof(text),
		 "[default]\naws_access_key_id = ASIALONG\n"
		 "aws_session_token = %s\naws_secret_access_key = sk\n",
		 token);
	write_file(cred_path, 0600, text);
	attempt(&t, "default", quiet_env());
	CHECK(t.c != NULL);
	CHECK_STR(t.a.token, token);
	CHECK_STR(t.a.secret_key, "sk");
	CHECK(strstr(t.log, token) == NULL);
	attempt_done(&t);
	unlink(cred_path);
}

static void test_missing_files(void)
{
	unlink(cred_path);
	unlink(conf_path);
	expect_fail("default", quiet_env(), "no AWS credentials", cred_path);
	expect_fail("other", quiet_env(), "'other'", "not found");
	write_file(conf_path, 0600,
		   "[default]\naws_access_key_id=AKCONFDEF\n"
		   "aws_secret_access_key=s\n");
	{
		struct attempt t;

		attempt(&t, "default", quiet_env());
		CHECK_STR(t.a.access_key, "AKCONFDEF");
		attempt_done(&t);
	}
}

static void test_garbage(void)
{
	write_file(cred_path, 0600,
		   "[default]\naws_access_key_id = AK\nthis line is garbage\n"
		   "aws_secret_access_key = sk\n");
	expect_fail("default", quiet_env(), cred_path, ":3:");
	write_file(cred_path, 0600, "[default\naws_access_key_id = AK\n");
	expect_fail("default", quiet_env(), cred_path, ":1:");
	write_file(cred_path, 0600, "\x7f" "ELF\x02\x01\x01\n\xff\xfe\n");
	expect_fail("default", quiet_env(), cred_path, NULL);
	write_file(cred_path, 0600,
		   "[default]\naws_access_key_id = AK\n");
	expect_fail("default", quiet_env(), "aws_secret_access_key", cred_path);
	{
		char text[512];

		snprintf(text, sizeof(text),
			 "[default]\naws_access_key_id = %0150d\n"
			 "aws_secret_access_key = s\n", 7);
		write_file(cred_path, 0600, text);
		expect_fail("default", quiet_env(), "too long", ":2:");
	}
	unlink(cred_path);
	if (symlink("/dev/zero", cred_path) == 0)
		expect_fail("default", quiet_env(), cred_path, "regular file");
	unlink(cred_path);
	write_file(conf_path, 0600, "[default]\nregion\n");
	expect_fail("default", quiet_env(), conf_path, ":2:");
	unlink(conf_path);
}

static void test_permission_warning(void)
{
	struct attempt t;

	write_file(cred_path, 0644, "[default]\naws_access_key_id = AKPERM\n"
		   "aws_secret_access_key = sksecretperm\n");
	attempt(&t, "default", quiet_env());
	CHECK(t.c != NULL);
	CHECK(strstr(t.log, "readable by group or others") != NULL);
	CHECK(strstr(t.log, cred_path) != NULL);
	CHECK(strstr(t.log, "sksecretperm") == NULL);
	attempt_done(&t);
	chmod(cred_path, 0640);
	attempt(&t, "default", quiet_env());
	CHECK(strstr(t.log, "readable by group or others") != NULL);
	attempt_done(&t);
	chmod(cred_path, 0600);
	attempt(&t, "default", quiet_env());
	CHECK(t.c != NULL);
	CHECK(strstr(t.log, "readable by group") == NULL);
	attempt_done(&t);
	unlink(cred_path);
}

/* The HTTP providers refuse bad settings before sending anything, and
 * report unreachable endpoints (closed loopback ports only). */
static void test_http_settings(void)
{
	char tokfile[160];

	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.1.2.3/c",
			NULL),
		    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "loopback");
	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=not a url", NULL),
		    "AWS_CONTAINER_CREDENTIALS_FULL_URI", NULL);
	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=v2/creds", NULL),
		    "RELATIVE_URI", NULL);
	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/c",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN=a\r\nX-Evil: 1", NULL),
		    "line break", NULL);
	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/c",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN=secret-token", NULL),
		    "container", "127.0.0.1:1");
	snprintf(tokfile, sizeof(tokfile), "%s/no-token", tmpdir);
	expect_fail("default",
		    vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://[::1]:1/c",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/nonexistent/t",
			NULL),
		    "/nonexistent/t", NULL);
	expect_fail("default",
		    vec("AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1",
			NULL),
		    "instance metadata", "127.0.0.1:1");
	expect_fail("default",
		    vec("AWS_EC2_METADATA_SERVICE_ENDPOINT=169.254.169.254",
			NULL),
		    "AWS_EC2_METADATA_SERVICE_ENDPOINT", NULL);
	/* the token never shows in an error */
	{
		struct attempt t;

		attempt(&t, "default",
			vec("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/c",
			    "AWS_CONTAINER_AUTHORIZATION_TOKEN=secret-token",
			    NULL));
		CHECK(strstr(t.err, "secret-token") == NULL);
		CHECK(strstr(t.log, "secret-token") == NULL);
		attempt_done(&t);
	}
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(cred_path, sizeof(cred_path), "%s/credentials", tmpdir);
	snprintf(conf_path, sizeof(conf_path), "%s/config", tmpdir);
	log_setup(LOG_LVL_DEBUG, 0);
	test_environment();
	test_profiles();
	test_long_token();
	test_missing_files();
	test_garbage();
	test_permission_warning();
	test_http_settings();
	unlink(cred_path);
	unlink(conf_path);
	{
		char p[160];

		snprintf(p, sizeof(p), "%s/stderr", tmpdir);
		unlink(p);
	}
	rmdir(tmpdir);
	return check_done("test_creds");
}
