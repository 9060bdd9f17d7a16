/* Built against an installed kvik (pkg-config or find_package): writes and reads back a file
 * through the public API and checks the bytes. Exit 0 on success. */
#include <kvik.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  if (strcmp(kvik_version(), KVIK_VERSION_STRING) != 0) {
    fprintf(stderr, "library %s, header %s\n", kvik_version(), KVIK_VERSION_STRING);
    return 1;
  }
  char out[10000], in[10000];
  for (size_t i = 0; i < sizeof out; i++)
    out[i] = (char)(i * 7 + 3);
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, argv[1], "w+", 0644, KVIK_COMPAT_DEFAULT);
  if (rc != 0) {
    fprintf(stderr, "open: %s: %s\n", kvik_strerror(rc), kvik_last_error());
    return 1;
  }
  kvik_future *fut = NULL;
  if (kvik_file_pwrite(f, out, sizeof out, 1, NULL, &fut) != 0 ||
      kvik_future_wait(fut) != (ssize_t)sizeof out) {
    fprintf(stderr, "pwrite: %s\n", kvik_last_error());
    return 1;
  }
  if (kvik_file_read(f, in, sizeof in, 1) != (ssize_t)sizeof in || memcmp(in, out, sizeof in)) {
    fprintf(stderr, "read back differs: %s\n", kvik_last_error());
    return 1;
  }
  kvik_file_close(f);
  unlink(argv[1]);
  printf("kvik %s: round trip ok\n", kvik_version());
  return 0;
}
