/* SPDX-License-Identifier: Apache-2.0 */
/* The allocation wrappers and the failure injector. */
#include <string.h>

#include "reel/alloc.h"
#include "testutil.h"

static void test_inject_once(void **state) {
  (void)state;
  reel_alloc_fail_after(1, 0);
  void *a = reel_malloc(16);
  void *b = reel_malloc(16); /* fails */
  void *c = reel_malloc(16); /* injector disarmed again */
  assert_non_null(a);
  assert_null(b);
  assert_non_null(c);
  assert_int_equal(reel_alloc_failures(), 1);
  reel_free(a);
  reel_free(c);
  reel_free(NULL);
}

static void test_inject_persist(void **state) {
  (void)state;
  reel_alloc_fail_after(0, 1);
  assert_null(reel_calloc(2, 8));
  assert_null(reel_strdup("x"));
  assert_null(reel_aligned_alloc(128));
  reel_alloc_fail_after(-1, 0);
  char *s = reel_strdup("hello");
  assert_string_equal(s, "hello");
  reel_free(s);
}

static void test_overflow_and_align(void **state) {
  (void)state;
  assert_null(reel_calloc((size_t)-1 / 2, 4));
  void *p = reel_aligned_alloc(100);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 64, 0);
  reel_aligned_free(p);
  char *s = reel_strndup("abcdef", 3);
  assert_string_equal(s, "abc");
  reel_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inject_once),
      cmocka_unit_test(test_inject_persist),
      cmocka_unit_test(test_overflow_and_align),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
