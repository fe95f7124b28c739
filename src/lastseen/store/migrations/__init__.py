"""Schema migrations, one module per backend."""
