/* Filesystem and block-device facts for a path or device number. */
#ifndef KVIK_FSINFO_H
#define KVIK_FSINFO_H

#include <stddef.h>

/* Resolves device major:minor (a partition or a disk) to its whole disk: name (e.g. "nvme0n1")
 * and the disk's major:minor. Returns 0, or -1 for a virtual filesystem or when sysfs lacks
 * the device (then name is "" and the numbers are 0). */
int kvik__blockdev(unsigned major, unsigned minor, char *name, size_t len, unsigned *disk_major,
                   unsigned *disk_minor);

/* The filesystem type ("ext4", "tmpfs", ...) of the mount with device number dev, from
 * /proc/self/mountinfo; "unknown" if not found. out is always NUL-terminated. */
void kvik__fs_type(unsigned long dev, char *out, size_t len);

/* Whether kvik serves a file of type mode (st_mode): regular files and block devices. Returns 0,
 * -EISDIR for a directory, or KVIK_EUNSUPPORTED for a FIFO, socket or character device, with
 * the detail naming fn, path and the type. FIFOs and sockets have no offsets to read at, and
 * their open or read can block forever; character devices have no size and may block too. */
int kvik__servable(const char *fn, const char *path, unsigned mode);

#endif
