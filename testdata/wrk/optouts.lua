-- wrk script for the control plane's GET /v1/optouts benchmark (docs/benchmarks/control.md):
-- 1000 paths, half preloaded opt-outs (hits), half absent (misses), admin bearer token.
local paths = {}
for i = 0, 999 do
  local n
  if i % 2 == 0 then n = string.format("+35840%07d", i * 37) else n = string.format("+35850%07d", i) end
  paths[#paths + 1] = "/v1/optouts/default/sms/" .. n
end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer admin-token-for-tests-0123456789"})
end
