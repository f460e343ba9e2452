/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weight tensors of a model folder on a backend (see model_tensors.h): zero-copy views of
 * the mapped shards on the CPU, uploads elsewhere.
 */
#include "model_tensors.h"

#include <stdint.h>
#include <string.h>

#include "reel/alloc.h"

#define MT_FLOATS (REEL_ST_MASK(REEL_ST_F32) | REEL_ST_MASK(REEL_ST_F16) | REEL_ST_MASK(REEL_ST_BF16))

reel_status reel__mt_open(reel__mt *mt, reel_backend *b, const char *dir, reel_error *err) {
  memset(mt, 0, sizeof *mt);
  mt->b = b;
  reel_status st = reel_weights_open_dir(dir, &mt->w, err);
  if (st != REEL_OK) return st;
  mt->nshards = reel_weights_shard_count(mt->w);
  mt->shard = reel_calloc(mt->nshards ? mt->nshards : 1, sizeof *mt->shard);
  if (!mt->shard) {
    reel__mt_close(mt);
    return reel_error_set(err, REEL_ENOMEM, "weights", "out of memory");
  }
  if (reel_backend_get_kind(b) != REEL_BACKEND_CPU) return REEL_OK;
  for (size_t i = 0; i < mt->nshards; i++) {
    const reel_safetensors *s = reel_weights_shard(mt->w, i);
    const reel_st_tensor *t0 = reel_safetensors_at(s, 0);
    uint64_t size = reel_safetensors_data_size(s);
    if (!t0 || size == 0) continue;
    void *base = (void *)((const char *)t0->data - t0->offset);
    st = reel_buffer_wrap_host(b, base, (size_t)size, 1, &mt->shard[i], err);
    if (st == REEL_EUNSUPPORTED) {
      /* A CPU backend told not to wrap host memory (wrap_host=off): upload tensor by tensor, as on a device. */
      reel_error_clear(err);
      continue;
    }
    if (st != REEL_OK) {
      reel__mt_close(mt);
      return st;
    }
  }
  return REEL_OK;
}

void reel__mt_close(reel__mt *mt) {
  if (!mt) return;
  for (size_t i = 0; i < mt->nowned; i++) reel_tensor_free(&mt->owned[i]);
  reel_free(mt->owned);
  for (size_t i = 0; mt->shard && i < mt->nshards; i++) reel_buffer_destroy(&mt->shard[i]);
  reel_free(mt->shard);
  reel_weights_close(&mt->w);
  memset(mt, 0, sizeof *mt);
}

static reel_dtype dtype_of(reel_st_dtype d) {
  return d == REEL_ST_F32 ? REEL_F32 : d == REEL_ST_F16 ? REEL_F16 : REEL_BF16;
}

reel_status reel__mt_get(reel__mt *mt, const char *name, int rank, const int64_t *shape, reel_tensor *out,
                         reel_error *err) {
  const reel_st_tensor *t = NULL;
  reel_status st = reel_weights_expect(mt->w, name, MT_FLOATS, rank, shape, &t, err);
  if (st != REEL_OK) return st;
  if (t->rank > REEL_MAX_DIMS)
    return reel_error_set(err, REEL_EMODEL, name, "rank %d, at most %d", t->rank, REEL_MAX_DIMS);
  reel_dtype dt = dtype_of(t->dtype);
  size_t esz = reel_dtype_size(dt);
  /* A view into the wrapped shard when the data is aligned for its dtype. */
  for (size_t i = 0; i < mt->nshards; i++) {
    const reel_safetensors *s = reel_weights_shard(mt->w, i);
    if (!mt->shard[i] || reel_safetensors_find(s, t->name) != t) continue;
    if (((uintptr_t)t->data % esz) != 0) break;
    return reel_tensor_init(out, dt, t->rank, t->shape, mt->shard[i], (size_t)t->offset, err);
  }
  if (mt->nowned == mt->capowned) {
    size_t cap = mt->capowned ? mt->capowned * 2 : 32;
    reel_tensor *v = reel_realloc(mt->owned, cap * sizeof *v);
    if (!v) return reel_error_set(err, REEL_ENOMEM, name, "out of memory");
    mt->owned = v;
    mt->capowned = cap;
  }
  reel_tensor *nt = &mt->owned[mt->nowned];
  if ((st = reel_tensor_new(mt->b, dt, t->rank, t->shape, nt, err)) != REEL_OK) return st;
  mt->nowned++;
  if ((st = reel_tensor_upload(nt, t->data, (size_t)t->nbytes, err)) != REEL_OK) return st;
  *out = *nt;
  return REEL_OK;
}

reel_status reel__mt_get_host(reel__mt *mt, const char *name, int rank, const int64_t *shape, float **out,
                              reel_error *err) {
  const reel_st_tensor *t = NULL;
  *out = NULL;
  reel_status st = reel_weights_expect(mt->w, name, MT_FLOATS, rank, shape, &t, err);
  if (st != REEL_OK) return st;
  size_t n = (size_t)t->numel;
  float *f = reel_malloc((n ? n : 1) * sizeof *f);
  void *raw = reel_malloc(t->nbytes ? (size_t)t->nbytes : 1);
  if (!f || !raw) {
    reel_free(f);
    reel_free(raw);
    return reel_error_set(err, REEL_ENOMEM, name, "out of memory");
  }
  memcpy(raw, t->data, (size_t)t->nbytes); /* the mapping may be unaligned */
  st = reel_convert(dtype_of(t->dtype), raw, REEL_F32, f, n);
  reel_free(raw);
  if (st != REEL_OK) {
    reel_free(f);
    return reel_error_set(err, st, name, "cannot convert to f32");
  }
  *out = f;
  return REEL_OK;
}
