/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-pipeline parity with diffusers' WanPipeline on tests/fixtures/tiny-wan (fixture
 * tiny-wan/reference/pipeline.safetensors): prompt -> prompt_clean -> tokenizer -> UMT5
 * (prompt and negative prompt), the CFG denoising loop with UniPC from reel's Philox noise
 * of the call's seeds, then the VAE. The initial noise must equal the fixture's, the final
 * latents must be within 1e-3 and the frames (diffusers' (video * 0.5 + 0.5).clamp(0, 1))
 * within 2/255 of the reference. This covers the library path; `reel generate` on the same
 * folder (CLI, MP4) is tested by the generate tests.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/denoise.h"
#include "reel/json.h"
#include "reel/model.h"
#include "wan_testutil.h"
#include "testutil.h"

static void run_call(reel_backend *b, reel_model *m, const reel_safetensors *ref, const json_t *call, int idx) {
  reel_error err = {0};
  json_t *prompts = json_object_get(call, "prompt"), *seeds_j = json_object_get(call, "seeds");
  json_t *neg = json_object_get(call, "negative_prompt");
  const int64_t S = (int64_t)json_array_size(prompts);
  const int64_t H = json_integer_value(json_object_get(call, "height")),
                W = json_integer_value(json_object_get(call, "width")),
                NF = json_integer_value(json_object_get(call, "num_frames"));
  const int steps = (int)json_integer_value(json_object_get(call, "num_inference_steps"));
  const double guidance = json_number_value(json_object_get(call, "guidance_scale"));
  assert_true(S >= 1 && S <= 4 && H > 0 && W > 0 && NF > 0 && steps > 0);
  const reel_model_info *info = reel_model_get_info(m);
  const int64_t L = info->text_len, D = info->text_dim;

  /* prompt embeddings, one prompt at a time, into [S, L, D] tensors */
  reel_tensor cond, uncond;
  int64_t cs[3] = {S, L, D};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, cs, &cond, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, cs, &uncond, &err), REEL_OK);
  reel_tensor_arena *ta = reel_tensor_arena_new(b, (size_t)(L * D) * sizeof(float) + 4096, &err);
  assert_non_null(ta);
  for (int64_t s = 0; s < S; s++) {
    for (int which = 0; which < 2; which++) {
      const char *text = which == 0            ? json_string_value(json_array_get(prompts, (size_t)s))
                         : json_is_array(neg)  ? json_string_value(json_array_get(neg, (size_t)s))
                         : json_is_string(neg) ? json_string_value(neg)
                                               : ""; /* negative_prompt=None is "" */
      assert_non_null(text);
      reel_tensor e, dst;
      reel_tensor_arena_reset(ta);
      if (reel_model_encode_prompt(m, text, ta, &e, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
      assert_int_equal(reel_tensor_slice(which ? &uncond : &cond, 0, s, 1, &dst, &err), REEL_OK);
      int64_t s2[2] = {L, D};
      assert_int_equal(reel_tensor_reshape(&dst, 2, s2, &dst, &err), REEL_OK);
      assert_int_equal(reel_op_copy(b, &e, &dst, &err), REEL_OK);
    }
  }
  reel_tensor_arena_destroy(&ta);

  /* the loop from the seeds' Philox noise */
  uint64_t seeds[4];
  for (int64_t s = 0; s < S; s++) seeds[s] = (uint64_t)json_integer_value(json_array_get(seeds_j, (size_t)s));
  reel_denoise_params p;
  memset(&p, 0, sizeof p);
  p.sampler = info->sampler;
  p.steps = steps;
  p.guidance = guidance;
  p.samples = S;
  p.latent[0] = 16;
  p.latent[1] = (NF - 1) / 4 + 1;
  p.latent[2] = H / 8;
  p.latent[3] = W / 8;
  p.seeds = seeds;
  p.cond = &cond;
  p.uncond = &uncond;
  size_t bytes = 0;
  assert_int_equal(reel_denoise_arena_bytes(m, &p, &bytes, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(b, bytes, &err);
  reel_tensor lat;
  if (reel_denoise(m, &p, a, &lat, &err) != REEL_OK) fail_msg("denoise: %s: %s", err.field, err.msg);
  char name[64];
  snprintf(name, sizeof name, "call%d.latents_final", idx);
  size_t n = 0;
  float *want = wt_read_f32(ref, name, &n, NULL, NULL);
  float *got = wt_download(&lat);
  assert_int_equal(n, (size_t)reel_tensor_numel(&lat));
  double dl = tu_max_abs_diff(got, want, n, NULL);
  printf("call %d: final latents max abs diff %.3g\n", idx, dl);
  assert_true(dl <= 1e-3);
  free(got);
  free(want);

  /* decode: frames [S, 3, F, H, W] in [-1, 1] -> diffusers' [S, F, H, W, 3] in [0, 1] */
  reel_tensor frames;
  int64_t fs[5] = {S, 3, NF, H, W};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, fs, &frames, &err), REEL_OK);
  if (reel_model_decode(m, &lat, a, &frames, &err) != REEL_OK) fail_msg("decode: %s: %s", err.field, err.msg);
  float *px = wt_download(&frames);
  snprintf(name, sizeof name, "call%d.frames", idx);
  float *ref_px = wt_read_f32(ref, name, &n, NULL, NULL);
  assert_int_equal(n, (size_t)(S * 3 * NF * H * W));
  double worst = 0;
  for (int64_t s = 0; s < S; s++)
    for (int64_t c = 0; c < 3; c++)
      for (int64_t f = 0; f < NF; f++)
        for (int64_t y = 0; y < H; y++)
          for (int64_t x = 0; x < W; x++) {
            float v = px[(((s * 3 + c) * NF + f) * H + y) * W + x] * 0.5f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            float r = ref_px[(((s * NF + f) * H + y) * W + x) * 3 + c];
            double d = fabs((double)v - r);
            if (d > worst) worst = d;
          }
  printf("call %d: frames max abs diff %.3g (%.3f / 255)\n", idx, worst, worst * 255.0);
  assert_true(worst <= 2.0 / 255.0);
  free(px);
  free(ref_px);
  reel_tensor_free(&frames);
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&cond);
  reel_tensor_free(&uncond);
}

static void test_pipeline(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  reel_model *m = NULL;
  char dir[1024];
  if (reel_model_open(b, wt_fixture(dir, sizeof dir, "tiny-wan"), &m, &err) != REEL_OK)
    fail_msg("%s: %s", err.field, err.msg);
  reel_safetensors *ref = wt_open("tiny-wan/reference/pipeline.safetensors");
  const char *calls_s = reel_safetensors_metadata(ref, "calls");
  assert_non_null(calls_s);
  json_t *calls = NULL;
  assert_int_equal(reel_json_parse(calls_s, strlen(calls_s), "calls", &calls, &err), REEL_OK);
  for (size_t i = 0; i < json_array_size(calls); i++) run_call(b, m, ref, json_array_get(calls, i), (int)i);
  json_decref(calls);
  reel_safetensors_close(&ref);
  reel_model_destroy(&m);
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_pipeline)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
