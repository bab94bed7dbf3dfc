/* privfile: database files are 0600 whatever the umask and folder mode. */
#include "base/privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static int mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (int)(st.st_mode & 07777);
}

static void touch(const char *path, mode_t mode)
{
	int fd = open(path, O_CREAT | O_WRONLY, mode);

	if (fd >= 0) {
		fchmod(fd, mode);
		close(fd);
	}
}

int main(void)
{
	char dir[] = "/tmp/test_privfile.XXXXXX", p[256], q[300];

	umask(022);
	CHECK(mkdtemp(dir) != NULL);
	chmod(dir, 0755);
	/* a new database is created 0600 */
	snprintf(p, sizeof(p), "%s/new.db", dir);
	CHECK_INT(privfile_db(p), 0);
	CHECK_INT(mode_of(p), 0600);
	/* an old one and its WAL files made 0644 become 0600 */
	snprintf(p, sizeof(p), "%s/old.db", dir);
	touch(p, 0644);
	snprintf(q, sizeof(q), "%s-wal", p);
	touch(q, 0644);
	CHECK_INT(privfile_db(p), 0);
	CHECK_INT(mode_of(p), 0600);
	CHECK_INT(mode_of(q), 0600);
	snprintf(q, sizeof(q), "%s-shm", p);
	CHECK_INT(mode_of(q), -1); /* not created */
	/* a symbolic link is not followed */
	snprintf(q, sizeof(q), "%s/link.db", dir);
	CHECK_INT(symlink(p, q), 0);
	CHECK_INT(privfile_db(q), ELOOP);
	unlink(q);
	snprintf(q, sizeof(q), "%s-wal", p);
	unlink(q);
	unlink(p);
	snprintf(p, sizeof(p), "%s/new.db", dir);
	unlink(p);
	rmdir(dir);
	return check_done("test_privfile");
}
