/* Page-cache facts about a file (internal side of src/pagecache.c): how many pages of a range are
 * cached, through cachestat(2) where the kernel has it and mmap + mincore(2) otherwise. For the
 * page-cache-aware I/O rule (decide per range whether to read buffered or with O_DIRECT). */
#ifndef KVIK_PAGECACHE_H
#define KVIK_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

/* How the last count on this thread was made (for tests and kvik info). */
enum kvik__pc_method { KVIK__PC_NONE = 0, KVIK__PC_CACHESTAT = 1, KVIK__PC_MINCORE = 2 };

/* Counts the pages of [off, off + len) (len 0: to the end of the file) of the regular file open
 * as fd, clipped to the file's size st_size: *cached of *total. what names the call and path
 * for messages ("kvik_page_cache_info /data/x"). Returns 0 or a negative code with the detail
 * set. *method (may be NULL) says which system call counted. */
int kvik__page_cache_count(int fd, int64_t st_size, int64_t off, int64_t len, size_t *cached,
                           size_t *total, int *method, const char *what);

#endif
