/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The samplers against diffusers' own scheduler classes (tests/fixtures/schedulers):
 * timesteps and sigmas of FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
 * (Wan2.1's config) and DPMSolverMultistepScheduler (DPM-Solver++ 2M, flow sigmas)
 * for 1, 2, 4, 10 and 50 steps at shifts 1, 3, 5 and 12, within 1e-6; and whole
 * step runs (6 of 6 steps at shift 3, 5 of 50 at shift 5, 4 of 4 at shift 1) fed
 * the recorded model outputs, each step's sample within 2e-6 of diffusers'. Every
 * run goes through the host ops and through reel_op_lincomb on backend tensors,
 * which must agree bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/denoise.h"
#include "reel/scheduler.h"
#include "testutil.h"
#include "wan_testutil.h"

typedef struct sched_file {
  const char *path;
  reel_sched_kind kind;
} sched_file;

static const sched_file files[] = {
    {"schedulers/flow_euler.safetensors", REEL_SCHED_EULER},
    {"schedulers/unipc.safetensors", REEL_SCHED_UNIPC},
    {"schedulers/dpmpp2m.safetensors", REEL_SCHED_DPMPP_2M},
};

static reel_sched_config config(reel_sched_kind kind, double shift) {
  reel_sched_config c = reel_sched_config_default(kind);
  c.shift = shift;
  return c;
}

static void test_schedules(void **state) {
  (void)state;
  static const int counts[] = {1, 2, 4, 10, 50};
  static const int shifts[] = {1, 3, 5, 12};
  for (size_t f = 0; f < 3; f++) {
    reel_safetensors *st = wt_open(files[f].path);
    double worst_t = 0, worst_s = 0;
    for (size_t i = 0; i < 5; i++)
      for (size_t j = 0; j < 4; j++) {
        char name[64];
        size_t nt, ns;
        snprintf(name, sizeof name, "n%d_shift%d.timesteps", counts[i], shifts[j]);
        double *ts = wt_read_f64(st, name, &nt);
        snprintf(name, sizeof name, "n%d_shift%d.sigmas", counts[i], shifts[j]);
        double *sg = wt_read_f64(st, name, &ns);
        assert_int_equal(nt, (size_t)counts[i]);
        assert_int_equal(ns, (size_t)counts[i] + 1);
        reel_sched_config c = config(files[f].kind, shifts[j]);
        reel_scheduler *s = NULL;
        reel_error err = {0};
        assert_int_equal(reel_scheduler_new(&c, counts[i], 8, NULL, &s, &err), REEL_OK);
        for (int k = 0; k < counts[i]; k++) {
          /* Timesteps are exact integers (UniPC, DPM) or float32 values (Euler): compare relatively. */
          double d = fabs(reel_scheduler_timestep(s, k) - ts[k]) / fmax(1.0, fabs(ts[k]));
          if (d > worst_t) worst_t = d;
          if (d > 1e-6)
            fail_msg("%s n%d shift%d: timestep %d is %.9g, diffusers %.9g", files[f].path, counts[i], shifts[j], k,
                     reel_scheduler_timestep(s, k), ts[k]);
        }
        for (int k = 0; k <= counts[i]; k++) {
          double d = fabs(reel_scheduler_sigma(s, k) - sg[k]);
          if (d > worst_s) worst_s = d;
          if (d > 1e-6)
            fail_msg("%s n%d shift%d: sigma %d is %.9g, diffusers %.9g", files[f].path, counts[i], shifts[j], k,
                     reel_scheduler_sigma(s, k), sg[k]);
        }
        reel_scheduler_destroy(&s);
        free(ts);
        free(sg);
      }
    printf("%s: 20 schedules, worst timestep rel. diff %.3g, worst sigma diff %.3g\n", files[f].path, worst_t, worst_s);
    reel_safetensors_close(&st);
  }
}

/* One recorded run through host ops (backend == NULL) or backend tensors; returns the worst step error. */
static double run(reel_safetensors *st, const char *key, reel_sched_kind kind, double shift, int steps, int taken,
                  reel_backend *backend, float **final) {
  char name[96];
  size_t n, nm, no;
  int64_t shape[6];
  int rank;
  snprintf(name, sizeof name, "%s.sample_in", key);
  float *sample = wt_read_f32(st, name, &n, NULL, NULL);
  snprintf(name, sizeof name, "%s.model_output", key);
  float *mo = wt_read_f32(st, name, &nm, shape, &rank);
  snprintf(name, sizeof name, "%s.sample_out", key);
  float *want = wt_read_f32(st, name, &no, NULL, NULL);
  assert_int_equal(shape[0], taken);
  assert_int_equal(nm, (size_t)taken * n);
  reel_sched_config c = config(kind, shift);
  reel_error err = {0};
  reel_scheduler *s = NULL;
  reel_tensor_arena *arena = NULL;
  reel_sched_backend ctx = {backend, NULL, &err};
  reel_sched_ops ops;
  reel_tensor ts, to;
  if (backend) {
    arena = reel_tensor_arena_new(backend, 8 * (n * 4 + 64), &err);
    ctx.arena = arena;
    ops = reel_sched_backend_ops(&ctx);
    int64_t flat[1] = {(int64_t)n};
    ts = wt_upload(backend, 1, flat, sample);
    to = wt_upload(backend, 1, flat, mo);
  }
  assert_int_equal(reel_scheduler_new(&c, steps, n, backend ? &ops : NULL, &s, &err), REEL_OK);
  double worst = 0;
  for (int k = 0; k < taken; k++) {
    if (backend) {
      assert_int_equal(reel_tensor_upload(&to, mo + (size_t)k * n, n * 4, &err), REEL_OK);
      assert_int_equal(reel_scheduler_step(s, &to, &ts, &err), REEL_OK);
      float *got = wt_download(&ts);
      memcpy(sample, got, n * 4);
      free(got);
    } else {
      assert_int_equal(reel_scheduler_step(s, mo + (size_t)k * n, sample, &err), REEL_OK);
    }
    double e = tu_max_abs_diff(want + (size_t)k * n, sample, n, NULL);
    if (e > worst) worst = e;
  }
  reel_scheduler_destroy(&s);
  if (backend) {
    reel_tensor_free(&ts);
    reel_tensor_free(&to);
    reel_tensor_arena_destroy(&arena);
  }
  free(mo);
  free(want);
  *final = sample;
  return worst;
}

static void test_runs(void **state) {
  (void)state;
  static const struct {
    const char *key;
    double shift;
    int steps, taken;
  } runs[] = {{"run_n6_shift3", 3, 6, 6}, {"run_n50_shift5", 5, 50, 5}, {"run_n4_shift1", 1, 4, 4}};
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  for (size_t f = 0; f < 3; f++) {
    reel_safetensors *st = wt_open(files[f].path);
    for (size_t r = 0; r < 3; r++) {
      float *host, *dev;
      double e = run(st, runs[r].key, files[f].kind, runs[r].shift, runs[r].steps, runs[r].taken, NULL, &host);
      double e2 = run(st, runs[r].key, files[f].kind, runs[r].shift, runs[r].steps, runs[r].taken, b, &dev);
      printf("%s %s: worst step error %.3g (backend ops %.3g)\n", files[f].path, runs[r].key, e, e2);
      assert_true(e <= 2e-6);
      size_t n = 2 * 4 * 3 * 4 * 5;
      assert_memory_equal(host, dev, n * sizeof(float));
      free(host);
      free(dev);
    }
    reel_safetensors_close(&st);
  }
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedules),
      cmocka_unit_test(test_runs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
