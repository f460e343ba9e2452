#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Parity fixtures for issue 5 that tools/make_fixtures.py does not write (yet).

Section `tokenizer`: three SentencePiece unigram tokenizers in the Hugging Face tokenizer.json
format, trained here with sentencepiece on a generated multilingual corpus, and the ids the
`tokenizers` library gives for a separate corpus of >= 10,000 strings (Chinese, Japanese, Korean,
emoji sequences, precomposed and combining accents, Indic conjuncts, odd whitespace, control
characters, special-token strings, random code points, very long prompts). Also a few inputs
with invalid UTF-8 (reference: the bytes decoded with errors="replace", which is reel's
documented behaviour) and the WanPipeline call (padding to 512, truncation, attention mask)
made through transformers' AutoTokenizer.

Writes tests/fixtures/tokenizer-variants/ (see the README.md written next to the files).
Usage: python3 tools/make_fixtures_runtime2.py [--only tokenizer] [--out tests/fixtures]
Versions: those of tools/requirements-fixtures.txt (tokenizers 0.23.3, sentencepiece 0.2.3,
transformers 5.24.0).
"""

import argparse
import json
import os
import random
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def write_safetensors(path, tensors, metadata):
    """Deterministic safetensors writer (sorted names and metadata keys)."""
    dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
          np.dtype(np.uint8): "U8"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


# --------------------------------------------------------------------------------------
# text generators
# --------------------------------------------------------------------------------------

EN_WORDS = ("a the of and in on with under over cat dog woman man child city street forest river ocean "
            "mountain sunset sunrise night rain snow neon light camera slowly pans across close-up wide shot "
            "cinematic 4k detailed realistic anime style painting of red blue green golden old young "
            "running walking flying dancing smiling crowd market car train bicycle robot dragon castle "
            "I'm don't it's 3.5 2024 100% #1 @home e-mail U.S.A. (quietly) [draft] {x} naive cafe resume").split()


def rand_range(r, lo, hi, n):
    return "".join(chr(r.randint(lo, hi)) for _ in range(n))


def gen_english(r):
    s = " ".join(r.choice(EN_WORDS) for _ in range(r.randint(1, 25)))
    if r.random() < 0.3:
        s = s.capitalize() + r.choice([".", "!", "?", ",", "...", ""])
    return s


def gen_chinese(r):
    parts = [rand_range(r, 0x4E00, 0x62FF, r.randint(1, 12)) for _ in range(r.randint(1, 4))]
    return r.choice(["，", "。", " ", "、", "！"]).join(parts)


def gen_japanese(r):
    out = []
    for _ in range(r.randint(2, 10)):
        k = r.random()
        if k < 0.35:
            out.append(rand_range(r, 0x3041, 0x3096, r.randint(1, 4)))  # hiragana
        elif k < 0.6:
            out.append(rand_range(r, 0x30A1, 0x30FA, r.randint(1, 4)))  # katakana
        elif k < 0.75:
            out.append(rand_range(r, 0xFF66, 0xFF9D, r.randint(1, 4)))  # half-width katakana (NFKC)
        elif k < 0.9:
            out.append(rand_range(r, 0x4E00, 0x5FFF, r.randint(1, 3)))
        else:
            out.append(rand_range(r, 0xFF01, 0xFF5E, r.randint(1, 4)))  # full-width ASCII (NFKC)
    return "".join(out)


def gen_korean(r):
    if r.random() < 0.7:
        return " ".join(rand_range(r, 0xAC00, 0xD7A3, r.randint(1, 4)) for _ in range(r.randint(1, 5)))
    # conjoining jamo: L V (T)
    s = ""
    for _ in range(r.randint(1, 4)):
        s += chr(r.randint(0x1100, 0x1112)) + chr(r.randint(0x1161, 0x1175))
        if r.random() < 0.5:
            s += chr(r.randint(0x11A8, 0x11C2))
    return s


EMOJI = ["😀", "🎉", "🐱", "🚀", "❤️", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸", "🇫🇷🇩🇪", "1️⃣", "#️⃣",
         "☺", "✨", "🧑🏿‍🦰", "🫠", "🦄", "⌚", "©", "™", "🇦", "🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"]


def gen_emoji(r):
    return "".join(r.choice(EMOJI + [" ", "a", "cat "]) for _ in range(r.randint(1, 8)))


COMBINING = [chr(c) for c in range(0x300, 0x370)] + ["\u20DD", "\u0E48", "\u093C", "\u094D"]


def gen_accents(r):
    out = []
    for w in range(r.randint(1, 8)):
        k = r.random()
        if k < 0.4:
            out.append(r.choice(["café", "naïve", "résumé", "Ångström", "über", "mañana", "façade", "Zoë",
                                 "crème brûlée", "São Paulo", "Dvořák", "Łódź", "İstanbul", "ß", "ǅ", "ﬁ", "Ⅻ",
                                 "½", "①", "㍿", "ｶﾞ", "Å", "Ω", "K"]))
        elif k < 0.8:
            base = r.choice("aeiouAEIOUnczsyAＡ1 ")
            out.append(base + "".join(r.choice(COMBINING) for _ in range(r.randint(1, 3))))
        else:
            out.append(rand_range(r, 0xC0, 0x24F, r.randint(1, 6)))
    return " ".join(out)


def gen_indic_etc(r):
    k = r.random()
    if k < 0.3:  # Devanagari with viramas (GB9c conjuncts)
        s = ""
        for _ in range(r.randint(1, 6)):
            s += chr(r.randint(0x915, 0x939))
            if r.random() < 0.5:
                s += "\u094D" + chr(r.randint(0x915, 0x939))
            if r.random() < 0.5:
                s += chr(r.randint(0x93E, 0x94C))
        return s
    if k < 0.45:
        return rand_range(r, 0x600, 0x6FF, r.randint(1, 10))  # Arabic
    if k < 0.6:
        return rand_range(r, 0xE01, 0xE5B, r.randint(1, 10))  # Thai
    if k < 0.8:
        return " ".join(rand_range(r, 0x410, 0x44F, r.randint(1, 8)) for _ in range(r.randint(1, 4)))
    return " ".join(rand_range(r, 0x391, 0x3C9, r.randint(1, 8)) for _ in range(r.randint(1, 4)))


WS = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00A0", "\u3000", "\u2003", "\u200B", "\uFEFF", "\u2028",
      "\u0085", "\u202F", "\u1680", "\u200D", "\u00AD", "\v", "\f"]
CTRL = [chr(c) for c in list(range(0, 32)) + [0x7F]] + ["\u200E", "\u200F", "\u2066", "\u0600", "\uFFFD", "\uFFFF",
                                                       "\U000E0001", "\u034F"]


def gen_whitespace(r):
    out = ""
    for _ in range(r.randint(1, 10)):
        out += r.choice(WS) if r.random() < 0.5 else r.choice(EN_WORDS)
    return out


def gen_control(r):
    out = ""
    for _ in range(r.randint(1, 10)):
        out += r.choice(CTRL) if r.random() < 0.5 else r.choice(EN_WORDS + ["猫", "é", " "])
    return out


SPECIALS = ["</s>", "<pad>", "<unk>", "<extra_id_0>", "<extra_id_7>", "<extra_id_99>", "</s >", "<s>", "▁", "▁▁"]


def gen_special(r):
    return "".join(r.choice(SPECIALS + EN_WORDS + [" ", "  "]) for _ in range(r.randint(1, 8)))


def gen_random_cp(r):
    s = ""
    for _ in range(r.randint(1, 12)):
        while True:
            c = r.choice([r.randint(0, 0x7F), r.randint(0x80, 0x7FF), r.randint(0x800, 0xFFFF),
                          r.randint(0x10000, 0x10FFFF), r.randint(0x1F300, 0x1FAFF)])
            if not 0xD800 <= c <= 0xDFFF:
                break
        s += chr(c)
    return s


def gen_mixed(r):
    gens = [gen_english, gen_chinese, gen_japanese, gen_korean, gen_emoji, gen_accents, gen_indic_etc,
            gen_whitespace, gen_control, gen_special]
    return r.choice(["", " ", "  ", "\n"]).join(r.choice(gens)(r) for _ in range(r.randint(2, 5)))


def gen_long(r):
    # a long prompt: well past 512 tokens
    return " ".join(gen_mixed(r) if r.random() < 0.3 else gen_english(r) for _ in range(r.randint(60, 160)))


GENERATORS = [(gen_english, 18), (gen_chinese, 8), (gen_japanese, 8), (gen_korean, 4), (gen_emoji, 7),
              (gen_accents, 9), (gen_indic_etc, 6), (gen_whitespace, 8), (gen_control, 6), (gen_special, 5),
              (gen_random_cp, 6), (gen_mixed, 15)]


def make_corpus(seed, n, n_long, training=False):
    r = random.Random(seed)
    gens = [g for g in GENERATORS if not (training and g[0] in (gen_random_cp, gen_control))]
    names, weights = zip(*gens)
    out = ["", " ", "  ", "\n", "a", "▁", "</s>", "\u3000", "e\u0301", "Ａ\u0301", "\r\n", "ｶﾞ", "\x00", "a\x00b",
           "👨‍👩‍👧‍👦", "क्ष", "क्‍ष", "🇯🇵🇺🇸", "Hello  world", " Hello world ", "hello\u00A0\u00A0world", "[CAM] shot  [CAM]x", "a [CAM]", "ｶﾒﾗ カメラ", " ｶﾒﾗ", "x\u0085y"]
    while len(out) < n - n_long:
        out.append(r.choices(names, weights)[0](r))
    for _ in range(n_long):
        out.append(gen_long(r))
    return out


INVALID = [b"abc\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80x", b"\xc0\xafabc",
           b"\xf4\x90\x80\x80", b"caf\xe9 au lait", b"\x80\x80\x80", b"ok \xf0\x9f\x98\x80 \xf0\x9f", b"\xfe\xfe",
           b"\xe6\x97\xa5\xe6\x9c", b"a\xcc\x81\xcc"]


# --------------------------------------------------------------------------------------
# tokenizer section
# --------------------------------------------------------------------------------------

def train_spm(workdir, lines, prefix, vocab_size, byte_fallback):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    path = os.path.join(workdir, prefix + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line.replace("\n", " ").replace("\r", " ") + "\n")
    spm.SentencePieceTrainer.train(
        input=path, model_prefix=os.path.join(workdir, prefix), vocab_size=vocab_size, model_type="unigram",
        character_coverage=0.98, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=byte_fallback,
        normalization_rule_name="nmt_nfkc", num_threads=2, minloglevel=2, seed_sentencepiece_size=200000,
        input_sentence_size=0, shuffle_input_sentence=False)
    m = pb.ModelProto()
    with open(os.path.join(workdir, prefix + ".model"), "rb") as f:
        m.ParseFromString(f.read())
    vocab = [(p.piece, float(p.score)) for p in m.pieces]
    return vocab, m.normalizer_spec.precompiled_charsmap, os.path.join(workdir, prefix + ".model")


def build_tokenizer(variant, vocab, charsmap, extra_ids):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(vocab) + [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
    byte_fallback = variant == "bytefb"
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=byte_fallback))
    if variant == "umt5":
        # the layout of google/umt5-xxl's tokenizer.json (and so Wan2.1's tokenizer/)
        tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                               normalizers.Replace(Regex(" {2,}"), " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    elif variant == "t5v5":
        # what transformers 5 writes for T5TokenizerFast(vocab_file=...): no normalizer
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Metaspace(replacement="▁",
                                                                              prepend_scheme="always", split=True)])
    else:
        # newer SpmConverter layout, byte fallback, prepend "first", a stripped added token
        tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                               normalizers.Strip(left=False, right=True),
                                               normalizers.Replace(Regex(" {2,}"), "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials = [AddedToken("<pad>", special=True, normalized=False), AddedToken("</s>", special=True, normalized=False),
                AddedToken("<unk>", special=True, normalized=False)]
    specials += [AddedToken(f"<extra_id_{i}>", special=True, normalized=False) for i in range(extra_ids)]
    tok.add_special_tokens(specials)
    if variant == "bytefb":
        tok.add_tokens([AddedToken("[CAM]", lstrip=True, rstrip=True, normalized=False),
                        AddedToken("ｶﾒﾗ", normalized=True)])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    return tok


def pack_strings(strs):
    bs = [s if isinstance(s, bytes) else s.encode("utf-8") for s in strs]
    offs = np.zeros(len(bs) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(b) for b in bs])
    return np.frombuffer(b"".join(bs), dtype=np.uint8).copy(), offs


def pack_ids(lists):
    offs = np.zeros(len(lists) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(x) for x in lists])
    flat = np.array([i for x in lists for i in x], dtype=np.int32)
    return flat, offs


def make_tokenizer(out):
    import sentencepiece
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    d = os.path.join(out, "tokenizer-variants")
    os.makedirs(d, exist_ok=True)
    train_lines = make_corpus(1234, 30000, 0, training=True)
    corpus = make_corpus(5678, 3000, 10)
    tensors = {}
    tensors["corpus.bytes"], tensors["corpus.offsets"] = pack_strings(corpus)
    tensors["invalid.bytes"], tensors["invalid.offsets"] = pack_strings(INVALID)
    with tempfile.TemporaryDirectory() as tmp:
        vocab, charsmap, _ = train_spm(tmp, train_lines, "plain", 8000, False)
        vocab_fb, charsmap_fb, _ = train_spm(tmp, train_lines, "fb", 8000, True)
    meta = {"generator": "tools/make_fixtures_runtime2.py",
            "versions": json.dumps({"tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__,
                                    "transformers": transformers.__version__}, sort_keys=True)}
    for variant in ["umt5", "t5v5", "bytefb"]:
        tok = build_tokenizer(variant, vocab_fb if variant == "bytefb" else vocab,
                              charsmap_fb if variant == "bytefb" else charsmap, 100 if variant != "bytefb" else 8)
        vd = os.path.join(d, variant)
        os.makedirs(vd, exist_ok=True)
        tok.save(os.path.join(vd, "tokenizer.json"), pretty=False)
        tok = Tokenizer.from_file(os.path.join(vd, "tokenizer.json"))  # reload: test what was written
        tok.enable_truncation(512)
        ids = [e.ids for e in tok.encode_batch(corpus)]
        assert all(len(x) <= 512 for x in ids)
        tensors[f"{variant}.ids"], tensors[f"{variant}.offsets"] = pack_ids(ids)
        inv = [tok.encode(b.decode("utf-8", errors="replace")).ids for b in INVALID]
        tensors[f"{variant}.invalid_ids"], tensors[f"{variant}.invalid_offsets"] = pack_ids(inv)
        n_long = sum(1 for x in ids if len(x) == 512)
        n_unk = sum(1 for x in ids if 2 in x)
        print(f"  {variant}: {len(ids)} strings, {sum(map(len, ids))} ids, {n_long} truncated, {n_unk} with <unk>")
    # WanPipeline's call, through transformers, on the umt5 layout
    with open(os.path.join(d, "umt5", "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                   "extra_ids": 100, "model_max_length": 512}, f, indent=2, sort_keys=True)
        f.write("\n")
    # transformers 5's T5Tokenizer does not run tokenizer.json's pipeline as written: it keeps the vocab
    # and the precompiled charsmap but sets normalizer = Precompiled alone and pre_tokenizer =
    # WhitespaceSplit + Metaspace(always). These are the ids WanPipeline really feeds UMT5.
    at = AutoTokenizer.from_pretrained(os.path.join(d, "umt5"))
    assert type(at).__name__ == "T5Tokenizer", type(at)
    tf = at(corpus, truncation=True, max_length=512, add_special_tokens=True)["input_ids"]
    tensors["transformers_t5.ids"], tensors["transformers_t5.offsets"] = pack_ids(tf)
    inv = at([b.decode("utf-8", errors="replace") for b in INVALID], truncation=True, max_length=512)["input_ids"]
    tensors["transformers_t5.invalid_ids"], tensors["transformers_t5.invalid_offsets"] = pack_ids(inv)
    plain = Tokenizer.from_file(os.path.join(d, "umt5", "tokenizer.json"))
    plain.enable_truncation(512)
    ndiff = sum(1 for s, x in zip(corpus, tf) if plain.encode(s).ids != x)
    print(f"  transformers T5Tokenizer: {sum(map(len, tf))} ids; differs from tokenizer.json's pipeline on {ndiff} strings")
    prompts = [corpus[i] for i in range(0, 200, 20)] + [corpus[-1], corpus[-2]]
    enc = at(prompts, padding="max_length", max_length=512, truncation=True, add_special_tokens=True,
             return_attention_mask=True, return_tensors="np")
    for i in range(len(prompts)):
        got = [int(x) for x, m in zip(enc["input_ids"][i], enc["attention_mask"][i]) if m]
        assert got == tf[corpus.index(prompts[i])]
    tensors["wan.prompts.bytes"], tensors["wan.prompts.offsets"] = pack_strings(prompts)
    tensors["wan.input_ids"] = enc["input_ids"].astype(np.int32)
    tensors["wan.attention_mask"] = enc["attention_mask"].astype(np.int32)
    write_safetensors(os.path.join(d, "reference.safetensors"), tensors, meta)
    print("  wrote", d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", choices=["tokenizer"])
    args = ap.parse_args()
    todo = args.only or ["tokenizer"]
    if "tokenizer" in todo:
        make_tokenizer(os.path.abspath(args.out))


if __name__ == "__main__":
    main()
