-- Counts the answers of a wrk run by status and reports them with the errors and the p99, one
-- "key value" line each, for the flood tests (tests/tests/flood.rs). Arguments after `--`:
-- "ghosts" (GET a random never-opened account each time) or "deposit ACCOUNT" (POST a deposit
-- of 1 into ACCOUNT each time).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  counts = {}
  mode = args[1]
  account = args[2]
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  if mode == "ghosts" then
    return wrk.format("GET", "/v1/accounts/ghost-" .. math.random(1, 1000000000))
  end
  local body = '{"account":"' .. account .. '","amount":1}'
  return wrk.format("POST", "/v1/deposits", { ["Content-Type"] = "application/json" }, body)
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status_%d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("p99_us %d\n", latency:percentile(99)))
  io.write(string.format("requests %d\n", summary.requests))
end
