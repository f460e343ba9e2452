/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor descriptors, views and host dtype conversions (see reel/tensor.h). Pure
 * bookkeeping: nothing here reads tensor data, so it serves every backend.
 */
#include "reel/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Largest dimension we accept: keeps numel * 8 far from overflowing int64 with 6 dims of sane sizes. */
#define REEL__DIM_MAX ((int64_t)1 << 40)

size_t reel_dtype_size(reel_dtype dt) {
  switch (dt) {
    case REEL_F32: return 4;
    case REEL_F16: return 2;
    case REEL_BF16: return 2;
    case REEL_I8: return 1;
    case REEL_FP8_E4M3: return 1;
    case REEL_FP8_E5M2: return 1;
    case REEL_I32: return 4;
    case REEL_U8: return 1;
    case REEL_U16: return 2;
    default: return 0;
  }
}

const char *reel_dtype_name(reel_dtype dt) {
  switch (dt) {
    case REEL_F32: return "f32";
    case REEL_F16: return "f16";
    case REEL_BF16: return "bf16";
    case REEL_I8: return "i8";
    case REEL_FP8_E4M3: return "fp8_e4m3";
    case REEL_FP8_E5M2: return "fp8_e5m2";
    case REEL_I32: return "i32";
    case REEL_U8: return "u8";
    case REEL_U16: return "u16";
    default: return "invalid";
  }
}

int reel_dtype_is_float(reel_dtype dt) { return dt == REEL_F32 || dt == REEL_F16 || dt == REEL_BF16; }

reel_status reel_dtype_parse(const char *s, reel_dtype *out) {
  static const struct {
    const char *ours, *st;
    reel_dtype dt;
  } names[] = {
      {"f32", "F32", REEL_F32},          {"f16", "F16", REEL_F16},          {"bf16", "BF16", REEL_BF16},
      {"i8", "I8", REEL_I8},             {"fp8_e4m3", "F8_E4M3", REEL_FP8_E4M3},
      {"fp8_e5m2", "F8_E5M2", REEL_FP8_E5M2}, {"i32", "I32", REEL_I32},
      {"u8", "U8", REEL_U8},             {"u16", "U16", REEL_U16},
  };
  if (!s || !out) return REEL_EINVAL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(s, names[i].ours) == 0 || strcmp(s, names[i].st) == 0) {
      *out = names[i].dt;
      return REEL_OK;
    }
  }
  return REEL_ENOTFOUND;
}

static void set_contiguous_strides(reel_tensor *t) {
  int64_t s = 1;
  for (int i = REEL_MAX_DIMS - 1; i >= 0; i--) {
    if (i >= t->ndim) {
      t->stride[i] = 0;
      continue;
    }
    t->stride[i] = s;
    s *= t->shape[i];
  }
}

reel_status reel_tensor_init(reel_tensor *t, reel_dtype dt, int ndim, const int64_t *shape, reel_buffer *buf,
                             size_t offset, reel_error *err) {
  if (!t) return reel_error_set(err, REEL_EINVAL, "tensor", "NULL output tensor");
  memset(t, 0, sizeof *t);
  if (reel_dtype_size(dt) == 0) return reel_error_set(err, REEL_EINVAL, "dtype", "unknown dtype %d", (int)dt);
  if (ndim < 0 || ndim > REEL_MAX_DIMS)
    return reel_error_set(err, REEL_ERANGE, "ndim", "must be 0..%d, got %d", REEL_MAX_DIMS, ndim);
  if (ndim > 0 && !shape) return reel_error_set(err, REEL_EINVAL, "shape", "NULL shape with ndim %d", ndim);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || shape[i] > REEL__DIM_MAX) {
      char f[32];
      snprintf(f, sizeof f, "shape[%d]", i);
      return reel_error_set(err, REEL_ERANGE, f, "must be 0..2^40, got %lld", (long long)shape[i]);
    }
    if (shape[i] && numel > (INT64_MAX / 8) / shape[i])
      return reel_error_set(err, REEL_ERANGE, "shape", "element count overflows");
    numel *= shape[i];
  }
  t->dtype = dt;
  t->ndim = ndim;
  for (int i = 0; i < REEL_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
  set_contiguous_strides(t);
  t->buf = buf;
  t->offset = offset;
  return REEL_OK;
}

int64_t reel_tensor_numel(const reel_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t reel_tensor_nbytes(const reel_tensor *t) { return (size_t)reel_tensor_numel(t) * reel_dtype_size(t->dtype); }

size_t reel_tensor_span_bytes(const reel_tensor *t) {
  if (reel_tensor_numel(t) == 0) return 0;
  int64_t last = 0;
  for (int i = 0; i < t->ndim; i++) last += (t->shape[i] - 1) * t->stride[i];
  return (size_t)(last + 1) * reel_dtype_size(t->dtype);
}

int reel_tensor_is_contiguous(const reel_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

int reel_tensor_same_shape(const reel_tensor *a, const reel_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *reel_tensor_shape_str(const reel_tensor *t, char *buf, size_t size) {
  if (!buf || size == 0) return buf;
  size_t n = 0;
  buf[0] = '\0';
  n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "[");
  for (int i = 0; i < t->ndim && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}

static int norm_dim(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }

reel_status reel_tensor_slice(const reel_tensor *src, int dim, int64_t start, int64_t len, reel_tensor *out,
                              reel_error *err) {
  int d = norm_dim(dim, src->ndim);
  if (d < 0 || d >= src->ndim)
    return reel_error_set(err, REEL_ERANGE, "dim", "must be in [-%d, %d), got %d", src->ndim, src->ndim, dim);
  if (start < 0 || len < 0 || start > src->shape[d] || len > src->shape[d] - start)
    return reel_error_set(err, REEL_ERANGE, "start", "slice [%lld, %lld) outside dim %d of size %lld",
                          (long long)start, (long long)(start + len), d, (long long)src->shape[d]);
  reel_tensor t = *src;
  t.offset += (size_t)(start * src->stride[d]) * reel_dtype_size(src->dtype);
  t.shape[d] = len;
  *out = t;
  return REEL_OK;
}

reel_status reel_tensor_permute(const reel_tensor *src, const int *perm, reel_tensor *out, reel_error *err) {
  int seen[REEL_MAX_DIMS] = {0};
  reel_tensor t = *src;
  for (int i = 0; i < src->ndim; i++) {
    int p = perm[i];
    if (p < 0 || p >= src->ndim || seen[p]) {
      char f[32];
      snprintf(f, sizeof f, "perm[%d]", i);
      return reel_error_set(err, REEL_EINVAL, f, "not a permutation of 0..%d (got %d)", src->ndim - 1, p);
    }
    seen[p] = 1;
    t.shape[i] = src->shape[p];
    t.stride[i] = src->stride[p];
  }
  *out = t;
  return REEL_OK;
}

reel_status reel_tensor_transpose(const reel_tensor *src, int d0, int d1, reel_tensor *out, reel_error *err) {
  int a = norm_dim(d0, src->ndim), b = norm_dim(d1, src->ndim);
  if (a < 0 || a >= src->ndim) return reel_error_set(err, REEL_ERANGE, "d0", "dim %d out of range", d0);
  if (b < 0 || b >= src->ndim) return reel_error_set(err, REEL_ERANGE, "d1", "dim %d out of range", d1);
  int perm[REEL_MAX_DIMS];
  for (int i = 0; i < src->ndim; i++) perm[i] = i;
  perm[a] = b;
  perm[b] = a;
  return reel_tensor_permute(src, perm, out, err);
}

reel_status reel_tensor_reshape(const reel_tensor *src, int ndim, const int64_t *shape, reel_tensor *out,
                                reel_error *err) {
  if (ndim < 0 || ndim > REEL_MAX_DIMS)
    return reel_error_set(err, REEL_ERANGE, "ndim", "must be 0..%d, got %d", REEL_MAX_DIMS, ndim);
  int64_t want[REEL_MAX_DIMS];
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    want[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0) return reel_error_set(err, REEL_EINVAL, "shape", "more than one -1");
      infer = i;
    } else if (shape[i] < 0 || shape[i] > REEL__DIM_MAX) {
      char f[32];
      snprintf(f, sizeof f, "shape[%d]", i);
      return reel_error_set(err, REEL_ERANGE, f, "must be -1 or 0..2^40, got %lld", (long long)shape[i]);
    } else {
      known *= shape[i];
    }
  }
  int64_t numel = reel_tensor_numel(src);
  char sb[96];
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      return reel_error_set(err, REEL_EINVAL, "shape", "cannot infer -1: %lld elements of %s",
                            (long long)numel, reel_tensor_shape_str(src, sb, sizeof sb));
    want[infer] = numel / known;
    known *= want[infer];
  }
  if (known != numel)
    return reel_error_set(err, REEL_EINVAL, "shape", "new shape has %lld elements, tensor %s has %lld",
                          (long long)known, reel_tensor_shape_str(src, sb, sizeof sb), (long long)numel);

  reel_tensor t = *src;
  t.ndim = ndim;
  for (int i = 0; i < REEL_MAX_DIMS; i++) {
    t.shape[i] = i < ndim ? want[i] : 1;
    t.stride[i] = 0;
  }
  if (numel == 0 || reel_tensor_is_contiguous(src)) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
      t.stride[i] = s;
      s *= want[i];
    }
    *out = t;
    return REEL_OK;
  }
  /*
   * Strided source: walk the source dims from the innermost outwards in chunks
   * that are contiguous among themselves (stride[i] == shape[i+1] * stride[i+1]);
   * the new dims must tile each chunk exactly, and take strides from its base.
   */
  int vd = ndim - 1;
  int64_t chunk_base = src->ndim ? src->stride[src->ndim - 1] : 1;
  int64_t chunk_numel = 1, view_numel = 1;
  for (int d = src->ndim - 1; d >= 0; d--) {
    chunk_numel *= src->shape[d];
    int chunk_ends = d == 0 || (src->shape[d - 1] != 1 && src->stride[d - 1] != chunk_numel * chunk_base);
    if (!chunk_ends) continue;
    while (vd >= 0 && (view_numel < chunk_numel || want[vd] == 1)) {
      t.stride[vd] = view_numel * chunk_base;
      view_numel *= want[vd];
      vd--;
    }
    if (view_numel != chunk_numel)
      return reel_error_set(err, REEL_EINVAL, "shape",
                            "cannot view strided %s with this shape without a copy (use reel_op_copy first)",
                            reel_tensor_shape_str(src, sb, sizeof sb));
    if (d > 0) {
      chunk_base = src->stride[d - 1];
      chunk_numel = 1;
      view_numel = 1;
    }
  }
  /* Trailing new dims of size 1 left over. */
  while (vd >= 0 && want[vd] == 1) {
    t.stride[vd] = 1;
    vd--;
  }
  if (vd != -1)
    return reel_error_set(err, REEL_EINVAL, "shape", "cannot view strided %s with this shape without a copy",
                          reel_tensor_shape_str(src, sb, sizeof sb));
  *out = t;
  return REEL_OK;
}

/* ---- Conversions ---- */

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t reel_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* NaN: keep sign, force quiet */
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

float reel_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t reel_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {
    if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet NaN, payload top bits kept */
  }
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
  if (ax < 0x38800000u) {                                    /* below 2^-14: f16 subnormal or zero */
    if (ax < 0x33000000u) return (uint16_t)sign;             /* <= 2^-25 rounds to zero (2^-25 is a tie to even 0) */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24: value in units of 2^-24 is m >> shift */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax - 0x38000000u; /* rebias the exponent from 127 to 15 */
  r += 0xfffu + ((r >> 13) & 1u);
  return (uint16_t)(sign | (r >> 13));
}

float reel_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

void reel_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = reel_f32_to_f16(src[i]);
}

void reel_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = reel_f16_to_f32(src[i]);
}

void reel_convert_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = reel_f32_to_bf16(src[i]);
}

void reel_convert_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)src[i] << 16);
}

reel_status reel_convert(reel_dtype sdt, const void *src, reel_dtype ddt, void *dst, size_t n) {
  if (!reel_dtype_is_float(sdt) || !reel_dtype_is_float(ddt)) return REEL_EUNSUPPORTED;
  if (sdt == ddt) {
    if (n) memmove(dst, src, n * reel_dtype_size(sdt));
    return REEL_OK;
  }
  if (sdt == REEL_F32) {
    if (ddt == REEL_F16) reel_convert_f32_to_f16(src, dst, n);
    else reel_convert_f32_to_bf16(src, dst, n);
    return REEL_OK;
  }
  if (ddt == REEL_F32) {
    if (sdt == REEL_F16) reel_convert_f16_to_f32(src, dst, n);
    else reel_convert_bf16_to_f32(src, dst, n);
    return REEL_OK;
  }
  /* f16 <-> bf16 through f32, element by element (one rounding: f16 and bf16 both convert exactly to f32). */
  const uint16_t *s = src;
  uint16_t *d = dst;
  for (size_t i = 0; i < n; i++)
    d[i] = sdt == REEL_F16 ? reel_f32_to_bf16(reel_f16_to_f32(s[i])) : reel_f32_to_f16(reel_bf16_to_f32(s[i]));
  return REEL_OK;
}
