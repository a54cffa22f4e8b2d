-- wrk script: keep the session cookie the server sets, so every request reads and writes one
-- existing session (all connections of the one wrk thread share it).
local cookie = nil

response = function(status, headers, body)
  local set = headers["Set-Cookie"]
  if set and not cookie then
    cookie = set:match("^([^;]+)")
  end
end

request = function()
  if cookie then
    wrk.headers["Cookie"] = cookie
  end
  return wrk.format()
end
