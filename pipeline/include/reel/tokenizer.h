/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text tokenizer: SentencePiece unigram models saved in the Hugging Face tokenizers
 * format (tokenizer.json), as UMT5 (Wan's text encoder) uses them.
 *
 * What is implemented of tokenizer.json, and how it runs (the order of the tokenizers
 * library): the input is split on the added tokens that are matched on raw text
 * (`normalized: false`; leftmost-longest; `lstrip`/`rstrip` absorb neighbouring
 * White_Space); each remaining part is normalised (`normalizer`: Sequence, Precompiled
 * — SentencePiece's charsmap walked by grapheme cluster exactly as the tokenizers library
 * does —, Replace with a literal or a small regex subset, Strip, Prepend), split again on
 * added tokens marked `normalized: true`, pre-tokenised (`pre_tokenizer`: Sequence,
 * WhitespaceSplit, Metaspace with prepend_scheme always/first/never and split), and cut
 * into pieces by the unigram `model` (Viterbi over piece scores, fused unknowns,
 * byte_fallback). The `post_processor` TemplateProcessing adds its special tokens
 * (for T5: `</s>`). Components outside this list are rejected at load time with
 * REEL_EUNSUPPORTED and an error naming the field, never approximated.
 *
 * Flavours. transformers 5's T5Tokenizer, which WanPipeline uses, does not run the
 * file's pipeline as written: it keeps the vocabulary, the added tokens and the
 * precompiled charsmap, but uses the charsmap as the only normaliser, WhitespaceSplit +
 * Metaspace("▁", always) as pre-tokeniser, byte_fallback off and "$A </s>" as template.
 * REEL_TOKENIZER_T5 reproduces that; reel_tokenizer_load_dir() picks it from
 * tokenizer_config.json's tokenizer_class (T5Tokenizer, T5TokenizerFast) so that a Wan
 * checkpoint tokenizes as diffusers does.
 *
 * Text. Input is bytes plus a length (NUL is an ordinary character). Invalid UTF-8 is
 * not an error: every maximal invalid subsequence is replaced by U+FFFD first (what
 * Python's bytes.decode("utf-8", errors="replace") gives), and the result is tokenised;
 * input longer than REEL_TOKENIZER_MAX_TEXT bytes is refused with REEL_ELIMIT.
 *
 * Thread safety: a loaded tokenizer is immutable; encode may run on many threads at once.
 */
#ifndef REEL_TOKENIZER_H
#define REEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_TOKENIZER_MAX_TEXT  (1u << 20)   /* bytes of one input text */
#define REEL_TOKENIZER_MAX_JSON  (512u << 20) /* bytes of tokenizer.json */
#define REEL_TOKENIZER_MAX_VOCAB (1 << 22)    /* pieces in model.vocab */
#define REEL_TOKENIZER_MAX_PIECE 4096         /* bytes of one piece or added token */

typedef struct reel_tokenizer reel_tokenizer;

typedef enum reel_tokenizer_flavor {
  REEL_TOKENIZER_AS_WRITTEN = 0, /* tokenizer.json's pipeline, as the tokenizers library runs it */
  REEL_TOKENIZER_T5 = 1          /* as transformers 5's T5Tokenizer (see above) */
} reel_tokenizer_flavor;

/*
 * Loads a tokenizer.json file. On success *out is a new tokenizer (free with
 * reel_tokenizer_destroy); on failure *out is NULL and err names the field
 * ("model.vocab[12][1]", "normalizer.normalizers[0].precompiled_charsmap").
 */
reel_status reel_tokenizer_load(const char *path, reel_tokenizer_flavor flavor, reel_tokenizer **out /* OUT: */,
                                reel_error *err);
/* As reel_tokenizer_load() over JSON text in memory; `name` is used in messages (may be NULL). */
reel_status reel_tokenizer_load_memory(const char *json, size_t len, reel_tokenizer_flavor flavor, const char *name,
                                       reel_tokenizer **out /* OUT: */, reel_error *err);
/*
 * Loads <dir>/tokenizer.json of a diffusers-layout tokenizer folder. The flavour comes from
 * <dir>/tokenizer_config.json when present: tokenizer_class "T5Tokenizer" or
 * "T5TokenizerFast" gives REEL_TOKENIZER_T5, anything else (or no file) AS_WRITTEN.
 */
reel_status reel_tokenizer_load_dir(const char *dir, reel_tokenizer **out /* OUT: */, reel_error *err);

/* Frees the tokenizer and nulls *t; accepts NULL and NULL *t. */
void reel_tokenizer_destroy(reel_tokenizer **t);

/* Number of pieces in the model's vocabulary (added tokens may have larger ids). */
size_t reel_tokenizer_vocab_size(const reel_tokenizer *t);
/* The id of "<pad>" (an added token or a piece), or -1 when there is none. */
int32_t reel_tokenizer_pad_id(const reel_tokenizer *t);
/* Special tokens the post-processor adds to one sequence (T5: 1). */
size_t reel_tokenizer_num_special(const reel_tokenizer *t);

/*
 * Tokenises `len` bytes of `text` with the post-processor's special tokens. With
 * max_len > 0 the model's tokens are truncated (from the right) so that the result,
 * special tokens included, has at most max_len ids, as `truncation=True,
 * max_length=max_len` does; max_len must then exceed reel_tokenizer_num_special().
 * *ids is a new array of *n ids that the caller frees with reel_free() (NULL when *n
 * is 0). On failure *ids is NULL and *n is 0.
 */
reel_status reel_tokenizer_encode(const reel_tokenizer *t, const char *text, size_t len, size_t max_len,
                                  int32_t **ids /* OUT: */, size_t *n /* OUT: */, reel_error *err);

/*
 * WanPipeline's call: tokenizer(text, padding="max_length", max_length=max_len,
 * truncation=True, add_special_tokens=True, return_attention_mask=True). Writes max_len
 * ids (padded with the pad id, which must exist) and max_len mask entries (1 for real
 * tokens, 0 for padding) into caller arrays; *seq_len (may be NULL) gets the number of
 * real tokens.
 */
reel_status reel_tokenizer_encode_padded(const reel_tokenizer *t, const char *text, size_t len, size_t max_len,
                                         int32_t *ids /* OUT: [max_len] */, int32_t *mask /* OUT: [max_len] */,
                                         size_t *seq_len /* OUT: may be NULL */, reel_error *err);

/*
 * WanPipeline's prompt_clean (what diffusers does to a prompt before tokenizing it):
 * html.unescape applied twice (numeric and HTML5 named references, as Python's html
 * module), strip, every run of White_Space to one space, strip. diffusers first runs
 * ftfy.fix_text when ftfy is installed; reel reproduces the behaviour without ftfy (the
 * reference environment's). Invalid UTF-8 is replaced as in reel_tokenizer_encode. *out
 * is a new NUL-terminated string of *out_len bytes (free with reel_free).
 */
reel_status reel_tokenizer_prompt_clean(const char *text, size_t len, char **out /* OUT: */, size_t *out_len /* OUT: */,
                                        reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
