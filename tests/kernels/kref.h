/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helpers for kernels/: deterministic random data, tensors made from host
 * f32 arrays in any float dtype, downloads back to f32, gathering a strided
 * view's logical elements, and naive double-precision reference ops that every
 * backend's ops are checked against.
 */
#ifndef REEL_TEST_KREF_H
#define REEL_TEST_KREF_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"

/* Fills x with uniform values in [lo, hi) from a fixed generator seeded by seed. */
void kr_fill(float *x, size_t n, uint32_t seed, float lo, float hi);
/* Rounds x in place to what dtype dt can hold (so references see the same inputs). */
void kr_round(float *x, size_t n, reel_dtype dt);
/* Makes a contiguous tensor on b of dtype dt holding data (rounded in place to dt). Fails the test on error. */
reel_tensor kr_tensor(reel_backend *b, reel_dtype dt, int ndim, const int64_t *shape, float *data);
/* Downloads any float tensor (any layout) as a malloc'd logical row-major f32 array. */
float *kr_download(reel_backend *b, const reel_tensor *t);
/* Logical row-major elements of a view over a contiguous host array `base` (f32, element [0] = buffer byte 0). */
void kr_gather(const reel_tensor *view, const float *base, float *out);
/* Normalised mean squared error: sum (a-b)^2 / max(sum a^2, 1e-30). */
double kr_nmse(const float *ref, const float *got, size_t n);
/* Max |ref - got| / (atol + rtol |ref|) over the arrays; <= 1 means within tolerance. */
double kr_rel_err(const float *ref, const float *got, size_t n, double atol, double rtol, size_t *where);

/* References (row-major, double accumulation, f32 results). */
void ref_matmul(int64_t M, int64_t N, int64_t K, const float *a, const float *w /* [N,K] */, const float *bias,
                float alpha, float *out);
/* Bound per output of |matmul error| in f32: eps * sum_k |a||w| * K-ish factor; writes sum_k |a_mk w_nk| into mag. */
void ref_matmul_mag(int64_t M, int64_t N, int64_t K, const float *a, const float *w, float *mag);
void ref_softmax(int64_t rows, int64_t D, const float *x, float *out);
void ref_layer_norm(int64_t rows, int64_t D, const float *x, const float *w, const float *b, float eps, float *out);
void ref_rms_norm(int64_t rows, int64_t D, const float *x, const float *w, float eps, float *out);
float ref_silu(float x);
float ref_gelu_tanh(float x);
/* Broadcasting binary op (0 add, 1 mul) over logical arrays with shapes right-aligned to out. */
void ref_binary(int op, int out_ndim, const int64_t *out_shape, int xn, const int64_t *xs, const float *x, int yn,
                const int64_t *ys, const float *y, float *out);

#endif
