"""Estimating depth from photos: the estimator (batching, cache keys, safe model calls), its cache,
the estimator registry and networks, MiDaS input preparation and optional tiled refinement."""
