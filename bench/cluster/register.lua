-- wrk script: durable registrations, each request a new instance (PUT of a
-- fresh id, ttl check so that nothing is probed). Run by run.sh as
--   wrk -t 1 -c C -d Ds -s register.lua URL -- PREFIX
-- PREFIX keeps the ids of concurrent wrk processes apart. Prints the count of
-- answers other than 201 Created (which must be 0).
local threads = {}
local next_thread = 1
function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] or "w"
  sent = 0
  failures = 0
end
function request()
  sent = sent + 1
  local n = thread_number * 10000000 + sent
  local body = string.format(
    '{"address":"127.12.%d.%d","port":80,"check":{"type":"ttl","ttl":"1h"}}',
    1 + math.floor(n / 250) % 250, 1 + n % 250)
  return wrk.format("PUT", string.format("/v1/services/load-%d/instances/%s%d", n % 100, prefix, n),
                    {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  if status ~= 201 then failures = failures + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failures") end
  io.write(string.format("registrations: %d in %.2f s, %d not 201, latency p50 %.2f ms p99 %.2f ms\n",
                         summary.requests, summary.duration / 1e6, total,
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
