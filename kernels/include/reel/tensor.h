/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensors: a typed, strided view into a backend buffer.
 *
 * A reel_tensor is a small value (copy it freely): dtype, up to REEL_MAX_DIMS
 * dimensions in PyTorch order (dim 0 outermost), strides counted in elements, and
 * the buffer plus a byte offset where element [0,...,0] lives. It does not own the
 * buffer; views (slice, reshape, permute) are new values over the same buffer and
 * never copy. Which backend the data lives on is the buffer's business
 * (reel/backend.h); nothing here dereferences tensor data, so these helpers work
 * the same for host and device tensors.
 *
 * Also here: the host-side f16/bf16 <-> f32 conversions (round to nearest even,
 * NaN stays NaN) that loaders, tests and the CPU kernels share.
 */
#ifndef REEL_TENSOR_H
#define REEL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values are stable (they may be stored in files). Ops say which they accept. */
typedef enum reel_dtype {
  REEL_F32 = 0,
  REEL_F16 = 1,
  REEL_BF16 = 2,
  REEL_I8 = 3,       /* reserved for quantised weights: no op accepts it yet */
  REEL_FP8_E4M3 = 4, /* reserved */
  REEL_FP8_E5M2 = 5, /* reserved */
  REEL_I32 = 6,      /* indices (token ids) */
  REEL_U8 = 7,       /* video samples (8-bit YUV planes for the encoder) */
  REEL_U16 = 8,      /* video samples (10-bit YUV planes, value in the low bits) */
  REEL_DTYPE_COUNT
} reel_dtype;

#define REEL_MAX_DIMS 6

/* A backend buffer (opaque; see reel/backend.h). */
typedef struct reel_buffer reel_buffer;

typedef struct reel_tensor {
  reel_dtype dtype;
  int ndim;                       /* 0..REEL_MAX_DIMS; 0 is a scalar with one element */
  int64_t shape[REEL_MAX_DIMS];   /* entries >= ndim are 1 */
  int64_t stride[REEL_MAX_DIMS];  /* in elements, >= 0; entries >= ndim are 0 */
  reel_buffer *buf;               /* borrowed; NULL for a shape-only descriptor */
  size_t offset;                  /* bytes from the buffer start to element [0,..,0] */
} reel_tensor;

/* Bytes per element; 0 for an invalid dtype. */
size_t reel_dtype_size(reel_dtype dt);
/* "f32", "f16", "bf16", "i8", "fp8_e4m3", "fp8_e5m2", "i32", "u8", "u16"; "invalid" otherwise. Never NULL. */
const char *reel_dtype_name(reel_dtype dt);
/* Nonzero for F32, F16 and BF16 (the dtypes float ops accept). */
int reel_dtype_is_float(reel_dtype dt);
/*
 * Parses a dtype name: ours ("bf16") or safetensors' ("BF16", "F32", "F16", "I8",
 * "F8_E4M3", "F8_E5M2", "I32", "U8", "U16"). REEL_ENOTFOUND when unknown.
 */
reel_status reel_dtype_parse(const char *s, reel_dtype *out /* OUT: */);

/*
 * Fills *t as a contiguous (row-major) tensor of `shape` over `buf` at `offset`.
 * Validates ndim (0..REEL_MAX_DIMS), each dim (1..2^40; 0 is allowed and gives an
 * empty tensor) and the dtype; errors name "shape[i]" / "ndim" / "dtype".
 * Does not check that the buffer is large enough (reel_tensor_check_fits does).
 */
reel_status reel_tensor_init(reel_tensor *t /* OUT: */, reel_dtype dt, int ndim, const int64_t *shape,
                             reel_buffer *buf, size_t offset, reel_error *err);

/* Number of elements (product of the shape; 1 for a scalar). */
int64_t reel_tensor_numel(const reel_tensor *t);
/* numel * element size: the bytes a contiguous copy of the data needs. */
size_t reel_tensor_nbytes(const reel_tensor *t);
/* Bytes from the first to one past the last addressed byte (0 when empty): what the buffer must hold past offset. */
size_t reel_tensor_span_bytes(const reel_tensor *t);
/* Nonzero when the strides are exactly the row-major ones for the shape (dims of size 1 may have any stride). */
int reel_tensor_is_contiguous(const reel_tensor *t);
/* Nonzero when a and b have the same ndim and shape. */
int reel_tensor_same_shape(const reel_tensor *a, const reel_tensor *b);
/* Writes "[2,3,4]" into buf (always NUL-terminated when size > 0). Returns buf. */
const char *reel_tensor_shape_str(const reel_tensor *t, char *buf, size_t size);

/*
 * Views. Each writes a new tensor into *out (which may alias src) over the same
 * buffer, without copying. Errors (REEL_EINVAL / REEL_ERANGE) name the argument.
 */
/* Keeps elements [start, start+len) of dimension `dim` (negative dim counts from the end). */
reel_status reel_tensor_slice(const reel_tensor *src, int dim, int64_t start, int64_t len, reel_tensor *out /* OUT: */,
                              reel_error *err);
/*
 * New shape with the same numel; at most one entry may be -1 (inferred). Works on
 * non-contiguous tensors when the new shape only splits or merges dimensions that
 * are laid out compatibly (PyTorch's view() rule); otherwise REEL_EINVAL saying a
 * copy (reel_op_copy) is needed.
 */
reel_status reel_tensor_reshape(const reel_tensor *src, int ndim, const int64_t *shape, reel_tensor *out /* OUT: */,
                                reel_error *err);
/* out.shape[i] = src.shape[perm[i]]; perm must be a permutation of 0..ndim-1. */
reel_status reel_tensor_permute(const reel_tensor *src, const int *perm, reel_tensor *out /* OUT: */,
                                reel_error *err);
/* Swaps two dimensions (negative dims count from the end). */
reel_status reel_tensor_transpose(const reel_tensor *src, int d0, int d1, reel_tensor *out /* OUT: */,
                                  reel_error *err);

/*
 * Host conversions. Round to nearest, ties to even; NaN stays NaN (quiet, sign
 * kept), infinities stay infinite, overflow rounds to infinity, f16 subnormals
 * are handled exactly. These cannot fail.
 */
uint16_t reel_f32_to_f16(float f);
float reel_f16_to_f32(uint16_t h);
uint16_t reel_f32_to_bf16(float f);
float reel_bf16_to_f32(uint16_t h);
/* Array forms; src and dst must not overlap. */
void reel_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void reel_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void reel_convert_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void reel_convert_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/*
 * Converts n elements between any two of F32/F16/BF16 (same dtype = memcpy).
 * REEL_EUNSUPPORTED for other dtypes.
 */
reel_status reel_convert(reel_dtype src_dt, const void *src, reel_dtype dst_dt, void *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
