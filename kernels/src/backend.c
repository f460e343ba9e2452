/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backend-independent half of reel/backend.h: construction dispatch, buffers,
 * tensors with their own buffer, host transfers and the tensor arena. Everything
 * device-specific goes through the backend's function table.
 */
#include <stdio.h>
#include <string.h>

#include "backend_impl.h"
#include "reel/alloc.h"

reel_backend *reel_backend_new_cpu(int threads, reel_error *err) { return reel__cpu_backend_new(threads, err); }

reel_backend *reel_backend_new_cuda(int device, reel_error *err) {
#ifdef REEL_HAVE_CUDA
  return reel__cuda_backend_new(device, err);
#else
  (void)device;
  reel_error_set(err, REEL_ENODEVICE, "backend", "reel was built without CUDA (configure with -DREEL_CUDA=ON)");
  return NULL;
#endif
}

int reel_backend_cuda_built(void) {
#ifdef REEL_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

void reel_backend_destroy(reel_backend **b) {
  if (!b || !*b) return;
  reel_backend *be = *b;
  *b = NULL;
  be->ops->destroy(be);
}

const char *reel_backend_name(const reel_backend *b) { return b ? b->name : "(null)"; }
reel_backend_kind reel_backend_get_kind(const reel_backend *b) { return b->kind; }
int reel_backend_threads(const reel_backend *b) { return b->threads; }
const char *reel_backend_last_path(const reel_backend *b) { return b->last_path; }
size_t reel_backend_scratch_bytes(const reel_backend *b) { return b->scratch_bytes; }

static void note_peak(reel_backend *b) {
  size_t now = b->buffer_bytes + b->scratch_bytes;
  if (now > b->peak_bytes) b->peak_bytes = now;
}

void reel_backend_memory(reel_backend *b, size_t *live, size_t *peak) {
  note_peak(b);
  if (live) *live = b->buffer_bytes + b->scratch_bytes;
  if (peak) *peak = b->peak_bytes;
}

void reel__backend_set_path(reel_backend *b, const char *path) {
  snprintf(b->last_path, sizeof b->last_path, "%s", path);
}

reel_status reel_backend_set_option(reel_backend *b, const char *key, const char *value, reel_error *err) {
  if (!b || !key || !value) return reel_error_set(err, REEL_EINVAL, "option", "NULL backend, key or value");
  if (!b->ops->set_option)
    return reel_error_set(err, REEL_ENOTFOUND, key, "backend %s has no options", b->name);
  return b->ops->set_option(b, key, value, err);
}

reel_status reel_backend_synchronize(reel_backend *b, reel_error *err) {
  if (!b) return reel_error_set(err, REEL_EINVAL, "backend", "NULL backend");
  return b->ops->synchronize(b, err);
}

/* ---- Buffers ---- */

reel_status reel_buffer_new(reel_backend *b, size_t size, reel_buffer **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "buffer", "NULL output");
  *out = NULL;
  if (!b) return reel_error_set(err, REEL_EINVAL, "backend", "NULL backend");
  reel_buffer *buf = reel_calloc(1, sizeof *buf);
  if (!buf) return reel_error_set(err, REEL_ENOMEM, "buffer", "out of memory for the buffer descriptor");
  reel_status st = b->ops->buffer_alloc(b, size, &buf->data, err);
  if (st != REEL_OK) {
    reel_free(buf);
    return st;
  }
  buf->backend = b;
  buf->size = size;
  b->live_buffers++;
  b->buffer_bytes += size;
  note_peak(b);
  *out = buf;
  return REEL_OK;
}

reel_status reel_buffer_wrap_host(reel_backend *b, void *host, size_t size, int read_only, reel_buffer **out,
                                  reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "buffer", "NULL output");
  *out = NULL;
  if (!b) return reel_error_set(err, REEL_EINVAL, "backend", "NULL backend");
  if (!b->wrap_host)
    return reel_error_set(err, REEL_EUNSUPPORTED, "buffer", "backend %s cannot address host memory; upload instead",
                          b->name);
  if (!host && size) return reel_error_set(err, REEL_EINVAL, "host", "NULL memory of %zu bytes", size);
  reel_buffer *buf = reel_calloc(1, sizeof *buf);
  if (!buf) return reel_error_set(err, REEL_ENOMEM, "buffer", "out of memory for the buffer descriptor");
  buf->backend = b;
  buf->data = host;
  buf->size = size;
  buf->flags = REEL__BUF_WRAPPED | (read_only ? REEL__BUF_READ_ONLY : 0u);
  b->live_buffers++;
  *out = buf;
  return REEL_OK;
}

reel_status reel_buffer_wrap_device(reel_backend *b, void *device_ptr, size_t size, reel_buffer **out,
                                    reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "buffer", "NULL output");
  *out = NULL;
  if (!b) return reel_error_set(err, REEL_EINVAL, "backend", "NULL backend");
  if (b->kind == REEL_BACKEND_CPU)
    return reel_error_set(err, REEL_EUNSUPPORTED, "buffer", "backend %s has no device memory to wrap", b->name);
  if (!device_ptr && size) return reel_error_set(err, REEL_EINVAL, "device_ptr", "NULL memory of %zu bytes", size);
  reel_buffer *buf = reel_calloc(1, sizeof *buf);
  if (!buf) return reel_error_set(err, REEL_ENOMEM, "buffer", "out of memory for the buffer descriptor");
  buf->backend = b;
  buf->data = device_ptr;
  buf->size = size;
  buf->flags = REEL__BUF_WRAPPED;
  b->live_buffers++;
  *out = buf;
  return REEL_OK;
}

reel_status reel_backend_cuda_info(const reel_backend *b, int *device, void **stream, reel_error *err) {
  if (!b) return reel_error_set(err, REEL_EINVAL, "backend", "NULL backend");
#ifdef REEL_HAVE_CUDA
  if (b->kind == REEL_BACKEND_CUDA) {
    int d = 0;
    void *s = NULL;
    reel__cuda_info(b, &d, &s);
    if (device) *device = d;
    if (stream) *stream = s;
    return REEL_OK;
  }
#else
  (void)device;
  (void)stream;
#endif
  return reel_error_set(err, REEL_EUNSUPPORTED, "backend", "%s is not a CUDA backend", b->name);
}

void reel_buffer_destroy(reel_buffer **bufp) {
  if (!bufp || !*bufp) return;
  reel_buffer *buf = *bufp;
  *bufp = NULL;
  if (!(buf->flags & REEL__BUF_WRAPPED)) {
    note_peak(buf->backend);
    buf->backend->ops->buffer_free(buf->backend, buf->data);
    buf->backend->buffer_bytes -= buf->size;
  }
  buf->backend->live_buffers--;
  reel_free(buf);
}

size_t reel_buffer_size(const reel_buffer *buf) { return buf->size; }
reel_backend *reel_buffer_backend(const reel_buffer *buf) { return buf->backend; }

void *reel_buffer_host_ptr(const reel_buffer *buf) {
  return buf && buf->backend->kind == REEL_BACKEND_CPU ? buf->data : NULL;
}

static reel_status check_range(const reel_buffer *buf, size_t offset, size_t n, const char *field, reel_error *err) {
  if (!buf) return reel_error_set(err, REEL_EINVAL, field, "NULL buffer");
  if (offset > buf->size || n > buf->size - offset)
    return reel_error_set(err, REEL_ERANGE, field, "bytes [%zu, %zu + %zu) outside buffer of %zu bytes", offset, offset,
                          n, buf->size);
  return REEL_OK;
}

reel_status reel_buffer_upload(reel_buffer *dst, size_t offset, const void *src, size_t n, reel_error *err) {
  reel_status st = check_range(dst, offset, n, "dst", err);
  if (st != REEL_OK) return st;
  if (dst->flags & REEL__BUF_READ_ONLY) return reel_error_set(err, REEL_EINVAL, "dst", "buffer is read-only");
  if (n == 0) return REEL_OK;
  if (!src) return reel_error_set(err, REEL_EINVAL, "src", "NULL host pointer");
  return dst->backend->ops->upload(dst->backend, (char *)dst->data + offset, src, n, err);
}

reel_status reel_buffer_download(const reel_buffer *src, size_t offset, void *dst, size_t n, reel_error *err) {
  reel_status st = check_range(src, offset, n, "src", err);
  if (st != REEL_OK) return st;
  if (n == 0) return REEL_OK;
  if (!dst) return reel_error_set(err, REEL_EINVAL, "dst", "NULL host pointer");
  return src->backend->ops->download(src->backend, dst, (const char *)src->data + offset, n, err);
}

reel_status reel_buffer_copy(reel_buffer *dst, size_t dst_offset, const reel_buffer *src, size_t src_offset, size_t n,
                             reel_error *err) {
  reel_status st = check_range(dst, dst_offset, n, "dst", err);
  if (st == REEL_OK) st = check_range(src, src_offset, n, "src", err);
  if (st != REEL_OK) return st;
  if (dst->backend != src->backend)
    return reel_error_set(err, REEL_EINVAL, "src", "buffers on different backends (%s, %s)", src->backend->name,
                          dst->backend->name);
  if (dst->flags & REEL__BUF_READ_ONLY) return reel_error_set(err, REEL_EINVAL, "dst", "buffer is read-only");
  if (n == 0) return REEL_OK;
  return dst->backend->ops->copy(dst->backend, (char *)dst->data + dst_offset, (const char *)src->data + src_offset, n,
                                 err);
}

reel_status reel_buffer_memset(reel_buffer *dst, size_t offset, int value, size_t n, reel_error *err) {
  reel_status st = check_range(dst, offset, n, "dst", err);
  if (st != REEL_OK) return st;
  if (value < 0 || value > 255) return reel_error_set(err, REEL_ERANGE, "value", "must be 0..255, got %d", value);
  if (dst->flags & REEL__BUF_READ_ONLY) return reel_error_set(err, REEL_EINVAL, "dst", "buffer is read-only");
  if (n == 0) return REEL_OK;
  return dst->backend->ops->memset(dst->backend, (char *)dst->data + offset, value, n, err);
}

/* ---- Tensors ---- */

reel_status reel_tensor_new(reel_backend *b, reel_dtype dt, int ndim, const int64_t *shape, reel_tensor *out,
                            reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "tensor", "NULL output");
  reel_status st = reel_tensor_init(out, dt, ndim, shape, NULL, 0, err);
  if (st != REEL_OK) return st;
  reel_buffer *buf = NULL;
  st = reel_buffer_new(b, reel_tensor_nbytes(out), &buf, err);
  if (st != REEL_OK) {
    memset(out, 0, sizeof *out);
    return st;
  }
  out->buf = buf;
  return REEL_OK;
}

void reel_tensor_free(reel_tensor *t) {
  if (!t) return;
  reel_buffer_destroy(&t->buf);
  memset(t, 0, sizeof *t);
}

reel_status reel_tensor_check_fits(const reel_tensor *t, const char *field, reel_error *err) {
  if (!t) return reel_error_set(err, REEL_EINVAL, field, "NULL tensor");
  if (!t->buf) return reel_error_set(err, REEL_EINVAL, field, "tensor has no buffer");
  size_t span = reel_tensor_span_bytes(t);
  if (t->offset > t->buf->size || span > t->buf->size - t->offset) {
    char sb[96];
    return reel_error_set(err, REEL_ERANGE, field, "view %s %s at byte %zu (%zu bytes) outside buffer of %zu bytes",
                          reel_dtype_name(t->dtype), reel_tensor_shape_str(t, sb, sizeof sb), t->offset, span,
                          t->buf->size);
  }
  return REEL_OK;
}

static reel_status check_host_transfer(const reel_tensor *t, const void *host, size_t nbytes, reel_error *err) {
  reel_status st = reel_tensor_check_fits(t, "tensor", err);
  if (st != REEL_OK) return st;
  if (!reel_tensor_is_contiguous(t))
    return reel_error_set(err, REEL_EINVAL, "tensor", "host transfers need a contiguous tensor (reel_op_copy first)");
  if (nbytes != reel_tensor_nbytes(t))
    return reel_error_set(err, REEL_EINVAL, "nbytes", "tensor has %zu bytes, host data %zu", reel_tensor_nbytes(t),
                          nbytes);
  if (!host && nbytes) return reel_error_set(err, REEL_EINVAL, "host", "NULL host pointer");
  return REEL_OK;
}

reel_status reel_tensor_upload(const reel_tensor *t, const void *host, size_t nbytes, reel_error *err) {
  reel_status st = check_host_transfer(t, host, nbytes, err);
  if (st != REEL_OK) return st;
  return reel_buffer_upload(t->buf, t->offset, host, nbytes, err);
}

reel_status reel_tensor_download(const reel_tensor *t, void *host, size_t nbytes, reel_error *err) {
  reel_status st = check_host_transfer(t, host, nbytes, err);
  if (st != REEL_OK) return st;
  return reel_buffer_download(t->buf, t->offset, host, nbytes, err);
}

/* ---- Tensor arena ---- */

struct reel_tensor_arena {
  reel_buffer *buf;
  size_t used, peak;
};

reel_tensor_arena *reel_tensor_arena_new(reel_backend *b, size_t capacity, reel_error *err) {
  reel_tensor_arena *a = reel_calloc(1, sizeof *a);
  if (!a) {
    reel_error_set(err, REEL_ENOMEM, "arena", "out of memory");
    return NULL;
  }
  if (reel_buffer_new(b, capacity, &a->buf, err) != REEL_OK) {
    reel_free(a);
    return NULL;
  }
  return a;
}

void reel_tensor_arena_destroy(reel_tensor_arena **ap) {
  if (!ap || !*ap) return;
  reel_buffer_destroy(&(*ap)->buf);
  reel_free(*ap);
  *ap = NULL;
}

reel_status reel_tensor_arena_alloc(reel_tensor_arena *a, reel_dtype dt, int ndim, const int64_t *shape,
                                    reel_tensor *out, reel_error *err) {
  if (!a || !out) return reel_error_set(err, REEL_EINVAL, "arena", "NULL arena or output");
  reel_status st = reel_tensor_init(out, dt, ndim, shape, a->buf, 0, err);
  if (st != REEL_OK) return st;
  size_t start = (a->used + 63) & ~(size_t)63;
  size_t n = reel_tensor_nbytes(out);
  if (start > a->buf->size || n > a->buf->size - start) {
    char sb[96];
    reel_tensor_shape_str(out, sb, sizeof sb);
    memset(out, 0, sizeof *out);
    return reel_error_set(err, REEL_ELIMIT, "arena", "%s %s needs %zu bytes, %zu of capacity %zu free",
                          reel_dtype_name(dt), sb, n, start > a->buf->size ? 0 : a->buf->size - start, a->buf->size);
  }
  out->offset = start;
  a->used = start + n;
  if (a->used > a->peak) a->peak = a->used;
  return REEL_OK;
}

size_t reel_tensor_arena_used(const reel_tensor_arena *a) { return a->used; }
void reel_tensor_arena_release(reel_tensor_arena *a, size_t mark) {
  if (mark < a->used) a->used = mark;
}
void reel_tensor_arena_reset(reel_tensor_arena *a) { a->used = 0; }
size_t reel_tensor_arena_peak(const reel_tensor_arena *a) { return a->peak; }
size_t reel_tensor_arena_capacity(const reel_tensor_arena *a) { return a->buf->size; }
