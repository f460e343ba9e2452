/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers. See testutil.h. */
#include "testutil.h"

#include "reel/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every test binary routes jansson through reel_malloc, so injected allocation failures reach JSON parsing. */
__attribute__((constructor)) static void tu_init(void) { reel_json_use_reel_alloc(); }

const char *tu_source_dir(void) {
  const char *s = getenv("REEL_SOURCE_DIR");
  return s ? s : ".";
}

const char *tu_binary_dir(void) {
  const char *s = getenv("REEL_BINARY_DIR");
  return s ? s : ".";
}

void tu_mkdtemp(char *buf, size_t size) {
  const char *tmp = getenv("TMPDIR");
  snprintf(buf, size, "%s/reel-test-XXXXXX", tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(buf));
}

void tu_rmtree(const char *path) {
  if (!path || !path[0] || strcmp(path, "/") == 0) return;
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  int rc = system(cmd);
  (void)rc;
}

void tu_write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (len) assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

char *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

int tu_run(const char *cmd, char **out) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += r;
    if (n + 1 >= cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  buf[n] = '\0';
  int st = pclose(p);
  if (out)
    *out = buf;
  else
    free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_have_program(const char *name) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", name);
  return system(cmd) == 0;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n, size_t *where) {
  double m = 0;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (isnan(d)) d = INFINITY;
    if (d > m) {
      m = d;
      w = i;
    }
  }
  if (where) *where = w;
  return m;
}
