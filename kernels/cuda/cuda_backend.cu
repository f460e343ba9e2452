/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA backend: device buffers (cudaMalloc), transfers and copies on the
 * backend's stream, the scratch workspace, the options and the function table.
 * The op families live in one .cu each: matmul, elementwise (with clamp), norm,
 * rope, modulate (and gated_add), lincomb, attention, conv3d, noise, colour.
 */
#include <stdio.h>
#include <string.h>

#include "common.cuh"
#include "reel/alloc.h"

reel_status reel__cuda_fail(reel_error *err, const char *stmt, const char *file, int line,
                           const char *what) {
  reel_log(NULL, REEL_LOG_ERROR, "cuda", NULL, "CUDA call failed", "stmt=\"%s\" file=%s line=%d error=\"%s\"", stmt,
           file, line, what);
  return reel_error_set(err, REEL_EDEVICE, "cuda", "%s failed at %s:%d: %s", stmt, file, line, what);
}

static void cuda_destroy(reel_backend *b) {
  reel__cuda *c = reel__cuda_of(b);
  if (c) {
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->ws) cudaFree(c->ws);
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->stream) cudaStreamDestroy(c->stream);
    reel_free(c);
  }
  reel_free(b);
}

static reel_status cuda_alloc(reel_backend *b, size_t size, void **data, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  *data = NULL;
  cudaError_t e = cudaMalloc(data, size ? size : 1);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError(); /* clear the (non-sticky) error */
    return reel_error_set(err, REEL_ENOMEM, "buffer", "device %s out of memory allocating %zu bytes", b->name, size);
  }
  REEL_CUDA_CHECK(e);
  return REEL_OK;
}

static void cuda_free(reel_backend *b, void *data) {
  reel__cuda_use(b);
  /* Earlier ops on the stream may still read the buffer: wait for them first. */
  cudaStreamSynchronize(reel__cuda_of(b)->stream);
  cudaFree(data);
}

static reel_status cuda_upload(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  cudaStream_t s = reel__cuda_of(b)->stream;
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
  /* The host memory may be reused as soon as we return. */
  REEL_CUDA_CHECK(cudaStreamSynchronize(s));
  return REEL_OK;
}

static reel_status cuda_download(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  cudaStream_t s = reel__cuda_of(b)->stream;
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
  REEL_CUDA_CHECK(cudaStreamSynchronize(s));
  return REEL_OK;
}

static reel_status cuda_copy(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, reel__cuda_of(b)->stream));
  return REEL_OK;
}

static reel_status cuda_memset(reel_backend *b, void *dst, int value, size_t n, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  REEL_CUDA_CHECK(cudaMemsetAsync(dst, value, n, reel__cuda_of(b)->stream));
  return REEL_OK;
}

static reel_status cuda_sync(reel_backend *b, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  REEL_CUDA_CHECK(cudaStreamSynchronize(reel__cuda_of(b)->stream));
  return REEL_OK;
}

void *reel__cuda_scratch(reel_backend *b, size_t bytes, reel_error *err) {
  reel__cuda *c = reel__cuda_of(b);
  if (c->ws && bytes <= c->ws_cap) return c->ws;
  size_t cap = c->ws_cap ? c->ws_cap : (size_t)1 << 20;
  while (cap < bytes) cap *= 2;
  if (c->ws) {
    /* Ops queued earlier may still use the old block. */
    cudaStreamSynchronize(c->stream);
    cudaFree(c->ws);
    c->ws = NULL;
    c->ws_cap = 0;
    b->scratch_bytes = 0;
  }
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, cap);
  if (e != cudaSuccess) {
    cudaGetLastError();
    reel_error_set(err, e == cudaErrorMemoryAllocation ? REEL_ENOMEM : REEL_EDEVICE, "scratch",
                   "cannot allocate %zu bytes of device scratch: %s", cap, cudaGetErrorString(e));
    return NULL;
  }
  c->ws = p;
  c->ws_cap = cap;
  b->scratch_bytes = cap;
  return p;
}

static reel_status cuda_set_option(reel_backend *b, const char *key, const char *value, reel_error *err) {
  reel__cuda *c = reel__cuda_of(b);
  if (strcmp(key, "attention") == 0) {
    if (strcmp(value, "auto") == 0)
      c->attn_path = REEL__CUDA_ATTN_AUTO;
    else if (strcmp(value, "mma") == 0)
      c->attn_path = REEL__CUDA_ATTN_MMA;
    else if (strcmp(value, "simt") == 0)
      c->attn_path = REEL__CUDA_ATTN_SIMT;
    else
      return reel_error_set(err, REEL_EINVAL, "attention", "must be auto, mma or simt, got \"%s\"", value);
    return REEL_OK;
  }
  return reel_error_set(err, REEL_ENOTFOUND, key, "unknown option of backend %s (attention)", b->name);
}

static reel_backend_ops make_ops(void) {
  reel_backend_ops o;
  memset(&o, 0, sizeof o);
  o.destroy = cuda_destroy;
  o.set_option = cuda_set_option;
  o.buffer_alloc = cuda_alloc;
  o.buffer_free = cuda_free;
  o.upload = cuda_upload;
  o.download = cuda_download;
  o.copy = cuda_copy;
  o.memset = cuda_memset;
  o.synchronize = cuda_sync;
  o.matmul = reel__cuda_matmul;
  o.matmul_batched = reel__cuda_matmul_batched;
  o.binary = reel__cuda_binary;
  o.unary = reel__cuda_unary;
  o.softmax = reel__cuda_softmax;
  o.layer_norm = reel__cuda_layer_norm;
  o.rms_norm = reel__cuda_rms_norm;
  o.copy_tensor = reel__cuda_copy_tensor;
  o.rope = reel__cuda_rope;
  o.attention = reel__cuda_attention;
  o.modulate = reel__cuda_modulate;
  o.gated_add = reel__cuda_gated_add;
  o.lincomb = reel__cuda_lincomb;
  o.conv3d = reel__cuda_conv3d;
  o.clamp = reel__cuda_clamp;
  o.noise = reel__cuda_noise;
  o.rgb_to_yuv420 = reel__cuda_rgb_to_yuv420;
  return o;
}

static const reel_backend_ops cuda_ops = make_ops();

static reel_status cuda_init(reel_backend *b, reel__cuda *c, int device, reel_error *err) {
  REEL_CUDA_CHECK(cudaSetDevice(device));
  REEL_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  REEL_CUBLAS_CHECK(cublasLtCreate(&c->lt));
  REEL_CUDA_CHECK(cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, device));
  return reel__cuda_attention_init(b, err);
}

extern "C" void reel__cuda_info(const reel_backend *b, int *device, void **stream) {
  const reel__cuda *c = (const reel__cuda *)b->impl;
  *device = c->device;
  *stream = (void *)c->stream;
}

extern "C" reel_backend *reel__cuda_backend_new(int device, reel_error *err) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    reel_error_set(err, REEL_ENODEVICE, "device", "no CUDA device: %s",
                   e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    return NULL;
  }
  if (device < 0 || device >= count) {
    reel_error_set(err, REEL_ENODEVICE, "device", "must be 0..%d, got %d", count - 1, device);
    return NULL;
  }
  reel_backend *b = (reel_backend *)reel_calloc(1, sizeof *b);
  reel__cuda *c = (reel__cuda *)reel_calloc(1, sizeof *c);
  if (!b || !c) {
    reel_free(b);
    reel_free(c);
    reel_error_set(err, REEL_ENOMEM, "backend", "out of memory");
    return NULL;
  }
  b->ops = &cuda_ops;
  b->kind = REEL_BACKEND_CUDA;
  b->threads = 1;
  b->impl = c;
  c->device = device;
  snprintf(b->name, sizeof b->name, "cuda:%d", device);
  if (cuda_init(b, c, device, err) != REEL_OK) {
    cuda_destroy(b);
    return NULL;
  }
  return b;
}
