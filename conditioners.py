"""
Conditioners: what turns a prompt (and, for MusicGen-melody, a reference tune) into the tensors the
LM attends to.
Text: sentencepiece tokenizer -> T5 encoder (t5.py) -> Linear to the LM width, padded positions
zeroed (cross-attention).
Melody: waveform -> 12-bin chromagram -> argmax one-hot -> Linear to the LM width (prepended to the
sequence, or added to each codec frame: MelodyConditioner's fuse).
CFG: the null condition (no text, no melody) and the condition dropout that teaches the LM to use
it.

References:
1) T5: Raffel et al. 2019, arXiv:1910.10683 (the encoder: t5.py)
2) Classifier-free guidance: Ho & Salimans 2022, arXiv:2207.12598
3) MusicGen: Copet et al. 2023, arXiv:2306.05284 (text and chroma conditioning, condition dropout)
   https://github.com/facebookresearch/audiocraft/blob/main/audiocraft/modules/conditioners.py
   and audiocraft/modules/chroma.py
4) AudioGen: Kreuk et al. 2022, arXiv:2209.15352 (text normalisation: stop words, lemmas)
5) SentencePiece: Kudo & Richardson 2018, arXiv:1808.06226; unigram LM: Kudo 2018, arXiv:1804.10959
6) Chroma filterbank: librosa.filters.chroma (after D. Ellis' chromagram_E),
   https://github.com/librosa/librosa
7) Word dropout: AudioCraft's T5Conditioner word_dropout; with <unk>: Bowman et al. 2016,
   arXiv:1511.06349

Deviations from the official code (also listed in the README):
- No stem separation: AudioCraft runs demucs (htdemucs) and keeps vocals + other before the chroma;
  we use the mix.
- normalize_text is rule-based (stop-word list + suffix rules) instead of spaCy's lemmatizer; digits
  stay digits. AudioCraft's released configs leave normalize_text off; the default model here turns
  it on.
- The tokenizer truncates prompts to max_length (512, T5's limit) with a warning; AudioCraft does
  not truncate.
- Tokenizer(known=...): a T5 trained here (train_lm.py) reads a word with a piece it never saw in
  training as one <unk>.
- Melodies of different lengths are each tiled to chroma_len on their own (AudioCraft first
  zero-pads the batch).
- Chroma keeps its own 7.8125 Hz frame rate (235 frames for 30 s): the official 'prepend' fuser
  never resamples it. fuse='sum' (not MusicGen-melody) adds to each codec frame's input the chroma
  frame at its time, as AudioCraft's ConditionFuser 'sum' does: the LM need not learn where in the
  prefix each frame's melody lies.
"""
import io
import math
import os
import re
import warnings

import numpy as np
import sentencepiece as spm
import torch
import torch.nn as nn
from torch.nn import functional as F

from audio import load_audio, resample
from t5 import T5Encoder

# -----------------------------------------------------------------------------
# helpers: text (normalisation, tokenizer), melody (chroma), CFG (null conditions, dropout)

# function words only: a subset of spaCy's English stop words (AudioCraft's normaliser drops
# token.is_stop)
_STOP_WORDS = frozenset("""a about above after again against all almost along already also although
always am among an and another any anyone anything are around as at be became because become been
before being below beside between beyond both but by can cannot could did do does doing done down
during each either else enough even ever every everything few for from further had has have having
he her here hers herself him himself his how however i if in into is it its itself just least less
many may me might more most much must my myself neither never no nobody none nor not nothing now of
off often on once one only onto or other others our ours ourselves out over own per perhaps quite
rather really same she should since so some someone something sometimes still such than that the
their theirs them themselves then there therefore these they this those though through throughout
thus to together too toward towards under until up upon us very via was we were what whatever when
whenever where whereas wherever whether which while who whole whom whose why will with within
without would yet you your yours yourself yourselves""".split())
# this word in a prompt is the unknown piece (T5's name for it); normalize_text keeps it
UNK = "<unk>"
# a word: <unk>, or letters or digits (any script), with an inner '
_WORD = re.compile(r"<unk>|[^\W_]+(?:'[^\W_]+)?")
# plural endings -> singular ones (_lemma)
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("shes", "sh"), ("ches", "ch"), ("xes", "x"),
             ("zzes", "zz"))


def _lemma(word):
    """Undo simple English inflections (plural -s/-es/-ies, -ing, -ed): a rule-based stand-in for
    spaCy's lemmas."""
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            return word[: -len(suffix)] + repl  # babies -> baby, boxes -> box, buzzes -> buzz
    if word.endswith(("ing", "ed")) and not word.endswith("eed"):  # but speed, bleed stay
        stem = word[:-3] if word.endswith("ing") else word[:-2]
        if len(stem) >= 3 and any(c in "aeiouy" for c in stem):  # string, thing, bring stay
            if stem[-1] == stem[-2] and stem[-1] not in "lsz":
                # running -> run, stopped -> stop; but falling -> fall, passing -> pass
                stem = stem[:-1]
            elif stem[-1] == "v" or (stem[-1] == "l" and stem[-2] in "bcdfgkptz"):
                stem += "e"  # driving -> drive, crackling -> crackle, whistled -> whistle
            return stem
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) >= 4:
        return word[:-1]  # dogs -> dog; glass, chorus, bus stay
    return word


def normalize_text(text):
    """AudioGen-style prompt normalisation: lower-case, strip punctuation, drop stop words, reduce
    inflections. "A dog is barking at the park." -> "dog bark park". Possessive 's is stripped
    ("dog's" -> "dog"); other contractions ("isn't", "we're") are stop words, dropped. Numbers stay
    digits (AudioCraft spells them out with num2words, after which spaCy drops most of them as stop
    words)."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))  # curly apostrophe -> '
    words = [w[:-2] if w.endswith("'s") else w for w in words]  # possessive: dog's -> dog
    return " ".join(_lemma(w) for w in words if "'" not in w and w not in _STOP_WORDS)


class Tokenizer:
    """Sentencepiece tokenizer with T5's conventions: pad 0, eos 1 (appended to every prompt),
    unk 2, no bos. Loads any sentencepiece model, T5's official spiece.model included. known: see
    encode (None: a pretrained T5)."""

    def __init__(self, path, max_length=512, known=None):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no tokenizer at {path}: train one with "
                                    f"Tokenizer.train(captions, size, path)")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception as e:  # sentencepiece raises RuntimeError/OSError on a corrupt file
            raise ValueError(f"{path} is not a sentencepiece model ({e}); "
                             f"retrain or re-download it") from None
        # 512 = model_max_length of HF's T5 tokenizer
        self.path, self.max_length = str(path), max_length
        self.pad_id, self.eos_id = max(self.sp.pad_id(), 0), self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        if self.eos_id < 0:
            raise ValueError(f"{path} has no </s> piece, which T5 appends to each prompt: "
                             f"retrain with Tokenizer.train")
        self.vocab_size = self.sp.get_piece_size()
        self.known = None if known is None else frozenset(known)

    @classmethod
    def train(cls, captions, vocab_size, path):
        """Train a unigram sentencepiece model in memory on a list of captions and write it
        (atomically) to path. vocab_size is an upper bound (hard_vocab_limit off): a few captions
        support only a small vocabulary."""
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(captions), model_writer=buf, vocab_size=vocab_size,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
            hard_vocab_limit=False, minloglevel=2)
        with open(f"{path}.tmp", "wb") as f:
            f.write(buf.getvalue())
        os.replace(f"{path}.tmp", path)
        return cls(path)

    def encode(self, texts):
        """list of B strings -> ids [B, L] long, mask [B, L] bool (True = real token), padded to the
        longest. Each row is the sentencepiece ids of its words + eos, truncated to max_length
        (keeping eos) as HF's T5 tokenizer does. The word <unk> is the unknown piece. known (the
        piece ids a T5 trained here has seen): a word with another piece is one <unk>, not
        untrained embeddings that pull cross-attention off the known words (RESULTS.md)."""
        if not texts or isinstance(texts, str):
            raise ValueError(f"encode() takes a non-empty list of strings, got {texts!r}")
        rows = [self.encode_one(text) for text in texts]
        ids = nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True,
                                        padding_value=self.pad_id)  # [B, L]
        mask = torch.arange(ids.shape[1]) < torch.tensor([len(r) for r in rows])[:, None]  # [B, L]
        return ids, mask

    def encode_one(self, text):
        """One string -> its list of piece ids + eos (see encode); warns on unknown words and on
        truncation."""
        words, ids, unknown = text.split(), [], []
        pieces_per_word = self.sp.encode(words) if words else []  # = encoding the whole text
        for word, pieces in zip(words, pieces_per_word):
            if word == UNK:
                pieces = [self.unk_id]
            elif self.unk_id in pieces or (self.known is not None
                                           and not self.known.issuperset(pieces)):
                unknown.append(word)  # never drop a word silently
                if self.known is not None:  # one <unk> for the word (else: <unk> per unseen char)
                    pieces = [self.unk_id]
            ids += pieces
        if unknown:
            warnings.warn(f"unknown words {unknown} in {text!r} map to <unk>: "
                          f"the model was not trained on them")
        if len(ids) + 1 > self.max_length:
            warnings.warn(f"prompt of {len(ids) + 1} tokens truncated to "
                          f"max_length={self.max_length}: {text!r}")
            ids = ids[: self.max_length - 1]
        return ids + [self.eos_id]

    def decode(self, ids):
        """ids [B, L] -> list of B strings, without pad and eos."""
        specials = (self.pad_id, self.eos_id)
        return [self.sp.decode([i for i in row if i not in specials]) for row in ids.tolist()]


def chroma_filterbank(sample_rate, n_fft, n_chroma=12):
    """Gaussian chroma filterbank [n_chroma, n_fft // 2 + 1] from STFT bins to pitch classes (rows
    C, C#, ..., B), equal to librosa.filters.chroma(sr, n_fft, tuning=0, n_chroma) with its
    defaults, as AudioCraft uses. For bin k (f_k = k * sr / n_fft), p_k = n_chroma * log2(f_k /
    27.5) is its pitch in chroma steps above A0 (27.5 Hz):
        w[c, k] = exp(-0.5 * (2 * dist(p_k, c) / max(p_k - p_{k-1}, 1))^2)
    dist: circular, in [-n/2, n/2). Then each column is L2-normalised and weighted by
    exp(-0.5 * ((p_k / n_chroma - 5) / 2)^2), a Gaussian over octaves centred on A5 = 880 Hz with a
    2-octave s.d.; the DC bin gets a made-up pitch 1.5 octaves below bin 1."""
    # [n_fft - 1], all non-DC bins
    p = n_chroma * np.log2(np.arange(1, n_fft) * sample_rate / n_fft / 27.5)
    p = np.concatenate([[p[0] - 1.5 * n_chroma], p])  # [n_fft]
    # bin width in chroma steps, at least 1
    width = np.concatenate([np.maximum(np.diff(p), 1.0), [1.0]])
    half = np.round(n_chroma / 2)
    # [n_chroma, n_fft]
    dist = (p[None] - np.arange(n_chroma)[:, None] + half + 10 * n_chroma) % n_chroma - half
    w = np.exp(-0.5 * (2 * dist / width) ** 2)
    octave_weight = np.exp(-0.5 * ((p / n_chroma - 5.0) / 2.0) ** 2)  # [n_fft]
    w = w / np.linalg.norm(w, axis=0, keepdims=True) * octave_weight
    w = np.roll(w, -3 * (n_chroma // 12), axis=0)  # row 0 = A -> row 0 = C (librosa's base_c)
    # drop the mirrored negative frequencies
    return torch.from_numpy(w[:, : n_fft // 2 + 1]).float()


def chromagram(wav, sample_rate, n_fft=16384, n_chroma=12, argmax=True):
    """Chroma of mono waveforms [B, T] -> [B, frames, n_chroma], frames = 1 + T // (n_fft // 4), as
    AudioCraft's ChromaExtractor (MusicGen §2.3: the melody is a chromagram quantised to its
    dominant bin per frame):
    1. zero-pad to n_fft if shorter (centred), so even a 1-sample null wav gives frames;
    2. power spectrogram |STFT|^2 / sum(window^2): periodic Hann of n_fft, hop n_fft // 4, centred,
       reflect-padded;
    3. chroma = filterbank @ power; 4. divide each frame by its max (inf-norm, eps 1e-6);
    5. argmax: each frame becomes the one-hot of its loudest pitch class.
    32 kHz, n_fft 16384: 7.8125 frames/s."""
    pad = max(0, n_fft - wav.shape[-1])  # step 1: [B, max(T, n_fft)]
    wav = F.pad(wav, (pad // 2, pad - pad // 2))
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(wav, n_fft, n_fft // 4, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    # [B, n_fft // 2 + 1, frames]; torchaudio's normalized=True
    power = spec.abs().pow(2) / window.pow(2).sum()
    fb = chroma_filterbank(sample_rate, n_fft, n_chroma).to(wav)  # [C, n_fft // 2 + 1]
    raw = torch.einsum("cf,bft->btc", fb, power)  # [B, frames, C]
    chroma = raw / raw.amax(dim=-1, keepdim=True).clamp(min=1e-6)  # raw >= 0, so inf-norm = max
    # ties -> first bin (C)
    return F.one_hot(chroma.argmax(-1), n_chroma).to(chroma) if argmax else chroma


def load_melody(path, sample_rate=32000):
    """Read an audio file -> mono waveform [1, T] at sample_rate (down-mixed by averaging, resampled
    if needed)."""
    # [1, T]; one-line errors for missing/unreadable files
    wav = load_audio(path, sample_rate, channels=1)
    # -80 dBFS: its chroma would be the "no melody" one-hot
    if wav.numel() == 0 or wav.abs().max() < 1e-4:
        raise ValueError(f"melody file {path} is silent; pass melody=None to generate without "
                         f"a melody")
    return wav


def null_conditions(texts, melodies=None):
    """CFG's unconditional input: no text and no melody (None) for every sample. At sampling the LM
    runs [conditions; null conditions] as one 2B batch and mixes the logits (2207.12598)."""
    null_melodies = None if melodies is None else [None] * len(melodies)
    return [None] * len(texts), null_melodies


def cfg_dropout(texts, melodies=None, p=0.3, generator=None):
    """Condition dropout for classifier-free guidance, as AudioCraft: ONE Bernoulli(p) draw for the
    whole batch, not one per sample; if it fires, every text and melody of the batch is nulled (zero
    text embeddings, the chroma of silence). Training only. p: 0.3 MusicGen, 0.2 melody, 0.1
    AudioGen (AudioCraft's AttributeDropout also drops the melody alone, p 0.5, one draw per
    batch)."""
    if torch.rand(1, generator=generator).item() < p:
        return null_conditions(texts, melodies)
    return texts, melodies


def word_dropout(text, p=0.0, p_unk=0.0, generator=None):
    """Training-time caption augmentation, one uniform draw u per whitespace-separated word: u < p
    drops the word (AudioCraft's T5Conditioner word_dropout: 0.3 MusicGen, 0 AudioGen),
    p <= u < p + p_unk replaces it with <unk> (the word dropout of Bowman et al. [7]), else it
    stays. Trained on <unk>, the LM learns that an unknown word says nothing and keeps to the
    others (Tokenizer.encode reads any word a T5 trained here has not seen as <unk>). A caption
    with no word left is "" (the caller's null condition); None stays None."""
    if text is None or p + p_unk == 0:
        return text
    words = text.split()
    u = torch.rand(len(words), generator=generator).tolist()
    kept = [(w, x) for w, x in zip(words, u) if x >= p]  # u < p: dropped
    return " ".join(UNK if x < p + p_unk else w for w, x in kept)  # p <= u < p + p_unk: <unk>


# -----------------------------------------------------------------------------
# modules

class TextConditioner(nn.Module):
    """Text prompts -> (embeds [B, L, dim], mask [B, L] bool), as AudioCraft's T5Conditioner:
    tokenize (eos, pad to longest), T5 last hidden state, output_proj (Linear with bias), then
    embeds * mask. None is the null condition: "" with an all-False mask, so all-zero embeddings
    (how the LM attends to padding: lm.Attention). t5: a T5Encoder or a T5Config to build one."""

    def __init__(self, t5, tokenizer, dim, finetune=False, normalize=False):
        super().__init__()
        # state dict: t5.* (HF's T5 names)
        self.t5 = t5 if isinstance(t5, T5Encoder) else T5Encoder(t5)
        if tokenizer.vocab_size > self.t5.config.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} pieces > T5 vocab_size "
                             f"{self.t5.config.vocab_size}")
        self.tokenizer, self.finetune, self.normalize = tokenizer, finetune, normalize
        if not finetune:  # a pretrained T5, frozen as in AudioCraft (which stores output_proj only)
            self.t5.eval().requires_grad_(False)
        # AudioCraft: ...conditioners.description.output_proj
        self.output_proj = nn.Linear(self.t5.config.d_model, dim)

    def train(self, mode=True):
        """A frozen T5 stays in eval mode (no dropout) while the LM trains."""
        super().train(mode)
        self.t5.train(mode and self.finetune)
        return self

    def t5_text(self, text):
        """One prompt -> the text T5 reads (normalised if self.normalize); None (the null
        condition) -> "", as AudioCraft. ValueError for a prompt with no content words."""
        if text is None:
            return ""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"empty prompt {text!r}: write a description, or pass None for no "
                             f"text (CFG null)")
        normalized = normalize_text(text) if self.normalize else text
        if not normalized and not _WORD.search(text):  # punctuation, symbols, emoji
            raise ValueError(f"prompt {text!r} has no words: describe the sound in words, "
                             f"e.g. \"dog bark\"")
        if not normalized:
            raise ValueError(f"prompt {text!r} has only stop words once normalised: "
                             f"add content words")
        return normalized

    def forward(self, texts):
        entries = [self.t5_text(text) for text in texts]
        device = self.output_proj.weight.device
        ids, mask = self.tokenizer.encode(entries)  # [B, L]
        # null rows: T5 sees no token, embeds zeroed below
        mask[torch.tensor([e == "" for e in entries])] = False
        ids, mask = ids.to(device), mask.to(device)
        # T5 in float32 even under the LM's autocast, as AudioCraft (fp16 T5 can overflow)
        grad = self.finetune and torch.is_grad_enabled()
        with torch.set_grad_enabled(grad), torch.autocast(device.type, enabled=False):
            h = self.t5(ids, mask)  # [B, L, d_model]
        return self.output_proj(h) * mask[..., None], mask  # [B, L, dim], [B, L]


class MelodyConditioner(nn.Module):
    """Melodies -> (embeds [B, chroma_len, dim], mask [B, chroma_len] all True), as AudioCraft's
    ChromaStemConditioner at inference (no demucs: see the file docstring). A melody: waveform [T]
    or [C, T] at sample_rate, or None. fuse: 'prepend' (MusicGen-melody: chroma_len positions
    before the sequence) or 'sum' (added to each codec frame's input, the chroma frame at its time:
    per_frame). State dict: output_proj.* (chroma.spec.window is not loaded)."""

    def __init__(self, dim, sample_rate=32000, n_chroma=12, radix2_exp=14, duration=30.0,
                 fuse="prepend"):
        super().__init__()
        if fuse not in ("prepend", "sum"):
            raise ValueError(f"melody fuse={fuse!r} is unknown; use 'prepend' (MusicGen-melody) "
                             f"or 'sum'")
        self.sample_rate, self.n_chroma, self.n_fft = sample_rate, n_chroma, 2**radix2_exp
        self.fuse, self.duration = fuse, duration
        # chroma frames per second: sample_rate / hop = 7.8125 at 32 kHz
        self.hop = self.n_fft // 4
        # centred STFT frames: 235 for 30 s
        self.chroma_len = 1 + int(sample_rate * duration) // self.hop
        # AudioCraft: ...conditioners.self_wav.output_proj
        self.output_proj = nn.Linear(n_chroma, dim)

    def settings(self):
        """The keyword arguments that rebuild it with dim (a checkpoint's 'melody' entry; 12 pitch
        classes)."""
        return dict(sample_rate=self.sample_rate, radix2_exp=self.n_fft.bit_length() - 1,
                    duration=self.duration, fuse=self.fuse)

    def forward(self, melodies, sample_rate=None):
        return self.embed(self.chroma(melodies, sample_rate))

    @torch.no_grad()
    def chroma(self, melodies, sample_rate=None, length=None):
        """Melodies -> dominant pitch class per frame, tiled/cropped to length (default chroma_len):
        [B, length] long (train_lm.py caches it)."""
        device = self.output_proj.weight.device
        chromas = []
        for wav in melodies:
            if wav is None:
                # "No melody" (and the CFG null melody) as the official model: not zeros but a
                # 1-sample zero wav, whose all-zero chroma argmaxes to bin 0 in every frame: the LM
                # sees output_proj(one-hot C).
                wav = torch.zeros(1, 1, device=device)
            elif wav.dim() not in (1, 2) or wav.shape[-1] == 0:
                raise ValueError(f"melody of shape {tuple(wav.shape)}: pass a waveform [T] or "
                                 f"[C, T], or None")
            else:
                # [1, T]
                mono = wav.to(device).float().reshape(-1, wav.shape[-1]).mean(0, keepdim=True)
                wav = resample(mono, sample_rate or self.sample_rate, self.sample_rate)
            # [frames]
            chroma = chromagram(wav, self.sample_rate, self.n_fft, self.n_chroma)[0].argmax(-1)
            length = length or self.chroma_len
            # tile, then crop: [length]
            chromas.append(chroma.repeat(math.ceil(length / chroma.shape[0]))[:length])
        return torch.stack(chromas)  # [B, length]; 0 everywhere = the null melody

    def chroma_index(self, n_frames, frame_rate):
        """[n_frames]: the chroma frame j nearest each codec frame t (fuse 'sum'): t is centred at
        (t + 0.5) / frame_rate s, j at j * hop / sample_rate s (the STFT is centred)."""
        t = (torch.arange(n_frames, dtype=torch.float64) + 0.5) / frame_rate  # [n_frames] seconds
        return (t * self.sample_rate / self.hop).round().long()

    def per_frame(self, chroma, n_frames, frame_rate):
        """Pitch classes [B, L] at the chroma's rate -> [B, n_frames] at the codec's frame_rate:
        each codec frame takes its chroma_index, clamped to the last of the L given."""
        j = self.chroma_index(n_frames, frame_rate).clamp(max=chroma.shape[1] - 1)
        return chroma[:, j.to(chroma.device)]

    def frames_needed(self, n_frames, frame_rate):
        """How many chroma frames per_frame reads for n_frames codec frames (at least one)."""
        return int(self.chroma_index(max(n_frames, 1), frame_rate)[-1]) + 1

    def embed(self, chroma):
        """[B, chroma_len] pitch classes -> (embeds [B, chroma_len, dim] = output_proj(one-hot),
        mask all True)."""
        # [B, L, n_chroma]
        one_hot = F.one_hot(chroma, self.n_chroma).to(self.output_proj.weight.dtype)
        embeds = self.output_proj(one_hot)  # [B, L, dim]
        # at inference AudioCraft disables masking (match_len_on_eval), so the mask is all ones
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)


if __name__ == "__main__":
    # shape demo with random weights: tiny T5 + a tokenizer trained on a few captions, then a melody
    import tempfile

    from t5 import T5_PRESETS
    torch.manual_seed(0)
    captions = ["A dog is barking at the park.", "Birds are chirping in the morning.",
                "Rain falls on a tin roof.", "An upbeat pop song with drums and a bass line.",
                "Calm piano music with soft strings."]
    with tempfile.TemporaryDirectory() as tmp:
        tok = Tokenizer.train([normalize_text(c) for c in captions], 64,
                              os.path.join(tmp, "tokenizer.model"))
    print(f"tokenizer: {tok.vocab_size} pieces; {captions[0]!r} -> {normalize_text(captions[0])!r}")
    text = TextConditioner(T5_PRESETS["tiny"], tok, dim=64, finetune=True, normalize=True).eval()
    embeds, mask = text([captions[0], None])  # a prompt and the CFG null row, as one batch
    print(f"text: embeds {tuple(embeds.shape)}, mask {mask.int().tolist()}, "
          f"null row = 0: {not embeds[1].any()}")
    melody = MelodyConditioner(dim=64)
    tone = 0.5 * torch.sin(2 * math.pi * 440.0 * torch.arange(3 * 32000) / 32000)  # 3 s of A4
    bins = chromagram(tone[None], 32000)[0].argmax(-1).unique().tolist()
    print(f"chroma of A4: bins {bins} (0 = C, 9 = A)")
    embeds, mask = melody([tone, None])
    null = melody.output_proj.weight[:, 0] + melody.output_proj.bias  # output_proj(one-hot C)
    print(f"melody: embeds {tuple(embeds.shape)}, "
          f"no melody = output_proj(one-hot C): {embeds[1].allclose(null)}")
    print(f"cfg_dropout(p=1): {cfg_dropout(['dog bark'], [tone], p=1.0)}")
