/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan transformer loading options and activation dtypes, on the CPU: the
 * upload path of device backends (the CPU with wrap_host=off) gives the same
 * forward as the mapped file; weights_bf16 leaves the CPU's mapped weights
 * alone but converts the matrices on the upload path (the forward then matches
 * diffusers' within bf16 rounding); bf16 activations are refused where the
 * backend's matmul takes only f32 inputs, and unknown dtypes are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/wan.h"
#include "testutil.h"
#include "wan_testutil.h"

/* Forward of tiny-wan's reference inputs; returns a malloc'd output. */
static float *forward(int wrap_host, int weights_bf16, size_t *count, int64_t *params) {
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  assert_non_null(b);
  if (!wrap_host) assert_int_equal(reel_backend_set_option(b, "wrap_host", "off", &err), REEL_OK);
  char dir[1024];
  wt_fixture(dir, sizeof dir, "tiny-wan/transformer");
  reel_wan_load_opts opts = {weights_bf16};
  reel_wan_transformer *m = NULL;
  if (reel_wan_transformer_load_dir_opts(b, dir, &opts, &m, &err) != REEL_OK)
    fail_msg("load: %s: %s", err.field, err.msg);
  *params = reel_wan_transformer_params(m);
  reel_safetensors *ref = wt_open("tiny-wan/reference/transformer_forward.safetensors");
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
  if (reel_wan_forward(m, &tl, ts, &tc, arena, &to, &err) != REEL_OK) fail_msg("forward: %s: %s", err.field, err.msg);
  float *got = wt_download(&to);
  *count = (size_t)reel_tensor_numel(&to);
  reel_tensor_arena_destroy(&arena);
  reel_tensor_free(&tl);
  reel_tensor_free(&tc);
  reel_tensor_free(&to);
  reel_wan_transformer_destroy(&m);
  reel_backend_destroy(&b);
  reel_safetensors_close(&ref);
  free(lat);
  free(ctx);
  free(ts);
  return got;
}

static void test_upload_paths(void **state) {
  (void)state;
  size_t n0, n1, n2, n3;
  int64_t p0, p1, p2, p3;
  float *mapped = forward(1, 0, &n0, &p0);
  float *uploaded = forward(0, 0, &n1, &p1);
  float *mapped_opt = forward(1, 1, &n2, &p2);
  float *converted = forward(0, 1, &n3, &p3);
  assert_int_equal(n0, n1);
  assert_int_equal(n0, n2);
  assert_int_equal(n0, n3);
  assert_int_equal(p0, p1);
  assert_int_equal(p0, p3);
  /* Same weights, same bits: uploading whole shards, or asking for bf16 where the file is mapped. */
  assert_memory_equal(mapped, uploaded, n0 * sizeof(float));
  assert_memory_equal(mapped, mapped_opt, n0 * sizeof(float));
  /* Converted matrices: a different result, but diffusers' within bf16 rounding of the weights. */
  reel_safetensors *ref = wt_open("tiny-wan/reference/transformer_forward.safetensors");
  size_t nr;
  float *want = wt_read_f32(ref, "output", &nr, NULL, NULL);
  assert_int_equal(nr, n0);
  double d = tu_max_abs_diff(mapped, converted, n0, NULL), e = tu_max_abs_diff(want, converted, n0, NULL);
  printf("bf16 matrices: max abs change %.3g, error against diffusers (f32 weights) %.3g\n", d, e);
  assert_true(d > 0.0);
  assert_true(e <= 5e-2);
  free(want);
  reel_safetensors_close(&ref);
  free(mapped);
  free(uploaded);
  free(mapped_opt);
  free(converted);
}

static void test_activation_dtypes(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(1, &err);
  char dir[1024];
  wt_fixture(dir, sizeof dir, "tiny-wan/transformer");
  reel_wan_transformer *m = NULL;
  assert_int_equal(reel_wan_transformer_load_dir(b, dir, &m, &err), REEL_OK);
  assert_int_equal(reel_wan_transformer_activations(m), REEL_F32);
  size_t f32_bytes = 0;
  assert_int_equal(reel_wan_forward_arena_bytes(m, 2, 3, 6, 10, 7, &f32_bytes, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_wan_transformer_set_activations(m, REEL_BF16, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "activations");
  reel_error_clear(&err);
  assert_int_equal(reel_wan_transformer_set_activations(m, REEL_F16, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "activations");
  assert_int_equal(reel_wan_transformer_set_activations(m, REEL_F32, &err), REEL_OK);
  size_t again = 0;
  assert_int_equal(reel_wan_forward_arena_bytes(m, 2, 3, 6, 10, 7, &again, &err), REEL_OK);
  assert_int_equal(again, f32_bytes);
  reel_error_clear(&err);
  assert_int_equal(reel_wan_transformer_set_activations(NULL, REEL_F32, &err), REEL_EINVAL);
  reel_wan_transformer_destroy(&m);
  /* Option values of the CPU backend. */
  reel_error_clear(&err);
  assert_int_equal(reel_backend_set_option(b, "wrap_host", "maybe", &err), REEL_EINVAL);
  assert_string_equal(err.field, "wrap_host");
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upload_paths),
      cmocka_unit_test(test_activation_dtypes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
