/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU conv3d (reel_op_conv3d): frame-major, channels-last activations, computed as
 * im2col + GEMM over tiles of output pixels. For each output frame, a tile of R output
 * pixels gathers its receptive fields into a [R, kt·kh·kw·Cin] matrix (zeros for the
 * padding, each input pixel read at y/2, x/2 when upsampling by 2) and one GEMM against
 * the [Cout, kt·kh·kw·Cin] weight writes the tile's [R, Cout] outputs in place. R is
 * chosen so the gathered matrix stays near 4 MiB: scratch does not grow with the frame
 * size or the frame count. 1x1x1 convolutions skip the gather and multiply the input
 * rows directly.
 */
#include <string.h>

#include "cpu_impl.h"

#define COL_TARGET_BYTES ((size_t)4 << 20)

typedef struct conv_ctx {
  const float *frame0; /* input frame of the first temporal tap of the current output frame */
  int64_t xs_t;        /* input frame stride (elements) */
  int64_t H, W, C;     /* input frame (before upsampling) */
  int up;
  int64_t Hu, Wu;
  int64_t kt, kh, kw;
  int sh, sw, ph0, pw0;
  int64_t Wo;
  int64_t p0; /* first output pixel of the tile */
  int64_t K;
  float *col; /* [R, K] */
} conv_ctx;

static void im2col_task(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const conv_ctx *c = vctx;
  const size_t cb = (size_t)c->C * sizeof(float);
  for (int64_t r = begin; r < end; r++) {
    int64_t pix = c->p0 + r, oy = pix / c->Wo, ox = pix % c->Wo;
    float *dst = c->col + r * c->K;
    for (int64_t dt = 0; dt < c->kt; dt++) {
      const float *frame = c->frame0 + dt * c->xs_t;
      for (int64_t dy = 0; dy < c->kh; dy++) {
        int64_t iy = oy * c->sh + dy - c->ph0;
        if (iy < 0 || iy >= c->Hu) {
          memset(dst, 0, cb * (size_t)c->kw);
          dst += c->kw * c->C;
          continue;
        }
        const float *rowp = frame + (iy / c->up) * c->W * c->C;
        for (int64_t dx = 0; dx < c->kw; dx++) {
          int64_t ix = ox * c->sw + dx - c->pw0;
          if (ix < 0 || ix >= c->Wu)
            memset(dst, 0, cb);
          else
            memcpy(dst, rowp + (ix / c->up) * c->C, cb);
          dst += c->C;
        }
      }
    }
  }
}

reel_status reel__cpu_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                             const reel_conv3d_params *p, reel_tensor *out, reel_error *err) {
  reel__cpu *cpu = reel__cpu_of(b);
  const int64_t T = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  const int64_t Co = w->shape[0], kt = w->shape[1], kh = w->shape[2], kw = w->shape[3];
  const int64_t To = out->shape[0], Ho = out->shape[1], Wo = out->shape[2];
  const int64_t K = kt * kh * kw * C, P = Ho * Wo;
  const int64_t xs_t = T > 1 ? x->stride[0] : H * W * C, os_t = To > 1 ? out->stride[0] : P * Co;
  const float *xd = reel__tensor_data(x);
  float *od = reel__tensor_data(out);
  const void *wd = reel__tensor_data(w);
  int pointwise = kt == 1 && kh == 1 && kw == 1 && p->stride[1] == 1 && p->stride[2] == 1 && p->upsample == 1 &&
                  !p->pad_h[0] && !p->pad_h[1] && !p->pad_w[0] && !p->pad_w[1];
  /* Tile of output pixels: the gathered [R, K] block stays near COL_TARGET_BYTES. */
  int64_t R = (int64_t)(COL_TARGET_BYTES / ((size_t)K * sizeof(float)));
  if (R < 16) R = 16;
  if (R > P) R = P;
  if (pointwise) R = P;
  size_t gemm_bytes = reel__cpu_gemm_nt_bytes(b, R, Co, K, w->dtype);
  if (P % R) {
    size_t g2 = reel__cpu_gemm_nt_bytes(b, P % R, Co, K, w->dtype);
    if (g2 > gemm_bytes) gemm_bytes = g2;
  }
  size_t bias_bytes = ((size_t)Co * sizeof(float) + 63) / 64 * 64;
  size_t col_bytes = pointwise ? 0 : ((size_t)R * (size_t)K * sizeof(float) + 63) / 64 * 64;
  char *ws = reel__cpu_scratch(b, bias_bytes + col_bytes + gemm_bytes + 64, err);
  if (!ws) return REEL_ENOMEM;
  float *bias_f = NULL;
  if (bias) {
    bias_f = (float *)(void *)ws;
    reel__load_row(bias->dtype, reel__tensor_data(bias), bias->stride[0], Co, bias_f);
  }
  float *col = (float *)(void *)(ws + bias_bytes);
  void *gws = ws + bias_bytes + col_bytes;
  conv_ctx c = {0};
  c.xs_t = xs_t;
  c.H = H;
  c.W = W;
  c.C = C;
  c.up = p->upsample;
  c.Hu = H * p->upsample;
  c.Wu = W * p->upsample;
  c.kt = kt;
  c.kh = kh;
  c.kw = kw;
  c.sh = p->stride[1];
  c.sw = p->stride[2];
  c.ph0 = p->pad_h[0];
  c.pw0 = p->pad_w[0];
  c.Wo = Wo;
  c.K = K;
  c.col = col;
  for (int64_t t = 0; t < To; t++) {
    const float *frame0 = xd + t * p->stride[0] * xs_t;
    float *ot = od + t * os_t;
    if (pointwise) {
      reel__cpu_gemm_nt(b, P, Co, K, frame0, C, wd, w->dtype, K, ot, Co, bias_f, gws);
      continue;
    }
    c.frame0 = frame0;
    for (int64_t p0 = 0; p0 < P; p0 += R) {
      int64_t r = P - p0 < R ? P - p0 : R;
      c.p0 = p0;
      reel__pool_run(cpu->pool, r, 8, im2col_task, &c);
      reel__cpu_gemm_nt(b, r, Co, K, col, K, wd, w->dtype, K, ot + p0 * Co, Co, bias_f, gws);
    }
  }
  reel__backend_set_path(b, pointwise ? "cpu-conv-1x1-gemm" : "cpu-conv-im2col-gemm");
  return REEL_OK;
}
