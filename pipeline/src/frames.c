/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frame helpers: diffusers' float -> uint8 conversion, preview downscaling and a
 * minimal PNG writer. See frames.h. Built with -ffp-contract=off so that
 * x * 0.5 + 0.5 rounds twice (as PyTorch's separate mul and add do) instead of
 * once in a fused multiply-add.
 */
#include "frames.h"

#include <math.h>
#include <string.h>

#include "reel/alloc.h"

int64_t reel__frame_to_rgb8(const float *chunk, int64_t n, int64_t t, int64_t H, int64_t W, uint8_t *rgb) {
  const size_t plane = (size_t)(H * W), frame = (size_t)t * plane, chan = (size_t)n * plane;
  for (int c = 0; c < 3; c++) {
    const float *src = chunk + (size_t)c * chan + frame;
    for (size_t i = 0; i < plane; i++) {
      float x = src[i];
      if (!isfinite(x)) return (int64_t)(c * plane + i);
      float v = x * 0.5f;
      v = v + 0.5f;
      if (v < 0.0f) v = 0.0f;
      if (v > 1.0f) v = 1.0f;
      float s = v * 255.0f;
      rgb[i * 3 + (size_t)c] = (uint8_t)s; /* truncation, as numpy's astype(uint8) */
    }
  }
  return -1;
}

void reel__rgb8_downscale(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
  for (int y = 0; y < dh; y++) {
    int y0 = (int)((int64_t)y * sh / dh), y1 = (int)((int64_t)(y + 1) * sh / dh);
    if (y1 <= y0) y1 = y0 + 1;
    for (int x = 0; x < dw; x++) {
      int x0 = (int)((int64_t)x * sw / dw), x1 = (int)((int64_t)(x + 1) * sw / dw);
      if (x1 <= x0) x1 = x0 + 1;
      uint32_t acc[3] = {0, 0, 0}, cnt = 0;
      for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++, cnt++)
          for (int c = 0; c < 3; c++) acc[c] += src[((size_t)yy * sw + xx) * 3 + c];
      for (int c = 0; c < 3; c++) dst[((size_t)y * dw + x) * 3 + c] = (uint8_t)((acc[c] + cnt / 2) / cnt);
    }
  }
}

/* ---- PNG ---------------------------------------------------------------------------------- */

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Writes a chunk (length, type, data, CRC) at p; returns the bytes written. */
static size_t chunk(uint8_t *p, const char type[4], const uint8_t *data, size_t n) {
  put32(p, (uint32_t)n);
  memcpy(p + 4, type, 4);
  if (n) memcpy(p + 8, data, n);
  put32(p + 8 + n, crc_update(0, p + 4, n + 4));
  return n + 12;
}

reel_status reel__png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *len, reel_error *err) {
  *out = NULL;
  *len = 0;
  if (!rgb || width < 1 || height < 1 || width > 4096 || height > 4096)
    return reel_error_set(err, REEL_EINVAL, "preview", "a PNG needs 1..4096 x 1..4096 pixels, got %dx%d", width,
                          height);
  const size_t row = (size_t)width * 3 + 1, raw = row * (size_t)height;
  const size_t blocks = (raw + 65534) / 65535;
  const size_t zlen = 2 + raw + blocks * 5 + 4;
  const size_t total = 8 + (12 + 13) + (12 + zlen) + 12;
  uint8_t *png = reel_malloc(total), *z = reel_malloc(zlen);
  if (!png || !z) {
    reel_free(png);
    reel_free(z);
    return reel_error_set(err, REEL_ENOMEM, "preview", "out of memory for a %dx%d PNG", width, height);
  }
  /* zlib stream: header (deflate, 32 KiB window, no dictionary), stored blocks, Adler-32. */
  size_t at = 0;
  z[at++] = 0x78;
  z[at++] = 0x01;
  uint32_t a = 1, b = 0;
  size_t done = 0, y = 0, x = 0; /* position in the filtered image: row y, byte x of the row */
  while (done < raw) {
    size_t n = raw - done > 65535 ? 65535 : raw - done;
    z[at++] = done + n == raw ? 1 : 0;
    z[at++] = (uint8_t)n;
    z[at++] = (uint8_t)(n >> 8);
    z[at++] = (uint8_t)~n;
    z[at++] = (uint8_t)(~n >> 8);
    for (size_t i = 0; i < n; i++) {
      uint8_t v = x == 0 ? 0 : rgb[y * (row - 1) + x - 1]; /* filter type 0 at the start of each row */
      if (++x == row) {
        x = 0;
        y++;
      }
      z[at++] = v;
      a = (a + v) % 65521u;
      b = (b + a) % 65521u;
    }
    done += n;
  }
  put32(z + at, (b << 16) | a);
  at += 4;
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t ihdr[13];
  put32(ihdr, (uint32_t)width);
  put32(ihdr + 4, (uint32_t)height);
  ihdr[8] = 8;  /* bit depth */
  ihdr[9] = 2;  /* colour type: RGB */
  ihdr[10] = 0; /* deflate */
  ihdr[11] = 0; /* adaptive filtering */
  ihdr[12] = 0; /* no interlace */
  size_t p = 0;
  memcpy(png, sig, 8);
  p += 8;
  p += chunk(png + p, "IHDR", ihdr, sizeof ihdr);
  p += chunk(png + p, "IDAT", z, at);
  p += chunk(png + p, "IEND", NULL, 0);
  reel_free(z);
  *out = png;
  *len = p;
  return REEL_OK;
}
