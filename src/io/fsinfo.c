/* Facts about the filesystem and block device that hold a path: the filesystem type from
 * /proc/self/mountinfo, the whole disk from /sys/dev/block, O_DIRECT support by trying it. */
#include "io/fsinfo.h"

#include "core/core.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Reads a small sysfs file into buf, stripping the newline. 0 or -1. */
static int read_small(const char *path, char *buf, size_t len) {
  FILE *fp = fopen(path, "re");
  if (!fp)
    return -1;
  char *ok = fgets(buf, (int)len, fp);
  fclose(fp);
  if (!ok)
    return -1;
  buf[strcspn(buf, "\n")] = '\0';
  return 0;
}

int kvik__blockdev(unsigned major, unsigned minor, char *name, size_t len, unsigned *disk_major,
                   unsigned *disk_minor) {
  if (len)
    name[0] = '\0';
  *disk_major = *disk_minor = 0;
  if (major == 0)
    return -1; /* virtual filesystem (tmpfs, overlay, nfs...) */
  char path[PATH_MAX], real[PATH_MAX];
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major, minor);
  if (!realpath(path, real))
    return -1;
  /* A partition's parent directory is its disk. */
  char probe[PATH_MAX + 16];
  snprintf(probe, sizeof probe, "%s/partition", real);
  if (access(probe, F_OK) == 0) {
    char *slash = strrchr(real, '/');
    if (slash)
      *slash = '\0';
  }
  char dev[64];
  snprintf(probe, sizeof probe, "%s/dev", real);
  unsigned ma, mi;
  if (read_small(probe, dev, sizeof dev) != 0 || sscanf(dev, "%u:%u", &ma, &mi) != 2)
    return -1;
  const char *base = strrchr(real, '/');
  snprintf(name, len, "%s", base ? base + 1 : real);
  *disk_major = ma;
  *disk_minor = mi;
  return 0;
}

/* The filesystem type of the mount with this device number: the last matching mountinfo line
 * (the top of any stack of mounts). */
static void fs_type_of(dev_t dev, char *out, size_t len) {
  snprintf(out, len, "unknown");
  FILE *fp = fopen("/proc/self/mountinfo", "re");
  if (!fp)
    return;
  char line[4096];
  while (fgets(line, sizeof line, fp)) {
    unsigned ma, mi;
    if (sscanf(line, "%*u %*u %u:%u", &ma, &mi) != 2 || ma != major(dev) || mi != minor(dev))
      continue;
    const char *sep = strstr(line, " - ");
    char type[64];
    if (sep && sscanf(sep + 3, "%63s", type) == 1) {
      size_t n = KVIK_MIN(strlen(type), len - 1);
      memcpy(out, type, n);
      out[n] = '\0';
    }
  }
  fclose(fp);
}

void kvik__fs_type(unsigned long dev, char *out, size_t len) { fs_type_of((dev_t)dev, out, len); }

static const char *type_name(mode_t m) {
  if (S_ISFIFO(m))
    return "a FIFO (named pipe)";
  if (S_ISSOCK(m))
    return "a socket";
  if (S_ISCHR(m))
    return "a character device";
  if (S_ISDIR(m))
    return "a directory";
  return "neither a regular file nor a block device";
}

int kvik__servable(const char *fn, const char *path, unsigned mode) {
  mode_t m = (mode_t)mode;
  if (S_ISREG(m) || S_ISBLK(m))
    return 0;
  if (S_ISDIR(m))
    return kvik__err(-EISDIR, "%s %s: %s", fn, path, kvik__errno_text(EISDIR));
  return kvik__err(KVIK_EUNSUPPORTED,
                   "%s %s: is %s; kvik serves regular files and block devices only", fn, path,
                   type_name(m));
}

/* 1 if an O_DIRECT read works on fd's file (a 4 KiB aligned read at offset 0). */
static int direct_read_works(int fd) {
  size_t page = kvik__page_size();
  void *buf = kvik__aligned_alloc(page, page);
  if (!buf)
    return 0;
  ssize_t n;
  do
    n = kvik__sys.pread(fd, buf, page, 0);
  while (n < 0 && errno == EINTR);
  kvik__free(buf);
  return n >= 0;
}

int kvik_path_info(const char *path, struct kvik_path_info *info) {
  if (!path || !info)
    return kvik__err(KVIK_EINVAL, "kvik_path_info: %s is NULL", path ? "info" : "path");
  if (info->sz < sizeof *info)
    return kvik__err(KVIK_EINVAL, "kvik_path_info: info->sz is %zu, expected at least %zu",
                     info->sz, sizeof *info);
  size_t sz = info->sz;
  memset(info, 0, sz);
  info->sz = sz;
  struct stat st;
  if (stat(path, &st) != 0)
    return kvik__err(-errno, "kvik_path_info: stat %s: %s", path, kvik__errno_text(errno));
  info->dev_major = major(st.st_dev);
  info->dev_minor = minor(st.st_dev);
  fs_type_of(st.st_dev, info->fs_type, sizeof info->fs_type);
  unsigned dma, dmi;
  kvik__blockdev(info->dev_major, info->dev_minor, info->block_device,
                 sizeof info->block_device, &dma, &dmi);
  /* A FIFO's open would wait for its other end; kvik serves none of these special files. */
  int rc = S_ISDIR(st.st_mode) ? 0 : kvik__servable("kvik_path_info", path, st.st_mode);
  if (rc)
    return rc;
  int fd;
  if (S_ISDIR(st.st_mode))
    fd = kvik__sys.open(path, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
  else /* O_NONBLOCK: should the path have become a FIFO since the stat, the open still returns */
    fd = kvik__sys.open(path, O_RDONLY | O_DIRECT | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd >= 0) {
    info->direct_io = direct_read_works(fd);
    kvik__sys.close(fd);
  }
  return 0;
}
