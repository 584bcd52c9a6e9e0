"""The classifier head every backbone model shares, and the backbone + head for fine-tuning."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seda.backbones import frame_lengths, pool_hidden_states


class LayerWeightedHead(nn.Module):
    """Softmax-weighted sum of layer-normalised pooled layers, then an MLP."""

    def __init__(self, n_layers: int, dim: int, n_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        if hidden > 0:
            self.mlp = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_classes),
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, n_layers, dim)
        # Layers differ in scale by orders of magnitude; normalising each lets the weights mix.
        x = F.layer_norm(x.float(), x.shape[-1:])
        return self.mlp(torch.einsum("l,bld->bd", self.layer_weights(), x))


class FinetuneModel(nn.Module):
    """Backbone -> pooled hidden states of every layer -> :class:`LayerWeightedHead`."""

    def __init__(self, backbone: nn.Module, head: LayerWeightedHead, pooling: str):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pooling = pooling

    def forward(
        self, values: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        out = self.backbone(values, attention_mask=mask, output_hidden_states=True)
        n_frames = frame_lengths(self.backbone, lengths)
        return self.head(pool_hidden_states(out.hidden_states, n_frames, self.pooling))
