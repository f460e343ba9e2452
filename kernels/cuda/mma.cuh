/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor-core building blocks shared by the fused attention and the implicit-GEMM
 * convolution (sm_80 and later): 16-byte asynchronous copies global -> shared
 * (cp.async, zero-filling rows past the end), ldmatrix loads of 8x8 bf16 tiles
 * (plain and transposed), and the warp-wide mma.sync m16n8k16 bf16 product with
 * f32 accumulators.
 *
 * Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
 * g = lane / 4 and t = lane % 4:
 *   A (16 x 16, row-major) a[0]: row g, k 2t..2t+1; a[1]: row g+8, same k;
 *                          a[2]: row g, k 2t+8..2t+9; a[3]: row g+8, same k
 *   B (16 x 8, "col")      b[0]: k 2t..2t+1, col g;  b[1]: k 2t+8..2t+9, col g
 *   C (16 x 8, f32)        c[0], c[1]: row g, cols 2t, 2t+1; c[2], c[3]: row g+8
 * Each register holds two bf16, the lower index in the low half.
 */
#ifndef REEL_CUDA_MMA_CUH
#define REEL_CUDA_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t reel__smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* Copies 16 bytes global -> shared; src_bytes 0 writes zeros and reads nothing. */
__device__ __forceinline__ void reel__cp_async16(void *smem, const void *gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(reel__smem_addr(smem)), "l"(gmem),
               "r"(src_bytes));
}

__device__ __forceinline__ void reel__cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }

/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N>
__device__ __forceinline__ void reel__cp_async_wait(void) {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i. */
__device__ __forceinline__ void reel__ldmatrix_x4(uint32_t r[4], const void *smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(reel__smem_addr(smem)));
}

/* The same, each matrix transposed on the way (for B operands stored k-major). */
__device__ __forceinline__ void reel__ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(reel__smem_addr(smem)));
}

/* c (16x8 f32) += a (16x16 bf16) * b (16x8 bf16). */
__device__ __forceinline__ void reel__mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as one register of two bf16 (lo in the low half), rounded to nearest even. */
__device__ __forceinline__ uint32_t reel__pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

#endif
