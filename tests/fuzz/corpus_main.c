/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays fuzz inputs without libFuzzer: every file named on the command line, and
 * every regular file in every folder named there (in name order), goes once through
 * the target's LLVMFuzzerTestOneInput(). Each input sits in a heap buffer of exactly
 * its size, as under libFuzzer, so the sanitizers see reads past its end. Fails when
 * an argument cannot be read or no input was found; a target reports a bug by
 * crashing, as it does under libFuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one file; returns 0, or -1 when it cannot be read. */
static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0) {
    fclose(f);
    return -1;
  }
  size_t size = (size_t)sb.st_size;
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf || (size && fread(buf, 1, size, f) != size)) {
    fprintf(stderr, "%s: short read\n", path);
    free(buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, size);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  long inputs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
      if (run_file(argv[i]) != 0) return 1;
      inputs++;
      continue;
    }
    struct dirent **list = NULL;
    int n = scandir(argv[i], &list, NULL, alphasort);
    if (n < 0) {
      fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    int rc = 0;
    for (int j = 0; j < n; j++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], list[j]->d_name);
      if (rc == 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if (run_file(path) != 0) rc = 1;
        inputs++;
      }
      free(list[j]);
    }
    free(list);
    if (rc) return rc;
  }
  printf("%ld inputs ran\n", inputs);
  if (inputs == 0) {
    fprintf(stderr, "no inputs found\n");
    return 1;
  }
  return 0;
}
