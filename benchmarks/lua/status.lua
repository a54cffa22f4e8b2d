-- wrk script, appended by run.py to every scenario's own script: counts 503 answers (a limit
-- shedding load) apart from other answers >= 400, and reports p50/p99/p99.9 in microseconds
-- (wrk's --latency report stops at p99). One line, parsed by run.py:
--   smisk-bench: shed=N failed=N p50=US p99=US p999=US
local threads = {}
local scenario_response = response

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  shed, failed = 0, 0
end

response = function(status, headers, body)
  if status == 503 then
    shed = shed + 1
  elseif status >= 400 then
    failed = failed + 1
  end
  if scenario_response then
    scenario_response(status, headers, body)
  end
end

function done(summary, latency, requests)
  local total_shed, total_failed = 0, 0
  for _, thread in ipairs(threads) do
    total_shed = total_shed + thread:get("shed")
    total_failed = total_failed + thread:get("failed")
  end
  io.write(string.format("smisk-bench: shed=%d failed=%d p50=%d p99=%d p999=%d\n",
    total_shed, total_failed, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9)))
end
