/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan transformer forward against diffusers: every transformer fixture (one
 * file, and sharded with an index), batch of two with different timesteps
 * (integer and fractional), f32 weights; the output must be within 1e-4 (max abs)
 * of WanTransformer3DModel's. The bf16 original-key-name checkpoint must load to
 * the same structures and reproduce diffusers' output with those bf16 weights.
 * Also: the arena the forward reports is enough and is all given back, the
 * result does not depend on the thread count, and the forward from the text side
 * prepared once (reel_wan_prepare_text) gives the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/wan.h"
#include "testutil.h"
#include "wan_testutil.h"

typedef struct fwd_case {
  const char *model;     /* fixture folder */
  const char *reference; /* reference file */
  const char *output;    /* tensor to compare with */
  const char *weights;   /* NULL: diffusers layout in <model>/transformer; else a single file (original keys) */
} fwd_case;

/* Runs one forward of the fixture's inputs; returns the max abs error against `output`. */
static double run_forward(const fwd_case *fc, int threads, float **result, size_t *count) {
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(threads, &err);
  assert_non_null(b);
  char dir[1024], path[1024], cfg[1100];
  snprintf(path, sizeof path, "%s/transformer", fc->model);
  wt_fixture(dir, sizeof dir, path);
  reel_wan_transformer *m = NULL;
  reel_status st;
  if (fc->weights) {
    char wp[1100];
    snprintf(path, sizeof path, "%s/%s", fc->model, fc->weights);
    wt_fixture(wp, sizeof wp, path);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    st = reel_wan_transformer_load_file(b, wp, cfg, &m, &err);
  } else {
    st = reel_wan_transformer_load_dir(b, dir, &m, &err);
  }
  if (st != REEL_OK) fail_msg("load %s: %s: %s", fc->model, err.field, err.msg);
  assert_int_equal(reel_wan_transformer_original_keys(m), fc->weights != NULL);

  reel_safetensors *ref = wt_open(fc->reference);
  int64_t ls[5], cs[3];
  int lr, cr;
  size_t nl, no;
  float *lat = wt_read_f32(ref, "hidden_states", &nl, ls, &lr);
  float *ctx = wt_read_f32(ref, "encoder_hidden_states", NULL, cs, &cr);
  float *ts = wt_read_f32(ref, "timestep", NULL, NULL, NULL);
  float *want = wt_read_f32(ref, fc->output, &no, NULL, NULL);
  assert_int_equal(lr, 5);
  assert_int_equal(cr, 3);

  const reel_wan_config *c = reel_wan_transformer_config(m);
  reel_tensor tl = wt_upload(b, 5, ls, lat), tc = wt_upload(b, 3, cs, ctx), to;
  int64_t os[5] = {ls[0], c->out_channels, ls[2], ls[3], ls[4]};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, os, &to, &err), REEL_OK);
  size_t need = 0;
  assert_int_equal(reel_wan_forward_arena_bytes(m, ls[0], ls[2], ls[3], ls[4], cs[1], &need, &err), REEL_OK);
  reel_tensor_arena *arena = reel_tensor_arena_new(b, need, &err);
  assert_non_null(arena);
  st = reel_wan_forward(m, &tl, ts, &tc, arena, &to, &err);
  if (st != REEL_OK) fail_msg("forward: %s: %s", err.field, err.msg);
  assert_int_equal(reel_tensor_arena_used(arena), 0);
  assert_true(reel_tensor_arena_peak(arena) <= need);
  float *got = wt_download(&to);
  assert_int_equal(reel_tensor_numel(&to), (int64_t)no);
  size_t where = 0;
  double e = tu_max_abs_diff(want, got, no, &where);
  printf("%s %s (%d threads): max abs error %.3g at %zu (ref %.6f got %.6f)\n", fc->model, fc->output, threads, e,
         where, want[where], got[where]);

  /* The text side prepared once, then the forward from it: the same bits. */
  size_t text_need = 0;
  assert_int_equal(reel_wan_text_arena_bytes(m, ls[0], cs[1], &text_need, &err), REEL_OK);
  reel_tensor_arena *arena2 = reel_tensor_arena_new(b, text_need + need, &err);
  assert_non_null(arena2);
  reel_tensor text, to2;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 5, os, &to2, &err), REEL_OK);
  st = reel_wan_prepare_text(m, &tc, arena2, &text, &err);
  if (st != REEL_OK) fail_msg("prepare_text: %s: %s", err.field, err.msg);
  assert_int_equal(text.shape[0], reel_wan_transformer_config(m)->layers);
  st = reel_wan_forward_text(m, &tl, ts, &text, arena2, &to2, &err);
  if (st != REEL_OK) fail_msg("forward_text: %s: %s", err.field, err.msg);
  float *got2 = wt_download(&to2);
  assert_memory_equal(got, got2, no * sizeof *got);
  free(got2);
  /* A text tensor of another batch is refused, naming it. */
  reel_tensor bad;
  assert_int_equal(reel_tensor_slice(&text, 2, 0, 1, &bad, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_wan_forward_text(m, &tl, ts, &bad, arena2, &to2, &err), REEL_EINVAL);
  assert_string_equal(err.field, "text");
  reel_tensor_free(&to2);
  reel_tensor_arena_destroy(&arena2);

  reel_tensor_arena_destroy(&arena);
  reel_tensor_free(&tl);
  reel_tensor_free(&tc);
  reel_tensor_free(&to);
  reel_wan_transformer_destroy(&m);
  assert_null(m);
  reel_backend_destroy(&b);
  reel_safetensors_close(&ref);
  free(lat);
  free(ctx);
  free(ts);
  free(want);
  if (result) {
    *result = got;
    *count = no;
  } else {
    free(got);
  }
  return e;
}

static void test_tiny_wan(void **state) {
  (void)state;
  fwd_case fc = {"tiny-wan", "tiny-wan/reference/transformer_forward.safetensors", "output", NULL};
  float *r1, *r2;
  size_t n1, n2;
  assert_true(run_forward(&fc, 1, &r1, &n1) <= 1e-4);
  assert_true(run_forward(&fc, 2, &r2, &n2) <= 1e-4);
  assert_int_equal(n1, n2);
  assert_memory_equal(r1, r2, n1 * sizeof *r1);
  free(r1);
  free(r2);
}

static void test_wan_t2v_b_sharded(void **state) {
  (void)state;
  fwd_case fc = {"wan-t2v-b", "wan-t2v-b/reference/transformer_forward.safetensors", "output", NULL};
  assert_true(run_forward(&fc, 2, NULL, NULL) <= 1e-4);
}

static void test_original_keys_bf16(void **state) {
  (void)state;
  fwd_case fc = {"tiny-wan", "tiny-wan/reference/transformer_forward.safetensors", "output_bf16_weights",
                 "reference/wan_original_bf16.safetensors"};
  assert_true(run_forward(&fc, 2, NULL, NULL) <= 1e-4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tiny_wan),
      cmocka_unit_test(test_wan_t2v_b_sharded),
      cmocka_unit_test(test_original_keys_bf16),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
