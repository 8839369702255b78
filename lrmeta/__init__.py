"""lrmeta: learned learning-rate controllers in JAX/Optax/Flax."""

__version__ = "0.1.0"
