/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The UMT5 text encoder (transformers' UMT5EncoderModel), Wan's text encoder.
 *
 * Architecture, as transformers computes it: token embedding (`shared.weight`, no
 * scaling); per layer a pre-norm self-attention block and a pre-norm gated-GELU
 * feed-forward block, both residual; a final norm. The norm is T5's RMS norm (no mean
 * subtraction, no bias, variance in f32). Attention scores are q·kᵀ *without* 1/sqrt(d)
 * scaling plus a relative position bias that every layer has its own table for (unlike
 * T5, where only the first layer has one): bucket(j - i) with half the buckets per
 * direction, exact below num_buckets/4, logarithmic up to max_distance. The feed-forward
 * is wo(gelu_tanh(wi_0 x) * wi_1 x).
 *
 * Padding. WanPipeline encodes the padded 512-token batch with an attention mask, keeps
 * the first seq_len rows of each prompt and zeroes the rest. Masked keys contribute
 * exactly zero to every kept row, so reel_umt5_prompt_embeds() runs the encoder on the
 * seq_len real tokens only and zero-fills the rest: same values (up to summation order),
 * a fraction of the work.
 *
 * Weights may be f32, f16 or bf16 (compute is f32). Loading reads <dir>/config.json
 * (model_type "umt5", feed_forward_proj "gated-gelu") and the weights of <dir>
 * (model.safetensors or a sharded index); errors name the field or tensor.
 */
#ifndef REEL_UMT5_H
#define REEL_UMT5_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_UMT5_MAX_TOKENS 4096 /* tokens of one forward */

typedef struct reel_umt5_config {
  int64_t vocab_size;
  int64_t d_model;
  int64_t d_kv; /* per head */
  int64_t num_heads;
  int64_t d_ff;
  int64_t num_layers;
  int64_t num_buckets;  /* relative_attention_num_buckets */
  int64_t max_distance; /* relative_attention_max_distance */
  double eps;           /* layer_norm_epsilon */
} reel_umt5_config;

typedef struct reel_umt5 reel_umt5;

/*
 * Loads the encoder of a diffusers `text_encoder/` folder onto backend b (borrowed; it
 * must outlive the model). On failure *out is NULL and err names the field or tensor.
 */
reel_status reel_umt5_load(reel_backend *b, const char *dir, reel_umt5 **out /* OUT: */, reel_error *err);
/* Frees the model and nulls *m; accepts NULL and NULL *m. */
void reel_umt5_destroy(reel_umt5 **m);
const reel_umt5_config *reel_umt5_get_config(const reel_umt5 *m);

/* Bytes of arena a forward of n tokens needs (activations and attention scores). */
size_t reel_umt5_arena_bytes(const reel_umt5 *m, size_t n);

/*
 * Runs the encoder on n token ids (1..REEL_UMT5_MAX_TOKENS; each < vocab_size) without
 * padding: out must be an f32 tensor [n, d_model] on the model's backend. Scratch comes
 * from `arena` (reel_umt5_arena_bytes(m, n) free bytes) and is released before returning.
 */
reel_status reel_umt5_forward(reel_umt5 *m, const int32_t *ids, size_t n, reel_tensor_arena *arena, reel_tensor *out,
                              reel_error *err);

/*
 * WanPipeline's _get_t5_prompt_embeds for one prompt: ids and mask are the tokenizer's
 * padded output of max_len entries (the mask a run of ones then zeros); out is an f32
 * tensor [max_len, d_model]: the encoder's last hidden state for the seq_len real tokens,
 * zero rows after. *seq_len (may be NULL) gets the number of real tokens.
 */
reel_status reel_umt5_prompt_embeds(reel_umt5 *m, const int32_t *ids, const int32_t *mask, size_t max_len,
                                    reel_tensor_arena *arena, reel_tensor *out, size_t *seq_len /* OUT: */,
                                    reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
