/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fused scaled dot-product attention on CUDA, FlashAttention-2 style.
 *
 * The fast path ("mma") runs on the tensor cores with mma.sync m16n8k16 bf16
 * (sm_80, sm_89 and sm_90 alike). bf16 operands whose head width is exactly DP =
 * 64 or 128 and whose rows are 16-byte aligned are read where they are (any
 * b, t, h strides); others are first packed into device scratch as bf16
 * [B, H, T, DP] with the head width zero-padded (one pass over each; any input
 * layout and float dtype). Then a block of 8 warps
 * takes 128 queries of one (batch, head): each warp keeps 16 query rows as A
 * fragments in registers, and the block walks the keys in tiles of 64 copied
 * into shared memory with cp.async (the next K tile loads while this tile's
 * softmax and P·V run). Per tile: S = Q Kᵀ on the tensor cores, scaled into the
 * log2 domain, masked past the last key, online softmax (running row maximum m
 * and denominator l, the output rescaled by 2^(m_old - m_new)), and O += P V with
 * P converted to bf16 straight from the S accumulators (the C fragment of
 * Q Kᵀ is the A fragment of P V). The output is written once, O / l, in the
 * output's dtype and layout. Memory is O(tile), never O(Tq·Tk).
 *
 * Zero padding makes the path exact for any head width up to 128: padded
 * columns add 0 to Q Kᵀ and their output columns are not stored. Rows past the
 * end of q are zero-filled and not stored; keys past the end are masked to -inf
 * and their values zero-filled (so that 0 · garbage never makes a NaN).
 *
 * The fallback ("simt") computes in f32 without tensor cores, one warp per query
 * row, for head widths above 128 and as the exact reference on the device.
 */
#include <math.h>

#include "common.cuh"
#include "mma.cuh"

#define ATT_BM      128 /* queries per block */
#define ATT_BN      64  /* keys per tile */
#define ATT_THREADS 256 /* 8 warps x 16 query rows */
#define ATT_PAD     8   /* bf16 elements of row padding: ldmatrix rows land in distinct banks */

typedef struct attn_params {
  const __nv_bfloat16 *q, *k, *v; /* bf16 [B, T, H, DP] views: packed scratch, or the inputs themselves */
  int64_t qs[3], ks[3], vs[3];    /* strides of b, t, h (elements; multiples of 8) */
  void *out;
  int odt;
  int64_t os0, os1, os2; /* out strides of b, t, h (elements) */
  int64_t H, Tq, Tk, Dv, qtiles;
  float scale_log2; /* scale * log2(e) */
} attn_params;

static size_t attn_smem_bytes(int dp) { return (size_t)(ATT_BM + 2 * ATT_BN) * (size_t)(dp + ATT_PAD) * 2; }

/* Copies rows [row0, row0 + ROWS) of one packed head (T rows of DP) into shared memory, zeros past T. */
template <int DP, int ROWS>
__device__ __forceinline__ void attn_load_tile(__nv_bfloat16 *s, const __nv_bfloat16 *g, int64_t ld, int64_t row0,
                                               int64_t T) {
  constexpr int CPR = DP / 8, LD = DP + ATT_PAD;
  for (int c = threadIdx.x; c < ROWS * CPR; c += ATT_THREADS) {
    const int r = c / CPR, cc = c % CPR;
    const int64_t row = row0 + r;
    const bool ok = row < T;
    reel__cp_async16(s + r * LD + cc * 8, ok ? g + row * ld + cc * 8 : g, ok ? 16 : 0);
  }
}

template <int DP>
__global__ void __launch_bounds__(ATT_THREADS, 1) attn_mma_kernel(attn_params p) {
  extern __shared__ __align__(16) unsigned char attn_smem[];
  constexpr int LD = DP + ATT_PAD, KD = DP / 16, NT = ATT_BN / 8, ND = DP / 8;
  __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(attn_smem);
  __nv_bfloat16 *sK = sQ + ATT_BM * LD;
  __nv_bfloat16 *sV = sK + ATT_BN * LD;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t bh = blockIdx.x / p.qtiles, q0 = (blockIdx.x % p.qtiles) * (int64_t)ATT_BM;
  const int64_t bb = bh / p.H, hh = bh % p.H;
  const __nv_bfloat16 *gq = p.q + bb * p.qs[0] + hh * p.qs[2];
  const __nv_bfloat16 *gk = p.k + bb * p.ks[0] + hh * p.ks[2];
  const __nv_bfloat16 *gv = p.v + bb * p.vs[0] + hh * p.vs[2];
  const int64_t ntiles = (p.Tk + ATT_BN - 1) / ATT_BN;

  attn_load_tile<DP, ATT_BM>(sQ, gq, p.qs[1], q0, p.Tq);
  attn_load_tile<DP, ATT_BN>(sK, gk, p.ks[1], 0, p.Tk);
  reel__cp_async_commit();
  reel__cp_async_wait<0>();
  __syncthreads();

  /* This warp's 16 query rows as A fragments, one per 16 columns of the head. */
  uint32_t qf[KD][4];
#pragma unroll
  for (int kk = 0; kk < KD; kk++)
    reel__ldmatrix_x4(qf[kk], sQ + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);

  float o[ND][4];
#pragma unroll
  for (int i = 0; i < ND; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* rows g and g + 8 */

  for (int64_t j = 0; j < ntiles; j++) {
    attn_load_tile<DP, ATT_BN>(sV, gv, p.vs[1], j * ATT_BN, p.Tk);
    reel__cp_async_commit();
    reel__cp_async_wait<1>(); /* K tile j has landed */
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < KD; kk++)
#pragma unroll
      for (int np = 0; np < NT / 2; np++) {
        uint32_t kb[4];
        reel__ldmatrix_x4(kb, sK + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        reel__mma_bf16(s[2 * np], qf[kk], kb[0], kb[1]);
        reel__mma_bf16(s[2 * np + 1], qf[kk], kb[2], kb[3]);
      }
    __syncthreads(); /* every warp is done with sK */
    if (j + 1 < ntiles) {
      attn_load_tile<DP, ATT_BN>(sK, gk, p.ks[1], (j + 1) * ATT_BN, p.Tk);
      reel__cp_async_commit();
    }

    /* Online softmax in the log2 domain. */
    const int64_t kbase = j * ATT_BN + 2 * (lane & 3);
    const bool tail = (j + 1) * ATT_BN > p.Tk;
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int i = 0; i < NT; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float t = s[i][e] * p.scale_log2;
        if (tail && kbase + i * 8 + (e & 1) >= p.Tk) t = -INFINITY;
        s[i][e] = t;
        if (e < 2)
          mx0 = fmaxf(mx0, t);
        else
          mx1 = fmaxf(mx1, t);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    /* A row that saw only -inf so far keeps a finite reference point (nothing to rescale). */
    const float r0 = mx0 == -INFINITY ? 0.0f : mx0, r1 = mx1 == -INFINITY ? 0.0f : mx1;
    const float a0 = exp2f(m0 - r0), a1 = exp2f(m1 - r1);
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int i = 0; i < NT; i++) {
      s[i][0] = exp2f(s[i][0] - r0);
      s[i][1] = exp2f(s[i][1] - r0);
      s[i][2] = exp2f(s[i][2] - r1);
      s[i][3] = exp2f(s[i][3] - r1);
      sum0 += s[i][0] + s[i][1];
      sum1 += s[i][2] + s[i][3];
    }
    l0 = l0 * a0 + sum0;
    l1 = l1 * a1 + sum1;
    m0 = mx0;
    m1 = mx1;
#pragma unroll
    for (int i = 0; i < ND; i++) {
      o[i][0] *= a0;
      o[i][1] *= a0;
      o[i][2] *= a1;
      o[i][3] *= a1;
    }

    if (j + 1 < ntiles)
      reel__cp_async_wait<1>(); /* V tile j has landed; K tile j + 1 may still fly */
    else
      reel__cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int kp = 0; kp < NT / 2; kp++) {
      const uint32_t pa[4] = {reel__pack_bf16(s[2 * kp][0], s[2 * kp][1]), reel__pack_bf16(s[2 * kp][2], s[2 * kp][3]),
                              reel__pack_bf16(s[2 * kp + 1][0], s[2 * kp + 1][1]),
                              reel__pack_bf16(s[2 * kp + 1][2], s[2 * kp + 1][3])};
#pragma unroll
      for (int dp = 0; dp < DP / 16; dp++) {
        uint32_t vb[4];
        reel__ldmatrix_x4_trans(vb,
                                sV + (kp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
        reel__mma_bf16(o[2 * dp], pa, vb[0], vb[1]);
        reel__mma_bf16(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads(); /* every warp is done with sV before the next tile overwrites it */
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int64_t b = bh / p.H, h = bh % p.H;
  const int64_t row0 = q0 + warp * 16 + (lane >> 2), row1 = row0 + 8;
  const int64_t base = b * p.os0 + h * p.os2;
#pragma unroll
  for (int i = 0; i < ND; i++) {
    const int64_t d = i * 8 + 2 * (lane & 3);
    if (d >= p.Dv) continue;
    const bool two = d + 1 < p.Dv;
    if (row0 < p.Tq) {
      reel__st(p.out, p.odt, base + row0 * p.os1 + d, o[i][0] * inv0);
      if (two) reel__st(p.out, p.odt, base + row0 * p.os1 + d + 1, o[i][1] * inv0);
    }
    if (row1 < p.Tq) {
      reel__st(p.out, p.odt, base + row1 * p.os1 + d, o[i][2] * inv1);
      if (two) reel__st(p.out, p.odt, base + row1 * p.os1 + d + 1, o[i][3] * inv1);
    }
  }
}

/*
 * [B, T, H, D] (any strides, unit along D, any float dtype) -> bf16 [B*H, T, DP], zero-padded.
 * One thread per 16-byte chunk of the output; I is the index type (32-bit when the chunk
 * count allows: 64-bit division costs tens of instructions per chunk).
 */
template <typename I>
__global__ void attn_pack_kernel(const void *src, int dt, int64_t s0, int64_t s1, int64_t s2, I H, I T, int64_t D,
                                 int DP, __nv_bfloat16 *dst, I chunks) {
  const I cpr = (I)(DP / 8);
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < chunks; i += (I)gridDim.x * blockDim.x) {
    const I cc = i % cpr, r = i / cpr, t = r % T, bh = r / T, h = bh % H, b = bh / H;
    const int64_t base = (int64_t)b * s0 + (int64_t)t * s1 + (int64_t)h * s2;
    __align__(16) __nv_bfloat16 v[8];
#pragma unroll
    for (int e = 0; e < 8; e++) {
      const int64_t d = (int64_t)cc * 8 + e;
      v[e] = __float2bfloat16_rn(d < D ? reel__ld(src, dt, base + d) : 0.0f);
    }
    *reinterpret_cast<uint4 *>(dst + (int64_t)r * DP + (int64_t)cc * 8) = *reinterpret_cast<const uint4 *>(v);
  }
}

/* Exact f32 fallback: one warp per (b, t, h) query row; q row and output accumulators in shared memory. */
#define SIMT_WARPS 4
__global__ void attn_simt_kernel(const void *q, int qdt, int64_t qs0, int64_t qs1, int64_t qs2, const void *k, int kdt,
                                 int64_t ks0, int64_t ks1, int64_t ks2, const void *v, int vdt, int64_t vs0,
                                 int64_t vs1, int64_t vs2, void *out, int odt, int64_t os0, int64_t os1, int64_t os2,
                                 int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, int64_t Dv, float scale) {
  extern __shared__ float simt_smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float *qs = simt_smem + warp * (D + Dv), *acc = qs + D;
  const int64_t rows = B * Tq * H;
  for (int64_t row = (int64_t)blockIdx.x * SIMT_WARPS + warp; row < rows; row += (int64_t)gridDim.x * SIMT_WARPS) {
    const int64_t h = row % H, t = (row / H) % Tq, b = row / (H * Tq);
    for (int64_t d = lane; d < D; d += 32) qs[d] = reel__ld(q, qdt, b * qs0 + t * qs1 + h * qs2 + d) * scale;
    for (int64_t d = lane; d < Dv; d += 32) acc[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j < Tk; j++) {
      const int64_t ko = b * ks0 + j * ks1 + h * ks2, vo = b * vs0 + j * vs1 + h * vs2;
      float part = 0.0f;
      for (int64_t d = lane; d < D; d += 32) part += qs[d] * reel__ld(k, kdt, ko + d);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
      const float mn = fmaxf(m, part);
      const float ref = mn == -INFINITY ? 0.0f : mn;
      const float alpha = expf(m - ref), pj = expf(part - ref);
      l = l * alpha + pj;
      for (int64_t d = lane; d < Dv; d += 32) acc[d] = acc[d] * alpha + pj * reel__ld(v, vdt, vo + d);
      m = mn;
    }
    const float inv = 1.0f / l;
    for (int64_t d = lane; d < Dv; d += 32) reel__st(out, odt, b * os0 + t * os1 + h * os2 + d, acc[d] * inv);
    __syncwarp();
  }
}

extern "C" reel_status reel__cuda_attention_init(reel_backend *b, reel_error *err) {
  /* Over 48 KB of dynamic shared memory must be asked for once per kernel. */
  REEL_CUDA_CHECK(
      cudaFuncSetAttribute(attn_mma_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)attn_smem_bytes(64)));
  REEL_CUDA_CHECK(cudaFuncSetAttribute(attn_mma_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)attn_smem_bytes(128)));
  (void)b;
  return REEL_OK;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

static reel_status pack(reel_backend *b, const reel_tensor *t, int dp, __nv_bfloat16 *dst, reel_error *err) {
  const int64_t B = t->shape[0], T = t->shape[1], H = t->shape[2], D = t->shape[3];
  const int64_t chunks = B * H * T * (dp / 8);
  cudaStream_t s = reel__cuda_of(b)->stream;
  if (chunks < ((int64_t)1 << 32) - (int64_t)65535 * 8 * 256)
    attn_pack_kernel<uint32_t><<<reel__cuda_blocks(chunks), 256, 0, s>>>(reel__tensor_data(t), t->dtype, t->stride[0],
                                                                         t->stride[1], t->stride[2], (uint32_t)H,
                                                                         (uint32_t)T, D, dp, dst, (uint32_t)chunks);
  else
    attn_pack_kernel<int64_t><<<reel__cuda_blocks(chunks), 256, 0, s>>>(
        reel__tensor_data(t), t->dtype, t->stride[0], t->stride[1], t->stride[2], H, T, D, dp, dst, chunks);
  REEL_CUDA_CHECK_LAUNCH();
  return REEL_OK;
}

/* Nonzero when t can feed the kernel as it is: bf16, head width exactly dp, 16-byte aligned rows. */
static int direct_ok(const reel_tensor *t, int dp) {
  if (t->dtype != REEL_BF16 || t->shape[3] != dp) return 0;
  if (((uintptr_t)reel__tensor_data(t)) % 16) return 0;
  for (int i = 0; i < 3; i++)
    if (t->shape[i] > 1 && t->stride[i] % 8) return 0;
  return 1;
}

/*
 * Points the kernel at t: in place when direct_ok, else packed into `dst` as
 * [B, H, T, dp] (zero-padded). Writes the pointer and the b, t, h strides.
 */
static reel_status operand(reel_backend *b, const reel_tensor *t, int dp, __nv_bfloat16 *dst, const __nv_bfloat16 **ptr,
                           int64_t strides[3], int *packed, reel_error *err) {
  if (direct_ok(t, dp)) {
    *ptr = (const __nv_bfloat16 *)reel__tensor_data(t);
    for (int i = 0; i < 3; i++) strides[i] = t->stride[i];
    return REEL_OK;
  }
  const int64_t H = t->shape[2], T = t->shape[1];
  *ptr = dst;
  strides[0] = H * T * dp;
  strides[1] = dp;
  strides[2] = T * dp;
  *packed = 1;
  return pack(b, t, dp, dst, err);
}

static reel_status run_mma(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                           float scale, reel_tensor *out, int dp, reel_error *err) {
  const int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], Tk = k->shape[1];
  const size_t qb = direct_ok(q, dp) ? 0 : align256((size_t)(B * H * Tq * dp) * 2),
               kb = direct_ok(k, dp) ? 0 : align256((size_t)(B * H * Tk * dp) * 2),
               vb = direct_ok(v, dp) ? 0 : align256((size_t)(B * H * Tk * dp) * 2);
  char *ws = (char *)reel__cuda_scratch(b, qb + kb + vb + 256, err);
  if (!ws) return err ? err->code : REEL_ENOMEM;
  attn_params p;
  int packed = 0;
  reel_status st = operand(b, q, dp, (__nv_bfloat16 *)ws, &p.q, p.qs, &packed, err);
  if (st == REEL_OK) st = operand(b, k, dp, (__nv_bfloat16 *)(ws + qb), &p.k, p.ks, &packed, err);
  if (st == REEL_OK) st = operand(b, v, dp, (__nv_bfloat16 *)(ws + qb + kb), &p.v, p.vs, &packed, err);
  if (st != REEL_OK) return st;
  p.out = reel__tensor_data(out);
  p.odt = out->dtype;
  p.os0 = out->stride[0];
  p.os1 = out->stride[1];
  p.os2 = out->stride[2];
  p.H = H;
  p.Tq = Tq;
  p.Tk = Tk;
  p.Dv = v->shape[3];
  p.qtiles = (Tq + ATT_BM - 1) / ATT_BM;
  p.scale_log2 = scale * 1.4426950408889634f;
  const int64_t blocks = B * H * p.qtiles;
  if (blocks > 0x7fffffff) return reel_error_set(err, REEL_ERANGE, "attention", "too many query tiles");
  cudaStream_t s = reel__cuda_of(b)->stream;
  if (dp == 64)
    attn_mma_kernel<64><<<(unsigned)blocks, ATT_THREADS, attn_smem_bytes(64), s>>>(p);
  else
    attn_mma_kernel<128><<<(unsigned)blocks, ATT_THREADS, attn_smem_bytes(128), s>>>(p);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, dp == 64 ? (packed ? "cuda-attn-mma-bf16-d64-packed" : "cuda-attn-mma-bf16-d64")
                                     : (packed ? "cuda-attn-mma-bf16-d128-packed" : "cuda-attn-mma-bf16-d128"));
  return REEL_OK;
}

static reel_status run_simt(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                            float scale, reel_tensor *out, reel_error *err) {
  const int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], Tk = k->shape[1];
  const int64_t D = q->shape[3], Dv = v->shape[3];
  const size_t smem = (size_t)SIMT_WARPS * (size_t)(D + Dv) * sizeof(float);
  if (smem > 48 * 1024)
    return reel_error_set(err, REEL_EUNSUPPORTED, "attention.q",
                          "head widths D + Dv = %lld exceed the CUDA fallback's limit of 3072", (long long)(D + Dv));
  const int64_t rows = B * Tq * H;
  int64_t blocks = (rows + SIMT_WARPS - 1) / SIMT_WARPS;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  attn_simt_kernel<<<(unsigned)blocks, SIMT_WARPS * 32, smem, reel__cuda_of(b)->stream>>>(
      reel__tensor_data(q), q->dtype, q->stride[0], q->stride[1], q->stride[2], reel__tensor_data(k), k->dtype,
      k->stride[0], k->stride[1], k->stride[2], reel__tensor_data(v), v->dtype, v->stride[0], v->stride[1],
      v->stride[2], reel__tensor_data(out), out->dtype, out->stride[0], out->stride[1], out->stride[2], B, H, Tq, Tk, D,
      Dv, scale);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-attn-simt-f32");
  return REEL_OK;
}

extern "C" reel_status reel__cuda_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k,
                                            const reel_tensor *v, float scale, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const reel__cuda_attn_path path = reel__cuda_of(b)->attn_path;
  const int64_t dm = q->shape[3] > v->shape[3] ? q->shape[3] : v->shape[3];
  if (path == REEL__CUDA_ATTN_SIMT || (path == REEL__CUDA_ATTN_AUTO && dm > 128))
    return run_simt(b, q, k, v, scale, out, err);
  if (dm > 128)
    return reel_error_set(err, REEL_EUNSUPPORTED, "attention.q",
                          "the tensor-core kernel takes head widths up to 128, got %lld (use attention=auto)",
                          (long long)dm);
  return run_mma(b, q, k, v, scale, out, dm <= 64 ? 64 : 128, err);
}
