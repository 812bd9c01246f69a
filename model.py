"""
The text-to-audio model assembled: conditioners -> LM -> codec, as AudioCraft's MusicGen and AudioGen
(models/genmodel.py). One definition for training, sampling, the tutorials and the evaluation.

    model = load_model("checkpoints")                  # this repo's files or a folder of official ones
    wav = model.generate(["dog bark park"], duration=5.0)   # [B, C, T] in [-1, 1]
    logits, ce = model(codes, texts)                   # training: cross-entropy per codebook [K]

Generation: prompts -> text conditioner -> (embeds [B, L, D], mask [B, L]) -> LM.generate (cross-attention) with CFG
(classifier-free guidance: conditional and null rows as one batch, logits = uncond + cfg_coef * (cond - uncond)),
top-k / top-p sampling -> codes [B, K, T] -> codec.decode. Melody models prepend a chroma embedding [B, chroma_len, D].

This repo's LM files (train_lm.py's ckpt.pt, an exported lm.pt) hold {'config': asdict(LMConfig), 'model': the LM's
state dict with the conditioners' tensors under AudioCraft's names (COND, MELODY below), 'conditioner': T5 config,
tokenizer file name, normalize, melody settings, finetune (false: a pretrained T5, frozen; its weights are stored all
the same, so an export needs no T5 folder), known (the piece ids a T5 trained here has seen), 'codec': path and hash of
the codec's weights}.

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284 (CFG with guidance scale 3, melody conditioning). Official code:
   audiocraft/models/genmodel.py (generate, generate_continuation), musicgen.py (generate_with_chroma)
2) AudioGen, Kreuk et al. 2022, arXiv:2209.15352. Official code: audiocraft/models/audiogen.py
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598
"""

import os
from contextlib import nullcontext

import torch
import torch.nn as nn

from checkpoint import load_codec, load_lm, load_state, load_t5, torch_load
from conditioners import MelodyConditioner, T5Config, TextConditioner, Tokenizer
from lm import codebook_cross_entropy

COND = "condition_provider.conditioners.description."  # AudioCraft's prefix of the text conditioner's keys
MELODY = "condition_provider.conditioners.self_wav."  # and of the chroma conditioner's


class TextToAudio(nn.Module):
    """The LM, its conditioners and the frozen codec as one module, seen whole by DDP, torch.compile, the optimizer."""

    def __init__(self, lm, text, melody=None, codec=None):
        super().__init__()
        self.lm, self.conditioner, self.melody = lm, text, melody
        self.codec = codec.eval().requires_grad_(False) if codec is not None else None  # never trained here

    def forward(self, codes, texts, chroma=None):
        """codes [B, K, T] long, texts [B] (str or None), chroma [B, chroma_len] long (melody models; None: the null
        melody) -> (logits [B, K, T, card], cross-entropy per codebook [K])."""
        embeds, mask = self.conditioner(texts)  # null rows: all zeros
        prepend = frames = None
        if self.melody is not None:
            chroma = chroma if chroma is not None else torch.zeros(len(codes), self.melody.chroma_len, dtype=torch.long)
            chroma = chroma.to(codes.device)
            if self.melody.fuse == "sum":  # one pitch class per codec frame: [B, T]
                chroma = self.melody.per_frame(chroma, codes.shape[2], self.lm.config.frame_rate)
            melody = self.melody.embed(chroma)[0]  # [B, chroma_len or T, D]
            prepend, frames = (melody, None) if self.melody.fuse == "prepend" else (None, melody)
        logits, _ = self.lm(codes, embeds, mask, prepend=prepend, frames=frames)  # logits[:, q, t] predicts codes[:, q, t]
        return logits, codebook_cross_entropy(logits, codes)

    def checkpoint(self):
        """One flat state dict, load_lm's: the LM's keys, then the conditioners' under AudioCraft's names."""
        melody = self.melody.state_dict().items() if self.melody is not None else []
        return {**self.lm.state_dict(), **{COND + k: v for k, v in self.conditioner.state_dict().items()},
                **{MELODY + k: v for k, v in melody}}

    def conditions(self, prompts, chroma=None, melody_wav=None, n_frames=None):
        """B prompts (+ a melody) -> the LM's conditioning for CFG, as LM.generate's keyword arguments: condition,
        condition_mask (text), prepend, null_prepend (melody, fuse 'prepend') or frames, null_frames (fuse 'sum': one
        embedding per codec frame of the n_frames generated)."""
        embeds, mask = self.conditioner(prompts)  # [B, L, D] (padded positions zeroed), [B, L]
        cond = dict(condition=embeds, condition_mask=mask)
        if self.melody is None:
            return cond
        B, sum_fuse, fr = len(prompts), self.melody.fuse == "sum", self.lm.config.frame_rate
        if chroma is None:  # the reference melody's pitch classes (None: the chroma of silence, "no melody")
            length = self.melody.frames_needed(n_frames, fr) if sum_fuse else None  # the whole output, not a window
            chroma = self.melody.chroma([melody_wav], self.codec.sample_rate, length).expand(B, -1)
        if sum_fuse:  # [B, n_frames]: the pitch class of each codec frame
            chroma = self.melody.per_frame(chroma, n_frames, fr)
        melody = self.melody.embed(chroma.to(embeds.device))[0]  # [B, chroma_len or n_frames, D]
        null = self.melody.embed(torch.zeros_like(chroma[:1]).to(embeds.device))[0].expand(B, -1, -1)
        if sum_fuse:
            return dict(cond, frames=melody, null_frames=null)
        if self.lm.config.cross_attention:  # this repo's 'prepend' melody models: text by cross-attention
            return dict(cond, prepend=melody, null_prepend=null)
        # MusicGen-melody: [chroma | text] prepended; null = the chroma of silence and zero text
        return dict(prepend=torch.cat([melody, embeds], 1), null_prepend=torch.cat([null, torch.zeros_like(embeds)], 1))

    @torch.no_grad()
    def generate(self, prompts, duration=5.0, cfg_coef=3.0, top_k=250, top_p=0.0, temperature=1.0, seed=0,
                 melody_wav=None, chroma=None, continuation=None, callback=None):
        """B prompts -> wav [B, C, round(duration * sample_rate)] in [-1, 1], on the CPU; melody_wav, continuation:
        [C, T] at the codec's rate (data.load_audio) or None; chroma: pitch classes [B, chroma_len], not melody_wav.
        Same seed, same audio (same machine, device, threads). ValueError: stop-word prompt, impossible duration..."""
        c, codec, B = self.lm.config, self.codec, len(prompts)
        device = self.lm.out_norm.weight.device
        cond = self.conditions(prompts, chroma, melody_wav, n_frames=int(duration * c.frame_rate))
        prompt = None
        if continuation is not None:  # the audio prompt, as codes [B, K, P]
            prompt = codec.encode(continuation[None].to(device), n_q=c.n_q).repeat(B, 1, 1)
        g = torch.Generator(device).manual_seed(seed)
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        with ctx:
            codes = self.lm.generate(**cond, duration=duration, prompt=prompt,
                                     cfg_coef=cfg_coef, temperature=temperature, top_k=top_k, top_p=top_p,
                                     generator=g, callback=callback)  # [B, K, T]
        wav = codec.decode(codes).float().clamp(-1, 1).cpu()  # [B, C, T * hop]
        return wav[..., :round(duration * codec.sample_rate)]

# -----------------------------------------------------------------------------
# loading: this repo's files and the official ones, by one path


def subdir(root, want, avoid=None):
    """The first folder inside root (by name) holding the file `want` and not the file `avoid`, or None."""
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if os.path.isfile(os.path.join(d, want)) and not (avoid and os.path.isfile(os.path.join(d, avoid))):
            return d
    return None


def from_checkpoint(path, codec=None, ckpt=None):
    """This repo's LM checkpoint (ckpt.pt or an exported lm.pt) -> (TextToAudio, the checkpoint dict); conditioners
    from the stored settings and tokenizer (beside it); codec: the one given, else the stored path (beside it first).
    ckpt: the file's contents, when the caller has read them already."""
    ckpt = torch_load(path, "LM checkpoint") if ckpt is None else ckpt  # read once: load_lm gets the dict
    lm, cond_state = load_lm(path, ckpt=ckpt)
    meta = ckpt.get("conditioner")
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has no 'conditioner' entry: not a checkpoint of train_lm.py")
    # known: the pieces a T5 trained here has seen (others read as <unk>); finetune false: a pretrained T5, frozen
    tokenizer = Tokenizer(os.path.join(os.path.dirname(path), meta["tokenizer"]), known=meta.get("known"))
    text = TextConditioner(T5Config(**meta["t5"]), tokenizer, lm.config.dim, finetune=meta.get("finetune", True),
                           normalize=meta["normalize"])
    load_state(text, {k[len(COND):]: v for k, v in cond_state.items() if k.startswith(COND)}, path)
    melody = None
    if meta.get("melody"):  # trained with --melody: the chroma conditioner's settings and output_proj
        melody = MelodyConditioner(lm.config.dim, **meta["melody"])
        load_state(melody, {k[len(MELODY):]: v for k, v in cond_state.items() if k.startswith(MELODY)}, path)
    if codec is None:
        codec_path = os.path.join(os.path.dirname(path), ckpt["codec"]["path"])  # exports: codec.pt next to lm.pt
        codec = load_codec(codec_path if os.path.isfile(codec_path) else ckpt["codec"]["path"])
    return TextToAudio(lm, text, melody, codec), ckpt


def from_official(folder):
    """A folder of AudioCraft's files -> TextToAudio: state_dict.bin (the LM and output_proj), a T5 folder inside it
    (config.json, weights, spiece.model: t5-base/ for MusicGen, t5-large/ for AudioGen) and the codec, a transformers
    EncodecModel folder inside it (MusicGen's facebook/encodec_32khz), else compression_state_dict.bin."""
    lm, cond_state = load_lm(os.path.join(folder, "state_dict.bin"))
    t5_dir = subdir(folder, "spiece.model")
    if t5_dir is None:
        raise FileNotFoundError(f"no T5 folder (config.json, weights, spiece.model) inside {folder}: put the T5 the "
                                f"model was trained with there (t5-base/ for MusicGen, t5-large/ for AudioGen)")
    # AudioCraft's released models: a frozen pretrained T5, prompts not normalised; only output_proj is stored
    text = TextConditioner(*load_t5(t5_dir), lm.config.dim)
    load_state(text.output_proj, {k[len(COND + "output_proj."):]: v for k, v in cond_state.items()
                                  if k.startswith(COND + "output_proj.")}, folder)
    codec = load_codec(subdir(folder, "config.json", avoid="spiece.model") or
                       os.path.join(folder, "compression_state_dict.bin"))
    melody = None
    if any(k.startswith(MELODY) for k in cond_state):  # musicgen-melody: chroma prepended to the sequence
        melody = MelodyConditioner(lm.config.dim, codec.sample_rate, duration=lm.config.max_duration)
        load_state(melody, {k[len(MELODY):]: v for k, v in cond_state.items()  # chroma.spec.window: not needed
                            if k.startswith(MELODY + "output_proj.")}, folder)
    return TextToAudio(lm, text, melody, codec)


def load_model(path, device="cpu"):
    """For inference: this repo's export folder (lm.pt, codec.pt, tokenizer.model) or LM checkpoint file, or a
    folder of official AudioCraft files (see from_official) -> TextToAudio in eval mode, frozen, on device."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found")
    if os.path.basename(path) == "state_dict.bin":  # an official LM file: its folder holds the rest
        path = os.path.dirname(path) or "."
    if os.path.isfile(path) or os.path.isfile(os.path.join(path, "lm.pt")):  # this repo's files
        model = from_checkpoint(path if os.path.isfile(path) else os.path.join(path, "lm.pt"))[0]
    elif os.path.isfile(os.path.join(path, "state_dict.bin")):
        model = from_official(path)
    else:
        raise FileNotFoundError(f"no lm.pt (this repo) nor state_dict.bin (AudioCraft) in {path}: train a model "
                                f"with train_lm.py or download an official one")
    c, codec = model.lm.config, model.codec
    if c.card != codec.config.bins or c.n_q > codec.config.n_q or c.frame_rate != codec.frame_rate:
        raise ValueError(f"the LM ({c.n_q} x {c.card} codes, {c.frame_rate} Hz) does not fit the codec "
                         f"({codec.config.n_q} x {codec.config.bins}, {codec.frame_rate} Hz)")
    return model.to(device).eval().requires_grad_(False)
