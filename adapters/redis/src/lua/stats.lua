-- How many users are present in a channel and how many connections they
-- hold there, over all nodes. KEYS: users
-- Returns {users, connections}.
local counts = redis.call('HVALS', KEYS[1])
local connections = 0
for _, count in ipairs(counts) do
  connections = connections + tonumber(count)
end
return {#counts, connections}
