# SPDX-License-Identifier: Apache-2.0
"""Text for the tokenizer fixtures: a mixed-language training corpus and a test corpus.

Everything is generated from the hand-written phrase lists below with a seeded numpy RNG,
so tools/make_fixtures.py produces the same strings on every run. The phrases are written
for this project (video-prompt style), in English, Chinese, Japanese, Korean, French,
German, Spanish, Portuguese, Vietnamese, Russian, Greek, Arabic, Hindi and Thai.
"""

import numpy as np

PHRASES = {
    "en": [
        "A cat and a dog bake a cake together in a sunny kitchen.",
        "The camera slowly pans across a misty mountain valley at dawn.",
        "A red vintage car drives along a coastal road, waves crashing below.",
        "Close-up of raindrops sliding down a window, city lights blurred behind.",
        "An astronaut floats inside the space station, tablet in hand.",
        "Two children fly a kite on a windy hill under a blue sky.",
        "A chef slices fresh salmon with a very sharp knife.",
        "Time-lapse of clouds rolling over the skyscrapers of a big city.",
        "A golden retriever runs through tall grass, ears flapping.",
        "Snow falls quietly on a wooden cabin deep in the forest.",
        "A street musician plays the violin under a flickering lamp.",
        "Cinematic shot, 35mm film, shallow depth of field, warm colors.",
        "A hummingbird hovers next to a bright pink flower.",
        "Waves break against black volcanic rocks at sunset.",
        "A robot arm assembles a tiny watch with great precision.",
        "An old man reads a newspaper on a park bench in autumn.",
        "Fireworks explode over the harbor at midnight.",
        "A panda eats bamboo while sitting in the rain.",
        "Neon signs reflect in puddles on a narrow alley at night.",
        "A ballerina spins on a stage lit by a single spotlight.",
        "Bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality.",
        "JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands.",
        "The train crosses a stone bridge above a deep green river.",
        "A fox sneaks across a frozen lake under the northern lights.",
        "Macro shot of an ant carrying a leaf twice its size.",
        "A surfer rides a huge wave, spray glowing in the sunlight.",
        "Hot air balloons rise over the desert at sunrise.",
        "A barista pours latte art into a white ceramic cup.",
        "Lightning strikes a lone tree in an open field.",
        "A jellyfish drifts through dark blue water, glowing softly.",
    ],
    "zh": [
        "一只猫和一只狗在阳光明媚的厨房里一起烤蛋糕。",
        "镜头缓缓掠过黎明时分雾气弥漫的山谷。",
        "一辆红色老爷车沿着海岸公路行驶，海浪在下方拍打。",
        "雨滴顺着窗户滑落，身后是模糊的城市灯光。",
        "宇航员漂浮在空间站里，手里拿着平板电脑。",
        "两个孩子在蓝天下有风的山坡上放风筝。",
        "厨师用锋利的刀切新鲜的三文鱼。",
        "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止。",
        "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指。",
        "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合。",
        "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走。",
        "一只熊猫坐在雨中吃竹子。",
        "烟花在午夜的港口上空绽放。",
        "火车穿过深绿色河流上方的石桥。",
        "热气球在日出时分从沙漠上空升起。",
        "霓虹灯倒映在夜晚狭窄小巷的水坑里。",
        "一位老人在秋天的公园长椅上看报纸。",
        "雪静静地落在森林深处的小木屋上。",
        "电影感镜头，浅景深，暖色调，胶片质感。",
        "一只金毛犬在高高的草丛中奔跑。",
    ],
    "ja": [
        "猫と犬が明るいキッチンで一緒にケーキを焼いている。",
        "夜明けの霧に包まれた山の谷をカメラがゆっくりと横切る。",
        "赤いクラシックカーが海沿いの道を走り、下では波が砕けている。",
        "窓を伝う雨粒のクローズアップ、背景には街の灯り。",
        "宇宙飛行士がタブレットを手に宇宙ステーションの中を漂う。",
        "桜の花びらが春風に舞い散る京都の古い寺。",
        "東京の交差点を大勢の人々が行き交うタイムラプス。",
        "ラーメン屋のカウンターで湯気が立ちのぼる。",
        "富士山の上に満月が昇る静かな夜。",
        "アニメ風のイラスト、鮮やかな色彩、高品質。",
        "ﾊﾝｶｸｶﾀｶﾅのテキストも混ざっている。",
        "新幹線が田園地帯を高速で走り抜ける。",
        "子どもたちが夏祭りで金魚すくいをしている。",
        "雪の降る温泉で猿がのんびりと湯に浸かる。",
        "ロボットが小さな時計を精密に組み立てる。",
    ],
    "ko": [
        "고양이와 개가 햇살 가득한 부엌에서 함께 케이크를 굽는다.",
        "새벽 안개가 낀 산골짜기를 카메라가 천천히 가로지른다.",
        "빨간 클래식 자동차가 해안 도로를 달리고 아래에서는 파도가 부서진다.",
        "서울의 밤거리에 네온사인이 반짝인다.",
        "한복을 입은 소녀가 궁궐 정원을 걷는다.",
        "눈 덮인 산 위로 해가 떠오른다.",
        "시장에서 떡볶이를 만드는 할머니의 손.",
        "영화 같은 장면, 얕은 심도, 따뜻한 색감.",
        "바다 위를 나는 갈매기 떼.",
        "비 오는 날 우산을 쓴 사람들이 횡단보도를 건넌다.",
    ],
    "fr": [
        "Un chat et un chien préparent un gâteau dans une cuisine ensoleillée.",
        "La caméra glisse lentement au-dessus d'une vallée brumeuse à l'aube.",
        "Une voiture ancienne rouge longe la côte, les vagues se brisent en contrebas.",
        "Gros plan sur des gouttes de pluie qui glissent le long d'une fenêtre.",
        "Un vieil homme lit le journal sur un banc, en automne, près du château.",
        "Des crêpes dorées garnies de crème fraîche et de fraises.",
        "Noël à Paris : la tour Eiffel scintille sous la neige.",
        "Œuvre impressionniste, lumière douce, couleurs pastel, façade en pierre.",
    ],
    "de": [
        "Eine Katze und ein Hund backen zusammen einen Kuchen in einer sonnigen Küche.",
        "Die Kamera schwenkt langsam über ein nebliges Bergtal bei Sonnenaufgang.",
        "Ein roter Oldtimer fährt die Küstenstraße entlang, unten brechen die Wellen.",
        "Straßenmusiker spielt Geige unter einer flackernden Laterne in München.",
        "Schneeflocken fallen leise auf eine Holzhütte im tiefen Wald.",
        "Größere Äpfel, süße Brötchen und frischer Kaffee zum Frühstück.",
        "Übermäßig belichtet, unscharfe Details, schlechteste Qualität.",
    ],
    "es": [
        "Un gato y un perro hornean un pastel juntos en una cocina soleada.",
        "La cámara recorre despacio un valle con niebla al amanecer.",
        "Un niño pequeño corre por la playa persiguiendo gaviotas, ¡qué alegría!",
        "¿Quién baila flamenco bajo la luz de la luna en Sevilla?",
        "Señales de neón se reflejan en los charcos de un callejón estrecho.",
    ],
    "pt": [
        "Um gato e um cão fazem um bolo juntos numa cozinha ensolarada.",
        "A câmera passa devagar sobre um vale enevoado ao amanhecer.",
        "Crianças soltam pipa no morro, o céu está azul e sem nuvens.",
    ],
    "vi": [
        "Một con mèo và một con chó cùng nướng bánh trong căn bếp đầy nắng.",
        "Thuyền trôi chậm trên vịnh Hạ Long phủ sương sớm.",
        "Phố cổ Hội An rực rỡ đèn lồng vào ban đêm.",
    ],
    "ru": [
        "Кошка и собака вместе пекут торт на солнечной кухне.",
        "Камера медленно проплывает над туманной горной долиной на рассвете.",
        "Снег тихо падает на деревянную избу в глубоком лесу.",
        "Ёжик в тумане ищет свою лошадку.",
        "Кинематографичный кадр, малая глубина резкости, тёплые цвета.",
    ],
    "el": [
        "Μια γάτα και ένας σκύλος ψήνουν μαζί ένα κέικ σε μια ηλιόλουστη κουζίνα.",
        "Το κύμα σπάει στα μαύρα βράχια το ηλιοβασίλεμα.",
    ],
    "ar": [
        "قطة وكلب يخبزان كعكة معًا في مطبخ مشمس.",
        "الكاميرا تتحرك ببطء فوق وادٍ ضبابي عند الفجر.",
        "أضواء النيون تنعكس في برك الماء في زقاق ضيق ليلاً.",
    ],
    "hi": [
        "एक बिल्ली और एक कुत्ता धूप वाली रसोई में साथ मिलकर केक बनाते हैं।",
        "सुबह की धुंध में पहाड़ी घाटी के ऊपर कैमरा धीरे-धीरे घूमता है।",
    ],
    "th": [
        "แมวและสุนัขอบเค้กด้วยกันในครัวที่มีแดดส่องถึง",
        "ตลาดน้ำยามเช้าเต็มไปด้วยเรือขายผลไม้",
    ],
}

EMOJI = [
    "😀", "😂", "🥹", "😍", "🤖", "🐱", "🐶", "🐼", "🦊", "🦙", "🌸", "🌊", "🔥", "✨", "🎆", "🍰", "🍣",
    "🚗", "🚀", "🎻", "📷", "🎬", "❤️", "☀️", "⛄", "🌧️", "⭐",
    "👍🏽", "👋🏿", "🧑🏻‍🍳", "👩‍🚀", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "❤️‍🔥", "🐻‍❄️", "👁️‍🗨️",
    "🇯🇵", "🇰🇷", "🇨🇳", "🇫🇷", "🇺🇸", "1️⃣", "#️⃣", "©️", "™️", "🫶🏼",
]

# odd whitespace: tab, LF, CR, VT, FF, NBSP, ideographic space, U+2028/U+2029, thin/hair/em
# spaces, narrow NBSP, zero-width space/joiner/non-joiner, word joiner, BOM, NEL, Ogham space
WHITESPACE = ["\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\u00a0", "\u3000", "\u2028", "\u2029", "\u2009",
              "\u200a", "\u2003", "\u202f", "\u200b", "\u200d", "\u200c", "\u2060", "\ufeff", "\x85", "\u1680",
              "  ", "   ", " \t "]
CONTROLS = ["\x00", "\x01", "\x07", "\x08", "\x1b", "\x1f", "\x7f", "\x80", "\x9f", "\u00ad", "\u200e",
            "\u202e", "\ufffd", "\ue000", "\U000f0000"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "c\u0327", "u\u031b\u0300",
             "\u1100\u1161\u11a8", "\u0915\u094d\u0937", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f"]
FULLWIDTH = ["ＡＢＣ１２３", "ｈｅｌｌｏ　ｗｏｒｌｄ", "！？（）［］", "ﾃｽﾄ", "㍿", "㈱", "①②③", "ﬁ ﬂ ﬀ",
             "Ⅻ", "½ ¼ ¾", "x²y³", "℃", "№", "™", "…", "ａ－ｚ"]
SYMBOLS = ["$", "€", "£", "¥", "%", "&", "@", "#", "*", "+", "=", "<", ">", "/", "\\", "|", "^", "~", "`",
           "\"", "'", "«", "»", "“", "”", "‘", "’", "—", "–", "•", "→", "∞", "≈", "≠", "±", "°", "§", "¶",
           "&amp;", "&lt;b&gt;", "&#39;", "&nbsp;", "&eacute;"]
SPECIAL_TEXT = ["</s>", "<pad>", "<unk>", "<extra_id_0>", "<extra_id_7>", "<s>", "▁", "▁▁", "<0x41>"]
WORDS_ASCII = ["video", "camera", "slow", "motion", "4k", "HDR", "8K", "ultra", "detailed", "portrait", "a",
               "the", "of", "and", "in", "on", "with", "x", "ID", "COVID-19", "e-mail", "U.S.A.", "don't",
               "it's", "3.14159", "1,000,000", "2024-05-01", "12:30", "#hashtag", "@user", "http://example.com/a?b=c",
               "C++", "snake_case", "camelCase", "UPPER", "MiXeD", "aaaaaaaaaaaaaaaaaaaa", "Wan2.1"]


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def training_lines(seed=1234, n=6000):
    """Lines for SentencePiece training: every phrase several times plus random mixtures."""
    rng = np.random.default_rng(seed)
    lines = []
    for lang, xs in PHRASES.items():
        reps = 12 if lang in ("en", "zh", "ja") else 6
        for _ in range(reps):
            lines.extend(xs)
    langs = list(PHRASES)
    while len(lines) < n:
        k = int(rng.integers(1, 4))
        parts = [_pick(rng, PHRASES[_pick(rng, langs)]) for _ in range(k)]
        if rng.random() < 0.3:
            parts.append(_pick(rng, EMOJI))
        if rng.random() < 0.3:
            parts.append(" ".join(_pick(rng, WORDS_ASCII) for _ in range(int(rng.integers(1, 6)))))
        lines.append(" ".join(parts))
    return lines


def test_corpus(seed=99, n=10000):
    """The tokenizer test corpus: fixed edge cases, then random mixtures, then long prompts."""
    rng = np.random.default_rng(seed)
    out = ["", " ", "  ", "\t", "\n", "\u3000", "\u00a0", "\x00", "a", "A", "▁", "</s>", "</s></s>", "<pad>",
           "<unk>", "<extra_id_0>", "hello</s>world", "x<extra_id_3>y", " leading space", "trailing space ",
           "  both  ", "multiple    inner     spaces", "tab\tseparated\tvalues", "line\nbreaks\nhere",
           "crlf\r\nline", "nbsp\u00a0between", "ideographic\u3000space", "line\u2028separator",
           "para\u2029separator", "zero\u200bwidth", "soft\u00adhyphen", "bom\ufefffirst", "\ufeffbom at start",
           "nel\x85char", "bell\x07char", "null\x00inside", "esc\x1b[31mred\x1b[0m", "del\x7fchar"]
    for lang, xs in PHRASES.items():
        out.extend(xs)
    out.extend(EMOJI)
    out.extend(WHITESPACE)
    out.extend(CONTROLS)
    out.extend(COMBINING)
    out.extend(FULLWIDTH)
    out.extend(SYMBOLS)
    out.extend(SPECIAL_TEXT)
    out.extend(WORDS_ASCII)
    # every BMP block sampled sparsely, plus some astral characters
    for cp in range(0x20, 0x3000, 37):
        if not 0xD800 <= cp <= 0xDFFF:
            out.append(chr(cp) + chr(cp + 1) if 0xD800 > cp + 1 or cp + 1 > 0xDFFF else chr(cp))
    for cp in [0x1F600, 0x1F9D1, 0x20000, 0x2A6D6, 0x1D11E, 0x10FFFD, 0xE0041, 0x1F1EF]:
        out.append(chr(cp))
    pools = [
        lambda: _pick(rng, PHRASES[_pick(rng, list(PHRASES))]),
        lambda: _pick(rng, EMOJI),
        lambda: _pick(rng, WHITESPACE),
        lambda: _pick(rng, CONTROLS),
        lambda: _pick(rng, COMBINING),
        lambda: _pick(rng, FULLWIDTH),
        lambda: _pick(rng, SYMBOLS),
        lambda: _pick(rng, SPECIAL_TEXT),
        lambda: _pick(rng, WORDS_ASCII),
    ]
    weights = np.array([5, 2, 2, 1, 1, 1, 2, 1, 3], dtype=np.float64)
    weights /= weights.sum()
    n_long = 24
    while len(out) < n - n_long:
        k = int(rng.integers(1, 4))
        parts = []
        for _ in range(k):
            parts.append(pools[int(rng.choice(len(pools), p=weights))]())
        sep = " " if rng.random() < 0.7 else _pick(rng, ["", " ", "  ", "\t", "\n", "\u3000", ", "])
        s = sep.join(parts)
        if rng.random() < 0.1:
            s = " " + s
        if rng.random() < 0.1:
            s = s + " "
        out.append(s)
    # very long prompts (well over 512 tokens)
    for i in range(n_long):
        k = int(rng.integers(45, 95))
        parts = [pools[0]() for _ in range(k)]
        if i % 4 == 0:
            parts = [_pick(rng, EMOJI) * 3 for _ in range(k)]
        out.append(" ".join(parts))
    assert len(out) >= n
    return out
