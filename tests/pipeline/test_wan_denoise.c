/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model-family interface on the Wan2.1 family and the denoising loop with
 * classifier-free guidance against diffusers' WanPipeline (tiny-wan, UniPC with
 * flow shift 3, 4 steps, guidance 5, two samples from Philox seeds 0 and 42):
 * the latents after every step and at the end within 1e-3. Also: the same loop
 * from given latents, the callback's progress and cancellation, NaN detection
 * (REEL_ENONFINITE), the components the family lacks, and bad parameters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/denoise.h"
#include "reel/model.h"
#include "testutil.h"
#include "wan_testutil.h"

typedef struct fixture {
  reel_backend *b;
  reel_model *m;
  reel_safetensors *ref;
  reel_tensor cond, uncond, init;
  float *steps; /* latents_step [4, 2, 16, 3, 6, 10] */
  float *final; /* latents_final */
  size_t n;     /* elements of one set of latents (both samples) */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  reel_error err = {0};
  f->b = reel_backend_new_cpu(2, &err);
  char dir[1024];
  if (reel_model_open(f->b, wt_fixture(dir, sizeof dir, "tiny-wan"), &f->m, &err) != REEL_OK)
    fail_msg("open tiny-wan: %s: %s", err.field, err.msg);
  f->ref = wt_open("tiny-wan/reference/cfg_loop.safetensors");
  int64_t shape[6];
  int rank;
  float *h = wt_read_f32(f->ref, "prompt_embeds", NULL, shape, &rank);
  f->cond = wt_upload(f->b, rank, shape, h);
  free(h);
  h = wt_read_f32(f->ref, "negative_prompt_embeds", NULL, shape, &rank);
  f->uncond = wt_upload(f->b, rank, shape, h);
  free(h);
  h = wt_read_f32(f->ref, "latents_init", &f->n, shape, &rank);
  f->init = wt_upload(f->b, rank, shape, h);
  free(h);
  f->steps = wt_read_f32(f->ref, "latents_step", NULL, NULL, NULL);
  f->final = wt_read_f32(f->ref, "latents_final", NULL, NULL, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_tensor_free(&f->cond);
  reel_tensor_free(&f->uncond);
  reel_tensor_free(&f->init);
  reel_model_destroy(&f->m);
  reel_backend_destroy(&f->b);
  reel_safetensors_close(&f->ref);
  free(f->steps);
  free(f->final);
  free(f);
  return 0;
}

static const uint64_t seeds[2] = {0, 42};

static reel_denoise_params params(fixture *f) {
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
  p.cond = &f->cond;
  p.uncond = &f->uncond;
  return p;
}

typedef struct watch {
  fixture *f;
  int calls;
  int cancel_after; /* stop after this many steps (0 = never) */
  double max_err[8];
  double timesteps[8], sigmas[8];
} watch;

static reel_status on_step(void *ctx, const reel_denoise_progress *p) {
  watch *w = ctx;
  assert_int_equal(p->step, w->calls);
  assert_int_equal(p->steps, 4);
  float *got = wt_download(p->latents);
  w->max_err[p->step] = tu_max_abs_diff(w->f->steps + (size_t)p->step * w->f->n, got, w->f->n, NULL);
  free(got);
  w->timesteps[p->step] = p->timestep;
  w->sigmas[p->step] = p->sigma;
  w->calls++;
  return w->cancel_after && w->calls >= w->cancel_after ? REEL_ECANCELED : REEL_OK;
}

static reel_tensor_arena *arena_for(fixture *f, const reel_denoise_params *p) {
  size_t bytes = 0;
  reel_error err = {0};
  assert_int_equal(reel_denoise_arena_bytes(f->m, p, &bytes, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(f->b, bytes, &err);
  assert_non_null(a);
  return a;
}

static void check_run(fixture *f, reel_denoise_params *p) {
  watch w = {f, 0, 0, {0}, {0}, {0}};
  p->callback = on_step;
  p->callback_ctx = &w;
  reel_tensor_arena *a = arena_for(f, p);
  reel_tensor out;
  reel_error err = {0};
  reel_status st = reel_denoise(f->m, p, a, &out, &err);
  if (st != REEL_OK) fail_msg("denoise: %s: %s", err.field, err.msg);
  assert_int_equal(w.calls, 4);
  static const double ts[4] = {999, 900, 750, 500};
  static const double sg[4] = {0.90012, 0.750375, 0.500999, 0.0};
  for (int i = 0; i < 4; i++) {
    printf("step %d: max abs error %.3g\n", i, w.max_err[i]);
    assert_true(w.max_err[i] <= 1e-3);
    assert_true(w.timesteps[i] == ts[i]);
    assert_true(fabs(w.sigmas[i] - sg[i]) < 1e-6);
  }
  float *got = wt_download(&out);
  double e = tu_max_abs_diff(f->final, got, f->n, NULL);
  printf("final latents: max abs error %.3g\n", e);
  assert_true(e <= 1e-3);
  free(got);
  reel_tensor_arena_destroy(&a);
}

static void test_model_info(void **state) {
  fixture *f = *state;
  const reel_model_info *info = reel_model_get_info(f->m);
  assert_string_equal(info->family, "wan2.1");
  assert_ptr_equal(reel_model_get_family(f->m), &reel_model_family_wan21);
  assert_int_equal(info->latent_channels, 16);
  assert_int_equal(info->out_channels, 16);
  assert_int_equal(info->text_dim, 32);
  assert_int_equal(info->latent_multiple[1], 2);
  assert_int_equal(info->sampler.kind, REEL_SCHED_UNIPC);
  /* The text encoder and the VAE of tiny-wan (their parity is tested in test_umt5.c / test_wan_vae.c). */
  reel_error err = {0};
  reel_tensor t;
  reel_tensor_arena *a = reel_tensor_arena_new(f->b, 1024, &err);
  assert_int_equal(reel_model_encode_prompt(f->m, "a cat", a, &t, &err), REEL_ELIMIT); /* [512, 32] does not fit */
  reel_tensor_arena_destroy(&a);
  a = reel_tensor_arena_new(f->b, 1 << 20, &err);
  reel_error_clear(&err);
  assert_int_equal(reel_model_encode_prompt(f->m, "a cat", a, &t, &err), REEL_OK);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.shape[0], 512);
  assert_int_equal(t.shape[1], 32);
  float *emb = wt_download(&t);
  int nonzero_rows = 0;
  for (int r = 0; r < 512; r++) {
    int nz = 0;
    for (int c = 0; c < 32; c++) nz |= emb[r * 32 + c] != 0.0f;
    nonzero_rows += nz;
  }
  assert_true(nonzero_rows >= 2 && nonzero_rows < 16); /* the prompt's tokens and </s>, zeros after */
  free(emb);
  assert_int_equal(info->vae_stride[0], 4);
  assert_int_equal(info->vae_stride[1], 8);
  reel_tensor frames;
  int64_t fs[5] = {f->init.shape[0], 3, 1 + 4 * (f->init.shape[2] - 1), 8 * f->init.shape[3], 8 * f->init.shape[4]};
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, fs, &frames, &err), REEL_OK);
  assert_int_equal(reel_model_decode(f->m, &f->init, a, &frames, &err), REEL_OK);
  float *px = wt_download(&frames);
  for (int64_t i = 0; i < reel_tensor_numel(&frames); i++) assert_true(px[i] >= -1.0f && px[i] <= 1.0f);
  free(px);
  reel_tensor_free(&frames);
  reel_tensor_arena_destroy(&a);
  /* A folder no family recognises. */
  reel_model *m = NULL;
  char dir[1024];
  reel_error_clear(&err);
  assert_int_equal(reel_model_open(f->b, wt_fixture(dir, sizeof dir, "schedulers"), &m, &err), REEL_EUNSUPPORTED);
  assert_null(m);
}

static void test_cfg_loop_from_seeds(void **state) {
  fixture *f = *state;
  reel_denoise_params p = params(f);
  check_run(f, &p);
}

static void test_cfg_loop_from_latents(void **state) {
  fixture *f = *state;
  reel_denoise_params p = params(f);
  p.seeds = NULL;
  p.init = &f->init;
  check_run(f, &p);
}

static void test_cancel(void **state) {
  fixture *f = *state;
  reel_denoise_params p = params(f);
  watch w = {f, 0, 2, {0}, {0}, {0}};
  p.callback = on_step;
  p.callback_ctx = &w;
  reel_tensor_arena *a = arena_for(f, &p);
  reel_tensor out;
  reel_error err = {0};
  assert_int_equal(reel_denoise(f->m, &p, a, &out, &err), REEL_ECANCELED);
  assert_int_equal(w.calls, 2);
  assert_null(out.buf);
  assert_int_equal(reel_tensor_arena_used(a), 0);
  reel_tensor_arena_destroy(&a);
}

static void test_nonfinite(void **state) {
  fixture *f = *state;
  reel_denoise_params p = params(f);
  /* An infinite text embedding turns into NaN inside the model: the prediction is not finite. */
  float *h = wt_download(&f->cond);
  h[5] = INFINITY;
  int64_t shape[3] = {f->cond.shape[0], f->cond.shape[1], f->cond.shape[2]};
  reel_tensor bad = wt_upload(f->b, 3, shape, h);
  free(h);
  p.cond = &bad;
  reel_tensor_arena *a = arena_for(f, &p);
  reel_tensor out;
  reel_error err = {0};
  assert_int_equal(reel_denoise(f->m, &p, a, &out, &err), REEL_ENONFINITE);
  assert_non_null(strstr(err.msg, "step 0"));
  assert_int_equal(reel_tensor_arena_used(a), 0);
  /* NaN in given latents is refused before the first step. */
  float *l = wt_download(&f->init);
  l[17] = NAN;
  int64_t ls[5] = {2, 16, 3, 6, 10};
  reel_tensor nan_init = wt_upload(f->b, 5, ls, l);
  free(l);
  p = params(f);
  p.init = &nan_init;
  reel_error_clear(&err);
  assert_int_equal(reel_denoise(f->m, &p, a, &out, &err), REEL_ENONFINITE);
  assert_string_equal(err.field, "denoise.init");
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&bad);
  reel_tensor_free(&nan_init);
}

static void test_bad_params(void **state) {
  fixture *f = *state;
  reel_denoise_params p = params(f);
  reel_tensor_arena *a = arena_for(f, &p);
  reel_tensor out;
  struct {
    int what;
    const char *field;
  } cases[] = {{0, "denoise.steps"},  {1, "denoise.guidance"}, {2, "denoise.uncond"},
               {3, "denoise.latent"}, {4, "denoise.seeds"},    {5, "denoise.cond"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    p = params(f);
    switch (cases[i].what) {
      case 0:
        p.steps = 0;
        break;
      case 1:
        p.guidance = INFINITY;
        break;
      case 2:
        p.uncond = NULL;
        break;
      case 3:
        p.latent[0] = 4;
        break;
      case 4:
        p.seeds = NULL;
        break;
      default:
        p.samples = 3;
        break;
    }
    reel_error err = {0};
    reel_status st = reel_denoise(f->m, &p, a, &out, &err);
    if (st == REEL_OK || strcmp(err.field, cases[i].field) != 0)
      fail_msg("case %zu: %s \"%s\" (%s)", i, reel_status_name(st), err.field, err.msg);
  }
  /* An arena that is too small fails cleanly. */
  reel_error err = {0};
  reel_tensor_arena *small = reel_tensor_arena_new(f->b, 4096, &err);
  p = params(f);
  assert_int_equal(reel_denoise(f->m, &p, small, &out, &err), REEL_ELIMIT);
  assert_int_equal(reel_tensor_arena_used(small), 0);
  reel_tensor_arena_destroy(&small);
  reel_tensor_arena_destroy(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_model_info, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cfg_loop_from_seeds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cfg_loop_from_latents, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nonfinite, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
