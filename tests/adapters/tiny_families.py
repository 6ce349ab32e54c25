"""Tiny random-weight models of each real family, built from configs (no download), with a
real processor of the family around a word-level tokenizer that carries the family's special
tokens and a chat template of the family's shape."""

from __future__ import annotations


import torch
import transformers as tf
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from mfutils.data import synthetic
from mfutils.models.loading import no_video_processor
from mfutils.engine.interventions.attention import MF_ATTENTION, register_attention
from mfutils.models.tokenizer import split_words

LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=4096)
QWEN = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096)


def _tokenizer(specials: list[str], extra: dict[str, str], template: str, more: str = ""):
    # every word the templates below write, so that no prompt holds an unknown token
    words = set(synthetic.vocabulary()) | set(split_words("USER: ASSISTANT: user assistant system You are a helpful assistant."))
    words |= set(split_words(more))
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + specials)}
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w\s]"), "isolated")])
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                     eos_token="</s>", extra_special_tokens=extra)
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.chat_template = template
    return tok


LLAVA_TEMPLATE = (
    "{% for m in messages %}USER: {% for p in m['content'] %}{% if p['type'] == 'image' %}<image>\n"
    "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
QWEN_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
INTERNVL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<IMG_CONTEXT>\n{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}Image: <image>\n{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _clip(size=32, patch=8):
    return tf.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_size=size, patch_size=patch, projection_dim=32)


def llava():
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _tokenizer(["<image>"], {"image_token": "<image>"}, LLAVA_TEMPLATE)
    proc = tf.LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                                   crop_size={"height": 32, "width": 32}),
                             tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                             chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    cfg = tf.LlavaConfig(vision_config=_clip(), text_config=tf.LlamaConfig(vocab_size=len(tok), **LLAMA),
                         image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1)
    return tf.LlavaForConditionalGeneration(cfg), proc


def llava_next():
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tok = _tokenizer(["<image>"], {"image_token": "<image>"}, LLAVA_TEMPLATE)
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    ip = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                    image_grid_pinpoints=pinpoints)
    proc = tf.LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=8,
                                 vision_feature_select_strategy="default", chat_template=LLAVA_TEMPLATE,
                                 num_additional_image_tokens=1)
    cfg = tf.LlavaNextConfig(vision_config=_clip(), text_config=tf.LlamaConfig(vocab_size=len(tok), **LLAMA),
                             image_token_id=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
                             vision_feature_layer=-1)
    return tf.LlavaNextForConditionalGeneration(cfg), proc


def _qwen(version: str):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = _tokenizer(specials, {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}, QWEN_TEMPLATE)
    ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                  temporal_patch_size=2)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in
           [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    text = dict(QWEN, vocab_size=len(tok), rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1],
                                                             "rope_theta": 10000.0})
    if version == "2":
        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        cfg = tf.Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
        model, proc_cls = tf.Qwen2VLForConditionalGeneration(cfg), tf.Qwen2VLProcessor
    else:
        vision = dict(depth=2, hidden_size=32, out_hidden_size=32, num_heads=2, intermediate_size=64, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1],
                      in_channels=3)
        cfg = tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
        model, proc_cls = tf.Qwen2_5_VLForConditionalGeneration(cfg), tf.Qwen2_5_VLProcessor
    with no_video_processor():
        proc = proc_cls(image_processor=ip, tokenizer=tok, video_processor=None, chat_template=QWEN_TEMPLATE)
    return model, proc


def qwen2_vl():
    return _qwen("2")


def qwen2_5_vl():
    return _qwen("2.5")


def internvl():
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    specials = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    extra = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = _tokenizer(specials, extra, INTERNVL_TEMPLATE)
    ip = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False)
    with no_video_processor():
        proc = tf.InternVLProcessor(image_processor=ip, tokenizer=tok, video_processor=None, image_seq_length=4,
                                    chat_template=INTERNVL_TEMPLATE)
    vision = tf.InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=[32, 32], patch_size=[8, 8])
    text = tf.Qwen2Config(vocab_size=len(tok), **QWEN)
    cfg = tf.InternVLConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            downsample_ratio=0.5, image_seq_length=4)
    return tf.InternVLForConditionalGeneration(cfg), proc


def gemma_organism():
    """The Gemma organism's shape (:data:`mfutils.models.pretrained_organism.GEMMA`) in miniature:
    Gemma 3's text model in a LLaVA, its two attention types (a sliding window of 4 tokens, far
    shorter than a prompt, so that the window binds; other rotary bases per type), one
    key/value head, queries scaled by ``query_pre_attn_scalar`` rather than the head width."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from mfutils.models.pretrained_organism import GEMMA

    specials = ["<image>", "<start_of_turn>", "<end_of_turn>"]
    tok = _tokenizer(specials, {"image_token": "<image>"}, GEMMA_TEMPLATE, more="model Image:")
    proc = tf.LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                                   crop_size={"height": 32, "width": 32}),
                             tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                             chat_template=GEMMA_TEMPLATE, num_additional_image_tokens=1)
    text = tf.Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=12,
                               sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                               max_position_embeddings=4096,
                               rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
                                                "full_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    cfg = tf.LlavaConfig(vision_config=_clip(), text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, tie_word_embeddings=True)
    cfg.mfutils = {"kind": GEMMA.marker}
    return tf.LlavaForConditionalGeneration(cfg), proc


#: the GPU families (each has a parameters file and an estimate card)
FAMILIES = {
    "llava-1.5": llava,
    "llava-next": llava_next,
    "qwen2-vl": qwen2_vl,
    "qwen2.5-vl": qwen2_5_vl,
    "internvl": internvl,
}
#: every family the adapter tests run: the GPU ones and the Gemma organism's shape in miniature
ALL_FAMILIES = {**FAMILIES, "gemma-organism": gemma_organism}


def build(family: str):
    """``(model, processor)`` with the model on ``mf_sdpa`` attention and in eval mode."""
    torch.manual_seed(0)
    model, proc = ALL_FAMILIES[family]()
    register_attention()
    model.set_attn_implementation(MF_ATTENTION)
    proc.tokenizer.padding_side = "right"
    return model.eval(), proc


def save(family: str, folder) -> None:
    """Write a tiny random-weight ``family`` model and its processor to ``folder`` (a checkpoint
    of the same layout as the real ``-hf`` ones, for end-to-end runs through the loader)."""
    from mfutils.models.loading import save_processor

    with no_video_processor():
        model, proc = build(family)
        model.save_pretrained(str(folder))
        save_processor(proc, folder)
