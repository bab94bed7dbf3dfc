/*
 * privfile: files only the daemon's user may read.
 *
 * The cache directory may already exist with any mode (0755 is common),
 * so a database there is made private by its own mode, not its folder's.
 */
#ifndef IMGFS_PRIVFILE_H
#define IMGFS_PRIVFILE_H

/* Make the SQLite database at path mode 0600 before it is opened: create it
 * empty (0600) when missing, else chmod it and its "-wal" and "-shm" files
 * that exist. SQLite gives the -wal and -shm files it creates later the
 * database's mode. Refuses a symbolic link. 0 or errno. Thread-safe. */
int privfile_db(const char *path);

#endif
