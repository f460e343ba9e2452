/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SentencePiece unigram model as the Hugging Face tokenizers library runs it: a byte
 * trie over the pieces, Viterbi over every piece that starts at each character boundary
 * (f64 scores; ties keep the path found first, i.e. the one whose last piece starts
 * earliest), an unknown-character node with score min_score - 10 where no single-character
 * piece exists, consecutive unknowns fused into one token, and optional byte fallback
 * (<0xXX> pieces) for fused unknowns.
 */
#include <string.h>

#include "reel/alloc.h"
#include "tok_internal.h"

#define TOK_UNK_PENALTY 10.0

static int32_t new_node(tok_unigram *m, uint8_t label) {
  if (m->nnodes == m->capnodes) {
    size_t cap = m->capnodes ? m->capnodes * 2 : 1024;
    if (cap > INT32_MAX) return -1;
    tok_trie_node *nodes = reel_realloc(m->nodes, cap * sizeof *nodes);
    if (!nodes) return -1;
    m->nodes = nodes;
    m->capnodes = cap;
  }
  tok_trie_node *nd = &m->nodes[m->nnodes];
  nd->child = nd->sibling = nd->id = -1;
  nd->label = label;
  return (int32_t)m->nnodes++;
}

static int32_t find_child(const tok_unigram *m, int32_t node, uint8_t c) {
  if (node == 0) return m->root_child[c];
  for (int32_t k = m->nodes[node].child; k >= 0; k = m->nodes[k].sibling)
    if (m->nodes[k].label == c) return k;
  return -1;
}

reel_status tok_unigram_add(tok_unigram *m, const char *piece, size_t len, int32_t id) {
  if (m->nnodes == 0) {
    for (int i = 0; i < 256; i++) m->root_child[i] = -1;
    if (new_node(m, 0) < 0) return REEL_ENOMEM;
  }
  if (len == 0) return REEL_OK; /* an empty piece never matches text */
  int32_t node = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)piece[i];
    int32_t k = find_child(m, node, c);
    if (k < 0) {
      k = new_node(m, c);
      if (k < 0) return REEL_ENOMEM;
      if (node == 0) {
        m->root_child[c] = k;
      } else {
        m->nodes[k].sibling = m->nodes[node].child;
        m->nodes[node].child = k;
      }
    }
    node = k;
  }
  m->nodes[node].id = id;
  return REEL_OK;
}

int32_t tok_unigram_lookup(const tok_unigram *m, const char *s, size_t n) {
  if (m->nnodes == 0 || n == 0) return -1;
  int32_t node = 0;
  for (size_t i = 0; i < n && node >= 0; i++) node = find_child(m, node, (uint8_t)s[i]);
  return node >= 0 ? m->nodes[node].id : -1;
}

void tok_unigram_fini(tok_unigram *m) {
  reel_free(m->scores);
  reel_free(m->nodes);
  memset(m, 0, sizeof *m);
}

static reel_status push_id(int32_t **ids, size_t *nids, size_t *cap, int32_t id) {
  if (*nids == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    int32_t *p = reel_realloc(*ids, c * sizeof *p);
    if (!p) return REEL_ENOMEM;
    *ids = p;
    *cap = c;
  }
  (*ids)[(*nids)++] = id;
  return REEL_OK;
}

typedef struct best_node {
  double score;
  int64_t start; /* -1: not reached */
  int32_t id;
} best_node;

/* Emits the id(s) of a fused run of unknown pieces s[b..e). */
static reel_status emit_unknown(const tok_unigram *m, const char *s, size_t b, size_t e, int32_t *out, size_t *nout,
                                reel_error *err) {
  int32_t id = tok_unigram_lookup(m, s + b, e - b);
  *nout = 0;
  if (id >= 0) {
    out[(*nout)++] = id;
    return REEL_OK;
  }
  (void)err;
  out[(*nout)++] = (int32_t)m->unk_id; /* unk_id >= 0 here: unknown nodes need it */
  return REEL_OK;
}

reel_status tok_unigram_encode(const tok_unigram *m, const char *s, size_t n, int32_t **ids, size_t *nids, size_t *cap,
                               reel_error *err) {
  if (n == 0) return REEL_OK;
  reel_status st = REEL_OK;
  best_node *best = reel_malloc((n + 1) * sizeof *best);
  size_t *starts = NULL;
  if (!best) return reel_error_set(err, REEL_ENOMEM, "text", "out of memory for a %zu-byte word", n);
  for (size_t i = 0; i <= n; i++) {
    best[i].score = 0.0;
    best[i].start = -1;
    best[i].id = 0;
  }
  const double unk_score = m->min_score - TOK_UNK_PENALTY;
  for (size_t at = 0; at < n;) {
    double here = best[at].score;
    size_t mblen = tok_utf8_len((unsigned char)s[at]);
    if (mblen > n - at) mblen = n - at;
    int single = 0;
    int32_t node = 0;
    for (size_t i = at; i < n; i++) {
      node = find_child(m, node, (uint8_t)s[i]);
      if (node < 0) break;
      int32_t id = m->nodes[node].id;
      if (id < 0) continue;
      size_t key = i + 1;
      double cand = m->scores[id] + here;
      if (best[key].start < 0 || cand > best[key].score) {
        best[key].score = cand;
        best[key].start = (int64_t)at;
        best[key].id = id;
      }
      if (key - at == mblen) single = 1;
    }
    if (!single) {
      if (m->unk_id < 0) {
        st = reel_error_set(err, REEL_EINVAL, "model.unk_id",
                            "the text has a character with no piece (byte %zu of a word) and the model has no unk_id",
                            at);
        goto done;
      }
      size_t key = at + mblen;
      double cand = unk_score + here;
      if (best[key].start < 0 || cand > best[key].score) {
        best[key].score = cand;
        best[key].start = (int64_t)at;
        best[key].id = (int32_t)m->unk_id;
      }
    }
    at += mblen;
  }
  /* Backtrack into a list of piece boundaries, then emit left to right fusing unknowns. */
  size_t count = 0;
  for (size_t e = n; e > 0; e = (size_t)best[e].start) count++;
  starts = reel_malloc((count + 1) * sizeof *starts);
  if (!starts) {
    st = reel_error_set(err, REEL_ENOMEM, "text", "out of memory");
    goto done;
  }
  {
    size_t k = count;
    starts[count] = n;
    for (size_t e = n; e > 0; e = (size_t)best[e].start) starts[--k] = (size_t)best[e].start;
  }
  for (size_t k = 0; k < count;) {
    size_t b = starts[k], e = starts[k + 1];
    int32_t id = best[e].id;
    if (m->unk_id >= 0 && id == m->unk_id) {
      size_t j = k + 1;
      while (j < count && best[starts[j + 1]].id == m->unk_id) j++;
      size_t fe = starts[j];
      int32_t one;
      size_t nout;
      if ((st = emit_unknown(m, s, b, fe, &one, &nout, err)) != REEL_OK) goto done;
      if (one == m->unk_id && m->byte_fallback) {
        int all = 1;
        for (size_t q = b; q < fe; q++) all &= m->byte_ids[(unsigned char)s[q]] >= 0;
        if (all) {
          for (size_t q = b; q < fe; q++)
            if ((st = push_id(ids, nids, cap, m->byte_ids[(unsigned char)s[q]])) != REEL_OK) goto oom;
          k = j;
          continue;
        }
      }
      if ((st = push_id(ids, nids, cap, one)) != REEL_OK) goto oom;
      k = j;
      continue;
    }
    if ((st = push_id(ids, nids, cap, id)) != REEL_OK) goto oom;
    k++;
  }
  goto done;
oom:
  st = reel_error_set(err, REEL_ENOMEM, "text", "out of memory for token ids");
done:
  reel_free(starts);
  reel_free(best);
  return st;
}
