"""A self-contained training module in the train-classifier layout (seed 001)."""
