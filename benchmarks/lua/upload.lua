-- wrk script: every request uploads one 10 MiB file as multipart/form-data.
local boundary = "smiskbenchmarkboundary7d93a1"
local file = string.rep("u", 10 * 1024 * 1024)
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = table.concat({
  "--" .. boundary,
  'Content-Disposition: form-data; name="note"',
  "",
  "ten mebibytes",
  "--" .. boundary,
  'Content-Disposition: form-data; name="file"; filename="upload.bin"',
  "Content-Type: application/octet-stream",
  "",
  file,
  "--" .. boundary .. "--",
  "",
}, "\r\n")
