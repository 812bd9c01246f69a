# %% [markdown]
# # 04 Text and melody conditioning
#
# MusicGen (arXiv 2306.05284) and AudioGen (arXiv 2209.15352) generate codes (tutorial 02) from a
# prompt. The prompt becomes tensors the language model (LM) attends to: text goes through a
# sentencepiece tokenizer and a T5 encoder (arXiv 1910.10683) and is read by cross-attention;
# MusicGen-melody adds a chromagram of a reference tune, prepended to the LM's input. For
# classifier-free guidance (CFG, arXiv 2207.12598) the LM also learns a *null* condition. With
# `conditioners.py`, `synth.py` (the built-in clips and their captions) and `checkpoint.py`:
#
# 1. normalising prompts (AudioGen's stop words and lemmas)
# 2. a tokenizer trained on the built-in captions
# 3. T5's relative position buckets and bias
# 4. `TextConditioner`: embeddings, padding and the null row
# 5. the chromagram of a built-in music clip against its labelled notes
# 6. `MelodyConditioner` and what "no melody" means
# 7. condition dropout for CFG
# 8. the same melody, other music: one tune rendered as four instruments by the default model
#
# Open it as a notebook (Jupyter + jupytext, or VS Code): the melody of step 5 and the music of
# step 8 play under their cells. Or run it, `python tutorials/04_text_and_melody_conditioning.py`:
# pictures and sounds go to files. `TUTORIAL_FAST=1` shrinks every step; `TUTORIAL_OUT=dir` moves
# the output folder (default `tutorials/out/`). Pasted numbers come from full mode on a CPU; the
# assertions hold everywhere.

# %%
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from checkpoint import load_t5  # noqa: E402
from audio import resample  # noqa: E402
from model import load_model  # noqa: E402
from conditioners import (MelodyConditioner, TextConditioner, Tokenizer, cfg_dropout,  # noqa: E402
                          chromagram, normalize_text, null_conditions)
from synth import NOTE_NAMES, make_clip  # noqa: E402
from t5 import T5_PRESETS, T5Encoder, relative_position_bucket  # noqa: E402

# %% [markdown]
# ## Step 1. Normalising prompts
#
# AudioGen trains on tag-like descriptions ("dog bark park"). `normalize_text` lower-cases, drops
# punctuation and stop words and undoes simple inflections, so that "A dog is barking at the park."
# and "dog bark park" become the same prompt. (AudioCraft's released configs leave this off;
# our default model turns it on.) AudioCraft asks spaCy; `normalize_text` writes the rules out:
#
# - words are runs of letters or digits: punctuation goes, digits stay ("129 bpm");
# - stop words are dropped: a fixed list of about 200 function words (articles, pronouns,
#   auxiliaries, prepositions, conjunctions: a subset of spaCy's), and contractions ("aren't");
#   a possessive 's is cut ("baby's" -> "baby");
# - lemmas come from suffix rules: plurals lose -s ("dogs" -> "dog"; not after ss, us, is: "glass"
#   stays), -es after ss, sh, ch, x, zz ("boxes" -> "box"), and -ies becomes -y; -ing and -ed go
#   when a stem of 3 letters or more with a vowel is left ("string" stays, and "speed"), a doubled
#   consonant is undone ("running" -> "run", but "falling" -> "fall"), and an e comes back after v
#   or after b, c, d, f, g, k, p, t, z + l ("crackling" -> "crackle").
#
# Rules are not a dictionary: an irregular plural passes unchanged ("children") and a few words
# come out wrong ("buses" -> "buse"); spaCy's lemmatizer looks such words up. Each rule acts on one
# word, so `normalize_text` applied to each word alone tells which rule took it.
# Target: per prompt, the words dropped, changed (into what) and kept, and the rules asserted on a
# few; the built-in captions (`synth.make_clip`), which come in both styles, normalised.

# %%
def rules(prompt):
    """The words of a prompt, each normalised alone: dropped (stop words), changed (lemmas), kept."""
    table = {"dropped": [], "changed": [], "kept": []}
    for word in prompt.lower().split():
        word = word.strip(".,;:!?")  # punctuation
        out = normalize_text(word)
        kind = "dropped" if not out else "kept" if out == word else "changed"
        table[kind].append(f"{word}->{out}" if kind == "changed" else word)
    return table


prompts = ["A dog is barking at the park.", "The baby's crying, and two dogs were running off!",
           "Rain falls on the glass; a fire is crackling.", "Buses and children"]
tables = [rules(p) for p in prompts]
for prompt, table in zip(prompts, tables):
    print(f"{prompt!r} -> {normalize_text(prompt)!r}")
    print("   ", " | ".join(f"{kind}: {' '.join(words)}" for kind, words in table.items()))
# 'A dog is barking at the park.' -> 'dog bark park'
#     dropped: a is at the | changed: barking->bark | kept: dog park
# "The baby's crying, and two dogs were running off!" -> 'baby cry two dog run'
#     dropped: the and were off | changed: baby's->baby crying->cry dogs->dog running->run | kept: two
# 'Rain falls on the glass; a fire is crackling.' -> 'rain fall glass fire crackle'
#     dropped: on the a is | changed: falls->fall crackling->crackle | kept: rain glass fire
# 'Buses and children' -> 'buse children'
#     dropped: and | changed: buses->buse | kept: children
assert normalize_text(prompts[0]) == "dog bark park" and tables[0]["dropped"] == ["a", "is", "at", "the"]
assert "running->run" in tables[1]["changed"] and "crackling->crackle" in tables[2]["changed"]
assert "glass" in tables[2]["kept"] and "children" in tables[3]["kept"]
for prompt in prompts:  # word by word: the rules never look at a neighbour
    assert normalize_text(prompt) == " ".join(filter(None, map(normalize_text, prompt.split())))

for i in range(4):
    clip = make_clip(i, seed=0, duration=0.5)  # a captioned clip; we only read its captions here
    print(f"{clip['sentence']!r:48s} -> {normalize_text(clip['sentence'])!r}  (tags: {clip['tags']!r})")
# 'a relaxed happy plucked string melody'          -> 'relax happy pluck string melody'  (tags: 'happy plucked string slow')
# 'a relaxed beat played on drums'                 -> 'relax beat play drum'  (tags: 'drums slow')
# 'in the street, a siren wails'                   -> 'street siren wail'  (tags: 'siren street')
# 'an upbeat drum beat at 129 bpm'                 -> 'upbeat drum beat 129 bpm'  (tags: 'drums fast')

# %% [markdown]
# ## Step 2. A tokenizer trained on the captions
#
# T5 reads sentencepiece pieces (arXiv 1808.06226): a unigram model that splits words into
# frequent sub-words. T5's conventions: pad = 0, eos (`</s>`) = 1 appended to every prompt,
# unk = 2, no bos. The official T5 uses a 32k vocabulary trained on C4; we train a small one on
# the built-in captions (normalised), the vocabulary the tiny T5 preset expects (<= 1000).
# A batch is padded to its longest prompt, and the mask says which positions are real.
# Target: eos = 1 ends every row, padding is 0 and masked out; decode(encode(x)) == x.

# %%
n_clips = 200 if FAST else 2000
captions = []
for i in range(n_clips):
    clip = make_clip(i, seed=0, duration=0.1)  # short: the audio is not needed here
    captions += [normalize_text(clip["tags"]), normalize_text(clip["sentence"])]
tok = Tokenizer.train(captions, vocab_size=1000, path=str(OUT / "04_tokenizer.model"))
print(f"{len(captions)} captions -> {tok.vocab_size} pieces")
# 4000 captions -> 145 pieces
prompts = ["dog bark park", "calm piano melody slow drum"]
print("pieces:", [tok.sp.encode(p, out_type=str) for p in prompts])
ids, mask = tok.encode(prompts)  # [B, L] long, [B, L] bool
print("ids ", ids.tolist())
print("mask", mask.int().tolist())
# pieces: [['▁do', 'g', '▁bark', '▁park'], ['▁ca', 'l', 'm', '▁p', 'i', 'an', 'o', '▁melody', '▁slow', '▁drum']]
# ids  [[75, 17, 72, 20, 1, 0, 0, 0, 0, 0, 0], [33, 31, 49, 26, 6, 11, 10, 30, 29, 4, 1]]
# mask [[1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]
lengths = mask.sum(1)
assert all(ids[b, lengths[b] - 1] == tok.eos_id == 1 for b in range(len(prompts)))
assert (ids[~mask] == tok.pad_id).all() and tok.decode(ids) == prompts

# %% [markdown]
# ## Step 3. T5's relative position bias
#
# T5 has no position embeddings. Instead, every attention logit q.k gets a learnt scalar per head
# that depends only on the offset key - query, through 32 *buckets* (half for keys before the
# query, half for keys after): offsets 0..7 get one bucket each, 8..127 share 8 log-spaced
# buckets, and everything farther shares the last one. One table [32 buckets, heads], owned by
# the first block, is added in every layer.
# Target: the hand-derived buckets; `04_relative_position.png` (bucket map and bias per head).

# %%
offsets = torch.tensor([-200, -128, -9, -8, -7, -1, 0, 1, 7, 8, 127, 128])
buckets = relative_position_bucket(offsets)
print(dict(zip(offsets.tolist(), buckets.tolist())))
# {-200: 15, -128: 15, -9: 8, -8: 8, -7: 7, -1: 1, 0: 0, 1: 17, 7: 23, 8: 24, 127: 31, 128: 31}
# keys before the query: |offset| < 8 -> bucket |offset|; 8 -> 8 + floor(log(8/8) / log(128/8) * 8) = 8
# keys after: the same + 16
assert buckets.tolist() == [15, 15, 8, 8, 7, 1, 0, 17, 23, 24, 31, 31]

t5_dir = ROOT / "checkpoints" / "t5-base"  # a local Hugging Face t5-base directory, if you have one
if any((t5_dir / f).is_file() for f in ("pytorch_model.bin", "model.safetensors")):
    t5, source = load_t5(str(t5_dir))[0], "t5-base (learnt)"
else:
    torch.manual_seed(0)
    t5, source = T5Encoder(T5_PRESETS["tiny"]).eval(), "tiny T5, random init"
L = 300
pos = torch.arange(L)
bucket_map = relative_position_bucket(pos[None, :] - pos[:, None])  # [L, L]: row = query, column = key
bias = t5.encoder.block[0].layer[0].SelfAttention.compute_bias(L, "cpu")[0]  # [H, L, L]
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
im = axes[0].imshow(bucket_map, cmap="viridis")
axes[0].set(title="bucket of (query, key)", xlabel="key position", ylabel="query position")
fig.colorbar(im, ax=axes[0])
for h in range(min(4, bias.shape[0])):
    axes[1].plot(pos - L // 2, bias[h, L // 2].detach(), drawstyle="steps-mid", label=f"head {h}")  # query mid-way
axes[1].set(title=f"bias added to the logits ({source})", xlabel="key - query")
axes[1].legend()
save(fig, "04_relative_position.png")

# %% [markdown]
# ## Step 4. TextConditioner: embeddings, padding and the null row
#
# `TextConditioner` = tokenizer -> T5 encoder -> `output_proj` (a Linear to the LM width) ->
# times the mask. MusicGen freezes a pretrained t5-base (768 wide); here a tiny random T5 shows
# the shapes. `None` is the null condition of CFG. It is not the encoding of an empty prompt
# (an empty string is refused, and would encode to T5's embedding of eos): it is zero embeddings
# with an all-False mask. `TextConditioner` sends the row through T5 as padding only, and the final
# `embeds * mask` zeroes it. Padded keys are masked inside T5, so a prompt's embeddings do not
# depend on what else is in the batch.
# Target: shapes [B, L, dim]; padded and null rows exactly 0; the first prompt alone == batched.

# %%
torch.manual_seed(0)
text = TextConditioner(T5Encoder(T5_PRESETS["tiny"]), tok, dim=64, normalize=True).to(device).eval()
batch = ["A dog is barking at the park.", "A calm piano melody with a slow drum beat", None]
with torch.no_grad():
    embeds, mask = text(batch)  # [B, L, dim], [B, L]
    alone, _ = text(batch[:1])
print("embeds", tuple(embeds.shape), "tokens per row", mask.sum(1).tolist())
# embeds (3, 12, 64) tokens per row [5, 12, 0]
assert (embeds[~mask] == 0).all() and not embeds[2].any()  # padding and the null row are zeros
assert torch.allclose(embeds[0, :alone.shape[1]], alone[0], atol=1e-5)  # padding does not leak
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.imshow(embeds.norm(dim=-1).cpu(), cmap="magma")
ax.set(yticks=range(3), yticklabels=["dog bark park", "calm piano ...", "None (null)"],
       xlabel="token position", title="|embedding| per position: padding and null row are 0")
save(fig, "04_text_embeds.png")

# %% [markdown]
# ## Step 5. The chromagram of a melody
#
# MusicGen-melody conditions on a *chromagram*: the energy of each of the 12 pitch classes
# (C, C#, ..., B) per frame, from a 16384-point STFT (hop 4096: 7.8 frames per second at 32 kHz),
# then reduced to the loudest class per frame (a one-hot). Built-in music clips come with their
# notes, so we can check it: the argmax class should be the class of a note that sounds.
# Target: the agreement (printed), `04_chroma.png`, and the melody playing under the cell.

# %%
sr = 32000
i = 0
while True:  # the first melodic music clip (not drums alone)
    clip = make_clip(i, seed=0, duration=5.0, sample_rate=sr, kind="music")
    if clip["labels"]["instrument"] != "drums":
        break
    i += 1
wav = torch.from_numpy(clip["wav"])[None].to(device)  # [1, T]
notes = clip["labels"]["notes"]  # [(onset s, length s, MIDI pitch)]
print(f"clip {i}: {clip['sentence']!r}, key {clip['labels']['key']}, {len(notes)} notes:",
      " ".join(NOTE_NAMES[p % 12] for _, _, p in notes))
# clip 0: 'a happy tune played on the plucked string, relaxed and in C major', key C major, 5 notes: C D E A B
chroma = chromagram(wav, sr, argmax=False)[0]  # [frames, 12], each frame divided by its max
hop = 16384 // 4
agree = total = 0
for f in range(chroma.shape[0]):
    t = f * hop / sr  # centre of frame f
    sounding = {p % 12 for s, m, p in notes if s <= t < s + m}
    if sounding:
        total += 1
        agree += int(chroma[f].argmax().item() in sounding)
print(f"argmax pitch class = a sounding note in {agree}/{total} frames")
# argmax pitch class = a sounding note in 35/40 frames
assert agree / total > 0.6

fig, ax = plt.subplots(figsize=(8, 3))
ax.imshow(chroma.T.cpu(), origin="lower", aspect="auto", cmap="Greys",
          extent=(-hop / sr / 2, (chroma.shape[0] - 0.5) * hop / sr, -0.5, 11.5))
for s, m, p in notes:
    ax.plot([s, s + m], [p % 12, p % 12], color="C3", lw=2)
ax.set(yticks=range(12), yticklabels=NOTE_NAMES, xlabel="time (s)",
       title="chroma (grey) and the labelled notes (red)")
save(fig, "04_chroma.png")
listen(wav, sr, "04_melody.wav")
tone = torch.sin(2 * math.pi * 440.0 * torch.arange(sr) / sr)[None]  # 1 s of A4
print("A4 (440 Hz) ->", NOTE_NAMES[chromagram(tone, sr)[0].argmax(-1)[0].item()])
# A4 (440 Hz) -> A

# %% [markdown]
# ## Step 6. MelodyConditioner and "no melody"
#
# `MelodyConditioner` projects the one-hot chroma to the LM width with a Linear layer and tiles it
# to a fixed length: 235 frames, the chroma frames of 30 s (a 5 s melody repeats 6 times). The LM
# prepends these 235 vectors to its input. "No melody" is *not* zeros: MusicGen passes a 1-sample
# silent waveform, whose chroma is all zeros; argmax then picks bin 0, so the null melody is
# "C in every frame", output_proj(one-hot C).
# Target: shapes, the tiling, and null == output_proj(one-hot C) (assertions).

# %%
torch.manual_seed(0)
melody = MelodyConditioner(dim=64, sample_rate=sr).to(device)
with torch.no_grad():
    m_embeds, m_mask = melody([wav[0], None])  # [2, 235, 64], mask all True
frames = chromagram(wav, sr).shape[1]
print("embeds", tuple(m_embeds.shape), f"| chroma_len {melody.chroma_len}, this melody {frames} frames")
# embeds (2, 235, 64) | chroma_len 235, this melody 40 frames
assert torch.equal(m_embeds[0, :frames], m_embeds[0, frames:2 * frames])  # tiled
null = melody.output_proj(F.one_hot(torch.tensor(0, device=device), 12).float())  # output_proj(one-hot C)
assert torch.allclose(m_embeds[1], null.expand_as(m_embeds[1]), atol=1e-6) and m_mask.all()
print("chroma of silence: argmax bin", chromagram(torch.zeros(1, 1), sr)[0, 0].argmax().item(), "= C")
# chroma of silence: argmax bin 0 = C

# %% [markdown]
# ## Step 7. Condition dropout for classifier-free guidance
#
# To sample with CFG the LM needs two predictions per step, with the condition and without it,
# mixed as `uncond + cfg_coef * (cond - uncond)` (MusicGen's cfg_coef = 3; tutorial 06). It learns
# the unconditional one because training drops the conditions now and then. AudioCraft's
# semantics, which `cfg_dropout` follows: ONE Bernoulli(p) draw per batch (not per sample); when it
# fires, every text and every melody of the batch becomes None (p = 0.3 for MusicGen, 0.1 for
# AudioGen). `null_conditions` builds the same null batch for sampling.
# Target: about p of the batches are nulled, always whole batches; the null text gives zeros.

# %%
g = torch.Generator().manual_seed(0)
texts, melodies = ["dog bark park", "calm piano melody"], [wav[0], wav[0]]
draws = 200 if FAST else 2000
nulled = 0
for _ in range(draws):
    t, m = cfg_dropout(texts, melodies, p=0.3, generator=g)
    assert t in (texts, [None, None]) and (t is texts) == (m is melodies)  # all or nothing
    nulled += t[0] is None
print(f"nulled {nulled} of {draws} batches ({nulled / draws:.2f}, p = 0.3)")
# nulled 609 of 2000 batches (0.30, p = 0.3)
assert abs(nulled / draws - 0.3) < 0.1
print("null_conditions:", null_conditions(texts, melodies))
# null_conditions: ([None, None], [None, None])
with torch.no_grad():
    null_embeds, null_mask = text(null_conditions(texts)[0])
assert not null_embeds.any() and not null_mask.any()

# %% [markdown]
# ## Step 8. The same melody, other music
#
# MusicGen-melody's point: keep a tune, change everything else. The default model in
# `checkpoints/` was trained with melodies (`train_lm.py --melody --melody-fuse sum`): each music
# clip's own chroma, dropped in half the steps so that the text alone still works. It does not
# prepend the 235 vectors of step 6 (MusicGen-melody's `prepend`); it *adds* to each codec frame
# the embedding of the chroma frame at that frame's time (`MelodyConditioner.per_frame`, the
# `sum` fuse). Codec frame t (50 per second) is centred at (t + 0.5) / 50 s, chroma frame j at
# j * hop / sr s, and t reads the nearest j:
#
#     j(t) = round((t + 0.5) / frame_rate * sr / hop)
#
# Why add rather than prepend:
#
# - alignment: with `sum` the melody of frame t is in frame t's own input, where the LM writes
#   frame t. With `prepend` the LM must learn to attend from frame t to prefix position
#   ~ t * 7.8 / 50, from the position embeddings alone, before the melody can help;
# - length: `sum` adds no position; `prepend` adds chroma_len to every sequence (235 before
#   MusicGen-melody's 1500 frames of 30 s, 24 before this model's 150 frames of 3 s), in the
#   attention of every step;
# - past the window: generating longer than max_duration, `LM.generate` hands each window the
#   embeddings of its own frames, so a `sum` melody goes on where the window goes; a prefix is
#   built once, and here it is not re-cut per window (a deviation listed in `lm.py`), so later
#   windows read the tune's start.
#
# What `sum` gives up: the LM is causal, so frame t reads the melody up to t only, where a prefix
# shows the whole tune, what comes next included; and the melody is tied to the output's time,
# frame by frame. RESULTS.md ("Melody") trains both on the same batches, for further reading.
# We write j(t) by hand, then render the tune of step 5 with four instrument prompts, and
# compare each clip's chroma with the tune's.
# Target: j(t) equal to the library's; the four clips' pitch classes follow the tune (printed
# agreement far above the same prompts without the melody); `04_same_melody.png`; five sounds.

# %%
model = load_model(ROOT / "checkpoints", device)  # text + melody, the codec, frozen
fr, msr = model.lm.config.frame_rate, model.codec.sample_rate  # 50 Hz, 16 kHz
hop16 = model.melody.hop  # 2048 samples at 16 kHz: 7.8 chroma frames per second, as 4096 at 32 kHz
t = torch.arange(8)
by_hand = ((t + 0.5) / fr * msr / hop16).round().long()
library = model.melody.per_frame(torch.arange(40)[None], 8, fr)[0]  # chroma frame j holds "j"
print("codec frame -> chroma frame:", by_hand.tolist())
# codec frame -> chroma frame: [0, 0, 0, 1, 1, 1, 1, 1]
assert torch.equal(by_hand, library)

tune = resample(wav.cpu(), sr, msr)  # step 5's plucked-string melody at the codec's rate: [1, T]
dur = 1.5 if FAST else 3.0
instruments = ["piano", "organ", "plucked string", "bass"]
with_tune = model.generate(instruments, duration=dur, seed=0, melody_wav=tune)  # [4, 1, T]
text_only = model.generate(instruments, duration=dur, seed=0)  # the null melody
ref = model.melody.chroma([tune[:, :round(dur * msr)]], msr)  # [1, frames] pitch classes
agree = (model.melody.chroma(list(with_tune), msr) == ref).float().mean(1)  # [4]
alone = (model.melody.chroma(list(text_only), msr) == ref).float().mean(1)
for name, a, b in zip(instruments, agree, alone):
    print(f"{name:>15}: {100 * a:3.0f}% of chroma frames equal the tune's (text alone {100 * b:3.0f}%)")
#           piano:  79% of chroma frames equal the tune's (text alone   0%)
#           organ:  58% of chroma frames equal the tune's (text alone   0%)
#  plucked string:  62% of chroma frames equal the tune's (text alone   0%)
#            bass:  67% of chroma frames equal the tune's (text alone   4%)
assert agree.mean() > alone.mean() + 0.25

fig, axes = plt.subplots(5, 1, figsize=(8, 6), sharex=True)
rows = [("the tune", ref[0])] + [(n, model.melody.chroma([w], msr)[0]) for n, w in zip(instruments, with_tune)]
for ax, (name, pitch) in zip(axes, rows):
    ax.step(torch.arange(len(pitch)) * hop16 / msr, pitch.cpu(), where="mid", color="C3" if ax is axes[0] else "C0")
    ax.set(yticks=[0, 4, 7, 11], yticklabels=[NOTE_NAMES[k] for k in (0, 4, 7, 11)], ylim=(-0.5, 11.5))
    ax.set_ylabel(name, rotation=0, ha="right")
axes[-1].set_xlabel("time (s)")
fig.suptitle("the loudest pitch class per chroma frame: the tune, and the four instruments playing it")
save(fig, "04_same_melody.png")
listen(tune[:, :round(dur * msr)], msr, "04_tune.wav")
for name, w in zip(instruments, with_tune):
    listen(w, msr, f"04_tune_as_{name.replace(' ', '_')}.wav")

# %% [markdown]
# ## Errata and notes
#
# - Deviations from AudioCraft (the `conditioners.py` docstring and the README list them): no stem
#   separation before the chroma (AudioCraft keeps demucs' vocals + other); `normalize_text` is
#   rule-based instead of spaCy; the chroma stays at 7.8 frames per second (the LM never resamples
#   a prepended condition); the default model sums the chroma into the frames instead (step 8).
# - On a corpus this small the unigram trainer keeps only ~145 pieces and splits even frequent
#   words ("piano" -> "▁p i an o", step 2); T5's 32k-piece vocabulary keeps most English words
#   whole. The tokens are still exact: decode(encode(x)) == x.
# - The T5 here is random: its embeddings carry no meaning until trained. MusicGen uses a frozen,
#   pretrained t5-base; put a Hugging Face t5-base directory in `checkpoints/t5-base` to see its
#   learnt position bias in step 3 (`checkpoint.load_t5` reads it from local files).
# - **Padding in cross-attention.** A batch of prompts is padded to its longest (step 2), and
#   `TextConditioner` zeroes the padded positions (step 4). AudioCraft's LMs do not pass the text
#   mask to cross-attention, so each frame still attends to those zero vectors: with no bias in
#   the projections their keys are 0, their logit q.0 = 0, their values 0. They add nothing to the
#   output but take a share exp(0) / Z of the softmax, so the real tokens weigh less, and a prompt
#   reads differently alone than padded beside a longer one. This repo's tiny preset, the default
#   model, masks them (`LMConfig.cross_attention_mask=True`, as transformers' MusicGen): -inf at
#   the padded keys, and a prompt reads the same alone or in a batch. AudioCraft's checkpoints
#   load with the mask off, to match AudioCraft, and transformers' with it on (tutorial 09). With
#   one prompt there is no padding and both agree; on a padded batch a hand-written attention step
#   must add the mask (-inf at the padded keys) to its logits before the softmax. A null row of
#   CFG has no token at all, and masking every key would leave nothing to attend to: it attends to
#   all its zeros either way, and its cross-attention output is 0.
# - Next: tutorial 05, the codebook patterns and the LM that reads these conditions.
