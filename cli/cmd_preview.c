/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel preview [options] FILE|URL`: looks at a clip from a terminal, e.g. over
 * SSH. Plays it with 24-bit colour half-block characters (each character cell
 * shows two pixels: the upper one as the foreground of '▀', the lower one as the
 * background), scaled to the terminal with an area-average filter, at the
 * clip's frame rate. `--sheet OUT.png` writes a contact sheet of evenly spaced
 * frames instead. s3:// and http(s):// URLs are downloaded to a temporary file
 * first.
 *
 * Exit status: 0 done, 2 bad usage or a terminal that cannot show the clip
 * (the message says what to do), 1 the clip could not be read or written.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/encoder.h"
#include "reel/fetch.h"
#include "reel/image.h"
#include "reel/log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel preview [options] FILE|URL\n"
          "\n"
          "Plays a clip in the terminal (24-bit colour), or writes a contact sheet.\n"
          "FILE may be a local path, file://, s3://bucket/key (AWS_* variables) or http(s)://.\n"
          "\n"
          "options:\n"
          "  --sheet OUT.png   write a contact sheet (PNG or JPEG) instead of playing\n"
          "  --count N         frames on the sheet, 1..256 (default 8)\n"
          "  --cols N          sheet columns, 1..64 (default 4)\n"
          "  --thumb-width W   width of each sheet frame in pixels, 16..4096 (default: the clip's, at most 320)\n"
          "  --loop            play until interrupted (default: once)\n"
          "  --fps F           playback rate, 0.1..240 (default: the clip's)\n"
          "  --width COLS      terminal columns to use (default: the terminal's width)\n"
          "  --height ROWS     terminal rows to use (default: the terminal's height)\n"
          "  --color WHEN      auto (default), always, never: 24-bit colour output\n"
          "  -v, --verbose     more log output\n"
          "  -h, --help        this help\n");
}

typedef struct {
  int w, h;
  uint8_t *px; /* w*h*3 */
} image;

/* Area-average resize of an RGB24 image (the right filter for shrinking). */
static void resize_area(const uint8_t *src, int sw, int sh, size_t sstride, uint8_t *dst, int dw, int dh) {
  for (int y = 0; y < dh; y++) {
    double y0 = (double)y * sh / dh, y1 = (double)(y + 1) * sh / dh;
    for (int x = 0; x < dw; x++) {
      double x0 = (double)x * sw / dw, x1 = (double)(x + 1) * sw / dw;
      double acc[3] = {0, 0, 0}, wsum = 0;
      for (int sy = (int)y0; sy < sh && sy < y1; sy++) {
        double wy = (sy + 1 < y1 ? sy + 1 : y1) - (sy > y0 ? sy : y0);
        for (int sx = (int)x0; sx < sw && sx < x1; sx++) {
          double wx = (sx + 1 < x1 ? sx + 1 : x1) - (sx > x0 ? sx : x0);
          const uint8_t *p = src + (size_t)sy * sstride + (size_t)sx * 3;
          double wgt = wx * wy;
          acc[0] += wgt * p[0];
          acc[1] += wgt * p[1];
          acc[2] += wgt * p[2];
          wsum += wgt;
        }
      }
      uint8_t *o = dst + ((size_t)y * dw + x) * 3;
      for (int c = 0; c < 3; c++) o[c] = (uint8_t)(wsum > 0 ? acc[c] / wsum + 0.5 : 0);
    }
  }
}

/* Decodes every frame of the clip, resized to dw x dh, into a growing array. */
static int decode_all(const char *path, int (*size_for)(int, int, int *, int *, void *), void *ud, image **frames,
                      int *nframes, reel_video_info *info, reel_logger *lg) {
  reel_error err;
  reel_error_clear(&err);
  reel_decoder *dec = NULL;
  char msg[800];
  if (reel_decoder_open(path, 0, lg, &dec, &err)) {
    fprintf(stderr, "reel preview: %s\n", reel_error_format(&err, msg, sizeof msg));
    return 1;
  }
  reel_decoder_info(dec, info);
  int dw, dh;
  if (size_for(info->width, info->height, &dw, &dh, ud)) {
    reel_decoder_destroy(&dec);
    return 2;
  }
  size_t stride = (size_t)info->width * 3;
  uint8_t *rgb = reel_malloc(stride * (size_t)info->height);
  int cap = 0, rc = 0;
  *frames = NULL;
  *nframes = 0;
  for (;;) {
    reel_status st = reel_decoder_next_rgb(dec, rgb, stride, &err);
    if (st == REEL_EOF) break;
    if (st) {
      fprintf(stderr, "reel preview: %s\n", reel_error_format(&err, msg, sizeof msg));
      rc = 1;
      break;
    }
    if (*nframes == cap) {
      cap = cap ? cap * 2 : 64;
      image *nf = reel_realloc(*frames, (size_t)cap * sizeof **frames);
      if (!nf) {
        rc = 1;
        break;
      }
      *frames = nf;
    }
    image *im = &(*frames)[*nframes];
    im->w = dw;
    im->h = dh;
    im->px = reel_malloc((size_t)dw * dh * 3);
    if (!im->px) {
      rc = 1;
      break;
    }
    resize_area(rgb, info->width, info->height, stride, im->px, dw, dh);
    (*nframes)++;
    if (stop_requested) break;
  }
  reel_free(rgb);
  reel_decoder_destroy(&dec);
  if (rc == 0 && *nframes == 0) {
    fprintf(stderr, "reel preview: '%s' has no frames\n", path);
    rc = 1;
  }
  return rc;
}

static void free_frames(image *frames, int n) {
  for (int i = 0; i < n; i++) reel_free(frames[i].px);
  reel_free(frames);
}

typedef struct {
  int count, cols, thumb_w;
  int term_cols, term_rows;
} sizing;

static int sheet_size(int w, int h, int *dw, int *dh, void *ud) {
  sizing *s = ud;
  int tw = s->thumb_w ? s->thumb_w : (w < 320 ? w : 320);
  *dw = tw;
  *dh = (int)((double)h * tw / w + 0.5);
  if (*dh < 1) *dh = 1;
  return 0;
}

static int term_size(int w, int h, int *dw, int *dh, void *ud) {
  sizing *s = ud;
  double scale_w = (double)s->term_cols / w, scale_h = (double)(2 * s->term_rows) / h;
  double scale = scale_w < scale_h ? scale_w : scale_h;
  *dw = (int)(w * scale);
  *dh = (int)(h * scale) & ~1;
  if (*dw < 1 || *dh < 2) {
    fprintf(stderr, "reel preview: the terminal (%dx%d) is too small to show a %dx%d clip\n", s->term_cols,
            s->term_rows, w, h);
    return 1;
  }
  return 0;
}

static int write_sheet(const char *out, image *frames, int n, const sizing *sz, reel_logger *lg) {
  int count = sz->count < n ? sz->count : n;
  int cols = sz->cols < count ? sz->cols : count;
  int rows = (count + cols - 1) / cols;
  const int gap = 4;
  int tw = frames[0].w, th = frames[0].h;
  int W = cols * tw + (cols + 1) * gap, H = rows * th + (rows + 1) * gap;
  W += W & 1; /* even sizes keep JPEG happy */
  H += H & 1;
  size_t stride = (size_t)W * 3;
  uint8_t *sheet = reel_malloc(stride * H);
  if (!sheet) {
    fprintf(stderr, "reel preview: out of memory for a %dx%d sheet\n", W, H);
    return 1;
  }
  memset(sheet, 24, stride * H); /* dark grey background */
  for (int i = 0; i < count; i++) {
    /* Evenly spaced, first and last frame included. */
    int idx = count == 1 ? 0 : (int)((double)i * (n - 1) / (count - 1) + 0.5);
    int cx = gap + (i % cols) * (tw + gap), cy = gap + (i / cols) * (th + gap);
    for (int y = 0; y < th; y++)
      memcpy(sheet + (size_t)(cy + y) * stride + (size_t)cx * 3, frames[idx].px + (size_t)y * tw * 3, (size_t)tw * 3);
  }
  reel_error err;
  reel_error_clear(&err);
  reel_image_format fmt;
  int rc = 0;
  char msg[800];
  if (reel_image_format_from_name(out, "--sheet", &fmt, &err) ||
      reel_image_write(out, fmt, sheet, W, H, stride, 0, lg, &err)) {
    fprintf(stderr, "reel preview: %s\n", reel_error_format(&err, msg, sizeof msg));
    rc = 1;
  } else {
    printf("contact sheet: %s (%d frames of %d, %dx%d)\n", out, count, n, W, H);
  }
  reel_free(sheet);
  return rc;
}

/* Appends with growth; the frame text is a few hundred KB at most. */
typedef struct {
  char *buf;
  size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n) {
  if (t->len + n > t->cap) {
    size_t nc = (t->len + n) * 2;
    char *nb = reel_realloc(t->buf, nc);
    if (!nb) return;
    t->buf = nb;
    t->cap = nc;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
}

static void render(text *t, const image *im) {
  char esc[64];
  t->len = 0;
  put(t, "\x1b[H", 3);
  for (int y = 0; y + 1 < im->h; y += 2) {
    int last_fg = -1, last_bg = -1;
    for (int x = 0; x < im->w; x++) {
      const uint8_t *a = im->px + ((size_t)y * im->w + x) * 3, *b = a + (size_t)im->w * 3;
      int fg = a[0] << 16 | a[1] << 8 | a[2], bg = b[0] << 16 | b[1] << 8 | b[2];
      int n = 0;
      if (fg != last_fg) n += snprintf(esc + n, sizeof esc - (size_t)n, "\x1b[38;2;%d;%d;%dm", a[0], a[1], a[2]);
      if (bg != last_bg) n += snprintf(esc + n, sizeof esc - (size_t)n, "\x1b[48;2;%d;%d;%dm", b[0], b[1], b[2]);
      put(t, esc, (size_t)n);
      put(t, "\xe2\x96\x80", 3); /* U+2580 UPPER HALF BLOCK */
      last_fg = fg;
      last_bg = bg;
    }
    put(t, "\x1b[0m\x1b[K\n", 8);
  }
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static int play(image *frames, int n, double fps, int loop) {
  text t = {0};
  write_all(1, "\x1b[?25l\x1b[2J", 10); /* hide the cursor, clear */
  int64_t start = reel_now_ns();
  long shown = 0;
  do {
    for (int i = 0; i < n && !stop_requested; i++, shown++) {
      render(&t, &frames[i]);
      char status[96];
      int sl = snprintf(status, sizeof status, "\x1b[0mframe %d/%d  %.3g fps\x1b[K", i + 1, n, fps);
      put(&t, status, (size_t)sl);
      write_all(1, t.buf, t.len);
      int64_t due = start + (int64_t)((double)(shown + 1) * 1e9 / fps);
      int64_t now = reel_now_ns();
      if (due > now) reel_sleep_ms((due - now) / 1000000);
    }
  } while (loop && !stop_requested);
  write_all(1, "\x1b[0m\x1b[?25h\n", 11);
  reel_free(t.buf);
  return 0;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (*v == '\0' || *end || x < lo || x > hi) {
    fprintf(stderr, "reel preview: %s must be an integer in %d..%d, got '%s'\n", flag, lo, hi, v);
    return 2;
  }
  *out = (int)x;
  return 0;
}

enum { OPT_SHEET = 256, OPT_COUNT, OPT_COLS, OPT_THUMB, OPT_LOOP, OPT_FPS, OPT_WIDTH, OPT_HEIGHT, OPT_COLOR };

int cmd_preview(int argc, char **argv) {
  static const struct option opts[] = {{"sheet", required_argument, NULL, OPT_SHEET},
                                       {"count", required_argument, NULL, OPT_COUNT},
                                       {"cols", required_argument, NULL, OPT_COLS},
                                       {"thumb-width", required_argument, NULL, OPT_THUMB},
                                       {"loop", no_argument, NULL, OPT_LOOP},
                                       {"fps", required_argument, NULL, OPT_FPS},
                                       {"width", required_argument, NULL, OPT_WIDTH},
                                       {"height", required_argument, NULL, OPT_HEIGHT},
                                       {"color", required_argument, NULL, OPT_COLOR},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *sheet = NULL, *color = "auto";
  sizing sz = {8, 4, 0, 0, 0};
  int loop = 0, verbose = 0;
  double fps = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    int rc = 0;
    switch (c) {
      case OPT_SHEET:
        sheet = optarg;
        break;
      case OPT_COUNT:
        rc = parse_int("--count", optarg, 1, 256, &sz.count);
        break;
      case OPT_COLS:
        rc = parse_int("--cols", optarg, 1, 64, &sz.cols);
        break;
      case OPT_THUMB:
        rc = parse_int("--thumb-width", optarg, 16, 4096, &sz.thumb_w);
        break;
      case OPT_WIDTH:
        rc = parse_int("--width", optarg, 8, 4096, &sz.term_cols);
        break;
      case OPT_HEIGHT:
        rc = parse_int("--height", optarg, 4, 4096, &sz.term_rows);
        break;
      case OPT_LOOP:
        loop = 1;
        break;
      case OPT_FPS: {
        char *end;
        fps = strtod(optarg, &end);
        if (*end || !(fps >= 0.1 && fps <= 240)) {
          fprintf(stderr, "reel preview: --fps must be in 0.1..240, got '%s'\n", optarg);
          rc = 2;
        }
        break;
      }
      case OPT_COLOR:
        if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
          fprintf(stderr, "reel preview: --color must be auto, always or never, got '%s'\n", optarg);
          rc = 2;
        }
        color = optarg;
        break;
      case 'v':
        verbose++;
        break;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
    if (rc) return rc;
  }
  if (optind != argc - 1) {
    fprintf(stderr, "reel preview: expected one clip (FILE or URL)\n");
    usage(stderr);
    return 2;
  }
  const char *src = argv[optind];
  reel_logger lg;
  reel_logger_init(&lg, verbose ? REEL_LOG_DEBUG : REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  reel_ffmpeg_route_logs();

  if (!sheet) {
    /* Decide up front whether the terminal can show it, before any download. */
    int tty = isatty(1);
    const char *ct = getenv("COLORTERM");
    int truecolor = ct && (!strcmp(ct, "truecolor") || !strcmp(ct, "24bit"));
    if (!strcmp(color, "never") || (!strcmp(color, "auto") && (!tty || !truecolor))) {
      if (!tty && strcmp(color, "never"))
        fprintf(stderr,
                "reel preview: standard output is not a terminal; use --sheet OUT.png to look at the frames, "
                "or --color always to write the escape codes anyway\n");
      else
        fprintf(stderr,
                "reel preview: this terminal does not say it shows 24-bit colour (COLORTERM=%s); if it does, "
                "run with COLORTERM=truecolor or --color always; otherwise use --sheet OUT.png\n",
                ct ? ct : "unset");
      return 2;
    }
    struct winsize ws;
    if (!sz.term_cols || !sz.term_rows) {
      if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 1) {
        if (!sz.term_cols) sz.term_cols = ws.ws_col;
        if (!sz.term_rows) sz.term_rows = ws.ws_row - 1;
      } else {
        if (!sz.term_cols) sz.term_cols = 80;
        if (!sz.term_rows) sz.term_rows = 24;
      }
    }
  }

  char tmpl[] = "/tmp/reel-preview-XXXXXX";
  char local[64] = "";
  const char *path = src;
  if (reel_fetch_is_remote(src)) {
    int fd = mkstemp(tmpl);
    if (fd < 0) {
      perror("reel preview: mkstemp");
      return 1;
    }
    close(fd);
    snprintf(local, sizeof local, "%s", tmpl);
    reel_error err;
    reel_error_clear(&err);
    char msg[800];
    if (reel_fetch_to_file(src, local, (size_t)4 << 30, &lg, &err)) {
      fprintf(stderr, "reel preview: %s\n", reel_error_format(&err, msg, sizeof msg));
      unlink(local);
      return 1;
    }
    path = local;
  } else if (!strncmp(src, "file://", 7)) {
    path = src + 7;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  image *frames = NULL;
  int n = 0;
  reel_video_info info;
  int rc = decode_all(path, sheet ? sheet_size : term_size, &sz, &frames, &n, &info, &lg);
  if (rc == 0) {
    if (sheet) {
      rc = write_sheet(sheet, frames, n, &sz, &lg);
    } else {
      if (fps == 0) fps = info.fps_num > 0 && info.fps_den > 0 ? (double)info.fps_num / info.fps_den : 24.0;
      rc = play(frames, n, fps, loop);
    }
  }
  free_frames(frames, n);
  if (local[0]) unlink(local);
  return rc;
}
