"""After a prediction: the log of sampled requests and what they answered, the labels feedback
joins to them, and each version's live quality (drift is next). Fed from the prediction path
through a bounded queue and a background writer, so nothing here can slow or fail a prediction."""
