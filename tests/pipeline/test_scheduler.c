/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduler invariants: schedules, argument checks, history handling, x0 estimate. */
#include <math.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/scheduler.h"
#include "testutil.h"

static void test_schedules_monotonic(void **state) {
  (void)state;
  for (int kind = 0; kind < 3; kind++) {
    for (int steps = 1; steps <= 60; steps += 7) {
      reel_sched_config c = reel_sched_config_default((reel_sched_kind)kind);
      c.shift = 3.0;
      reel_scheduler *s = NULL;
      assert_int_equal(reel_scheduler_new(&c, steps, 8, NULL, &s, NULL), REEL_OK);
      assert_int_equal(reel_scheduler_steps(s), steps);
      assert_true(reel_scheduler_sigma(s, steps) == 0.0);
      for (int i = 0; i < steps; i++) {
        assert_true(reel_scheduler_sigma(s, i) > reel_scheduler_sigma(s, i + 1));
        assert_true(reel_scheduler_sigma(s, i) <= 1.0);
        assert_true(reel_scheduler_timestep(s, i) >= 0 && reel_scheduler_timestep(s, i) <= 1000);
      }
      assert_true(isnan(reel_scheduler_timestep(s, steps)));
      reel_scheduler_destroy(&s);
      assert_null(s);
    }
  }
}

static void test_known_values(void **state) {
  (void)state;
  /* UniPC, 4 steps, shift 1: linspace(1, 0.001, 5)[:-1] = 1, 0.75025, 0.5005, 0.25075; first nudged to 1-1e-6. */
  reel_sched_config c = reel_sched_config_default(REEL_SCHED_UNIPC);
  c.shift = 1.0;
  reel_scheduler *s = NULL;
  assert_int_equal(reel_scheduler_new(&c, 4, 4, NULL, &s, NULL), REEL_OK);
  assert_true(reel_scheduler_timestep(s, 0) == 999.0); /* int64(0.999999 * 1000) */
  assert_true(reel_scheduler_timestep(s, 1) == 750.0);
  assert_true(reel_scheduler_timestep(s, 3) == 250.0);
  assert_true(fabs(reel_scheduler_sigma(s, 1) - 0.75025) < 1e-7);
  reel_scheduler_destroy(&s);
  /* DPM++: the first sigma is shift(1 - 1/1000), not 1. */
  c = reel_sched_config_default(REEL_SCHED_DPMPP_2M);
  c.shift = 1.0;
  assert_int_equal(reel_scheduler_new(&c, 4, 4, NULL, &s, NULL), REEL_OK);
  assert_true(fabs(reel_scheduler_sigma(s, 0) - 0.999) < 1e-7);
  reel_scheduler_destroy(&s);
}

static void test_euler_exact_flow(void **state) {
  (void)state;
  /* With a constant velocity v = noise - x0, Euler lands exactly on x0 (up to rounding). */
  reel_sched_config c = reel_sched_config_default(REEL_SCHED_EULER);
  float x0[6] = {0.5f, -1, 2, 0, 0.25f, -0.75f}, noise[6] = {1, 0.5f, -0.5f, 2, -1, 0.1f};
  float v[6], x[6];
  for (int i = 0; i < 6; i++) v[i] = noise[i] - x0[i];
  reel_scheduler *s = NULL;
  assert_int_equal(reel_scheduler_new(&c, 10, 6, NULL, &s, NULL), REEL_OK);
  double s0 = reel_scheduler_sigma(s, 0);
  for (int i = 0; i < 6; i++) x[i] = (float)((1 - s0) * x0[i] + s0 * noise[i]);
  for (int k = 0; k < 10; k++) assert_int_equal(reel_scheduler_step(s, v, x, NULL), REEL_OK);
  for (int i = 0; i < 6; i++) assert_true(fabs(x[i] - x0[i]) < 1e-5);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_scheduler_step(s, v, x, &err), REEL_ESTATE);
  reel_scheduler_destroy(&s);
}

static void test_multistep_exact_flow(void **state) {
  (void)state;
  /* The exact flow of a fixed x0 is a straight line; UniPC and DPM++ recover x0 at sigma 0. */
  for (int kind = 1; kind <= 2; kind++) {
    for (int order = 1; order <= (kind == 1 ? 3 : 2); order++) {
      reel_sched_config c = reel_sched_config_default((reel_sched_kind)kind);
      c.solver_order = order;
      float x0[4] = {0.3f, -0.2f, 1.5f, -2}, noise[4] = {-1, 0.7f, 0.2f, 1.1f}, v[4], x[4];
      for (int i = 0; i < 4; i++) v[i] = noise[i] - x0[i];
      reel_scheduler *s = NULL;
      assert_int_equal(reel_scheduler_new(&c, 12, 4, NULL, &s, NULL), REEL_OK);
      double s0 = reel_scheduler_sigma(s, 0);
      for (int i = 0; i < 4; i++) x[i] = (float)((1 - s0) * x0[i] + s0 * noise[i]);
      float x0est[4];
      assert_int_equal(reel_scheduler_x0(s, v, x, x0est, NULL), REEL_OK);
      for (int i = 0; i < 4; i++) assert_true(fabs(x0est[i] - x0[i]) < 1e-5);
      for (int k = 0; k < 12; k++) assert_int_equal(reel_scheduler_step(s, v, x, NULL), REEL_OK);
      for (int i = 0; i < 4; i++) assert_true(fabs(x[i] - x0[i]) < 1e-4);
      reel_scheduler_destroy(&s);
    }
  }
}

static void test_bad_config(void **state) {
  (void)state;
  reel_sched_config c = reel_sched_config_default(REEL_SCHED_UNIPC);
  reel_scheduler *s = NULL;
  reel_error err;
  c.shift = 0;
  reel_error_clear(&err);
  assert_int_equal(reel_scheduler_new(&c, 4, 4, NULL, &s, &err), REEL_ERANGE);
  assert_string_equal(err.field, "scheduler.shift");
  c = reel_sched_config_default(REEL_SCHED_DPMPP_2M);
  c.solver_order = 3;
  reel_error_clear(&err);
  assert_int_equal(reel_scheduler_new(&c, 4, 4, NULL, &s, &err), REEL_ERANGE);
  assert_string_equal(err.field, "scheduler.solver_order");
  c = reel_sched_config_default(REEL_SCHED_EULER);
  reel_error_clear(&err);
  assert_int_equal(reel_scheduler_new(&c, 0, 4, NULL, &s, &err), REEL_ERANGE);
  assert_string_equal(err.field, "steps");
  assert_null(s);
  /* Allocation failure at every point cleans up. */
  c = reel_sched_config_default(REEL_SCHED_UNIPC);
  for (long i = 0; i < 8; i++) {
    reel_alloc_fail_after(i, 0);
    reel_status st = reel_scheduler_new(&c, 4, 4, NULL, &s, NULL);
    reel_alloc_fail_after(-1, 0);
    assert_true(st == REEL_OK || st == REEL_ENOMEM);
    reel_scheduler_destroy(&s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedules_monotonic),
      cmocka_unit_test(test_known_values),
      cmocka_unit_test(test_euler_exact_flow),
      cmocka_unit_test(test_multistep_exact_flow),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
