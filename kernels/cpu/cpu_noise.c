/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU Philox noise (reel_op_noise): the stream of reel/philox.h written into a
 * contiguous f32 tensor, chunks of whole Philox blocks handed to the pool. Built
 * with -ffp-contract=off (kernels/CMakeLists.txt) so that the Box–Muller
 * arithmetic rounds exactly as pipeline/src/noise.c and the CUDA kernel do.
 */
#include "cpu_impl.h"
#include "reel/philox.h"

#define BLOCKS_PER_CHUNK 4096

typedef struct noise_ctx {
  uint64_t seed, first, last; /* stream elements [first, last) */
  float *out;                 /* element `first` */
} noise_ctx;

static void noise_chunks(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const noise_ctx *c = vctx;
  const uint64_t j0 = c->first / 4;
  for (int64_t ch = begin; ch < end; ch++) {
    uint64_t jb = j0 + (uint64_t)ch * BLOCKS_PER_CHUNK, je = jb + BLOCKS_PER_CHUNK;
    for (uint64_t j = jb; j < je && 4 * j < c->last; j++) {
      float blk[4];
      reel_philox_normal4(c->seed, j, blk);
      for (uint64_t l = 0; l < 4; l++) {
        uint64_t s = 4 * j + l;
        if (s >= c->first && s < c->last) c->out[s - c->first] = blk[l];
      }
    }
  }
}

reel_status reel__cpu_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err) {
  (void)err;
  noise_ctx c;
  c.seed = seed;
  c.first = offset;
  c.last = offset + (uint64_t)reel_tensor_numel(out);
  c.out = reel__tensor_data(out);
  uint64_t blocks = (c.last + 3) / 4 - c.first / 4;
  int64_t chunks = (int64_t)((blocks + BLOCKS_PER_CHUNK - 1) / BLOCKS_PER_CHUNK);
  reel__pool_run(reel__cpu_of(b)->pool, chunks, 1, noise_chunks, &c);
  return REEL_OK;
}
