/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Wan stack on the CUDA backend against the CPU backend (ctest label gpu):
 * a full transformer forward of every fixture (tiny-wan, the sharded wan-t2v-b,
 * the bf16 original-key checkpoint) with the weights as stored, on both CUDA
 * attention paths, and with bf16 matrices and activations against the CPU with
 * the same bf16 matrices; then the tiny CFG loop (UniPC, 4 steps, guidance 5,
 * Philox seeds 0 and 42) through the model family on CUDA against diffusers'
 * latents, and its initial noise, which must be the CPU's bit for bit; then the
 * whole tiny pipeline on CUDA (UMT5 prompt embeddings against the CPU's, the
 * loop against diffusers' latents, the VAE's frames against the CPU's decode of
 * the same latents and against diffusers' frames). Each comparison has a
 * normalised-MSE bound. Exits with 77 (ctest's
 * SKIP_RETURN_CODE) without CUDA or a device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/denoise.h"
#include "reel/json.h"
#include "reel/model.h"
#include "reel/noise.h"
#include "reel/wan.h"
#include "testutil.h"
#include "wan_testutil.h"

static reel_backend *gpu;

static double nmse(const float *ref, const float *got, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return num / (den > 1e-30 ? den : 1e-30);
}

typedef struct fwd_case {
  const char *model, *reference, *weights; /* weights: NULL = diffusers layout in <model>/transformer */
  int stored16;                            /* the checkpoint's matrices are 16-bit */
} fwd_case;

/* One forward of the fixture's inputs on backend b; returns the output (malloc'd). */
static float *forward(reel_backend *b, const fwd_case *fc, int bf16, size_t *count) {
  reel_error err = {0};
  char dir[1024], path[1024], cfg[1100];
  snprintf(path, sizeof path, "%s/transformer", fc->model);
  wt_fixture(dir, sizeof dir, path);
  reel_wan_load_opts opts = {bf16};
  reel_wan_transformer *m = NULL;
  reel_status st;
  if (fc->weights) {
    char wp[1100];
    snprintf(path, sizeof path, "%s/%s", fc->model, fc->weights);
    wt_fixture(wp, sizeof wp, path);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    st = reel_wan_transformer_load_file_opts(b, wp, cfg, &opts, &m, &err);
  } else {
    st = reel_wan_transformer_load_dir_opts(b, dir, &opts, &m, &err);
  }
  if (st != REEL_OK) fail_msg("load %s on %s: %s: %s", fc->model, reel_backend_name(b), err.field, err.msg);
  if (bf16 && reel_backend_get_kind(b) == REEL_BACKEND_CUDA &&
      reel_wan_transformer_set_activations(m, REEL_BF16, &err) != REEL_OK)
    fail_msg("bf16 activations: %s: %s", err.field, err.msg);
  reel_safetensors *ref = wt_open(fc->reference);
  int64_t ls[5], cs[3];
  int lr, cr;
  float *lat = wt_read_f32(ref, "hidden_states", NULL, ls, &lr);
  float *ctx = wt_read_f32(ref, "encoder_hidden_states", NULL, cs, &cr);
  float *ts = wt_read_f32(ref, "timestep", NULL, NULL, NULL);
  const reel_wan_config *c = reel_wan_transformer_config(m);
  reel_tensor tl = wt_upload(b, 5, ls, lat), tc = wt_upload(b, 3, cs, ctx), to;
  int64_t os[5] = {ls[0], c->out_channels, ls[2], ls[3], ls[4]};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, os, &to, &err), REEL_OK);
  size_t need = 0;
  assert_int_equal(reel_wan_forward_arena_bytes(m, ls[0], ls[2], ls[3], ls[4], cs[1], &need, &err), REEL_OK);
  reel_tensor_arena *arena = reel_tensor_arena_new(b, need, &err);
  assert_non_null(arena);
  if (reel_wan_forward(m, &tl, ts, &tc, arena, &to, &err) != REEL_OK)
    fail_msg("forward %s on %s: %s: %s", fc->model, reel_backend_name(b), err.field, err.msg);
  assert_int_equal(reel_tensor_arena_used(arena), 0);
  assert_true(reel_tensor_arena_peak(arena) <= need);
  float *got = wt_download(&to);
  *count = (size_t)reel_tensor_numel(&to);
  reel_tensor_arena_destroy(&arena);
  reel_tensor_free(&tl);
  reel_tensor_free(&tc);
  reel_tensor_free(&to);
  reel_wan_transformer_destroy(&m);
  reel_safetensors_close(&ref);
  free(lat);
  free(ctx);
  free(ts);
  return got;
}

static void check_case(const fwd_case *fc) {
  reel_error err = {0};
  reel_backend *cpu = reel_backend_new_cpu(0, &err);
  assert_non_null(cpu);
  size_t n0, n1;
  float *want = forward(cpu, fc, 0, &n0);
  /* Weights as stored: cuBLASLt in f32 (or 16-bit for the bf16 file); attention on both paths. */
  static const char *const paths[2] = {"simt", "mma"};
  /* With 16-bit matrices cuBLASLt also rounds the activations to 16 bits, unlike the CPU. */
  const double bounds[2] = {fc->stored16 ? 1e-4 : 1e-8, fc->stored16 ? 1e-4 : 2e-5};
  for (int p = 0; p < 2; p++) {
    assert_int_equal(reel_backend_set_option(gpu, "attention", paths[p], &err), REEL_OK);
    float *got = forward(gpu, fc, 0, &n1);
    assert_int_equal(n0, n1);
    double e = nmse(want, got, n0);
    printf("# %s forward, weights as stored, attention %s: nmse %.3e vs the CPU (bound %.0e)\n", fc->model, paths[p], e,
           bounds[p]);
    if (!(e <= bounds[p])) fail_msg("%s: nmse %.3e above %.0e", fc->model, e, bounds[p]);
    free(got);
  }
  assert_int_equal(reel_backend_set_option(gpu, "attention", "auto", &err), REEL_OK);
  /* bf16 matrices and activations against the CPU with the same bf16 matrices (uploaded like a device). */
  assert_int_equal(reel_backend_set_option(cpu, "wrap_host", "off", &err), REEL_OK);
  float *want16 = forward(cpu, fc, 1, &n0), *got16 = forward(gpu, fc, 1, &n1);
  double e = nmse(want16, got16, n0);
  printf("# %s forward, bf16 matrices and activations: nmse %.3e vs the CPU with bf16 matrices (bound 1e-3)\n",
         fc->model, e);
  if (!(e <= 1e-3)) fail_msg("%s bf16: nmse %.3e above 1e-3", fc->model, e);
  free(want);
  free(want16);
  free(got16);
  reel_backend_destroy(&cpu);
}

static void test_forward_tiny(void **state) {
  (void)state;
  fwd_case fc = {"tiny-wan", "tiny-wan/reference/transformer_forward.safetensors", NULL, 0};
  check_case(&fc);
}

static void test_forward_sharded(void **state) {
  (void)state;
  fwd_case fc = {"wan-t2v-b", "wan-t2v-b/reference/transformer_forward.safetensors", NULL, 0};
  check_case(&fc);
}

static void test_forward_original_bf16(void **state) {
  (void)state;
  fwd_case fc = {"tiny-wan", "tiny-wan/reference/transformer_forward.safetensors",
                 "reference/wan_original_bf16.safetensors", 1};
  check_case(&fc);
}

static void test_cfg_loop(void **state) {
  (void)state;
  reel_error err = {0};
  char dir[1024];
  reel_model *m = NULL;
  if (reel_model_open(gpu, wt_fixture(dir, sizeof dir, "tiny-wan"), &m, &err) != REEL_OK)
    fail_msg("open tiny-wan on CUDA: %s: %s", err.field, err.msg);
  reel_safetensors *ref = wt_open("tiny-wan/reference/cfg_loop.safetensors");
  int64_t shape[6];
  int rank;
  size_t n;
  float *h = wt_read_f32(ref, "prompt_embeds", NULL, shape, &rank);
  reel_tensor cond = wt_upload(gpu, rank, shape, h);
  free(h);
  h = wt_read_f32(ref, "negative_prompt_embeds", NULL, shape, &rank);
  reel_tensor uncond = wt_upload(gpu, rank, shape, h);
  free(h);
  float *init = wt_read_f32(ref, "latents_init", &n, NULL, NULL);
  float *final = wt_read_f32(ref, "latents_final", NULL, NULL, NULL);
  static const uint64_t seeds[2] = {0, 42};
  /* The initial noise of the loop is the backend's Philox op: the host generator's bits. */
  const size_t per = n / 2;
  float *host = malloc(n * sizeof(float));
  for (int s = 0; s < 2; s++) reel_noise_fill(seeds[s], 0, host + (size_t)s * per, per);
  int64_t ls[5] = {2, 16, 3, 6, 10};
  reel_tensor noise;
  assert_int_equal(reel_tensor_new(gpu, REEL_F32, 5, ls, &noise, &err), REEL_OK);
  for (int s = 0; s < 2; s++) {
    reel_tensor one;
    assert_int_equal(reel_tensor_slice(&noise, 0, s, 1, &one, &err), REEL_OK);
    assert_int_equal(reel_op_noise(gpu, seeds[s], 0, &one, &err), REEL_OK);
  }
  float *dev = wt_download(&noise);
  assert_memory_equal(dev, host, n * sizeof(float));
  double e0 = nmse(init, dev, n);
  printf("# tiny CFG loop: initial noise bit-identical to the host generator (nmse vs diffusers' %.3e)\n", e0);
  free(dev);
  reel_tensor_free(&noise);

  reel_denoise_params p;
  memset(&p, 0, sizeof p);
  p.sampler = reel_sched_config_default(REEL_SCHED_UNIPC);
  p.sampler.shift = 3.0;
  p.steps = 4;
  p.guidance = 5.0;
  p.samples = 2;
  p.latent[0] = 16;
  p.latent[1] = 3;
  p.latent[2] = 6;
  p.latent[3] = 10;
  p.seeds = seeds;
  p.cond = &cond;
  p.uncond = &uncond;
  size_t bytes = 0;
  assert_int_equal(reel_denoise_arena_bytes(m, &p, &bytes, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(gpu, bytes, &err);
  assert_non_null(a);
  reel_tensor out;
  if (reel_denoise(m, &p, a, &out, &err) != REEL_OK) fail_msg("denoise on CUDA: %s: %s", err.field, err.msg);
  float *got = wt_download(&out);
  double e = nmse(final, got, n);
  printf("# tiny CFG loop on CUDA (bf16 transformer): final latents nmse %.3e vs diffusers (bound 1e-3)\n", e);
  if (!(e <= 1e-3)) fail_msg("CFG loop: nmse %.3e above 1e-3", e);
  free(got);
  free(host);
  free(init);
  free(final);
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&cond);
  reel_tensor_free(&uncond);
  reel_safetensors_close(&ref);
  reel_model_destroy(&m);
}

/* Prompt embeddings [L, D] of `text` on model m, downloaded. */
static float *embed(reel_model *m, const char *text, size_t *n) {
  reel_error err = {0};
  reel_backend *b = reel_model_backend(m);
  const reel_model_info *info = reel_model_get_info(m);
  reel_tensor_arena *a = reel_tensor_arena_new(b, (size_t)(info->text_len * info->text_dim) * 4 + 4096, &err);
  assert_non_null(a);
  reel_tensor e;
  if (reel_model_encode_prompt(m, text, a, &e, &err) != REEL_OK)
    fail_msg("encode on %s: %s: %s", reel_backend_name(b), err.field, err.msg);
  float *h = wt_download(&e);
  *n = (size_t)reel_tensor_numel(&e);
  reel_tensor_arena_destroy(&a);
  return h;
}

/* Frames [S, 3, F, H, W] of latents (host data, shape ls) decoded on model m, downloaded. */
static float *decode(reel_model *m, const float *lat, const int64_t *ls, const int64_t *fs) {
  reel_error err = {0};
  reel_backend *b = reel_model_backend(m);
  reel_tensor tl = wt_upload(b, 5, ls, lat), frames;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, fs, &frames, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(b, (size_t)64 << 20, &err);
  assert_non_null(a);
  if (reel_model_decode(m, &tl, a, &frames, &err) != REEL_OK)
    fail_msg("decode on %s: %s: %s", reel_backend_name(b), err.field, err.msg);
  float *px = wt_download(&frames);
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&tl);
  reel_tensor_free(&frames);
  return px;
}

static void test_tiny_pipeline(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *cpu = reel_backend_new_cpu(0, &err);
  reel_model *mg = NULL, *mc = NULL;
  char dir[1024];
  wt_fixture(dir, sizeof dir, "tiny-wan");
  if (reel_model_open(gpu, dir, &mg, &err) != REEL_OK) fail_msg("open on CUDA: %s: %s", err.field, err.msg);
  if (reel_model_open(cpu, dir, &mc, &err) != REEL_OK) fail_msg("open on CPU: %s: %s", err.field, err.msg);
  reel_safetensors *ref = wt_open("tiny-wan/reference/pipeline.safetensors");
  const char *calls_s = reel_safetensors_metadata(ref, "calls");
  assert_non_null(calls_s);
  json_t *calls = NULL;
  assert_int_equal(reel_json_parse(calls_s, strlen(calls_s), "calls", &calls, &err), REEL_OK);
  json_t *call = json_array_get(calls, 0);
  json_t *prompts = json_object_get(call, "prompt"), *neg = json_object_get(call, "negative_prompt");
  const int64_t S = (int64_t)json_array_size(prompts);
  const int64_t H = json_integer_value(json_object_get(call, "height")),
                W = json_integer_value(json_object_get(call, "width")),
                NF = json_integer_value(json_object_get(call, "num_frames"));
  const reel_model_info *info = reel_model_get_info(mg);
  const int64_t L = info->text_len, D = info->text_dim;
  /* UMT5 on CUDA against the CPU, into the [S, L, D] inputs of the loop. */
  float *hc = malloc((size_t)(S * L * D) * 4), *hu = malloc((size_t)(S * L * D) * 4);
  for (int64_t s = 0; s < S; s++)
    for (int which = 0; which < 2; which++) {
      const char *text = which == 0            ? json_string_value(json_array_get(prompts, (size_t)s))
                         : json_is_array(neg)  ? json_string_value(json_array_get(neg, (size_t)s))
                         : json_is_string(neg) ? json_string_value(neg)
                                               : "";
      size_t n1, n2;
      float *eg = embed(mg, text, &n1), *ec = embed(mc, text, &n2);
      assert_int_equal(n1, n2);
      double e = nmse(ec, eg, n1);
      printf("# UMT5 on CUDA, prompt %lld/%d: nmse %.3e vs the CPU (bound 1e-8)\n", (long long)s, which, e);
      if (!(e <= 1e-8)) fail_msg("UMT5 embeddings: nmse %.3e above 1e-8", e);
      memcpy((which ? hu : hc) + s * L * D, eg, n1 * 4);
      free(eg);
      free(ec);
    }
  int64_t cs[3] = {S, L, D};
  reel_tensor cond = wt_upload(gpu, 3, cs, hc), uncond = wt_upload(gpu, 3, cs, hu);
  uint64_t seeds[4];
  json_t *seeds_j = json_object_get(call, "seeds");
  for (int64_t s = 0; s < S && s < 4; s++) seeds[s] = (uint64_t)json_integer_value(json_array_get(seeds_j, (size_t)s));
  reel_denoise_params p;
  memset(&p, 0, sizeof p);
  p.sampler = info->sampler;
  p.steps = (int)json_integer_value(json_object_get(call, "num_inference_steps"));
  p.guidance = json_number_value(json_object_get(call, "guidance_scale"));
  p.samples = S;
  p.latent[0] = 16;
  p.latent[1] = (NF - 1) / 4 + 1;
  p.latent[2] = H / 8;
  p.latent[3] = W / 8;
  p.seeds = seeds;
  p.cond = &cond;
  p.uncond = &uncond;
  size_t bytes = 0;
  assert_int_equal(reel_denoise_arena_bytes(mg, &p, &bytes, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(gpu, bytes, &err);
  reel_tensor lat;
  if (reel_denoise(mg, &p, a, &lat, &err) != REEL_OK) fail_msg("denoise on CUDA: %s: %s", err.field, err.msg);
  size_t n = 0;
  float *want = wt_read_f32(ref, "call0.latents_final", &n, NULL, NULL), *got = wt_download(&lat);
  assert_int_equal(n, (size_t)reel_tensor_numel(&lat));
  double el = nmse(want, got, n);
  printf("# tiny pipeline on CUDA: final latents nmse %.3e vs diffusers (bound 1e-3)\n", el);
  if (!(el <= 1e-3)) fail_msg("pipeline latents: nmse %.3e above 1e-3", el);
  /* The VAE on CUDA against the CPU's decode of the same latents, and against diffusers' frames. */
  int64_t ls[5] = {S, 16, p.latent[1], p.latent[2], p.latent[3]}, fs[5] = {S, 3, NF, H, W};
  float *fg = decode(mg, got, ls, fs), *fc = decode(mc, got, ls, fs);
  const size_t nf = (size_t)(S * 3 * NF * H * W);
  double ef = nmse(fc, fg, nf);
  printf("# VAE decode on CUDA: nmse %.3e vs the CPU (bound 1e-5)\n", ef);
  if (!(ef <= 1e-5)) fail_msg("VAE decode: nmse %.3e above 1e-5", ef);
  float *ref_px = wt_read_f32(ref, "call0.frames", &n, NULL, NULL);
  assert_int_equal(n, nf);
  double worst = 0;
  for (int64_t s = 0; s < S; s++)
    for (int64_t c = 0; c < 3; c++)
      for (int64_t f = 0; f < NF; f++)
        for (int64_t y = 0; y < H; y++)
          for (int64_t x = 0; x < W; x++) {
            float v = fg[(((s * 3 + c) * NF + f) * H + y) * W + x] * 0.5f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            double d = fabs((double)v - ref_px[(((s * NF + f) * H + y) * W + x) * 3 + c]);
            if (d > worst) worst = d;
          }
  printf("# tiny pipeline on CUDA: frames max abs diff %.4f (%.2f / 255) vs diffusers (bound 16 / 255)\n", worst,
         worst * 255.0);
  assert_true(worst <= 16.0 / 255.0);
  free(ref_px);
  free(fg);
  free(fc);
  free(want);
  free(got);
  free(hc);
  free(hu);
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&cond);
  reel_tensor_free(&uncond);
  json_decref(calls);
  reel_safetensors_close(&ref);
  reel_model_destroy(&mg);
  reel_model_destroy(&mc);
  reel_backend_destroy(&cpu);
}

int main(void) {
  reel_error err;
  reel_error_clear(&err);
  gpu = reel_backend_new_cuda(0, &err);
  if (!gpu) {
    char buf[700];
    printf("SKIP: no CUDA backend: %s\n", reel_error_format(&err, buf, sizeof buf));
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_tiny),          cmocka_unit_test(test_forward_sharded),
      cmocka_unit_test(test_forward_original_bf16), cmocka_unit_test(test_cfg_loop),
      cmocka_unit_test(test_tiny_pipeline),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  reel_backend_destroy(&gpu);
  return rc;
}
