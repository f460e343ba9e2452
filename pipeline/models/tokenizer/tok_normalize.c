/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Normaliser steps of tokenizer.json: SentencePiece's precompiled charsmap applied the
 * way the Hugging Face `Precompiled` normaliser applies it, Replace (literal or a small
 * regex subset), Strip and Prepend.
 *
 * The charsmap is a darts-clone double-array trie over UTF-8 bytes whose leaves index
 * NUL-terminated replacement strings. HF walks the text by extended grapheme cluster: a
 * cluster shorter than 6 bytes is looked up whole and, when the trie holds any prefix of
 * it, the whole cluster becomes the replacement of the *shortest* such prefix; otherwise
 * each code point is looked up alone and kept when absent. That is not SentencePiece's
 * own longest-match rule, but it is what transformers/diffusers feed the model, so reel
 * reproduces it. A trie whose leaves point outside the replacement strings, or into the
 * middle of a UTF-8 sequence, is treated as "no entry" there instead of failing.
 *
 * Replace patterns given as {"Regex": ...} are compiled by a small backtracking matcher
 * that covers what SentencePiece conversions write (" {2,}", "\s+", classes, counted
 * repetition); anything else is rejected at load time with REEL_EUNSUPPORTED naming the
 * field, never silently mis-applied.
 */
#include <string.h>

#include "reel/alloc.h"
#include "tok_internal.h"

/* ---- precompiled charsmap ------------------------------------------------------------- */

reel_status tok_charsmap_parse(tok_charsmap *cm, const unsigned char *data, size_t n, const char *field,
                               reel_error *err) {
  memset(cm, 0, sizeof *cm);
  if (n < 4) return reel_error_set(err, REEL_EFORMAT, field, "charsmap of %zu bytes has no trie size", n);
  uint32_t trie_bytes =
      (uint32_t)data[0] | ((uint32_t)data[1] << 8) | ((uint32_t)data[2] << 16) | ((uint32_t)data[3] << 24);
  size_t nunits = trie_bytes / 4;
  if (nunits == 0 || nunits > (n - 4) / 4)
    return reel_error_set(err, REEL_EFORMAT, field, "trie of %u bytes does not fit in a charsmap of %zu bytes",
                          trie_bytes, n);
  cm->units = reel_malloc(nunits * sizeof *cm->units);
  size_t off = 4 + nunits * 4;
  cm->nnormalized = n - off;
  cm->normalized = reel_malloc(cm->nnormalized + 1);
  if (!cm->units || !cm->normalized) {
    tok_charsmap_fini(cm);
    return reel_error_set(err, REEL_ENOMEM, field, "out of memory for the charsmap");
  }
  for (size_t i = 0; i < nunits; i++) {
    const unsigned char *p = data + 4 + 4 * i;
    cm->units[i] = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
  }
  cm->nunits = nunits;
  memcpy(cm->normalized, data + off, cm->nnormalized);
  cm->normalized[cm->nnormalized] = '\0';
  /* The replacement strings must be valid UTF-8 (NULs separate them). */
  tok_buf tmp = {0};
  int changed = 0;
  reel_status st = tok_utf8_sanitize(cm->normalized, cm->nnormalized, &tmp, &changed);
  tok_buf_fini(&tmp);
  if (st != REEL_OK || changed) {
    tok_charsmap_fini(cm);
    return reel_error_set(err, st != REEL_OK ? st : REEL_EFORMAT, field,
                          "the charsmap's replacement strings are not valid UTF-8");
  }
  return REEL_OK;
}

void tok_charsmap_fini(tok_charsmap *cm) {
  reel_free(cm->units);
  reel_free(cm->normalized);
  memset(cm, 0, sizeof *cm);
}

static inline uint32_t du_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t du_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static inline int du_has_leaf(uint32_t u) { return (u >> 8) & 1u; }
static inline uint32_t du_value(uint32_t u) { return u & ((1u << 31) - 1); }

int tok_charsmap_lookup(const tok_charsmap *cm, const char *s, size_t n, const char **rep, size_t *rep_len) {
  size_t pos = du_offset(cm->units[0]);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0) break;
    pos ^= c;
    if (pos >= cm->nunits) return 0;
    uint32_t u = cm->units[pos];
    if (du_label(u) != c) return 0;
    pos ^= du_offset(u);
    if (du_has_leaf(u)) {
      if (pos >= cm->nunits) return 0;
      size_t idx = du_value(cm->units[pos]);
      if (idx > cm->nnormalized) return 0;
      if (idx < cm->nnormalized && ((unsigned char)cm->normalized[idx] & 0xC0) == 0x80) return 0;
      *rep = cm->normalized + idx;
      *rep_len = strlen(cm->normalized + idx);
      return 1;
    }
  }
  return 0;
}

static reel_status apply_precompiled(const tok_charsmap *cm, const char *s, size_t n, tok_buf *out) {
  reel_status st = REEL_OK;
  size_t pos = 0;
  while (pos < n) {
    size_t end = tok_grapheme_end(s, n, pos);
    const char *rep;
    size_t rl;
    if (end - pos < 6 && tok_charsmap_lookup(cm, s + pos, end - pos, &rep, &rl)) {
      if ((st = tok_buf_append(out, rep, rl)) != REEL_OK) return st;
      pos = end;
      continue;
    }
    while (pos < end) {
      size_t k = tok_utf8_len((unsigned char)s[pos]);
      if (tok_charsmap_lookup(cm, s + pos, k, &rep, &rl))
        st = tok_buf_append(out, rep, rl);
      else
        st = tok_buf_append(out, s + pos, k);
      if (st != REEL_OK) return st;
      pos += k;
    }
  }
  return REEL_OK;
}

/* ---- regex subset --------------------------------------------------------------------- */

enum { TOK_RX_CHAR, TOK_RX_SPACE, TOK_RX_NOTSPACE, TOK_RX_ANY, TOK_RX_CLASS };

void tok_regex_fini(tok_regex *rx) {
  for (size_t i = 0; i < rx->natoms; i++) reel_free(rx->atoms[i].ranges);
  reel_free(rx->atoms);
  rx->atoms = NULL;
  rx->natoms = 0;
}

/* Reads one (possibly escaped) literal code point at p; returns bytes consumed, 0 if unsupported. */
static size_t rx_literal(const char *p, size_t n, uint32_t *cp, int *is_space_class) {
  *is_space_class = 0;
  if (p[0] != '\\') return tok_utf8_next(p, n, cp);
  if (n < 2) return 0;
  switch (p[1]) {
    case 't':
      *cp = '\t';
      return 2;
    case 'n':
      *cp = '\n';
      return 2;
    case 'r':
      *cp = '\r';
      return 2;
    case 'f':
      *cp = '\f';
      return 2;
    case 'v':
      *cp = '\v';
      return 2;
    case 's':
      *is_space_class = 1;
      return 2;
    case 'S':
      *is_space_class = 2;
      return 2;
    default:
      break;
  }
  /* Escaped punctuation stands for itself; escaped letters/digits are classes or backrefs we lack. */
  if ((unsigned char)p[1] < 0x80 &&
      !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z') || (p[1] >= '0' && p[1] <= '9'))) {
    *cp = (unsigned char)p[1];
    return 2;
  }
  return 0;
}

static int add_range(tok_regex_atom *a, uint32_t lo, uint32_t hi) {
  uint32_t *r = reel_realloc(a->ranges, (a->nranges + 1) * 2 * sizeof *r);
  if (!r) return 0;
  a->ranges = r;
  r[2 * a->nranges] = lo;
  r[2 * a->nranges + 1] = hi;
  a->nranges++;
  return 1;
}

static const uint32_t ws_ranges[][2] = {{0x09, 0x0D},     {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},
                                        {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
                                        {0x205F, 0x205F}, {0x3000, 0x3000}};

static int parse_uint(const char **pp, const char *end, uint32_t *out) {
  const char *p = *pp;
  uint64_t v = 0;
  if (p >= end || *p < '0' || *p > '9') return 0;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > 100000) return 0;
    p++;
  }
  *pp = p;
  *out = (uint32_t)v;
  return 1;
}

reel_status tok_regex_compile(tok_regex *rx, const char *pattern, const char *field, reel_error *err) {
  memset(rx, 0, sizeof *rx);
  size_t n = strlen(pattern);
  const char *p = pattern, *end = pattern + n;
  uint64_t minlen = 0;
  while (p < end) {
    if (rx->natoms == 64) goto unsupported; /* bounds the matcher's recursion */
    tok_regex_atom *atoms = reel_realloc(rx->atoms, (rx->natoms + 1) * sizeof *atoms);
    if (!atoms) goto nomem;
    rx->atoms = atoms;
    tok_regex_atom *a = &rx->atoms[rx->natoms++];
    memset(a, 0, sizeof *a);
    a->min = a->max = 1;
    int sp;
    if (*p == '.') {
      a->kind = TOK_RX_ANY;
      p++;
    } else if (*p == '[') {
      a->kind = TOK_RX_CLASS;
      p++;
      if (p < end && *p == '^') {
        a->negated = 1;
        p++;
      }
      int first = 1;
      while (p < end && (*p != ']' || first)) {
        uint32_t lo, hi;
        size_t k = rx_literal(p, (size_t)(end - p), &lo, &sp);
        if (!k || (*p == '[' && !sp)) goto unsupported;
        p += k;
        first = 0;
        if (sp == 1) {
          for (size_t i = 0; i < sizeof ws_ranges / sizeof ws_ranges[0]; i++)
            if (!add_range(a, ws_ranges[i][0], ws_ranges[i][1])) goto nomem;
          continue;
        }
        if (sp == 2) goto unsupported;
        hi = lo;
        if (p + 1 < end && *p == '-' && p[1] != ']') {
          p++;
          k = rx_literal(p, (size_t)(end - p), &hi, &sp);
          if (!k || sp || hi < lo) goto unsupported;
          p += k;
        }
        if (!add_range(a, lo, hi)) goto nomem;
      }
      if (p >= end) goto unsupported;
      p++; /* ']' */
    } else if (strchr("()|^$*+?{}]", *p)) {
      goto unsupported;
    } else {
      size_t k = rx_literal(p, (size_t)(end - p), &a->cp, &sp);
      if (!k) goto unsupported;
      a->kind = sp == 1 ? TOK_RX_SPACE : sp == 2 ? TOK_RX_NOTSPACE : TOK_RX_CHAR;
      p += k;
    }
    /* Quantifier. */
    if (p < end && (*p == '*' || *p == '+' || *p == '?')) {
      a->min = *p == '+' ? 1 : 0;
      a->max = *p == '?' ? 1 : UINT32_MAX;
      p++;
    } else if (p < end && *p == '{') {
      p++;
      if (!parse_uint(&p, end, &a->min)) goto unsupported;
      a->max = a->min;
      if (p < end && *p == ',') {
        p++;
        a->max = UINT32_MAX;
        if (p < end && *p != '}' && !parse_uint(&p, end, &a->max)) goto unsupported;
      }
      if (p >= end || *p != '}' || a->max < a->min) goto unsupported;
      p++;
    }
    if (p < end && (*p == '?' || *p == '+' || *p == '*' || *p == '{')) goto unsupported; /* lazy/possessive */
    minlen += a->min;
  }
  if (minlen == 0) {
    tok_regex_fini(rx);
    return reel_error_set(err, REEL_EUNSUPPORTED, field, "regex \"%.64s\" can match the empty string", pattern);
  }
  return REEL_OK;
unsupported:
  tok_regex_fini(rx);
  return reel_error_set(err, REEL_EUNSUPPORTED, field,
                        "regex \"%.64s\" is outside the supported subset (up to 64 literals, ., \\s, \\S, [classes], "
                        "*, +, ?, {n,m})",
                        pattern);
nomem:
  tok_regex_fini(rx);
  return reel_error_set(err, REEL_ENOMEM, field, "out of memory compiling a regex");
}

static int rx_atom_matches(const tok_regex_atom *a, uint32_t c) {
  switch (a->kind) {
    case TOK_RX_CHAR:
      return c == a->cp;
    case TOK_RX_SPACE:
      return tok_is_whitespace(c);
    case TOK_RX_NOTSPACE:
      return !tok_is_whitespace(c);
    case TOK_RX_ANY:
      return c != '\n';
    default: {
      int in = 0;
      for (size_t i = 0; i < a->nranges && !in; i++) in = c >= a->ranges[2 * i] && c <= a->ranges[2 * i + 1];
      return a->negated ? !in : in;
    }
  }
}

#define RX_NOMATCH SIZE_MAX
#define RX_ABORT   (SIZE_MAX - 1)

/*
 * Matches atoms[k..] at s[pos..); returns the end, RX_NOMATCH, or RX_ABORT when the step
 * budget ran out or memory did. Greedy, backtracking (Oniguruma's leftmost-first order).
 */
static size_t rx_match(const tok_regex *rx, size_t k, const char *s, size_t n, size_t pos, uint64_t *budget) {
  if (k == rx->natoms) return pos;
  const tok_regex_atom *a = &rx->atoms[k];
  size_t count = 0, p = pos;
  size_t stack_ends[64];
  size_t *ends = stack_ends, cap = 64;
  size_t result = RX_NOMATCH;
  while (count < a->max && p < n) {
    if (*budget == 0) {
      result = RX_ABORT;
      goto out;
    }
    (*budget)--;
    uint32_t c;
    size_t l = tok_utf8_next(s + p, n - p, &c);
    if (!rx_atom_matches(a, c)) break;
    p += l;
    if (count == cap) {
      size_t *ne = reel_malloc(cap * 2 * sizeof *ne);
      if (!ne) {
        result = RX_ABORT;
        goto out;
      }
      memcpy(ne, ends, cap * sizeof *ne);
      if (ends != stack_ends) reel_free(ends);
      ends = ne;
      cap *= 2;
    }
    ends[count++] = p;
  }
  for (size_t r = count + 1; r-- > a->min;) {
    size_t at = r == 0 ? pos : ends[r - 1];
    size_t e = rx_match(rx, k + 1, s, n, at, budget);
    if (e != RX_NOMATCH) {
      result = e;
      break;
    }
  }
out:
  if (ends != stack_ends) reel_free(ends);
  return result;
}

int tok_regex_find(const tok_regex *rx, const char *s, size_t n, size_t from, uint64_t *budget, size_t *ms,
                   size_t *me) {
  for (size_t start = from; start < n; start += tok_utf8_len((unsigned char)s[start])) {
    size_t e = rx_match(rx, 0, s, n, start, budget);
    if (e == RX_ABORT) return -1;
    if (e != RX_NOMATCH) {
      *ms = start;
      *me = e;
      return 1;
    }
  }
  return 0;
}

/* ---- steps ---------------------------------------------------------------------------- */

void tok_norm_step_fini(tok_norm_step *s) {
  tok_charsmap_fini(&s->cm);
  tok_regex_fini(&s->rx);
  reel_free(s->literal);
  reel_free(s->content);
  memset(s, 0, sizeof *s);
}

reel_status tok_norm_apply(const tok_norm_step *s, const char *in, size_t n, tok_buf *out) {
  reel_status st = REEL_OK;
  out->n = 0;
  if (out->p) out->p[0] = '\0';
  if ((st = tok_buf_append(out, "", 0)) != REEL_OK) return st; /* always allocated */
  switch (s->kind) {
    case TOK_NORM_PRECOMPILED:
      return apply_precompiled(&s->cm, in, n, out);
    case TOK_NORM_REPLACE: {
      size_t pos = 0;
      /* A bound on backtracking: linear in the text for the patterns conversions write. */
      uint64_t budget = 256 * ((uint64_t)n + 1) + 65536;
      while (pos < n) {
        size_t ms, me;
        int found;
        if (s->is_regex) {
          found = tok_regex_find(&s->rx, in, n, pos, &budget, &ms, &me);
          if (found < 0) return REEL_ELIMIT;
        } else {
          const char *hit = s->literal_len <= n - pos ? memmem(in + pos, n - pos, s->literal, s->literal_len) : NULL;
          found = hit != NULL;
          if (found) {
            ms = (size_t)(hit - in);
            me = ms + s->literal_len;
          }
        }
        if (!found) break;
        if ((st = tok_buf_append(out, in + pos, ms - pos)) != REEL_OK) return st;
        if ((st = tok_buf_append(out, s->content, s->content_len)) != REEL_OK) return st;
        pos = me;
      }
      return tok_buf_append(out, in + pos, n - pos);
    }
    case TOK_NORM_STRIP: {
      size_t b = 0, e = n;
      if (s->strip_left) {
        while (b < e) {
          uint32_t c;
          size_t k = tok_utf8_next(in + b, e - b, &c);
          if (!tok_is_whitespace(c)) break;
          b += k;
        }
      }
      if (s->strip_right) {
        while (e > b) {
          size_t q = e - 1;
          while (q > b && ((unsigned char)in[q] & 0xC0) == 0x80) q--;
          uint32_t c;
          tok_utf8_next(in + q, e - q, &c);
          if (!tok_is_whitespace(c)) break;
          e = q;
        }
      }
      return tok_buf_append(out, in + b, e - b);
    }
    case TOK_NORM_PREPEND:
      if (n && (st = tok_buf_append(out, s->content, s->content_len)) != REEL_OK) return st;
      return tok_buf_append(out, in, n);
  }
  return REEL_EINTERNAL;
}
