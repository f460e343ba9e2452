/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Wan2.1 video VAE (diffusers' AutoencoderKLWan): decoder and encoder, with causal 3-D
 * convolutions and the temporal feature cache, run chunk by chunk so that memory does not
 * grow with clip length.
 *
 * Decoding follows diffusers' _decode exactly: post_quant_conv, then the decoder on one
 * latent frame at a time; every causal convolution keeps the last two frames of its input
 * as history for the next chunk (zeros before the first), and the temporal upsamplers pass
 * the first chunk through unchanged, so latent frame 0 gives 1 video frame and every later
 * one gives 4 (F latent frames -> 1 + 4 (F - 1) frames). Encoding follows _encode: chunks
 * of 1, 4, 4, ... video frames through the encoder, then quant_conv; the result is the
 * posterior's mean and log-variance (clamped to [-30, 20]).
 *
 * Memory: the history tensors and one chunk's activations live in a caller arena; the
 * history is allocated once per decode and each chunk's scratch is released before the
 * next, so the arena size (reel_wan_vae_decode_arena_bytes) depends on the latent height
 * and width, not on the frame count. Decoded frames are handed to a callback chunk by
 * chunk (or written into one output tensor by reel_wan_vae_decode()).
 *
 * Internally activations are frame-major and channels-last ([T, H, W, C]); conv weights
 * are repacked once at load time to match (reel_op_conv3d). Supported configs: the Wan2.1
 * layout (is_residual false, no attention outside the middle blocks, patch_size null).
 * A model's decode/encode calls must not run concurrently (the history lives in it).
 */
#ifndef REEL_WAN_VAE_H
#define REEL_WAN_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/backend.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_WAN_VAE_MAX_LEVELS 8

typedef struct reel_wan_vae_config {
  int64_t base_dim;         /* encoder channels of the first level */
  int64_t decoder_base_dim; /* decoder's (base_dim when null) */
  int64_t z_dim;            /* latent channels */
  int64_t dim_mult[REEL_WAN_VAE_MAX_LEVELS];
  int nlevels; /* entries of dim_mult */
  int64_t num_res_blocks;
  int temperal_downsample[REEL_WAN_VAE_MAX_LEVELS]; /* nlevels - 1 entries */
  int64_t in_channels, out_channels;
  float latents_mean[64], latents_std[64]; /* z_dim entries */
} reel_wan_vae_config;

typedef struct reel_wan_vae reel_wan_vae;

/* Loads a diffusers `vae/` folder onto b (borrowed, must outlive it). Errors name the field or tensor. */
reel_status reel_wan_vae_load(reel_backend *b, const char *dir, reel_wan_vae **out /* OUT: */, reel_error *err);
/* Frees the model and nulls *v; accepts NULL and NULL *v. */
void reel_wan_vae_destroy(reel_wan_vae **v);
const reel_wan_vae_config *reel_wan_vae_get_config(const reel_wan_vae *v);
/* Video pixels per latent: 8 (height, width) and 4 (frames) for Wan2.1's layout. */
int64_t reel_wan_vae_spatial_factor(const reel_wan_vae *v);
int64_t reel_wan_vae_temporal_factor(const reel_wan_vae *v);

/* Arena bytes a decode of latents with height h and width w needs (any frame count). */
reel_status reel_wan_vae_decode_arena_bytes(reel_wan_vae *v, int64_t h, int64_t w, size_t *bytes /* OUT: */,
                                            reel_error *err);
/* Arena bytes an encode of video frames of height H and width W needs (any frame count). */
reel_status reel_wan_vae_encode_arena_bytes(reel_wan_vae *v, int64_t H, int64_t W, size_t *bytes /* OUT: */,
                                            reel_error *err);

/*
 * Called once per decoded chunk with its frames: [out_channels, n, H, W] f32 on the
 * backend, clamped to [-1, 1], video frames first_frame .. first_frame + n - 1. The
 * tensor lives in the arena until the callback returns. A non-OK status stops decoding
 * and is returned.
 */
typedef reel_status (*reel_wan_vae_frames_fn)(void *user, const reel_tensor *frames, int64_t first_frame,
                                              reel_error *err);

/*
 * Decodes latents [z_dim, F, h, w] (f32 on the backend, already un-normalised, see
 * reel_wan_vae_denormalize) chunk by chunk, handing frames to fn. Scratch from `arena`
 * (reel_wan_vae_decode_arena_bytes free bytes), all released before returning.
 */
reel_status reel_wan_vae_decode_stream(reel_wan_vae *v, const reel_tensor *latents, reel_tensor_arena *arena,
                                       reel_wan_vae_frames_fn fn, void *user, reel_error *err);
/* As reel_wan_vae_decode_stream into one tensor `video` [out_channels, 1 + 4 (F - 1), 8h, 8w] f32. */
reel_status reel_wan_vae_decode(reel_wan_vae *v, const reel_tensor *latents, reel_tensor_arena *arena,
                                reel_tensor *video, reel_error *err);

/*
 * Encodes video [in_channels, T, H, W] (f32, values in [-1, 1]; H and W multiples of 8)
 * into the posterior's mean and log-variance, each [z_dim, 1 + (T - 1) / 4, H/8, W/8]
 * (logvar may be NULL).
 */
reel_status reel_wan_vae_encode(reel_wan_vae *v, const reel_tensor *video, reel_tensor_arena *arena, reel_tensor *mean,
                                reel_tensor *logvar, reel_error *err);

/*
 * WanPipeline's un-normalisation before decoding: out = latents / (1 / std) + mean per
 * channel of [z_dim, ...] latents (computed as latents * std + mean). out may be latents.
 */
reel_status reel_wan_vae_denormalize(reel_wan_vae *v, const reel_tensor *latents, reel_tensor *out, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
