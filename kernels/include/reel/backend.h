/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compute backend interface: buffers on a device and the ops that run on them.
 *
 * A reel_backend is an opaque handle behind a table of function pointers (the
 * ggml-backend pattern); `kernels/cpu` is always built, `kernels/cuda` when CMake
 * found CUDA. Model code allocates buffers, moves bytes in and out, and calls ops
 * only through the functions below, so the same model code runs on every backend
 * and never sees a device pointer.
 *
 * Lifetimes and threads. A backend owns its thread pool (CPU) or stream and
 * handles (CUDA) and a scratch workspace that ops use internally; it grows to the
 * largest request and is kept. Buffers belong to the backend that made them and
 * must be destroyed before it. A backend is used by one thread at a time (give
 * each worker thread its own). Ops on the CPU are synchronous; on CUDA they are
 * queued on the backend's stream, and reel_backend_synchronize() waits for them.
 * Downloads wait for earlier ops; uploads return once the host memory may be reused.
 *
 * Validation. Every op checks its operands before running: buffer on this
 * backend, view inside its buffer, shapes and dtypes. Failures return
 * REEL_EINVAL (shapes), REEL_EUNSUPPORTED (a dtype or combination this backend
 * does not implement) or REEL_ERANGE, and fill `err` with the operand as field
 * ("matmul.weight") and the shapes involved. An output may be the very same view
 * as an input (in place) for elementwise, norm, softmax and copy ops; partially
 * overlapping views give unspecified results. Matmul outputs must not overlap inputs.
 *
 * Adding an op (rotary embedding, modulation, attention, conv3d, upsample, Philox
 * noise...): declare reel_op_<name>() here, add a field to reel_backend_ops in
 * kernels/src/backend_impl.h, validate in kernels/src/ops.c, implement it in
 * kernels/cpu (the reference every other backend is tested against) and in
 * kernels/cuda. A backend that leaves the field NULL reports REEL_EUNSUPPORTED.
 */
#ifndef REEL_BACKEND_H
#define REEL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"
#include "reel/jobspec.h" /* reel_backend_kind */
#include "reel/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_backend reel_backend;

/*
 * A backend's kind is reel_backend_kind from reel/jobspec.h (REEL_BACKEND_CPU or
 * REEL_BACKEND_CUDA; never REEL_BACKEND_AUTO): one enum for the job spec's choice
 * and the backend that runs it, so that model code can include both headers.
 */

/*
 * CPU backend with `threads` worker threads including the caller (0 = the CPUs
 * this process may run on; at most 1024). Returns NULL on failure with err->code set
 * (REEL_ERANGE for a bad thread count, REEL_ENOMEM).
 */
reel_backend *reel_backend_new_cpu(int threads, reel_error *err);

/*
 * CUDA backend on device `device` (0-based). Returns NULL with err->code set:
 * REEL_ENODEVICE when reel was built without CUDA, no driver/GPU is present or
 * the device index is out of range (err says which); REEL_EDEVICE on a CUDA error.
 */
reel_backend *reel_backend_new_cuda(int device, reel_error *err);

/* Nonzero when this build contains the CUDA backend (a device may still be absent). */
int reel_backend_cuda_built(void);

/* Destroys the backend and nulls *b; accepts NULL and NULL *b. All its buffers must be gone. */
void reel_backend_destroy(reel_backend **b);

/* "cpu" or "cuda:0". Never NULL. */
const char *reel_backend_name(const reel_backend *b);
reel_backend_kind reel_backend_get_kind(const reel_backend *b);
/* CPU: worker threads; CUDA: 1. */
int reel_backend_threads(const reel_backend *b);

/*
 * Sets a backend option by name. CPU: "matmul" = "auto" | "avx512" | "avx2" |
 * "openblas" | "portable" chooses the GEMM path (auto picks the fastest present:
 * avx512 > avx2 > openblas > portable); asking for a path this machine or build
 * lacks gives REEL_EUNSUPPORTED; "activations" = "auto" | "avx512" | "avx2" |
 * "portable" chooses the SiLU / GELU-tanh kernels likewise (the vector ones use a
 * polynomial exp within 1 ulp of libm's expf, the portable one expf itself; all agree
 * within a few ulp); "wrap_host" = "on" (default) | "off" (refuse
 * reel_buffer_wrap_host() like a device backend, so that loaders upload: for
 * tests of the device loading paths). CUDA: "attention" = "auto" | "mma" | "simt" (the
 * bf16 tensor-core kernel for head widths up to 128, or the exact-f32 fallback;
 * auto takes the tensor cores where they apply). Unknown keys give REEL_ENOTFOUND.
 */
reel_status reel_backend_set_option(reel_backend *b, const char *key, const char *value, reel_error *err);

/*
 * The implementation the most recent op with several paths ran on, for benchmarks
 * and logs: e.g. "cpu-avx512-12x32", "openblas", "cublaslt-bf16". "" before any.
 * Valid until the next op on b.
 */
const char *reel_backend_last_path(const reel_backend *b);

/* Bytes of op scratch the backend currently holds (its high-water mark). */
size_t reel_backend_scratch_bytes(const reel_backend *b);

/*
 * Memory the backend holds for reel: *live = bytes of its allocated buffers (not
 * wrapped host memory) plus op scratch now; *peak = the most of that seen so far,
 * sampled whenever a buffer is allocated or freed and at this call. Either
 * pointer may be NULL. Excludes what the device runtime keeps for itself (a CUDA
 * context's few hundred MB).
 */
void reel_backend_memory(reel_backend *b, size_t *live, size_t *peak);

/*
 * For sharing a CUDA backend's device with another CUDA user (FFmpeg's NVENC
 * encoder): its device index and the stream its ops are queued on (a
 * cudaStream_t, as an opaque pointer; the backend keeps owning it). Either
 * out-parameter may be NULL. REEL_EUNSUPPORTED for other backends.
 */
reel_status reel_backend_cuda_info(const reel_backend *b, int *device /* OUT: */, void **stream /* OUT: */,
                                   reel_error *err);

/* Waits until every queued op and copy has finished. CPU: returns at once. */
reel_status reel_backend_synchronize(reel_backend *b, reel_error *err);

/* ---- Buffers ---------------------------------------------------------------------------- */

/*
 * Allocates `size` bytes (0 allowed) on the backend, 64-byte aligned, contents
 * undefined. REEL_ENOMEM / REEL_EDEVICE on failure; *out is NULL then.
 */
reel_status reel_buffer_new(reel_backend *b, size_t size, reel_buffer **out /* OUT: */, reel_error *err);

/*
 * Wraps caller-owned host memory (e.g. an mmap'd safetensors file) as a buffer
 * without copying, on backends that can address host memory (CPU). With
 * `read_only` set, ops refuse to write into it. The memory must outlive the
 * buffer; destroying the buffer does not free it. Other backends:
 * REEL_EUNSUPPORTED (allocate and upload instead).
 */
reel_status reel_buffer_wrap_host(reel_backend *b, void *host, size_t size, int read_only,
                                  reel_buffer **out /* OUT: */, reel_error *err);

/*
 * Wraps device memory the caller owns as a buffer of a device backend, without
 * copying: e.g. a frame of FFmpeg's CUDA frame pool that an op should write into
 * (the encoder's NVENC path). `device_ptr` is an address on the backend's device
 * (a CUdeviceptr / cudaMalloc'd pointer as void *); the memory must outlive the
 * buffer and is not freed by it. Host-memory backends (CPU): REEL_EUNSUPPORTED.
 */
reel_status reel_buffer_wrap_device(reel_backend *b, void *device_ptr, size_t size, reel_buffer **out /* OUT: */,
                                    reel_error *err);

/* Frees the buffer (not wrapped host memory) and nulls *buf; accepts NULL and NULL *buf. */
void reel_buffer_destroy(reel_buffer **buf);

size_t reel_buffer_size(const reel_buffer *buf);
reel_backend *reel_buffer_backend(const reel_buffer *buf);
/* The host address of the data for host-memory buffers (CPU backend), NULL otherwise. */
void *reel_buffer_host_ptr(const reel_buffer *buf);

/* Copies n bytes from host memory into the buffer at `offset`. REEL_ERANGE when out of bounds. */
reel_status reel_buffer_upload(reel_buffer *dst, size_t offset, const void *src, size_t n, reel_error *err);
/* Copies n bytes from the buffer at `offset` into host memory, after earlier ops finished. */
reel_status reel_buffer_download(const reel_buffer *src, size_t offset, void *dst, size_t n, reel_error *err);
/* Copies n bytes between two buffers of the same backend (ranges may overlap). */
reel_status reel_buffer_copy(reel_buffer *dst, size_t dst_offset, const reel_buffer *src, size_t src_offset,
                             size_t n, reel_error *err);
/* Sets n bytes to `value` (0..255). */
reel_status reel_buffer_memset(reel_buffer *dst, size_t offset, int value, size_t n, reel_error *err);

/* ---- Tensors with their own buffer, and host transfers ------------------------------------ */

/*
 * Allocates a contiguous tensor with a buffer of its own. Free it with
 * reel_tensor_free(). On failure *out is zeroed.
 */
reel_status reel_tensor_new(reel_backend *b, reel_dtype dt, int ndim, const int64_t *shape, reel_tensor *out /* OUT: */,
                            reel_error *err);
/* Destroys t->buf and zeroes *t; accepts NULL. Only for tensors made by reel_tensor_new (not views or arena tensors). */
void reel_tensor_free(reel_tensor *t);

/* Checks that t's view lies inside its buffer (REEL_ERANGE naming `field` otherwise). */
reel_status reel_tensor_check_fits(const reel_tensor *t, const char *field, reel_error *err);

/*
 * Copies host data into a contiguous tensor / out of one. `nbytes` must equal
 * reel_tensor_nbytes(t) (the host data has t's dtype and row-major layout).
 */
reel_status reel_tensor_upload(const reel_tensor *t, const void *host, size_t nbytes, reel_error *err);
reel_status reel_tensor_download(const reel_tensor *t, void *host, size_t nbytes, reel_error *err);

/*
 * A bump arena over one backend buffer, for per-job activations and scratch
 * tensors: allocation is O(1) and never talks to the device; reset between jobs.
 * Tensors from it are contiguous and 64-byte aligned, and are invalid after a
 * reset / release past them or after the arena is destroyed.
 */
typedef struct reel_tensor_arena reel_tensor_arena;

/* Reserves `capacity` bytes on b. NULL on failure (err set). */
reel_tensor_arena *reel_tensor_arena_new(reel_backend *b, size_t capacity, reel_error *err);
/* Frees the buffer; accepts NULL and NULL *a. */
void reel_tensor_arena_destroy(reel_tensor_arena **a);
/* REEL_ELIMIT (naming the capacity and the request) when it does not fit. */
reel_status reel_tensor_arena_alloc(reel_tensor_arena *a, reel_dtype dt, int ndim, const int64_t *shape,
                                    reel_tensor *out /* OUT: */, reel_error *err);
/* Bytes in use; a mark to release back to; the high-water mark; the capacity. */
size_t reel_tensor_arena_used(const reel_tensor_arena *a);
void reel_tensor_arena_release(reel_tensor_arena *a, size_t mark);
void reel_tensor_arena_reset(reel_tensor_arena *a);
size_t reel_tensor_arena_peak(const reel_tensor_arena *a);
size_t reel_tensor_arena_capacity(const reel_tensor_arena *a);

/* ---- Ops ---------------------------------------------------------------------------------
 * Shapes in comments are PyTorch-ordered. Unless said otherwise every operand may
 * be any strided view (permuted, sliced) and float ops accept F32, F16 and BF16
 * for inputs and outputs, computing in f32. */

/*
 * Linear layer, torch.nn.Linear semantics: out = x · weightᵀ + bias.
 *   x      [..., K]  f32 (CUDA also bf16/f16)
 *   weight [N, K]    f32, f16 or bf16 (unit stride along K)
 *   bias   [N]       or NULL; f32, f16 or bf16
 *   out    [..., N]  f32 (CUDA also bf16 when x is bf16)
 * x and out: rows must have unit stride along the last dim and the leading dims
 * must flatten to one row stride (any contiguous tensor, or a slice of rows).
 * Accumulates in f32.
 */
reel_status reel_op_matmul(reel_backend *b, const reel_tensor *x, const reel_tensor *weight, const reel_tensor *bias,
                           reel_tensor *out, reel_error *err);

/*
 * Batched matrix product: out[i] = alpha · a[i] · op(bm[i]) for every batch index i.
 *   a   [..., M, K]                       f32
 *   bm  [..., N, K] when trans_b, else [..., K, N]   f32, f16 or bf16
 *   out [..., M, N]                       f32
 * Up to 4 batch dims; bm's batch dims must equal out's or be 1 (broadcast).
 * Each matrix must have unit stride along its last dim; the batch dims may have
 * any strides, so permuted views like q [B,T,H,D] -> [B,H,T,D] work without a copy.
 * For attention: scores = matmul_batched(q, k, trans_b=1, 1/sqrt(D));
 * o = matmul_batched(p, v, trans_b=0, 1).
 */
reel_status reel_op_matmul_batched(reel_backend *b, const reel_tensor *a, const reel_tensor *bm, int trans_b,
                                   float alpha, reel_tensor *out, reel_error *err);

/*
 * Elementwise out = x + y / out = x * y with NumPy broadcasting (shapes aligned
 * at the last dim; each input dim is 1 or equal to out's). out's shape must be
 * the broadcast shape.
 */
reel_status reel_op_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, reel_tensor *out, reel_error *err);
reel_status reel_op_mul(reel_backend *b, const reel_tensor *x, const reel_tensor *y, reel_tensor *out, reel_error *err);

/* out = x * sigmoid(x); same shapes. */
reel_status reel_op_silu(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);
/* out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (torch's approximate="tanh"); same shapes. */
reel_status reel_op_gelu_tanh(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);

/* Softmax over the last dimension; same shapes. */
reel_status reel_op_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);

/*
 * Layer norm over the last dim D (biased variance, as torch):
 * out = (x - mean) / sqrt(var + eps) * weight + bias. weight and bias are [D] or
 * NULL (each optional on its own). eps must be finite and >= 0.
 */
reel_status reel_op_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *weight,
                               const reel_tensor *bias, float eps, reel_tensor *out, reel_error *err);

/* RMS norm over the last dim D: out = x / sqrt(mean(x^2) + eps) * weight; weight [D] or NULL. */
reel_status reel_op_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *weight, float eps,
                             reel_tensor *out, reel_error *err);

/*
 * dst = src elementwise, same shape, any layouts and any two float dtypes
 * (the conversion rounds to nearest even). Makes a permuted view contiguous, or
 * casts f32 <-> bf16.
 */
reel_status reel_op_copy(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err);

/* ---- Ops of the diffusion transformers (issue 4) ------------------------------------------ */

/*
 * Rotary position embedding on interleaved pairs, as diffusers applies it for Wan
 * (and Flux): for each pair i of the last dim, with c = cos[t, i], s = sin[t, i],
 *   out[..., 2i] = x[..., 2i] c - x[..., 2i+1] s,  out[..., 2i+1] = x[..., 2i] s + x[..., 2i+1] c.
 *   x, out    [B, T, H, D]  D even; any strides with unit stride along D
 *   cos, sin  [T, D/2]      f32, contiguous (one row of angles per token)
 * out may be x (in place).
 */
reel_status reel_op_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                         reel_tensor *out, reel_error *err);

/*
 * Scaled dot-product attention without mask, fused: for every batch b and head h,
 * out[b, :, h] = softmax(scale · q[b, :, h] · k[b, :, h]ᵀ) · v[b, :, h].
 *   q   [B, Tq, H, D]
 *   k   [B, Tk, H, D]
 *   v   [B, Tk, H, Dv]
 *   out [B, Tq, H, Dv]
 * [B, T, H, D] is the layout of a Linear output split into heads; any strides with
 * unit stride along the last dim. The softmax is computed online over key tiles,
 * so scratch memory is independent of Tq·Tk. out must not overlap the inputs.
 * scale must be finite (usually 1/sqrt(D)).
 */
reel_status reel_op_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                              float scale, reel_tensor *out, reel_error *err);

/*
 * Adaptive-norm modulation: out = x * (1 + scale) + shift, with shift and scale
 * broadcast against x (NumPy rules, e.g. [B, 1, D] against [B, T, D]); out has x's shape.
 */
reel_status reel_op_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                             const reel_tensor *scale, reel_tensor *out, reel_error *err);

/*
 * Gated residual: out = x + y * gate; y has x's shape, gate broadcasts against it;
 * out has x's shape and may be x.
 */
reel_status reel_op_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                              reel_tensor *out, reel_error *err);

#define REEL_LINCOMB_MAX 8
/*
 * Linear combination out = sum_k coef[k] * x[k] for 1 <= n <= REEL_LINCOMB_MAX
 * contiguous f32 tensors with the same number of elements (the sampler updates);
 * accumulated in double, rounded once. out may be any of the x[k].
 */
reel_status reel_op_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x,
                            reel_tensor *out, reel_error *err);


/* ---- Ops of the video VAE (issue 5) -------------------------------------------------------- */

/*
 * Parameters of reel_op_conv3d. Spatial padding is zeros and may be asymmetric (the Wan
 * VAE's downsampling pads only right and bottom); there is no temporal padding: a causal
 * convolution's caller passes the previous frames (or zero frames) in front of the new
 * ones. `upsample` 2 first repeats every input pixel 2 x 2 (nearest; for a factor of
 * exactly 2, "nearest-exact" is the same), fused into the convolution.
 */
typedef struct reel_conv3d_params {
  int stride[3];  /* t, h, w: >= 1 */
  int pad_h[2];   /* top, bottom: >= 0 */
  int pad_w[2];   /* left, right: >= 0 */
  int upsample;   /* 1 or 2 (spatial, before padding) */
} reel_conv3d_params;

/*
 * 3-D convolution in frame-major, channels-last layout (the layout the VAE keeps its
 * activations in, so that norms over channels, 1x1 convolutions and attention need no
 * transposes):
 *   x      [T, H, W, Cin]        f32; any stride along T, the rest contiguous
 *   weight [Cout, kt, kh, kw, Cin] f32, f16 or bf16, contiguous (PyTorch's
 *                                [Cout, Cin, kt, kh, kw] permuted once at load time)
 *   bias   [Cout] or NULL
 *   out    [To, Ho, Wo, Cout]    f32; any stride along T, the rest contiguous
 * with H' = upsample·H, To = (T - kt)/st + 1, Ho = (H' + pad_h[0] + pad_h[1] - kh)/sh + 1
 * (likewise Wo), and out[t,y,x,o] = bias[o] + sum w[o,dt,dy,dx,c] · xu[t·st+dt, y·sh+dy-pad_h[0],
 * x·sw+dx-pad_w[0], c] (xu: the upsampled input, zero outside). The CPU computes it as
 * im2col + GEMM over tiles of output rows, so scratch is bounded (a few MiB) whatever the
 * frame size. out must not overlap x.
 */
reel_status reel_op_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *weight, const reel_tensor *bias,
                           const reel_conv3d_params *p, reel_tensor *out, reel_error *err);

/* out = min(max(x, lo), hi) elementwise (NaN stays NaN); same shapes; out may be x. lo <= hi. */
reel_status reel_op_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                          reel_error *err);

/* ---- Noise and colour conversion (issue 9) ------------------------------------------------ */

/*
 * Gaussian noise from the counter-based generator of reel/philox.h: element i of
 * the contiguous f32 tensor `out` (row-major) becomes element offset + i of the
 * stream for `seed`, numbered as reel_noise_fill() numbers it (pipeline/noise.h).
 * Every backend writes the same bits. offset + numel(out) must be <= 2^62.
 */
reel_status reel_op_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err);

/*
 * Colour conversion for the encoder: RGB frames -> YUV 4:2:0, BT.709 limited range
 * (8-bit: Y 16..235, Cb/Cr 16..240; 10-bit: four times that), chroma from the mean
 * RGB of each 2x2 block (centre-sited), as encoder/ converts on the CPU.
 *   rgb   [F, 3, H, W]    float, any strides (a sample of a [B, 3, F, H, W] VAE output is
 *                         a permuted view); a value c maps to (c - lo) / (hi - lo), clamped
 *                         to [0, 1] (NaN to 0)
 *   y     [F, H, W]       U8 (8-bit samples) or U16 (10-bit samples in the low bits, as
 *                         FFmpeg's yuv420p10le)
 *   u, v  [F, H/2, W/2]   y's dtype
 * H and W even, lo < hi. Planes may have any strides (a frame pool's row pitch): I420
 * passes three planes; NV12 passes u and v as the two slices along the last dim of one
 * interleaved [F, H/2, W/2, 2] plane. Arithmetic is f32 without contraction in a fixed
 * order, so every backend writes the same samples; each is within 1 of the exact value.
 */
reel_status reel_op_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, float lo, float hi, reel_tensor *y,
                                  reel_tensor *u, reel_tensor *v, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
