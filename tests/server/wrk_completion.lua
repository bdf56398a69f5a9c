-- wrk script for the server load test: short greedy completions.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}'
