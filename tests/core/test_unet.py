"""The MNIST UNet: shapes, size, conditioning, and gradient checkpointing that changes nothing but memory."""

import torch

from core.models.unet import UNet, UNetConfig


def test_shapes_size_and_null_class():
    torch.manual_seed(0)
    net = UNet(UNetConfig()).eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 400_000 <= n_params <= 4_000_000, n_params
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0.0, 500.5, 999.0])
    assert net(x, t).shape == (3, 1, 28, 28)
    # zero-initialised output: an untrained UNet predicts eps = 0
    assert torch.count_nonzero(net(x, t)) == 0
    with torch.no_grad():  # leave the identity start: perturb the zero-initialised layers
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(std=0.02)
    uncond, null = net(x, t), net(x, t, torch.full((3,), net.null_class))
    torch.testing.assert_close(uncond, null)
    assert not torch.allclose(net(x, t, torch.tensor([1, 2, 3])), uncond)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    cfg = UNetConfig(base_channels=16, dropout=0.0)
    a = UNet(cfg)
    b = UNet(UNetConfig(**{**cfg.to_dict(), "channel_mults": tuple(cfg.channel_mults),
                           "gradient_checkpointing": True}))
    b.load_state_dict(a.state_dict())
    for p in a.out.parameters():
        torch.nn.init.normal_(p, std=0.02)
    b.out.load_state_dict(a.out.state_dict())
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([3.0, 700.0]), torch.tensor([4, 10])
    for net in (a, b):
        net.train()
        net(x, t, y).pow(2).mean().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-6, rtol=1e-4, msg=name)
