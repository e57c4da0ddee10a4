"""Fine-tuning (lesson 11): a pre-trained GPT taught new text, a classifier, an instruction follower.

Modules, one idea each: ``data`` (the SMS Spam Collection and the instruction records, checked
and split), ``loop`` (:func:`fit`, the one training loop), ``base`` (the stand-in base model,
and continued pre-training), ``classify`` (a head at the last real token), ``instruct`` (the Alpaca
prompt, the masked-target collate, batched answers, ROUGE-L), ``vocab`` (GPT-2's tokenizer with
the vocabulary cut to a corpus's tokens, for a small model pre-trained from scratch), ``cli``
(``minigpt2 finetune`` and ``minigpt2 chat``). LoRA is :mod:`minigpt2.lora`.
"""

from minigpt2.finetune.base import continue_pretraining, train_small_base
from minigpt2.finetune.classify import (
    ClassBatch,
    ClassEval,
    GPTClassifier,
    batches_of,
    collate_classification,
    evaluate_classifier,
    pool_last,
    set_trainable,
)
from minigpt2.finetune.data import Splits, instruction_splits, read_instructions, read_sms_spam, sms_spam_splits
from minigpt2.finetune.instruct import (
    IGNORE,
    InstructBatch,
    collate_instructions,
    format_prompt,
    generate_responses,
    instruction_batches,
    response_loss,
    rouge_l,
)
from minigpt2.finetune.loop import fit
from minigpt2.finetune.vocab import CompactVocab

__all__ = [
    "ClassBatch", "ClassEval", "CompactVocab", "GPTClassifier", "IGNORE", "InstructBatch", "Splits", "batches_of",
    "collate_classification", "collate_instructions", "continue_pretraining", "evaluate_classifier",
    "fit", "format_prompt", "generate_responses", "instruction_batches", "instruction_splits",
    "pool_last", "read_instructions", "read_sms_spam", "response_loss", "rouge_l", "set_trainable",
    "sms_spam_splits", "train_small_base",
]
