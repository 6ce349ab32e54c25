"""The organism's word-level tokenizer: one token per lower-cased word or punctuation mark.

It is a real :class:`transformers.PreTrainedTokenizerFast` (offsets, ``save_pretrained``,
a chat template), so the organism goes through exactly the code path of a Hub model.
"""

from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN)
_WORD = re.compile(r"\w+|[^\w\s]")

#: LLaVA-1.5's conversation shape ("USER: <image>\n... ASSISTANT:"), written as a chat template.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}"
    "{% else %} ASSISTANT: {{ message['content'][0]['text'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)


def split_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, as the tokenizer sees them."""
    return _WORD.findall(text.lower())


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over ``words`` plus the chat-template words."""
    extra = split_words("USER: ASSISTANT:")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in sorted(set(words) | set(extra)):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    # the same cut as split_words: whitespace, then every punctuation mark on its own
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w\s]"), "isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="right",
        model_max_length=512,
    )
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.chat_template = CHAT_TEMPLATE
    return tok
