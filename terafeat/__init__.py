"""terafeat: unsupervised feature learning (RICA, ISA/TICA) at scale.

The science core: numpy / scipy / scikit-learn / OpenCV / Dask, no Prefect.
"""
__version__ = "0.1.0"
