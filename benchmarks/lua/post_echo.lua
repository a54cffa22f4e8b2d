-- wrk script: every request POSTs a 1 MiB body (the "1 MiB POST echo" scenario).
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
