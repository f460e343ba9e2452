/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WanPipeline's prompt_clean (diffusers 0.42, without ftfy): html.unescape applied twice,
 * strip, every run of White_Space to one space, strip. html.unescape is reproduced from
 * Python's html module: numeric references (decimal or hex, ';' optional; remapped,
 * dropped or U+FFFD as Python does) and the HTML5 named references, including names
 * without ';' and the longest-prefix rule for unknown names (tables in html_entities.h).
 * Python's str.strip() removes str.isspace() characters, which are White_Space plus
 * U+001C..U+001F; the run collapsing uses the regex module's \s (White_Space only).
 */
#include <stdlib.h>
#include <string.h>

#include "html_entities.h"
#include "reel/alloc.h"
#include "reel/tokenizer.h"
#include "tok_internal.h"

static int is_pyspace(uint32_t c) { return tok_is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

static const char *entity_lookup(const char *name, size_t n) {
  size_t lo = 0, hi = sizeof tok_entities / sizeof tok_entities[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const char *k = tok_entities[mid].name;
    size_t kl = strlen(k);
    int c = memcmp(name, k, n < kl ? n : kl);
    if (c == 0) c = n < kl ? -1 : n > kl ? 1 : 0;
    if (c == 0) return tok_entities[mid].value;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static reel_status append_numeric(tok_buf *out, uint32_t num) {
  for (size_t i = 0; i < sizeof tok_invalid_charrefs / sizeof tok_invalid_charrefs[0]; i++)
    if (tok_invalid_charrefs[i][0] == num) return tok_buf_append_cp(out, tok_invalid_charrefs[i][1]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return tok_buf_append_cp(out, 0xFFFD);
  for (size_t i = 0; i < sizeof tok_invalid_codepoints / sizeof tok_invalid_codepoints[0]; i++)
    if (tok_invalid_codepoints[i] == num) return REEL_OK;
  return tok_buf_append_cp(out, num);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One html.unescape() pass over valid UTF-8 s[0..n) into out. */
static reel_status unescape(const char *s, size_t n, tok_buf *out) {
  reel_status st;
  size_t i = 0;
  out->n = 0;
  if ((st = tok_buf_append(out, "", 0)) != REEL_OK) return st;
  while (i < n) {
    if (s[i] != '&') {
      size_t j = i;
      while (j < n && s[j] != '&') j++;
      if ((st = tok_buf_append(out, s + i, j - i)) != REEL_OK) return st;
      i = j;
      continue;
    }
    size_t p = i + 1;
    if (p < n && s[p] == '#') {
      size_t q = p + 1;
      uint32_t num = 0;
      int digits = 0;
      if (q < n && s[q] >= '0' && s[q] <= '9') {
        while (q < n && s[q] >= '0' && s[q] <= '9') {
          num = num > 0x110000 ? 0x110001 : num * 10 + (uint32_t)(s[q] - '0');
          q++;
          digits++;
        }
      } else if (q < n && (s[q] == 'x' || s[q] == 'X')) {
        q++;
        while (q < n && hexval(s[q]) >= 0) {
          num = num > 0x110000 ? 0x110001 : num * 16 + (uint32_t)hexval(s[q]);
          q++;
          digits++;
        }
      }
      if (digits == 0) { /* not a reference: '&' stays, scanning goes on after it */
        if ((st = tok_buf_append(out, "&", 1)) != REEL_OK) return st;
        i++;
        continue;
      }
      if (q < n && s[q] == ';') q++;
      if ((st = append_numeric(out, num)) != REEL_OK) return st;
      i = q;
      continue;
    }
    /* named: 1..32 characters outside \t \n \f space < & # ;, then an optional ';' */
    size_t q = p, chars = 0;
    while (q < n && chars < 32) {
      unsigned char c = (unsigned char)s[q];
      if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
      q += tok_utf8_len(c);
      chars++;
    }
    if (chars == 0) {
      if ((st = tok_buf_append(out, "&", 1)) != REEL_OK) return st;
      i++;
      continue;
    }
    if (q < n && s[q] == ';') {
      q++;
      chars++;
    }
    const char *v = entity_lookup(s + p, q - p);
    if (v) {
      if ((st = tok_buf_append(out, v, strlen(v))) != REEL_OK) return st;
      i = q;
      continue;
    }
    /* the longest prefix of 2 .. chars-1 characters that is a name */
    size_t offs[34], k = 0;
    for (size_t r = p; r < q && k < 34; r += tok_utf8_len((unsigned char)s[r])) offs[k++] = r;
    offs[k] = q;
    const char *pv = NULL;
    size_t plen = 0;
    for (size_t x = chars - 1; x >= 2 && !pv; x--) {
      pv = entity_lookup(s + p, offs[x] - p);
      plen = offs[x] - p;
    }
    if (pv) {
      if ((st = tok_buf_append(out, pv, strlen(pv))) != REEL_OK) return st;
      if ((st = tok_buf_append(out, s + p + plen, q - p - plen)) != REEL_OK) return st;
    } else if ((st = tok_buf_append(out, s + i, q - i)) != REEL_OK) {
      return st;
    }
    i = q;
  }
  return REEL_OK;
}

static void strip_py(const char *s, size_t n, size_t *b, size_t *e) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t c;
    size_t k = tok_utf8_next(s + lo, hi - lo, &c);
    if (!is_pyspace(c)) break;
    lo += k;
  }
  while (hi > lo) {
    size_t q = hi - 1;
    while (q > lo && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
    uint32_t c;
    tok_utf8_next(s + q, hi - q, &c);
    if (!is_pyspace(c)) break;
    hi = q;
  }
  *b = lo;
  *e = hi;
}

reel_status reel_tokenizer_prompt_clean(const char *text, size_t len, char **out, size_t *out_len, reel_error *err) {
  tok_buf a = {0}, b = {0};
  int changed;
  reel_status st;
  *out = NULL;
  *out_len = 0;
  if (!text && len) return reel_error_set(err, REEL_EINVAL, "prompt", "is NULL with length %zu", len);
  if (len > REEL_TOKENIZER_MAX_TEXT)
    return reel_error_set(err, REEL_ELIMIT, "prompt", "%zu bytes, at most %u", len, REEL_TOKENIZER_MAX_TEXT);
  if ((st = tok_utf8_sanitize(text ? text : "", len, &a, &changed)) != REEL_OK ||
      (st = tok_buf_append(&a, "", 0)) != REEL_OK || (st = unescape(a.p, a.n, &b)) != REEL_OK ||
      (st = unescape(b.p, b.n, &a)) != REEL_OK)
    goto oom;
  size_t lo, hi;
  strip_py(a.p, a.n, &lo, &hi);
  b.n = 0;
  if ((st = tok_buf_append(&b, "", 0)) != REEL_OK) goto oom;
  for (size_t i = lo; i < hi;) {
    uint32_t c;
    size_t k = tok_utf8_next(a.p + i, hi - i, &c);
    if (tok_is_whitespace(c)) {
      while (i < hi) {
        k = tok_utf8_next(a.p + i, hi - i, &c);
        if (!tok_is_whitespace(c)) break;
        i += k;
      }
      if ((st = tok_buf_append(&b, " ", 1)) != REEL_OK) goto oom;
      continue;
    }
    if ((st = tok_buf_append(&b, a.p + i, k)) != REEL_OK) goto oom;
    i += k;
  }
  strip_py(b.p, b.n, &lo, &hi);
  *out = reel_malloc(hi - lo + 1); /* not strndup: the text may hold NUL characters */
  if (!*out) {
    st = REEL_ENOMEM;
    goto oom;
  }
  memcpy(*out, b.p + lo, hi - lo);
  (*out)[hi - lo] = '\0';
  *out_len = hi - lo;
  tok_buf_fini(&a);
  tok_buf_fini(&b);
  return REEL_OK;
oom:
  tok_buf_fini(&a);
  tok_buf_fini(&b);
  return reel_error_set(err, st, "prompt", "out of memory cleaning %zu bytes", len);
}
