"""Data set readers, one module per family of on-disk layouts, plus download-and-verify.

Each reader takes the folder a data set unpacks into and returns a pandas
DataFrame with one row per item (``path``, ``label``, ``split``, and grouping
columns where the data set has them). Import from the modules, e.g.
``from terafeat.datasets.kth import read_kth``.
"""
