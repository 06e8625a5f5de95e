"""srbench: a reproducible single-image super-resolution benchmark (library part)."""
