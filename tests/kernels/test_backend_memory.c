/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_backend_memory on the CPU backend: live bytes follow buffer allocation and
 * release (wrapped host memory does not count), op scratch counts, and the peak
 * keeps the high-water mark.
 */
#include <stdlib.h>

#include "reel/backend.h"
#include "testutil.h"

static void test_memory(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(1, &err);
  size_t live = 1, peak = 1;
  reel_backend_memory(b, &live, &peak);
  assert_int_equal(live, 0);
  assert_int_equal(peak, 0);
  reel_buffer *a = NULL, *c = NULL, *w = NULL;
  assert_int_equal(reel_buffer_new(b, 1000, &a, &err), REEL_OK);
  assert_int_equal(reel_buffer_new(b, 3000, &c, &err), REEL_OK);
  static char host[5000];
  assert_int_equal(reel_buffer_wrap_host(b, host, sizeof host, 1, &w, &err), REEL_OK);
  reel_backend_memory(b, &live, &peak);
  assert_int_equal(live, 4000);
  assert_int_equal(peak, 4000);
  reel_buffer_destroy(&c);
  reel_buffer_destroy(&w);
  reel_backend_memory(b, &live, NULL);
  assert_int_equal(live, 1000);
  reel_backend_memory(b, NULL, &peak);
  assert_int_equal(peak, 4000);
  /* An op that takes scratch: the scratch counts as held memory. */
  int64_t s[2] = {64, 256};
  reel_tensor x;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s, &x, &err), REEL_OK);
  assert_int_equal(reel_op_noise(b, 1, 0, &x, &err), REEL_OK);
  int64_t d[4] = {1, 64, 2, 128};
  reel_tensor q;
  assert_int_equal(reel_tensor_reshape(&x, 4, d, &q, &err), REEL_OK);
  reel_tensor o;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, d, &o, &err), REEL_OK);
  assert_int_equal(reel_op_attention(b, &q, &q, &q, 0.1f, &o, &err), REEL_OK);
  reel_backend_memory(b, &live, &peak);
  assert_int_equal(live, 1000 + 2 * 64 * 256 * 4 + reel_backend_scratch_bytes(b));
  assert_true(reel_backend_scratch_bytes(b) > 0);
  assert_true(peak >= live);
  reel_tensor_free(&x);
  reel_tensor_free(&o);
  reel_buffer_destroy(&a);
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_memory)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
