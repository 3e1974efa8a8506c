"""Encodings to the network's input: event frames time-first with an optional zero channel."""

from __future__ import annotations

import pytest
import torch

from tfbench.data.encoding import to_model_input


def test_to_model_input_is_time_first_with_an_optional_zero_channel():
    frames = torch.rand(3, 5, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    three = to_model_input(frames)
    assert three.shape == (5, 3, 3, 6, 7) and three.dtype == torch.float64 and three.is_contiguous()
    for t in range(5):
        for b in range(3):
            torch.testing.assert_close(three[t, b, :2], frames[b, t], rtol=0, atol=0)
    assert torch.count_nonzero(three[:, :, 2]) == 0
    two = to_model_input(frames, in_channels=2)
    assert two.shape == (5, 3, 2, 6, 7) and two.is_contiguous()
    torch.testing.assert_close(two, three[:, :, :2], rtol=0, atol=0)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_to_model_input_names_the_valid_channel_counts(in_channels):
    with pytest.raises(ValueError, match="not one of 2, 3"):
        to_model_input(torch.zeros(1, 2, 2, 4, 4), in_channels=in_channels)


def test_to_model_input_rejects_frames_without_two_polarities():
    with pytest.raises(ValueError, match=r"\[B, T, 2, H, W\]"):
        to_model_input(torch.zeros(1, 2, 3, 4, 4))
