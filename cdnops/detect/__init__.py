"""Detection stage: vectorized rolling statistics over the fleet."""
