/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPU backend: buffers are 64-byte aligned heap blocks (or wrapped host
 * memory), transfers are memcpy, ops run on the backend's thread pool. It is the
 * reference every other backend is tested against, and always built.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpu_impl.h"
#include "reel/alloc.h"

#define REEL__CPU_THREADS_MAX 1024

static void cpu_destroy(reel_backend *b) {
  reel__cpu *c = reel__cpu_of(b);
  if (c) {
    reel__pool_destroy(&c->pool);
    reel_aligned_free(c->ws);
    reel_free(c);
  }
  reel_free(b);
}

static reel_status cpu_alloc(reel_backend *b, size_t size, void **data, reel_error *err) {
  (void)b;
  *data = reel_aligned_alloc(size ? size : 1);
  if (!*data) return reel_error_set(err, REEL_ENOMEM, "buffer", "out of memory allocating %zu bytes", size);
  return REEL_OK;
}

static void cpu_free(reel_backend *b, void *data) {
  (void)b;
  reel_aligned_free(data);
}

static reel_status cpu_memcpy(reel_backend *b, void *dst, const void *src, size_t n, reel_error *err) {
  (void)b;
  (void)err;
  memmove(dst, src, n);
  return REEL_OK;
}

static reel_status cpu_memset(reel_backend *b, void *dst, int value, size_t n, reel_error *err) {
  (void)b;
  (void)err;
  memset(dst, value, n);
  return REEL_OK;
}

static reel_status cpu_sync(reel_backend *b, reel_error *err) {
  (void)b;
  (void)err;
  return REEL_OK;
}

static reel_status cpu_set_option(reel_backend *b, const char *key, const char *value, reel_error *err) {
  reel__cpu *c = reel__cpu_of(b);
  if (strcmp(key, "attention") == 0) {
    if (strcmp(value, "auto") == 0) {
      c->attn_path = REEL__ATTN_AUTO;
    } else if (strcmp(value, "avx512") == 0) {
      if (!c->have_avx512) return reel_error_set(err, REEL_EUNSUPPORTED, "attention", "this CPU lacks avx512");
      c->attn_path = REEL__ATTN_AVX512;
    } else if (strcmp(value, "portable") == 0) {
      c->attn_path = REEL__ATTN_PORTABLE;
    } else {
      return reel_error_set(err, REEL_EINVAL, "attention", "must be auto, avx512 or portable, got \"%s\"", value);
    }
    return REEL_OK;
  }
  if (strcmp(key, "activations") == 0) {
    static const struct {
      const char *name;
      reel__act_path path;
    } acts[] = {{"auto", REEL__ACT_AUTO}, {"avx512", REEL__ACT_AVX512}, {"avx2", REEL__ACT_AVX2},
                {"portable", REEL__ACT_PORTABLE}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
      if (strcmp(value, acts[i].name) != 0) continue;
      if ((acts[i].path == REEL__ACT_AVX512 && !c->have_avx512) || (acts[i].path == REEL__ACT_AVX2 && !c->have_avx2))
        return reel_error_set(err, REEL_EUNSUPPORTED, "activations", "this CPU lacks %s", value);
      c->act_path = acts[i].path;
      return REEL_OK;
    }
    return reel_error_set(err, REEL_EINVAL, "activations", "must be auto, avx512, avx2 or portable, got \"%s\"", value);
  }
  if (strcmp(key, "wrap_host") == 0) {
    /* "off" makes the CPU behave like a device backend for loaders (upload instead of wrapping), for tests. */
    if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
      return reel_error_set(err, REEL_EINVAL, "wrap_host", "must be on or off, got \"%s\"", value);
    b->wrap_host = strcmp(value, "on") == 0;
    return REEL_OK;
  }
  if (strcmp(key, "matmul") != 0) return reel_error_set(err, REEL_ENOTFOUND, key, "unknown CPU backend option");
  static const struct {
    const char *name;
    reel__gemm_path path;
  } paths[] = {{"auto", REEL__GEMM_AUTO},
               {"avx512", REEL__GEMM_AVX512},
               {"avx2", REEL__GEMM_AVX2},
               {"openblas", REEL__GEMM_OPENBLAS},
               {"portable", REEL__GEMM_PORTABLE}};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    if (strcmp(value, paths[i].name) != 0) continue;
    reel__gemm_path p = paths[i].path;
    if ((p == REEL__GEMM_AVX512 && !c->have_avx512) || (p == REEL__GEMM_AVX2 && !c->have_avx2))
      return reel_error_set(err, REEL_EUNSUPPORTED, "matmul", "this CPU lacks %s", value);
#ifndef REEL_HAVE_OPENBLAS
    if (p == REEL__GEMM_OPENBLAS)
      return reel_error_set(err, REEL_EUNSUPPORTED, "matmul", "reel was built without OpenBLAS");
#endif
    c->gemm_path = p;
    return REEL_OK;
  }
  return reel_error_set(err, REEL_EINVAL, "matmul", "must be auto, avx512, avx2, openblas or portable, got \"%s\"",
                        value);
}

void *reel__cpu_scratch(reel_backend *b, size_t bytes, reel_error *err) {
  reel__cpu *c = reel__cpu_of(b);
  if (bytes <= c->ws_cap && c->ws) return c->ws;
  size_t cap = c->ws_cap ? c->ws_cap : 1 << 16;
  while (cap < bytes) cap *= 2;
  void *ws = reel_aligned_alloc(cap);
  if (!ws) {
    reel_error_set(err, REEL_ENOMEM, "scratch", "out of memory for %zu bytes of op scratch", bytes);
    return NULL;
  }
  reel_aligned_free(c->ws);
  c->ws = ws;
  c->ws_cap = cap;
  b->scratch_bytes = cap;
  return ws;
}

static const reel_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .set_option = cpu_set_option,
    .buffer_alloc = cpu_alloc,
    .buffer_free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .memset = cpu_memset,
    .synchronize = cpu_sync,
    .matmul = reel__cpu_matmul,
    .matmul_batched = reel__cpu_matmul_batched,
    .binary = reel__cpu_binary,
    .unary = reel__cpu_unary,
    .softmax = reel__cpu_softmax,
    .layer_norm = reel__cpu_layer_norm,
    .rms_norm = reel__cpu_rms_norm,
    .copy_tensor = reel__cpu_copy_tensor,
    .rope = reel__cpu_rope,
    .attention = reel__cpu_attention,
    .modulate = reel__cpu_modulate,
    .gated_add = reel__cpu_gated_add,
    .lincomb = reel__cpu_lincomb,
    .conv3d = reel__cpu_conv3d,
    .clamp = reel__cpu_clamp,
    .noise = reel__cpu_noise,
    .rgb_to_yuv420 = reel__cpu_rgb_to_yuv420,
};

reel_backend *reel__cpu_backend_new(int threads, reel_error *err) {
  if (threads < 0 || threads > REEL__CPU_THREADS_MAX) {
    reel_error_set(err, REEL_ERANGE, "threads", "must be 0..%d, got %d", REEL__CPU_THREADS_MAX, threads);
    return NULL;
  }
  if (threads == 0) {
    /* The CPUs this process may run on (containers and taskset restrict them), else the online ones. */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 1 ? 1 : n > REEL__CPU_THREADS_MAX ? REEL__CPU_THREADS_MAX : (int)n;
  }
  reel_backend *b = reel_calloc(1, sizeof *b);
  reel__cpu *c = reel_calloc(1, sizeof *c);
  if (!b || !c) {
    reel_free(b);
    reel_free(c);
    reel_error_set(err, REEL_ENOMEM, "backend", "out of memory");
    return NULL;
  }
  b->ops = &cpu_ops;
  b->kind = REEL_BACKEND_CPU;
  b->threads = threads;
  b->wrap_host = 1;
  b->impl = c;
  snprintf(b->name, sizeof b->name, "cpu");
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  c->have_avx512 = __builtin_cpu_supports("avx512f");
  c->have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  c->pool = reel__pool_new(threads, err);
  if (!c->pool) {
    cpu_destroy(b);
    return NULL;
  }
  return b;
}
