"""
Export: a text-to-audio model (model.TextToAudio, as model.load_model returns it) written in the
formats that AudioCraft and transformers load. model.load_model reads both back, with the same
logits.

    to_audiocraft(model, folder)    for AudioCraft's MusicGen.get_pretrained(folder) and
                                    AudioGen.get_pretrained(folder)
    to_transformers(model, folder)  for transformers' MusicgenForConditionalGeneration
                                    .from_pretrained(folder)

AudioCraft's folder (the files of its utils/export.py, read by models/loaders.py):
    state_dict.bin              {'best_state': the LM and the conditioners' output_proj, whose
                                names are ours (+ melody: the chroma STFT window); 'xp.cfg': YAML
                                with every field its builders read, see lm_xp_cfg}
    compression_state_dict.bin  {'best_state': the codec in AudioCraft's names, 'xp.cfg'}: always
                                the weights, never the 'pretrained' pointer to
                                facebook/encodec_32khz, so the folder is whole and any codec fits
    t5-base/ (the T5's name)    config.json, pytorch_model.bin, spiece.model: AudioCraft loads its
                                T5 by that name from the hub and never opens the folder; load_model
                                does
transformers' folder (what MusicgenForConditionalGeneration.save_pretrained writes):
    config.json                 model_type 'musicgen': text_encoder (T5Config), audio_encoder
                                (EncodecConfig), decoder (MusicgenDecoderConfig)
    model.safetensors           text_encoder.*, audio_encoder.*, decoder.* (checkpoint.rename_lm_hf)
                                and enc_to_dec_proj.* (our output_proj)
    generation_config.json      max_length (= max_duration), guidance 3, top-k 250, special token
    spiece.model                the T5's tokenizer, which load_model reads

What a format cannot hold is refused before anything is written: a ValueError of one line naming
the reason and the way out (see audiocraft_problems, transformers_problems). Writes are atomic: a
temporary folder beside the target, renamed once complete. Weights are written in fp32 (the
released files are fp16), so the reload is exact.
Deviations: AudioCraft attends to padded text positions and transformers masks them
(LMConfig.cross_attention_mask): prompts batched with longer ones read differently there than here,
a prompt alone reads the same. Neither format holds the window hop past max_duration
(extend_stride): AudioCraft takes its class's (MusicGen 18 s, AudioGen 2 s), our reader of
transformers' folder 0.6 * max_duration. AudioCraft's normalize_text uses spaCy where
conditioners.normalize_text uses rules.

References:
1) AudioCraft: audiocraft/models/loaders.py (load_lm_model, load_compression_model),
   audiocraft/models/builders.py (get_lm_model, get_conditioner_provider, get_condition_fuser,
   get_codebooks_pattern_provider, get_compression_model), audiocraft/utils/export.py,
   config/model/lm/musicgen_lm.yaml, config/model/encodec/default.yaml,
   config/conditioner/text2music.yaml, text2sound.yaml, chroma2music.yaml
2) transformers: models/musicgen/convert_musicgen_transformers.py (key names, enc_to_dec_proj,
   generation config), models/musicgen/configuration_musicgen.py,
   models/encodec/convert_encodec_checkpoint_to_pytorch.py (the codec's key names)
3) MusicGen, Copet et al. 2023, arXiv:2306.05284; AudioGen, Kreuk et al. 2022, arXiv:2209.15352
"""
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict

import torch

from checkpoint import rename_lm_hf
from codec import ConvTranspose1d
from model import COND, MELODY
from t5 import T5_PRESETS

# the names T5Conditioner accepts (AudioCraft loads the weights by name from the hub)
AUDIOCRAFT_T5 = ("t5-small", "t5-base", "t5-large", "t5-3b", "t5-11b", "google/flan-t5-small",
                 "google/flan-t5-base", "google/flan-t5-large", "google/flan-t5-xl",
                 "google/flan-t5-xxl")

# -----------------------------------------------------------------------------
# helpers: names, states, atomic folders


def t5_hub_name(model):
    """The hub name of the model's T5, as AudioCraft's xp.cfg names it, or None. A T5 trained or
    fine-tuned here has none; a frozen one: model.t5_name (its folder's, from load_model), else
    the preset its config equals (t5-small / t5-base / t5-large)."""
    text = model.conditioner
    if text.finetune:
        return None
    preset = next((n for n in ("t5-small", "t5-base", "t5-large")
                   if T5_PRESETS[n] == text.t5.config), None)
    names = [n for name in (getattr(model, "t5_name", None), preset) for n in AUDIOCRAFT_T5
             if name in (n, n.split("/")[-1])]  # "flan-t5-base" is "google/flan-t5-base"
    return names[0] if names else None


def fp32(state):
    """A state dict on the CPU, floats in fp32, each tensor its own copy (safetensors refuses
    views of one storage)."""
    return {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous().clone()
            for k, v in state.items()}


def codec_state(codec, style):
    """The codec's state dict in official names, the inverse of checkpoint.RENAMES: style
    'audiocraft' (encoder.model.0.conv.conv.weight_g, decoder.model.3.convtr.convtr.weight_v,
    quantizer.vq.layers.0._codebook.embed) or 'transformers' (encoder.layers.0.conv.weight_g,
    decoder.layers.3.conv.weight_v, quantizer.layers.0.codebook.embed). LSTM keys keep their
    names; transformers reads weight_g / weight_v into its weight-norm parametrizations."""
    transposed = {n for n, m in codec.named_modules() if isinstance(m, ConvTranspose1d)}
    out = {}
    for key, value in codec.state_dict().items():
        module, _, name = key.rpartition(".")
        if key.startswith("quantizer."):  # quantizer.layers.{i}.{embed, ...}
            i = key.split(".")[2]
            key = (f"quantizer.vq.layers.{i}._codebook.{name}" if style == "audiocraft"
                   else f"quantizer.layers.{i}.codebook.{name}")
        elif ".lstm." not in key:  # a conv: the official wrapper modules around it
            wrap = "conv"
            if style == "audiocraft":
                wrap = "convtr.convtr" if module in transposed else "conv.conv"
            key = f"{module}.{wrap}.{name}"
        if style == "transformers":  # (en|de)coder.model. -> (en|de)coder.layers.
            key = key.replace("coder.model.", "coder.layers.", 1)
        out[key] = value
    return fp32(out)


def write_folder(folder, write):
    """write(tmp) fills a temporary folder beside `folder`, which is then renamed to `folder`: a
    failure leaves nothing behind. An existing `folder` must be empty (never overwritten)."""
    folder = os.path.normpath(os.path.abspath(folder))
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise ValueError(f"cannot export to {folder}: it exists and is not an empty folder; "
                         f"name a new one")
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's is 0o700
        write(tmp)
        os.replace(tmp, folder)  # atomic; an empty folder is replaced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def refuse(problems, fmt):
    """problems: [(is it so, why, what to do)] -> ValueError for the first that is so; fmt:
    "AudioCraft's", "transformers'"."""
    for bad, why, fix in problems:
        if bad:
            raise ValueError(f"cannot export to {fmt} format: {why}; {fix}")


def write_t5(text, folder, name):
    """The T5 as a transformers T5 folder (config.json, pytorch_model.bin, spiece.model), the one
    checkpoint.load_t5 reads."""
    os.makedirs(folder)
    config = dict(model_type="t5", architectures=["T5EncoderModel"], _name_or_path=name,
                  **asdict(text.t5.config))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    torch.save(fp32(text.t5.state_dict()), os.path.join(folder, "pytorch_model.bin"))
    shutil.copyfile(text.tokenizer.path, os.path.join(folder, "spiece.model"))

# -----------------------------------------------------------------------------
# AudioCraft


def audiocraft_problems(model, t5):
    """What AudioCraft's files cannot hold: [(is it so, why, what to do)]. t5: t5_hub_name."""
    c, melody, sr = model.lm.config, model.melody, model.codec.sample_rate
    # the class that will load it (lm_xp_cfg's solver) strides by 2 s (AudioGen) or 18 s
    hop = 2.0 if c.extend_stride == 2.0 else 18.0
    fuse = melody.fuse if melody is not None else None
    ours = "export this repo's format (ours)"
    return [
        (fuse == "sum", "the 'sum' melody fuse (each codec frame adds the chroma frame at its "
         "time) has no AudioCraft equivalent (its fuser's 'sum' adds a condition as long as the "
         "step sequence, 'input_interpolate' stretches one over it)", ours),
        (t5 is None, f"AudioCraft loads its T5 by name from the hub (t5-base, t5-large, ...) and "
         f"this model's ({model.conditioner.t5.config.d_model} wide) is "
         f"{'trained here' if model.conditioner.finetune else 'none of them'}",
         "fine-tune an official model (its T5 frozen) or " + ours),
        (c.pattern not in ("delay", "parallel"), f"pattern {c.pattern!r} is not written here",
         "use 'delay' or 'parallel'"),
        (c.max_duration <= hop, f"AudioCraft's {'AudioGen' if hop == 2 else 'MusicGen'} needs a "
         f"max_duration above its {hop:g} s extend_stride, this model has {c.max_duration:g} s",
         "train on longer clips"),
        (melody is not None and (melody.sample_rate != sr or melody.chroma_len !=
                                 1 + int(sr * c.max_duration) // melody.hop),
         "AudioCraft's chroma runs at the codec's sample rate over max_duration",
         "train the melody at the codec's rate and duration"),
    ]


def transformer_lm_cfg(c):
    """xp.cfg's transformer_lm: LMModel's and StreamingTransformer's arguments, our LM's sizes and
    the released MusicGen's settings (config/model/lm/default.yaml + musicgen_lm.yaml)."""
    return dict(
        dim=c.dim, num_heads=c.num_heads, num_layers=c.num_layers, hidden_scale=c.hidden_scale,
        n_q=c.n_q, card=c.card, dropout=0.0, emb_lr=None, activation="gelu", norm_first=True,
        bias_ff=False, bias_attn=False, bias_proj=False, past_context=None, causal=True,
        custom=False, memory_efficient=True, attention_as_float32=False, layer_scale=None,
        positional_embedding="sin", xpos=False, checkpointing="none", weight_init="gaussian",
        depthwise_init="current", zero_bias_init=True, norm="layer_norm",
        cross_attention=c.cross_attention, qk_layer_norm=False, qk_layer_norm_cross=False,
        attention_dropout=None, kv_repeat=1, two_step_cfg=False)


def lm_xp_cfg(model, t5):
    """state_dict.bin's xp.cfg: what load_lm_model, builders.get_lm_model (transformer_lm,
    codebooks_pattern, classifier_free_guidance, attribute_dropout, fuser, conditioners,
    dataset.segment_duration) and MusicGen / AudioGen (dataset.segment_duration) read. solver:
    'audiogen' for AudioGen's 2 s extend_stride, else 'musicgen' (checkpoint.config_from_audiocraft
    reads it back so). Training-only values (dropouts) are the released configs' (text2music,
    text2sound, chroma2music)."""
    c, melody, sr = model.lm.config, model.melody, model.codec.sample_rate
    audiogen = c.extend_stride == 2.0
    cfg_dropout, word_dropout = (0.1, 0.0) if audiogen else (0.3, 0.3)
    text = dict(model="t5", t5=dict(name=t5, finetune=False, word_dropout=word_dropout,
                                     normalize_text=model.conditioner.normalize))
    conditioners, attribute_dropout = dict(description=text), {}
    fuser = dict(cross_attention_pos_emb=False, cross_attention_pos_emb_scale=1, sum=[],
                 prepend=[], cross=["description"], input_interpolate=[])
    if melody is not None:  # chroma prepended; text by cross-attention or prepended after it
        cfg_dropout = text["t5"]["word_dropout"] = 0.2
        conditioners = dict(self_wav=dict(model="chroma_stem", chroma_stem=dict(
            sample_rate=sr, n_chroma=melody.n_chroma, radix2_exp=melody.n_fft.bit_length() - 1,
            argmax=True, match_len_on_eval=False, eval_wavs=None, n_eval_wavs=100,
            cache_path=None)), description=text)
        attribute_dropout = dict(args=dict(active_on_eval=False), text={}, wav=dict(self_wav=0.5))
        cross = ["description"] if c.cross_attention else []
        fuser.update(prepend=["self_wav"] + ["description"] * (not cross), cross=cross)
    pattern = dict(modeling=c.pattern)
    if c.pattern == "delay":
        pattern["delay"] = dict(delays=list(c.delays), flatten_first=0, empty_initial=0)
    return dict(
        solver="audiogen" if audiogen else "musicgen", lm_model="transformer_lm",
        sample_rate=sr, channels=model.codec.channels, device="cpu", dtype="float32",
        dataset=dict(segment_duration=c.max_duration), transformer_lm=transformer_lm_cfg(c),
        codebooks_pattern=pattern, classifier_free_guidance=dict(
            training_dropout=cfg_dropout, inference_coef=3.0),
        attribute_dropout=attribute_dropout, fuser=fuser, conditioners=conditioners)


def codec_xp_cfg(c):
    """compression_state_dict.bin's xp.cfg: builders.get_compression_model's fields (encodec,
    seanet, rvq), from config/model/encodec/default.yaml with the codec's values."""
    return dict(
        compression_model="encodec", sample_rate=c.sample_rate, channels=c.channels,
        encodec=dict(autoencoder="seanet", quantizer="rvq", sample_rate=c.sample_rate,
                     channels=c.channels, causal=c.causal, renormalize=False),
        seanet=dict(
            dimension=c.dimension, channels=c.channels, causal=c.causal, n_filters=c.n_filters,
            n_residual_layers=1, ratios=list(c.ratios), activation="ELU",
            activation_params={"alpha": 1.0}, norm="weight_norm", norm_params={}, kernel_size=7,
            residual_kernel_size=3, last_kernel_size=7, dilation_base=2, pad_mode=c.pad_mode,
            true_skip=c.true_skip, compress=2, lstm=c.lstm, disable_norm_outer_blocks=0,
            decoder=dict(trim_right_ratio=1.0, final_activation=None,
                         final_activation_params=None), encoder={}),
        rvq=dict(n_q=c.n_q, q_dropout=c.q_dropout, bins=c.bins, decay=c.decay, kmeans_init=True,
                 kmeans_iters=c.kmeans_iters, threshold_ema_dead_code=c.threshold_ema_dead_code,
                 orthogonal_reg_weight=0.0, orthogonal_reg_active_codes_only=False))


def to_yaml(cfg):
    """Nested dicts -> the YAML text AudioCraft stores as xp.cfg (OmegaConf.create reads it)."""
    try:
        import yaml
    except ImportError:
        raise ImportError("writing AudioCraft's xp.cfg needs PyYAML: pip install pyyaml") from None
    return yaml.safe_dump(cfg, sort_keys=False)


def to_audiocraft(model, folder):
    """Write model as AudioCraft's files into the new folder (see the file docstring) -> its path.
    ValueError (nothing written) for what AudioCraft cannot hold: audiocraft_problems."""
    t5 = t5_hub_name(model)
    refuse(audiocraft_problems(model, t5), "AudioCraft's")
    state = dict(model.lm.state_dict())  # AudioCraft's names
    state.update({COND + "output_proj." + k: v
                  for k, v in model.conditioner.output_proj.state_dict().items()})
    if model.melody is not None:  # + the STFT window, a persistent buffer there: torch.hann_window
        state.update({MELODY + "output_proj." + k: v
                      for k, v in model.melody.output_proj.state_dict().items()})
        state[MELODY + "chroma.spec.window"] = torch.hann_window(model.melody.n_fft)
    lm = {"best_state": fp32(state), "xp.cfg": to_yaml(lm_xp_cfg(model, t5)), "exported": True}
    codec = {"best_state": codec_state(model.codec, "audiocraft"),
             "xp.cfg": to_yaml(codec_xp_cfg(model.codec.config)), "exported": True}

    def write(tmp):
        torch.save(lm, os.path.join(tmp, "state_dict.bin"))
        torch.save(codec, os.path.join(tmp, "compression_state_dict.bin"))
        write_t5(model.conditioner, os.path.join(tmp, t5.split("/")[-1]), t5)

    return write_folder(folder, write)

# -----------------------------------------------------------------------------
# transformers


def transformers_problems(model):
    """What transformers' MusicgenForConditionalGeneration cannot hold: [(is it so, why, what to
    do)]."""
    c, text = model.lm.config, model.conditioner
    ours = "export this repo's format (ours)"
    return [
        (model.melody is not None, "MusicgenForConditionalGeneration is text only (this is a "
         "melody model)", ours),
        (c.pattern != "delay" or c.delays != tuple(range(c.n_q)), f"transformers' MusicGen "
         f"decodes with the delays {tuple(range(c.n_q))}, this model has {c.pattern} "
         f"{c.delays}", ours),
        (text.normalize, "this model reads prompts normalised by conditioners.normalize_text, "
         "which transformers does not do", "train with --no-normalize or export this repo's "
         "format (ours)"),
        (text.tokenizer.known is not None, "this model's tokenizer reads words it never saw as "
         "<unk> (Tokenizer.known), which transformers' does not", ours),
        (text.t5.config.d_model == c.dim, "transformers has no enc_to_dec_proj (our output_proj) "
         "where the T5 is as wide as the LM", ours),
        (model.codec.channels != 1, "the codec is not mono", ours),
    ]


def musicgen_config(model):
    """config.json: MusicgenConfig's three sub-configs, every field written."""
    c, codec = model.lm.config, model.codec.config
    # transformers derives the number of codebooks from the largest bandwidth (kbps)
    bandwidth = codec.n_q * math.log2(codec.bins) * model.codec.frame_rate / 1000
    audio = dict(
        model_type="encodec", sampling_rate=codec.sample_rate, audio_channels=codec.channels,
        normalize=False, chunk_length_s=None, overlap=None, hidden_size=codec.dimension,
        num_filters=codec.n_filters, num_residual_layers=1, upsampling_ratios=list(codec.ratios),
        norm_type="weight_norm", kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
        dilation_growth_rate=2, use_causal_conv=codec.causal, pad_mode=codec.pad_mode,
        compress=2, num_lstm_layers=codec.lstm, trim_right_ratio=1.0, codebook_size=codec.bins,
        codebook_dim=codec.dimension, use_conv_shortcut=not codec.true_skip,
        target_bandwidths=[bandwidth])
    decoder = dict(
        model_type="musicgen_decoder", vocab_size=c.card, max_position_embeddings=2048,
        num_hidden_layers=c.num_layers, ffn_dim=c.hidden_scale * c.dim,
        num_attention_heads=c.num_heads, layerdrop=0.0, activation_function="gelu",
        hidden_size=c.dim, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        scale_embedding=False, num_codebooks=c.n_q, audio_channels=1, pad_token_id=c.card,
        bos_token_id=c.card, tie_word_embeddings=False)
    text = dict(model_type="t5", **asdict(model.conditioner.t5.config))
    name = t5_hub_name(model)
    if name is not None:  # as the released folders: the T5 they were built from
        text["_name_or_path"] = name
    return dict(model_type="musicgen", architectures=["MusicgenForConditionalGeneration"],
                is_encoder_decoder=True, text_encoder=text, audio_encoder=audio, decoder=decoder)


def musicgen_state(model):
    """model.safetensors: the decoder in transformers' names (the fused in_proj_weight [3D, D]
    split into q_proj, k_proj, v_proj [D, D]), the T5, the codec, enc_to_dec_proj."""
    state = {}
    for key, value in model.lm.state_dict().items():
        key = "decoder." + rename_lm_hf(key)
        if key.endswith("in_proj_weight"):
            for n, w in zip("qkv", value.chunk(3)):
                state[key.removesuffix("in_proj_weight") + f"{n}_proj.weight"] = w
        else:
            state[key] = value
    # the T5's tied embedding as shared.weight only
    state.update({"text_encoder." + k: v for k, v in model.conditioner.t5.state_dict().items()})
    state.update({"enc_to_dec_proj." + k: v
                  for k, v in model.conditioner.output_proj.state_dict().items()})
    state.update({"audio_encoder." + k: v
                  for k, v in codec_state(model.codec, "transformers").items()})
    return fp32(state)


def to_transformers(model, folder):
    """Write model as transformers' MusicGen folder (see the file docstring) -> its path.
    ValueError (nothing written) for what it cannot hold: transformers_problems."""
    refuse(transformers_problems(model), "transformers'")
    try:
        from safetensors.torch import save_file  # installed with transformers
    except ImportError:
        raise ImportError("writing model.safetensors needs the safetensors package: pip install "
                          "safetensors") from None
    c = model.lm.config
    card = c.card  # the special token starts and pads every codebook's stream
    generation = dict(bos_token_id=card, decoder_start_token_id=card, pad_token_id=card,
                      do_sample=True, guidance_scale=3.0, top_k=250,
                      max_length=int(c.max_duration * c.frame_rate))
    state = musicgen_state(model)

    def write(tmp):
        for name, content in (("config.json", musicgen_config(model)),
                              ("generation_config.json", generation)):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(content, f, indent=2)
        save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        shutil.copyfile(model.conditioner.tokenizer.path, os.path.join(tmp, "spiece.model"))

    return write_folder(folder, write)
