/* latencyfs -- a passthrough FUSE filesystem that makes every metadata operation cost a round
 * trip, as on a parallel filesystem whose metadata server is busy (a loaded Lustre MDS answers
 * in 0.3-2 ms), while data reads and writes go through without delay.  For uvslurm's dev
 * cluster and benchmarks (scripts/dev-cluster up --shared-latency MS).
 *
 *   latencyfs [--latency-us N] [--cache S] SOURCE MOUNTPOINT [fuse options, e.g. -f]
 *
 * --latency-us  delay added to each metadata operation (default 500)
 * --cache       seconds the kernel may cache names and attributes, found or not (default 1, as
 *               a Lustre client caches them under its locks; 0: every lookup and stat reaches
 *               the "server"). Opens, creates, renames, unlinks, closes and locks always do.
 *               Every process on this host shares the one mount's cache: several emulated
 *               nodes on one mount ask the "server" less than real nodes would
 *
 * flock passes through to SOURCE (the lock is taken there, by this process, on an open file of
 * its own per opener), so it excludes across every process that uses the mount, and across
 * several mounts of one SOURCE: a coherent lock, as Lustre -o flock and GPFS give.  POSIX
 * (fcntl) locks are left to the kernel, which keeps them per mount.
 *
 * Reading MOUNTPOINT/.latencyfs-stats (not listed, not counted) gives the operations served so
 * far, one "name count" a line: "ops" is the sum of the metadata operations.
 * Requests run as the caller (setfsuid/setfsgid per request), so files get their owners.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STATS "/.latencyfs-stats"
#define STATS_FH UINT64_MAX

enum op {
	GETATTR, READLINK, MKNOD, MKDIR, UNLINK, RMDIR, SYMLINK, RENAME, LINK, CHMOD, CHOWN,
	TRUNCATE, OPEN, CREATE, RELEASE, OPENDIR, READDIR, RELEASEDIR, STATFS, ACCESS, UTIMENS,
	FLOCK, FSYNC, NOPS
};
static const char *op_names[NOPS] = {
	"getattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link",
	"chmod", "chown", "truncate", "open", "create", "release", "opendir", "readdir",
	"releasedir", "statfs", "access", "utimens", "flock", "fsync",
};
static _Atomic unsigned long counts[NOPS];
static _Atomic unsigned long data_reads, data_writes;
static long latency_us = 500;
static double cache_s = 1;
static int root_fd = -1;

/* one metadata round trip: counted, delayed, and done as the caller */
static void meta(enum op op)
{
	struct fuse_context *c = fuse_get_context();
	atomic_fetch_add(&counts[op], 1);
	if (latency_us > 0) {
		struct timespec ts = {latency_us / 1000000, (latency_us % 1000000) * 1000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	setfsgid(c->gid);
	setfsuid(c->uid);
}

/* a path relative to SOURCE, for the *at calls ("/" is SOURCE itself) */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int stats_text(char *buf, size_t size)
{
	unsigned long total = 0;
	size_t n = 0;
	for (int i = 0; i < NOPS; i++)
		total += atomic_load(&counts[i]);
	n += snprintf(buf + n, size - n, "latency_us %ld\ncache_ms %ld\nops %lu\n", latency_us,
		      (long)(cache_s * 1000), total);
	for (int i = 0; i < NOPS && n < size; i++)
		n += snprintf(buf + n, size - n, "%s %lu\n", op_names[i], atomic_load(&counts[i]));
	if (n < size)
		n += snprintf(buf + n, size - n, "data_reads %lu\ndata_writes %lu\n",
			      atomic_load(&data_reads), atomic_load(&data_writes));
	return n < size ? (int)n : (int)size;
}

static void *lfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* else every read asks for the file's attributes first (they are never cached): reads
	 * would count, and pay, as metadata operations, which on Lustre they are not */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	cfg->hard_remove = 1; /* no .fuse_hidden files: every call on an open file uses its fd */
	cfg->entry_timeout = cache_s;
	cfg->attr_timeout = cache_s;
	cfg->negative_timeout = cache_s;
	cfg->kernel_cache = 1; /* file data is only ever changed through this mount */
	return NULL;
}

static int lfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (path && strcmp(path, STATS) == 0) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		return 0;
	}
	meta(GETATTR);
	int r = fi && fi->fh != STATS_FH ? fstat(fi->fh, st)
					 : fstatat(root_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
	return r == -1 ? -errno : 0;
}

static int lfs_access(const char *path, int mask)
{
	meta(ACCESS);
	return faccessat(root_fd, rel(path), mask, 0) == -1 ? -errno : 0;
}

static int lfs_readlink(const char *path, char *buf, size_t size)
{
	meta(READLINK);
	ssize_t n = readlinkat(root_fd, rel(path), buf, size - 1);
	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

struct dir {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static int lfs_opendir(const char *path, struct fuse_file_info *fi)
{
	meta(OPENDIR);
	int fd = openat(root_fd, rel(path), O_RDONLY | O_DIRECTORY);
	if (fd == -1)
		return -errno;
	struct dir *d = calloc(1, sizeof(*d));
	if (!d || !(d->dp = fdopendir(fd))) {
		int e = d ? errno : ENOMEM;
		close(fd);
		free(d);
		return -e;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

static int lfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	(void)flags;
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	meta(READDIR);
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry)
				return errno ? -errno : 0;
		}
		struct stat st = {.st_ino = d->entry->d_ino, .st_mode = d->entry->d_type << 12};
		off_t next = telldir(d->dp);
		if (filler(buf, d->entry->d_name, &st, next, 0))
			break;
		d->entry = NULL;
		d->offset = next;
	}
	return 0;
}

static int lfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct dir *d = (struct dir *)(uintptr_t)fi->fh;
	meta(RELEASEDIR);
	closedir(d->dp);
	free(d);
	return 0;
}

static int lfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	meta(MKNOD);
	return mknodat(root_fd, rel(path), mode, rdev) == -1 ? -errno : 0;
}

static int lfs_mkdir(const char *path, mode_t mode)
{
	meta(MKDIR);
	return mkdirat(root_fd, rel(path), mode) == -1 ? -errno : 0;
}

static int lfs_unlink(const char *path)
{
	meta(UNLINK);
	return unlinkat(root_fd, rel(path), 0) == -1 ? -errno : 0;
}

static int lfs_rmdir(const char *path)
{
	meta(RMDIR);
	return unlinkat(root_fd, rel(path), AT_REMOVEDIR) == -1 ? -errno : 0;
}

static int lfs_symlink(const char *target, const char *path)
{
	meta(SYMLINK);
	return symlinkat(target, root_fd, rel(path)) == -1 ? -errno : 0;
}

static int lfs_rename(const char *from, const char *to, unsigned int flags)
{
	meta(RENAME);
	long r = syscall(SYS_renameat2, root_fd, rel(from), root_fd, rel(to), flags);
	return r == -1 ? -errno : 0;
}

static int lfs_link(const char *from, const char *to)
{
	meta(LINK);
	return linkat(root_fd, rel(from), root_fd, rel(to), 0) == -1 ? -errno : 0;
}

static int lfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	meta(CHMOD);
	int r = fi ? fchmod(fi->fh, mode) : fchmodat(root_fd, rel(path), mode, 0);
	return r == -1 ? -errno : 0;
}

static int lfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	meta(CHOWN);
	int r = fi ? fchown(fi->fh, uid, gid)
		   : fchownat(root_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
	return r == -1 ? -errno : 0;
}

static int lfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	meta(TRUNCATE);
	if (fi)
		return ftruncate(fi->fh, size) == -1 ? -errno : 0;
	int fd = openat(root_fd, rel(path), O_WRONLY);
	if (fd == -1)
		return -errno;
	int r = ftruncate(fd, size) == -1 ? -errno : 0;
	close(fd);
	return r;
}

static int lfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	meta(UTIMENS);
	int r = fi ? futimens(fi->fh, tv)
		   : utimensat(root_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return r == -1 ? -errno : 0;
}

static int lfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	meta(CREATE);
	int fd = openat(root_fd, rel(path), fi->flags, mode);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	return 0;
}

static int lfs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, STATS) == 0) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY)
			return -EACCES;
		fi->fh = STATS_FH;
		fi->direct_io = 1; /* its size is 0: read it whatever the kernel thinks */
		return 0;
	}
	meta(OPEN);
	int fd = openat(root_fd, rel(path), fi->flags & ~O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	fi->fh = fd;
	return 0;
}

static int lfs_read(const char *path, char *buf, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == STATS_FH) {
		char text[2048];
		int n = stats_text(text, sizeof(text));
		if (offset >= n)
			return 0;
		size_t k = (size_t)(n - offset) < size ? (size_t)(n - offset) : size;
		memcpy(buf, text + offset, k);
		return (int)k;
	}
	atomic_fetch_add(&data_reads, 1);
	ssize_t r = pread(fi->fh, buf, size, offset);
	return r == -1 ? -errno : (int)r;
}

static int lfs_write(const char *path, const char *buf, size_t size, off_t offset,
		     struct fuse_file_info *fi)
{
	(void)path;
	atomic_fetch_add(&data_writes, 1);
	ssize_t r = pwrite(fi->fh, buf, size, offset);
	return r == -1 ? -errno : (int)r;
}

static int lfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	meta(STATFS);
	return fstatvfs(root_fd, st) == -1 ? -errno : 0;
}

static int lfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh == STATS_FH)
		return 0;
	meta(RELEASE); /* a close is a round trip on Lustre too */
	close(fi->fh);
	return 0;
}

static int lfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	meta(FSYNC);
	int r = datasync ? fdatasync(fi->fh) : fsync(fi->fh);
	return r == -1 ? -errno : 0;
}

/* the lock is taken on this process's own open file of SOURCE: blocking waits in a thread of
 * its own (max_threads is raised, so waiters never starve the holder of threads) */
static int lfs_flock(const char *path, struct fuse_file_info *fi, int op)
{
	(void)path;
	meta(FLOCK);
	return flock(fi->fh, op) == -1 ? -errno : 0;
}

static const struct fuse_operations ops = {
	.init = lfs_init,
	.getattr = lfs_getattr,
	.access = lfs_access,
	.readlink = lfs_readlink,
	.opendir = lfs_opendir,
	.readdir = lfs_readdir,
	.releasedir = lfs_releasedir,
	.mknod = lfs_mknod,
	.mkdir = lfs_mkdir,
	.symlink = lfs_symlink,
	.unlink = lfs_unlink,
	.rmdir = lfs_rmdir,
	.rename = lfs_rename,
	.link = lfs_link,
	.chmod = lfs_chmod,
	.chown = lfs_chown,
	.truncate = lfs_truncate,
	.utimens = lfs_utimens,
	.open = lfs_open,
	.create = lfs_create,
	.read = lfs_read,
	.write = lfs_write,
	.statfs = lfs_statfs,
	.release = lfs_release,
	.fsync = lfs_fsync,
	.flock = lfs_flock,
};

static void usage(void)
{
	fprintf(stderr, "usage: latencyfs [--latency-us N] [--cache S] SOURCE MOUNTPOINT "
			"[fuse options]\n");
	exit(2);
}

int main(int argc, char *argv[])
{
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		char *end;
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--latency-us") == 0) {
			latency_us = strtol(argv[i + 1], &end, 10);
			if (*end || latency_us < 0)
				usage();
		} else if (strcmp(argv[i], "--cache") == 0) {
			cache_s = strtod(argv[i + 1], &end);
			if (*end || cache_s < 0)
				usage();
		} else {
			usage();
		}
	}
	if (argc - i < 2)
		usage();
	root_fd = open(argv[i], O_RDONLY | O_DIRECTORY);
	if (root_fd == -1) {
		perror(argv[i]);
		return 1;
	}
	/* the default 50 us of timer slack would make every round trip 10% longer */
	prctl(PR_SET_TIMERSLACK, 1UL);
	umask(0); /* modes arrive with the caller's umask applied */
	/* allow_other: every user of the cluster; default_permissions: the kernel checks modes
	 * (this process runs as root) */
	char *fargv[64] = {argv[0], argv[i + 1], "-o",
			   "allow_other,default_permissions,fsname=latencyfs,subtype=latencyfs",
			   "-o", "max_threads=1024"};
	int fargc = 6;
	for (int k = i + 2; k < argc && fargc < 63; k++)
		fargv[fargc++] = argv[k];
	fargv[fargc] = NULL;
	return fuse_main(fargc, fargv, &ops, NULL);
}
