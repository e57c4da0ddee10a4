"""Training GPT-2 (lesson 08): the loop, its optimizer and schedule, checkpoints, MFU, several processes.

    from minigpt2.train import preset, train
    result = train(preset("shakespeare-char", max_iters=500))
    result.history.curve("val_loss")

Modules, one idea each: ``config`` (settings and presets), ``optim`` (AdamW groups,
warm-up + cosine), ``dataset`` (tokens and per-step batches), ``checkpoint``
(safetensors, atomic, checksummed, no pickle; one run per folder), ``mfu`` (FLOPs per
token, the device's peak), ``distributed`` (torchrun / DDP), ``loop`` (:func:`train`),
``progress`` (a bar on a terminal, lines elsewhere), ``sample`` (text from a
checkpoint), ``cli`` (``minigpt2 train`` / ``minigpt2 sample``).
"""

from minigpt2.train.checkpoint import CheckpointError, OutDirError, load_checkpoint, save_checkpoint
from minigpt2.train.cli import main, sample_main
from minigpt2.train.config import PRESETS, TrainConfig, preset
from minigpt2.train.loop import History, TrainingDiverged, TrainResult, train
from minigpt2.train.optim import WarmupCosine, lr_at, make_optimizer, param_groups
from minigpt2.train.sample import generate_text, load_model

__all__ = [
    "CheckpointError",
    "History",
    "OutDirError",
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "WarmupCosine",
    "generate_text",
    "load_checkpoint",
    "load_model",
    "lr_at",
    "main",
    "make_optimizer",
    "param_groups",
    "preset",
    "sample_main",
    "save_checkpoint",
    "train",
]
