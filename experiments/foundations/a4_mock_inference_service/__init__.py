"""Day 4: a FastAPI mock inference service with streaming, validation, timeouts, rate limiting and a circuit breaker."""
