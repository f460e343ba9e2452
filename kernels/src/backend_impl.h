/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside of a backend: the function table each backend fills in, the buffer and
 * backend structs, and helpers the backends share. Not a public header: model
 * code sees only reel/backend.h. C and C++ (nvcc) compatible.
 *
 * The public wrappers in ops.c validate every operand before calling an op, so an
 * op function may assume: tensors are on this backend and inside their buffers,
 * shapes agree as the op's documentation says, dtypes are float dtypes (an op
 * still rejects combinations it does not implement with REEL_EUNSUPPORTED), and
 * the output is writable.
 */
#ifndef REEL_BACKEND_IMPL_H
#define REEL_BACKEND_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum reel__unary_op { REEL__UNARY_SILU = 0, REEL__UNARY_GELU_TANH = 1 } reel__unary_op;
typedef enum reel__binary_op { REEL__BINARY_ADD = 0, REEL__BINARY_MUL = 1 } reel__binary_op;

/*
 * The constants of reel_op_rgb_to_yuv420, computed once in ops.c (in double, rounded
 * to f32) and handed to every backend, so that all of them evaluate the same f32
 * expressions: c01 = clamp((c - lo) * inv, 0, 1);
 *   Y  = floor(((ky[0] r + ky[1] g) + ky[2] b) + yoff + 0.5), likewise U (ku, coff)
 *   and V (kv, coff) on the 2x2 means ((c00 + c01) + (c10 + c11)) * 0.25,
 * each operation rounded to f32 (no contraction), clamped to [0, maxv].
 */
typedef struct reel__yuv_coefs {
  float lo, inv;
  float ky[3], ku[3], kv[3];
  float yoff, coff, maxv;
} reel__yuv_coefs;

typedef struct reel_backend_ops {
  /* Lifetime. destroy frees the backend's private state and the backend struct itself. */
  void (*destroy)(reel_backend *b);
  reel_status (*set_option)(reel_backend *b, const char *key, const char *value, reel_error *err);

  /* Memory. Pointers are the backend's own (host or device); data may be NULL for size 0. */
  reel_status (*buffer_alloc)(reel_backend *b, size_t size, void **data /* OUT: */, reel_error *err);
  void (*buffer_free)(reel_backend *b, void *data);
  reel_status (*upload)(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err);
  reel_status (*download)(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err);
  reel_status (*copy)(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err);
  reel_status (*memset)(reel_backend *b, void *dst, int value, size_t n, reel_error *err);
  reel_status (*synchronize)(reel_backend *b, reel_error *err);

  /* Ops (see reel/backend.h for semantics). */
  reel_status (*matmul)(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                        reel_tensor *out, reel_error *err);
  reel_status (*matmul_batched)(reel_backend *b, const reel_tensor *a, const reel_tensor *bm, int trans_b, float alpha,
                                reel_tensor *out, reel_error *err);
  reel_status (*binary)(reel_backend *b, reel__binary_op op, const reel_tensor *x, const reel_tensor *y,
                        reel_tensor *out, reel_error *err);
  reel_status (*unary)(reel_backend *b, reel__unary_op op, const reel_tensor *x, reel_tensor *out, reel_error *err);
  reel_status (*softmax)(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err);
  reel_status (*layer_norm)(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                            float eps, reel_tensor *out, reel_error *err);
  reel_status (*rms_norm)(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps, reel_tensor *out,
                          reel_error *err);
  reel_status (*copy_tensor)(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err);
  /* Diffusion transformer ops (issue 4). */
  reel_status (*rope)(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                      reel_tensor *out, reel_error *err);
  reel_status (*attention)(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                           float scale, reel_tensor *out, reel_error *err);
  reel_status (*modulate)(reel_backend *b, const reel_tensor *x, const reel_tensor *shift, const reel_tensor *scale,
                          reel_tensor *out, reel_error *err);
  reel_status (*gated_add)(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                           reel_tensor *out, reel_error *err);
  reel_status (*lincomb)(reel_backend *b, int n, const double *coef, const reel_tensor *const *x, reel_tensor *out,
                         reel_error *err);
  /* Video VAE ops (issue 5). */
  reel_status (*conv3d)(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                        const reel_conv3d_params *p, reel_tensor *out, reel_error *err);
  reel_status (*clamp)(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out, reel_error *err);
  /* Noise and colour conversion (issue 9). Up-sampling is fused into conv3d. */
  reel_status (*noise)(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err);
  reel_status (*rgb_to_yuv420)(reel_backend *b, const reel_tensor *rgb, const struct reel__yuv_coefs *k,
                               reel_tensor *y, reel_tensor *u, reel_tensor *v, reel_error *err);
} reel_backend_ops;

#define REEL__BACKEND_NAME_MAX 32
#define REEL__PATH_MAX 48

struct reel_backend {
  const reel_backend_ops *ops;
  reel_backend_kind kind;
  int threads;
  long live_buffers; /* buffers not yet destroyed (a destroy with some left is a bug) */
  char name[REEL__BACKEND_NAME_MAX];
  char last_path[REEL__PATH_MAX];
  size_t scratch_bytes; /* maintained by the backend */
  int wrap_host;        /* reel_buffer_wrap_host() allowed (host-memory backends; the CPU's "wrap_host" option) */
  size_t buffer_bytes;  /* bytes of the live buffers this backend allocated (not wrapped ones) */
  size_t peak_bytes;    /* high-water mark of buffer_bytes + scratch_bytes, see reel_backend_memory() */
  void *impl;           /* the backend's private state */
};

enum { REEL__BUF_WRAPPED = 1u, REEL__BUF_READ_ONLY = 2u };

struct reel_buffer {
  reel_backend *backend;
  void *data; /* host or device address; never handed to model code */
  size_t size;
  unsigned flags;
};

/* Address of element [0,..,0] of t (host or device). */
static inline void *reel__tensor_data(const reel_tensor *t) { return (char *)t->buf->data + t->offset; }

/* Records the path the last op took (truncated to fit). */
void reel__backend_set_path(reel_backend *b, const char *path);

/* Constructors of the built-in backends (backend.c dispatches to them). */
reel_backend *reel__cpu_backend_new(int threads, reel_error *err);
#ifdef REEL_HAVE_CUDA
reel_backend *reel__cuda_backend_new(int device, reel_error *err);
/* The device index and cudaStream_t of a CUDA backend (reel_backend_cuda_info). */
void reel__cuda_info(const reel_backend *b, int *device, void **stream);
#endif

/*
 * Iteration helper for elementwise ops: the common shape of up to 4 operands with
 * broadcast dims turned into stride 0 and adjacent dims merged where every
 * operand allows it. After reel__iter_init, dims [0, ndim-1) are the outer loop
 * ("rows") and dim ndim-1 is the inner loop; ndim >= 1.
 */
typedef struct reel__iter {
  int ndim;
  int nops;
  int64_t shape[REEL_MAX_DIMS];
  int64_t stride[4][REEL_MAX_DIMS]; /* elements */
} reel__iter;

/* out_shape/out_ndim is the full shape; each operand is right-aligned against it (missing dims broadcast). */
void reel__iter_init(reel__iter *it, int out_ndim, const int64_t *out_shape, int nops, const reel_tensor *const *ops);
/* Number of rows (product of the outer dims). */
int64_t reel__iter_rows(const reel__iter *it);
/* Element offsets of the start of row `row` for each operand. */
void reel__iter_row_offsets(const reel__iter *it, int64_t row, int64_t *offsets /* OUT: [nops] */);

#ifdef __cplusplus
}
#endif
#endif
