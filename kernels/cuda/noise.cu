/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA Philox noise (reel_op_noise): one thread per Philox block of the stream
 * (four normals), evaluated with reel/philox.h's host/device code. This file is
 * compiled with --fmad=false (kernels/cuda/CMakeLists.txt): with the IEEE
 * double division and square root nvcc uses by default, every operation then
 * rounds as on the host (built with -ffp-contract=off), so the floats are
 * bit-identical to reel_noise_fill()'s.
 */
#include "common.cuh"
#include "reel/philox.h"

__global__ void noise_kernel(uint64_t seed, uint64_t first, uint64_t last, float *out) {
  const uint64_t j0 = first / 4, nblocks = (last + 3) / 4 - j0;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nblocks;
       i += (uint64_t)gridDim.x * blockDim.x) {
    const uint64_t j = j0 + i;
    float v[4];
    reel_philox_normal4(seed, j, v);
#pragma unroll
    for (int l = 0; l < 4; l++) {
      uint64_t s = 4 * j + (uint64_t)l;
      if (s >= first && s < last) out[s - first] = v[l];
    }
  }
}

extern "C" reel_status reel__cuda_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out,
                                        reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const uint64_t n = (uint64_t)reel_tensor_numel(out), last = offset + n;
  const uint64_t blocks = (last + 3) / 4 - offset / 4;
  noise_kernel<<<reel__cuda_blocks((int64_t)blocks), 256, 0, reel__cuda_of(b)->stream>>>(
      seed, offset, last, (float *)reel__tensor_data(out));
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-philox");
  return REEL_OK;
}
