"""
The text-to-audio model assembled: conditioners -> LM -> codec, as AudioCraft's MusicGen and
AudioGen (models/genmodel.py). One definition for training, sampling, the tutorials and the
evaluation.

    model = load_model("checkpoints")              # this repo's files or a folder of official ones
    wav = model.generate(["dog bark park"], duration=5.0)   # [B, C, T] in [-1, 1]
    logits, ce = model(codes, texts)               # training: cross-entropy per codebook [K]

Generation: prompts -> text conditioner -> (embeds [B, L, D], mask [B, L]) -> LM.generate
(cross-attention) with CFG (classifier-free guidance: conditional and null rows as one batch,
logits = uncond + cfg_coef * (cond - uncond)), top-k / top-p sampling -> codes [B, K, T] ->
codec.decode. Melody models prepend a chroma embedding [B, chroma_len, D] or add one per frame.

This repo's LM files (train_lm.py's ckpt.pt, an exported lm.pt) hold
    'config':      asdict(LMConfig)
    'model':       the LM's state dict, with the conditioners' tensors under AudioCraft's names
                   (COND, MELODY below)
    'conditioner': the T5 config, tokenizer file name, normalize, melody settings, finetune (false:
                   a pretrained T5, frozen; its weights are stored all the same, so an export needs
                   no T5 folder), known (the piece ids a T5 trained here has seen)
    'codec':       the path and hash of the codec's weights

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284 (CFG with guidance scale 3, melody conditioning).
   Official code: audiocraft/models/genmodel.py (generate, generate_continuation), musicgen.py
   (generate_with_chroma)
2) AudioGen, Kreuk et al. 2022, arXiv:2209.15352. Official code: audiocraft/models/audiogen.py
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598
"""

import json
import os
from contextlib import nullcontext

import torch
import torch.nn as nn

from checkpoint import (cfg_get, config_from_hf, lm_from_hf, load_codec, load_lm, load_state,
                        load_t5, read_hf_weights, read_xp_cfg, rename_official, t5_from_hf,
                        torch_load)
from codec import Codec
from conditioners import MelodyConditioner, TextConditioner, Tokenizer
from lm import codebook_cross_entropy
from t5 import T5Config

# AudioCraft's prefixes of the text conditioner's keys and of the chroma conditioner's
COND = "condition_provider.conditioners.description."
MELODY = "condition_provider.conditioners.self_wav."


def strip_prefix(state, prefix):
    """The entries of a state dict whose key starts with prefix, with the prefix cut off."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class TextToAudio(nn.Module):
    """The LM, its conditioners and the frozen codec as one module, seen whole by DDP, torch.compile
    and the optimizer. t5_name: the hub name of a pretrained T5 (t5-base, ...: its folder's name),
    which AudioCraft's xp.cfg names it by (export.py); None: a T5 trained here."""

    def __init__(self, lm, text, melody=None, codec=None, t5_name=None):
        super().__init__()
        self.lm = lm
        self.conditioner = text
        self.melody = melody
        self.t5_name = t5_name
        if codec is not None:
            codec = codec.eval().requires_grad_(False)  # never trained here
        self.codec = codec

    def forward(self, codes, texts, chroma=None):
        """codes [B, K, T] long, texts [B] (str or None), chroma [B, chroma_len] long (melody
        models; None: the null melody) -> (logits [B, K, T, card], cross-entropy per codebook
        [K])."""
        embeds, mask = self.conditioner(texts)  # null rows: all zeros
        prepend = None
        frames = None
        if self.melody is not None:
            if chroma is None:  # the null melody: pitch class 0 everywhere
                chroma = torch.zeros(len(codes), self.melody.chroma_len, dtype=torch.long)
            # [B, chroma_len or T, D]
            melody = self.melody_embeds(chroma.to(codes.device), codes.shape[2])
            if self.melody.fuse == "prepend" and self.lm.config.cross_attention:
                prepend = melody  # before the sequence; the text by cross-attention
            elif self.melody.fuse == "prepend":  # MusicGen-melody: [chroma | text], as conditions
                prepend, embeds, mask = torch.cat([melody, embeds], 1), None, None
            else:
                frames = melody   # added to the steps of each frame
        # logits[:, q, t] predicts codes[:, q, t]
        logits, _ = self.lm(codes, embeds, mask, prepend=prepend, frames=frames)
        return logits, codebook_cross_entropy(logits, codes)

    def melody_embeds(self, chroma, n_frames):
        """Pitch classes [B, L] -> the melody as the LM takes it: [B, L, D] to prepend, or, with
        the 'sum' fuse, [B, n_frames, D], one embedding per codec frame
        (MelodyConditioner.per_frame)."""
        if self.melody.fuse == "sum":
            fr = self.lm.config.frame_rate
            chroma = self.melody.per_frame(chroma, n_frames, fr)  # [B, n_frames]
        return self.melody.embed(chroma)[0]

    def checkpoint(self):
        """One flat state dict, load_lm's: the LM's keys, then the conditioners' under AudioCraft's
        names."""
        state = dict(self.lm.state_dict())
        for k, v in self.conditioner.state_dict().items():
            state[COND + k] = v
        if self.melody is not None:
            for k, v in self.melody.state_dict().items():
                state[MELODY + k] = v
        return state

    def conditions(self, prompts, chroma=None, melody_wav=None, n_frames=None):
        """B prompts (+ a melody) -> the LM's conditioning for CFG, as LM.generate's keyword
        arguments: condition, condition_mask (text), prepend, null_prepend (melody, fuse 'prepend')
        or frames, null_frames (fuse 'sum': one embedding per codec frame of the n_frames
        generated)."""
        embeds, mask = self.conditioner(prompts)  # [B, L, D] (padded positions zeroed), [B, L]
        cond = dict(condition=embeds, condition_mask=mask)
        if self.melody is None:
            return cond
        B = len(prompts)
        sum_fuse = self.melody.fuse == "sum"
        fr = self.lm.config.frame_rate
        # the reference melody's pitch classes (melody_wav None: the chroma of silence, "no melody")
        if chroma is None:
            length = None
            if sum_fuse:  # the whole output, not a window
                length = self.melody.frames_needed(n_frames, fr)
            chroma = self.melody.chroma([melody_wav], self.codec.sample_rate, length).expand(B, -1)
        chroma = chroma.to(embeds.device)
        melody = self.melody_embeds(chroma, n_frames)  # [B, chroma_len or n_frames, D]
        # the null melody: pitch class 0 everywhere
        null = self.melody_embeds(torch.zeros_like(chroma[:1]), n_frames).expand(B, -1, -1)
        if sum_fuse:
            return dict(cond, frames=melody, null_frames=null)
        # this repo's 'prepend' melody models: text by cross-attention
        if self.lm.config.cross_attention:
            return dict(cond, prepend=melody, null_prepend=null)
        # MusicGen-melody: [chroma | text] prepended; null = the chroma of silence and zero text
        prepend = torch.cat([melody, embeds], 1)                        # [B, chroma_len + L, D]
        null_prepend = torch.cat([null, torch.zeros_like(embeds)], 1)
        return dict(prepend=prepend, null_prepend=null_prepend)

    @torch.no_grad()
    def generate(self, prompts, duration=5.0, cfg_coef=3.0, top_k=250, top_p=0.0, temperature=1.0,
                 seed=0, melody_wav=None, chroma=None, continuation=None, callback=None,
                 clamp=True):
        """B prompts -> wav [B, C, round(duration * sample_rate)] clamped to [-1, 1], on the CPU;
        clamp=False: the decoder's output as it is, which can overshoot (sample.py scales it with
        audio.write_audio, as AudioCraft's audio_write). melody_wav: [T] or [C, T], continuation:
        [C, T], at the codec's rate (audio.load_audio), or None; chroma: pitch classes
        [B, chroma_len], instead of melody_wav. Same seed, same audio (same machine, device,
        threads). ValueError: stop-word prompt, impossible duration..."""
        c, codec = self.lm.config, self.codec
        B = len(prompts)
        device = self.lm.out_norm.weight.device
        cond = self.conditions(prompts, chroma, melody_wav, n_frames=int(duration * c.frame_rate))
        prompt = None
        if continuation is not None:  # the audio prompt, as codes [B, K, P]
            prompt = codec.encode(continuation[None].to(device), n_q=c.n_q).repeat(B, 1, 1)
        g = torch.Generator(device).manual_seed(seed)
        cuda = device.type == "cuda"
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        with ctx:
            codes = self.lm.generate(**cond, duration=duration, prompt=prompt, cfg_coef=cfg_coef,
                                     temperature=temperature, top_k=top_k, top_p=top_p,
                                     generator=g, callback=callback)  # [B, K, T]
        wav = codec.decode(codes).float().cpu()  # [B, C, T * hop]
        if clamp:
            wav = wav.clamp(-1, 1)
        return wav[..., :round(duration * codec.sample_rate)]

# -----------------------------------------------------------------------------
# loading: this repo's files and the official ones, by one path


def subdir(root, want, avoid=None):
    """The first folder inside root (by name) holding the file `want` and not the file `avoid`, or
    None."""
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, want)):
            continue
        if avoid and os.path.isfile(os.path.join(d, avoid)):
            continue
        return d
    return None


def from_checkpoint(path, codec=None, ckpt=None):
    """This repo's LM checkpoint (ckpt.pt or an exported lm.pt) -> (TextToAudio, the checkpoint
    dict); conditioners from the stored settings and tokenizer (beside it); codec: the one given,
    else the stored path (beside it first). ckpt: the file's contents, when the caller has read
    them already."""
    if ckpt is None:
        ckpt = torch_load(path, "LM checkpoint")  # read once: load_lm gets the dict
    lm, cond_state = load_lm(path, ckpt=ckpt)
    meta = ckpt.get("conditioner")
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has no 'conditioner' entry: not a checkpoint of train_lm.py")
    # known: the pieces a T5 trained here has seen (others read as <unk>); finetune false: a
    # pretrained T5, frozen
    tokenizer_path = os.path.join(os.path.dirname(path), meta["tokenizer"])
    tokenizer = Tokenizer(tokenizer_path, known=meta.get("known"))
    text = TextConditioner(T5Config(**meta["t5"]), tokenizer, lm.config.dim,
                           finetune=meta.get("finetune", True), normalize=meta["normalize"])
    load_state(text, strip_prefix(cond_state, COND), path)
    melody = None
    # trained with --melody: the chroma conditioner's settings and output_proj
    if meta.get("melody"):
        melody = MelodyConditioner(lm.config.dim, **meta["melody"])
        load_state(melody, strip_prefix(cond_state, MELODY), path)
    if codec is None:
        # exports: codec.pt next to lm.pt
        codec_path = os.path.join(os.path.dirname(path), ckpt["codec"]["path"])
        if not os.path.isfile(codec_path):
            codec_path = ckpt["codec"]["path"]  # the stored path as is
        codec = load_codec(codec_path)
    return TextToAudio(lm, text, melody, codec, meta.get("t5_name")), ckpt


def from_official(folder):
    """A folder of AudioCraft's files -> TextToAudio: state_dict.bin (the LM and output_proj), a T5
    folder inside it (config.json, weights, spiece.model: t5-base/ for MusicGen, t5-large/ for
    AudioGen) and the codec, a transformers EncodecModel folder inside it (MusicGen's
    facebook/encodec_32khz), else compression_state_dict.bin."""
    path = os.path.join(folder, "state_dict.bin")
    pkg = torch_load(path, "LM checkpoint")  # read once: load_lm gets the dict
    lm, cond_state = load_lm(path, ckpt=pkg)
    t5_dir = subdir(folder, "spiece.model")
    if t5_dir is None:
        raise FileNotFoundError(f"no T5 folder (config.json, weights, spiece.model) inside "
                                f"{folder}: put the T5 the model was trained with there (t5-base/ "
                                f"for MusicGen, t5-large/ for AudioGen)")
    # AudioCraft's released models: a frozen pretrained T5, prompts not normalised; only output_proj
    # is stored
    text = TextConditioner(*load_t5(t5_dir), lm.config.dim)
    load_state(text.output_proj, strip_prefix(cond_state, COND + "output_proj."), folder)
    codec_path = subdir(folder, "config.json", avoid="spiece.model")  # a transformers codec folder
    if codec_path is None:
        codec_path = os.path.join(folder, "compression_state_dict.bin")
    codec = load_codec(codec_path)
    melody = None
    # musicgen-melody: chroma prepended to the sequence; the STFT size from xp.cfg
    if any(k.startswith(MELODY) for k in cond_state):
        chroma = cfg_get(read_xp_cfg(pkg.get("xp.cfg", "")), "conditioners.self_wav.chroma_stem")
        chroma = chroma if isinstance(chroma, dict) else {}
        melody = MelodyConditioner(lm.config.dim, codec.sample_rate, chroma.get("n_chroma", 12),
                                   chroma.get("radix2_exp", 14), lm.config.max_duration)
        stored = strip_prefix(cond_state, MELODY)
        # only output_proj: the stored chroma.spec.window is not needed
        kept = {k: v for k, v in stored.items() if k.startswith("output_proj.")}
        load_state(melody, kept, folder)
    return TextToAudio(lm, text, melody, codec, os.path.basename(os.path.normpath(t5_dir)))


def from_transformers(folder):
    """transformers' MusicGen folder (MusicgenForConditionalGeneration.save_pretrained: config.json
    with model_type 'musicgen', model.safetensors or pytorch_model.bin; spiece.model beside them)
    -> TextToAudio: text_encoder.* (a T5), audio_encoder.* (an EncodecModel), decoder.*
    (checkpoint.lm_from_hf) and enc_to_dec_proj (output_proj). generation_config.json's max_length
    gives max_duration (default 30 s)."""
    def read(name, default=None):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return default
        with open(path) as f:
            return json.load(f)

    hf = read("config.json", {})
    if hf.get("model_type") != "musicgen":
        raise ValueError(f"{folder}/config.json describes a {hf.get('model_type')!r} model, not "
                         f"transformers' text MusicGen ('musicgen')")
    spiece = os.path.join(folder, "spiece.model")
    if not os.path.isfile(spiece):
        raise FileNotFoundError(f"{spiece} missing: put the T5 tokenizer's spiece.model there")
    state = read_hf_weights(folder, "MusicGen")
    codec = Codec(config_from_hf(hf["audio_encoder"], folder))
    load_state(codec, rename_official(strip_prefix(state, "audio_encoder.")), folder)
    fr = codec.frame_rate
    max_length = read("generation_config.json", {}).get("max_length", 30 * fr)
    lm = lm_from_hf(hf["decoder"], strip_prefix(state, "decoder."), fr, max_length / fr, folder)
    t5 = t5_from_hf(hf["text_encoder"], strip_prefix(state, "text_encoder."), folder)
    text = TextConditioner(t5, Tokenizer(spiece), lm.config.dim)
    proj = strip_prefix(state, "enc_to_dec_proj.")
    if not proj:  # transformers has none where the T5 is as wide as the LM: the identity
        proj = {"weight": torch.eye(lm.config.dim), "bias": torch.zeros(lm.config.dim)}
    load_state(text.output_proj, proj, folder)
    name = hf["text_encoder"].get("_name_or_path") or None
    return TextToAudio(lm, text, None, codec.eval(), name)


def load_model(path, device="cpu"):
    """For inference: this repo's export folder (lm.pt, codec.pt, tokenizer.model) or LM checkpoint
    file, a folder of official AudioCraft files (see from_official) or transformers' MusicGen
    folder (from_transformers) -> TextToAudio in eval mode, frozen, on device."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found")
    if os.path.basename(path) == "state_dict.bin":  # an official LM file: its folder holds the rest
        path = os.path.dirname(path) or "."
    if os.path.isfile(path):  # this repo's LM checkpoint
        model = from_checkpoint(path)[0]
    elif os.path.isfile(os.path.join(path, "lm.pt")):  # this repo's export folder
        model = from_checkpoint(os.path.join(path, "lm.pt"))[0]
    elif os.path.isfile(os.path.join(path, "state_dict.bin")):
        model = from_official(path)
    elif os.path.isfile(os.path.join(path, "config.json")):
        model = from_transformers(path)
    else:
        raise FileNotFoundError(f"no lm.pt (this repo), state_dict.bin (AudioCraft) nor "
                                f"config.json (transformers) in {path}: train a model with "
                                f"train_lm.py or download an official one")
    c, codec = model.lm.config, model.codec
    if c.card != codec.config.bins or c.n_q > codec.config.n_q or c.frame_rate != codec.frame_rate:
        raise ValueError(f"the LM ({c.n_q} x {c.card} codes, {c.frame_rate} Hz) does not fit the "
                         f"codec ({codec.config.n_q} x {codec.config.bins}, "
                         f"{codec.frame_rate} Hz)")
    return model.to(device).eval().requires_grad_(False)
