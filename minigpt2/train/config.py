"""The settings of a training run, and the presets ``minigpt2 train --preset NAME`` starts from.

Every field is also a command-line flag: ``block_size`` is ``--block-size``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from minigpt2.model import GPTConfig

TOKENIZERS = ("char", "gpt2")
DTYPES = ("auto", "float32", "bfloat16")
MODEL_FIELDS = tuple(f.name for f in fields(GPTConfig) if f.name != "vocab_size")  # the data decides vocab_size


@dataclass
class TrainConfig:
    # data
    dataset: str = "tinyshakespeare"
    tokenizer: str = "char"  # "char": one id per character; "gpt2": GPT-2's BPE
    val_fraction: float = 0.1
    # model: GPTConfig's fields (MODEL_FIELDS), with a small model's defaults; GPTConfig checks them
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    mlp: bool = True
    vocab_multiple: int = 1  # round vocab_size up to a multiple of this (64 makes GPU matmuls faster)
    # optimization
    batch_size: int = 12  # windows per micro-batch, per process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_iters: int = 2000  # optimizer steps; the schedule ends here
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    # evaluation and logging
    eval_interval: int = 250
    eval_iters: int = 20  # validation batches per evaluation
    log_interval: int = 10
    # system
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # auto: bf16 autocast where it is faster (GPUs with bf16, CPUs with AMX when timed faster), else float32
    dtype: str = "auto"
    compile: bool = False  # torch.compile the model (worth it on GPUs for long runs)
    seed: int = 1337
    out_dir: str = "checkpoints/run"
    checkpoint_interval: int = 0  # steps between checkpoints; 0: at evaluations and at the end
    progress: bool = True  # a tqdm progress bar

    def validate(self) -> "TrainConfig":
        """Raise ValueError with what to change when a setting cannot work."""
        positive = ("batch_size", "grad_accum", "max_iters", "eval_iters", "log_interval", "eval_interval",
                    "vocab_multiple")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{flag(name)} should be a positive whole number, got {value!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"{flag('tokenizer')} should be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"{flag('dtype')} should be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        try:
            self.model_config(vocab_size=1)  # the model's shape, checked by GPTConfig
        except TypeError as err:
            raise ValueError(str(err)) from None
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"{flag('val_fraction')} should be between 0 and 1, got {self.val_fraction}")
        if not 0.0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < {flag('min_lr')} <= {flag('lr')}, got {self.min_lr} and {self.lr}")
        if not 0 <= self.warmup_iters <= self.max_iters:
            raise ValueError(f"{flag('warmup_iters')} ({self.warmup_iters}) should be between 0 and "
                             f"{flag('max_iters')} ({self.max_iters})")
        if self.checkpoint_interval < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("--checkpoint-interval, --weight-decay and --grad-clip should not be negative")
        return self

    def model_config(self, vocab_size: int) -> GPTConfig:
        """The model for a tokenizer of ``vocab_size`` ids, rounded up to a multiple of ``vocab_multiple``."""
        padded = (vocab_size + self.vocab_multiple - 1) // self.vocab_multiple * self.vocab_multiple
        return GPTConfig(vocab_size=padded, **{name: getattr(self, name) for name in MODEL_FIELDS})

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step in one process (times the number of processes under torchrun)."""
        return self.batch_size * self.block_size * self.grad_accum

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# What each setting does, for ``minigpt2 train --help``.
HELP: dict[str, str] = {
    "dataset": "the corpus to train on, by name",
    "tokenizer": "char: one id per character; gpt2: GPT-2's BPE (50,257 ids)",
    "val_fraction": "the share of the corpus, at its end, held out for validation",
    "n_layer": "transformer blocks",
    "n_head": "attention heads per block (must divide --n-embd)",
    "n_embd": "width of the residual stream",
    "block_size": "context length: tokens the model sees at once",
    "dropout": "dropout probability during training (0 turns it off)",
    "bias": "biases in the Linear layers and LayerNorms, as GPT-2 has",
    "mlp": "an MLP in every block, as GPT-2 has (--no-mlp: an attention-only model)",
    "vocab_multiple": "round the vocabulary up to a multiple of this (64 makes GPU matmuls faster)",
    "batch_size": "windows per micro-batch, per process",
    "grad_accum": "micro-batches added up per optimizer step",
    "max_iters": "optimizer steps; the learning-rate schedule ends here",
    "lr": "peak learning rate, reached after the warm-up",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warm-up from 0 to --lr",
    "weight_decay": "AdamW weight decay of the matrices (vectors are not decayed)",
    "beta1": "AdamW's beta1",
    "beta2": "AdamW's beta2",
    "grad_clip": "clip the gradients' global norm to this (0 turns clipping off)",
    "eval_interval": "steps between evaluations on the validation split (each writes a checkpoint)",
    "eval_iters": "validation batches per evaluation",
    "log_interval": "steps between logged training losses",
    "device": "auto, cpu, cuda, cuda:N or mps (auto: a GPU if there is one)",
    "dtype": ("auto, float32 or bfloat16 (auto: bfloat16 on GPUs that have it and on CPUs where a timed pass shows it "
              "faster, else float32)"),
    "compile": "torch.compile the model (worth it on GPUs for long runs)",
    "seed": "seed of the initial weights, the batches and dropout",
    "out_dir": "folder of the checkpoint (ckpt.safetensors); one run at a time uses it",
    "checkpoint_interval": "steps between extra checkpoints (0: at evaluations and at the end only)",
    "progress": "show progress: a bar on a terminal, a line every tenth of the run otherwise",
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


PRESETS: dict[str, TrainConfig] = {
    # Character-level Tiny Shakespeare on a laptop CPU: under 5 minutes on 2 cores, validation
    # loss about 1.74 (benchmarks/RESULTS.md): within a time budget, many small steps (batch 16)
    # at a high learning rate (2,000 steps of batch 32 would take about 10 minutes at this speed).
    "shakespeare-char": TrainConfig(
        tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
        batch_size=16, max_iters=1700, lr=4e-3, min_lr=4e-4, warmup_iters=100,
        eval_interval=200, eval_iters=20, out_dir="checkpoints/shakespeare-char",
    ),
    # The same corpus on a CPU with bf16 matrix instructions (AMX): a 4 × 256 model, context 128, that
    # bf16 autocast (1.4-1.6x float32 at this shape there; --dtype auto picks it) makes affordable in about
    # 5 minutes on 2 cores, aiming at validation loss <= 1.60 (benchmarks/RESULTS.md: what was measured,
    # and what was not). Without bf16 instructions auto trains it in float32, slower: use shakespeare-char.
    "shakespeare-char-bf16": TrainConfig(
        tokenizer="char", n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.0,
        batch_size=16, max_iters=1500, lr=2e-3, min_lr=2e-4, warmup_iters=100,
        eval_interval=250, eval_iters=20, out_dir="checkpoints/shakespeare-char-bf16",
    ),
    # GPT-2's tokenizer on one GPU: nanoGPT's 6-layer Shakespeare model (30M parameters,
    # most of them the 50k-token embedding), bf16 and torch.compile.
    "shakespeare-gpt2": TrainConfig(
        tokenizer="gpt2", n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2,
        vocab_multiple=64, batch_size=32, max_iters=2000, lr=6e-4, min_lr=6e-5, warmup_iters=100,
        beta2=0.95, eval_interval=250, eval_iters=50, device="auto", compile=True,
        out_dir="checkpoints/shakespeare-gpt2",
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; the presets are: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


__all__ = ["TrainConfig", "PRESETS", "preset", "TOKENIZERS", "DTYPES", "HELP", "flag"]
