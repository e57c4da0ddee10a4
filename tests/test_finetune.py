"""minigpt2.finetune: the data splits, the classifier read at the last real token, the masked
instruction collate; checked against transformers where it has the same thing."""

import json
import math
import zipfile

import pytest
import torch
import torch.nn.functional as F

from minigpt2 import GPT, GPTConfig, datafiles
from minigpt2.datafiles import DataFileError
from minigpt2.finetune.base import continue_pretraining
from minigpt2.finetune.classify import (
    GPTClassifier,
    batches_of,
    collate_classification,
    evaluate_classifier,
    pool_last,
    set_trainable,
)
from minigpt2.finetune.data import (
    SMS_LABELS,
    check_record,
    instruction_splits,
    read_instructions,
    read_sms_spam,
    sms_spam_splits,
)
from minigpt2.finetune.instruct import (
    IGNORE,
    collate_instructions,
    format_prompt,
    generate_responses,
    response_loss,
    rouge_l,
)
from minigpt2.finetune.vocab import CompactVocab
from minigpt2.tokenizer import END_OF_TEXT_ID, gpt2_tokenizer

transformers = pytest.importorskip("transformers")

TINY = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=64)  # GPT-2's vocabulary


@pytest.fixture(scope="module")
def enc():
    return gpt2_tokenizer()


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(TINY).eval()


# --------------------------------------------------------------------------- data


def test_sms_spam_is_read_whole_and_split_balanced_and_seeded():
    messages = read_sms_spam()
    assert len(messages) == 5574 and sum(label == "spam" for _, label in messages) == 747
    splits = sms_spam_splits(seed=123)
    assert splits.sizes() == (914, 130, 262)
    everything = splits.train + splits.val + splits.test
    assert len(set(everything)) == len(everything) == 2 * 653  # repeats dropped, then 653 of each label
    assert sum(label == "spam" for _, label in everything) == sum(label == "ham" for _, label in everything) == 653
    assert sms_spam_splits(seed=123) == splits and sms_spam_splits(seed=7) != splits
    assert not set(splits.train) & set(splits.test)


def test_the_zip_is_checked_by_the_file_inside_it(tmp_path):
    spec = datafiles.KNOWN_FILES["sms-spam"]
    inside = datafiles.read_member(datafiles.locate("sms-spam"), spec)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w", compression=zipfile.ZIP_STORED) as z:  # other bytes, same messages
        z.writestr("SMSSpamCollection", inside)
    assert datafiles.sha256_of(other_zip) != datafiles.sha256_of(datafiles.locate("sms-spam"))
    assert len(read_sms_spam(other_zip)) == 5574
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("SMSSpamCollection", inside[:-10])
    with pytest.raises(DataFileError, match="SMSSpamCollection inside sms_spam_collection.zip is"):
        read_sms_spam(bad_zip)
    not_zip = tmp_path / "plain.zip"
    not_zip.write_bytes(inside)
    with pytest.raises(DataFileError, match="should be a zip holding SMSSpamCollection"):
        read_sms_spam(not_zip)


def test_instructions_split_85_5_10_and_bad_records_are_named(tmp_path):
    assert len(read_instructions()) == 1100
    assert instruction_splits(seed=123).sizes() == (935, 55, 110)
    assert check_record({"instruction": "Say hi.", "output": "Hi."}, 0)["input"] == ""
    with pytest.raises(ValueError, match="record 3 has no 'output'"):
        check_record({"instruction": "Say hi.", "input": ""}, 3)
    with pytest.raises(ValueError, match="record 4 has an empty output"):
        check_record({"instruction": "Say hi.", "input": "", "output": "  "}, 4)
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(ValueError, match="record 1 has no 'output'"):
        read_instructions(path)


# --------------------------------------------------------------------------- the classifier


def test_collate_pads_on_the_right_and_counts_the_truncated():
    batch = collate_classification([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6]], [0, 1, 1], pad_id=99, max_length=4)
    assert batch.ids.tolist() == [[5, 6, 7, 99], [8, 99, 99, 99], [1, 2, 3, 4]]
    assert batch.lengths.tolist() == [3, 1, 4] and batch.labels.tolist() == [0, 1, 1]
    assert batch.truncated == 1
    with pytest.raises(ValueError, match="has no tokens"):
        collate_classification([[1], []], [0, 1], pad_id=0, max_length=4)


def test_an_end_token_closes_every_text_and_is_kept_when_a_text_is_cut():
    batch = collate_classification([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6]], [0, 1, 1], pad_id=99, max_length=4, end_id=50)
    assert batch.ids.tolist() == [[5, 6, 7, 50], [8, 50, 99, 99], [1, 2, 3, 50]]
    assert batch.lengths.tolist() == [4, 2, 4] and batch.truncated == 1
    with pytest.raises(ValueError, match="at least 2 with an end token"):
        collate_classification([[1]], [0], pad_id=0, max_length=1, end_id=50)


def test_a_compact_vocabulary_renumbers_the_corpus_tokens_and_maps_the_rest_to_one_id(enc):
    vocab = CompactVocab(enc, ["Free entry! Call now", "ok see you"])
    corpus = enc.encode_ordinary("Free entry! Call now") + enc.encode_ordinary("ok see you")
    used = sorted(set(corpus) | {END_OF_TEXT_ID})
    assert vocab.gpt2_ids == used and len(vocab) == len(used) + 1 and vocab.gpt2_ids[vocab.eot] == END_OF_TEXT_ID
    ids = vocab.encode_ordinary("ok Call now")
    assert [vocab.gpt2_ids[i] for i in ids] == enc.encode_ordinary("ok Call now")
    assert vocab.encode_ordinary("zebra") == [vocab.unknown] * len(enc.encode_ordinary("zebra"))
    assert vocab.unknown == len(used)


def test_pool_last_reads_each_rows_last_real_token():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    torch.testing.assert_close(pool_last(hidden, torch.tensor([2, 4])), torch.stack([hidden[0, 1], hidden[1, 3]]))
    with pytest.raises(ValueError, match="lengths should be between 1 and T=4"):
        pool_last(hidden, torch.tensor([0, 4]))


def test_padding_changes_nothing_and_matches_transformers(tmp_path, enc):
    clf = GPTClassifier(tiny_gpt(), SMS_LABELS).eval()
    texts = ["Free entry! Call now", "ok see you at 5", "hi"]
    batch = collate_classification([enc.encode(t) for t in texts], [1, 0, 0], pad_id=END_OF_TEXT_ID, max_length=64)
    with torch.no_grad():
        padded = clf(batch.ids, batch.lengths)  # (3, 2)
        alone = torch.cat([clf(torch.tensor([enc.encode(t)])) for t in texts])  # each text unpadded
        at_the_end = clf(batch.ids)  # reading position T - 1 reads padding for the shorter texts
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(at_the_end[1:], alone[1:], atol=1e-4)
    clf.save_pretrained(tmp_path / "clf")
    theirs = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
    with torch.no_grad():
        ref = theirs(input_ids=batch.ids).logits  # finds the last token that is not pad_token_id
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=1e-5)
    assert theirs.config.id2label == {0: "ham", 1: "spam"}


def test_labels_the_classifier_was_not_built_for():
    clf = GPTClassifier(tiny_gpt(), SMS_LABELS)
    assert clf.label_ids(["spam", "ham", 1]) == [1, 0, 1]
    with pytest.raises(ValueError, match="'maybe' is not one this classifier was built for: ham, spam"):
        clf.label_ids(["maybe"])
    with pytest.raises(ValueError, match="indices 0..1"):
        clf.label_ids([2])


def test_what_trains():
    clf = GPTClassifier(tiny_gpt(), SMS_LABELS)
    C = TINY.n_embd
    assert set_trainable(clf, "head") == 2 * C
    block = sum(p.numel() for p in clf.body.transformer.h[-1].parameters())
    assert set_trainable(clf, "last", n_blocks=1) == 2 * C + block + 2 * C  # + ln_f's weight and bias
    assert set_trainable(clf, "all") == sum(p.numel() for p in clf.parameters())
    with pytest.raises(ValueError, match="one of head, last, all"):
        set_trainable(clf, "body")
    with pytest.raises(ValueError, match="between 1 and the model's 2 blocks"):
        set_trainable(clf, "last", n_blocks=3)


def test_the_original_model_is_left_alone():
    gpt = tiny_gpt()
    GPTClassifier(gpt, SMS_LABELS)
    assert isinstance(gpt.lm_head, torch.nn.Linear) and gpt.lm_head.weight is gpt.transformer.wte.weight


def test_evaluation_counts_a_known_confusion_matrix(enc):
    clf = GPTClassifier(tiny_gpt(), SMS_LABELS)
    examples = [("a", "ham"), ("b", "spam"), ("c", "spam"), ("d", "ham"), ("e", "spam")]
    batches = batches_of(clf, enc, examples, batch_size=2, max_length=8)

    predictions = iter([[0, 0], [1, 1], [1]])  # ham, ham | spam, spam | spam

    def fixed(idx, lengths=None):
        p = torch.tensor(next(predictions))
        return F.one_hot(p, 2).float() * 10

    clf.forward = fixed
    result = evaluate_classifier(clf, batches)
    # true ham: predicted ham once (a), spam once (d); true spam: ham once (b), spam twice (c, e)
    assert result.confusion.tolist() == [[1, 1], [1, 2]]
    assert result.accuracy == pytest.approx(3 / 5)


# --------------------------------------------------------------------------- instruction tuning


def test_the_alpaca_prompt():
    assert format_prompt({"instruction": "Add 2 and 3.", "input": ""}).endswith("### Instruction:\nAdd 2 and "
        "3.\n\n### Response:\n")
    assert "### Input:\nfreind" in format_prompt({"instruction": "Fix the spelling.", "input": "freind"})


def test_collate_masks_the_prompt_and_the_padding_and_keeps_the_end():
    batch = collate_instructions([([10, 11, 12], [20, 21]), ([13], [22])], pad_id=0, end_id=99)
    assert batch.inputs.tolist() == [[10, 11, 12, 20, 21], [13, 22, 0, 0, 0]]
    assert batch.targets.tolist() == [[IGNORE, IGNORE, 20, 21, 99], [22, 99, IGNORE, IGNORE, IGNORE]]
    unmasked = collate_instructions([([10, 11, 12], [20, 21])], pad_id=0, end_id=99, mask_prompt=False)
    assert unmasked.targets.tolist() == [[11, 12, 20, 21, 99]]
    cut = collate_instructions([([10, 11, 12], [20, 21, 22, 23])], end_id=99, max_length=4)
    assert cut.inputs.tolist() == [[10, 11, 12, 20]] and cut.targets.tolist() == [[IGNORE, IGNORE, 20, 21]]
    assert cut.truncated == 1
    with pytest.raises(ValueError, match="empty response"):
        collate_instructions([([10], [])])


def test_masked_loss_equals_transformers_loss_with_minus_100_labels(tmp_path, enc):
    model = tiny_gpt()
    records = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
               {"instruction": "Fix the spelling.", "input": "freind", "output": "friend"}]
    examples = [(enc.encode(format_prompt(r)), enc.encode(r["output"])) for r in records]
    batch = collate_instructions(examples)
    model.save_pretrained(tmp_path / "lm")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "lm").eval()
    labels = torch.full((2, batch.inputs.size(1) + 1), -100)  # transformers shifts the labels itself
    for row, (prompt, response) in enumerate(examples):
        labels[row, len(prompt): len(prompt) + len(response) + 1] = torch.tensor([*response, END_OF_TEXT_ID])
    inputs = torch.cat([batch.inputs, torch.full((2, 1), END_OF_TEXT_ID)], dim=1)
    with torch.no_grad():
        ours = model(batch.inputs, batch.targets)[1]
        ref = theirs(input_ids=inputs, labels=labels).loss
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert response_loss(model, [batch]) == pytest.approx(ours.item(), rel=1e-5)


def test_rouge_l_comes_from_rouge_score():
    assert rouge_l(["the cat sat"], ["the cat sat"]) == pytest.approx(1.0)
    assert rouge_l(["the cat"], ["the cat sat"]) == pytest.approx(0.8)  # P = 1, R = 2/3
    with pytest.raises(ValueError, match="as many predictions as references"):
        rouge_l(["a"], [])


def test_generated_responses_are_each_prompts_greedy_answer(enc):
    model = tiny_gpt()
    records = [{"instruction": "Name a colour.", "input": ""}, {"instruction": "Say hi.", "input": "to Bob"}]
    answers = generate_responses(model, enc, records, max_new_tokens=5, batch_size=2)
    for record, answer in zip(records, answers):
        prompt = torch.tensor([enc.encode(format_prompt(record))])
        alone = model.generate(prompt, 5, temperature=0.0)[0, prompt.size(1):].tolist()
        alone = alone[: alone.index(END_OF_TEXT_ID)] if END_OF_TEXT_ID in alone else alone
        assert answer == enc.decode(alone).strip()


def test_min_new_tokens_keeps_the_end_token_from_coming_first(enc):
    model = tiny_gpt()
    with torch.no_grad():  # every hidden state is all ones, and <|endoftext|> is the all-ones row: always first
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight[END_OF_TEXT_ID] = 1.0
    records = [{"instruction": "Name a colour.", "input": ""}, {"instruction": "Say hi.", "input": ""}]
    assert generate_responses(model, enc, records, max_new_tokens=3) == ["", ""]
    answers = generate_responses(model, enc, records, max_new_tokens=3, min_new_tokens=1)
    assert all(answers)
    with pytest.raises(ValueError, match="min_new_tokens should be 0 or 1"):
        generate_responses(model, enc, records, min_new_tokens=2)


# --------------------------------------------------------------------------- continued pre-training


def test_continued_pretraining_lowers_the_loss_on_the_new_text(enc):
    model = tiny_gpt()
    text = " ".join(t for t, _ in sms_spam_splits().train[:200])
    tokens = torch.tensor(enc.encode_ordinary(text))
    history = continue_pretraining(model, tokens[:-2000], tokens[-2000:], steps=30, batch_size=4, block_size=32,
                                   lr=3e-3, eval_every=15)
    assert history[29]["val_loss"] < history[14]["val_loss"] < math.log(TINY.vocab_size)  # at the start: about ln V
