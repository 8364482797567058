"""The miniature Stable Diffusion's engine: CLIP's contrastive loss against a direct computation, cross-attention
shapes and the masking of padding, classifier-free guidance with the empty prompt, a text checkpoint round trip,
and the CLI's clip and ldm-text families."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from core.__main__ import main
from core.checkpoints import PRETRAINED_DIR, load_checkpoint, load_pretrained
from core.data.captions import MAX_PROMPT_WORDS, VOCAB_SIZE, tokenize
from core.evaluate import sample_images
from core.guidance import classifier_free_guidance
from core.models.text import CLIP, CLIPConfig, TextConditioned, contrastive_loss
from core.models.unet import UNet
from core.samplers import sample
from core.schedules import make_schedule
from core.train_text import TEXT_UNET

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY_CLIP = CLIPConfig(vocab_size=VOCAB_SIZE, max_len=MAX_PROMPT_WORDS, width=16, layers=1, heads=2, embed_dim=8,
                       image_channels=8)


def tiny_text_model(seed: int = 0) -> TextConditioned:
    torch.manual_seed(seed)
    clip = CLIP(TINY_CLIP)
    unet = UNet(dataclasses.replace(TEXT_UNET, base_channels=8, groups=4, attention_heads=2, context_dim=16, T=50))
    for p in unet.parameters():  # leave the identity start: every block, cross-attention included, does something
        torch.nn.init.normal_(p, std=0.1)
    return TextConditioned(unet, clip).eval()


def test_the_contrastive_loss_is_the_symmetric_cross_entropy_written_out():
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    image = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    scale = torch.tensor(math.log(10.0))
    sims = 10.0 * text @ image.T
    by_text = -sum(sims[i, i] - torch.logsumexp(sims[i], 0) for i in range(5)) / 5
    by_image = -sum(sims[i, i] - torch.logsumexp(sims[:, i], 0) for i in range(5)) / 5
    assert torch.allclose(contrastive_loss(text, image, scale), (by_text + by_image) / 2, atol=1e-6)
    # matched pairs far apart from the rest: the loss goes to 0; the temperature is clamped at 100
    eye = torch.eye(5, 8)
    assert contrastive_loss(eye, eye, torch.tensor(math.log(100.0))) < 1e-3
    assert torch.allclose(contrastive_loss(eye, eye, torch.tensor(10.0)), contrastive_loss(eye, eye,
                                                                                            torch.tensor(math.log(100))))


def test_clip_embeddings_are_unit_vectors_and_tokens_have_the_start_token_first():
    clip = CLIP(TINY_CLIP).eval()
    ids, mask = tokenize(["a thick seven", ""])
    tokens, token_mask = clip.tokens(ids)
    assert tokens.shape == (2, 1 + MAX_PROMPT_WORDS, 16)
    assert token_mask[:, 0].all() and torch.equal(token_mask[:, 1:], mask)  # the empty prompt: the start token only
    assert torch.allclose(clip.encode_text(ids).norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(clip.encode_image(torch.zeros(3, 1, 28, 28)).norm(dim=-1), torch.ones(3), atol=1e-5)


def test_cross_attention_shapes_and_padding_is_masked():
    model = tiny_text_model()
    crosses = [m for m in model.denoiser.modules() if type(m).__name__ == "CrossAttention"]
    assert crosses, "a text UNet attends to the prompt in its blocks"
    for m in crosses:
        m.record = True
    ids, _ = tokenize(["a thick seven", "a thick seven"])
    z, t = torch.randn(2, 4, 7, 7), torch.tensor([10.0, 10.0])
    context, mask = model.clip.tokens(ids)
    out = model.denoiser(z, t, context=context, context_mask=mask)
    assert out.shape == z.shape
    words = int(mask[0].sum())
    for m in crosses:
        n_pos = m.weights.shape[1]
        assert m.weights.shape == (2, n_pos, 1 + MAX_PROMPT_WORDS)
        assert torch.allclose(m.weights.sum(-1), torch.ones(2, n_pos), atol=1e-5)
        assert (m.weights[..., words:] == 0).all()  # no query looks at padding
    # what sits at the padded positions cannot change the output
    noisy = context.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), 16)
    assert torch.allclose(model.denoiser(z, t, context=noisy, context_mask=mask), out, atol=1e-6)
    # ...but the words do
    other, _ = tokenize(["a thin two", "a thin two"])
    assert not torch.allclose(model(z, t, other), out, atol=1e-4)


def test_guidance_with_the_empty_prompt_is_the_unconditional_pass():
    model = tiny_text_model()
    ids, _ = tokenize(["a small 3 leaning left", "seven"])
    empty, _ = tokenize(["", ""])
    z, t = torch.randn(2, 4, 7, 7), torch.tensor([5.0, 30.0])
    assert model.null_class == 0 and torch.equal(empty, torch.zeros_like(empty))
    eps_c, eps_u = model(z, t, ids), model(z, t, empty)
    assert torch.allclose(model(z, t), eps_u, atol=1e-6)  # no prompt = the empty prompt
    guided = classifier_free_guidance(model, ids, 3.0)(z, t)
    assert torch.allclose(guided, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5)
    s = make_schedule("cosine", T=50)
    traj = sample(model, s, torch.randn(2, 4, 7, 7), method="ddim", steps=4, y=ids, guidance_scale=2.0)
    assert torch.isfinite(traj.xs).all() and traj.xs.shape[1:] == (2, 4, 7, 7)
    with pytest.raises(ValueError, match=r"\(N, L\) prompt tokens"):
        sample(model, s, torch.randn(2, 4, 7, 7), steps=2, y=torch.zeros(3, 12, dtype=torch.long))


def test_cli_trains_a_clip_then_a_text_model_that_loads_with_it(tmp_path, capsys):
    for suffix in (".safetensors", ".json"):  # the latent model is written beside its autoencoder
        src = PRETRAINED_DIR / f"autoencoder-mnist{suffix}"
        (tmp_path / f"ae{suffix}").write_bytes(src.read_bytes())
    clip, model = tmp_path / "clip", tmp_path / "ldmt"
    assert main(["train", "--family", "clip", "--data", "mnist", "--steps", "2", "--batch-size", "16",
                 "--out", str(clip), "--state", str(tmp_path / "s1")]) == 0
    assert "zero-shot reading" in capsys.readouterr().err
    assert main(["train", "--family", "ldm-text", "--data", "mnist", "--autoencoder", str(tmp_path / "ae"),
                 "--text-encoder", str(clip), "--steps", "2", "--batch-size", "8", "--out", str(model),
                 "--state", str(tmp_path / "s2")]) == 0
    p = load_checkpoint(model)
    assert isinstance(p.model, TextConditioned) and p.autoencoder is not None
    assert p.config["family"] == "ldm-text" and p.config["captions"]["text_encoder"] == "clip"
    ids, _ = tokenize(["a thick seven"])
    assert torch.equal(p.model.clip.tokens(ids)[0], load_checkpoint(clip).model.tokens(ids)[0])
    x = sample_images(p, 2, prompt=["a thick seven", ""], guidance_scale=3.0, steps=3)
    assert x.shape == (2, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert sample_images(p, 2, label=torch.tensor([3, 4]), steps=2).shape == (2, 1, 28, 28)  # "the digit 3", ...
    with pytest.raises(ValueError, match="one prompt or a list of n = 3"):
        sample_images(p, 3, prompt=["seven", "two"], steps=2)
    with pytest.raises(ValueError, match="reads labels, not prompts"):
        sample_images(load_pretrained("ldm-mnist"), 2, prompt="seven")
    assert main(["train", "--family", "ldm-text", "--data", "mnist", "--autoencoder", str(tmp_path / "ae"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "needs --text-encoder" in capsys.readouterr().err


def test_cli_samples_a_prompt_into_a_grid_of_the_engines_digits(tmp_path, capsys):
    out = tmp_path / "seven.png"
    assert main(["sample", "ldm-text-mnist", "--prompt", "a thick seven", "--n", "5", "--steps", "4",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "5 digits (“a thick seven”; ddim-4, w = 3)" in err and "read as 7" in err
    x = sample_images(load_pretrained("ldm-text-mnist"), 5, prompt="a thick seven", guidance_scale=3.0, steps=4)
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 30 + 2, 3 * 30 + 2)  # ceil(sqrt(5)) = 3 columns, 2 rows of 28 + 2 px gaps
    for i in range(5):
        r, c = divmod(i, 3)
        tile = grid[2 + 30 * r:30 * r + 30, 2 + 30 * c:30 * c + 30]
        assert np.abs(tile.astype(int) - ((x[i, 0] + 1) * 127.5).round().numpy()).max() <= 1
    assert (grid[2 + 30:, 2 + 60:] == 96).all()  # the sixth cell is empty


def test_cli_samples_labelled_digits_into_an_array(tmp_path, capsys):
    out = tmp_path / "threes.npy"
    assert main(["sample", "ldm-mnist", "--label", "3", "--guidance", "2", "--n", "4", "--steps", "5", "--seed", "7",
                 "--out", str(out)]) == 0
    assert "4 digits (digit 3; ddim-5, w = 2)" in capsys.readouterr().err
    expected = sample_images(load_pretrained("ldm-mnist"), 4, label=3, guidance_scale=2.0, steps=5, seed=7)
    assert torch.equal(torch.from_numpy(np.load(out)), expected)
