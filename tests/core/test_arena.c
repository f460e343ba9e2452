/* SPDX-License-Identifier: Apache-2.0 */
/* The arena allocator: alignment, growth, marks, reset, budget and allocation failure. */
#include <string.h>

#include "reel/alloc.h"
#include "reel/arena.h"
#include "testutil.h"

static void test_alloc_align_grow(void **state) {
  (void)state;
  reel_arena *a = reel_arena_new(256, 0);
  assert_non_null(a);
  unsigned char *p[64];
  for (int i = 0; i < 64; i++) {
    p[i] = reel_arena_alloc(a, 40, 0);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % 64, 0);
    memset(p[i], i, 40);
  }
  for (int i = 0; i < 64; i++)
    for (int j = 0; j < 40; j++) assert_int_equal(p[i][j], i);
  void *big = reel_arena_alloc(a, 10000, 16); /* larger than a chunk */
  assert_non_null(big);
  assert_int_equal((uintptr_t)big % 16, 0);
  assert_true(reel_arena_used(a) >= 64 * 40 + 10000);
  size_t peak = reel_arena_peak(a);
  reel_arena_reset(a);
  assert_int_equal(reel_arena_used(a), 0);
  assert_int_equal(reel_arena_peak(a), peak);
  assert_null(reel_arena_alloc(a, 8, 3)); /* alignment must be a power of two */
  reel_arena_destroy(&a);
  assert_null(a);
  reel_arena_destroy(&a);
  reel_arena_destroy(NULL);
}

static void test_marks(void **state) {
  (void)state;
  reel_arena *a = reel_arena_new(128, 0);
  char *s = reel_arena_strdup(a, "keep");
  reel_arena_mark m = reel_arena_get_mark(a);
  size_t used = reel_arena_used(a);
  for (int i = 0; i < 20; i++) assert_non_null(reel_arena_alloc(a, 100, 0));
  reel_arena_release(a, m);
  assert_int_equal(reel_arena_used(a), used);
  assert_string_equal(s, "keep");
  int *z = reel_arena_calloc(a, 10, sizeof(int));
  for (int i = 0; i < 10; i++) assert_int_equal(z[i], 0);
  reel_arena_destroy(&a);
}

static void test_budget(void **state) {
  (void)state;
  reel_arena *a = reel_arena_new(1024, 4096);
  assert_non_null(reel_arena_alloc(a, 1000, 0));
  assert_non_null(reel_arena_alloc(a, 1000, 0));
  assert_null(reel_arena_alloc(a, 5000, 0)); /* over budget: fails, does not grow */
  assert_true(reel_arena_reserved(a) <= 4096);
  reel_arena_destroy(&a);
}

static void test_alloc_failure(void **state) {
  (void)state;
  reel_arena *a = reel_arena_new(64, 0);
  assert_non_null(a);
  reel_alloc_fail_after(0, 0);
  assert_null(reel_arena_alloc(a, 32, 0));
  assert_non_null(reel_arena_alloc(a, 32, 0));
  reel_arena_destroy(&a);
  reel_alloc_fail_after(0, 0);
  assert_null(reel_arena_new(0, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_align_grow),
      cmocka_unit_test(test_marks),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_alloc_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
