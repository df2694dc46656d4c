"""What the gateway tells its operators: Prometheus metrics (`metrics.py`, `scrape.py`), log
lines and their format (`logs.py`), and request ids given by clients (`trace.py`)."""
