"""
Tests for codec.py, quantizer.py and checkpoint.py's codec loaders.
Run: python -m pytest -q tests/test_codec.py

The reference implementations (the `encodec` package and transformers' EncodecModel) run with
random weights: no download is possible or needed. Their codebooks are all zeros until k-means
runs, so we fill them with real latent vectors first (conftest.py's fill_codebooks), or every
code would be 0 and the comparisons would prove nothing. The encodec package's 24 kHz model:
conftest.py's encodec_24khz.
"""

import math
import re
from dataclasses import asdict

import pytest
import torch

from checkpoint import load_codec, read_xp_cfg
from codec import PRESETS, Codec
from quantizer import Codebook, ResidualVectorQuantizer, codebook_usage, n_q_for_bandwidth

torch.set_num_threads(2)


@pytest.mark.parametrize("length", [24000, 24000 + 137, 1001])
def test_matches_encodec_package(encodec_24khz, length):
    ref, path = encodec_24khz
    ours = load_codec(path)  # preset guessed from the official file name
    assert ours.config == PRESETS["encodec_24khz"]
    wav = 0.1 * torch.randn(2, 1, length, generator=torch.Generator().manual_seed(length))
    for bandwidth in (6.0, 24.0):
        ref.set_target_bandwidth(bandwidth)
        with torch.no_grad():
            frames = ref.encode(wav)
            ref_codes = frames[0][0]  # [B, K, T]
            ref_wav = ref.decode(frames)
        codes = ours.encode(wav, n_q=n_q_for_bandwidth(bandwidth, ours.frame_rate, 1024))
        assert codes.dtype == torch.int64
        assert codes.shape == ref_codes.shape == (2, int(bandwidth / 0.75), math.ceil(length / 320))
        assert len(codes.unique()) > min(codes.numel() // 4, 200)  # the codebooks are in use
        assert torch.equal(codes, ref_codes)
        assert torch.allclose(ours.decode(codes), ref_wav, atol=1e-4)


def hf_32khz(pad_mode, fill_codebooks):
    from transformers import EncodecConfig, EncodecModel
    torch.manual_seed(1)
    ref = EncodecModel(EncodecConfig(
        sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], num_filters=64, codebook_size=2048,
        target_bandwidths=[2.2], use_causal_conv=False, use_conv_shortcut=False,
        pad_mode=pad_mode)).eval()
    with torch.no_grad():
        latent = ref.encoder(0.1 * torch.randn(2, 1, 32000))
        fill_codebooks(latent, [l.codebook for l in ref.quantizer.layers],
                       lambda cb, x: cb.quantize(x), lambda cb, i: cb.decode(i))
    return ref


def hf_to_audiocraft(state_dict):
    """transformers' EncodecModel names -> AudioCraft's (the inverse of HF's conversion script)."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        key = re.sub(r"^(encoder|decoder)\.layers\.", r"\1.model.", key)
        if re.match(r"decoder\.model\.(3|6|9|12)\.conv\.", key):  # the transposed convs
            key = key.replace(".conv.", ".convtr.convtr.")
        else:
            key = re.sub(r"\.conv\.(?=weight|bias)", ".conv.conv.", key)
        key = re.sub(r"^quantizer\.layers\.(\d+)\.codebook\.", r"quantizer.vq.layers.\1._codebook.",
                     key)
        out[key] = value
    return out


XP_CFG = """\
device: cpu
sample_rate: 32000
channels: 1
compression_model: encodec
encodec:
  autoencoder: seanet
  quantizer: rvq
  sample_rate: ${sample_rate}
  channels: ${channels}
  causal: false
  renormalize: false
seanet:
  dimension: 128
  channels: ${channels}
  causal: ${encodec.causal}
  n_filters: 64
  n_residual_layers: 1
  ratios:
  - 8
  - 5
  - 4
  - 4
  activation: ELU
  activation_params:
    alpha: 1.0
  norm: weight_norm
  norm_params: {}
  kernel_size: 7
  residual_kernel_size: 3
  last_kernel_size: 7
  dilation_base: 2
  pad_mode: PAD_MODE
  true_skip: true
  compress: 2
  lstm: 2
  disable_norm_outer_blocks: 0
  decoder:
    trim_right_ratio: 1.0
    final_activation: null
    final_activation_params: null
  encoder: {}
rvq:
  n_q: 4
  q_dropout: false
  bins: 2048
  decay: 0.99
  kmeans_init: true
  kmeans_iters: 50
  threshold_ema_dead_code: 2
dora:
  exclude:
  - device
  - wandb.*
  dir: /checkpoint/${oc.env:USER}/experiments
"""


@pytest.fixture(scope="module")
def hf_reflect(fill_codebooks):
    return hf_32khz("reflect", fill_codebooks)


@pytest.mark.parametrize("fmt", ["safetensors", "bin", "audiocraft"])
def test_matches_transformers(hf_reflect, tmp_path, fmt):
    """The 32 kHz MusicGen codec, as transformers builds it, in three official file formats."""
    ref = hf_reflect
    if fmt == "audiocraft":
        path = tmp_path / "compression_state_dict.bin"
        torch.save({"best_state": hf_to_audiocraft(ref.state_dict()), "exported": True,
                    "xp.cfg": XP_CFG.replace("PAD_MODE", "reflect"), "version": "1.0"}, path)
    else:
        ref.save_pretrained(tmp_path)
        path = tmp_path
        if fmt == "bin":  # the older transformers layout
            (tmp_path / "model.safetensors").unlink()
            torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    ours = load_codec(path)
    assert ours.config == PRESETS["encodec_32khz"]
    for length in (32000, 32000 + 321):
        wav = 0.1 * torch.randn(1, 1, length, generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            out = ref.encode(wav, bandwidth=2.2)
            ref_codes = out.audio_codes[0]  # [B, K, T] (one chunk)
            ref_wav = ref.decode(out.audio_codes, [None]).audio_values
        codes = ours.encode(wav)
        assert codes.shape == (1, 4, math.ceil(length / 640))
        assert len(codes.unique()) > 50
        assert torch.equal(codes, ref_codes)
        assert torch.allclose(ours.decode(codes), ref_wav, atol=1e-4)


def test_xp_cfg_pad_mode_is_read(hf_reflect, tmp_path):
    """pad_mode differs between the official codecs: it must come from the stored config."""
    sd = hf_to_audiocraft(hf_reflect.state_dict())
    models = {}
    for pad_mode in ("reflect", "constant"):
        path = tmp_path / f"{pad_mode}.bin"
        torch.save({"best_state": sd, "xp.cfg": XP_CFG.replace("PAD_MODE", pad_mode)}, path)
        models[pad_mode] = load_codec(path)
        assert models[pad_mode].config.pad_mode == pad_mode
    wav = 0.1 * torch.randn(1, 1, 6400)
    assert not torch.allclose(models["reflect"].decode(models["reflect"].encode(wav)),
                              models["constant"].decode(models["constant"].encode(wav)))


def test_read_xp_cfg():
    cfg = read_xp_cfg(XP_CFG.replace("PAD_MODE", "constant") + "x:\n  y: [1, 2.5, 'a']\n  z: ~\n")
    assert cfg["seanet"]["ratios"] == [8, 5, 4, 4]
    assert cfg["seanet"]["activation_params"] == {"alpha": 1.0}
    assert cfg["seanet"]["decoder"]["final_activation"] is None
    assert cfg["seanet"]["pad_mode"] == "constant" and cfg["rvq"]["q_dropout"] is False
    assert cfg["dora"]["exclude"] == ["device", "wandb.*"]
    assert cfg["x"] == {"y": [1, 2.5, "a"], "z": None}


@pytest.mark.parametrize("name", list(PRESETS))
def test_one_second_gives_frame_rate_frames(name):
    torch.manual_seed(0)
    model = Codec(PRESETS[name]).eval()
    sr = model.sample_rate
    assert model.frame_rate == sr // math.prod(PRESETS[name].ratios)
    with torch.no_grad():
        latent = model.encoder.model(torch.randn(1, 1, sr))
    assert latent.shape == (1, PRESETS[name].dimension, model.frame_rate)


def test_length_rules_and_own_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = Codec(PRESETS["tiny"])
    model.train()
    model(0.1 * torch.randn(4, 1, 16000))  # k-means init on the first training batch
    model.eval()
    wav = 0.1 * torch.randn(2, 1, 16000 + 50)
    codes = model.encode(wav)
    assert codes.shape == (2, 8, 51)  # ceil(16050 / 320)
    assert model.decode(codes).shape == (2, 1, 51 * 320)  # decode is not trimmed
    recon, commit = model(wav)
    assert recon.shape == wav.shape and commit.item() > 0  # forward trims to the input length
    assert model.decode(codes[:, :3]).shape == (2, 1, 51 * 320)  # fewer codebooks decode too
    # this repo's checkpoint format: config + weights, rebuilt from the stored config
    path = tmp_path / "codec.pt"
    torch.save({"config": asdict(model.config), "model": model.state_dict(), "step": 0}, path)
    loaded = load_codec(path)
    assert loaded.config == model.config
    assert torch.equal(loaded.encode(wav), codes)


def test_bandwidth():
    assert [n_q_for_bandwidth(bw, 75, 1024) for bw in (1.5, 3, 6, 12, 24)] == [2, 4, 8, 16, 32]
    assert n_q_for_bandwidth(2.2, 50, 2048) == 4
    assert n_q_for_bandwidth(0.1, 50, 2048) == 1


def test_quantizer_dropout_varies_codebooks():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, n_q=6, bins=16, q_dropout=True, kmeans_iters=5).train()
    x = torch.randn(2, 8, 40)
    ks = {rvq(x)[1].shape[1] for _ in range(30)}
    assert ks == set(range(1, 7))
    rvq.eval()  # no dropout at eval
    assert {rvq(x)[1].shape[1] for _ in range(5)} == {6}


def test_eval_quantize_equals_decode_of_codes():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, n_q=3, bins=16, kmeans_iters=5).train()
    x = torch.randn(2, 8, 40)
    rvq(x)
    rvq.eval()
    quantized, codes, _ = rvq(x)
    assert torch.equal(codes, rvq.encode(x))
    assert torch.allclose(quantized, rvq.decode(codes), atol=1e-6)
    # more codebooks quantize better (residual error falls stage by stage)
    errors = [(rvq.decode(rvq.encode(x, n_q=k)) - x).pow(2).mean().item() for k in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_straight_through_gradient():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=4, n_q=2, bins=8, kmeans_iters=2).train()
    x = torch.randn(1, 4, 20, requires_grad=True)
    quantized, _, commit = rvq(x)
    (quantized * torch.arange(20.0)).sum().backward()
    assert torch.allclose(x.grad, torch.arange(20.0).expand(1, 4, 20))  # identity Jacobian
    assert commit.requires_grad


def toy_clusters(n_per=200, seed=0):
    """Four tight clusters at the corners of a square in 2-D."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    x = centers.repeat_interleave(n_per, 0) + 0.1 * torch.randn(4 * n_per, 2, generator=g)
    return x, centers


def test_kmeans_init_finds_the_clusters():
    torch.manual_seed(0)
    x, centers = toy_clusters()
    cb = Codebook(2, 4, kmeans_iters=20).train()
    cb(x)
    assert cb.inited.item() == 1
    # every center has a code within 0.1, and the code counts are the cluster sizes
    assert torch.cdist(centers, cb.embed).min(dim=1).values.max() < 0.1
    assert sorted(cb.cluster_size.tolist())[0] > 150


def test_dead_codes_are_replaced_by_batch_vectors():
    torch.manual_seed(0)
    x, centers = toy_clusters()
    cb = Codebook(2, 8, kmeans_iters=0).train()
    cb.inited.fill_(1)
    cb.embed.copy_(torch.cat([centers, torch.full((4, 2), 100.0)]))  # codes 4..7 far away: dead
    cb.cluster_size.copy_(torch.tensor([200.0] * 4 + [0.0] * 4))
    cb.embed_avg.copy_(cb.embed * cb.cluster_size[:, None])
    _, indices = cb(x)
    assert not set(indices.tolist()) & {4, 5, 6, 7}  # this batch was coded by the old codebook
    # the dead codes now sit exactly on vectors of the batch, and the live codes did not move
    assert torch.cdist(cb.embed[4:], x).min(dim=1).values.max() < 1e-5
    assert torch.allclose(cb.embed[:4], centers, atol=0.1)
    for _ in range(3):  # from the next batch on they take their share and stay on the data
        _, indices = cb(x)
        assert torch.cdist(cb.embed[4:], centers).min(dim=1).values.max() < 0.5
        assert torch.allclose(cb.embed[:4], centers, atol=0.1)
    assert set(indices.tolist()) & {4, 5, 6, 7}


def test_training_batch_is_not_in_its_own_codebook():
    """A batch is coded before dead codes are replaced by its vectors: with many dead codes, a
    replacement-first order would quantize the batch exactly (zero commitment loss)."""
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, n_q=2, bins=256, kmeans_iters=2).train()
    rvq(torch.randn(1, 8, 20))  # k-means on 20 vectors: most of the 256 codes are dead duplicates
    for _ in range(3):
        _, _, commit = rvq(torch.randn(1, 8, 20))
        assert commit.item() > 0.01


def test_ema_converges_to_cluster_means():
    torch.manual_seed(0)
    x, centers = toy_clusters()
    cb = Codebook(2, 4, decay=0.9, kmeans_iters=0, threshold_ema_dead_code=0).train()
    cb.inited.fill_(1)
    cb.embed.copy_(centers + 1.0)  # start off-center
    cb.embed_avg.copy_(cb.embed)
    for _ in range(100):
        cb(x)
    assert torch.allclose(cb.embed, x.view(4, -1, 2).mean(1), atol=1e-2)


def test_codebook_usage():
    codes = torch.tensor([[[0, 1, 2, 3], [0, 0, 0, 0]]])  # [B=1, K=2, T=4]
    usage, ppl = codebook_usage(codes, 8)
    assert torch.allclose(usage, torch.tensor([0.5, 0.125]))
    assert torch.allclose(ppl, torch.tensor([4.0, 1.0]))


# --- bad input: one-line errors that say what was expected ---------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Codec(PRESETS["tiny"]).eval()


def one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


def test_bad_audio(tiny):
    with pytest.raises(ValueError) as e:
        tiny.encode(torch.randn(1, 2, 16000))
    assert "[B, 1, T]" in one_line(e)
    with pytest.raises(ValueError) as e:
        tiny.encode(torch.randn(16000))
    assert "shape" in one_line(e)
    with pytest.raises(ValueError) as e:
        tiny.encode(torch.randn(1, 1, 16000), n_q=9)
    assert "1..8" in one_line(e)


def test_bad_codes(tiny):
    with pytest.raises(ValueError) as e:
        tiny.decode(torch.full((1, 2, 5), 256))
    assert "[0, 256)" in one_line(e)
    with pytest.raises(ValueError) as e:
        tiny.decode(torch.zeros(1, 9, 5, dtype=torch.long))
    assert "1 <= K <= 8" in one_line(e)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError) as e:
        load_codec(tmp_path / "x.th", preset="encodec_99khz")
    assert "encodec_24khz" in one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        load_codec(tmp_path / "missing.th")
    one_line(e)
    corrupt = tmp_path / "corrupt.th"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError) as e:
        load_codec(corrupt)
    assert "not a readable" in one_line(e)
    pointer = tmp_path / "compression_state_dict.bin"
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True}, pointer)
    with pytest.raises(ValueError) as e:
        load_codec(pointer)
    assert "facebook/encodec_32khz" in one_line(e)
    bare = tmp_path / "weights.th"
    torch.save({"w": torch.zeros(1)}, bare)
    with pytest.raises(ValueError) as e:
        load_codec(bare)
    assert "preset=" in one_line(e)
    with pytest.raises(ValueError) as e:
        load_codec(bare, preset="tiny")  # foreign weights: named mismatch, not a torch traceback
    assert "do not fit" in one_line(e)
    lm_like = tmp_path / "lm.pt"
    torch.save({"config": {"dim": 256, "num_layers": 2}, "model": {}}, lm_like)
    with pytest.raises(ValueError) as e:
        load_codec(lm_like)
    assert "not a codec checkpoint" in one_line(e)
    wrong_preset = tmp_path / "tiny_as_24k.th"
    torch.save(Codec(PRESETS["tiny"]).state_dict(), wrong_preset)
    with pytest.raises(ValueError) as e:
        load_codec(wrong_preset, preset="encodec_16khz")
    assert "wrong preset" in one_line(e)
