/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tokenizer parity and robustness: reel's ids must equal the Hugging Face references
 * byte for byte on the fixture corpora (tests/fixtures/tokenizer: 10,000 strings through
 * the tiny Wan tokenizer as WanPipeline loads it, and with byte fallback;
 * tests/fixtures/tokenizer-variants: other tokenizer.json layouts — Replace/Strip
 * normalisers, Metaspace prepend "first", stripped and normalised added tokens —, the
 * transformers T5Tokenizer override of a legacy UMT5 file, invalid UTF-8 and WanPipeline's
 * padded call), and malformed tokenizer.json files must fail with the field named.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/json.h"
#include "reel/safetensors.h"
#include "reel/tokenizer.h"
#include "testutil.h"

static void fixture_path(char *buf, size_t size, const char *rel) {
  snprintf(buf, size, "%s/tests/fixtures/%s", tu_source_dir(), rel);
}

static const reel_st_tensor *need(const reel_safetensors *st, const char *name) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (!t) fail_msg("fixture tensor %s missing", name);
  return t;
}

static int64_t i64_at(const reel_st_tensor *t, size_t i) {
  int64_t v;
  memcpy(&v, (const char *)t->data + 8 * i, 8);
  return v;
}

static int64_t id_at(const reel_st_tensor *t, size_t i) {
  if (t->dtype == REEL_ST_U16) {
    uint16_t v;
    memcpy(&v, (const char *)t->data + 2 * i, 2);
    return v;
  }
  int32_t v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  return v;
}

static void print_mismatch(size_t idx, const char *text, size_t len, const int32_t *got, size_t n,
                           const reel_st_tensor *ids, int64_t b, int64_t e) {
  printf("string %zu (%zu bytes):", idx, len);
  for (size_t k = 0; k < len && k < 80; k++) printf(" %02x", (unsigned char)text[k]);
  printf("\n  got :");
  for (size_t k = 0; k < n && k < 40; k++) printf(" %d", got[k]);
  printf("\n  want:");
  for (int64_t k = b; k < e && k < b + 40; k++) printf(" %lld", (long long)id_at(ids, (size_t)k));
  printf("\n");
}

/* Encodes every string of (text, offs) and compares with (ids, ids_offs); returns mismatches. */
static size_t check_corpus(const reel_tokenizer *tok, const reel_st_tensor *text, const reel_st_tensor *offs,
                           const reel_st_tensor *ids, const reel_st_tensor *ids_offs, size_t max_len) {
  size_t count = (size_t)offs->numel - 1, bad = 0;
  assert_int_equal(ids_offs->numel, offs->numel);
  for (size_t i = 0; i < count; i++) {
    int64_t tb = i64_at(offs, i), te = i64_at(offs, i + 1);
    int64_t ib = i64_at(ids_offs, i), ie = i64_at(ids_offs, i + 1);
    const char *s = (const char *)text->data + tb;
    int32_t *got = NULL;
    size_t n = 0;
    reel_error err = {0};
    reel_status rc = reel_tokenizer_encode(tok, s, (size_t)(te - tb), max_len, &got, &n, &err);
    if (rc != REEL_OK) {
      printf("string %zu: %s: %s\n", i, err.field, err.msg);
      bad++;
      continue;
    }
    int same = n == (size_t)(ie - ib);
    for (size_t k = 0; same && k < n; k++) same = got[k] == id_at(ids, (size_t)ib + k);
    if (!same) {
      if (bad < 5) print_mismatch(i, s, (size_t)(te - tb), got, n, ids, ib, ie);
      bad++;
    }
    reel_free(got);
  }
  return bad;
}

static void test_wan_corpus(void **state) {
  (void)state;
  char path[1024];
  reel_safetensors *st = NULL;
  reel_tokenizer *tok = NULL;
  reel_error err = {0};
  fixture_path(path, sizeof path, "tokenizer/corpus.safetensors");
  if (reel_safetensors_open(path, &st, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  const reel_st_tensor *text = need(st, "text"), *offs = need(st, "text_offsets");
  assert_true(offs->numel - 1 >= 10000);

  /* As WanPipeline loads it: tokenizer_config.json says T5Tokenizer. */
  fixture_path(path, sizeof path, "tiny-wan/tokenizer");
  assert_int_equal(reel_tokenizer_load_dir(path, &tok, &err), REEL_OK);
  assert_int_equal(reel_tokenizer_pad_id(tok), 0);
  assert_int_equal(reel_tokenizer_num_special(tok), 1);
  assert_int_equal(check_corpus(tok, text, offs, need(st, "ids"), need(st, "ids_offsets"), 0), 0);
  assert_int_equal(check_corpus(tok, need(st, "clean_text"), need(st, "clean_text_offsets"), need(st, "clean_ids"),
                                need(st, "clean_ids_offsets"), 0),
                   0);

  /* prompt_clean (html.unescape twice, whitespace) gives diffusers' cleaned text byte for byte. */
  {
    const reel_st_tensor *ct = need(st, "clean_text"), *co = need(st, "clean_text_offsets");
    size_t bad = 0;
    for (size_t i = 0; i + 1 < (size_t)co->numel; i++) {
      int64_t tb = i64_at(offs, i), te = i64_at(offs, i + 1), cb = i64_at(co, i), ce = i64_at(co, i + 1);
      char *clean = NULL;
      size_t n = 0;
      assert_int_equal(reel_tokenizer_prompt_clean((const char *)text->data + tb, (size_t)(te - tb), &clean, &n, &err),
                       REEL_OK);
      if (n != (size_t)(ce - cb) || memcmp(clean, (const char *)ct->data + cb, n)) {
        if (bad < 3) printf("prompt_clean mismatch on string %zu: got \"%.*s\"\n", i, (int)n, clean);
        bad++;
      }
      reel_free(clean);
    }
    assert_int_equal(bad, 0);
  }

  /* WanPipeline's padded, truncated form for the strings over 512 tokens. */
  const reel_st_tensor *pidx = need(st, "padded512.index"), *pids = need(st, "padded512.ids");
  int32_t ids[512], mask[512];
  for (size_t j = 0; j < (size_t)pidx->numel; j++) {
    size_t i = (size_t)i64_at(pidx, j);
    int64_t tb = i64_at(offs, i), te = i64_at(offs, i + 1);
    size_t seq = 0;
    assert_int_equal(
        reel_tokenizer_encode_padded(tok, (const char *)text->data + tb, (size_t)(te - tb), 512, ids, mask, &seq, &err),
        REEL_OK);
    assert_int_equal(seq, 512);
    for (size_t k = 0; k < 512; k++) {
      assert_int_equal(ids[k], id_at(pids, j * 512 + k));
      assert_int_equal(mask[k], 1);
    }
    assert_int_equal(ids[511], 1); /* truncation keeps </s> */
  }
  reel_tokenizer_destroy(&tok);
  assert_null(tok);

  /* The file's own pipeline gives the same ids (the fixture was checked to agree). */
  fixture_path(path, sizeof path, "tiny-wan/tokenizer/tokenizer.json");
  assert_int_equal(reel_tokenizer_load(path, REEL_TOKENIZER_AS_WRITTEN, &tok, &err), REEL_OK);
  assert_int_equal(check_corpus(tok, text, offs, need(st, "ids"), need(st, "ids_offsets"), 0), 0);
  reel_tokenizer_destroy(&tok);

  fixture_path(path, sizeof path, "tokenizer/tokenizer_byte_fallback.json");
  assert_int_equal(reel_tokenizer_load(path, REEL_TOKENIZER_AS_WRITTEN, &tok, &err), REEL_OK);
  assert_int_equal(
      check_corpus(tok, text, offs, need(st, "ids_byte_fallback"), need(st, "ids_byte_fallback_offsets"), 0), 0);
  reel_tokenizer_destroy(&tok);
  reel_safetensors_close(&st);
}

static void test_variants(void **state) {
  (void)state;
  char path[1024];
  reel_safetensors *st = NULL;
  reel_tokenizer *tok = NULL;
  reel_error err = {0};
  fixture_path(path, sizeof path, "tokenizer-variants/reference.safetensors");
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  const reel_st_tensor *text = need(st, "corpus.bytes"), *offs = need(st, "corpus.offsets");
  const reel_st_tensor *inv = need(st, "invalid.bytes"), *inv_offs = need(st, "invalid.offsets");
  static const char *const variants[] = {"umt5", "t5v5", "bytefb"};
  for (size_t v = 0; v < 3; v++) {
    char name[96];
    snprintf(name, sizeof name, "tokenizer-variants/%s/tokenizer.json", variants[v]);
    fixture_path(path, sizeof path, name);
    reel_status rc = reel_tokenizer_load(path, REEL_TOKENIZER_AS_WRITTEN, &tok, &err);
    if (rc != REEL_OK) fail_msg("%s: %s: %s", variants[v], err.field, err.msg);
    char ids[64], ids_offs[64];
    snprintf(ids, sizeof ids, "%s.ids", variants[v]);
    snprintf(ids_offs, sizeof ids_offs, "%s.offsets", variants[v]);
    size_t bad = check_corpus(tok, text, offs, need(st, ids), need(st, ids_offs), 512);
    if (bad) fail_msg("%s: %zu mismatches", variants[v], bad);
    snprintf(ids, sizeof ids, "%s.invalid_ids", variants[v]);
    snprintf(ids_offs, sizeof ids_offs, "%s.invalid_offsets", variants[v]);
    assert_int_equal(check_corpus(tok, inv, inv_offs, need(st, ids), need(st, ids_offs), 512), 0);
    reel_tokenizer_destroy(&tok);
  }
  /* The legacy UMT5 layout through transformers 5's T5Tokenizer (what WanPipeline really runs). */
  fixture_path(path, sizeof path, "tokenizer-variants/umt5");
  assert_int_equal(reel_tokenizer_load_dir(path, &tok, &err), REEL_OK);
  assert_int_equal(
      check_corpus(tok, text, offs, need(st, "transformers_t5.ids"), need(st, "transformers_t5.offsets"), 512), 0);
  assert_int_equal(check_corpus(tok, inv, inv_offs, need(st, "transformers_t5.invalid_ids"),
                                need(st, "transformers_t5.invalid_offsets"), 512),
                   0);
  const reel_st_tensor *pb = need(st, "wan.prompts.bytes"), *po = need(st, "wan.prompts.offsets");
  const reel_st_tensor *wid = need(st, "wan.input_ids"), *wmask = need(st, "wan.attention_mask");
  int32_t ids[512], mask[512];
  for (size_t i = 0; i + 1 < (size_t)po->numel; i++) {
    int64_t b = i64_at(po, i), e = i64_at(po, i + 1);
    size_t seq = 0;
    assert_int_equal(
        reel_tokenizer_encode_padded(tok, (const char *)pb->data + b, (size_t)(e - b), 512, ids, mask, &seq, &err),
        REEL_OK);
    size_t want_seq = 0;
    for (size_t k = 0; k < 512; k++) {
      assert_int_equal(ids[k], id_at(wid, i * 512 + k));
      assert_int_equal(mask[k], id_at(wmask, i * 512 + k));
      want_seq += mask[k] ? 1 : 0;
    }
    assert_int_equal(seq, want_seq);
  }
  reel_tokenizer_destroy(&tok);
  reel_safetensors_close(&st);
}

/* A small valid tokenizer.json with one member replaced by `patch` (a JSON fragment "key": value). */
static char *make_json(const char *model, const char *normalizer, const char *pre, const char *post,
                       const char *added) {
  const char *fmt =
      "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":%s,"
      "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":null,\"model\":%s}";
  size_t n = strlen(fmt) + strlen(model) + strlen(normalizer) + strlen(pre) + strlen(post) + strlen(added) + 1;
  char *s = malloc(n);
  snprintf(s, n, fmt, added, normalizer, pre, post, model);
  return s;
}

#define GOOD_MODEL                                                                                                   \
  "{\"type\":\"Unigram\",\"unk_id\":2,\"vocab\":[[\"<pad>\",0.0],[\"</s>\",0.0],[\"<unk>\",0.0],[\"\\u2581\",-2.0]," \
  "[\"a\",-1.0],[\"b\",-1.5],[\"ab\",-1.2],[\"\\u2581a\",-0.5]],\"byte_fallback\":false}"
#define GOOD_PRE "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\",\"split\":true}"
#define GOOD_POST                                                                                                \
  "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{" \
  "\"id\":\"</s>\",\"type_id\":0}}],\"special_tokens\":{\"</s>\":{\"id\":\"</s>\",\"ids\":[1],\"tokens\":[\"</"  \
  "s>\"]}}}"
#define GOOD_ADDED \
  "[{\"id\":0,\"content\":\"<pad>\",\"special\":true},{\"id\":1,\"content\":\"</s>\",\"special\":true}]"

static void expect_load(const char *json, reel_status want, const char *field_part) {
  reel_tokenizer *tok = NULL;
  reel_error err = {0};
  reel_status rc = reel_tokenizer_load_memory(json, strlen(json), REEL_TOKENIZER_AS_WRITTEN, NULL, &tok, &err);
  if (rc != want) fail_msg("want %d got %d (%s: %s) for %s", (int)want, (int)rc, err.field, err.msg, json);
  if (want == REEL_OK) {
    assert_non_null(tok);
  } else {
    assert_null(tok);
    char all[REEL_ERROR_FIELD_MAX + REEL_ERROR_MSG_MAX + 2];
    snprintf(all, sizeof all, "%s %s", err.field, err.msg);
    if (!strstr(all, field_part)) fail_msg("error \"%s\" does not name %s", all, field_part);
  }
  reel_tokenizer_destroy(&tok);
}

static void test_small_and_malformed(void **state) {
  (void)state;
  char *j = make_json(GOOD_MODEL, "null", GOOD_PRE, GOOD_POST, GOOD_ADDED);
  reel_tokenizer *tok = NULL;
  reel_error err = {0};
  assert_int_equal(reel_tokenizer_load_memory(j, strlen(j), REEL_TOKENIZER_AS_WRITTEN, NULL, &tok, &err), REEL_OK);
  int32_t *ids = NULL;
  size_t n = 0;
  /* "ab ab" -> "▁ab", "▁ab" -> ▁a b | ▁a b (▁a -0.5 + b -1.5 = -2 beats ▁ -2 + ab -1.2) */
  assert_int_equal(reel_tokenizer_encode(tok, "ab ab", 5, 0, &ids, &n, &err), REEL_OK);
  int32_t want1[] = {7, 5, 7, 5, 1};
  assert_int_equal(n, 5);
  assert_memory_equal(ids, want1, sizeof want1);
  reel_free(ids);
  /* unknown characters fuse: "xyz" -> ▁ + <unk>(xyz) */
  assert_int_equal(reel_tokenizer_encode(tok, "xyz</s>a", 8, 0, &ids, &n, &err), REEL_OK);
  int32_t want2[] = {3, 2, 1, 7, 1};
  assert_int_equal(n, 5);
  assert_memory_equal(ids, want2, sizeof want2);
  reel_free(ids);
  /* empty text: only </s>; truncation keeps room for it */
  assert_int_equal(reel_tokenizer_encode(tok, "", 0, 0, &ids, &n, &err), REEL_OK);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], 1);
  reel_free(ids);
  assert_int_equal(reel_tokenizer_encode(tok, "a a a a", 7, 3, &ids, &n, &err), REEL_OK);
  assert_int_equal(n, 3);
  assert_int_equal(ids[2], 1);
  reel_free(ids);
  assert_int_equal(reel_tokenizer_encode(tok, "a", 1, 1, &ids, &n, &err), REEL_ERANGE);
  assert_string_equal(err.field, "max_len");
  /* invalid UTF-8 is replaced, never fatal */
  reel_error_clear(&err);
  assert_int_equal(reel_tokenizer_encode(tok, "a\xff\xfe", 3, 0, &ids, &n, &err), REEL_OK);
  assert_int_equal(n, 3); /* ▁a, <unk>(U+FFFD U+FFFD), </s> */
  assert_int_equal(ids[1], 2);
  reel_free(ids);
  reel_tokenizer_destroy(&tok);
  free(j);

  struct {
    const char *model, *norm, *pre, *post, *added;
    reel_status want;
    const char *field;
  } cases[] = {
      {"{\"type\":\"BPE\",\"vocab\":{}}", "null", "null", "null", "[]", REEL_EUNSUPPORTED, "model.type"},
      {"{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[]}", "null", "null", "null", "[]", REEL_ELIMIT, "model.vocab"},
      {"{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"a\",0.0]]}", "null", "null", "null", "[]", REEL_ERANGE,
       "unk_id"},
      {"{\"type\":\"Unigram\",\"vocab\":[[\"a\",\"x\"]]}", "null", "null", "null", "[]", REEL_EFORMAT,
       "model.vocab[0][1]"},
      {"{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0],[1,0.0]]}", "null", "null", "null", "[]", REEL_EFORMAT,
       "model.vocab[1][0]"},
      {"{\"type\":\"Unigram\",\"vocab\":[[\"a\"]]}", "null", "null", "null", "[]", REEL_EFORMAT, "model.vocab[0]"},
      {GOOD_MODEL, "{\"type\":\"NFKC\"}", "null", "null", "[]", REEL_EUNSUPPORTED, "normalizer.type"},
      {GOOD_MODEL,
       "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"@@\"}]}", "null",
       "null", "[]", REEL_EFORMAT, "normalizer.normalizers[0].precompiled_charsmap"},
      {GOOD_MODEL, "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AAAA\"}", "null", "null", "[]", REEL_EFORMAT,
       "normalizer.precompiled_charsmap"},
      {GOOD_MODEL, "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(a|b)\"},\"content\":\"x\"}", "null", "null", "[]",
       REEL_EUNSUPPORTED, "normalizer.pattern.Regex"},
      {GOOD_MODEL, "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" *\"},\"content\":\"x\"}", "null", "null", "[]",
       REEL_EUNSUPPORTED, "normalizer.pattern.Regex"},
      {GOOD_MODEL, "{\"type\":\"Replace\",\"pattern\":{\"Glob\":\"x\"},\"content\":\"x\"}", "null", "null", "[]",
       REEL_EFORMAT, "normalizer.pattern"},
      {GOOD_MODEL, "{\"type\":\"Strip\",\"strip_left\":1}", "null", "null", "[]", REEL_EINVAL, "strip_left"},
      {GOOD_MODEL, "null", "{\"type\":\"ByteLevel\"}", "null", "[]", REEL_EUNSUPPORTED, "pre_tokenizer.type"},
      {GOOD_MODEL, "null", "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", "null", "[]", REEL_EFORMAT,
       "pre_tokenizer.replacement"},
      {GOOD_MODEL, "null", "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"sometimes\"}", "null",
       "[]", REEL_EINVAL, "prepend_scheme"},
      {GOOD_MODEL, "null", "null", "{\"type\":\"BertProcessing\"}", "[]", REEL_EUNSUPPORTED, "post_processor.type"},
      {GOOD_MODEL, "null", "null",
       "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"</s>\"}}],\"special_tokens\":{}}",
       "[]", REEL_EFORMAT, "post_processor"},
      {GOOD_MODEL, "null", "null", "null", "[{\"id\":-1,\"content\":\"x\"}]", REEL_ERANGE, "added_tokens[0].id"},
      {GOOD_MODEL, "null", "null", "null", "[{\"id\":1,\"content\":\"\"}]", REEL_EFORMAT, "added_tokens[0].content"},
      {GOOD_MODEL, "null", "null", "null", "[{\"id\":1,\"content\":\"x\",\"single_word\":true}]", REEL_EUNSUPPORTED,
       "added_tokens[0].single_word"},
      {GOOD_MODEL, "null", "null", "null", "{}", REEL_EFORMAT, "added_tokens"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    j = make_json(cases[i].model, cases[i].norm, cases[i].pre, cases[i].post, cases[i].added);
    expect_load(j, cases[i].want, cases[i].field);
    free(j);
  }
  /* a pathological Replace regex is cut off by its step budget, not left to backtrack for ever */
  j = make_json(GOOD_MODEL,
                "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a*a*a*a*a*a*a*a*a*a*b\"},\"content\":\"x\"}", GOOD_PRE,
                GOOD_POST, GOOD_ADDED);
  assert_int_equal(reel_tokenizer_load_memory(j, strlen(j), REEL_TOKENIZER_AS_WRITTEN, NULL, &tok, &err), REEL_OK);
  free(j);
  {
    char text[3000];
    memset(text, 'a', sizeof text);
    reel_error_clear(&err);
    assert_int_equal(reel_tokenizer_encode(tok, text, sizeof text, 0, &ids, &n, &err), REEL_ELIMIT);
    assert_string_equal(err.field, "normalizer");
    assert_int_equal(reel_tokenizer_encode(tok, "aab c", 5, 0, &ids, &n, &err), REEL_OK); /* "aab" -> "x" */
    reel_free(ids);
  }
  reel_tokenizer_destroy(&tok);
  expect_load("{\"model\":", REEL_EFORMAT, "tokenizer.json");
  expect_load("[]", REEL_EFORMAT, "object");
  expect_load("{}", REEL_EFORMAT, "model");
}

/* Every allocation failure during load and encode is reported, never crashes or leaks. */
static void test_alloc_failures(void **state) {
  (void)state;
  char *j = make_json(GOOD_MODEL,
                      "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" {2,}\"},"
                      "\"content\":\" \"},{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}]}",
                      GOOD_PRE, GOOD_POST, GOOD_ADDED);
  /* jansson asserts when an allocation fails inside a string token (Debian 2.14), so the
   * injection starts after the allocations of the JSON parse itself. */
  long before = reel_alloc_calls();
  {
    json_t *root = NULL;
    assert_int_equal(reel_json_parse(j, strlen(j), "t", &root, NULL), REEL_OK);
    json_decref(root);
  }
  long parse_allocs = reel_alloc_calls() - before;
  for (long k = parse_allocs; k < parse_allocs + 400; k++) {
    reel_tokenizer *tok = NULL;
    reel_error err = {0};
    reel_alloc_fail_after(k, 0);
    reel_status rc = reel_tokenizer_load_memory(j, strlen(j), REEL_TOKENIZER_AS_WRITTEN, NULL, &tok, &err);
    if (rc == REEL_OK) {
      int32_t *ids = NULL;
      size_t n = 0;
      rc = reel_tokenizer_encode(tok, "  ab   xyz </s> a ", 18, 0, &ids, &n, &err);
      if (rc == REEL_OK) assert_true(n > 0);
      reel_free(ids);
      reel_tokenizer_destroy(&tok);
    }
    reel_alloc_fail_after(-1, 0);
    if (rc != REEL_OK) assert_int_equal(rc, REEL_ENOMEM);
  }
  free(j);
}

/* prompt_clean edge cases (expected outputs from Python's html.unescape twice + regex whitespace). */
static void test_prompt_clean_cases(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"&amp;amp; x", "& x"},
      {"&#x1F600;&#0;&#55296;&#99999999999;", "\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"&notit; &ampx &#x; &AElig &#", "\xc2\xacit; &x &#x; \xc3\x86 &#"},
      {"\x1c a  b\t\xc2\x85 ", "a b"},
      {"&lt;b&gt;&#39;&#x27;&quot", "<b>''\""},
      {"&#128;&#x9F;&#1;&#xFFFF;", "\xe2\x82\xac\xc5\xb8"},
      {"&Ccedilla; &NotNestedGreaterGreater; &abcdefghijklmnopqrstuvwxyz0123456789;",
       "\xc3\x87la; \xe2\xaa\xa2\xcc\xb8 &abcdefghijklmnopqrstuvwxyz0123456789;"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out = NULL;
    size_t n = 0;
    reel_error err = {0};
    assert_int_equal(reel_tokenizer_prompt_clean(cases[i].in, strlen(cases[i].in), &out, &n, &err), REEL_OK);
    assert_int_equal(n, strlen(cases[i].out));
    assert_memory_equal(out, cases[i].out, n);
    reel_free(out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_and_malformed), cmocka_unit_test(test_prompt_clean_cases),
      cmocka_unit_test(test_alloc_failures),      cmocka_unit_test(test_variants),
      cmocka_unit_test(test_wan_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
