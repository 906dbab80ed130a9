"""The Strategy lab window: parameter sweeps and walk-forward runs over a strategy's typed
parameters, with a live heatmap, a table of points and the stored sweeps (see :mod:`widgets.lab.dialog`)."""
