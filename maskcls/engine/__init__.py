"""One training engine for every task: fit() and the pieces it is made of."""
