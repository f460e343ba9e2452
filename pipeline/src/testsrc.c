/* SPDX-License-Identifier: Apache-2.0 */
/*
 * builtin:testsrc rendering. See reel/testsrc.h. Everything a frame shows is a
 * function of (params, index): no state between frames, so frames can be
 * rendered in any order or in parallel.
 */
#include "reel/testsrc.h"

#include <string.h>

/* SplitMix64: a tiny, well-mixed generator; good enough to derive layout from a seed. */
static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Classic 75% colour bars. */
static const uint8_t bars[7][3] = {{191, 191, 191}, {191, 191, 0}, {0, 191, 191}, {0, 191, 0},
                                   {191, 0, 191},   {191, 0, 0},   {0, 0, 191}};

typedef struct layout {
  int order[7];           /* bar permutation */
  uint8_t box[3], dot[3]; /* box colour and its centre square's */
  int size;               /* box side, even */
  int x0, y0, vx, vy;     /* start and velocity, even pixels */
  int split;              /* first row of the lower band */
  int strip;              /* first row of the counter strip */
} layout;

static int even(int v) { return v & ~1; }

static void derive(const reel_testsrc_params *p, layout *l) {
  uint64_t s = p->seed;
  for (int i = 0; i < 7; i++) l->order[i] = i;
  for (int i = 6; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(mix(&s) % (uint64_t)(i + 1));
    int t = l->order[i];
    l->order[i] = l->order[j];
    l->order[j] = t;
  }
  uint64_t c = mix(&s);
  for (int k = 0; k < 3; k++) {
    /* Saturated enough to see against any bar: each channel near 0 or 255. */
    l->box[k] = (c >> (8 * k)) & 1 ? (uint8_t)(200 + (c >> (8 * k + 1)) % 56) : (uint8_t)((c >> (8 * k + 1)) % 56);
    l->dot[k] = (uint8_t)(255 - l->box[k]);
  }
  int m = p->width < p->height ? p->width : p->height;
  l->size = even(m / 4) < 4 ? 4 : even(m / 4);
  l->strip = p->height - (even(p->height / 12) < 2 ? 2 : even(p->height / 12));
  l->split = even(p->height * 2 / 3);
  if (l->split > l->strip) l->split = l->strip;
  uint64_t r = mix(&s);
  int rx = p->width - l->size, ry = l->strip - l->size;
  l->x0 = rx > 0 ? even((int)(r % (uint64_t)rx)) : 0;
  l->y0 = ry > 0 ? even((int)((r >> 20) % (uint64_t)ry)) : 0;
  uint64_t v = mix(&s);
  l->vx = 2 + 2 * (int)(v % 4);
  l->vy = 2 + 2 * (int)((v >> 8) % 3);
  if ((v >> 16) & 1) l->vx = -l->vx;
  if ((v >> 17) & 1) l->vy = -l->vy;
}

/* Position on 0..range moving back and forth (a triangle wave). */
static int bounce(long long p, int range) {
  if (range <= 0) return 0;
  long long period = 2LL * range;
  long long m = p % period;
  if (m < 0) m += period;
  return (int)(m <= range ? m : period - m);
}

reel_status reel_testsrc_check(const reel_testsrc_params *p, reel_error *err) {
  if (!p) return reel_error_set(err, REEL_EINVAL, "params", "must not be NULL");
  if (p->width < 16 || p->width > 8192 || p->width % 2)
    return reel_error_set(err, REEL_ERANGE, "width", "must be even and in 16..8192, got %d", p->width);
  if (p->height < 16 || p->height > 8192 || p->height % 2)
    return reel_error_set(err, REEL_ERANGE, "height", "must be even and in 16..8192, got %d", p->height);
  if (p->frames < 1) return reel_error_set(err, REEL_ERANGE, "frames", "must be at least 1, got %d", p->frames);
  return REEL_OK;
}

/* Copies row `from` over rows (from, to). */
static void repeat_row(uint8_t *rgb, size_t stride, int from, int to, int w) {
  const uint8_t *src = rgb + (size_t)from * stride;
  for (int y = from + 1; y < to; y++) memcpy(rgb + (size_t)y * stride, src, (size_t)w * 3);
}

void reel_testsrc_render(const reel_testsrc_params *p, int index, uint8_t *rgb, size_t stride) {
  layout l;
  derive(p, &l);
  const int w = p->width, h = p->height;
  /* Every band is made of identical rows: draw one, copy it. */
  /* Bars over the top two thirds; bar edges on even columns. */
  if (l.split > 0) {
    uint8_t *row = rgb;
    for (int x = 0; x < w; x++) {
      int b = even(x) * 7 / w; /* 0..6, constant over each even/odd column pair */
      memcpy(row + 3 * x, bars[l.order[b]], 3);
    }
    repeat_row(rgb, stride, 0, l.split, w);
  }
  /* A grey ramp below, scrolling slowly so that it is not a still region. */
  if (l.strip > l.split) {
    uint8_t *row = rgb + (size_t)l.split * stride;
    for (int x = 0; x < w; x++) {
      int v = (int)(((long long)(x + 2 * index) % w) * 255 / (w - 1));
      row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = (uint8_t)v;
    }
    repeat_row(rgb, stride, l.split, l.strip, w);
  }
  /* The counter strip: bit k of the index, most significant first, white for 1. */
  int bits = 16, bw = even(w / 16) < 2 ? 2 : even(w / 16);
  if (bits * bw > w) bits = w / bw;
  {
    uint8_t *row = rgb + (size_t)l.strip * stride;
    memset(row, 16, (size_t)w * 3);
    for (int k = 0; k < bits; k++) {
      uint8_t v = ((unsigned)index >> (bits - 1 - k)) & 1 ? 235 : 16;
      /* Gaps of two pixels (to stay even) keep neighbouring blocks apart. */
      memset(row + 3 * (size_t)(k * bw), v, 3 * (size_t)(bw - 2));
    }
    repeat_row(rgb, stride, l.strip, h, w);
  }
  /* The moving box, with a centre square in the complementary colour. */
  int bx = even(bounce(l.x0 + (long long)l.vx * index, w - l.size));
  int by = even(bounce(l.y0 + (long long)l.vy * index, l.strip - l.size));
  int inset = even(l.size / 4);
  uint8_t outer[3 * 2048], inner[3 * 2048]; /* size <= 8192 / 4 */
  for (int x = 0; x < l.size; x++) {
    memcpy(outer + 3 * x, l.box, 3);
    memcpy(inner + 3 * x, x >= inset && x < l.size - inset ? l.dot : l.box, 3);
  }
  for (int y = by; y < by + l.size; y++) {
    int in = y >= by + inset && y < by + l.size - inset;
    memcpy(rgb + (size_t)y * stride + 3 * (size_t)bx, in ? inner : outer, 3 * (size_t)l.size);
  }
}
