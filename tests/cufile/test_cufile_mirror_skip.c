/* Stands in for test_cufile_mirror where no cufile.h was found: says so and skips (77). */
#include <stdio.h>

int main(void) {
  printf("SKIP: cufile.h was not found at configure time (it comes with the CUDA toolkit's GDS "
         "package, e.g. /usr/local/cuda/include/cufile.h; set CUDA_HOME or "
         "-DKVIK_CUFILE_INCLUDE_DIR=<dir>); kvik's mirror of cufile.h is not checked in this "
         "build\n");
  return 77;
}
