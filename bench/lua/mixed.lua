-- S6: 80 % GET of a random hero, 10 % POST of a new hero, 10 % PATCH of a random hero.
-- args: the access token, then a comma-separated list of hero ids.
local token, ids, json = nil, {}, "application/json"

function init(args)
  token = "Bearer " .. args[1]
  for id in string.gmatch(args[2], "[^,]+") do ids[#ids + 1] = id end
  math.randomseed(os.time())
end

function request()
  local roll = math.random()
  local path = "/api/v1/heroes/" .. ids[math.random(#ids)]
  if roll < 0.8 then
    return wrk.format("GET", path, {["Authorization"] = token})
  end
  local headers = {["Authorization"] = token, ["Content-Type"] = json}
  if roll < 0.9 then
    local body = '{"name":"Mixed","secret_name":"Writer","age":30}'
    return wrk.format("POST", "/api/v1/heroes", headers, body)
  end
  return wrk.format("PATCH", path, headers, '{"age":' .. math.random(0, 99) .. '}')
end
