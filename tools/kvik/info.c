/* kvik info: the library's version, its configuration with the source of each value, the
 * default pool, and for a path: filesystem, block device, O_DIRECT support and the I/O path
 * kvik takes for a file there. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void info_usage(FILE *out) {
  fputs("usage: kvik info [PATH]\n"
        "\n"
        "Prints kvik's version, every setting with its value and where the value came from\n"
        "(default, env, set), the default thread pool's size, and the CUDA driver and each GPU\n"
        "(name, memory, PCI bus, memory kinds) when CUDA is there. With PATH (a file or a\n"
        "directory): the filesystem, block device and O_DIRECT support there, how much of a\n"
        "file is in the page cache, and the I/O path kvik takes for a file at PATH (for a\n"
        "directory, a temporary file created in it).\n"
        "\n"
        "Exit status: 0 on success, 1 if the configuration is invalid or PATH cannot be\n"
        "examined, 2 on a usage error.\n",
        out);
}

static const char *source_name(int src) {
  switch (src) {
  case KVIK_CFG_SRC_DEFAULT: return "default";
  case KVIK_CFG_SRC_ENV: return "env";
  case KVIK_CFG_SRC_SET: return "set";
  default: return "?";
  }
}

static const char *path_name(int path) {
  switch (path) {
  case KVIK_PATH_POSIX: return "posix";
  case KVIK_PATH_GDS: return "gds";
  case KVIK_PATH_CUFILE_COMPAT: return "cufile-compat";
  default: return "unknown";
  }
}

static const char *cap(int v) { return v > 0 ? "yes" : v == 0 ? "no" : "unknown"; }

/* The CUDA driver and each GPU, as kvik sees them. Without CUDA, says why; never fails. */
static void print_cuda(void) {
  if (!kvik_cuda_available()) {
    printf("\nCUDA: not available (%s); every buffer is host memory\n", kvik_last_error());
    return;
  }
  int version = 0, count = kvik_gpu_count();
  kvik_cuda_driver_version(&version);
  printf("\nCUDA: driver %d.%d, %d GPU%s\n", version / 1000, version % 1000 / 10, count,
         count == 1 ? "" : "s");
  for (int i = 0; i < count; i++) {
    struct kvik_gpu_info g = {.sz = sizeof g};
    int rc = kvik_gpu_info(i, &g);
    if (rc < 0) {
      printf("  GPU %d: %s\n", i, kvik_last_error());
      continue;
    }
    char mem[32];
    printf("  GPU %d: %s\n", i, g.name);
    printf("    %-22s %s\n", "memory", cli_fmt_size(g.total_mem, mem, sizeof mem));
    printf("    %-22s %s\n", "PCI bus", g.pci_bus_id);
    printf("    %-22s %d.%d, %d SMs, %d copy engines%s\n", "compute capability", g.cc_major,
           g.cc_minor, g.multiprocessors, g.async_engines, g.integrated ? ", integrated" : "");
    printf("    %-22s device yes; managed %s (concurrent access %s); stream-ordered pools %s\n",
           "memory kinds", cap(g.managed_memory), cap(g.concurrent_managed_access),
           cap(g.memory_pools));
    printf("    %-22s host register %s (read-only %s); pageable access %s (host page tables %s)\n",
           "host memory", cap(g.host_register), cap(g.read_only_host_register),
           cap(g.pageable_memory_access), cap(g.pageable_memory_access_uses_host_page_tables));
    printf("    %-22s unified addressing %s; GPUDirect RDMA %s\n", "other",
           cap(g.unified_addressing), cap(g.gpu_direct_rdma));
  }
}

static int print_config(void) {
  int rc = kvik_config_init();
  if (rc < 0) {
    cli_kvik_err(rc, "invalid configuration");
    return CLI_FAIL;
  }
  printf("configuration:\n");
  printf("  %-38s %-24s %s\n", "variable", "value", "source");
  for (int key = 0; key < KVIK_CFG_COUNT; key++) {
    char value[256];
    const char *name = kvik_config_name((enum kvik_cfg)key);
    rc = kvik_config_get_str((enum kvik_cfg)key, value, sizeof value);
    if (rc < 0) {
      cli_kvik_err(rc, "cannot read setting %s", name ? name : "?");
      return CLI_FAIL;
    }
    /* Sizes come as plain bytes; add the binary size people think in ("16 MiB"). */
    uint64_t bytes;
    if (kvik_config_type((enum kvik_cfg)key) == KVIK_CFG_TYPE_SIZE &&
        cli_parse_u64(value, 0, UINT64_MAX, &bytes) == 0 && bytes >= 1024) {
      char human[32];
      size_t len = strlen(value);
      snprintf(value + len, sizeof value - len, " (%s)", cli_fmt_size(bytes, human, sizeof human));
    }
    printf("  %-38s %-24s %s\n", name ? name : "?", value[0] ? value : "-",
           source_name(kvik_config_source((enum kvik_cfg)key)));
  }
  return CLI_OK;
}

/* The file kvik_file_open would see for PATH: PATH itself if it is not a directory, else a
 * fresh temporary file in it (created here, removed by the caller). */
static int probe_file(const char *path, char *probe, size_t len, bool *temporary) {
  struct stat st;

  *temporary = false;
  if (stat(path, &st) != 0) {
    cli_err("%s: %s", path, strerror(errno));
    return CLI_FAIL;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(probe, len, "%s", path);
    return CLI_OK;
  }
  if ((size_t)snprintf(probe, len, "%s/.kvik-info-XXXXXX", path) >= len) {
    cli_err("%s: path too long", path);
    return CLI_FAIL;
  }
  int fd = mkstemp(probe);
  if (fd < 0) {
    cli_err("cannot create a file in %s to see which I/O path kvik takes there: %s", path,
            strerror(errno));
    return CLI_FAIL;
  }
  close(fd);
  *temporary = true;
  return CLI_OK;
}

/* How much of a regular file is in the page cache (nothing for a directory or a device). */
static int print_page_cache(const char *path) {
  struct stat st;
  size_t cached = 0, total = 0;
  char a[32], b[32];

  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return CLI_OK;
  int rc = kvik_page_cache_info(path, 0, 0, &cached, &total);
  if (rc < 0) {
    cli_kvik_err(rc, "page cache of %s", path);
    return CLI_FAIL;
  }
  long page = sysconf(_SC_PAGESIZE);
  uint64_t cbytes = (uint64_t)cached * (uint64_t)(page > 0 ? page : 4096);
  printf("  %-16s %zu of %zu pages cached (%.1f%%; %s of %s)\n", "page cache", cached, total,
         total ? 100.0 * (double)cached / (double)total : 100.0,
         cli_fmt_size(cbytes < (uint64_t)st.st_size ? cbytes : (uint64_t)st.st_size, a, sizeof a),
         cli_fmt_size((uint64_t)st.st_size, b, sizeof b));
  return CLI_OK;
}

static int print_path(const char *path) {
  struct kvik_path_info pi = {.sz = sizeof pi};
  struct kvik_file_info fi = {.sz = sizeof fi};
  char probe[4096];
  bool temporary = false;
  kvik_file *f = NULL;
  int rc, ret = CLI_FAIL;

  rc = kvik_path_info(path, &pi);
  if (rc < 0) {
    cli_kvik_err(rc, "%s", path);
    return CLI_FAIL;
  }
  printf("\npath: %s\n", path);
  printf("  %-16s %s\n", "filesystem", pi.fs_type[0] ? pi.fs_type : "unknown");
  if (pi.block_device[0])
    printf("  %-16s %s (%u:%u)\n", "block device", pi.block_device, pi.dev_major, pi.dev_minor);
  else
    printf("  %-16s none (%u:%u, a virtual filesystem)\n", "block device", pi.dev_major,
           pi.dev_minor);
  printf("  %-16s %s\n", "O_DIRECT", pi.direct_io ? "supported" : "refused (buffered I/O only)");
  if (print_page_cache(path) != CLI_OK)
    return CLI_FAIL;

  if (probe_file(path, probe, sizeof probe, &temporary) != CLI_OK)
    goto out;
  /* An existing file is only read; the temporary one is ours, so both directions show. */
  rc = kvik_file_open(&f, probe, temporary ? "r+" : "r", 0, KVIK_COMPAT_DEFAULT);
  if (rc < 0) {
    cli_kvik_err(rc, "cannot open %s", probe);
    goto out;
  }
  rc = kvik_file_info(f, &fi);
  if (rc < 0) {
    cli_kvik_err(rc, "%s", probe);
    goto out;
  }
  printf("  %-16s %s%s\n", "file", probe, temporary ? " (temporary, removed)" : "");
  printf("  %-16s %s (%s)\n", "I/O path", path_name(fi.path), fi.reason);
  printf("  %-16s %s\n", "compat mode", cli_compat_name(fi.compat));
  printf("  %-16s %s\n", "direct reads", fi.direct_read ? "on" : "off");
  printf("  %-16s %s\n", "direct writes",
         !fi.writable      ? "- (opened read-only)"
         : fi.direct_write ? "on"
                           : "off");
  ret = CLI_OK;
out:
  kvik_file_close(f);
  if (temporary)
    unlink(probe);
  return ret;
}

int cmd_info(int argc, char **argv) {
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int c, rc;

  optind = 0; /* glibc: full reset, so each command parses its own argv from the start */
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 'h': info_usage(stdout); return CLI_OK;
    default: info_usage(stderr); return CLI_USAGE;
    }
  }
  if (argc - optind > 1) {
    info_usage(stderr);
    return CLI_USAGE;
  }

  printf("kvik %s (libkvik %s)\n\n", KVIK_VERSION_STRING, kvik_version());
  if (print_config() != CLI_OK)
    return CLI_FAIL;

  rc = kvik_pool_nthreads(NULL);
  if (rc < 0) {
    cli_kvik_err(rc, "default thread pool");
    return CLI_FAIL;
  }
  printf("\nthread pool: %d threads (the default pool, sized by KVIKIO_NTHREADS)\n", rc);
  print_cuda();

  if (optind < argc)
    return print_path(argv[optind]);
  return CLI_OK;
}
