"""Hugging Face's GPT-2 format: read it into a :class:`~minigpt2.model.GPT`, write a GPT in it.

A checkpoint is a directory with ``config.json`` (GPT-2's field names: ``n_positions``,
``n_embd``, …) and ``model.safetensors``. Only safetensors is read or written: a
pickle file (``pytorch_model.bin``) can run code when loaded.

Two differences from our layout, both handled here:

* OpenAI's code used a ``Conv1D`` for the four projections (``c_attn``, ``attn.c_proj``,
  ``c_fc``, ``mlp.c_proj``): a Linear whose weight is stored as (in, out), the
  transpose of ``nn.Linear``'s (out, in);
* older checkpoints store each block's causal mask as a buffer (``attn.bias``,
  ``attn.masked_bias``), and omit the tied ``lm_head.weight`` and the ``transformer.`` prefix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from minigpt2.datafiles import offline
from minigpt2.model import GPT, GPTConfig
from minigpt2.tokenizer.gpt2 import END_OF_TEXT_ID
from minigpt2.train.checkpoint import CheckpointError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"  # large checkpoints split into shards
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
HUB_ORGANISATION = "openai-community"
HUB_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # what from_pretrained downloads, when online


# --------------------------------------------------------------------------- state dicts


def is_conv1d_weight(name: str) -> bool:
    return name.endswith(CONV1D_WEIGHTS)


def from_hf_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face GPT-2 tensors -> a state dict for :class:`GPT` (Conv1D weights transposed,
    mask buffers dropped, ``lm_head.weight`` set to the tied token embedding)."""
    state = {}
    for key, tensor in hf_state.items():
        name = key.removeprefix("transformer.")
        if name.endswith(MASK_BUFFERS):
            continue  # the causal mask; ours is built on the fly
        if name == "lm_head.weight":
            continue  # tied to wte; checked in load_state_dict_into
        state["transformer." + name] = tensor.t() if is_conv1d_weight(name) else tensor  # (in, out) -> (out, in)
    if "transformer.wte.weight" in state:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def to_hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The tensors of ``model`` named and laid out as ``GPT2LMHeadModel`` saves them
    (the tied ``lm_head.weight`` left out, as Hugging Face does)."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        tensor = tensor.t() if is_conv1d_weight(name) else tensor  # (out, in) -> (in, out)
        out[name] = tensor.detach().cpu().contiguous()
    return out


def load_state_dict_into(model: GPT, hf_state: dict[str, torch.Tensor]) -> GPT:
    """Copy Hugging Face GPT-2 tensors into ``model``, with errors that name the tensor at fault."""
    lm_head = hf_state.get("lm_head.weight")
    wte = hf_state.get("transformer.wte.weight", hf_state.get("wte.weight"))
    if lm_head is not None and wte is not None and not torch.equal(lm_head, wte):
        raise CheckpointError("this checkpoint's lm_head.weight differs from its token embedding wte; GPT ties the "
                              "two, so it cannot load it")
    state = from_hf_state_dict(hf_state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            "the checkpoint's tensors do not match the model"
            + (f"; missing: {missing[:5]}{' …' if len(missing) > 5 else ''}" if missing else "")
            + (f"; unexpected: {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}" if unexpected else "")
            + ". Is config.json the one saved with these weights?"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{name} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[name].shape)} in the model"
                + (" (a Conv1D weight not transposed?)" if is_conv1d_weight(name) else "")
            )
    model.load_state_dict(state, strict=True)
    return model


# --------------------------------------------------------------------------- config


SIZE_FIELDS = ("n_positions", "vocab_size", "n_layer", "n_head", "n_embd")


def config_from_hf(hf_config: dict, source: str = CONFIG_FILE, **overrides) -> GPTConfig:
    """A :class:`GPTConfig` from the fields of a Hugging Face GPT-2 ``config.json``
    (``source`` names the file in error messages)."""
    if not isinstance(hf_config, dict):
        raise CheckpointError(f"{source} holds a JSON {type(hf_config).__name__}, not an object of GPT-2 settings")
    model_type = hf_config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise CheckpointError(f"{source} describes a {model_type!r} model; only GPT-2 ('gpt2') "
                              "checkpoints can be loaded")
    needs = {  # settings GPT-2 never changed, which our model hard-codes
        "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
        "layer_norm_epsilon": (1e-5,),
        "scale_attn_weights": (True,),
        "scale_attn_by_inverse_layer_idx": (False,),
        "add_cross_attention": (False,),
        "tie_word_embeddings": (True,),
    }
    for key, allowed in needs.items():
        if key in hf_config and hf_config[key] not in allowed:
            raise CheckpointError(f"{source} has {key}={hf_config[key]!r}; this GPT supports only "
                                  f"{' or '.join(map(repr, allowed))}")
    for key in SIZE_FIELDS:
        if key not in hf_config:
            raise CheckpointError(f"{source} has no {key!r}; is it a GPT-2 config?")
        value = hf_config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CheckpointError(f"{source} has {key}={value!r}; it should be a positive whole number")
    if hf_config["n_embd"] % hf_config["n_head"]:
        raise CheckpointError(
            f"{source} has n_embd={hf_config['n_embd']} and n_head={hf_config['n_head']}, but n_embd must be a "
            "multiple of n_head; the file is damaged or was not written for GPT-2"
        )
    n_inner = hf_config.get("n_inner")
    if n_inner is not None and n_inner != 4 * hf_config["n_embd"]:
        raise CheckpointError(f"{source} has n_inner={n_inner!r}; this GPT's MLP is 4 * n_embd = "
                              f"{4 * hf_config['n_embd']} wide")
    fields = dict(
        block_size=hf_config["n_positions"],
        vocab_size=hf_config["vocab_size"],
        n_layer=hf_config["n_layer"],
        n_head=hf_config["n_head"],
        n_embd=hf_config["n_embd"],
    )
    return GPTConfig(**{"dropout": 0.0, "bias": True, **fields, **overrides})


def config_to_hf(config: GPTConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The ``config.json`` of ``transformers.GPT2Config`` for ``config``."""
    if not config.bias:
        raise ValueError("Hugging Face's GPT-2 always has biases, but this model was built with bias=False, so it "
                         "cannot be saved in that format")
    if not config.mlp:
        raise ValueError("Hugging Face's GPT-2 has an MLP in every block, but this model was built with mlp=False "
                         "(attention only), so it cannot be saved in that format")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",  # transformers' name for the tanh GELU
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        # <|endoftext|>, when the vocabulary is GPT-2's (or nanoGPT's padded 50304); none for other tokenizers
        "bos_token_id": END_OF_TEXT_ID if config.vocab_size > END_OF_TEXT_ID else None,
        "eos_token_id": END_OF_TEXT_ID if config.vocab_size > END_OF_TEXT_ID else None,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


# --------------------------------------------------------------------------- files


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / WEIGHTS_FILE).is_file():
        return _read_safetensors(directory / WEIGHTS_FILE)
    index_path = directory / WEIGHTS_INDEX_FILE
    if index_path.is_file():
        index = _read_json(index_path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index_path} has no 'weight_map' of tensor names to shard files; is it a "
                                  "safetensors index?")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not (directory / shard).is_file():
                raise CheckpointError(f"{index_path} lists the shard {shard}, which is not in {directory}; "
                                      "download it again")
        return {k: v for shard in shards for k, v in _read_safetensors(directory / shard).items()}
    if any((directory / name).exists() for name in ("pytorch_model.bin", "model.pt", "model.ckpt")):
        raise CheckpointError(
            f"{directory} has only pickle weights (e.g. pytorch_model.bin); minigpt2 reads safetensors only, since a "
            "pickle can run code when loaded. Convert it once where you trust it: "
            "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
        )
    raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}; a Hugging Face GPT-2 directory holds {CONFIG_FILE} "
                          f"and {WEIGHTS_FILE}")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for files that are not safetensors
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); it is truncated, damaged "
                              "or another format") from None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not text (not UTF-8), so it is not a JSON file") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None


def load_dir(directory: str | os.PathLike, **overrides) -> GPT:
    """A GPT from a local Hugging Face GPT-2 directory."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_FILE}; a Hugging Face GPT-2 directory holds {CONFIG_FILE} "
                              f"and {WEIGHTS_FILE}")
    config = config_from_hf(_read_json(config_path), source=str(config_path), **overrides)
    model = GPT(config)
    return load_state_dict_into(model, read_weights(directory))


def download(name: str) -> Path:
    """The local directory of hub checkpoint ``name`` ("gpt2" … "gpt2-xl"), downloaded if needed."""
    if offline():
        raise CheckpointError(
            f"cannot download {name!r}: downloads are off (MINIGPT2_OFFLINE=1). Unset MINIGPT2_OFFLINE when online, "
            f"or pass a local directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            "downloading from the hub needs the huggingface_hub package: pip install huggingface_hub"
        ) from None
    try:
        return Path(snapshot_download(f"{HUB_ORGANISATION}/{name}", allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as err:  # no network, a proxy, the hub down: many kinds
        raise CheckpointError(
            f"could not download {name!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
            f"Check your connection, or pass a local directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        ) from None


def load_pretrained(name_or_dir: str | os.PathLike, **overrides) -> GPT:
    """:meth:`GPT.from_pretrained`: a local directory, else a hub name."""
    path = Path(name_or_dir)
    if path.is_dir():
        return load_dir(path, **overrides)
    if str(name_or_dir) in HUB_NAMES:
        return load_dir(download(str(name_or_dir)), **overrides)
    raise CheckpointError(
        f"{str(name_or_dir)!r} is neither a directory nor a GPT-2 hub name ({', '.join(HUB_NAMES)}); "
        f"a local checkpoint is a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
    )


def save_pretrained(model: GPT, directory: str | os.PathLike) -> None:
    """Write ``model`` to ``directory`` as Hugging Face's GPT-2 format."""
    from safetensors.torch import save_file

    dtype = next(model.parameters()).dtype
    hf_config = config_to_hf(model.config, dtype)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    save_file(to_hf_state_dict(model), directory / WEIGHTS_FILE, metadata={"format": "pt"})


__all__ = [
    "CheckpointError",
    "HUB_NAMES",
    "from_hf_state_dict",
    "to_hf_state_dict",
    "load_state_dict_into",
    "config_from_hf",
    "config_to_hf",
    "load_pretrained",
    "save_pretrained",
]
