/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the tokenizer (reel/tokenizer.h), shared by its source files: a growable
 * byte string, UTF-8 and Unicode helpers (UAX #29 grapheme clusters, White_Space), the
 * normaliser steps (SentencePiece precompiled charsmap, Replace with a small regex
 * subset, Strip, Prepend), and the unigram model (byte trie + Viterbi). Nothing here is
 * public API; every function works on valid UTF-8 unless it says otherwise.
 */
#ifndef REEL_TOK_INTERNAL_H
#define REEL_TOK_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

/* ---- growable byte string ---------------------------------------------------------------- */

typedef struct tok_buf {
  char *p;    /* owned; NUL-terminated when non-NULL */
  size_t n;   /* bytes used, excluding the NUL */
  size_t cap; /* bytes allocated */
} tok_buf;

/* Appends n bytes; REEL_ENOMEM on failure (buf unchanged). */
reel_status tok_buf_append(tok_buf *b, const void *s, size_t n);
reel_status tok_buf_append_cp(tok_buf *b, uint32_t cp);
void tok_buf_fini(tok_buf *b);

/* ---- UTF-8 and Unicode ------------------------------------------------------------------- */

/* Decodes the code point at s (valid UTF-8, n > 0 bytes left); returns its length. */
size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp /* OUT: */);
/* Length of the UTF-8 sequence starting with byte c (valid UTF-8 assumed). */
size_t tok_utf8_len(unsigned char c);
/* Encodes cp (<= 0x10FFFF, not a surrogate) into out; returns 1..4. */
size_t tok_utf8_encode(uint32_t cp, char out[4]);
/*
 * Copies `in` to `out` replacing every maximal invalid subsequence with U+FFFD (the
 * "substitution of maximal subparts" of Unicode ch. 3 = Python's errors="replace").
 * Sets *changed when anything was replaced.
 */
reel_status tok_utf8_sanitize(const char *in, size_t n, tok_buf *out, int *changed /* OUT: */);
/* Unicode White_Space (Rust char::is_whitespace, regex \s). */
int tok_is_whitespace(uint32_t cp);
/* End (byte offset) of the extended grapheme cluster that starts at `pos` of s[0..n). */
size_t tok_grapheme_end(const char *s, size_t n, size_t pos);

/* ---- normaliser -------------------------------------------------------------------------- */

/* SentencePiece's precompiled charsmap: a darts-clone double array + NUL-separated replacements. */
typedef struct tok_charsmap {
  uint32_t *units; /* owned; trie units */
  size_t nunits;
  char *normalized; /* owned; replacement strings, each NUL-terminated */
  size_t nnormalized;
} tok_charsmap;

/*
 * Parses the decoded charsmap bytes (little-endian u32 trie size in bytes, the trie,
 * then the strings). Errors name `field`.
 */
reel_status tok_charsmap_parse(tok_charsmap *cm, const unsigned char *data, size_t n, const char *field,
                               reel_error *err);
void tok_charsmap_fini(tok_charsmap *cm);
/*
 * The replacement for the shortest prefix of s[0..n) the trie holds (as spm_precompiled's
 * transform: results[0]); returns 0 when there is none, else 1 with *rep and *rep_len set.
 */
int tok_charsmap_lookup(const tok_charsmap *cm, const char *s, size_t n, const char **rep, size_t *rep_len);

/* A regex subset for Replace patterns: a sequence of (character set, min, max) atoms. */
typedef struct tok_regex_atom {
  int kind;         /* TOK_RX_CHAR, _SPACE, _NOTSPACE, _ANY or _CLASS */
  int negated;      /* for classes */
  uint32_t cp;      /* TOK_RX_CHAR */
  uint32_t *ranges; /* TOK_RX_CLASS: pairs lo,hi (owned) */
  size_t nranges;
  uint32_t min, max; /* repetitions; max UINT32_MAX = unbounded */
} tok_regex_atom;

typedef struct tok_regex {
  tok_regex_atom *atoms;
  size_t natoms;
} tok_regex;

reel_status tok_regex_compile(tok_regex *rx, const char *pattern, const char *field, reel_error *err);
void tok_regex_fini(tok_regex *rx);
/*
 * Leftmost match at or after `from`: returns 1 and [*ms, *me), 0 when there is none, -1 when
 * *budget (matcher steps, decremented) ran out or memory did. Greedy with backtracking.
 */
int tok_regex_find(const tok_regex *rx, const char *s, size_t n, size_t from, uint64_t *budget, size_t *ms, size_t *me);

enum tok_norm_kind { TOK_NORM_PRECOMPILED, TOK_NORM_REPLACE, TOK_NORM_STRIP, TOK_NORM_PREPEND };

typedef struct tok_norm_step {
  enum tok_norm_kind kind;
  tok_charsmap cm; /* PRECOMPILED */
  int is_regex;    /* REPLACE: pattern is a regex (else a literal string) */
  tok_regex rx;    /* REPLACE with regex */
  char *literal;   /* REPLACE with a string pattern (owned) */
  size_t literal_len;
  char *content; /* REPLACE replacement / PREPEND text (owned) */
  size_t content_len;
  int strip_left, strip_right; /* STRIP */
} tok_norm_step;

void tok_norm_step_fini(tok_norm_step *s);
/* Applies one step to in[0..n) (valid UTF-8), writing into out (reset first). */
reel_status tok_norm_apply(const tok_norm_step *s, const char *in, size_t n, tok_buf *out);

/* ---- unigram model ----------------------------------------------------------------------- */

typedef struct tok_trie_node {
  int32_t child;   /* first child node, -1 none */
  int32_t sibling; /* next sibling, -1 none */
  int32_t id;      /* piece id ending here (the last one with this string), -1 none */
  uint8_t label;
} tok_trie_node;

typedef struct tok_unigram {
  size_t nvocab;
  double *scores; /* [nvocab] */
  double min_score;
  int64_t unk_id; /* -1 when the model has none */
  int byte_fallback;
  tok_trie_node *nodes; /* node 0 is the root */
  size_t nnodes, capnodes;
  int32_t root_child[256]; /* direct index of the root's children */
  int32_t byte_ids[256];   /* id of "<0xXX>" per byte, -1 when absent */
} tok_unigram;

/* Inserts piece `id`; later ids win for duplicate strings (as a hash map insert would). */
reel_status tok_unigram_add(tok_unigram *m, const char *piece, size_t len, int32_t id);
/* Exact lookup; -1 when absent. */
int32_t tok_unigram_lookup(const tok_unigram *m, const char *s, size_t n);
void tok_unigram_fini(tok_unigram *m);
/*
 * Viterbi segmentation of one pre-token s[0..n) (valid UTF-8) into ids appended to
 * *ids (grown with reel_realloc). REEL_EINVAL (naming "model.unk_id") when a
 * character has no piece and the model has no unk id.
 */
reel_status tok_unigram_encode(const tok_unigram *m, const char *s, size_t n, int32_t **ids, size_t *nids, size_t *cap,
                               reel_error *err);

#endif
