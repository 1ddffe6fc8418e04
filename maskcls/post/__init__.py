"""After training: predict (checkpoints -> probability CSVs), probs (reading and checking them),
ensemble (soft voting), submit (the leaderboard CSV) and pseudo (confident eval images as training rows)."""
