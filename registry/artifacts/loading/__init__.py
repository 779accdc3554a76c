"""Reading uploaded model files (joblib, pickle, skops) without running code or exhausting memory."""
