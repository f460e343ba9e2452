/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Philox noise against tests/fixtures/noise/philox.safetensors: Random123's
 * known-answer vectors, raw blocks of a 64-bit seed (including a counter above
 * 2^32), every Gaussian noise case (partial last block included) within one
 * float32 ulp, and a batch whose samples equal their single-seed tensors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/noise.h"
#include "reel/philox.h"
#include "testutil.h"
#include "wan_testutil.h"

/* Raw unsigned integers of a U32/U64 tensor, exactly. */
static uint64_t *read_uint(const reel_safetensors *st, const char *name, size_t *n) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (!t) fail_msg("fixture tensor %s missing", name);
  assert_true(t->dtype == REEL_ST_U32 || t->dtype == REEL_ST_U64);
  uint64_t *out = calloc((size_t)t->numel + 1, sizeof *out);
  for (uint64_t i = 0; i < t->numel; i++) {
    if (t->dtype == REEL_ST_U64) {
      memcpy(&out[i], (const char *)t->data + 8 * i, 8);
    } else {
      uint32_t v;
      memcpy(&v, (const char *)t->data + 4 * i, 4);
      out[i] = v;
    }
  }
  if (n) *n = (size_t)t->numel;
  return out;
}

static void test_known_answers(void **state) {
  (void)state;
  reel_safetensors *st = wt_open("noise/philox.safetensors");
  size_t n;
  uint64_t *ctr = read_uint(st, "kat.counter", &n), *key = read_uint(st, "kat.key", NULL),
           *want = read_uint(st, "kat.output", NULL);
  assert_int_equal(n, 12);
  for (int v = 0; v < 3; v++) {
    uint32_t c[4], k[2], o[4];
    for (int i = 0; i < 4; i++) c[i] = (uint32_t)ctr[v * 4 + i];
    for (int i = 0; i < 2; i++) k[i] = (uint32_t)key[v * 2 + i];
    reel_philox4x32_10(c, k, o);
    for (int i = 0; i < 4; i++) assert_int_equal(o[i], want[v * 4 + i]);
  }
  uint64_t *seed = read_uint(st, "blocks.seed", NULL), *idx = read_uint(st, "blocks.index", &n),
           *out = read_uint(st, "blocks.output", NULL);
  for (size_t b = 0; b < n; b++) {
    uint32_t c[4] = {(uint32_t)idx[b], (uint32_t)(idx[b] >> 32), 0, 0};
    uint32_t k[2] = {(uint32_t)seed[0], (uint32_t)(seed[0] >> 32)};
    uint32_t o[4];
    reel_philox4x32_10(c, k, o);
    for (int i = 0; i < 4; i++) assert_int_equal(o[i], out[b * 4 + i]);
  }
  free(ctr);
  free(key);
  free(want);
  free(seed);
  free(idx);
  free(out);
  reel_safetensors_close(&st);
}

/* Within one float32 ulp (or 1e-6 absolute, for values near zero). */
static void expect_close(const float *want, const float *got, size_t n, const char *what) {
  size_t exact = 0;
  for (size_t i = 0; i < n; i++) {
    float tol = fmaxf(1e-6f, nextafterf(fabsf(want[i]), INFINITY) - fabsf(want[i]));
    if (fabsf(want[i] - got[i]) > tol) fail_msg("%s[%zu]: %.9g, reference %.9g", what, i, got[i], want[i]);
    exact += want[i] == got[i];
  }
  printf("%s: %zu elements, %zu bit-exact\n", what, n, exact);
}

static void test_noise_cases(void **state) {
  (void)state;
  reel_safetensors *st = wt_open("noise/philox.safetensors");
  static const char *const cases[] = {"seed0_16x3x6x10", "seed42_16x5x4x6", "seed_big_4x1x3x5", "seed7_3x1x1x7"};
  for (size_t c = 0; c < 4; c++) {
    char name[64];
    snprintf(name, sizeof name, "%s.seed", cases[c]);
    uint64_t *seed = read_uint(st, name, NULL);
    snprintf(name, sizeof name, "%s.noise", cases[c]);
    size_t n;
    float *want = wt_read_f32(st, name, &n, NULL, NULL);
    float *got = malloc(n * sizeof *got);
    reel_noise_fill(seed[0], 0, got, n);
    expect_close(want, got, n, cases[c]);
    /* The same elements from an offset that is not a block boundary. */
    if (n > 7) {
      reel_noise_fill(seed[0], 5, got, n - 5);
      expect_close(want + 5, got, n - 5, "offset 5");
    }
    free(seed);
    free(want);
    free(got);
  }
  size_t ns, n;
  uint64_t *seeds = read_uint(st, "batch.seeds", &ns);
  float *want = wt_read_f32(st, "batch.noise", &n, NULL, NULL);
  float *got = malloc(n * sizeof *got);
  for (size_t s = 0; s < ns; s++) reel_noise_fill(seeds[s], 0, got + s * (n / ns), n / ns);
  expect_close(want, got, n, "batch");
  free(seeds);
  free(want);
  free(got);
  reel_safetensors_close(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answers),
      cmocka_unit_test(test_noise_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
