/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's model cache (pipeline/src/model_cache.c): models load once and
 * are found again; under a memory budget that holds one tiny model, loading a
 * second drops the least recently used; a job that cannot fit even alone is
 * ENOMEM and leaves its model cached; a model whose weights exceed the budget is
 * refused before loading; a missing folder is the loader's error; reset drops
 * everything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_cache.h"
#include "reel/json.h"
#include "testutil.h"

typedef struct fixture {
  char tmp[512];
  char a[1024], b[1024];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->tmp, sizeof f->tmp);
  snprintf(f->a, sizeof f->a, "%s/tests/fixtures/tiny-wan", tu_source_dir());
  snprintf(f->b, sizeof f->b, "%s/tiny-b", f->tmp);
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", f->a, f->b);
  assert_int_equal(tu_run(cmd, NULL), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->tmp);
  free(f);
  return 0;
}

static void test_lru_under_budget(void **state) {
  fixture *f = *state;
  uint64_t w = reel_model_folder_weight_bytes(f->a);
  assert_true(w > 100000);
  assert_int_equal(reel_model_folder_weight_bytes(f->b), w);
  /* Room for one model's weights and a little scratch, not two. */
  reel__model_cache *c = reel__model_cache_new(REEL_BACKEND_CPU, 1, w + w / 2, NULL);
  assert_non_null(c);
  reel_error err = {0};
  reel_model *ma = NULL, *mb = NULL, *again = NULL;
  int loaded = 0;
  assert_int_equal(reel__model_cache_get(c, f->a, &ma, &loaded, &err), REEL_OK);
  assert_true(loaded);
  assert_int_equal(reel__model_cache_get(c, f->a, &again, &loaded, &err), REEL_OK);
  assert_false(loaded);
  assert_ptr_equal(again, ma);
  reel__model_cache_stats st;
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.models, 1);
  assert_int_equal(st.loaded, 1);
  /* A job's scratch that fits next to the weights; one that does not is ENOMEM, the model stays. */
  assert_int_equal(reel__model_cache_fit(c, ma, w / 4, 0, "small job", &err), REEL_OK);
  assert_int_equal(reel__model_cache_fit(c, ma, 10 * w, 0, "big job", &err), REEL_ENOMEM);
  assert_string_equal(err.field, "job");
  assert_non_null(strstr(err.msg, "big job"));
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.models, 1);
  /* A second model: the first is dropped to make room. */
  assert_int_equal(reel__model_cache_get(c, f->b, &mb, &loaded, &err), REEL_OK);
  assert_true(loaded);
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.models, 1);
  assert_int_equal(st.evicted, 1);
  assert_int_equal(st.bytes, w);
  /* Back to the first: loaded again, the second dropped. */
  assert_int_equal(reel__model_cache_get(c, f->a, &ma, &loaded, &err), REEL_OK);
  assert_true(loaded);
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.loaded, 3);
  assert_int_equal(st.evicted, 2);
  reel__model_cache_reset(c);
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.models, 0);
  reel__model_cache_destroy(&c);
  assert_null(c);
}

static void test_unlimited_keeps_both_lru_order(void **state) {
  fixture *f = *state;
  reel__model_cache *c = reel__model_cache_new(REEL_BACKEND_CPU, 1, 0, NULL);
  reel_error err = {0};
  reel_model *m = NULL;
  int loaded;
  assert_int_equal(reel__model_cache_get(c, f->a, &m, &loaded, &err), REEL_OK);
  assert_int_equal(reel__model_cache_get(c, f->b, &m, &loaded, &err), REEL_OK);
  reel__model_cache_stats st;
  reel__model_cache_get_stats(c, &st);
  assert_int_equal(st.models, 2);
  assert_int_equal(st.evicted, 0);
  reel__model_cache_destroy(&c);
}

static void test_refusals(void **state) {
  fixture *f = *state;
  uint64_t w = reel_model_folder_weight_bytes(f->a);
  reel__model_cache *c = reel__model_cache_new(REEL_BACKEND_CPU, 1, w / 2, NULL);
  reel_error err = {0};
  reel_model *m = NULL;
  int loaded = 1;
  /* Weights over the budget: refused before loading. */
  assert_int_equal(reel__model_cache_get(c, f->a, &m, &loaded, &err), REEL_ENOMEM);
  assert_string_equal(err.field, "job.model");
  assert_null(m);
  assert_false(loaded);
  reel__model_cache_destroy(&c);
  /* A folder that is not there: the loader's error, prefixed "model:". */
  c = reel__model_cache_new(REEL_BACKEND_CPU, 1, 0, NULL);
  char missing[700];
  snprintf(missing, sizeof missing, "%s/nothing-here", f->tmp);
  assert_int_not_equal(reel__model_cache_get(c, missing, &m, &loaded, &err), REEL_OK);
  assert_true(!strncmp(err.field, "model", 5));
  reel__model_cache_get_stats(c, &(reel__model_cache_stats){0});
  reel__model_cache_destroy(&c);
}

int main(void) {
  reel_json_use_reel_alloc();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lru_under_budget),
      cmocka_unit_test(test_unlimited_keeps_both_lru_order),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
