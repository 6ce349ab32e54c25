"""One entry point to load any supported model by id, offline, with its processor and adapter."""

from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from mfutils.models.errors import CorruptCheckpointError, ModelNotAvailableError  # noqa: F401  (raised here)
from mfutils.models.adapters import Adapter, adapter_for, registered_families
from mfutils.models.pretrained_organism import GEMMA_ID, ORGANISMS, PRETRAINED_ID  # noqa: F401  (GEMMA_ID re-exported)
from mfutils.runs.paths import organism_dir
from mfutils.data.schema import Item

ORGANISM_ID = "organism"
#: the pretrained organisms: the book's model (SmolLM2-135M-Instruct inside a LLaVA) and the
#: Gemma-3-270M one built the same way
PRETRAINED_IDS = tuple(ORGANISMS)
SHIPPED_IDS = (ORGANISM_ID, *PRETRAINED_IDS)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}




def load_image(item: Item) -> Image.Image:
    """The item's image: a rendered synthetic one, or an RGB file from disk."""
    ref = item.image_ref
    if ref is None:
        raise ValueError(f"item {item.uid} has no image")
    if ref.startswith("synthetic:"):
        from mfutils.data.synthetic import image_from_ref

        return image_from_ref(ref)
    path = Path(ref)
    if not path.exists():
        raise FileNotFoundError(f"item {item.uid}: image file {path} not found (see the GPU guide for COCO)")
    with Image.open(path) as im:
        return im.convert("RGB")


@dataclass
class ModelBundle:
    """A loaded model with what every analysis needs beside it."""

    model: torch.nn.Module
    processor: object
    adapter: Adapter
    model_id: str
    device: torch.device
    dtype: torch.dtype
    image_loader: Callable[[Item], Image.Image] = load_image

    @property
    def tokenizer(self):
        return self.processor.tokenizer


def resolve(model_id: str) -> str:
    """``'organism'`` -> the tiny organism's folder; ``'pretrained-organism'`` -> its merged
    checkpoint (built from the installed base model and the shipped parts on first use);
    anything else is returned unchanged."""
    if model_id == ORGANISM_ID:
        return str(organism_dir())
    if model_id in PRETRAINED_IDS:
        from mfutils.models.pretrained_organism import materialise

        return str(materialise(model_id))
    return model_id


def lm_shape(model_id: str) -> tuple[int, int]:
    """``(layers, attention heads per layer)`` of an organism's language model, read from its
    files without loading any weights: the tiny organism's ``config.json``, the pretrained
    organism's GGUF header (its LoRA leaves the shape as it is)."""
    if model_id == ORGANISM_ID:
        text = json.loads((organism_dir() / "config.json").read_text())["text_config"]
        return int(text["num_hidden_layers"]), int(text["num_attention_heads"])
    if model_id in PRETRAINED_IDS:
        import gguf

        from mfutils.models.pretrained_organism import base_file

        fields = gguf.GGUFReader(base_file(model_id)).fields
        arch = str(fields["general.architecture"].contents())
        return (int(fields[f"{arch}.block_count"].contents()),
                int(fields[f"{arch}.attention.head_count"].contents()))
    raise ValueError(f"lm_shape reads the organisms only, not {model_id!r}")


def _restore_hint(model_id: str) -> str:
    if model_id == ORGANISM_ID:
        return "Restore it with `git checkout -- models/organism` or retrain with `make organism`."
    if model_id in PRETRAINED_IDS:
        from mfutils.models.pretrained_organism import organism

        return ("Delete the merged copy under .cache/ (it is rebuilt on the next load) or restore the parts with "
                f"`git checkout -- models/{organism(model_id).folder}`.")
    return "Re-download or re-save it."


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


#: a local model folder needs one of these to tokenize its prompts
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def check_model(model_id: str = ORGANISM_ID, device: str = "cpu", dtype: str = "float32"):
    """Everything :func:`load_model` checks before it reads weights (the dry run's model check).

    Returns ``(source, config, looks_local)``; raises the same clear errors as ``load_model``
    for an unknown device or dtype, a missing or unreadable model, an unsupported family, or
    weights that are not on this machine.
    """
    from transformers import AutoConfig

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is visible; use device='cpu'")
    source = resolve(model_id)
    local = Path(source)
    looks_local = local.exists() or source.startswith((".", "/")) or model_id in SHIPPED_IDS
    if looks_local and not (local / "config.json").exists():
        hint = (
            "restore it with `git checkout -- models/organism` or rebuild it with `make organism`"
            if model_id == ORGANISM_ID
            else "pass a folder that holds config.json and the weights"
        )
        raise ModelNotAvailableError(f"model folder {local} has no config.json; {hint}")
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        if looks_local:
            raise CorruptCheckpointError(f"cannot read {local / 'config.json'}: {err}") from err
        raise ModelNotAvailableError(
            f"model {model_id!r} is not available offline. On a machine with network run "
            f"`huggingface-cli download {model_id}` (or `hf download {model_id}`), or pass the path "
            f"of a local copy as model_id. Supported families: {', '.join(registered_families())}."
        ) from err
    # fail on the family before touching the (possibly large) weights
    adapter_for(_ConfigOnly(config))
    if looks_local and not any((local / n).exists() for n in TOKENIZER_FILES):
        raise CorruptCheckpointError(f"model folder {local} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}). "
                                     + _restore_hint(model_id))
    if looks_local:
        found = {n: local / n for n in WEIGHT_FILES if (local / n).exists()}
    else:
        from huggingface_hub import try_to_load_from_cache

        found = {n: Path(p) for n in WEIGHT_FILES if isinstance(p := try_to_load_from_cache(source, n), str)}
    if not found:
        raise ModelNotAvailableError(
            f"model {model_id!r}: its config is here but none of {', '.join(WEIGHT_FILES)} is"
            + (f" in {local}" if looks_local else f"; finish the download with `hf download {model_id}`")
        )
    try:
        check_weight_headers(found)
    except CorruptCheckpointError as err:
        raise CorruptCheckpointError(f"{err}. " + _restore_hint(model_id)) from None
    return source, config, looks_local


def check_weight_headers(found: dict[str, Path]) -> None:
    """Read every weight file's header, not its tensors: a truncated or overwritten checkpoint
    then fails in the dry run instead of inside a kernel minutes later.

    ``found``: weight-file name (one of :data:`WEIGHT_FILES`) -> path. A safetensors file's
    8-byte header length, JSON header and size must agree with its tensors' offsets; an index
    must parse and name shards that exist; a ``.bin`` must be a zip archive (torch.save's format).
    """
    import zipfile

    files: list[Path] = []
    for name, path in found.items():
        if name.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError) as err:
                raise CorruptCheckpointError(f"weight index {path} is unreadable ({err})") from None
            missing = [s for s in shards if not (path.parent / s).exists()]
            if missing:
                raise CorruptCheckpointError(f"weight index {path} names missing shard(s) {missing}")
            files += [path.parent / s for s in shards]
        else:
            files.append(path)
    for path in files:
        if path.suffix == ".bin":
            if not zipfile.is_zipfile(path):
                raise CorruptCheckpointError(f"weights {path} are corrupt (not a torch.save archive)")
            continue
        size = path.stat().st_size
        try:
            with path.open("rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if not 2 <= n <= size - 8:
                    raise ValueError(f"header length {n} does not fit a file of {size} bytes")
                header = json.loads(f.read(n))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError) as err:
            raise CorruptCheckpointError(f"weights {path} are corrupt ({err})") from None
        if 8 + n + end != size:
            raise CorruptCheckpointError(f"weights {path} are corrupt (truncated or padded: the header describes "
                                         f"{8 + n + end} bytes, the file has {size})")


def load_model(model_id: str = ORGANISM_ID, device: str = "cpu", dtype: str = "float32") -> ModelBundle:
    """Load ``model_id`` (``'organism'``, a local folder, or a Hub id already in the local cache).

    Never downloads. Fails at once, saying what to do, for an unknown family, a model that
    is not available offline, a corrupt checkpoint, or an unknown device / dtype.
    """
    from transformers import AutoModelForImageTextToText

    source, _, looks_local = check_model(model_id, device, dtype)
    local, dev = Path(source), torch.device(device)
    _register_attention()
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            source,
            local_files_only=True,
            dtype=DTYPES[dtype],
            attn_implementation=MF_ATTENTION,
        )
        processor = load_processor(source)
    except OSError as err:
        if looks_local:
            raise CorruptCheckpointError(f"the checkpoint in {local} could not be loaded ({err}). "
                                         + _restore_hint(model_id)) from err
        raise ModelNotAvailableError(f"model {model_id!r}: weights or processor missing offline ({err})") from err
    except Exception as err:  # safetensors raises its own error types on truncated files
        if "safetensor" in type(err).__module__ or "header" in str(err).lower() or "deserializ" in str(err).lower():
            raise CorruptCheckpointError(f"the weights in {local} are corrupt ({err}). " + _restore_hint(model_id)) from err
        raise
    model.to(dev).eval()
    if hasattr(processor, "tokenizer"):
        processor.tokenizer.padding_side = "right"
    return ModelBundle(model, processor, adapter_for(model), model_id, dev, DTYPES[dtype])


@contextmanager
def no_video_processor():
    """Let a processor be built without its video processor.

    Qwen2-VL / Qwen2.5-VL / InternVL processors carry a video processor that needs torchvision,
    which CPU-only installs here lack (PyPI's torchvision fails to import beside the pinned CPU
    torch). Our prompts hold no video, so the processor is built with ``video_processor=None``.
    """
    from unittest.mock import patch

    from transformers import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self, name, arg):
        if name == "video_processor" and arg is None:
            return None
        return original(self, name, arg)

    with patch.object(ProcessorMixin, "check_argument_for_proper_class", check):
        yield


def load_processor(source: str):
    """``AutoProcessor`` offline; without its video processor where that cannot be loaded."""
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(source, local_files_only=True)
    except (OSError, ImportError, ValueError) as err:
        if "video" not in str(err).lower():
            raise
    folder = Path(source) if Path(source).exists() else None
    if folder is None:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source, local_files_only=True))
    cfg = json.loads((folder / "processor_config.json").read_text())
    cls = getattr(transformers, cfg["processor_class"])
    template = folder / "chat_template.jinja"
    extra = {k: v for k, v in cfg.items() if k in inspect.signature(cls.__init__).parameters
             and k not in ("image_processor", "tokenizer", "video_processor", "chat_template")}
    with no_video_processor():
        return cls(image_processor=AutoImageProcessor.from_pretrained(str(folder), local_files_only=True),
                   tokenizer=AutoTokenizer.from_pretrained(str(folder), local_files_only=True), video_processor=None,
                   chat_template=template.read_text() if template.exists() else None, **extra)


def save_processor(processor, folder: str | Path) -> None:
    """``processor.save_pretrained`` that also works for a processor built without a video processor."""
    class _Absent(dict):  # save_pretrained reads ``_auto_class`` off every attribute
        _auto_class = None

    missing = getattr(processor, "video_processor", "n/a") is None
    if missing:
        processor.video_processor = _Absent()
    try:
        processor.save_pretrained(str(folder))
    finally:
        if missing:
            processor.video_processor = None
    if missing:
        path = Path(folder) / "processor_config.json"
        cfg = json.loads(path.read_text())
        cfg.pop("video_processor", None)
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


class _ConfigOnly:
    """Just enough of a model for :func:`adapter_for` to pick a family from a config."""

    def __init__(self, config):
        self.config = config


def organism_card() -> dict:
    """The shipped organism's training record (``training.json`` beside the weights)."""
    path = organism_dir() / "training.json"
    if not path.exists():
        raise ModelNotAvailableError(f"{path} is missing; run `make organism` to rebuild the organism")
    return json.loads(path.read_text())


# -- attention implementation ------------------------------------------------------------
from mfutils.engine.interventions.attention import MF_ATTENTION  # noqa: E402


def _register_attention() -> None:
    from mfutils.engine.interventions.attention import register_attention

    register_attention()
