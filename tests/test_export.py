"""
Tests for export.py. Run: OMP_NUM_THREADS=1 python -m pytest -q tests/test_export.py (CPU, seconds).

A miniature folder of official MusicGen files with random weights, built as tutorial 09 builds one
(transformers' T5EncoderModel and EncodecModel saved as on the hub, the codec behind AudioCraft's
'pretrained' pointer, state_dict.bin written key by key in AudioCraft's names), is loaded with
model.load_model; its LM and output_proj are then moved a little (a stand-in for fine-tuning) and
the model is exported both ways.
(a) model.load_model(export) gives the logits of the model before the export (1e-6), both formats,
    melody (MusicGen-melody's 'prepend') included for AudioCraft's.
(b) transformers' MusicgenForConditionalGeneration.from_pretrained(export) loads every tensor (no
    missing, unexpected or mismatched key); its logits on the same codes and text equal ours (1e-4,
    as tests/test_lm.py compares); its codec decodes our codes as ours does. A model whose T5 was
    trained here (another size of T5) is written too, when its tokenizer has no rule transformers
    lacks.
(c) AudioCraft's files. AudioCraft itself cannot be installed here (xformers, torchaudio), so the
    test checks what its loaders read:
    - state_dict.bin: best_state has the keys and shapes of the official file it came from
      (LMModel.load_state_dict is strict); 'xp.cfg' holds our values in the fields that
      load_lm_model, builders.get_lm_model, get_conditioner_provider, get_condition_fuser,
      get_codebooks_pattern_provider and MusicGen.get_pretrained read (LM_FIELDS): lm_model;
      transformer_lm.{dim, num_heads, num_layers, hidden_scale, n_q, card, norm_first, bias_ff,
      bias_attn, bias_proj, activation, causal, positional_embedding, norm, layer_scale,
      past_context}, and nothing but LMModel's and StreamingTransformer's arguments
      (TRANSFORMER_LM: the keys of config/model/lm/default.yaml and musicgen_lm.yaml);
      codebooks_pattern.{modeling, delay.delays}; classifier_free_guidance.inference_coef;
      attribute_dropout; fuser.{cross, prepend, sum, input_interpolate, cross_attention_pos_emb};
      conditioners.description.{model, t5.name, t5.finetune, t5.normalize_text};
      dataset.segment_duration (melody: fuser.prepend, conditioners.self_wav.chroma_stem.*);
    - compression_state_dict.bin: best_state's keys and shapes are AudioCraft's names of the
      transformers codec's tensors, by the rename table of transformers'
      convert_encodec_checkpoint_to_pytorch.py inverted here by hand; 'xp.cfg' holds the fields
      of builders.get_compression_model (CODEC_FIELDS): compression_model, sample_rate, channels,
      encodec.*, seanet.* (SEANetEncoder's and SEANetDecoder's arguments), rvq.{n_q, bins,
      q_dropout}.
    Not reached: that AudioCraft's classes accept every value, its hub downloads (the T5 by name,
    demucs), its numbers.
(d) Refusals, one line each and no folder left: the default model in checkpoints/ (the 'sum'
    melody fuse, a T5 trained here) in both formats; a T5 trained here for AudioCraft; normalised
    prompts for transformers; an existing folder; a write that fails half-way.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import export
from conditioners import Tokenizer
from export import to_audiocraft, to_transformers
from model import COND, MELODY, load_model
from patterns import build_pattern, revert_pattern

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
D, LAYERS, K, CARD, T5_DIM = 32, 2, 4, 2048, 16
PROMPTS = ["80s pop track with bassy drums and synth", "jazz tune"]

# xp.cfg of the miniature: the fields load_lm reads (the real one has ~600 lines)
XP_CFG = """solver: musicgen
sample_rate: 32000
dataset:
  segment_duration: 30
transformer_lm:
  num_heads: 2
codebooks_pattern:
  modeling: delay
  delay:
    delays: [0, 1, 2, 3]
"""
# the keys of config/model/lm/default.yaml's and musicgen_lm.yaml's transformer_lm
TRANSFORMER_LM = {
    "dim", "num_heads", "num_layers", "hidden_scale", "n_q", "card", "dropout", "emb_lr",
    "activation", "norm_first", "bias_ff", "bias_attn", "bias_proj", "past_context", "causal",
    "custom", "memory_efficient", "attention_as_float32", "layer_scale", "positional_embedding",
    "xpos", "checkpointing", "weight_init", "depthwise_init", "zero_bias_init", "norm",
    "cross_attention", "qk_layer_norm", "qk_layer_norm_cross", "attention_dropout", "kv_repeat",
    "two_step_cfg"}
# xp.cfg fields AudioCraft's LM loaders read, with the miniature's values
LM_FIELDS = {
    "lm_model": "transformer_lm", "dataset.segment_duration": 30.0,
    "transformer_lm.dim": D, "transformer_lm.num_heads": 2, "transformer_lm.num_layers": LAYERS,
    "transformer_lm.hidden_scale": 4, "transformer_lm.n_q": K, "transformer_lm.card": CARD,
    "transformer_lm.norm_first": True, "transformer_lm.bias_ff": False,
    "transformer_lm.bias_attn": False, "transformer_lm.bias_proj": False,
    "transformer_lm.activation": "gelu", "transformer_lm.causal": True,
    "transformer_lm.positional_embedding": "sin", "transformer_lm.norm": "layer_norm",
    "transformer_lm.layer_scale": None, "transformer_lm.past_context": None,
    "codebooks_pattern.modeling": "delay", "codebooks_pattern.delay.delays": [0, 1, 2, 3],
    "classifier_free_guidance.inference_coef": 3.0, "attribute_dropout": {},
    "fuser.cross": ["description"], "fuser.prepend": [], "fuser.sum": [],
    "fuser.input_interpolate": [], "fuser.cross_attention_pos_emb": False,
    "conditioners.description.model": "t5", "conditioners.description.t5.name": "t5-base",
    "conditioners.description.t5.finetune": False,
    "conditioners.description.t5.normalize_text": False}
# xp.cfg fields of builders.get_compression_model (encodec.*, seanet.* = SEANetEncoder's and
# SEANetDecoder's arguments, rvq.* = ResidualVectorQuantizer's), with the miniature codec's values
CODEC_FIELDS = {
    "compression_model": "encodec", "sample_rate": 32000, "channels": 1,
    "encodec": dict(autoencoder="seanet", quantizer="rvq", sample_rate=32000, channels=1,
                    causal=False, renormalize=False),
    "seanet.dimension": 16, "seanet.n_filters": 4, "seanet.ratios": [8, 5, 4, 4],
    "seanet.n_residual_layers": 1, "seanet.norm": "weight_norm", "seanet.causal": False,
    "seanet.pad_mode": "reflect", "seanet.true_skip": True, "seanet.lstm": 2,
    "seanet.kernel_size": 7, "seanet.last_kernel_size": 7, "seanet.residual_kernel_size": 3,
    "seanet.compress": 2, "seanet.activation": "ELU", "seanet.disable_norm_outer_blocks": 0,
    "seanet.decoder": dict(trim_right_ratio=1.0, final_activation=None,
                           final_activation_params=None), "seanet.encoder": {},
    "rvq.n_q": 4, "rvq.bins": 2048, "rvq.q_dropout": False}
# transformers' codec names -> AudioCraft's (convert_encodec_checkpoint_to_pytorch.py, inverted)
HF_TO_AUDIOCRAFT = (
    (r"\.parametrizations\.weight\.original0$", ".weight_g"),
    (r"\.parametrizations\.weight\.original1$", ".weight_v"),
    (r"^decoder\.layers\.(3|6|9|12)\.conv\.", r"decoder.layers.\1.convtr.convtr."),
    (r"\.conv\.(weight_g|weight_v|bias)$", r".conv.conv.\1"),
    (r"^(encoder|decoder)\.layers\.", r"\1.model."),
    (r"^quantizer\.layers\.(\d+)\.codebook\.", r"quantizer.vq.layers.\1._codebook."))


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def audiocraft_lm_state(melody):
    """best_state of a miniature state_dict.bin, written key by key from AudioCraft's naming scheme
    (LMModel.state_dict(): emb.k, transformer.layers.i.{self_attn, cross_attention, linear1,
    linear2, norm1, norm_cross, norm2}, out_norm, linears.k, the conditioners' output_proj; melody:
    no cross-attention, the chroma conditioner's output_proj and STFT window), fp16 as released."""
    shapes = {f"emb.{k}.weight": (CARD + 1, D) for k in range(K)}
    attns, norms = ("self_attn", "cross_attention"), ("norm1", "norm_cross", "norm2")
    if melody:
        attns, norms = ("self_attn",), ("norm1", "norm2")
    for i in range(LAYERS):
        p = f"transformer.layers.{i}."
        for attn in attns:  # q, k, v fused in one [3D, D] matrix, no biases
            shapes.update({p + attn + ".in_proj_weight": (3 * D, D),
                           p + attn + ".out_proj.weight": (D, D)})
        shapes.update({p + "linear1.weight": (4 * D, D), p + "linear2.weight": (D, 4 * D)})
        shapes.update({p + n + w: (D,) for n in norms for w in (".weight", ".bias")})
    shapes.update({"out_norm.weight": (D,), "out_norm.bias": (D,)})
    shapes.update({f"linears.{k}.weight": (CARD, D) for k in range(K)})
    shapes.update({COND + "output_proj.weight": (D, T5_DIM), COND + "output_proj.bias": (D,)})
    if melody:
        shapes.update({MELODY + "output_proj.weight": (D, 12), MELODY + "output_proj.bias": (D,)})
    state = {k: (torch.ones(s) if "norm" in k and k.endswith(".weight") else 0.2 * torch.randn(s))
             for k, s in shapes.items()}
    if melody:
        state[MELODY + "chroma.spec.window"] = torch.hann_window(2 ** 14)
    return {k: v.half() for k, v in state.items()}


def official_folder(root, melody=False):
    """A miniature of facebook/musicgen-small's files (melody: musicgen-melody's) with random
    weights: state_dict.bin, compression_state_dict.bin (the pointer), encodec_32khz/ and t5-base/
    saved by transformers."""
    tf = pytest.importorskip("transformers")
    tf.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    root.mkdir(parents=True)
    captions = [*PROMPTS, "dog bark park", "calm piano melody", "rain on a tin roof"]
    tok = Tokenizer.train(captions * 4, 100, str(root / "spiece.model"))
    t5 = tf.T5EncoderModel(tf.T5Config(vocab_size=128, d_model=T5_DIM, d_kv=8, d_ff=32,
                                       num_layers=1, num_heads=2))
    t5.save_pretrained(root / "t5-base")  # config.json + model.safetensors
    Path(tok.path).rename(root / "t5-base" / "spiece.model")
    codec = tf.EncodecModel(tf.EncodecConfig(
        sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], num_filters=4,
        hidden_size=16, codebook_size=2048, target_bandwidths=[2.2], use_causal_conv=False,
        use_conv_shortcut=False, pad_mode="reflect", normalize=False))
    with torch.no_grad():  # a fresh EncodecModel's codebooks are zeros
        for k, layer in enumerate(codec.quantizer.layers):
            layer.codebook.embed.normal_(std=0.5 ** k)
    codec.save_pretrained(root / "encodec_32khz")
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True},
               root / "compression_state_dict.bin")
    xp_cfg = XP_CFG + ("fuser:\n  cross: []\n  prepend: [self_wav, description]\n" if melody
                       else "fuser:\n  cross: [description]\n")
    torch.save({"best_state": audiocraft_lm_state(melody), "xp.cfg": xp_cfg, "version": "1.0.0",
                "exported": True}, root / "state_dict.bin")
    return root


def fine_tuned(folder):
    """load_model(folder) with its LM and output_proj moved a little: what training leaves."""
    model = load_model(str(folder))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in [*model.lm.parameters(), *model.conditioner.output_proj.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def musicgen(tmp_path_factory):
    """(the source folder, the fine-tuned model)."""
    folder = official_folder(tmp_path_factory.mktemp("official") / "musicgen-small")
    return folder, fine_tuned(folder)


def codes_for(model, T=12, B=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.lm.config.card, (B, model.lm.config.n_q, T), generator=g)


@torch.no_grad()
def assert_same_logits(a, b, texts, atol=1e-6):
    """a(codes, texts) == b(codes, texts): logits [B, K, T, card], NaN where no prediction."""
    codes = codes_for(a, B=len(texts))
    torch.testing.assert_close(a(codes, texts)[0], b(codes, texts)[0], atol=atol, rtol=0,
                               equal_nan=True)


def get(cfg, path):
    for part in path.split("."):
        cfg = cfg[part]
    return cfg


def test_audiocraft_export_reloads_with_the_same_logits(musicgen, tmp_path):
    """(a) and (c): see the file docstring."""
    source, model = musicgen
    out = Path(to_audiocraft(model, tmp_path / "ft"))
    assert sorted(p.name for p in out.iterdir()) == ["compression_state_dict.bin",
                                                    "state_dict.bin", "t5-base"]
    back = load_model(str(out))
    assert back.t5_name == "t5-base" and not back.lm.config.cross_attention_mask
    for texts in ([PROMPTS[0]], PROMPTS, [None]):  # one, a padded batch, the null condition
        assert_same_logits(model, back, texts)
    # state_dict.bin: the official file's keys and shapes; xp.cfg: what AudioCraft reads
    theirs = torch.load(source / "state_dict.bin", weights_only=True)["best_state"]
    pkg = torch.load(out / "state_dict.bin", weights_only=True)
    assert pkg["exported"] and {k: v.shape for k, v in pkg["best_state"].items()} == {
        k: v.shape for k, v in theirs.items()}
    cfg = yaml.safe_load(pkg["xp.cfg"])
    assert set(cfg["transformer_lm"]) == TRANSFORMER_LM
    assert {k: get(cfg, k) for k in LM_FIELDS} == LM_FIELDS
    # compression_state_dict.bin: the weights under AudioCraft's names, its builder's fields
    hf = load_file_state(source / "encodec_32khz" / "model.safetensors")
    expected = {}
    for k, v in hf.items():
        for pattern, repl in HF_TO_AUDIOCRAFT:
            k = re.sub(pattern, repl, k)
        expected[k] = v.shape
    pkg = torch.load(out / "compression_state_dict.bin", weights_only=True)
    assert {k: v.shape for k, v in pkg["best_state"].items()} == expected
    cfg = yaml.safe_load(pkg["xp.cfg"])
    assert {k: get(cfg, k) for k in CODEC_FIELDS} == CODEC_FIELDS
    codes = codes_for(model, T=3)
    assert torch.equal(back.codec.decode(codes), model.codec.decode(codes))


def load_file_state(path):
    from safetensors.torch import load_file
    return load_file(str(path))


def test_audiocraft_export_of_a_melody_model(tmp_path):
    """MusicGen-melody (chroma and text prepended): chroma2music's conditioner and fuser in
    xp.cfg, the chroma window in best_state; the reload gives the same logits with a melody and
    without (the null one), and so does the training forward (TextToAudio.forward)."""
    model = fine_tuned(official_folder(tmp_path / "musicgen-melody", melody=True))
    out = Path(to_audiocraft(model, tmp_path / "ft"))
    back = load_model(str(out))
    pkg = torch.load(out / "state_dict.bin", weights_only=True)
    assert pkg["best_state"][MELODY + "chroma.spec.window"].shape == (2 ** 14,)
    cfg = yaml.safe_load(pkg["xp.cfg"])
    assert cfg["fuser"]["prepend"] == ["self_wav", "description"] and cfg["fuser"]["cross"] == []
    assert get(cfg, "conditioners.self_wav.chroma_stem.radix2_exp") == 14
    assert not cfg["transformer_lm"]["cross_attention"]
    codes = codes_for(model)
    chroma, logits = torch.randint(0, 12, (1, model.melody.chroma_len)), []
    with torch.no_grad():  # [chroma | text] prepended (TextToAudio.conditions), or the null melody
        for m, c in ((model, chroma), (back, chroma), (model, None), (back, None)):
            prepend = m.conditions(["jazz tune"], chroma=c)["prepend"]
            logits.append(m.lm(codes, prepend=prepend)[0])
    torch.testing.assert_close(logits[0], logits[1], atol=1e-6, rtol=0, equal_nan=True)
    torch.testing.assert_close(logits[2], logits[3], atol=1e-6, rtol=0, equal_nan=True)
    assert not torch.allclose(logits[0], logits[2], equal_nan=True)
    with torch.no_grad():  # training's forward (train_lm.py --init) reads what sampling reads
        trained = [model(codes, ["jazz tune"], c)[0] for c in (chroma, None)]
    torch.testing.assert_close(trained[0], logits[0], atol=1e-6, rtol=0, equal_nan=True)
    torch.testing.assert_close(trained[1], logits[2], atol=1e-6, rtol=0, equal_nan=True)
    with pytest.raises(ValueError, match="text only"):
        to_transformers(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@torch.no_grad()
def assert_transformers_logits(model, folder, texts, T=12):
    """(b): transformers' model from folder, on ids and mask of our tokenizer and the delay
    pattern of our codes, gives our logits (padded text: masked in both)."""
    tf = pytest.importorskip("transformers")
    hf, info = tf.MusicgenForConditionalGeneration.from_pretrained(str(folder),
                                                                   output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched key
    hf.eval()
    B, card = len(texts), model.lm.config.card
    codes = codes_for(model, T, B)
    ids, mask = model.conditioner.tokenizer.encode(texts)
    seq, _ = build_pattern(codes, card, valid_only=True)                      # [B, K, T + 3]
    theirs = hf(input_ids=ids, attention_mask=mask.long(),
                decoder_input_ids=seq.reshape(B * seq.shape[1], -1)).logits
    theirs, valid = revert_pattern(theirs.view(B, seq.shape[1], -1, card), T, float("nan"),
                                   logits=True)
    ours = model(codes, texts)[0]
    assert ours[:, ~valid].isnan().all()
    torch.testing.assert_close(ours[:, valid], theirs[:, valid], atol=1e-4, rtol=0)
    return hf


def test_transformers_export(musicgen, tmp_path):
    """(a) and (b): see the file docstring."""
    _, model = musicgen
    out = Path(to_transformers(model, tmp_path / "ft"))
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "spiece.model"]
    back = load_model(str(out))
    assert back.t5_name == "t5-base" and back.lm.config.max_duration == 30.0
    assert back.lm.config.cross_attention_mask  # as transformers
    for texts in ([PROMPTS[0]], [PROMPTS[1]], [None]):  # no padding: masked or not, the same
        assert_same_logits(model, back, texts)
    hf = assert_transformers_logits(back, out, PROMPTS)  # padded text, masked in both
    assert_transformers_logits(model, out, PROMPTS[:1])
    codes = codes_for(model, T=3)
    with torch.no_grad():  # [1 frame, B, K, T] -> [B, 1, T * 640]
        audio = hf.audio_encoder.decode(codes[None], [None]).audio_values
    torch.testing.assert_close(audio, model.codec.decode(codes), atol=1e-5, rtol=0)
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["max_length"] == 1500 and gen["decoder_start_token_id"] == CARD


def test_a_t5_trained_here_goes_to_transformers_only(tiny_lm_export, tmp_path):
    """This repo's T5 is a T5Config of another size: transformers holds it once the tokenizer's
    rules it lacks are off; AudioCraft names its T5 and cannot."""
    model = load_model(tiny_lm_export(tmp_path / "tiny"))
    with pytest.raises(ValueError, match="trained here"):
        to_audiocraft(model, tmp_path / "ac")
    with pytest.raises(ValueError, match="normalised"):
        to_transformers(model, tmp_path / "hf")
    model.conditioner.normalize = False
    with pytest.raises(ValueError, match="<unk>"):
        to_transformers(model, tmp_path / "hf")
    model.conditioner.tokenizer.known = None
    out = to_transformers(model, tmp_path / "hf")
    back = load_model(out)
    assert back.t5_name is None and back.conditioner.t5.config == model.conditioner.t5.config
    assert_same_logits(model, back, ["dog bark"])
    assert_transformers_logits(model, out, ["dog bark"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "tiny"]


@pytest.mark.skipif(not (SHIPPED / "lm.pt").exists(), reason="no shipped model in checkpoints/")
def test_the_default_model_is_refused(tmp_path):
    model = load_model(str(SHIPPED))
    for to, match in ((to_audiocraft, "'sum' melody fuse"), (to_transformers, "text only")):
        with pytest.raises(ValueError, match=match) as e:
            to(model, tmp_path / "out")
        assert "\n" not in str(e.value) and not any(tmp_path.iterdir())


def test_no_half_written_export(musicgen, tmp_path, monkeypatch):
    """An existing folder is never written into; a failure during the write leaves nothing."""
    _, model = musicgen
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not an empty folder"):
        to_transformers(model, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_t5", broken)  # after state_dict.bin was written
    with pytest.raises(OSError, match="disk full"):
        to_audiocraft(model, tmp_path / "ft")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_fine_tune_an_official_folder_and_export(tmp_path, capsys):
    """train_lm.py --init on the miniature official folder with --lora 4, a few steps on a folder of
    captioned clips (16 kHz, resampled to the codec's 32 kHz), then --export-format transformers:
    transformers' logits on the export equal ours (1e-4); the T5 stays the source's (frozen, as
    AudioCraft fine-tunes) and the LM moved. The same run exported in AudioCraft's format reloads
    through load_model with the same logits; a format that cannot hold the model is refused at
    start-up, before any training."""
    import train_lm
    src = official_folder(tmp_path / "musicgen-small")
    data = tmp_path / "clips"
    data.mkdir()
    for i in range(8):
        t = np.arange(16000) / 16000
        sf.write(str(data / f"c{i}.wav"), 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t), 16000)
        (data / f"c{i}.txt").write_text(PROMPTS[i % 2])

    def run(out, fmt, *extra):
        argv = ["--init", str(src), "--data", str(data), "--duration", "1", "--n-clips", "8",
                "--eval-clips", "2", "--steps", "3", "--eval-every", "3", "--batch-size", "2",
                "--aug-p", "0", "--n-samples", "0", "--unk-dropout", "0", "--lr", "1e-2",
                "--out-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                "--export", str(out), "--export-format", fmt, *extra]
        return train_lm.main(train_lm.parser.parse_args(argv))
    model = run(tmp_path / "hf", "transformers", "--lora", "4")
    assert "(LoRA adapters of rank 4)" in capsys.readouterr().out
    back = load_model(str(tmp_path / "hf"))
    assert_transformers_logits(back, tmp_path / "hf", PROMPTS)
    source = load_model(str(src))
    assert all(torch.equal(a, b) for a, b in zip(back.conditioner.t5.state_dict().values(),
                                                 source.conditioner.t5.state_dict().values()))
    assert not torch.equal(back.lm.transformer.layers[0].linear1.weight,
                           source.lm.transformer.layers[0].linear1.weight)
    model = run(tmp_path / "ac", "audiocraft")
    assert_same_logits(model.eval(), load_model(str(tmp_path / "ac")), PROMPTS[:1])
    with pytest.raises(SystemExit, match=r"^--export-format transformers: .* exists and is not "
                                         "empty"):
        run(tmp_path / "hf", "transformers")
