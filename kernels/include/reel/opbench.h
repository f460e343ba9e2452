/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Op micro-benchmarks on any backend: one op at one shape, timed over several
 * calls, with the code path that ran. `reel bench ops` and the stand-alone
 * reel_bench_matmul both measure through these functions, so the two never
 * disagree on what a figure means.
 *
 * Each function allocates its operands on the backend, fills them with a fixed
 * pseudo-random pattern (same values every run), makes one untimed call (scratch,
 * page faults, caches), then times `reps` calls, each followed by
 * reel_backend_synchronize() so that a device backend's queued work is counted.
 * The path is reel_backend_last_path() after the timed calls, so the caller
 * chooses a path first (reel_backend_set_option "matmul" / "attention") and
 * reads here which one actually ran. Benchmarks, not tests: nothing here is
 * meant to be asserted except the structure of the result.
 */
#ifndef REEL_OPBENCH_H
#define REEL_OPBENCH_H

#include <stdint.h>

#include "reel/backend.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_OPBENCH_MAX_REPS 64

typedef struct reel_opbench_result {
  double flop;           /* floating-point operations of one call (a multiply-add counts 2) */
  double seconds_median; /* median seconds of one call over the timed calls */
  double seconds_min;    /* fastest call */
  double gflops;         /* flop / seconds_median / 1e9 */
  int reps;              /* timed calls */
  char path[48];         /* reel_backend_last_path() after the timed calls */
} reel_opbench_result;

/*
 * out[M, N] = x[M, K] · w[N, K]ᵀ (reel_op_matmul, f32 activations) with weights
 * of dtype `wdt` (f32, f16 or bf16). reps in 1..REEL_OPBENCH_MAX_REPS and
 * sizes >= 1 (REEL_ERANGE naming "reps" / "shape" otherwise); REEL_ENOMEM,
 * or the op's own error (e.g. REEL_EUNSUPPORTED for a dtype the backend lacks).
 */
reel_status reel_opbench_matmul(reel_backend *b, int64_t M, int64_t K, int64_t N, reel_dtype wdt, int reps,
                                reel_opbench_result *out /* OUT: */, reel_error *err);

/*
 * Self-attention without mask (reel_op_attention): q, k, v, out
 * [batch, tokens, heads, head_dim] of dtype `dt` (f32; CUDA also bf16), scale
 * 1/sqrt(head_dim). flop = 4 · batch · heads · tokens² · head_dim. Errors as
 * reel_opbench_matmul.
 */
reel_status reel_opbench_attention(reel_backend *b, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                                   reel_dtype dt, int reps, reel_opbench_result *out /* OUT: */, reel_error *err);

/*
 * A causal video-VAE convolution (reel_op_conv3d): x [frames, H, W, cin] f32,
 * weight [cout, k, k, k, cin] of dtype `wdt`, stride 1, spatial padding k/2 on
 * each side, no upsampling: out [frames - k + 1, H, W, cout]. frames >= k.
 * flop = 2 · To · H · W · cout · cin · k³. Errors as reel_opbench_matmul.
 */
reel_status reel_opbench_conv3d(reel_backend *b, int64_t frames, int64_t H, int64_t W, int64_t cin, int64_t cout, int k,
                                reel_dtype wdt, int reps, reel_opbench_result *out /* OUT: */, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
