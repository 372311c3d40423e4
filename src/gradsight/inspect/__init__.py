"""Look inside a network: its parameters (filters, hidden units, weight statistics) and
its activations over a data set (t-SNE / PCA embeddings).

>>> import gradsight as gs
>>> acts = gs.inspect.activations(model, x, labels=y)    # penultimate features, (N, D)
>>> xy = gs.inspect.embed(acts)                           # t-SNE, (N, 2)
>>> gs.inspect.plot_embedding(xy, acts.labels, class_names, images=pictures, path="tsne.png")
>>> gs.inspect.filters(model).save("conv1.png")           # first conv layer's kernels
>>> gs.inspect.hidden_units(mlp, points, labels)          # Linear(2, h) - ReLU - Linear(h, k)
>>> gs.inspect.weight_stats(model)                        # rows: shape, mean, std, norm, near zero
>>> calls, auto = gs.inspect.layer_calls(model, blank)    # every layer call, its output shape, the auto layer

Works on ``torch.nn.Module`` and ``keras.Model`` alike; activations go through the same
capture seam as Grad-CAM. Importing this module imports neither framework nor
scikit-learn (t-SNE loads it on first use).
"""

from __future__ import annotations

from ._activations import Activations, activations
from ._embed import embed, plot_embedding
from ._filters import WeightStat, filters, format_weight_stats, kernel_mosaic, weight_stats
from ._layers import LayerCall, layer_calls
from ._units import UnitLine, hidden_units, unit_lines

__all__ = [
    "activations",
    "Activations",
    "embed",
    "plot_embedding",
    "filters",
    "kernel_mosaic",
    "hidden_units",
    "unit_lines",
    "UnitLine",
    "weight_stats",
    "WeightStat",
    "format_weight_stats",
    "layer_calls",
    "LayerCall",
]
