"""Byte-level BPE, as GPT-2 tokenizes (lesson 01).

    from minigpt2.tokenizer import BPETokenizer, gpt2_tokenizer
    tok = BPETokenizer.train(text, vocab_size=512)
    gpt2 = gpt2_tokenizer()                 # tiktoken's GPT-2 ids, id for id
    gpt2.decode(gpt2.encode("Hello world")) # 'Hello world'

Modules: ``pretokenize`` (GPT-2's regex pre-split, with ``unicode16``'s letter and number
classes, tiktoken's), ``simple`` (BPE as the lesson builds it), ``train`` (the fast trainer),
``bpe`` (the tokenizer), ``gpt2`` (GPT-2's merges recovered from its ranks file, and
tiktoken's encoding as the reference). Importing it does not import torch.
"""

from minigpt2.tokenizer.bpe import BPETokenizer, TokenizerFileError, UnknownTokenError
from minigpt2.tokenizer.gpt2 import END_OF_TEXT, END_OF_TEXT_ID, gpt2_tokenizer, recover_merges, tiktoken_gpt2
from minigpt2.tokenizer.pretokenize import GPT2_SPLIT_PATTERN, split_text

__all__ = [
    "BPETokenizer",
    "END_OF_TEXT",
    "END_OF_TEXT_ID",
    "GPT2_SPLIT_PATTERN",
    "TokenizerFileError",
    "UnknownTokenError",
    "gpt2_tokenizer",
    "recover_merges",
    "split_text",
    "tiktoken_gpt2",
]
