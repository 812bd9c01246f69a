# %% [markdown]
# # 09 Loading the official checkpoints
#
# The modules of this repo use the official parameter names, so the released weights load with a
# loop over names and shapes plus a short rename list. MusicGen (arXiv 2306.05284) is three
# checkpoints: the language model (AudioCraft's `state_dict.bin`), the EnCodec codec (arXiv
# 2210.13438; for MusicGen a transformers `EncodecModel` folder, `facebook/encodec_32khz`) and the
# frozen T5 text encoder (arXiv 1910.10683; t5-base). AudioGen (arXiv 2209.15352) is the same with
# its codec inside `compression_state_dict.bin` and t5-large. With `checkpoint.py` (every loader),
# `model.py` (the parts assembled) and the modules they fill, `lm.py`, `codec.py`, `conditioners.py`:
#
# 1. where the files come from, and the folder layout `sample.py --model` reads
# 2. a miniature "official" folder, when the real one is absent
# 3. inside `state_dict.bin`: `best_state`, `xp.cfg`, and the LM's key map (the identity)
# 4. the codec: the rename list from the official names to ours, `checkpoint.load_codec`
# 5. T5: transformers' names, `checkpoint.load_t5`
# 6. everything with `model.load_model`, parameter counts, and 5 s of music with its `generate`
#
# Nothing is downloaded when this runs (no hub is reachable from where it is tested). With the real
# files (step 1) steps 3-6 load musicgen-small; without them, step 2 writes a miniature folder with
# the same file formats, key names and layout but small sizes and random weights, built with
# transformers (a test extra: `pip install transformers`), and the same steps load that. Fast mode
# (`TUTORIAL_FAST=1`, as CI) always uses the miniature. `TUTORIAL_OUT=dir` moves the output folder
# (default `tutorials/out/`). Pasted numbers come from the miniature on a CPU.

# %%
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from checkpoint import RENAMES, config_from_audiocraft, load_codec, load_t5, rename_official  # noqa: E402
from codec import PRESETS as CODEC_PRESETS, Codec  # noqa: E402
from conditioners import Tokenizer  # noqa: E402
from lm import PRESETS as LM_PRESETS, LM  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from model import load_model, subdir  # noqa: E402
from t5 import T5_PRESETS, T5Encoder  # noqa: E402


def n_params(module):
    return sum(p.numel() for p in module.parameters())

# %% [markdown]
# ## Step 1. The files, and where to get them
#
# On a machine with internet (`pip install -U huggingface_hub`; its newer releases also call the
# command `hf download`), fetch the three parts into one folder, copy it to where you run this, and
# point `MUSICGEN_DIR` at it:
#
# ```bash
# export MUSICGEN_DIR=$PWD/musicgen-small
# huggingface-cli download facebook/musicgen-small state_dict.bin compression_state_dict.bin --local-dir $MUSICGEN_DIR
# huggingface-cli download facebook/encodec_32khz --local-dir $MUSICGEN_DIR/encodec_32khz
# huggingface-cli download t5-base config.json pytorch_model.bin spiece.model --local-dir $MUSICGEN_DIR/t5-base
# ```
#
# That is about 2 GB: `state_dict.bin` (the LM in fp16, 840 MB), the codec (config.json and its
# weights, about 240 MB), t5-base (`pytorch_model.bin`, 892 MB, of which we keep the encoder) and
# its sentencepiece `spiece.model`. The folder names inside are free: `model.load_model` takes the
# first subfolder holding `spiece.model` as the T5 and the first other one with a `config.json`
# as the codec. MusicGen's `compression_state_dict.bin` holds no weights, only the name of the
# transformers codec (step 4). The layout is the one `python sample.py --model $MUSICGEN_DIR` reads:
#
#     musicgen-small/
#       state_dict.bin                 the LM: {'best_state': state dict, 'xp.cfg': its training config (YAML)}
#       compression_state_dict.bin     {'pretrained': 'facebook/encodec_32khz'} (AudioGen: the codec weights)
#       encodec_32khz/                 config.json + model.safetensors (a transformers EncodecModel)
#       t5-base/                       config.json + pytorch_model.bin (or model.safetensors) + spiece.model
#
# The same works for the other models: `facebook/musicgen-medium` / `-large` (t5-base too),
# `facebook/audiogen-medium` (its codec is inside `compression_state_dict.bin`, so no codec
# folder; its T5 is t5-large), `facebook/musicgen-melody` (add `--melody tune.wav`).
# Target: the printed source.

# %%
real_dir = Path(os.environ.get("MUSICGEN_DIR", ROOT / "checkpoints" / "musicgen-small"))
REAL = not FAST and (real_dir / "state_dict.bin").is_file() and subdir(real_dir, "spiece.model") is not None
if REAL:
    model_dir = real_dir
    print("loading the official files in", model_dir)
else:
    model_dir = OUT / "mini-musicgen"  # written by step 2
    print(f"no official files in {real_dir}{' (fast mode: not looked for)' if FAST else ''}: "
          f"the miniature folder {model_dir.name}/ stands in (step 2)")
# no official files in .../checkpoints/musicgen-small (fast mode: not looked for): the miniature folder ...

# %% [markdown]
# ## Step 2. A miniature "official" folder (only without the real files)
#
# We write the four parts in their official formats with random weights and small sizes, each
# from an independent source: the codec and T5 are transformers' own `EncodecModel` and
# `T5EncoderModel` (saved as the hub folders are), the tokenizer a sentencepiece model trained on
# a few sentences, and `state_dict.bin` is written key by key from AudioCraft's naming scheme
# (`LMModel.state_dict()`: `emb.k`, `transformer.layers.i.{self_attn, cross_attention, linear1,
# linear2, norm1, norm_cross, norm2}`, `out_norm`, `linears.k`, and the text conditioner's
# `output_proj`), not from `lm.py`. Sizes: the real 32 kHz codec with 4 filters instead of 64 and
# a 16-dim latent instead of 128 (same hop 640, 50 Hz, 4 codebooks of 2048 codes); an LM 32 wide
# with 2 layers (musicgen-small: 1024, 24); a T5 32 wide with 2 layers (t5-base: 768, 12).
# Target: the files exist. The transformers models stay in memory, to compare against in steps 4-5.

# %%
hf_codec = hf_t5 = None  # the reference implementations, miniature only
PROMPT = "80s pop track with bassy drums and synth"
if not REAL:
    try:
        import transformers  # only here: the rest of the repo never needs it
    except ImportError:
        raise SystemExit("the miniature folder is built with transformers: `pip install transformers` "
                         "(or set MUSICGEN_DIR to the real files, step 1)") from None
    transformers.utils.logging.disable_progress_bar()  # save_pretrained would draw one
    torch.manual_seed(0)
    model_dir.mkdir(parents=True, exist_ok=True)
    # T5: transformers' T5EncoderModel, stored as the hub's t5-base folder is (config.json, pytorch_model.bin)
    t5_dir = model_dir / "t5-base"
    t5_dir.mkdir(exist_ok=True)
    tok = Tokenizer.train([PROMPT, "dog bark park", "calm piano melody", "rain on a tin roof", "jazz tune"] * 4,
                          100, str(t5_dir / "spiece.model"))  # pad 0, eos 1, unk 2 as T5's
    hf_t5 = transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, feed_forward_proj="relu")).eval()
    hf_t5.config.to_json_file(t5_dir / "config.json")
    torch.save(hf_t5.state_dict(), t5_dir / "pytorch_model.bin")
    # the codec: transformers' EncodecModel with facebook/encodec_32khz's settings, at a small width
    hf_codec = transformers.EncodecModel(transformers.EncodecConfig(
        sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], num_filters=4, hidden_size=16,
        codebook_size=2048, target_bandwidths=[2.2], use_causal_conv=False, use_conv_shortcut=False,
        pad_mode="reflect", normalize=False)).eval()
    with torch.no_grad():  # a fresh EncodecModel's codebooks are zeros; a trained one's come from k-means + EMA
        for k, layer in enumerate(hf_codec.quantizer.layers):  # (tutorial 01): random tables stand in,
            layer.codebook.embed.normal_(std=0.5 ** k)  # each residual stage finer than the last
    hf_codec.save_pretrained(model_dir / "encodec_32khz")  # config.json + model.safetensors, as on the hub
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True}, model_dir / "compression_state_dict.bin")
    # the LM: AudioCraft's key names and shapes, written by hand (dim D, feed-forward 4D, K codebooks of card codes)
    D, layers, K, card, t5_dim = 32, 2, 4, 2048, hf_t5.config.d_model
    shapes = {f"emb.{k}.weight": (card + 1, D) for k in range(K)}  # +1: the special token of the pattern
    for i in range(layers):
        p = f"transformer.layers.{i}."
        for attn in ("self_attn", "cross_attention"):  # q, k, v fused in one [3D, D] matrix, no biases
            shapes.update({p + attn + ".in_proj_weight": (3 * D, D), p + attn + ".out_proj.weight": (D, D)})
        shapes.update({p + "linear1.weight": (4 * D, D), p + "linear2.weight": (D, 4 * D)})
        shapes.update({p + n + w: (D,) for n in ("norm1", "norm_cross", "norm2") for w in (".weight", ".bias")})
    shapes.update({"out_norm.weight": (D,), "out_norm.bias": (D,)})
    shapes.update({f"linears.{k}.weight": (card, D) for k in range(K)})  # one output head per codebook
    cond = "condition_provider.conditioners.description.output_proj."
    shapes.update({cond + "weight": (D, t5_dim), cond + "bias": (D,)})
    best_state = {k: (torch.ones(s) if "norm" in k and k.endswith(".weight") else 0.02 * torch.randn(s)).half()
                  for k, s in shapes.items()}  # norm gains 1, the rest small; fp16, as the release
    xp_cfg = ("solver: musicgen\nsample_rate: 32000\ndataset:\n  segment_duration: 30\n"
              f"transformer_lm:\n  dim: {D}\n  num_heads: 2\n  num_layers: {layers}\n  n_q: {K}\n  card: {card}\n"
              "codebooks_pattern:\n  modeling: delay\n  delay:\n    delays: [0, 1, 2, 3]\n"
              "fuser:\n  cross: [description]\n")  # the fields load_lm reads; the real xp.cfg has ~600 lines
    torch.save({"best_state": best_state, "xp.cfg": xp_cfg, "version": "1.0.0", "exported": True},
               model_dir / "state_dict.bin")
print(sorted(str(p.relative_to(model_dir)) for p in model_dir.glob("*/*.*") if "cache" not in str(p))[:8],
      sorted(p.name for p in model_dir.glob("*.bin")))
# ['encodec_32khz/config.json', 'encodec_32khz/model.safetensors', 't5-base/config.json', 't5-base/pytorch_model.bin',
#  't5-base/spiece.model'] ['compression_state_dict.bin', 'state_dict.bin']
assert (model_dir / "state_dict.bin").is_file() and subdir(str(model_dir), "spiece.model") is not None

# %% [markdown]
# ## Step 3. Inside `state_dict.bin`
#
# AudioCraft's export is a dict: `best_state` (the LM's state dict, fp16), `xp.cfg` (the whole
# training config as YAML text), a version. `checkpoint.config_from_audiocraft` rebuilds the
# `LMConfig`: sizes from the tensor shapes (dim from `emb.0.weight` [card + 1, dim], layers by
# counting, the feed-forward width from `linear1`), the pattern and `max_duration` (the training
# segment, 30 s) from `xp.cfg` (read by `checkpoint.read_xp_cfg`, PyYAML's `safe_load`). `lm.py` uses AudioCraft's
# parameter names, so the key map is the identity: every LM key of the file is a key of `LM(config)`,
# and the `condition_provider.*` tensors (the text conditioner's `output_proj`) are handed back for
# `TextConditioner`: `checkpoint.load_lm` (which `model.load_model` calls) checks this and copies the
# tensors into fp32. `torch.load(mmap=True)` reads the index without loading 840 MB.
# Target: the printed config; the key sets are equal.

# %%
pkg = torch.load(model_dir / "state_dict.bin", map_location="cpu", weights_only=True, mmap=True)
state = pkg["best_state"]
config = config_from_audiocraft(state, pkg["xp.cfg"])
print(f"{len(state)} tensors ({next(iter(state.values())).dtype}); xp.cfg {len(pkg['xp.cfg'].splitlines())} lines")
print(config)
# 36 tensors (torch.float16); xp.cfg 16 lines
# LMConfig(dim=32, num_heads=2, num_layers=2, hidden_scale=4, n_q=4, card=2048, pattern='delay', delays=(0, 1, 2, 3),
#          cross_attention=True, cross_attention_mask=False, cond_dim=32, frame_rate=50, max_duration=30.0,
#          extend_stride=18.0)
with torch.device("meta"):  # shapes only: no memory, no init time
    ours = LM(config).state_dict()
lm_keys = {k for k in state if not k.startswith("condition_provider.")}
assert lm_keys == set(ours) and all(state[k].shape == v.shape for k, v in ours.items())  # identity map
for k in ("emb.0.weight", "transformer.layers.0.cross_attention.in_proj_weight", "linears.3.weight",
          "condition_provider.conditioners.description.output_proj.weight"):
    print(f"{k:66s} {tuple(state[k].shape)}")
# emb.0.weight                                                       (2049, 32)
# transformer.layers.0.cross_attention.in_proj_weight                (96, 32)
# linears.3.weight                                                   (2048, 32)
# condition_provider.conditioners.description.output_proj.weight     (32, 32)
assert (config.n_q, config.card, config.delays, config.max_duration) == (4, 2048, (0, 1, 2, 3), 30.0)
del pkg, state

# %% [markdown]
# ## Step 4. The codec: official names -> ours
#
# Three naming schemes exist for the same EnCodec weights: the encodec repo and AudioCraft
# (`encoder.model.0.conv.conv.weight_g`: a wrapper module around a normalised conv around
# `nn.Conv1d`), and transformers (`encoder.layers.0.conv.weight_g`, or in newer versions with
# torch parametrizations `...conv.parametrizations.weight.original0`). `codec.py` keeps the
# layer indices and drops the wrappers; `checkpoint.rename_official` applies the regular
# expressions of `checkpoint.RENAMES` to every key. `checkpoint.load_codec` takes any of them: a
# transformers folder (reading config.json for the sizes), AudioCraft's
# `compression_state_dict.bin` (its `xp.cfg`), the original `encodec_24khz-*.th`, or this repo's
# checkpoints; it checks every name and shape.
# MusicGen's `compression_state_dict.bin` only names its codec, and says so.
# `weight_g` and `weight_v` are the two halves of weight normalisation (Salimans & Kingma 2016,
# arXiv 1602.07868), which every conv of AudioCraft's codec uses: the weight is w = g v / ||v||,
# with `weight_v` the direction v and `weight_g` the norm g of each output channel (of each input
# channel in a transposed conv: torch normalises over all dims but the first). At inference the two
# can be folded into one plain weight (`codec.weight_norm` caches it).
# The comparison with transformers is made on the CPU in fp32, where it is exact: on a GPU of the
# Ampere generation or newer, torch runs cuDNN convolutions in TF32 by default (TensorFloat-32, a
# tensor-core mode that rounds the inputs to a 10-bit mantissa, fp32 has 23: relative errors near 1e-3).
# Target: the rename table; 50 frames per second, 4 x 2048 codes; the pointer's error; in the
# miniature, the same codes and audio as transformers.

# %%
for pattern, repl in RENAMES:
    print(f"  {pattern:48s} -> {repl}")
examples = ["encoder.model.0.conv.conv.weight_g", "decoder.model.3.convtr.convtr.weight_v",
            "encoder.model.13.lstm.weight_ih_l0", "quantizer.vq.layers.0._codebook.embed",  # encodec / AudioCraft
            "encoder.layers.0.conv.parametrizations.weight.original0", "decoder.layers.3.conv.bias",
            "quantizer.layers.0.codebook.embed"]  # transformers
for k in examples:  # one at a time: several official names map to the same name of ours
    print(f"{k:58s} -> {next(iter(rename_official({k: None})))}")
# encoder.model.0.conv.conv.weight_g                         -> encoder.model.0.weight_g
# decoder.model.3.convtr.convtr.weight_v                     -> decoder.model.3.weight_v
# encoder.model.13.lstm.weight_ih_l0                         -> encoder.model.13.lstm.weight_ih_l0
# quantizer.vq.layers.0._codebook.embed                      -> quantizer.layers.0.embed
# encoder.layers.0.conv.parametrizations.weight.original0    -> encoder.model.0.weight_g   (= the first)
# decoder.layers.3.conv.bias                                 -> decoder.model.3.bias
# quantizer.layers.0.codebook.embed                          -> quantizer.layers.0.embed
try:
    load_codec(model_dir / "compression_state_dict.bin")
    print("compression_state_dict.bin holds the codec's weights (AudioGen's layout)")
except ValueError as e:
    print(str(e).replace(str(model_dir) + os.sep, ""))
# compression_state_dict.bin only points to the pretrained codec 'facebook/encodec_32khz': get that model's files
# (config.json and model weights) and pass their directory
codec_dir = subdir(str(model_dir), "config.json", avoid="spiece.model")  # as model.load_model finds it
codec = load_codec(codec_dir)  # on the CPU, in fp32: the comparison below is exact there (no TF32 convolutions)
print(f"{codec.sample_rate} Hz, hop {codec.hop_length}, {codec.frame_rate} frames/s, {codec.config.n_q} x "
      f"{codec.config.bins} codes, {n_params(codec) / 1e6:.2f}M params (encodec_32khz: "
      f"{n_params(Codec(CODEC_PRESETS['encodec_32khz'])) / 1e6:.2f}M)")
# 32000 Hz, hop 640, 50 frames/s, 4 x 2048 codes, 0.23M params (encodec_32khz: 56.88M)
assert (codec.frame_rate, codec.config.n_q, codec.config.bins) == (50, 4, 2048)
if hf_codec is not None:  # the miniature: the reference implementation is in memory
    wav = 0.5 * torch.sin(2 * math.pi * 220 * torch.arange(32000) / 32000).reshape(1, 1, -1)  # 1 s of A3
    with torch.no_grad():
        codes = codec.encode(wav)  # [B, K, T] = [1, 4, 50]
        ref_codes = hf_codec.encode(wav, bandwidth=2.2).audio_codes[0]  # transformers: [chunks, B, K, T]
        diff = (codec.decode(codes) - hf_codec.decode(ref_codes[None], [None]).audio_values).abs().max()
    print(f"codes {tuple(codes.shape)}, same as transformers: {torch.equal(codes, ref_codes)}; "
          f"decoded max |ours - transformers| = {diff:.1e}")
    # codes (1, 4, 50), same as transformers: True; decoded max |ours - transformers| = 0.0e+00
    assert torch.equal(codes, ref_codes) and diff < 1e-4

# %% [markdown]
# ## Step 5. T5: transformers' names are ours
#
# `t5.T5Encoder` uses the key names of transformers' `T5EncoderModel` (`shared`,
# `encoder.block.i.layer.0.SelfAttention.{q,k,v,o}`, the relative position table in block 0 only,
# `DenseReluDense.{wi,wo}`, RMS norms), so `checkpoint.load_t5` reads `config.json` for the sizes
# and copies the tensors by name; a full `T5ForConditionalGeneration` file such as t5-base's also
# holds the decoder, which is skipped. The tokenizer is T5's `spiece.model`.
# Target: the sizes; in the miniature, the same hidden states as transformers.

# %%
t5, tokenizer = load_t5(subdir(str(model_dir), "spiece.model"))  # on the CPU
print(f"T5 encoder: {t5.config.num_layers} layers, d_model {t5.config.d_model}, {n_params(t5) / 1e6:.2f}M params "
      f"(t5-base: {n_params(T5Encoder(T5_PRESETS['t5-base'])) / 1e6:.2f}M); {tokenizer.vocab_size} pieces")
# T5 encoder: 2 layers, d_model 32, 0.02M params (t5-base: 109.63M); 42 pieces
ids, mask = tokenizer.encode([PROMPT, "dog bark park"])  # [B, L], padded to the longest
if hf_t5 is not None:
    with torch.no_grad():
        diff = (t5(ids, mask) - hf_t5(input_ids=ids, attention_mask=mask.long()).last_hidden_state)[mask].abs().max()
    print(f"ids {tuple(ids.shape)}; hidden states max |ours - transformers| = {diff:.1e}")
    # ids (2, 31); hidden states max |ours - transformers| = 7.2e-07
    # (42 pieces learnt from 5 sentences split the prompt into 30 small pieces; t5-base's 32k keep words whole)
    assert diff < 1e-4

# %% [markdown]
# ## Step 6. All together: `model.load_model` and 5 seconds of music
#
# `model.load_model(folder, device)` (through `model.from_official` for a folder of official files)
# does steps 3-5 and wires the parts into one frozen `TextToAudio`: the T5 (frozen, prompts not
# normalised, as the release) feeds `TextConditioner` (`.conditioner`), whose `output_proj` comes
# from the LM's file; the LM is `.lm`; the codec (`.codec`) is the transformers folder if there is
# one, else `compression_state_dict.bin`. Its `generate` then samples as MusicGen does:
# classifier-free guidance with cfg_coef 3 (the prompt and the null condition as one batch of 2B
# rows), top-k 250, 50 frames per second over the delay pattern (S = T + 4 steps for T frames,
# counting step 0, the all-special start, which is given: T + 3 steps are sampled, tutorial 05),
# and decodes with the codec. On a GPU musicgen-small
# makes 5 s in seconds; on a CPU about a minute. The miniature's weights are random: its audio is
# noise, its length and format are what we check.
# Target: the parameter counts (musicgen-small: LM 419.58M, T5 encoder 109.63M, output_proj
# 0.79M, codec 56.88M), `09_prompt.wav` of the requested length and heard, `09_generated.png`.

# %%
model = load_model(str(model_dir), device)  # TextToAudio: .lm, .conditioner, .melody (None here), .codec
codec = model.codec
counts = {"LM": n_params(model.lm), "T5 encoder": n_params(model.conditioner.t5),
          "output_proj": n_params(model.conditioner.output_proj), "codec": n_params(codec)}
print(" | ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()))
# LM 0.56M | T5 encoder 0.02M | output_proj 0.00M | codec 0.23M   (miniature)
if REAL:  # the sizes of musicgen-small, built on the meta device (no weights)
    with torch.device("meta"):
        expected = n_params(LM(LM_PRESETS["musicgen-small"]))
    assert counts["LM"] == expected and counts["codec"] == n_params(Codec(CODEC_PRESETS["encodec_32khz"])), \
        f"{model_dir} does not hold musicgen-small"
duration = 5.0 if REAL else (1.0 if FAST else 2.0)
wav = model.generate([PROMPT], duration=duration, seed=0)  # [B, C, T] on the CPU
print(f"{PROMPT!r}: wav {tuple(wav.shape)}, {wav.shape[-1] / codec.sample_rate:.2f} s at {codec.sample_rate} Hz")
# '80s pop track with bassy drums and synth': wav (1, 1, 32000), 1.00 s at 32000 Hz   (fast mode)
assert wav.shape == (1, 1, round(duration * codec.sample_rate)) and wav.abs().max() <= 1

T = wav.shape[-1]
mel = torch.log10(1e-5 + mel_spectrogram(wav.float(), codec.sample_rate, 2048, 512))[0]  # [64, frames]
fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True, layout="constrained")
axes[0].plot(torch.arange(T) / codec.sample_rate, wav[0, 0], lw=0.3)
axes[0].set(ylabel="amplitude", ylim=(-1, 1))
axes[1].imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1,
               extent=(0, T / codec.sample_rate, 0, 64))
axes[1].set(xlabel="time (s)", ylabel="mel band")
fig.suptitle(f"{PROMPT!r}: " + ("musicgen-small" if REAL else "the miniature (random weights: noise)"))
save(fig, "09_generated.png")
listen(wav[0], codec.sample_rate, "09_prompt.wav")
assert sf.info(OUT / "09_prompt.wav").frames == round(duration * codec.sample_rate)

# %% [markdown]
# ## Errata and notes
#
# - Padded T5 positions in cross-attention: see tutorial 04, notes. For the official files ours
#   follows AudioCraft (`cross_attention_mask` False), not transformers' MusicGen, which masks them:
#   a batch of prompts of different lengths matches AudioCraft, a single prompt matches both.
# - On a GPU AudioCraft runs the LM layers in fp16; `TextToAudio.generate` uses bf16 autocast with
#   fp32 weights, so samples differ from AudioCraft's in the last bits and then in the draws. Same seed,
#   same machine: the same audio.
# - `checkpoint.load_t5` and `checkpoint.load_codec` read a folder's `pytorch_model.bin` or its
#   `model.safetensors` (the latter needs the safetensors package, which transformers installs).
# - The 48 kHz stereo EnCodec is not implemented; loading it names the unsupported flag.
# - `tests/test_codec.py`, `test_conditioners.py`, `test_lm.py` make the step 4-5 comparisons on
#   every module (transformers' MusicGen decoder included) and `tests/test_sample.py` samples
#   miniature folders of both codec layouts and of the melody model.
