-- Moves random deals among ids 1..20000 between `new` and `in-progress` (run create.lua first).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer vk_bench_admin_token_0123456789abcdef"
local stages = {"new", "in-progress"}
request = function()
  local id = math.random(1, 20000)
  local body = '{"stage":"' .. stages[math.random(1,2)] .. '"}'
  return wrk.format(nil, "/api/v1/items/deal/" .. id .. "/move", nil, body)
end
