/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The UMT5 encoder (see reel/umt5.h): config and weight loading, the relative position
 * buckets, and the forward on backend ops (matmul, matmul_batched, add, softmax, rms_norm,
 * gelu_tanh, mul). The embedding lookup and the position bias tables are gathered on the
 * host from the mapped weights and uploaded, which keeps the op set small.
 */
#include "reel/umt5.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_tensors.h"
#include "reel/alloc.h"
#include "reel/json.h"

typedef struct umt5_layer {
  reel_tensor ln1;      /* [d_model] */
  reel_tensor q, k, v;  /* [H*d_kv, d_model] */
  reel_tensor o;        /* [d_model, H*d_kv] */
  float *rel_bias;      /* host [num_buckets, H] */
  reel_tensor ln2;      /* [d_model] */
  reel_tensor wi0, wi1; /* [d_ff, d_model] */
  reel_tensor wo;       /* [d_model, d_ff] */
} umt5_layer;

struct reel_umt5 {
  reel_umt5_config cfg;
  reel_backend *b; /* borrowed */
  reel__mt mt;
  const reel_st_tensor *embed; /* [vocab, d_model] in the mapping (any float dtype) */
  umt5_layer *layers;          /* [num_layers] */
  reel_tensor final_ln;        /* [d_model] */
};

/* ---- loading -------------------------------------------------------------------------- */

static reel_status parse_config(const char *dir, reel_umt5_config *c, reel_error *err) {
  char path[4096];
  json_t *root = NULL;
  const char *p = "config.json";
  if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "dir", "path longer than %zu bytes", sizeof path);
  /* jansson reads with integers as integers: these configs hold no huge ones. */
  reel_status st = reel_json_load_file(path, 1u << 20, &root, err);
  if (st != REEL_OK) return st;
  const char *mt = NULL, *ffp = NULL, *act = NULL;
  static const char *const types[] = {"umt5", NULL};
  int ti = 0, gated = 1;
  if ((st = reel_json_get_enum(root, p, "model_type", REEL_JSON_REQUIRED, types, &ti, err)) != REEL_OK) goto out;
  (void)mt;
  if ((st = reel_json_get_int(root, p, "vocab_size", REEL_JSON_REQUIRED, 1, 1 << 22, &c->vocab_size, err)) ||
      (st = reel_json_get_int(root, p, "d_model", REEL_JSON_REQUIRED, 1, 65536, &c->d_model, err)) ||
      (st = reel_json_get_int(root, p, "d_kv", REEL_JSON_REQUIRED, 1, 4096, &c->d_kv, err)) ||
      (st = reel_json_get_int(root, p, "num_heads", REEL_JSON_REQUIRED, 1, 1024, &c->num_heads, err)) ||
      (st = reel_json_get_int(root, p, "d_ff", REEL_JSON_REQUIRED, 1, 1 << 20, &c->d_ff, err)) ||
      (st = reel_json_get_int(root, p, "num_layers", REEL_JSON_REQUIRED, 1, 1024, &c->num_layers, err)))
    goto out;
  c->num_buckets = 32;
  c->max_distance = 128;
  c->eps = 1e-6;
  if ((st = reel_json_get_int(root, p, "relative_attention_num_buckets", REEL_JSON_OPTIONAL, 2, 4096, &c->num_buckets,
                              err)) ||
      (st = reel_json_get_int(root, p, "relative_attention_max_distance", REEL_JSON_OPTIONAL, 1, 1 << 20,
                              &c->max_distance, err)) ||
      (st = reel_json_get_double(root, p, "layer_norm_epsilon", REEL_JSON_OPTIONAL, 0.0, 1.0, &c->eps, err)))
    goto out;
  if ((st = reel_json_get_string(root, p, "feed_forward_proj", REEL_JSON_OPTIONAL, 64, &ffp, err)) != REEL_OK) goto out;
  if ((st = reel_json_get_string(root, p, "dense_act_fn", REEL_JSON_OPTIONAL, 64, &act, err)) != REEL_OK) goto out;
  if (ffp && strcmp(ffp, "gated-gelu")) gated = 0;
  if (!gated || (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "config.json.feed_forward_proj",
                        "only gated-gelu with gelu_new (tanh approximation) is supported, got %s / %s",
                        ffp ? ffp : "(default)", act ? act : "(default)");
    goto out;
  }
  if (c->num_buckets < 4 || c->max_distance < c->num_buckets / 4) {
    st = reel_error_set(err, REEL_EINVAL, "config.json.relative_attention_max_distance",
                        "must be at least relative_attention_num_buckets / 4 (%lld), got %lld",
                        (long long)(c->num_buckets / 4), (long long)c->max_distance);
    goto out;
  }
out:
  json_decref(root);
  return st;
}

void reel_umt5_destroy(reel_umt5 **mp) {
  if (!mp || !*mp) return;
  reel_umt5 *m = *mp;
  for (int64_t i = 0; m->layers && i < m->cfg.num_layers; i++) reel_free(m->layers[i].rel_bias);
  reel_free(m->layers);
  reel__mt_close(&m->mt);
  reel_free(m);
  *mp = NULL;
}

reel_status reel_umt5_load(reel_backend *b, const char *dir, reel_umt5 **out, reel_error *err) {
  reel_status st;
  char name[160];
  *out = NULL;
  if (!b || !dir) return reel_error_set(err, REEL_EINVAL, "text_encoder", "backend and folder are required");
  reel_umt5 *m = reel_calloc(1, sizeof *m);
  if (!m) return reel_error_set(err, REEL_ENOMEM, "text_encoder", "out of memory");
  m->b = b;
  if ((st = parse_config(dir, &m->cfg, err)) != REEL_OK) goto fail;
  if ((st = reel__mt_open(&m->mt, b, dir, err)) != REEL_OK) goto fail;
  const reel_umt5_config *c = &m->cfg;
  const int64_t D = c->d_model, I = c->num_heads * c->d_kv, F = c->d_ff;
  const reel_st_tensor *emb = NULL;
  int64_t eshape[2] = {c->vocab_size, D};
  unsigned floats = REEL_ST_MASK(REEL_ST_F32) | REEL_ST_MASK(REEL_ST_F16) | REEL_ST_MASK(REEL_ST_BF16);
  st = reel_weights_expect(m->mt.w, "shared.weight", floats, 2, eshape, &emb, err);
  if (st == REEL_ENOTFOUND) {
    reel_error_clear(err);
    st = reel_weights_expect(m->mt.w, "encoder.embed_tokens.weight", floats, 2, eshape, &emb, err);
  }
  if (st != REEL_OK) goto fail;
  m->embed = emb;
  m->layers = reel_calloc((size_t)c->num_layers, sizeof *m->layers);
  if (!m->layers) {
    st = reel_error_set(err, REEL_ENOMEM, "text_encoder", "out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < c->num_layers; i++) {
    umt5_layer *L = &m->layers[i];
    int64_t sD[1] = {D}, sQ[2] = {I, D}, sO[2] = {D, I}, sF[2] = {F, D}, sW[2] = {D, F};
    int64_t sB[2] = {c->num_buckets, c->num_heads};
#define GET(field, fmt, rank, shape)                                                          \
  do {                                                                                        \
    snprintf(name, sizeof name, "encoder.block.%lld." fmt, (long long)i);                     \
    if ((st = reel__mt_get(&m->mt, name, rank, shape, &L->field, err)) != REEL_OK) goto fail; \
  } while (0)
    GET(ln1, "layer.0.layer_norm.weight", 1, sD);
    GET(q, "layer.0.SelfAttention.q.weight", 2, sQ);
    GET(k, "layer.0.SelfAttention.k.weight", 2, sQ);
    GET(v, "layer.0.SelfAttention.v.weight", 2, sQ);
    GET(o, "layer.0.SelfAttention.o.weight", 2, sO);
    GET(ln2, "layer.1.layer_norm.weight", 1, sD);
    GET(wi0, "layer.1.DenseReluDense.wi_0.weight", 2, sF);
    GET(wi1, "layer.1.DenseReluDense.wi_1.weight", 2, sF);
    GET(wo, "layer.1.DenseReluDense.wo.weight", 2, sW);
#undef GET
    snprintf(name, sizeof name, "encoder.block.%lld.layer.0.SelfAttention.relative_attention_bias.weight",
             (long long)i);
    if ((st = reel__mt_get_host(&m->mt, name, 2, sB, &L->rel_bias, err)) != REEL_OK) goto fail;
  }
  {
    int64_t sD[1] = {D};
    if ((st = reel__mt_get(&m->mt, "encoder.final_layer_norm.weight", 1, sD, &m->final_ln, err)) != REEL_OK) goto fail;
  }
  *out = m;
  return REEL_OK;
fail:
  reel_error_prefix_field(err, "text_encoder", '/');
  reel_umt5_destroy(&m);
  return st;
}

const reel_umt5_config *reel_umt5_get_config(const reel_umt5 *m) { return &m->cfg; }

/* ---- forward -------------------------------------------------------------------------- */

/* T5's bidirectional bucket of relative position rp = key - query, with torch's f32 log. */
static int64_t rel_bucket(int64_t rp, int64_t num_buckets, int64_t max_distance) {
  int64_t nb = num_buckets / 2;
  int64_t bucket = rp > 0 ? nb : 0;
  int64_t a = rp < 0 ? -rp : rp;
  int64_t max_exact = nb / 2;
  if (a < max_exact) return bucket + a;
  float ratio = logf((float)a / (float)max_exact) / (float)log((double)max_distance / (double)max_exact);
  float scaled = ratio * (float)(nb - max_exact);
  int64_t large = max_exact + (int64_t)scaled;
  if (large > nb - 1) large = nb - 1;
  return bucket + large;
}

static size_t al(size_t bytes) { return (bytes + 63) / 64 * 64; }

size_t reel_umt5_arena_bytes(const reel_umt5 *m, size_t n) {
  const reel_umt5_config *c = &m->cfg;
  size_t D = (size_t)c->d_model, I = (size_t)(c->num_heads * c->d_kv), F = (size_t)c->d_ff, H = (size_t)c->num_heads;
  size_t f = sizeof(float);
  size_t per_layer = 4 * al(n * I * f) + 2 * al(H * n * n * f) + 2 * al(n * F * f) + al(n * D * f);
  return al(n * D * f) + al(n * D * f) + per_layer;
}

reel_status reel_umt5_forward(reel_umt5 *m, const int32_t *ids, size_t n, reel_tensor_arena *arena, reel_tensor *out,
                              reel_error *err) {
  const reel_umt5_config *c = &m->cfg;
  reel_backend *b = m->b;
  reel_status st = REEL_OK;
  const int64_t D = c->d_model, H = c->num_heads, K = c->d_kv, I = H * K, F = c->d_ff;
  float *host = NULL;
  int64_t *buckets = NULL;
  if (n == 0 || n > REEL_UMT5_MAX_TOKENS)
    return reel_error_set(err, REEL_ERANGE, "input_ids", "must have 1..%d tokens, got %zu", REEL_UMT5_MAX_TOKENS, n);
  if (!out || out->dtype != REEL_F32 || out->ndim != 2 || out->shape[0] != (int64_t)n || out->shape[1] != D)
    return reel_error_set(err, REEL_EINVAL, "out", "must be an f32 tensor [%zu, %lld]", n, (long long)D);
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return reel_error_set(err, REEL_ERANGE, "input_ids", "id %d at %zu is outside 0..%lld", ids[i], i,
                            (long long)c->vocab_size - 1);
  size_t mark = reel_tensor_arena_used(arena);
  reel_tensor x, h, q, k, v, ao, scores, bias, g, l, y;
  int64_t sx[2] = {(int64_t)n, D};
  if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sx, &x, err)) != REEL_OK) goto done;
  if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sx, &h, err)) != REEL_OK) goto done;

  /* Embedding rows gathered on the host (the table stays mapped, whatever its dtype). */
  {
    size_t esz = reel_st_dtype_size(m->embed->dtype);
    size_t row = (size_t)D * esz;
    size_t hbytes = n * (size_t)D * sizeof(float);
    size_t bbytes = (size_t)H * n * n * sizeof(float);
    host = reel_malloc(hbytes > bbytes ? hbytes : bbytes);
    void *raw = reel_malloc(row);
    buckets = reel_malloc(n * n * sizeof *buckets);
    if (!host || !raw || !buckets) {
      reel_free(raw);
      st = reel_error_set(err, REEL_ENOMEM, "text_encoder", "out of memory for %zu tokens", n);
      goto done;
    }
    reel_dtype dt = m->embed->dtype == REEL_ST_F32 ? REEL_F32 : m->embed->dtype == REEL_ST_F16 ? REEL_F16 : REEL_BF16;
    for (size_t i = 0; i < n; i++) {
      memcpy(raw, (const char *)m->embed->data + (size_t)ids[i] * row, row);
      reel_convert(dt, raw, REEL_F32, host + i * (size_t)D, (size_t)D);
    }
    reel_free(raw);
    if ((st = reel_tensor_upload(&x, host, hbytes, err)) != REEL_OK) goto done;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++)
        buckets[i * n + j] = rel_bucket((int64_t)j - (int64_t)i, c->num_buckets, c->max_distance);
  }

  size_t layer_mark = reel_tensor_arena_used(arena);
  int64_t sI[2] = {(int64_t)n, I}, sS[3] = {H, (int64_t)n, (int64_t)n}, sF[2] = {(int64_t)n, F};
  for (int64_t li = 0; li < c->num_layers; li++) {
    const umt5_layer *L = &m->layers[li];
    reel_tensor_arena_release(arena, layer_mark);
    if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sI, &q, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sI, &k, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sI, &v, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sI, &ao, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 3, sS, &scores, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 3, sS, &bias, err)))
      goto done;
    /* Position bias [H, n, n] of this layer. */
    for (int64_t hh = 0; hh < H; hh++)
      for (size_t i = 0; i < n * n; i++) host[(size_t)hh * n * n + i] = L->rel_bias[buckets[i] * H + hh];
    if ((st = reel_tensor_upload(&bias, host, (size_t)H * n * n * sizeof(float), err)) != REEL_OK) goto done;
    /* Self-attention. */
    if ((st = reel_op_rms_norm(b, &x, &L->ln1, (float)c->eps, &h, err)) ||
        (st = reel_op_matmul(b, &h, &L->q, NULL, &q, err)) || (st = reel_op_matmul(b, &h, &L->k, NULL, &k, err)) ||
        (st = reel_op_matmul(b, &h, &L->v, NULL, &v, err)))
      goto done;
    reel_tensor qh, kh, vh, oh;
    int64_t s3[3] = {(int64_t)n, H, K};
    int perm[3] = {1, 0, 2};
    reel_tensor t3;
    if ((st = reel_tensor_reshape(&q, 3, s3, &t3, err)) || (st = reel_tensor_permute(&t3, perm, &qh, err)) ||
        (st = reel_tensor_reshape(&k, 3, s3, &t3, err)) || (st = reel_tensor_permute(&t3, perm, &kh, err)) ||
        (st = reel_tensor_reshape(&v, 3, s3, &t3, err)) || (st = reel_tensor_permute(&t3, perm, &vh, err)) ||
        (st = reel_tensor_reshape(&ao, 3, s3, &t3, err)) || (st = reel_tensor_permute(&t3, perm, &oh, err)))
      goto done;
    if ((st = reel_op_matmul_batched(b, &qh, &kh, 1, 1.0f, &scores, err)) ||
        (st = reel_op_add(b, &scores, &bias, &scores, err)) || (st = reel_op_softmax(b, &scores, &scores, err)) ||
        (st = reel_op_matmul_batched(b, &scores, &vh, 0, 1.0f, &oh, err)) ||
        (st = reel_op_matmul(b, &ao, &L->o, NULL, &h, err)) || (st = reel_op_add(b, &x, &h, &x, err)))
      goto done;
    /* Gated-GELU feed-forward. */
    reel_tensor_arena_release(arena, layer_mark);
    if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sF, &g, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sF, &l, err)) ||
        (st = reel_tensor_arena_alloc(arena, REEL_F32, 2, sx, &y, err)))
      goto done;
    if ((st = reel_op_rms_norm(b, &x, &L->ln2, (float)c->eps, &h, err)) ||
        (st = reel_op_matmul(b, &h, &L->wi0, NULL, &g, err)) || (st = reel_op_gelu_tanh(b, &g, &g, err)) ||
        (st = reel_op_matmul(b, &h, &L->wi1, NULL, &l, err)) || (st = reel_op_mul(b, &g, &l, &g, err)) ||
        (st = reel_op_matmul(b, &g, &L->wo, NULL, &y, err)) || (st = reel_op_add(b, &x, &y, &x, err)))
      goto done;
  }
  st = reel_op_rms_norm(b, &x, &m->final_ln, (float)c->eps, out, err);
done:
  reel_free(host);
  reel_free(buckets);
  reel_tensor_arena_release(arena, mark);
  return st;
}

reel_status reel_umt5_prompt_embeds(reel_umt5 *m, const int32_t *ids, const int32_t *mask, size_t max_len,
                                    reel_tensor_arena *arena, reel_tensor *out, size_t *seq_len, reel_error *err) {
  const int64_t D = m->cfg.d_model;
  if (!ids || !mask || max_len == 0)
    return reel_error_set(err, REEL_EINVAL, "input_ids", "ids and attention_mask of max_len > 0 entries are required");
  if (!out || out->dtype != REEL_F32 || out->ndim != 2 || out->shape[0] != (int64_t)max_len || out->shape[1] != D ||
      !reel_tensor_is_contiguous(out))
    return reel_error_set(err, REEL_EINVAL, "out", "must be a contiguous f32 tensor [%zu, %lld]", max_len,
                          (long long)D);
  size_t n = 0;
  while (n < max_len && mask[n]) n++;
  for (size_t i = n; i < max_len; i++)
    if (mask[i])
      return reel_error_set(err, REEL_EINVAL, "attention_mask",
                            "must be ones then zeros (right padding); position %zu is 1 after a 0", i);
  if (n == 0) return reel_error_set(err, REEL_EINVAL, "attention_mask", "has no real token");
  reel_status st = reel_buffer_memset(out->buf, out->offset, 0, reel_tensor_nbytes(out), err);
  if (st != REEL_OK) return st;
  reel_tensor rows;
  if ((st = reel_tensor_slice(out, 0, 0, (int64_t)n, &rows, err)) != REEL_OK) return st;
  if ((st = reel_umt5_forward(m, ids, n, arena, &rows, err)) != REEL_OK) return st;
  if (seq_len) *seq_len = n;
  return REEL_OK;
}
