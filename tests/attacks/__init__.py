"""The attack suite: one module per class of attack on the trust gate."""
