"""Building blocks of the simulated backends (:mod:`greenbench.backends.simulated`).

``params``: the cited per-operation figures and chip presets, resolved against a profile's ``[sim]``.
``energy``: the pure energy models (work counted per forward pass -> joules per domain).
``noise``: the optical precision model (Gaussian noise on weight-matmul outputs in the ONNX graph)
and its measurement as greedy-token agreement with the exact model.
"""
