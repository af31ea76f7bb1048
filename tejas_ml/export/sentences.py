"""Varied texts the text export checks its encoder on: short, long (truncated), unicode, emoji, CJK,
right-to-left, control characters, the empty string."""

from __future__ import annotations

_LONG_ENGLISH = " ".join(
    ["The support ticket says the printer on the third floor keeps jamming whenever someone prints labels."] * 12
)

SENTENCES: tuple[str, ...] = (
    "",
    "hi",
    "a",
    "🙂",
    "The quick brown fox jumps over the lazy dog.",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121 to receive entry",
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward!",
    "Ok lar... Joking wif u oni...",
    "The movie was terrible, I want my money back.",
    "My password reset link expired before I could use it.",
    "Café au lait, naïve façade, jalapeño, Ångström, Łódź, Straße.",
    "I love it 😍🔥👍 so much!!!",
    "👨‍👩‍👧‍👦 family time 🇮🇳🇯🇵",
    "今日はいい天気ですね。",
    "我喜欢机器学习和自然语言处理。",
    "한국어 문장도 잘 처리됩니다.",
    "तेजस एक हल्का लड़ाकू विमान है।",
    "مرحبا بالعالم، كيف حالك؟",
    "Привет, как дела?",
    "Καλημέρα κόσμε",
    "x² + y² = r², ∑ᵢ aᵢ ≥ 0 → ∞",
    "def square(x): return x ** 2  # the square",
    "Visit https://example.com/a?b=c&d=e or mail me at first.last@example.org",
    "Call 0800 123 4567 now!!! 50% off, only $9.99",
    "   leading and trailing spaces \t\n",
    "tab\there\nnewline\rcarriage\x00nul\x07bell",
    "?!?!?!... ---- **** ////",
    "Das ist very good, très bien, とても良い",
    _LONG_ENGLISH,
    "机器学习" * 80,
    "a" * 600,
)
