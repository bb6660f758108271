"""tf_lrp test suite."""
