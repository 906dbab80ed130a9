"""The strategy lab: parameter sweeps, walk-forward and shadow-model training on Dask distributed.

:mod:`services.lab.model` holds the shared vocabulary (spec, point results, progress, the listener a
window or the headless runner implements). Qt-free; Dask is imported only where a cluster is used.
"""
