/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for the storage tests: streams bytes into any sink URL through the
 * public reel_sink API and prints the result as JSON. The bytes come from a file
 * (--file) or a deterministic generator (--bytes N --seed S); --chunk and
 * --delay-ms pace the writes so that a test can kill the server mid-upload.
 * Also flushes a spool directory (--flush-spool DIR) and prints presigned URLs
 * (--presign URL). Exit status: 0 ok, 3 spooled (REEL_EAGAIN), 1 other failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/clock.h"
#include "reel/s3.h"
#include "reel/sink.h"

static void print_err(const char *what, reel_status st, const reel_error *e) {
  char buf[800];
  printf("{\"ok\":false,\"what\":\"%s\",\"status\":\"%s\",\"error\":\"", what, reel_status_name(st));
  for (const char *p = reel_error_format(e, buf, sizeof buf); *p; p++)
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if ((unsigned char)*p >= 0x20)
      putchar(*p);
  printf("\"}\n");
}

int main(int argc, char **argv) {
  const char *url = NULL, *file = NULL, *spool = NULL, *flush = NULL, *presign = NULL;
  unsigned long long nbytes = 0, seed = 1;
  size_t chunk = 65536, part = 0;
  int delay = 0, inflight = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--url") && v)
      url = v, i++;
    else if (!strcmp(a, "--file") && v)
      file = v, i++;
    else if (!strcmp(a, "--bytes") && v)
      nbytes = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--seed") && v)
      seed = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--chunk") && v)
      chunk = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--delay-ms") && v)
      delay = atoi(v), i++;
    else if (!strcmp(a, "--part-size") && v)
      part = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--in-flight") && v)
      inflight = atoi(v), i++;
    else if (!strcmp(a, "--spool") && v)
      spool = v, i++;
    else if (!strcmp(a, "--flush-spool") && v)
      flush = v, i++;
    else if (!strcmp(a, "--presign") && v)
      presign = v, i++;
    else {
      fprintf(stderr, "s3_put: bad argument '%s'\n", a);
      return 2;
    }
  }
  reel_logger lg;
  reel_logger_init(&lg, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  reel_error err;
  reel_error_clear(&err);
  if (flush) {
    int n = 0;
    reel_status st = reel_s3_flush_spool(flush, &lg, &n, &err);
    if (st) {
      print_err("flush", st, &err);
      return 1;
    }
    printf("{\"ok\":true,\"uploaded\":%d}\n", n);
    return 0;
  }
  if (presign) {
    reel_s3_config cfg;
    char out[8192];
    reel_status st = reel_s3_config_from_env(&cfg, &err);
    if (!st) st = reel_s3_presign_get(&cfg, presign, 600, out, sizeof out, &err);
    if (st) {
      print_err("presign", st, &err);
      return 1;
    }
    printf("%s\n", out);
    return 0;
  }
  if (!url || chunk == 0) {
    fprintf(stderr, "s3_put: --url is required\n");
    return 2;
  }
  reel_sink_options o = {0};
  o.log = &lg;
  o.part_size = part;
  o.max_parts_in_flight = inflight;
  o.spool_dir = spool;
  reel_sink *s = NULL;
  reel_status st = reel_sink_open(url, &o, &s, &err);
  if (st) {
    print_err("open", st, &err);
    return 1;
  }
  unsigned char *buf = malloc(chunk);
  FILE *f = file ? fopen(file, "rb") : NULL;
  if (file && !f) {
    fprintf(stderr, "s3_put: cannot open %s\n", file);
    return 2;
  }
  unsigned long long done = 0, x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (;;) {
    size_t n;
    if (f) {
      n = fread(buf, 1, chunk, f);
    } else {
      n = nbytes - done < chunk ? (size_t)(nbytes - done) : chunk;
      for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)(x >> 24);
      }
    }
    if (n == 0) break;
    if ((st = reel_sink_write(s, buf, n, &err)) != REEL_OK) break;
    done += n;
    if (delay) reel_sleep_ms(delay);
  }
  if (f) fclose(f);
  free(buf);
  if (st) {
    print_err("write", st, &err);
    reel_sink_abort(&s);
    return 1;
  }
  reel_sink_result res;
  st = reel_sink_close(&s, &res, &err);
  if (st) {
    print_err("close", st, &err);
    return st == REEL_EAGAIN ? 3 : 1;
  }
  printf("{\"ok\":true,\"url\":\"%s\",\"bytes\":%llu,\"sha256\":\"%s\"}\n", res.url, (unsigned long long)res.bytes,
         res.sha256);
  return 0;
}
