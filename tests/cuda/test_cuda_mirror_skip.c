/* Stands in for test_cuda_mirror where the build found no cuda.h: says so and skips (77). */
#include <stdio.h>

int main(void) {
  printf("SKIP: cuda.h was not found at configure time (set CUDA_HOME or -DKVIK_CUDA_INCLUDE_DIR"
         "=<dir with cuda.h>); kvik's mirror of the driver API is not checked in this build\n");
  return 77;
}
