"""
Tests for conditioners.py: tokenizer vs sentencepiece, chroma vs librosa, hand-derived
normalisation and melody frames, null/CFG semantics, bad inputs (the T5 encoder: test_t5.py). CPU,
a few seconds.
Run: python -m pytest -q tests/test_conditioners.py
"""
import math
import warnings

import numpy as np
import pytest
import sentencepiece as spm
import soundfile as sf
import torch

from conditioners import (UNK, MelodyConditioner, TextConditioner, Tokenizer, cfg_dropout,
                          chroma_filterbank, chromagram, load_melody, normalize_text,
                          null_conditions, word_dropout)
from t5 import T5_PRESETS, T5Config

CAPTIONS = ["A dog is barking at the park.", "Birds are chirping while cars pass by!",
            "Rain falls on a tin roof.",
            "An upbeat pop song with drums, guitars and a walking bass line.",
            "Calm piano music with soft strings.", "A crowd cheers and claps in a stadium.",
            "Thunder rumbles over heavy rain.", "A car engine revs up."]
# of different lengths, so the batch is padded
PROMPTS = ["dog bark park", "calm piano music with strings and thunder over the stadium crowd",
           "rain"]


def tone(freq, seconds=1.0, sr=32000):
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * sr)) / sr)


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tok") / "spiece.model")
    Tokenizer.train([normalize_text(c) for c in CAPTIONS] + CAPTIONS, 100, path)
    return path


# ------------------------------------------------------------ tokenizer and normalisation


def test_tokenizer_matches_sentencepiece(tok_path):
    """Same ids as sentencepiece itself, then eos (1), padded with 0 to the longest; decode undoes
    encode."""
    tok, sp = Tokenizer(tok_path), spm.SentencePieceProcessor(model_file=tok_path)
    assert (tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2)
    ids, mask = tok.encode(PROMPTS)
    for row, m, text in zip(ids, mask, PROMPTS):
        expected = sp.encode(text) + [1]
        assert row[m].tolist() == expected and row[~m].eq(0).all()
        assert m.sum() == len(expected)
    texts = [normalize_text(c) for c in CAPTIONS]
    assert tok.decode(tok.encode(texts)[0]) == texts  # round trip of normalised text
    ids, mask = tok.encode([""])  # the null condition's text: eos only
    assert ids.tolist() == [[1]]


def test_tokenizer_truncates_and_reports_unknown_words(tok_path):
    tok = Tokenizer(tok_path, max_length=6)
    with pytest.warns(UserWarning, match="truncated to max_length=6"):
        ids, mask = tok.encode(["dog bark park rain fall tin roof thunder rumble"])
    assert ids.shape == (1, 6) and ids[0, -1] == tok.eos_id  # T5-style: first 5 pieces + eos
    # '{', '}' never seen in training
    with pytest.warns(UserWarning, match=r"unknown words \['zyx\{\}'\]"):
        ids, _ = Tokenizer(tok_path).encode(["dog zyx{} bark"])
    assert tok.unk_id in ids[0].tolist()  # kept as <unk>, not dropped
    with pytest.raises(FileNotFoundError):
        Tokenizer(tok_path + ".missing")
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        Tokenizer(__file__)


@pytest.mark.parametrize("text, expected", [
    # a, is, at, the: stop words; barking -> bark (-ing); "." dropped
    ("A dog is barking at the park.", "dog bark park"),
    # are, while, by: stop words; birds -> bird, cars -> car (-s); pass kept (-ss); "!" dropped
    ("Birds are chirping while cars pass by!", "bird chirp car pass"),
    # the, 's possessive, isn't (contraction) dropped; whistling -> whistl + e;
    # running -> runn -> run
    ("The dog's owner isn't whistling, running", "dog owner whistle run"),
    # digits kept; "bass-line" splits at the hyphen; glass (-ss) and boxes -> box (-xes);
    # BPM lower-cased
    ("Jazz with a bass-line, 120 BPM: glass boxes", "jazz bass line 120 bpm glass box"),
])
def test_normalize_text_by_hand(text, expected):
    assert normalize_text(text) == expected


# ------------------------------------------------------------ text conditioner


def test_text_conditioner(tok_path):
    """AudioCraft's T5Conditioner semantics: output_proj with bias, padded and null (None)
    positions zeroed, frozen T5 kept in eval mode; empty prompts refused."""
    torch.manual_seed(0)
    tok = Tokenizer(tok_path)
    cond = TextConditioner(T5_PRESETS["tiny"], tok, dim=16, normalize=True)
    # a frozen T5 is a submodule too: saved, not trained
    t5_keys = [f"t5.{k}" for k in cond.t5.state_dict()]
    assert sorted(cond.state_dict()) == sorted(["output_proj.bias", "output_proj.weight", *t5_keys])
    embeds, mask = cond(["A dog is barking at the park.", None,
                         "Calm piano music with soft strings."])
    ids, ref_mask = tok.encode(["dog bark park", "", "calm piano music soft string"])
    assert embeds.shape == (3, ids.shape[1], 16) and mask[1].sum() == 0
    assert torch.equal(mask[[0, 2]], ref_mask[[0, 2]])
    assert (embeds[~mask] == 0).all() and embeds[mask].abs().min() > 0
    embeds.sum().backward()  # gradients reach output_proj only
    assert cond.output_proj.weight.grad is not None and cond.t5.shared.weight.grad is None
    config = T5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    trainable = TextConditioner(config, tok, dim=16, finetune=True)
    bias_key = "t5.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    assert bias_key in trainable.state_dict()
    cond.train()  # training the LM: a frozen T5 stays in eval mode (no dropout)
    assert cond.training and not cond.t5.training
    for bad in ["", "   "]:
        with pytest.raises(ValueError, match="empty prompt"):
            cond([bad])
    with pytest.raises(ValueError, match="stop words"):
        cond(["it is the"])
    for bad in ["!!!", "?! ...", "\U0001f436 \U0001f3b5"]:  # punctuation, emoji: no words at all
        with pytest.raises(ValueError, match="has no words"):
            cond([bad])
    small = T5Config(vocab_size=10, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):  # a tokenizer and T5 that do not fit
        TextConditioner(small, tok, dim=16)


def test_unknown_words_read_as_one_unk_whose_embedding_trains(tok_path):
    """A word the T5 trained here never saw would be spelt in letter pieces whose embeddings were
    never trained, drawing the cross-attention from the known words. With `known` (the pieces the
    training captions use) such a word is one <unk>, with a warning; the word <unk> itself is the
    unknown piece, kept by normalize_text. In a training batch with <unk> (word_dropout's p_unk),
    <unk>'s embedding row gets gradient; the unused rows get none."""
    plain = Tokenizer(tok_path)
    pieces = plain.sp.encode([normalize_text(c) for c in CAPTIONS[:4]])
    seen = sorted({i for ids in pieces for i in ids})
    tok = Tokenizer(tok_path, known=seen)
    dog, bark = (plain.sp.encode(w) for w in ("dog", "bark"))
    assert set(dog + bark) <= set(seen)
    assert not set(plain.sp.encode("zorbleflux")) <= set(seen)
    with pytest.warns(UserWarning, match=r"unknown words \['zorbleflux'\]"):
        ids, _ = tok.encode(["dog zorbleflux bark"])
    # one <unk>, not 8 letter pieces
    assert ids[0].tolist() == dog + [tok.unk_id] + bark + [tok.eos_id]
    assert normalize_text("A dog is barking, <unk> <UNK>!") == "dog bark <unk> <unk>"
    assert UNK == "<unk>"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the word <unk> is no unknown word
        assert tok.encode([f"dog {UNK}"])[0][0].tolist() == dog + [tok.unk_id, tok.eos_id]
        expected = [plain.unk_id] + bark + [plain.eos_id]
        assert plain.encode([f"{UNK} bark"])[0][0].tolist() == expected
    torch.manual_seed(0)
    cond = TextConditioner(T5_PRESETS["tiny"], tok, dim=16, finetune=True, normalize=True).train()
    embeds, _ = cond(["a dog is barking", f"{UNK} bark"])
    embeds.sum().backward()
    grad = cond.t5.shared.weight.grad.abs().sum(1)  # [vocab]
    assert grad[tok.unk_id] > 0 and grad[dog[0]] > 0
    used = seen + [tok.unk_id, tok.eos_id, tok.pad_id]
    unused = [i for i in range(tok.vocab_size) if i not in used]
    assert unused and grad[unused].eq(0).all()


def test_word_dropout():
    """AudioCraft's word_dropout (u < p drops a word) and Bowman et al.'s <unk>
    (p <= u < p + p_unk): rates over 4000 words, None stays None, nothing to draw when both are 0;
    a function of the generator's seed."""
    words = [f"w{i}" for i in range(4000)]
    text = " ".join(words)
    out = word_dropout(text, 0.3, 0.2, torch.Generator().manual_seed(0)).split()
    assert abs(1 - len(out) / 4000 - 0.3) < 0.03
    assert abs(out.count(UNK) / 4000 - 0.2) < 0.03
    kept = set(out)
    # the others stay, in order
    assert [w for w in out if w != UNK] == [w for w in words if w in kept]
    # same seed, same words
    assert word_dropout(text, 0.3, 0.2, torch.Generator().manual_seed(0)) == " ".join(out)
    assert word_dropout(text, 0.3, 0.2, torch.Generator().manual_seed(1)) != " ".join(out)
    assert word_dropout("dog bark", 1.0) == ""
    assert word_dropout("dog bark", 0.0, 1.0) == f"{UNK} {UNK}"
    g = torch.Generator().manual_seed(0)
    assert word_dropout(None, 0.5, 0.5, g) is None
    assert word_dropout("dog bark", 0.0, 0.0, g) == "dog bark"
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())  # no draws


# ------------------------------------------------------------ chroma and melody


# MusicGen-melody's, librosa's default
@pytest.mark.parametrize("sr, n_fft", [(32000, 16384), (22050, 2048)])
def test_chroma_filterbank_matches_librosa(sr, n_fft):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0, n_chroma=12)
    assert np.allclose(chroma_filterbank(sr, n_fft).numpy(), ref, atol=1e-6)


def test_chromagram_matches_librosa():
    """Before the argmax, the chromagram equals librosa's chroma_stft (inf-norm) on a
    reflect-padded, centred power STFT with the same window and hop: same frames, filterbank and
    normalisation."""
    librosa = pytest.importorskip("librosa")
    torch.manual_seed(0)
    # a C major chord
    wav = tone(261.63, 1.5) + tone(329.63, 1.5) + 0.3 * tone(392.0, 1.5) + 0.01 * torch.randn(48000)
    spec = librosa.stft(wav.numpy(), n_fft=16384, hop_length=4096, window="hann",
                        pad_mode="reflect")
    S = np.abs(spec) ** 2
    # [frames, 12]
    ref = librosa.feature.chroma_stft(S=S, sr=32000, n_fft=16384, tuning=0, norm=np.inf).T
    chroma = chromagram(wav[None], 32000, argmax=False)[0]
    assert chroma.shape == ref.shape and np.allclose(chroma.numpy(), ref, atol=1e-5)
    assert chromagram(wav[None], 32000)[0].argmax(-1).tolist() == ref.argmax(-1).tolist()


@pytest.mark.parametrize("freq, bin", [(261.63, 0), (440.0, 9), (987.77, 11)])  # C4, A4, B5 (0 = C)
def test_pure_tone_chroma(freq, bin):
    chroma = chromagram(tone(freq)[None], 32000)  # [1, frames, 12]
    assert chroma.shape == (1, 1 + 32000 // 4096, 12)
    assert (chroma.sum(-1) == 1).all()  # one-hot per frame
    assert (chroma[0].argmax(-1) == bin).all()


def test_melody_conditioner():
    """Shapes, tiling, and "no melody" = output_proj(one-hot C) on every frame, as the official
    model."""
    torch.manual_seed(0)
    cond = MelodyConditioner(dim=8)
    assert cond.chroma_len == 235
    assert sorted(cond.state_dict()) == ["output_proj.bias", "output_proj.weight"]
    stereo = torch.stack([tone(440.0, 2.0), tone(440.0, 2.0)])  # [2, T]
    embeds, mask = cond([stereo, None, tone(440.0, 40.0)])  # 2 s is tiled, 40 s cropped
    assert embeds.shape == (3, 235, 8) and mask.all()
    a_note = cond.output_proj.weight[:, 9] + cond.output_proj.bias
    c_note = cond.output_proj.weight[:, 0] + cond.output_proj.bias
    assert torch.allclose(embeds[0], a_note.expand(235, 8))
    assert torch.allclose(embeds[2], embeds[0])
    assert torch.allclose(embeds[1], c_note.expand(235, 8))
    # resampled to 32 kHz first
    embeds_48k, _ = cond([tone(440.0, 2.0, sr=48000)], sample_rate=48000)
    assert torch.allclose(embeds_48k[0], a_note.expand(235, 8))
    with pytest.raises(ValueError, match="melody of shape"):
        cond([torch.zeros(1, 2, 100)])


def test_melody_per_frame_by_hand():
    """fuse='sum': codec frame t (centred at (t + 0.5) / frame_rate s) reads the chroma frame
    nearest its time, chroma frame j being centred at j * hop / sample_rate s (hop 4096 at 32 kHz:
    7.8125 frames/s). At 50 Hz, frame 6 (0.13 s) is nearest chroma frame 1 (0.128 s), frame 5
    (0.11 s) nearest frame 1 too, frame 2 (0.05 s) frame 0."""
    cond = MelodyConditioner(dim=8, duration=1.0, fuse="sum")
    chroma = torch.arange(9)[None]  # [1, 9]: chroma frame j holds pitch class j
    t = torch.arange(50, dtype=torch.float64)
    expected = ((t + 0.5) / 50 * 7.8125).round().long()
    assert torch.equal(cond.per_frame(chroma, 50, 50)[0], expected)
    assert cond.per_frame(chroma, 50, 50)[0, [2, 5, 6, 49]].tolist() == [0, 1, 1, 8]
    assert cond.frames_needed(50, 50) == 9
    assert cond.per_frame(chroma[:, :3], 50, 50).max() == 2  # clamped
    with pytest.raises(ValueError, match="fuse='concat' is unknown"):
        MelodyConditioner(dim=8, fuse="concat")


def test_load_melody(tmp_path):
    """Stereo 44.1 kHz file -> mono 32 kHz; unreadable, missing and silent files -> clear errors."""
    t = np.arange(44100) / 44100
    a4 = np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([0.5 * a4, 0.25 * a4], axis=1)
    sf.write(tmp_path / "tune.wav", stereo, 44100)
    wav = load_melody(str(tmp_path / "tune.wav"), 32000)
    assert wav.shape == (1, 32000)
    assert abs(wav.abs().max().item() - 0.375) < 0.01  # down-mix = mean of channels
    assert (chromagram(wav, 32000)[0].argmax(-1) == 9).all()
    with pytest.raises(FileNotFoundError):
        load_melody(str(tmp_path / "missing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_melody(str(tmp_path / "bad.wav"))
    sf.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="silent"):
        load_melody(str(tmp_path / "silent.wav"))


# ------------------------------------------------------------ CFG


def test_cfg_dropout_whole_batch():
    """One draw per batch: either every sample keeps its conditions or every sample is
    nulled."""
    texts, melodies = ["dog bark", "rain"], [tone(440.0, 0.1), None]
    assert cfg_dropout(texts, melodies, p=0.0) == (texts, melodies)
    nulled = ([None, None], [None, None])
    assert cfg_dropout(texts, melodies, p=1.0) == nulled == null_conditions(texts, melodies)
    g = torch.Generator().manual_seed(0)
    outs = [cfg_dropout(texts, None, p=0.3, generator=g)[0] for _ in range(2000)]
    assert all(o == texts or o == [None, None] for o in outs)  # never per sample
    assert abs(sum(o == [None, None] for o in outs) / 2000 - 0.3) < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cfg_dropout(texts, p=0.0) == (texts, None)
