/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the tokenizer (reel/tokenizer.h): both what it parses from outside.
 *
 * The first byte picks the mode. 'J': the rest is a tokenizer.json, loaded in both
 * flavours; a tokenizer that loads must then encode a few fixed texts. Anything else:
 * the rest is a prompt (arbitrary bytes, invalid UTF-8 included) encoded by the tiny Wan
 * fixture tokenizer (tests/fixtures/tiny-wan/tokenizer, loaded once) and by a small
 * built-in one with byte fallback, stripped added tokens and a regex Replace. Invariants:
 * encoding never fails on valid tokenizers, every id is in range, the result ends with
 * the template's special token, truncation gives the untruncated prefix plus the special
 * token, and the padded form agrees with the plain one; WanPipeline's prompt cleaning runs on
 * the same bytes. A broken invariant aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char small_json[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<pad>\"},{\"id\":1,\"content\":\"</s>\"},"
    "{\"id\":8,\"content\":\"[X]\",\"lstrip\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Replace\",\"pattern\":{\"Regex\":"
    "\"[ \\\\t]{2,}\"},\"content\":\" \"},{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}]},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\"},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\"}},"
    "{\"SpecialToken\":{\"id\":\"</s>\"}}],\"special_tokens\":{\"</s>\":{\"id\":\"</s>\",\"ids\":[1]}}},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":2,\"byte_fallback\":true,\"vocab\":[[\"<pad>\",0],[\"</s>\",0],"
    "[\"<unk>\",0],[\"\\u2581\",-2],[\"a\",-1],[\"<0x61>\",0],[\"<0xC3>\",0],[\"ab\",-1.5]]}}";

static void check_encode(const reel_tokenizer *tok, const char *text, size_t len, int32_t max_id, int suffix) {
  int32_t *ids = NULL, *tr = NULL;
  size_t n = 0, nt = 0;
  reel_error err = {0};
  reel_status rc = reel_tokenizer_encode(tok, text, len, 0, &ids, &n, &err);
  if (rc == REEL_ELIMIT) return;                                       /* over REEL_TOKENIZER_MAX_TEXT */
  if (rc == REEL_EINVAL && !strcmp(err.field, "model.unk_id")) return; /* no unk id: a documented refusal */
  CHECK(rc == REEL_OK);
  CHECK(n >= reel_tokenizer_num_special(tok));
  for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] <= max_id);
  size_t ns = reel_tokenizer_num_special(tok);
  size_t max_len = ns + 3;
  CHECK(reel_tokenizer_encode(tok, text, len, max_len, &tr, &nt, &err) == REEL_OK);
  CHECK(nt <= max_len && nt <= n);
  if (nt < n) {
    CHECK(nt == max_len);
    if (suffix) CHECK(tr[nt - 1] == ids[n - 1]); /* the special suffix survives */
  }
  for (size_t i = 0; suffix && i + 1 < nt; i++) CHECK(tr[i] == ids[i]);
  if (reel_tokenizer_pad_id(tok) >= 0) {
    int32_t pid[16], mask[16];
    size_t seq = 0;
    CHECK(max_len <= 16);
    CHECK(reel_tokenizer_encode_padded(tok, text, len, max_len, pid, mask, &seq, &err) == REEL_OK);
    CHECK(seq == nt);
    for (size_t i = 0; i < max_len; i++) {
      CHECK(mask[i] == (i < nt));
      CHECK(pid[i] == (i < nt ? tr[i] : reel_tokenizer_pad_id(tok)));
    }
  }
  reel_free(ids);
  reel_free(tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static reel_tokenizer *wan, *small;
  static int init;
  if (!init) {
    char path[4096];
    const char *src = getenv("REEL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/tiny-wan/tokenizer", src ? src : REEL_FUZZ_SOURCE_DIR);
    reel_error err = {0};
    CHECK(reel_tokenizer_load_dir(path, &wan, &err) == REEL_OK);
    CHECK(reel_tokenizer_load_memory(small_json, strlen(small_json), REEL_TOKENIZER_AS_WRITTEN, "small", &small,
                                     &err) == REEL_OK);
    init = 1;
  }
  if (size == 0) return 0;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  if (data[0] == 'J') {
    for (int flavor = 0; flavor < 2; flavor++) {
      reel_tokenizer *tok = NULL;
      reel_error err = {0};
      reel_status rc = reel_tokenizer_load_memory(rest, n, (reel_tokenizer_flavor)flavor, "fuzz", &tok, &err);
      if (rc != REEL_OK) {
        CHECK(tok == NULL);
        CHECK(err.code == rc && err.msg[0] != '\0');
        continue;
      }
      static const char *const texts[] = {"", "a", "ab ab  a\t\tb ", "\xc3\xa9\xff</s>[X] x",
                                          "\xe2\x96\x81\xe2\x96\x81"};
      for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        check_encode(tok, texts[i], strlen(texts[i]), INT32_MAX, 0);
      reel_tokenizer_destroy(&tok);
      CHECK(tok == NULL);
    }
    return 0;
  }
  {
    char *clean = NULL;
    size_t cl = 0;
    reel_error err = {0};
    reel_status rc = reel_tokenizer_prompt_clean(rest, n, &clean, &cl, &err);
    CHECK(rc == REEL_OK || rc == REEL_ELIMIT);
    if (rc == REEL_OK) {
      CHECK(clean != NULL && clean[cl] == '\0');
      check_encode(wan, clean, cl, 1600, 1);
    }
    reel_free(clean);
  }
  check_encode(wan, rest, n, 1600, 1);
  check_encode(small, rest, n, 8, 1);
  return 0;
}
