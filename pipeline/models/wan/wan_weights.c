/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading a Wan transformer's weights into backend tensors, from the diffusers
 * layout or from a single file with the original Wan2.1 key names.
 *
 * Every tensor the configuration implies is looked up under the layout's name,
 * checked for a float dtype and the exact shape the configuration gives, and
 * wrapped in place: each shard's data section becomes one backend buffer (the
 * mmap'd bytes themselves on the CPU, one upload elsewhere) and each tensor is a
 * view into it. Only a tensor whose data is misaligned for its dtype is copied.
 * With the weights_bf16 option on a device backend, the shards are not uploaded
 * whole: each tensor is uploaded on its own, its matrices converted to bf16.
 * Afterwards every tensor of the checkpoint must have been used: a file with more
 * blocks than the config, or with image-conditioning tensors, is rejected naming
 * the first tensor left over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "wan_internal.h"

/* diffusers name -> original Wan2.1 name, for names outside the blocks. */
static const struct {
  const char *diffusers, *original;
} top_names[] = {
    {"patch_embedding", "patch_embedding"},
    {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
    {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
    {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
    {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
    {"condition_embedder.time_proj", "time_projection.1"},
    {"scale_shift_table", "head.modulation"},
    {"proj_out", "head.head"},
};

/* The same inside blocks.N. */
static const struct {
  const char *diffusers, *original;
} block_names[] = {
    {"attn1.to_q", "self_attn.q"},
    {"attn1.to_k", "self_attn.k"},
    {"attn1.to_v", "self_attn.v"},
    {"attn1.to_out.0", "self_attn.o"},
    {"attn1.norm_q", "self_attn.norm_q"},
    {"attn1.norm_k", "self_attn.norm_k"},
    {"attn2.to_q", "cross_attn.q"},
    {"attn2.to_k", "cross_attn.k"},
    {"attn2.to_v", "cross_attn.v"},
    {"attn2.to_out.0", "cross_attn.o"},
    {"attn2.norm_q", "cross_attn.norm_q"},
    {"attn2.norm_k", "cross_attn.norm_k"},
    {"norm2", "norm3"},
    {"ffn.net.0.proj", "ffn.0"},
    {"ffn.net.2", "ffn.2"},
    {"scale_shift_table", "modulation"},
};

/*
 * Writes the checkpoint's name for a diffusers name ("blocks.3.attn1.to_q.weight")
 * into buf. Returns 0 when it does not fit.
 */
static int map_name(const reel_wan_transformer *m, const char *dname, char *buf, size_t size) {
  const char *mapped = dname;
  char tmp[256];
  if (m->original) {
    if (strncmp(dname, "blocks.", 7) == 0) {
      char *end;
      long idx = strtol(dname + 7, &end, 10);
      const char *rest = *end == '.' ? end + 1 : end;
      for (size_t i = 0; i < sizeof block_names / sizeof block_names[0]; i++) {
        size_t n = strlen(block_names[i].diffusers);
        if (strncmp(rest, block_names[i].diffusers, n) == 0 && (rest[n] == '.' || rest[n] == '\0')) {
          snprintf(tmp, sizeof tmp, "blocks.%ld.%s%s", idx, block_names[i].original, rest + n);
          mapped = tmp;
          break;
        }
      }
    } else {
      for (size_t i = 0; i < sizeof top_names / sizeof top_names[0]; i++) {
        size_t n = strlen(top_names[i].diffusers);
        if (strncmp(dname, top_names[i].diffusers, n) == 0 && (dname[n] == '.' || dname[n] == '\0')) {
          snprintf(tmp, sizeof tmp, "%s%s", top_names[i].original, dname + n);
          mapped = tmp;
          break;
        }
      }
    }
  }
  int len = snprintf(buf, size, "%s%s", m->prefix, mapped);
  return len > 0 && (size_t)len < size;
}

typedef struct loader {
  reel_wan_transformer *m;
  char **used; /* names of the tensors taken, for the left-over check */
  size_t nused, capused;
  reel_error *err;
} loader;

static reel_status remember(loader *L, const char *name) {
  if (L->nused == L->capused) {
    size_t cap = L->capused ? 2 * L->capused : 256;
    char **n = reel_realloc(L->used, cap * sizeof *n);
    if (!n) return reel_error_set(L->err, REEL_ENOMEM, name, "out of memory");
    L->used = n;
    L->capused = cap;
  }
  L->used[L->nused] = reel_strdup(name);
  if (!L->used[L->nused]) return reel_error_set(L->err, REEL_ENOMEM, name, "out of memory");
  L->nused++;
  return REEL_OK;
}

/* Index of the shard whose data section holds p; -1 when none does. */
static int shard_of(const reel_wan_transformer *m, const void *p) {
  for (size_t i = 0; i < m->nshards; i++) {
    const char *base = m->shard_base[i];
    if (base && (const char *)p >= base && (const char *)p < base + m->shard_size[i]) return (int)i;
  }
  return -1;
}

static reel_status own_tensor(reel_wan_transformer *m, const reel_tensor *t, reel_error *err) {
  if (m->nowned == m->capowned) {
    size_t cap = m->capowned ? 2 * m->capowned : 16;
    reel_tensor *n = reel_realloc(m->owned, cap * sizeof *n);
    if (!n) return reel_error_set(err, REEL_ENOMEM, "weights", "out of memory");
    m->owned = n;
    m->capowned = cap;
  }
  m->owned[m->nowned++] = *t;
  return REEL_OK;
}

static reel_dtype to_reel_dtype(reel_st_dtype dt) {
  return dt == REEL_ST_F32 ? REEL_F32 : dt == REEL_ST_F16 ? REEL_F16 : REEL_BF16;
}

/*
 * Uploads one tensor into a buffer of its own (the per-tensor mode of
 * weights_bf16): matrices (rank 2 and the rank-5 patch embedding) become bf16,
 * everything else keeps its dtype. The data is staged through aligned host
 * memory, since safetensors does not align tensors for their dtype.
 */
static reel_status take_converted(reel_wan_transformer *m, const reel_st_tensor *t, const char *name, int rank,
                                  const int64_t *shape, reel_dtype dt, reel_tensor *out, reel_error *err) {
  const reel_dtype want = (rank == 2 || rank == 5) ? REEL_BF16 : dt;
  const size_t n = (size_t)t->numel;
  reel_tensor own;
  reel_status st = reel_tensor_new(m->b, want, rank, shape, &own, err);
  if (st != REEL_OK) {
    reel_error_prefix_field(err, name, '/');
    return st;
  }
  void *stage = reel_malloc(t->nbytes ? (size_t)t->nbytes : 1);
  void *conv = want == dt ? stage : reel_malloc(n * reel_dtype_size(want) + 1);
  if (!stage || !conv) {
    st = reel_error_set(err, REEL_ENOMEM, name, "out of memory staging %zu bytes", (size_t)t->nbytes);
  } else {
    memcpy(stage, t->data, (size_t)t->nbytes);
    st = reel_convert(dt, stage, want, conv, n);
    if (st != REEL_OK) st = reel_error_set(err, st, name, "cannot convert %s to %s", reel_dtype_name(dt),
                                           reel_dtype_name(want));
  }
  if (st == REEL_OK) st = reel_tensor_upload(&own, conv, n * reel_dtype_size(want), err);
  if (st == REEL_OK) st = own_tensor(m, &own, err);
  if (conv != stage) reel_free(conv);
  reel_free(stage);
  if (st != REEL_OK) {
    reel_tensor_free(&own);
    return st;
  }
  *out = own;
  return REEL_OK;
}

/*
 * Takes tensor `dname` (diffusers name) of the given shape into *out. With
 * `optional` set, a missing tensor leaves *out zeroed and returns REEL_OK.
 */
static reel_status take(loader *L, const char *dname, int rank, const int64_t *shape, int optional, reel_tensor *out) {
  reel_wan_transformer *m = L->m;
  char name[320];
  memset(out, 0, sizeof *out);
  if (!map_name(m, dname, name, sizeof name)) return reel_error_set(L->err, REEL_ELIMIT, dname, "tensor name too long");
  if (optional && !reel_weights_find(m->w, name)) return REEL_OK;
  const unsigned floats = REEL_ST_MASK(REEL_ST_F32) | REEL_ST_MASK(REEL_ST_F16) | REEL_ST_MASK(REEL_ST_BF16);
  const reel_st_tensor *t = NULL;
  reel_status st = reel_weights_expect(m->w, name, floats, rank, shape, &t, L->err);
  if (st != REEL_OK) return st;
  if ((st = remember(L, name)) != REEL_OK) return st;
  reel_dtype dt = to_reel_dtype(t->dtype);
  int s = shard_of(m, t->data);
  if (s < 0) return reel_error_set(L->err, REEL_EINTERNAL, name, "tensor data outside every shard");
  size_t esz = reel_dtype_size(dt);
  size_t off = (size_t)((const char *)t->data - m->shard_base[s]);
  m->params += (int64_t)t->numel;
  if (m->per_tensor) return take_converted(m, t, name, rank, shape, dt, out, L->err);
  if ((uintptr_t)t->data % esz == 0 && off % esz == 0) {
    st = reel_tensor_init(out, dt, rank, shape, m->shard_buf[s], off, L->err);
    if (st != REEL_OK) reel_error_prefix_field(L->err, name, '/');
    return st;
  }
  /* Unaligned for its dtype (legal in safetensors, rare in practice): keep an aligned copy. */
  reel_tensor own;
  st = reel_tensor_new(m->b, dt, rank, shape, &own, L->err);
  if (st != REEL_OK) return st;
  st = reel_tensor_upload(&own, t->data, (size_t)t->nbytes, L->err);
  if (st == REEL_OK) st = own_tensor(m, &own, L->err);
  if (st != REEL_OK) {
    reel_tensor_free(&own);
    return st;
  }
  *out = own;
  return REEL_OK;
}

static reel_status take_linear(loader *L, const char *dname, int64_t n_out, int64_t n_in, wan_linear *l) {
  char name[256];
  int64_t ws[2] = {n_out, n_in}, bs[1] = {n_out};
  snprintf(name, sizeof name, "%s.weight", dname);
  reel_status st = take(L, name, 2, ws, 0, &l->w);
  if (st != REEL_OK) return st;
  snprintf(name, sizeof name, "%s.bias", dname);
  return take(L, name, 1, bs, 0, &l->b);
}

static reel_status take_vec(loader *L, const char *dname, int64_t n, reel_tensor *t) {
  int64_t s[1] = {n};
  return take(L, dname, 1, s, 0, t);
}

/* Wraps (or uploads) every shard's data section as one buffer. */
static reel_status map_shards(reel_wan_transformer *m, reel_error *err) {
  m->nshards = reel_weights_shard_count(m->w);
  m->shard_buf = reel_calloc(m->nshards ? m->nshards : 1, sizeof *m->shard_buf);
  m->shard_base = reel_calloc(m->nshards ? m->nshards : 1, sizeof *m->shard_base);
  m->shard_size = reel_calloc(m->nshards ? m->nshards : 1, sizeof *m->shard_size);
  if (!m->shard_buf || !m->shard_base || !m->shard_size)
    return reel_error_set(err, REEL_ENOMEM, "weights", "out of memory");
  for (size_t i = 0; i < m->nshards; i++) {
    const reel_safetensors *sf = reel_weights_shard(m->w, i);
    const reel_st_tensor *t0 = reel_safetensors_at(sf, 0);
    size_t size = (size_t)reel_safetensors_data_size(sf);
    if (!t0 || size == 0) continue;
    char *base = (char *)t0->data - t0->offset;
    m->shard_base[i] = base;
    m->shard_size[i] = size;
    reel_status st = reel_buffer_wrap_host(m->b, base, size, 1, &m->shard_buf[i], err);
    if (st == REEL_EUNSUPPORTED && m->weights_bf16) {
      /* Converted tensor by tensor in take(): the shard itself never goes up. */
      reel_error_clear(err);
      m->per_tensor = 1;
      st = REEL_OK;
    } else if (st == REEL_EUNSUPPORTED) {
      reel_error_clear(err);
      st = reel_buffer_new(m->b, size, &m->shard_buf[i], err);
      if (st == REEL_OK) st = reel_buffer_upload(m->shard_buf[i], 0, base, size, err);
    }
    if (st != REEL_OK) {
      reel_error_prefix_field(err, reel_safetensors_path(sf), '/');
      return st;
    }
  }
  return REEL_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Tensors diffusers itself skips when loading (leftovers of older exports). */
static int ignorable(const char *name) { return strstr(name, "norm_added_q") != NULL; }

reel_status reel__wan_load_weights(reel_wan_transformer *m, reel_error *err) {
  const reel_wan_config *c = &m->cfg;
  loader L = {m, NULL, 0, 0, err};
  reel_status st = map_shards(m, err);
  if (st != REEL_OK) goto done;

  const int64_t D = c->dim, pp = c->patch[0] * c->patch[1] * c->patch[2];
  int64_t pe[5] = {D, c->in_channels, c->patch[0], c->patch[1], c->patch[2]};
  if ((st = take(&L, "patch_embedding.weight", 5, pe, 0, &m->patch_w5)) != REEL_OK) goto done;
  int64_t pw2[2] = {D, c->in_channels * pp};
  if ((st = reel_tensor_reshape(&m->patch_w5, 2, pw2, &m->patch_w, err)) != REEL_OK) goto done;
  if ((st = take_vec(&L, "patch_embedding.bias", D, &m->patch_b)) != REEL_OK) goto done;
  if ((st = take_linear(&L, "condition_embedder.time_embedder.linear_1", D, c->freq_dim, &m->time1)) != REEL_OK)
    goto done;
  if ((st = take_linear(&L, "condition_embedder.time_embedder.linear_2", D, D, &m->time2)) != REEL_OK) goto done;
  if ((st = take_linear(&L, "condition_embedder.time_proj", 6 * D, D, &m->tproj)) != REEL_OK) goto done;
  if ((st = take_linear(&L, "condition_embedder.text_embedder.linear_1", D, c->text_dim, &m->text1)) != REEL_OK)
    goto done;
  if ((st = take_linear(&L, "condition_embedder.text_embedder.linear_2", D, D, &m->text2)) != REEL_OK) goto done;

  m->blocks = reel_calloc((size_t)c->layers, sizeof *m->blocks);
  if (!m->blocks) {
    st = reel_error_set(err, REEL_ENOMEM, "blocks", "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < c->layers; i++) {
    wan_block *bl = &m->blocks[i];
    char n[128];
#define NAME(s) (snprintf(n, sizeof n, "blocks.%lld." s, (long long)i), n)
    int64_t sst[3] = {1, 6, D};
    if ((st = take(&L, NAME("scale_shift_table"), 3, sst, 0, &bl->sst)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn1.to_q"), D, D, &bl->q)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn1.to_k"), D, D, &bl->k)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn1.to_v"), D, D, &bl->v)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn1.to_out.0"), D, D, &bl->o)) != REEL_OK) goto done;
    if ((st = take_vec(&L, NAME("attn1.norm_q.weight"), D, &bl->norm_q)) != REEL_OK) goto done;
    if ((st = take_vec(&L, NAME("attn1.norm_k.weight"), D, &bl->norm_k)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn2.to_q"), D, D, &bl->cq)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn2.to_k"), D, D, &bl->ck)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn2.to_v"), D, D, &bl->cv)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("attn2.to_out.0"), D, D, &bl->co)) != REEL_OK) goto done;
    if ((st = take_vec(&L, NAME("attn2.norm_q.weight"), D, &bl->cnorm_q)) != REEL_OK) goto done;
    if ((st = take_vec(&L, NAME("attn2.norm_k.weight"), D, &bl->cnorm_k)) != REEL_OK) goto done;
    if (c->cross_attn_norm) {
      if ((st = take_vec(&L, NAME("norm2.weight"), D, &bl->norm2_w)) != REEL_OK) goto done;
      if ((st = take_vec(&L, NAME("norm2.bias"), D, &bl->norm2_b)) != REEL_OK) goto done;
    }
    if ((st = take_linear(&L, NAME("ffn.net.0.proj"), c->ffn_dim, D, &bl->ff1)) != REEL_OK) goto done;
    if ((st = take_linear(&L, NAME("ffn.net.2"), D, c->ffn_dim, &bl->ff2)) != REEL_OK) goto done;
#undef NAME
  }
  int64_t hs[3] = {1, 2, D};
  if ((st = take(&L, "scale_shift_table", 3, hs, 0, &m->head_sst)) != REEL_OK) goto done;
  if ((st = take_linear(&L, "proj_out", c->out_channels * pp, D, &m->proj_out)) != REEL_OK) goto done;

  /* Every tensor of the checkpoint must have found a use. */
  qsort(L.used, L.nused, sizeof *L.used, cmp_str);
  for (size_t i = 0; i < reel_weights_count(m->w); i++) {
    const reel_st_tensor *t = reel_weights_at(m->w, i);
    if (ignorable(t->name)) continue;
    const char *key = t->name;
    if (!bsearch(&key, L.used, L.nused, sizeof *L.used, cmp_str)) {
      st = reel_error_set(err, REEL_EMODEL, t->name,
                          "in %s but not used by the configuration (num_layers=%lld, cross_attn_norm=%d; image "
                          "conditioning is not supported)",
                          t->file, (long long)c->layers, c->cross_attn_norm);
      goto done;
    }
  }
done:
  for (size_t i = 0; i < L.nused; i++) reel_free(L.used[i]);
  reel_free(L.used);
  return st;
}

int reel__wan_detect_layout(const reel_weights *w, int *original, const char **prefix) {
  static const char *const prefixes[] = {"", "model.diffusion_model."};
  for (int p = 0; p < 2; p++) {
    char name[128];
    snprintf(name, sizeof name, "%sblocks.0.self_attn.q.weight", prefixes[p]);
    if (reel_weights_find(w, name)) {
      *original = 1;
      *prefix = prefixes[p];
      return 1;
    }
    snprintf(name, sizeof name, "%shead.head.weight", prefixes[p]);
    if (reel_weights_find(w, name)) {
      *original = 1;
      *prefix = prefixes[p];
      return 1;
    }
  }
  *original = 0;
  *prefix = "";
  return 0;
}
