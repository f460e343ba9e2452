/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shipped default model (samples/models/wan-shapes-tiny, trained by
 * tools/train_default_model.py) through reel's C runtime against diffusers'
 * WanPipeline on the same folder: tests/fixtures/wan-shapes-tiny/reference.safetensors
 * holds, per call, the prompt and seed, the initial latents (tools/philox.py)
 * and the uint8 frames diffusers made (tools/export_default_model.py
 * --reference). reel_generate runs with nothing but the prompt and the seed, so
 * the model must be the default one and its reel.json must supply the size,
 * frames, fps, steps, guidance, shift and sampler the reference used.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/generate.h"
#include "reel/safetensors.h"
#include "testutil.h"
#include "wan_testutil.h"

#define MAX_CALLS 8

typedef struct call {
  char prompt[256];
  uint64_t seed;
  int width, height, frames, steps;
  double guidance;
} call;

typedef struct fixture {
  reel_safetensors *ref;
  call calls[MAX_CALLS];
  int ncalls;
  char tmp[512];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->ref = wt_open("wan-shapes-tiny/reference.safetensors");
  const char *calls = reel_safetensors_metadata(f->ref, "calls");
  assert_non_null(calls);
  json_error_t je;
  json_t *root = json_loads(calls, 0, &je);
  assert_non_null(root);
  size_t i;
  json_t *c;
  json_array_foreach(root, i, c) {
    assert_true(f->ncalls < MAX_CALLS);
    call *x = &f->calls[f->ncalls++];
    snprintf(x->prompt, sizeof x->prompt, "%s", json_string_value(json_object_get(c, "prompt")));
    x->seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
    x->width = (int)json_integer_value(json_object_get(c, "width"));
    x->height = (int)json_integer_value(json_object_get(c, "height"));
    x->frames = (int)json_integer_value(json_object_get(c, "num_frames"));
    x->steps = (int)json_integer_value(json_object_get(c, "num_inference_steps"));
    x->guidance = json_number_value(json_object_get(c, "guidance_scale"));
  }
  json_decref(root);
  assert_true(f->ncalls >= 2);
  tu_mkdtemp(f->tmp, sizeof f->tmp);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_safetensors_close(&f->ref);
  tu_rmtree(f->tmp);
  free(f);
  return 0;
}

static void test_is_default(void **state) {
  (void)state;
  assert_string_equal(reel_default_model(), "wan-shapes-tiny");
}

static void test_parity(void **state) {
  fixture *f = *state;
  for (int i = 0; i < f->ncalls; i++) {
    const call *c = &f->calls[i];
    reel_jobspec spec;
    reel_jobspec_init(&spec);
    assert_int_equal(reel_jobspec_set_str(&spec.prompt, c->prompt), REEL_OK);
    spec.seed = c->seed;
    spec.seed_set = 1;
    wt_frames fr;
    wt_frames_init(&fr, c->width, c->height, c->frames);
    reel_generate_options o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.frame = wt_grab_frame;
    o.frame_user = &fr;
    char out[600];
    snprintf(out, sizeof out, "%s/default%d.mp4", f->tmp, i);
    reel_generate_result res;
    reel_error err = {0};
    reel_status st = reel_generate(&spec, out, &o, &res, &err);
    if (st != REEL_OK) fail_msg("call %d: %s: %s", i, err.field, err.msg);
    /* Everything but the prompt and the seed came from the model's reel.json. */
    assert_int_equal(res.width, c->width);
    assert_int_equal(res.height, c->height);
    assert_int_equal(res.frames, c->frames);
    assert_int_equal(res.steps, c->steps);
    assert_true(res.guidance == c->guidance);
    assert_string_equal(res.sampler, "unipc");
    assert_string_equal(res.family, "wan2.1");
    assert_int_equal(fr.n, c->frames);

    char name[64];
    snprintf(name, sizeof name, "call%d.frames_u8", i);
    const reel_st_tensor *t = reel_safetensors_find(f->ref, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, REEL_ST_U8);
    size_t n = (size_t)c->frames * c->height * c->width * 3;
    assert_int_equal((size_t)t->numel, n);
    const uint8_t *want = t->data;
    int maxd = 0;
    double sum = 0;
    size_t over = 0;
    for (size_t k = 0; k < n; k++) {
      int d = abs((int)fr.rgb[k] - (int)want[k]);
      sum += d;
      if (d > maxd) maxd = d;
      if (d > 2) over++;
    }
    printf("call %d (%s, seed %llu): max abs pixel error %d/255, mean %.4f, %zu of %zu values off by more than 2\n",
           i, c->prompt, (unsigned long long)c->seed, maxd, sum / (double)n, over, n);
    if (sum / (double)n > 0.02) { /* where: per frame */
      size_t fb = (size_t)c->height * c->width * 3;
      for (int ft = 0; ft < c->frames; ft++) {
        double fs = 0;
        for (size_t k = 0; k < fb; k++) fs += abs((int)fr.rgb[ft * fb + k] - (int)want[ft * fb + k]);
        printf("  frame %d: mean abs error %.3f\n", ft, fs / (double)fb);
      }
    }
    /* Float rounding (reel's kernels vs PyTorch's) through twenty CFG steps: within 1/255 here;
       a little slack for other CPUs' code paths. */
    assert_true(sum / (double)n <= 0.02);
    assert_true(over <= n / 2000);
    assert_true(maxd <= 6);
    free(fr.rgb);
    reel_jobspec_fini(&spec);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_is_default),
      cmocka_unit_test_setup_teardown(test_parity, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
