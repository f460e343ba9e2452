/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside of the Wan transformer: the weight tensors of a loaded model (shapes in
 * PyTorch order) shared by the loader (wan_weights.c) and the forward
 * (wan_transformer.c). Not a public header.
 */
#ifndef REEL_WAN_INTERNAL_H
#define REEL_WAN_INTERNAL_H

#include "reel/wan.h"

typedef struct wan_linear {
  reel_tensor w; /* [out, in] */
  reel_tensor b; /* [out] */
} wan_linear;

typedef struct wan_block {
  reel_tensor sst;       /* scale_shift_table [1, 6, dim]: shift, scale, gate (self-attn), shift, scale, gate (FFN) */
  wan_linear q, k, v, o; /* self-attention [dim, dim] */
  reel_tensor norm_q, norm_k;   /* RMS norm weights over the whole width [dim] */
  wan_linear cq, ck, cv, co;    /* cross-attention [dim, dim] */
  reel_tensor cnorm_q, cnorm_k; /* [dim] */
  reel_tensor norm2_w, norm2_b; /* affine LayerNorm before cross-attention [dim]; unset without cross_attn_norm */
  wan_linear ff1;               /* [ffn_dim, dim] */
  wan_linear ff2;               /* [dim, ffn_dim] */
} wan_block;

struct reel_wan_transformer {
  reel_wan_config cfg;
  reel_backend *b;    /* borrowed */
  reel_weights *w;    /* owned: the mapped checkpoint */
  int original;       /* original Wan2.1 key names */
  const char *prefix; /* prefix of every key ("" or "model.diffusion_model.") */

  size_t nshards;
  reel_buffer **shard_buf; /* [nshards] each shard's data section (NULL when empty) */
  const char **shard_base; /* [nshards] host address of that data section */
  size_t *shard_size;      /* [nshards] */
  reel_tensor *owned;      /* copies of misaligned tensors */
  size_t nowned, capowned;
  int64_t params;
  int weights_bf16;  /* load option: matrices converted to bf16 on upload */
  int per_tensor;    /* shards were not uploaded whole: each tensor has its own buffer (owned) */
  reel_dtype act;    /* activation dtype of the forward (REEL_F32 or REEL_BF16) */

  reel_tensor patch_w5; /* Conv3d weight [dim, in, pt, ph, pw] */
  reel_tensor patch_w;  /* the same as [dim, in * pt * ph * pw] */
  reel_tensor patch_b;  /* [dim] */
  wan_linear time1;     /* [dim, freq_dim] */
  wan_linear time2;     /* [dim, dim] */
  wan_linear tproj;     /* [6 dim, dim] */
  wan_linear text1;     /* [dim, text_dim] */
  wan_linear text2;     /* [dim, dim] */
  wan_block *blocks;    /* [layers] */
  reel_tensor head_sst; /* [1, 2, dim]: shift, scale of the output norm */
  wan_linear proj_out;  /* [out * pt * ph * pw, dim] */

  /* Rotary tables of the last grid, on the host: [tokens, head_dim / 2] each. */
  int64_t rope_grid[3];
  float *rope_cos, *rope_sin;
};

/* Fills the weight tensors of m (cfg, b, w, original, prefix set). */
reel_status reel__wan_load_weights(reel_wan_transformer *m, reel_error *err);
/* Detects the key layout of w; returns nonzero for original names and sets *prefix. */
int reel__wan_detect_layout(const reel_weights *w, int *original, const char **prefix);

#endif
