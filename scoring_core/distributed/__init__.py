"""What the Dask and Spark adapters share, with no cluster library: the job's files, one
partition's scoring, the cluster-wide summary.

Internal: users call :mod:`scoring_core.dask` and :mod:`scoring_core.spark`.
"""
