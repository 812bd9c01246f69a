"""
Checkpoint I/O in one place: this repo's files and the official ones, read from local files only.

    save_atomic(obj, path)             every write: a temporary file, then a rename
    load_codec(path)                   this repo's codec or an official one (AudioCraft, EnCodec,
                                       transformers)
    load_lm(path)                      this repo's LM checkpoint or AudioCraft's state_dict.bin
    load_t5(folder)                    a transformers T5 folder (config.json, weights, spiece.model)
    lm_from_hf(config, state, ...)     the decoder of transformers' MusicGen (model.load_model reads
                                       the whole folder)
    load_entropy_lm(path, frame_rate)  this repo's entropy LM or the official encodec_lm_24khz-*.th

Official names map to ours by short rename lists (codec, transformers' MusicGen decoder) or not at
all (AudioCraft's LM, T5): each loader is a loop with shape checks, each failure one line naming
the file and the fix. torch.load(weights_only=True): a checkpoint cannot run code.

References:
1) EnCodec checkpoints: facebookresearch/encodec encodec/model.py; AudioCraft's
   audiocraft/models/loaders.py (compression_state_dict.bin, state_dict.bin: {'best_state',
   'xp.cfg'}), audiocraft/utils/export.py; the entropy LM: encodec/model.py
   EncodecModel.get_lm_model (a bare LMModel state dict)
2) transformers: models/encodec/convert_encodec_checkpoint_to_pytorch.py (its key names), models/t5,
   models/musicgen/convert_musicgen_transformers.py (rename_keys), configuration_musicgen.py
"""

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, fields, replace

import torch

from codec import PRESETS as CODEC_PRESETS, Codec, CodecConfig
from conditioners import Tokenizer
from entropy import EntropyLM, EntropyLMConfig
from lm import LM, LMConfig
from quantizer import n_q_for_bandwidth
from t5 import T5Config, T5Encoder

# -----------------------------------------------------------------------------
# helpers every loader and writer uses


def save_atomic(obj, path):
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    torch.save(obj, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def torch_load(path, what):
    """torch.load(weights_only=True) with one-line errors for a missing or unreadable file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}); "
                         f"is the file complete? download or train it again") from None


def load_state(model, state, source):
    """load_state_dict with one-line errors naming the first mismatching keys or shapes."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and value.shape != own[key].shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, the architecture "
                             f"expects {tuple(own[key].shape)}; wrong preset?")
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not fit the architecture (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); wrong preset or not the right kind of "
                         f"checkpoint?")
    model.load_state_dict(state)


def half(state):
    """A state dict in fp16 for shipping: floating tensors whose values fit fp16's range (< 65504),
    the rest as is."""
    out = {}
    for k, v in state.items():
        fits = v.is_floating_point() and v.abs().max() < 6e4
        out[k] = v.half() if fits else v
    return out


def read_xp_cfg(text):
    """AudioCraft's stored training config (`xp.cfg`, OmegaConf's YAML) -> nested dicts.
    Only it imports PyYAML."""
    try:
        import yaml
    except ImportError:
        raise ImportError("reading AudioCraft's xp.cfg needs PyYAML: pip install pyyaml") from None
    return yaml.safe_load(text) or {}


def cfg_get(cfg, path, default=None):
    """cfg["a"]["b"] for path "a.b", following OmegaConf's ${x.y} references."""
    node = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    if isinstance(node, str):
        ref = re.fullmatch(r"\$\{([\w.]+)\}", node)  # "${a.b}": the value at a.b
        if ref:
            return cfg_get(cfg, ref.group(1), default)
    return node

# -----------------------------------------------------------------------------
# the codec: four formats

# Official key -> ours, applied in order. [enc]/[ac]: SConv1d.conv (NormConv1d).conv (nn.Conv1d);
# HF transformers: EncodecConv1d.conv, layers instead of model, codebook instead of _codebook;
# new torch weight-norm parametrizations store g and v as original0 and original1.
RENAMES = (
    (r"\.parametrizations\.weight\.original0$", ".weight_g"),
    (r"\.parametrizations\.weight\.original1$", ".weight_v"),
    (r"\.(conv|convtr)\.(conv|convtr)\.", "."),
    (r"\.conv\.(?=weight|bias)", "."),
    (r"^(encoder|decoder)\.layers\.", r"\1.model."),
    (r"^quantizer\.(vq\.)?layers\.(\d+)\.(_codebook|codebook)\.", r"quantizer.layers.\2."),
)


def rename_official(state_dict):
    """Official codec state dict ([enc], [ac] or HF names) -> codec.py's names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _unsupported(source, found):
    """Fail loudly on architecture flags codec.py does not implement (never a silently wrong
    model)."""
    for name, value, expected in found:
        if value is not None and value != expected:
            raise ValueError(f"{source}: {name}={value!r} is not supported (only {expected!r}); "
                             f"codec.py implements the EnCodec 24 kHz / 32 kHz / 16 kHz models")


def config_from_xp_cfg(text, source):
    """CodecConfig from the YAML config AudioCraft stores in compression_state_dict.bin."""
    cfg = read_xp_cfg(text)

    def g(path):
        return cfg_get(cfg, path)

    if g("compression_model") != "encodec":
        raise ValueError(f"{source}: compression_model is {g('compression_model')!r}, expected "
                         "'encodec'")
    expected = {"seanet.norm": "weight_norm", "encodec.renormalize": False,
                "seanet.n_residual_layers": 1, "seanet.kernel_size": 7,
                "seanet.last_kernel_size": 7,
                "seanet.residual_kernel_size": 3, "seanet.compress": 2, "seanet.activation": "ELU",
                "seanet.disable_norm_outer_blocks": 0, "seanet.decoder.trim_right_ratio": 1.0,
                "seanet.decoder.final_activation": None}
    found = []
    for name, value in expected.items():
        setting = g(name)
        if name == "encodec.renormalize":
            setting = setting or False  # absent or empty reads as off
        found.append((name, setting, value))
    _unsupported(source, found)
    return CodecConfig(
        sample_rate=g("sample_rate"), channels=g("channels"), ratios=tuple(g("seanet.ratios")),
        n_filters=g("seanet.n_filters"), dimension=g("seanet.dimension"),
        causal=bool(g("seanet.causal")), pad_mode=g("seanet.pad_mode"),
        true_skip=g("seanet.true_skip"), lstm=g("seanet.lstm"), n_q=g("rvq.n_q"),
        bins=g("rvq.bins"), q_dropout=bool(g("rvq.q_dropout")), decay=g("rvq.decay"),
        kmeans_iters=g("rvq.kmeans_iters"),
        threshold_ema_dead_code=g("rvq.threshold_ema_dead_code"))


def config_from_hf(hf, source):
    """CodecConfig from a transformers EncodecConfig (config.json as a dict)."""
    expected = {"norm_type": "weight_norm", "normalize": False, "num_residual_layers": 1,
                "kernel_size": 7, "last_kernel_size": 7, "compress": 2, "residual_kernel_size": 3,
                "trim_right_ratio": 1.0}
    _unsupported(source, [(k, hf.get(k), v) for k, v in expected.items()])
    config = CodecConfig(
        sample_rate=hf["sampling_rate"], channels=hf["audio_channels"],
        ratios=tuple(hf["upsampling_ratios"]), n_filters=hf["num_filters"],
        dimension=hf["hidden_size"], causal=hf["use_causal_conv"], pad_mode=hf["pad_mode"],
        true_skip=not hf["use_conv_shortcut"], lstm=hf["num_lstm_layers"], bins=hf["codebook_size"])
    # HF derives the number of codebooks from the largest target bandwidth
    frame_rate = math.ceil(config.sample_rate / math.prod(config.ratios))
    config.n_q = n_q_for_bandwidth(max(hf["target_bandwidths"]), frame_rate, config.bins)
    return config


def read_hf_weights(folder, what):
    """The weights of a transformers model folder: pytorch_model.bin or model.safetensors."""
    bin_path = os.path.join(folder, "pytorch_model.bin")
    st_path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(bin_path) and not os.path.isfile(st_path):
        raise FileNotFoundError(f"{folder} has neither pytorch_model.bin nor model.safetensors: "
                                f"download the whole {what} folder")
    if not os.path.isfile(bin_path):
        try:
            # installed with transformers, which wrote the file
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"{st_path} needs the safetensors package: pip install "
                              "safetensors") from None
    path = bin_path if os.path.isfile(bin_path) else st_path
    try:
        if path == bin_path:
            return torch.load(path, map_location="cpu", weights_only=True)
        return load_file(path)
    except Exception as e:  # a truncated zip, a pickle error, a bad safetensors header
        raise ValueError(f"cannot read {path} ({type(e).__name__}); "
                         f"download the {what} folder again") from None


def codec_config(stored, path):
    """CodecConfig from the 'config' dict of this repo's checkpoints (asdict: the ratios come back
    as a list); one line if the dict is another model's config (path names the file)."""
    names = {f.name for f in fields(CodecConfig)}
    if not set(stored) <= names:
        raise ValueError(f"{path} is not a codec checkpoint (its config has "
                         f"{sorted(set(stored) - names)[:3]}); is it an LM checkpoint?")
    return CodecConfig(**{**stored, "ratios": tuple(stored["ratios"])})


def load_codec(path, preset=None):
    """Load a Codec (in eval mode) from any of these files:
    - this repo's checkpoint: {'config': asdict(CodecConfig), 'model': state_dict, ...};
    - AudioCraft's compression_state_dict.bin: {'best_state': state_dict, 'xp.cfg': YAML};
    - the original EnCodec files (encodec_24khz-*.th, bare state dicts): architecture `preset`, else
      the file name's;
    - a transformers EncodecModel directory (config.json + weights), e.g. facebook/encodec_32khz."""
    path = str(path)
    if preset is not None and preset not in CODEC_PRESETS:
        raise ValueError(f"unknown codec preset {preset!r}; choose one of "
                         f"{', '.join(CODEC_PRESETS)}")
    if os.path.isdir(path):
        cfg_path = os.path.join(path, "config.json")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"{path} has no config.json; expected a transformers "
                                    "EncodecModel directory")
        with open(cfg_path) as f:
            config = config_from_hf(json.load(f), cfg_path)
        state = read_hf_weights(path, "codec")
    else:
        ckpt = torch_load(path, "codec checkpoint")
        if not isinstance(ckpt, dict):
            raise ValueError(f"{path} holds a {type(ckpt).__name__}, not a codec checkpoint")
        if "pretrained" in ckpt:  # AudioCraft's pointer to a transformers model
            raise ValueError(f"{path} only points to the pretrained codec {ckpt['pretrained']!r}: "
                             "get that model's files (config.json and model weights) and pass "
                             "their directory")
        if "best_state" in ckpt and "xp.cfg" in ckpt:
            config = config_from_xp_cfg(ckpt["xp.cfg"], path)
            # training checkpoints nest the model
            state = ckpt["best_state"].get("model", ckpt["best_state"])
        elif "config" in ckpt and "model" in ckpt:
            config = codec_config(ckpt["config"], path)
            state = ckpt["model"]
        elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):  # a bare state dict
            # the preset the file name starts with, e.g. encodec_24khz-d7cc33bc.th
            if preset is None:
                name = os.path.basename(path)
                preset = next((p for p in CODEC_PRESETS if name.startswith(p)), None)
            if preset is None:
                raise ValueError(f"{path} is a bare state dict: pass preset= one of "
                                 f"{', '.join(CODEC_PRESETS)}")
            config = replace(CODEC_PRESETS[preset])
            state = ckpt
        else:
            raise ValueError(f"{path} is not a codec checkpoint (keys {sorted(ckpt)[:5]})")
    model = Codec(config)
    # torch.compile's prefix off
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    state = rename_official(state)
    load_state(model, state, path)
    return model.eval()


@torch.no_grad()
def save_codec(model, path, codes):
    """Write the shippable codec: config + weights only (what load_codec needs), in fp16 when that
    moves the decoding of codes [B, K, T] by less than 1e-3 (else fp32). Returns that difference."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    halved = half(state)
    exact = Codec(model.config).eval()
    rounded = Codec(model.config).eval()
    exact.load_state_dict(state)
    rounded.load_state_dict(halved)  # fp16 values, copied into fp32 parameters
    diff = (rounded.decode(codes.cpu()) - exact.decode(codes.cpu())).abs().max().item()
    shipped = halved if diff < 1e-3 else state
    save_atomic({"config": asdict(model.config), "model": shipped}, path)
    return diff


def codec_hash(codec):
    """sha256 of a codec's config and weights: names the LM's token caches, guards a resume."""
    h = hashlib.sha256(json.dumps(asdict(codec.config), sort_keys=True).encode())
    for k, v in sorted(codec.state_dict().items()):
        h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

# -----------------------------------------------------------------------------
# the LM and the T5: the official names are ours


def config_from_audiocraft(state, xp_cfg):
    """LMConfig of an AudioCraft state dict: sizes from tensor shapes, the rest from xp.cfg."""
    cfg = read_xp_cfg(xp_cfg)
    dim = state['emb.0.weight'].shape[1]  # emb.k: [card + 1, dim]
    card = state['emb.0.weight'].shape[0] - 1
    n_q = sum(1 for k in state if k.startswith('emb.'))
    num_layers = len({k.split('.')[2] for k in state if k.startswith('transformer.layers.')})
    hidden_scale = state['transformer.layers.0.linear1.weight'].shape[0] // dim
    num_heads = int(cfg_get(cfg, 'transformer_lm.num_heads', dim // 64))  # official head size: 64
    modeling = cfg_get(cfg, 'codebooks_pattern.modeling', 'delay')
    if modeling == 'delay':
        delays = cfg_get(cfg, 'codebooks_pattern.delay.delays', list(range(n_q)))
    elif modeling == 'parallel':
        delays = [0] * n_q
    elif modeling == 'unroll':
        delays = cfg_get(cfg, 'codebooks_pattern.unroll.flattening', list(range(n_q)))
    elif modeling == 'coarse_first':
        delays = [0] + cfg_get(cfg, 'codebooks_pattern.coarse_first.delays', [0] * (n_q - 1))
    else:
        raise ValueError(f"codebooks_pattern.modeling={modeling!r} is not supported: "
                         f"use delay/parallel/unroll")
    pattern = 'flatten' if modeling == 'unroll' else modeling
    # the window hop past max_duration: AudioGen's 2 s, MusicGen's 18 s
    extend_stride = 2.0 if cfg_get(cfg, 'solver') == 'audiogen' else 18.0
    return LMConfig(
        dim=dim, num_heads=num_heads, num_layers=num_layers, hidden_scale=hidden_scale, n_q=n_q,
        cond_dim=dim, card=card, cross_attention=any('cross_attention' in k for k in state),
        pattern=pattern, delays=tuple(int(d) for d in delays),
        # the training segment (s)
        max_duration=float(cfg_get(cfg, 'dataset.segment_duration', 30)),
        extend_stride=extend_stride)


def load_lm(path, device='cpu', ckpt=None):
    """This repo's checkpoint or AudioCraft's state_dict.bin -> (LM in eval mode, cond_state: the
    conditioners' `condition_provider.*` tensors, AudioCraft's names). fp16 tensors of official
    files are cast to fp32 by the copy. ckpt: the file's contents, when the caller has read them
    already (the file is then not read again)."""
    ckpt = torch_load(path, "LM checkpoint") if ckpt is None else ckpt
    if isinstance(ckpt, dict) and 'config' in ckpt and 'model' in ckpt:
        config = LMConfig(**ckpt['config'])
        state = ckpt['model']
    elif isinstance(ckpt, dict) and isinstance(ckpt.get('best_state'), dict):
        state = ckpt['best_state'].get('model', ckpt['best_state'])  # training checkpoints nest it
        if 'emb.0.weight' not in state:
            raise ValueError(f"{path} has a best_state but no LM weights (emb.0.weight): is it the "
                             "codec file?")
        config = config_from_audiocraft(state, ckpt.get('xp.cfg', ''))
    else:
        raise ValueError(f"{path} is neither an LM checkpoint ('config', 'model') nor AudioCraft's "
                         "('best_state')")
    state = {k.removeprefix('_orig_mod.'): v for k, v in state.items()}
    cond_state = {k: v for k, v in state.items() if k.startswith('condition_provider.')}
    model = LM(config)
    lm_state = {k: v for k, v in state.items() if k not in cond_state}
    load_state(model, lm_state, path)  # the official names are ours: no rename
    return model.to(device).eval(), cond_state


def t5_from_hf(hf, state, source):
    """A transformers T5 config (config.json as a dict) and state dict -> T5Encoder in eval mode.
    Decoder and lm_head weights of a full T5ForConditionalGeneration are ignored."""
    try:
        config = T5Config(**{k.name: hf[k.name] for k in fields(T5Config) if k.name in hf})
    except Exception as e:  # a bad feed_forward_proj, ...
        raise ValueError(f"cannot read the T5 config of {source} ({type(e).__name__}: {e}); "
                         f"download it again") from None
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        # the tied input embedding, stored under either name
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    model = T5Encoder(config)
    encoder_state = {k: state[k] for k in model.state_dict() if k in state}  # encoder weights only
    load_state(model, encoder_state, source)
    return model.eval()


def load_t5(folder):
    """A Hugging Face T5 folder (config.json, pytorch_model.bin or model.safetensors, spiece.model)
    -> (T5Encoder in eval mode, Tokenizer)."""
    for name in ("config.json", "spiece.model"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"{os.path.join(folder, name)} missing: download the whole "
                                    f"Hugging Face T5 folder")
    try:
        with open(os.path.join(folder, "config.json")) as f:
            hf = json.load(f)
    except Exception as e:  # JSON errors
        raise ValueError(f"cannot read {folder}/config.json ({type(e).__name__}: {e}); "
                         f"download it again") from None
    model = t5_from_hf(hf, read_hf_weights(folder, "T5"), folder)
    return model, Tokenizer(os.path.join(folder, "spiece.model"))

# -----------------------------------------------------------------------------
# transformers' MusicGen decoder (MusicgenForCausalLM), in its folder under decoder.*

# The decoder's names, ours (AudioCraft's) -> transformers' (convert_musicgen_transformers.py):
# a key's prefix, then any of its parts; in_proj_weight [3D, D] is q_proj, k_proj, v_proj.
HF_LM_PREFIXES = (("emb.", "model.decoder.embed_tokens."), ("linears.", "lm_heads."),
                  ("out_norm.", "model.decoder.layer_norm."),
                  ("transformer.layers.", "model.decoder.layers."))
HF_LM_PARTS = (("norm1", "self_attn_layer_norm"), ("norm_cross", "encoder_attn_layer_norm"),
               ("norm2", "final_layer_norm"), ("cross_attention", "encoder_attn"),
               ("linear1", "fc1"), ("linear2", "fc2"))


def rename_lm_hf(key, to_hf=True):
    """One LM key, ours -> transformers' decoder's (to_hf), or back."""
    src, dst = (0, 1) if to_hf else (1, 0)
    for pair in HF_LM_PREFIXES:
        if key.startswith(pair[src]):
            key = pair[dst] + key[len(pair[src]):]
            break
    parts = {pair[src]: pair[dst] for pair in HF_LM_PARTS}
    return ".".join(parts.get(part, part) for part in key.split("."))


def lm_from_hf(dec, state, frame_rate, max_duration, source):
    """transformers' decoder config (dict) and state (keys without 'decoder.') -> LM (eval mode).
    transformers masks padded text in cross-attention: cross_attention_mask. It holds no window
    hop: extend_stride is MusicGen's ratio, 18 s of 30."""
    odd = (dec.get("audio_channels", 1), dec.get("activation_function", "gelu"),
           dec.get("scale_embedding", False))
    if odd != (1, "gelu", False):
        raise ValueError(f"{source}: only mono decoders with gelu, unscaled embeddings load here")
    dim = dec["hidden_size"]
    config = LMConfig(
        dim=dim, num_heads=dec["num_attention_heads"], num_layers=dec["num_hidden_layers"],
        hidden_scale=dec["ffn_dim"] // dim, n_q=dec["num_codebooks"], card=dec["vocab_size"],
        delays=tuple(range(dec["num_codebooks"])), cond_dim=dim, cross_attention_mask=True,
        frame_rate=frame_rate, max_duration=max_duration, extend_stride=0.6 * max_duration)
    ours = {}
    for key, value in state.items():
        if key.endswith(("k_proj.weight", "v_proj.weight")) or "embed_positions" in key:
            continue  # with q_proj; the sinusoid is recomputed
        if key.endswith("q_proj.weight"):  # [D, D] x 3 -> in_proj_weight [3D, D]
            base = key[:-len("q_proj.weight")]
            key, value = base + "in_proj_weight", torch.cat([state[base + f"{n}_proj.weight"]
                                                             for n in "qkv"])
        ours[rename_lm_hf(key, to_hf=False)] = value
    model = LM(config)
    load_state(model, ours, source)
    return model.eval()


def load_entropy_lm(path, frame_rate):
    """The entropy LM of compress.py (EntropyLM, eval mode) from this repo's checkpoint {'config',
    'model'} or the official bare state dict (encodec_lm_24khz-1608e3c0.th). The official file
    stores no config: sizes come from the tensor shapes, and the two values that have none are the
    package's (get_lm_model): 8 heads, and 3.5 s of context, int(3.5 * frame_rate) frames of the
    codec it goes with."""
    ckpt = torch_load(path, "entropy LM")
    names = {f.name for f in fields(EntropyLMConfig)}
    if isinstance(ckpt, dict) and "config" in ckpt and "model" in ckpt:
        if not set(ckpt["config"]) <= names:
            raise ValueError(f"{path} is not an entropy LM checkpoint (its config has "
                             f"{sorted(set(ckpt['config']) - names)[:3]}); a codec or the "
                             "text-to-audio LM?")
        config = EntropyLMConfig(**ckpt["config"])
        state = ckpt["model"]
    elif isinstance(ckpt, dict) and "emb.0.weight" in ckpt and "transformer.norm_in.weight" in ckpt:
        state = ckpt
        dim = ckpt["emb.0.weight"].shape[1]  # emb.k: [card + 1, dim]
        config = EntropyLMConfig(
            n_q=sum(1 for k in state if re.fullmatch(r"emb\.\d+\.weight", k)), dim=dim,
            card=state["emb.0.weight"].shape[0] - 1,
            num_layers=len({k.split(".")[2] for k in state if k.startswith("transformer.layers.")}),
            hidden_scale=state["transformer.layers.0.linear1.weight"].shape[0] // dim,
            past_context=int(3.5 * frame_rate))
    else:
        raise ValueError(f"{path} is not an entropy LM (neither this repo's {{'config', 'model'}} "
                         f"nor the official encodec_lm_*.th state dict)")
    model = EntropyLM(config)
    load_state(model, state, path)
    return model.eval()
