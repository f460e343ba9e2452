/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte strings, UTF-8 and the Unicode facts the tokenizer needs: replacing invalid
 * UTF-8 with U+FFFD, White_Space, and UAX #29 extended grapheme clusters (the unit the
 * Hugging Face Precompiled normaliser works on), with the Unicode 17 tables of
 * tok_unicode_tables.h.
 */
#include <string.h>

#include "reel/alloc.h"
#include "tok_internal.h"
#include "tok_unicode_tables.h"

reel_status tok_buf_append(tok_buf *b, const void *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) {
      if (cap > SIZE_MAX / 2) return REEL_ENOMEM;
      cap *= 2;
    }
    char *p = reel_realloc(b->p, cap);
    if (!p) return REEL_ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return REEL_OK;
}

reel_status tok_buf_append_cp(tok_buf *b, uint32_t cp) {
  char tmp[4];
  size_t k = tok_utf8_encode(cp, tmp);
  return tok_buf_append(b, tmp, k);
}

void tok_buf_fini(tok_buf *b) {
  reel_free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

size_t tok_utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  size_t k = tok_utf8_len(u[0]);
  if (k > n) k = n; /* cannot happen on valid UTF-8; keeps a bad caller in bounds */
  uint32_t c;
  switch (k) {
    case 1:
      c = u[0];
      break;
    case 2:
      c = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
      break;
    case 3:
      c = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
      break;
    default:
      c = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
          (u[3] & 0x3F);
      break;
  }
  *cp = c;
  return k;
}

size_t tok_utf8_encode(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

reel_status tok_utf8_sanitize(const char *in, size_t n, tok_buf *out, int *changed) {
  static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
  const unsigned char *u = (const unsigned char *)in;
  size_t i = 0, run = 0; /* run: start of the pending valid bytes */
  reel_status st = REEL_OK;
  *changed = 0;
  out->n = 0;
  if (out->p) out->p[0] = '\0';
  while (i < n) {
    unsigned char c = u[i];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      need = 0; /* never a valid lead byte */
    }
    size_t j = i + 1, got = 0;
    if (need) {
      while (got < need && j < n) {
        unsigned char d = u[j];
        unsigned char l = got == 0 ? lo : 0x80, h = got == 0 ? hi : 0xBF;
        if (d < l || d > h) break;
        j++;
        got++;
      }
    }
    if (need && got == need) {
      i = j;
      continue;
    }
    /* u[i..j) is a maximal invalid subpart: flush the valid run, then one U+FFFD. */
    if ((st = tok_buf_append(out, in + run, i - run)) != REEL_OK) return st;
    if ((st = tok_buf_append(out, fffd, 3)) != REEL_OK) return st;
    *changed = 1;
    i = j;
    run = i;
  }
  return tok_buf_append(out, in + run, n - run);
}

int tok_is_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int gcb_of(uint32_t c) {
  size_t lo = 0, hi = sizeof tok_gcb_table / sizeof tok_gcb_table[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < tok_gcb_table[mid].lo)
      hi = mid;
    else if (c > tok_gcb_table[mid].hi)
      lo = mid + 1;
    else
      return tok_gcb_table[mid].cat;
  }
  return TOK_GCB_ANY;
}

static int is_incb_extend(uint32_t c) {
  size_t lo = 0, hi = sizeof tok_incb_extend_table / sizeof tok_incb_extend_table[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < tok_incb_extend_table[mid][0])
      hi = mid;
    else if (c > tok_incb_extend_table[mid][1])
      lo = mid + 1;
    else
      return 1;
  }
  return 0;
}

static int is_incb_linker(uint32_t c) {
  for (size_t i = 0; i < sizeof tok_incb_linkers / sizeof tok_incb_linkers[0]; i++)
    if (tok_incb_linkers[i] == c) return 1;
  return 0;
}

/* InCB state for GB9c: 0 none, 1 after a consonant (+ extends), 2 after consonant ... linker. */
static int incb_step(int state, uint32_t c, int cat) {
  if (cat == TOK_GCB_INCB_CONSONANT) return 1;
  if (is_incb_linker(c)) return state >= 1 ? 2 : 0;
  if (is_incb_extend(c)) return state;
  return 0;
}

size_t tok_grapheme_end(const char *s, size_t n, size_t pos) {
  if (pos >= n) return n;
  uint32_t c;
  size_t i = pos + tok_utf8_next(s + pos, n - pos, &c);
  int prev = gcb_of(c);
  int incb = incb_step(0, c, prev);
  int pict = prev == TOK_GCB_EXTENDED_PICTOGRAPHIC ? 1 : 0; /* 1: ExtPict Extend*, 2: ... ZWJ */
  int ri = prev == TOK_GCB_REGIONAL_INDICATOR ? 1 : 0;      /* regional indicators in the current run */
  while (i < n) {
    uint32_t d;
    size_t k = tok_utf8_next(s + i, n - i, &d);
    int next = gcb_of(d);
    int join;
    if (prev == TOK_GCB_CR && next == TOK_GCB_LF)
      join = 1; /* GB3 */
    else if (prev == TOK_GCB_CONTROL || prev == TOK_GCB_CR || prev == TOK_GCB_LF)
      join = 0; /* GB4 */
    else if (next == TOK_GCB_CONTROL || next == TOK_GCB_CR || next == TOK_GCB_LF)
      join = 0; /* GB5 */
    else if (prev == TOK_GCB_L && (next == TOK_GCB_L || next == TOK_GCB_V || next == TOK_GCB_LV || next == TOK_GCB_LVT))
      join = 1; /* GB6 */
    else if ((prev == TOK_GCB_LV || prev == TOK_GCB_V) && (next == TOK_GCB_V || next == TOK_GCB_T))
      join = 1; /* GB7 */
    else if ((prev == TOK_GCB_LVT || prev == TOK_GCB_T) && next == TOK_GCB_T)
      join = 1; /* GB8 */
    else if (next == TOK_GCB_EXTEND || next == TOK_GCB_ZWJ || next == TOK_GCB_SPACINGMARK)
      join = 1; /* GB9, GB9a */
    else if (prev == TOK_GCB_PREPEND)
      join = 1; /* GB9b */
    else if (next == TOK_GCB_INCB_CONSONANT && incb == 2)
      join = 1; /* GB9c */
    else if (prev == TOK_GCB_ZWJ && next == TOK_GCB_EXTENDED_PICTOGRAPHIC && pict == 2)
      join = 1; /* GB11 */
    else if (prev == TOK_GCB_REGIONAL_INDICATOR && next == TOK_GCB_REGIONAL_INDICATOR && (ri & 1))
      join = 1; /* GB12, GB13 */
    else
      join = 0; /* GB999 */
    if (!join) break;
    /* Advance the states over d. */
    incb = incb_step(incb, d, next);
    if (next == TOK_GCB_EXTENDED_PICTOGRAPHIC)
      pict = 1;
    else if (next == TOK_GCB_EXTEND && pict == 1)
      pict = 1;
    else if (next == TOK_GCB_ZWJ && pict == 1)
      pict = 2;
    else
      pict = 0;
    ri = next == TOK_GCB_REGIONAL_INDICATOR ? ri + 1 : 0;
    prev = next;
    i += k;
  }
  return i;
}
