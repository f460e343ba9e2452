/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tokenizer.json loading and the encode pipeline (see reel/tokenizer.h for what is
 * supported and in which order it runs). Loading validates every member it uses and
 * names the offending field; encoding works on a list of pieces (text spans or already
 * decided added-token ids) that each stage rewrites into a fresh list.
 */
#include "reel/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/alloc.h"
#include "reel/json.h"
#include "tok_internal.h"

enum { PRE_WHITESPACE_SPLIT, PRE_METASPACE };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

typedef struct tok_pre_step {
  int kind;
  uint32_t replacement; /* Metaspace */
  int prepend;
  int split;
} tok_pre_step;

typedef struct tok_added {
  char *content; /* owned; for normalized tokens: the normalised content */
  size_t len;
  int32_t id;
  int lstrip, rstrip;
} tok_added;

typedef struct tok_added_set {
  tok_added *v;
  size_t n;
} tok_added_set;

struct reel_tokenizer {
  tok_unigram model;
  tok_norm_step *norm;
  size_t nnorm;
  tok_pre_step pre[4];
  size_t npre;
  tok_added_set raw, normalized; /* matched before / after normalisation */
  int32_t *prefix, *suffix;      /* template ids around $A */
  size_t nprefix, nsuffix;
  int32_t pad_id;
};

/* ---- small helpers -------------------------------------------------------------------- */

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict standard base64 with padding. *out is reel_malloc'd. */
static reel_status b64_decode(const char *s, size_t n, unsigned char **out, size_t *outn, const char *field,
                              reel_error *err) {
  *out = NULL;
  *outn = 0;
  if (n % 4) return reel_error_set(err, REEL_EFORMAT, field, "base64 length %zu is not a multiple of 4", n);
  unsigned char *p = reel_malloc(n / 4 * 3 + 1);
  if (!p) return reel_error_set(err, REEL_ENOMEM, field, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)s[i + j];
      if (c == '=' && i + 4 == n && j >= 2) {
        v[j] = 0;
        pad++;
      } else if (pad || (v[j] = b64_val(c)) < 0) {
        reel_free(p);
        return reel_error_set(err, REEL_EFORMAT, field, "invalid base64 at character %zu", i + (size_t)j);
      }
    }
    uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
    p[k++] = (unsigned char)(w >> 16);
    if (pad < 2) p[k++] = (unsigned char)(w >> 8);
    if (pad < 1) p[k++] = (unsigned char)w;
  }
  *out = p;
  *outn = k;
  return REEL_OK;
}

/* A JSON string that must be valid UTF-8 of 1..max bytes (jansson guarantees UTF-8). */
static reel_status get_str(const json_t *obj, const char *path, const char *key, int required, size_t max,
                           const char **s, size_t *len, reel_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (!required) return REEL_OK;
    return reel_error_set(err, REEL_EFORMAT, "", "%s.%s: missing (a string is required)", path, key);
  }
  if (!json_is_string(v)) return reel_error_set(err, REEL_EFORMAT, "", "%s.%s: must be a string", path, key);
  size_t l = json_string_length(v);
  if (l > max) return reel_error_set(err, REEL_ELIMIT, "", "%s.%s: %zu bytes, at most %zu", path, key, l, max);
  *s = json_string_value(v);
  *len = l;
  return REEL_OK;
}

static int single_cp(const char *s, size_t n, uint32_t *cp) {
  if (n == 0) return 0;
  size_t k = tok_utf8_next(s, n, cp);
  return k == n;
}

/* ---- normalizer ----------------------------------------------------------------------- */

static reel_status add_norm(reel_tokenizer *t, tok_norm_step *step, reel_error *err) {
  tok_norm_step *v = reel_realloc(t->norm, (t->nnorm + 1) * sizeof *v);
  if (!v) {
    tok_norm_step_fini(step);
    return reel_error_set(err, REEL_ENOMEM, "normalizer", "out of memory");
  }
  t->norm = v;
  t->norm[t->nnorm++] = *step;
  return REEL_OK;
}

static reel_status parse_charsmap(const json_t *obj, const char *path, tok_charsmap *cm, reel_error *err) {
  char field[160];
  snprintf(field, sizeof field, "%s.precompiled_charsmap", path);
  const char *s = NULL;
  size_t n = 0;
  reel_status st = get_str(obj, path, "precompiled_charsmap", 1, REEL_TOKENIZER_MAX_JSON, &s, &n, err);
  if (st != REEL_OK) {
    char msg[REEL_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
    reel_error_reset(err, st, field, "%s", msg);
    return st;
  }
  unsigned char *raw;
  size_t rawn;
  if ((st = b64_decode(s, n, &raw, &rawn, field, err)) != REEL_OK) return st;
  st = tok_charsmap_parse(cm, raw, rawn, field, err);
  reel_free(raw);
  return st;
}

static reel_status parse_normalizer(reel_tokenizer *t, const json_t *obj, const char *path, int depth,
                                    reel_error *err) {
  static const char *const types[] = {"Sequence", "Precompiled", "Replace", "Strip", "Prepend", NULL};
  char sub[160];
  int type = -1;
  reel_status st;
  if (!json_is_object(obj)) return reel_error_set(err, REEL_EFORMAT, path, "must be an object or null");
  if (depth > 8) return reel_error_set(err, REEL_ELIMIT, path, "normalizers nested deeper than 8");
  {
    json_t *ty = json_object_get(obj, "type");
    if (!json_is_string(ty)) return reel_error_set(err, REEL_EFORMAT, path, "has no string \"type\"");
    for (int i = 0; types[i]; i++)
      if (!strcmp(json_string_value(ty), types[i])) type = i;
    if (type < 0) {
      snprintf(sub, sizeof sub, "%s.type", path);
      return reel_error_set(err, REEL_EUNSUPPORTED, sub,
                            "normalizer \"%.64s\" is not supported (Sequence, Precompiled, Replace, Strip, Prepend)",
                            json_string_value(ty));
    }
  }
  tok_norm_step step;
  memset(&step, 0, sizeof step);
  switch (type) {
    case 0: {
      json_t *list = json_object_get(obj, "normalizers");
      snprintf(sub, sizeof sub, "%s.normalizers", path);
      if (!json_is_array(list)) return reel_error_set(err, REEL_EFORMAT, sub, "must be an array");
      for (size_t i = 0; i < json_array_size(list); i++) {
        snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
        if ((st = parse_normalizer(t, json_array_get(list, i), sub, depth + 1, err)) != REEL_OK) return st;
      }
      return REEL_OK;
    }
    case 1:
      step.kind = TOK_NORM_PRECOMPILED;
      if ((st = parse_charsmap(obj, path, &step.cm, err)) != REEL_OK) return st;
      return add_norm(t, &step, err);
    case 2: {
      step.kind = TOK_NORM_REPLACE;
      json_t *pat = json_object_get(obj, "pattern");
      snprintf(sub, sizeof sub, "%s.pattern", path);
      if (!json_is_object(pat) || json_object_size(pat) != 1)
        return reel_error_set(err, REEL_EFORMAT, sub, "must be {\"String\": ...} or {\"Regex\": ...}");
      json_t *sv = json_object_get(pat, "String"), *rv = json_object_get(pat, "Regex");
      const char *content = NULL;
      size_t clen = 0;
      if ((sv && !json_is_string(sv)) || (rv && !json_is_string(rv)) || (!sv && !rv))
        return reel_error_set(err, REEL_EFORMAT, sub, "must be {\"String\": \"...\"} or {\"Regex\": \"...\"}");
      if ((st = get_str(obj, path, "content", 1, REEL_TOKENIZER_MAX_PIECE, &content, &clen, err)) != REEL_OK) {
        snprintf(sub, sizeof sub, "%s.content", path);
        reel_error_reset(err, st, sub, "must be a string of at most %d bytes", REEL_TOKENIZER_MAX_PIECE);
        return st;
      }
      if (sv) {
        if (json_string_length(sv) == 0 || json_string_length(sv) > REEL_TOKENIZER_MAX_PIECE)
          return reel_error_set(err, REEL_EFORMAT, sub, "String pattern must have 1..%d bytes",
                                REEL_TOKENIZER_MAX_PIECE);
        step.literal = reel_strndup(json_string_value(sv), json_string_length(sv));
        step.literal_len = json_string_length(sv);
      } else {
        snprintf(sub, sizeof sub, "%s.pattern.Regex", path);
        if (strlen(json_string_value(rv)) != json_string_length(rv))
          return reel_error_set(err, REEL_EUNSUPPORTED, sub, "regex contains NUL");
        if ((st = tok_regex_compile(&step.rx, json_string_value(rv), sub, err)) != REEL_OK) return st;
        step.is_regex = 1;
      }
      step.content = reel_strndup(content, clen);
      step.content_len = clen;
      if ((sv && !step.literal) || !step.content) {
        tok_norm_step_fini(&step);
        return reel_error_set(err, REEL_ENOMEM, path, "out of memory");
      }
      return add_norm(t, &step, err);
    }
    case 3:
      step.kind = TOK_NORM_STRIP;
      if ((st = reel_json_get_bool(obj, path, "strip_left", REEL_JSON_REQUIRED, &step.strip_left, err)) != REEL_OK)
        return st;
      if ((st = reel_json_get_bool(obj, path, "strip_right", REEL_JSON_REQUIRED, &step.strip_right, err)) != REEL_OK)
        return st;
      return add_norm(t, &step, err);
    default: {
      const char *s = NULL;
      size_t n = 0;
      step.kind = TOK_NORM_PREPEND;
      if ((st = get_str(obj, path, "prepend", 1, REEL_TOKENIZER_MAX_PIECE, &s, &n, err)) != REEL_OK) {
        snprintf(sub, sizeof sub, "%s.prepend", path);
        reel_error_reset(err, st, sub, "must be a string of at most %d bytes", REEL_TOKENIZER_MAX_PIECE);
        return st;
      }
      step.content = reel_strndup(s, n);
      step.content_len = n;
      if (!step.content) return reel_error_set(err, REEL_ENOMEM, path, "out of memory");
      return add_norm(t, &step, err);
    }
  }
}

/* T5 flavour: the first Precompiled step anywhere in the normaliser, or none. */
static reel_status find_charsmap(const json_t *obj, const char *path, int depth, reel_tokenizer *t, int *found,
                                 reel_error *err) {
  if (!json_is_object(obj) || depth > 8 || *found) return REEL_OK;
  json_t *ty = json_object_get(obj, "type");
  if (!json_is_string(ty)) return REEL_OK;
  if (!strcmp(json_string_value(ty), "Precompiled")) {
    tok_norm_step step;
    memset(&step, 0, sizeof step);
    step.kind = TOK_NORM_PRECOMPILED;
    reel_status st = parse_charsmap(obj, path, &step.cm, err);
    if (st != REEL_OK) return st;
    *found = 1;
    return add_norm(t, &step, err);
  }
  if (!strcmp(json_string_value(ty), "Sequence")) {
    json_t *list = json_object_get(obj, "normalizers");
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
      char sub[160];
      snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
      reel_status st = find_charsmap(json_array_get(list, i), sub, depth + 1, t, found, err);
      if (st != REEL_OK) return st;
    }
  }
  return REEL_OK;
}

/* ---- pre-tokenizer -------------------------------------------------------------------- */

static reel_status parse_pre(reel_tokenizer *t, const json_t *obj, const char *path, int depth, reel_error *err) {
  char sub[160];
  if (!json_is_object(obj)) return reel_error_set(err, REEL_EFORMAT, path, "must be an object or null");
  if (depth > 4) return reel_error_set(err, REEL_ELIMIT, path, "pre-tokenizers nested deeper than 4");
  json_t *ty = json_object_get(obj, "type");
  if (!json_is_string(ty)) return reel_error_set(err, REEL_EFORMAT, path, "has no string \"type\"");
  const char *type = json_string_value(ty);
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(obj, "pretokenizers");
    snprintf(sub, sizeof sub, "%s.pretokenizers", path);
    if (!json_is_array(list)) return reel_error_set(err, REEL_EFORMAT, sub, "must be an array");
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
      reel_status st = parse_pre(t, json_array_get(list, i), sub, depth + 1, err);
      if (st != REEL_OK) return st;
    }
    return REEL_OK;
  }
  if (t->npre == sizeof t->pre / sizeof t->pre[0])
    return reel_error_set(err, REEL_ELIMIT, path, "more than %zu pre-tokenizer steps",
                          sizeof t->pre / sizeof t->pre[0]);
  tok_pre_step *p = &t->pre[t->npre];
  memset(p, 0, sizeof *p);
  if (!strcmp(type, "WhitespaceSplit")) {
    p->kind = PRE_WHITESPACE_SPLIT;
  } else if (!strcmp(type, "Metaspace")) {
    static const char *const schemes[] = {"always", "first", "never", NULL};
    const char *rep = NULL;
    size_t rl = 0;
    int add_prefix = -1, split = 1, scheme = PREPEND_ALWAYS;
    reel_status st = get_str(obj, path, "replacement", 1, 8, &rep, &rl, err);
    snprintf(sub, sizeof sub, "%s.replacement", path);
    if (st != REEL_OK || !single_cp(rep, rl, &p->replacement)) {
      reel_error_reset(err, REEL_EFORMAT, sub, "must be a string of exactly one character");
      return REEL_EFORMAT;
    }
    if ((st = reel_json_get_bool(obj, path, "add_prefix_space", REEL_JSON_OPTIONAL, &add_prefix, err)) != REEL_OK)
      return st;
    if ((st = reel_json_get_bool(obj, path, "split", REEL_JSON_OPTIONAL, &split, err)) != REEL_OK) return st;
    if ((st = reel_json_get_enum(obj, path, "prepend_scheme", REEL_JSON_OPTIONAL, schemes, &scheme, err)) != REEL_OK)
      return st;
    if (add_prefix == 0) {
      if (scheme != PREPEND_NEVER && json_object_get(obj, "prepend_scheme") &&
          !json_is_null(json_object_get(obj, "prepend_scheme"))) {
        snprintf(sub, sizeof sub, "%s.add_prefix_space", path);
        return reel_error_set(err, REEL_EFORMAT, sub, "false does not match prepend_scheme");
      }
      scheme = PREPEND_NEVER;
    }
    p->kind = PRE_METASPACE;
    p->prepend = scheme;
    p->split = split;
  } else {
    snprintf(sub, sizeof sub, "%s.type", path);
    return reel_error_set(err, REEL_EUNSUPPORTED, sub,
                          "pre-tokenizer \"%.64s\" is not supported (Sequence, WhitespaceSplit, Metaspace)", type);
  }
  t->npre++;
  return REEL_OK;
}

/* ---- model, added tokens, template ----------------------------------------------------- */

static reel_status parse_model(reel_tokenizer *t, const json_t *root, int t5, reel_error *err) {
  char sub[96];
  reel_status st;
  json_t *m = json_object_get(root, "model");
  if (!json_is_object(m)) return reel_error_set(err, REEL_EFORMAT, "model", "must be an object");
  json_t *ty = json_object_get(m, "type");
  if (!json_is_string(ty)) return reel_error_set(err, REEL_EFORMAT, "model.type", "must be a string");
  if (strcmp(json_string_value(ty), "Unigram"))
    return reel_error_set(err, REEL_EUNSUPPORTED, "model.type", "model \"%.64s\" is not supported (Unigram)",
                          json_string_value(ty));
  json_t *vocab = json_object_get(m, "vocab");
  if (!json_is_array(vocab)) return reel_error_set(err, REEL_EFORMAT, "model.vocab", "must be an array");
  size_t n = json_array_size(vocab);
  if (n == 0 || n > REEL_TOKENIZER_MAX_VOCAB)
    return reel_error_set(err, REEL_ELIMIT, "model.vocab", "must have 1..%d pieces, has %zu", REEL_TOKENIZER_MAX_VOCAB,
                          n);
  int64_t unk = -1;
  if ((st = reel_json_get_int(m, "model", "unk_id", REEL_JSON_OPTIONAL, 0, (int64_t)n - 1, &unk, err)) != REEL_OK)
    return st;
  int bf = 0;
  if ((st = reel_json_get_bool(m, "model", "byte_fallback", REEL_JSON_OPTIONAL, &bf, err)) != REEL_OK) return st;
  t->model.unk_id = unk;
  t->model.byte_fallback = t5 ? 0 : bf;
  t->model.nvocab = n;
  t->model.scores = reel_malloc(n * sizeof(double));
  if (!t->model.scores) return reel_error_set(err, REEL_ENOMEM, "model.vocab", "out of memory");
  t->model.min_score = 1.0 / 0.0;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(vocab, i);
    snprintf(sub, sizeof sub, "model.vocab[%zu]", i);
    if (!json_is_array(e) || json_array_size(e) != 2)
      return reel_error_set(err, REEL_EFORMAT, sub, "must be a [piece, score] pair");
    json_t *ps = json_array_get(e, 0), *sc = json_array_get(e, 1);
    if (!json_is_string(ps) || json_string_length(ps) > REEL_TOKENIZER_MAX_PIECE) {
      snprintf(sub, sizeof sub, "model.vocab[%zu][0]", i);
      return reel_error_set(err, REEL_EFORMAT, sub, "must be a string of at most %d bytes", REEL_TOKENIZER_MAX_PIECE);
    }
    if (!json_is_number(sc) || !(json_number_value(sc) == json_number_value(sc)) || json_number_value(sc) > 1e300 ||
        json_number_value(sc) < -1e300) {
      snprintf(sub, sizeof sub, "model.vocab[%zu][1]", i);
      return reel_error_set(err, REEL_EFORMAT, sub, "must be a finite number");
    }
    double score = json_number_value(sc);
    t->model.scores[i] = score;
    if (score < t->model.min_score) t->model.min_score = score;
    if (tok_unigram_add(&t->model, json_string_value(ps), json_string_length(ps), (int32_t)i) != REEL_OK)
      return reel_error_set(err, REEL_ENOMEM, "model.vocab", "out of memory building the trie");
  }
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    t->model.byte_ids[b] = tok_unigram_lookup(&t->model, name, 6);
  }
  return REEL_OK;
}

static reel_status normalize_text(const reel_tokenizer *t, const char *s, size_t n, tok_buf *out, tok_buf *tmp);

static reel_status add_token(tok_added_set *set, const char *content, size_t len, int32_t id, int lstrip, int rstrip) {
  tok_added *v = reel_realloc(set->v, (set->n + 1) * sizeof *v);
  if (!v) return REEL_ENOMEM;
  set->v = v;
  tok_added *a = &set->v[set->n];
  a->content = reel_strndup(content, len);
  if (!a->content) return REEL_ENOMEM;
  a->len = len;
  a->id = id;
  a->lstrip = lstrip;
  a->rstrip = rstrip;
  set->n++;
  return REEL_OK;
}

static reel_status parse_added(reel_tokenizer *t, const json_t *root, reel_error *err) {
  json_t *list = json_object_get(root, "added_tokens");
  char path[64];
  reel_status st;
  if (!list || json_is_null(list)) return REEL_OK;
  if (!json_is_array(list)) return reel_error_set(err, REEL_EFORMAT, "added_tokens", "must be an array");
  if (json_array_size(list) > 1000000)
    return reel_error_set(err, REEL_ELIMIT, "added_tokens", "at most 1000000 entries");
  tok_buf norm = {0}, tmp = {0};
  for (size_t i = 0; i < json_array_size(list); i++) {
    json_t *a = json_array_get(list, i);
    snprintf(path, sizeof path, "added_tokens[%zu]", i);
    if (!json_is_object(a)) {
      st = reel_error_set(err, REEL_EFORMAT, path, "must be an object");
      goto out;
    }
    int64_t id = 0;
    int single = 0, lstrip = 0, rstrip = 0, normalized = 0, special = 0;
    const char *content = NULL;
    size_t len = 0;
    if ((st = reel_json_get_int(a, path, "id", REEL_JSON_REQUIRED, 0, INT32_MAX, &id, err)) != REEL_OK) goto out;
    if ((st = get_str(a, path, "content", 1, REEL_TOKENIZER_MAX_PIECE, &content, &len, err)) != REEL_OK || len == 0) {
      char f[96];
      snprintf(f, sizeof f, "%s.content", path);
      st = reel_error_reset(err, st != REEL_OK ? st : REEL_EFORMAT, f, "must be a string of 1..%d bytes",
                            REEL_TOKENIZER_MAX_PIECE);
      goto out;
    }
    if ((st = reel_json_get_bool(a, path, "single_word", REEL_JSON_OPTIONAL, &single, err)) != REEL_OK ||
        (st = reel_json_get_bool(a, path, "lstrip", REEL_JSON_OPTIONAL, &lstrip, err)) != REEL_OK ||
        (st = reel_json_get_bool(a, path, "rstrip", REEL_JSON_OPTIONAL, &rstrip, err)) != REEL_OK ||
        (st = reel_json_get_bool(a, path, "normalized", REEL_JSON_OPTIONAL, &normalized, err)) != REEL_OK ||
        (st = reel_json_get_bool(a, path, "special", REEL_JSON_OPTIONAL, &special, err)) != REEL_OK)
      goto out;
    if (single) {
      char f[96];
      snprintf(f, sizeof f, "%s.single_word", path);
      st = reel_error_set(err, REEL_EUNSUPPORTED, f, "single_word added tokens are not supported");
      goto out;
    }
    if (normalized) {
      /* Matched against normalised text: store the normalised content (as the library does). */
      if ((st = normalize_text(t, content, len, &norm, &tmp)) != REEL_OK) {
        st = reel_error_set(err, st, path,
                            st == REEL_ELIMIT ? "normalizing it exceeded the regex budget" : "out of memory");
        goto out;
      }
      if (norm.n == 0) continue; /* normalises to nothing: can never match */
      st = add_token(&t->normalized, norm.p, norm.n, (int32_t)id, lstrip, rstrip);
    } else {
      st = add_token(&t->raw, content, len, (int32_t)id, lstrip, rstrip);
    }
    if (st != REEL_OK) {
      st = reel_error_set(err, st, path, "out of memory");
      goto out;
    }
    if (len == 5 && !memcmp(content, "<pad>", 5)) t->pad_id = (int32_t)id;
  }
  st = REEL_OK;
out:
  tok_buf_fini(&norm);
  tok_buf_fini(&tmp);
  return st;
}

static reel_status push_ids(int32_t **v, size_t *n, const json_t *ids, const char *path, reel_error *err) {
  if (!json_is_array(ids) || json_array_size(ids) > 16)
    return reel_error_set(err, REEL_EFORMAT, path, "must be an array of at most 16 ids");
  for (size_t i = 0; i < json_array_size(ids); i++) {
    json_t *x = json_array_get(ids, i);
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX)
      return reel_error_set(err, REEL_EFORMAT, path, "ids must be integers in 0..%d", INT32_MAX);
    int32_t *p = reel_realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return reel_error_set(err, REEL_ENOMEM, path, "out of memory");
    *v = p;
    p[(*n)++] = (int32_t)json_integer_value(x);
  }
  return REEL_OK;
}

static reel_status parse_template(reel_tokenizer *t, const json_t *root, reel_error *err) {
  json_t *pp = json_object_get(root, "post_processor");
  if (!pp || json_is_null(pp)) return REEL_OK;
  if (!json_is_object(pp)) return reel_error_set(err, REEL_EFORMAT, "post_processor", "must be an object or null");
  json_t *ty = json_object_get(pp, "type");
  if (!json_is_string(ty) || strcmp(json_string_value(ty), "TemplateProcessing"))
    return reel_error_set(err, REEL_EUNSUPPORTED, "post_processor.type", "only TemplateProcessing is supported");
  json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens");
  if (!json_is_array(single) || json_array_size(single) > 16)
    return reel_error_set(err, REEL_EFORMAT, "post_processor.single", "must be an array of at most 16 items");
  if (!json_is_object(specials))
    return reel_error_set(err, REEL_EFORMAT, "post_processor.special_tokens", "must be an object");
  int seen_a = 0;
  for (size_t i = 0; i < json_array_size(single); i++) {
    char path[96];
    json_t *it = json_array_get(single, i);
    snprintf(path, sizeof path, "post_processor.single[%zu]", i);
    json_t *seq = json_is_object(it) ? json_object_get(it, "Sequence") : NULL;
    json_t *sp = json_is_object(it) ? json_object_get(it, "SpecialToken") : NULL;
    if (seq) {
      json_t *id = json_object_get(seq, "id");
      if (!json_is_string(id) || strcmp(json_string_value(id), "A") || seen_a)
        return reel_error_set(err, REEL_EFORMAT, path, "the single template must hold exactly one Sequence A");
      seen_a = 1;
    } else if (sp) {
      json_t *id = json_object_get(sp, "id");
      if (!json_is_string(id)) return reel_error_set(err, REEL_EFORMAT, path, "SpecialToken needs a string id");
      json_t *def = json_object_get(specials, json_string_value(id));
      if (!json_is_object(def)) {
        snprintf(path, sizeof path, "post_processor.special_tokens");
        return reel_error_set(err, REEL_EFORMAT, path, "has no entry for \"%.64s\"", json_string_value(id));
      }
      reel_status st = seen_a ? push_ids(&t->suffix, &t->nsuffix, json_object_get(def, "ids"), path, err)
                              : push_ids(&t->prefix, &t->nprefix, json_object_get(def, "ids"), path, err);
      if (st != REEL_OK) return st;
    } else {
      return reel_error_set(err, REEL_EFORMAT, path, "must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_a) return reel_error_set(err, REEL_EFORMAT, "post_processor.single", "has no Sequence A");
  return REEL_OK;
}

/* ---- load ----------------------------------------------------------------------------- */

void reel_tokenizer_destroy(reel_tokenizer **tp) {
  if (!tp || !*tp) return;
  reel_tokenizer *t = *tp;
  tok_unigram_fini(&t->model);
  for (size_t i = 0; i < t->nnorm; i++) tok_norm_step_fini(&t->norm[i]);
  reel_free(t->norm);
  for (size_t i = 0; i < t->raw.n; i++) reel_free(t->raw.v[i].content);
  for (size_t i = 0; i < t->normalized.n; i++) reel_free(t->normalized.v[i].content);
  reel_free(t->raw.v);
  reel_free(t->normalized.v);
  reel_free(t->prefix);
  reel_free(t->suffix);
  reel_free(t);
  *tp = NULL;
}

static reel_status load_root(const json_t *root, reel_tokenizer_flavor flavor, reel_tokenizer **out, reel_error *err) {
  reel_status st;
  reel_tokenizer *t = reel_calloc(1, sizeof *t);
  if (!t) return reel_error_set(err, REEL_ENOMEM, "", "out of memory");
  t->model.unk_id = -1;
  t->pad_id = -1;
  if (!json_is_object(root)) {
    st = reel_error_set(err, REEL_EFORMAT, "", "tokenizer.json must be a JSON object");
    goto fail;
  }
  int t5 = flavor == REEL_TOKENIZER_T5;
  if ((st = parse_model(t, root, t5, err)) != REEL_OK) goto fail;
  json_t *norm = json_object_get(root, "normalizer");
  if (t5) {
    int found = 0;
    if ((st = find_charsmap(norm, "normalizer", 0, t, &found, err)) != REEL_OK) goto fail;
    t->pre[0].kind = PRE_WHITESPACE_SPLIT;
    t->pre[1].kind = PRE_METASPACE;
    t->pre[1].replacement = 0x2581;
    t->pre[1].prepend = PREPEND_ALWAYS;
    t->pre[1].split = 1;
    t->npre = 2;
  } else {
    if (norm && !json_is_null(norm) && (st = parse_normalizer(t, norm, "normalizer", 0, err)) != REEL_OK) goto fail;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (pre && !json_is_null(pre) && (st = parse_pre(t, pre, "pre_tokenizer", 0, err)) != REEL_OK) goto fail;
  }
  if ((st = parse_added(t, root, err)) != REEL_OK) goto fail;
  if (t5) {
    /* T5Tokenizer's template: $A </s>, with </s> looked up like its eos_token. */
    int32_t eos = -1;
    for (size_t i = 0; i < t->raw.n; i++)
      if (t->raw.v[i].len == 4 && !memcmp(t->raw.v[i].content, "</s>", 4)) eos = t->raw.v[i].id;
    if (eos < 0) eos = tok_unigram_lookup(&t->model, "</s>", 4);
    if (eos < 0) {
      st = reel_error_set(err, REEL_EFORMAT, "added_tokens", "T5 tokenizer has no \"</s>\" token");
      goto fail;
    }
    t->suffix = reel_malloc(sizeof *t->suffix);
    if (!t->suffix) {
      st = reel_error_set(err, REEL_ENOMEM, "", "out of memory");
      goto fail;
    }
    t->suffix[0] = eos;
    t->nsuffix = 1;
  } else if ((st = parse_template(t, root, err)) != REEL_OK) {
    goto fail;
  }
  if (t->pad_id < 0) t->pad_id = tok_unigram_lookup(&t->model, "<pad>", 5);
  *out = t;
  return REEL_OK;
fail:
  reel_tokenizer_destroy(&t);
  return st;
}

reel_status reel_tokenizer_load_memory(const char *json, size_t len, reel_tokenizer_flavor flavor, const char *name,
                                       reel_tokenizer **out, reel_error *err) {
  json_t *root = NULL;
  *out = NULL;
  if (flavor != REEL_TOKENIZER_AS_WRITTEN && flavor != REEL_TOKENIZER_T5)
    return reel_error_set(err, REEL_EINVAL, "flavor", "unknown tokenizer flavour %d", (int)flavor);
  if (len > REEL_TOKENIZER_MAX_JSON)
    return reel_error_set(err, REEL_ELIMIT, name ? name : "tokenizer.json", "%zu bytes, at most %u", len,
                          REEL_TOKENIZER_MAX_JSON);
  reel_status st = reel_json_parse(json, len, name ? name : "tokenizer.json", &root, err);
  if (st != REEL_OK) return st;
  st = load_root(root, flavor, out, err);
  json_decref(root);
  if (st != REEL_OK && name) reel_error_prefix_field(err, name, ':');
  return st;
}

reel_status reel_tokenizer_load(const char *path, reel_tokenizer_flavor flavor, reel_tokenizer **out, reel_error *err) {
  json_t *root = NULL;
  *out = NULL;
  if (flavor != REEL_TOKENIZER_AS_WRITTEN && flavor != REEL_TOKENIZER_T5)
    return reel_error_set(err, REEL_EINVAL, "flavor", "unknown tokenizer flavour %d", (int)flavor);
  reel_status st = reel_json_load_file(path, REEL_TOKENIZER_MAX_JSON, &root, err);
  if (st != REEL_OK) return st;
  st = load_root(root, flavor, out, err);
  json_decref(root);
  if (st != REEL_OK) reel_error_prefix_field(err, path, ':');
  return st;
}

reel_status reel_tokenizer_load_dir(const char *dir, reel_tokenizer **out, reel_error *err) {
  char path[4096];
  reel_tokenizer_flavor flavor = REEL_TOKENIZER_AS_WRITTEN;
  *out = NULL;
  if (snprintf(path, sizeof path, "%s/tokenizer_config.json", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "dir", "path longer than %zu bytes", sizeof path);
  struct stat sb;
  if (stat(path, &sb) == 0) {
    /* Read with jansson directly: these files carry model_max_length = 1e30 written as an
     * integer, which jansson only accepts when told to decode integers as reals. */
    if (sb.st_size > (16 << 20))
      return reel_error_set(err, REEL_ELIMIT, "tokenizer_config.json", "%lld bytes, at most 16 MiB",
                            (long long)sb.st_size);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!cfg)
      return reel_error_set(err, REEL_EFORMAT, "tokenizer_config.json", "%s: invalid JSON at line %d: %s", path,
                            jerr.line, jerr.text);
    const char *cls = NULL;
    reel_status st =
        reel_json_get_string(cfg, "tokenizer_config.json", "tokenizer_class", REEL_JSON_OPTIONAL, 256, &cls, err);
    if (st == REEL_OK && cls && (!strcmp(cls, "T5Tokenizer") || !strcmp(cls, "T5TokenizerFast")))
      flavor = REEL_TOKENIZER_T5;
    json_decref(cfg);
    if (st != REEL_OK) return st;
  }
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  return reel_tokenizer_load(path, flavor, out, err);
}

size_t reel_tokenizer_vocab_size(const reel_tokenizer *t) { return t->model.nvocab; }
int32_t reel_tokenizer_pad_id(const reel_tokenizer *t) { return t->pad_id; }
size_t reel_tokenizer_num_special(const reel_tokenizer *t) { return t->nprefix + t->nsuffix; }

/* ---- encode --------------------------------------------------------------------------- */

typedef struct piece {
  int32_t id;      /* >= 0: an added token, already decided; -1: text */
  size_t off, len; /* text span in the list's pool */
  int at_origin;   /* the span starts at byte 0 of the original input */
} piece;

typedef struct plist {
  piece *v;
  size_t n, cap;
  tok_buf pool;
} plist;

static void plist_fini(plist *l) {
  reel_free(l->v);
  tok_buf_fini(&l->pool);
  memset(l, 0, sizeof *l);
}

static reel_status plist_push(plist *l, int32_t id, size_t off, size_t len, int at_origin) {
  if (id < 0 && len == 0) return REEL_OK; /* empty text pieces vanish, as in the library */
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    piece *v = reel_realloc(l->v, cap * sizeof *v);
    if (!v) return REEL_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (piece){id, off, len, at_origin};
  return REEL_OK;
}

/* Appends text to the pool and pushes it as a piece. */
static reel_status plist_push_text(plist *l, const char *s, size_t len, int at_origin) {
  if (len == 0) return REEL_OK;
  size_t off = l->pool.n;
  reel_status st = tok_buf_append(&l->pool, s, len);
  if (st != REEL_OK) return st;
  return plist_push(l, -1, off, len, at_origin);
}

/* Splits s[0..n) on the added tokens of `set` into `out` (leftmost-longest, lstrip/rstrip). */
static reel_status split_added(const tok_added_set *set, const char *s, size_t n, int at_origin, plist *out) {
  reel_status st;
  size_t start = 0, i = 0;
  if (set->n == 0) return plist_push_text(out, s, n, at_origin);
  while (i < n) {
    const tok_added *best = NULL;
    for (size_t k = 0; k < set->n; k++) {
      const tok_added *a = &set->v[k];
      if (a->len <= n - i && (unsigned char)a->content[0] == (unsigned char)s[i] &&
          !memcmp(a->content, s + i, a->len) && (!best || a->len > best->len))
        best = a;
    }
    if (!best) {
      i++;
      continue;
    }
    size_t ms = i, me = i + best->len;
    if (best->lstrip) {
      size_t b = ms;
      while (b > start) {
        size_t q = b - 1;
        while (q > start && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
        uint32_t c;
        tok_utf8_next(s + q, b - q, &c);
        if (!tok_is_whitespace(c)) break;
        b = q;
      }
      ms = b;
    }
    if (best->rstrip) {
      while (me < n) {
        uint32_t c;
        size_t k = tok_utf8_next(s + me, n - me, &c);
        if (!tok_is_whitespace(c)) break;
        me += k;
      }
    }
    if ((st = plist_push_text(out, s + start, ms - start, at_origin && start == 0)) != REEL_OK) return st;
    if ((st = plist_push(out, best->id, 0, 0, 0)) != REEL_OK) return st;
    start = i = me;
  }
  return plist_push_text(out, s + start, n - start, at_origin && start == 0);
}

static reel_status normalize_text(const reel_tokenizer *t, const char *s, size_t n, tok_buf *out, tok_buf *tmp) {
  reel_status st;
  out->n = 0;
  if ((st = tok_buf_append(out, s, n)) != REEL_OK) return st;
  for (size_t i = 0; i < t->nnorm; i++) {
    if ((st = tok_norm_apply(&t->norm[i], out->p, out->n, tmp)) != REEL_OK) return st;
    tok_buf x = *out;
    *out = *tmp;
    *tmp = x;
  }
  return REEL_OK;
}

static reel_status pre_step(const tok_pre_step *p, const char *s, size_t n, int at_origin, plist *out,
                            tok_buf *scratch) {
  reel_status st;
  if (p->kind == PRE_WHITESPACE_SPLIT) {
    size_t i = 0;
    while (i < n) {
      uint32_t c;
      size_t k = tok_utf8_next(s + i, n - i, &c);
      if (tok_is_whitespace(c)) {
        i += k;
        continue;
      }
      size_t b = i;
      while (i < n) {
        k = tok_utf8_next(s + i, n - i, &c);
        if (tok_is_whitespace(c)) break;
        i += k;
      }
      if ((st = plist_push_text(out, s + b, i - b, at_origin && b == 0)) != REEL_OK) return st;
    }
    return REEL_OK;
  }
  /* Metaspace: ' ' -> replacement, maybe prepend it, maybe split before each replacement. */
  char rep[4];
  size_t rl = tok_utf8_encode(p->replacement, rep);
  scratch->n = 0;
  if ((st = tok_buf_append(scratch, "", 0)) != REEL_OK) return st;
  int starts = n > 0 && (s[0] == ' ' || (n >= rl && !memcmp(s, rep, rl)));
  if (n > 0 && !starts && (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && at_origin)))
    if ((st = tok_buf_append(scratch, rep, rl)) != REEL_OK) return st;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ')
      st = tok_buf_append(scratch, rep, rl);
    else
      st = tok_buf_append(scratch, s + i, 1);
    if (st != REEL_OK) return st;
  }
  if (!p->split) return plist_push_text(out, scratch->p, scratch->n, at_origin);
  size_t b = 0;
  for (size_t i = 0; i < scratch->n;) {
    if (i > b && scratch->n - i >= rl && !memcmp(scratch->p + i, rep, rl)) {
      if ((st = plist_push_text(out, scratch->p + b, i - b, at_origin && b == 0)) != REEL_OK) return st;
      b = i;
    }
    i += tok_utf8_len((unsigned char)scratch->p[i]);
  }
  return plist_push_text(out, scratch->p + b, scratch->n - b, at_origin && b == 0);
}

/* The model's tokens for text[0..len) (no special tokens): appended to *ids. */
static reel_status encode_tokens(const reel_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *nids,
                                 size_t *cap, reel_error *err) {
  reel_status st;
  tok_buf clean = {0}, norm = {0}, tmp = {0};
  plist a = {0}, b = {0};
  int changed;
  if ((st = tok_utf8_sanitize(text, len, &clean, &changed)) != REEL_OK) goto oom;
  if ((st = tok_buf_append(&clean, "", 0)) != REEL_OK) goto oom;
  /* 1. added tokens on raw text */
  if ((st = split_added(&t->raw, clean.p, clean.n, 1, &a)) != REEL_OK) goto oom;
  /* 2. normalise each text piece, then added tokens on normalised text */
  for (size_t i = 0; i < a.n; i++) {
    const piece *p = &a.v[i];
    if (p->id >= 0) {
      if ((st = plist_push(&b, p->id, 0, 0, 0)) != REEL_OK) goto oom;
      continue;
    }
    if ((st = normalize_text(t, a.pool.p + p->off, p->len, &norm, &tmp)) != REEL_OK) goto oom;
    if ((st = split_added(&t->normalized, norm.p, norm.n, p->at_origin, &b)) != REEL_OK) goto oom;
  }
  /* 3. pre-tokenisers, one list per step */
  for (size_t k = 0; k < t->npre; k++) {
    plist c = {0};
    for (size_t i = 0; i < b.n && st == REEL_OK; i++) {
      const piece *p = &b.v[i];
      if (p->id >= 0)
        st = plist_push(&c, p->id, 0, 0, 0);
      else
        st = pre_step(&t->pre[k], b.pool.p + p->off, p->len, p->at_origin, &c, &tmp);
    }
    plist_fini(&b);
    b = c;
    if (st != REEL_OK) goto oom;
  }
  /* 4. the model */
  for (size_t i = 0; i < b.n; i++) {
    const piece *p = &b.v[i];
    if (p->id >= 0) {
      if (*nids == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *v = reel_realloc(*ids, nc * sizeof *v);
        if (!v) {
          st = REEL_ENOMEM;
          goto oom;
        }
        *ids = v;
        *cap = nc;
      }
      (*ids)[(*nids)++] = p->id;
      continue;
    }
    if ((st = tok_unigram_encode(&t->model, b.pool.p + p->off, p->len, ids, nids, cap, err)) != REEL_OK) goto done;
  }
  st = REEL_OK;
  goto done;
oom:
  if (st == REEL_ELIMIT)
    st = reel_error_set(err, st, "normalizer",
                        "a Replace regex needed more matching steps than its budget on this text");
  else
    st = reel_error_set(err, st, "text", "out of memory while tokenizing %zu bytes", len);
done:
  tok_buf_fini(&clean);
  tok_buf_fini(&norm);
  tok_buf_fini(&tmp);
  plist_fini(&a);
  plist_fini(&b);
  return st;
}

reel_status reel_tokenizer_encode(const reel_tokenizer *t, const char *text, size_t len, size_t max_len, int32_t **ids,
                                  size_t *n, reel_error *err) {
  int32_t *v = NULL;
  size_t nv = 0, cap = 0;
  *ids = NULL;
  *n = 0;
  if (!t) return reel_error_set(err, REEL_EINVAL, "tokenizer", "is NULL");
  if (!text && len) return reel_error_set(err, REEL_EINVAL, "text", "is NULL with length %zu", len);
  if (len > REEL_TOKENIZER_MAX_TEXT)
    return reel_error_set(err, REEL_ELIMIT, "text", "%zu bytes, at most %u", len, REEL_TOKENIZER_MAX_TEXT);
  size_t nspecial = t->nprefix + t->nsuffix;
  if (max_len && max_len <= nspecial)
    return reel_error_set(err, REEL_ERANGE, "max_len", "must exceed the %zu special tokens, got %zu", nspecial,
                          max_len);
  reel_status st = encode_tokens(t, text ? text : "", len, &v, &nv, &cap, err);
  if (st != REEL_OK) {
    reel_free(v);
    return st;
  }
  if (max_len && nv > max_len - nspecial) nv = max_len - nspecial;
  size_t total = nv + nspecial;
  if (total == 0) {
    reel_free(v);
    return REEL_OK;
  }
  int32_t *r = reel_malloc(total * sizeof *r);
  if (!r) {
    reel_free(v);
    return reel_error_set(err, REEL_ENOMEM, "text", "out of memory");
  }
  if (t->nprefix) memcpy(r, t->prefix, t->nprefix * sizeof *r);
  if (nv) memcpy(r + t->nprefix, v, nv * sizeof *r);
  if (t->nsuffix) memcpy(r + t->nprefix + nv, t->suffix, t->nsuffix * sizeof *r);
  reel_free(v);
  *ids = r;
  *n = total;
  return REEL_OK;
}

reel_status reel_tokenizer_encode_padded(const reel_tokenizer *t, const char *text, size_t len, size_t max_len,
                                         int32_t *ids, int32_t *mask, size_t *seq_len, reel_error *err) {
  if (!t || !ids || !mask) return reel_error_set(err, REEL_EINVAL, "ids", "tokenizer and output arrays are required");
  if (max_len == 0) return reel_error_set(err, REEL_ERANGE, "max_len", "must be positive");
  if (t->pad_id < 0) return reel_error_set(err, REEL_EINVAL, "pad_token", "the tokenizer has no <pad> token");
  int32_t *v = NULL;
  size_t n = 0;
  reel_status st = reel_tokenizer_encode(t, text, len, max_len, &v, &n, err);
  if (st != REEL_OK) return st;
  for (size_t i = 0; i < max_len; i++) {
    ids[i] = i < n ? v[i] : t->pad_id;
    mask[i] = i < n ? 1 : 0;
  }
  if (seq_len) *seq_len = n;
  reel_free(v);
  return REEL_OK;
}
