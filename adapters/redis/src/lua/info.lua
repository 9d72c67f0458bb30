-- Every node whose lease runs and its figures, after this node's own are
-- brought up to date.
-- KEYS: the leases
-- ARGV: key prefix, node, connections, channels, uptime ms
-- Returns {{node, connections, channels, uptime ms}, ...} by node name; each
-- node's uptime is carried on from its registration to now.
local prefix = ARGV[1]
local now = now_ms()
local own = prefix .. 'info:' .. ARGV[2]
if redis.call('EXISTS', own) == 1 then
  redis.call('HSET', own, 'connections', ARGV[3], 'channels', ARGV[4], 'uptime', ARGV[5], 'at', fmt(now))
end
local names = redis.call('ZRANGEBYSCORE', KEYS[1], fmt(now), '+inf')
table.sort(names)
local nodes = {}
for _, name in ipairs(names) do
  local f = redis.call('HMGET', prefix .. 'info:' .. name, 'connections', 'channels', 'uptime', 'at')
  if f[1] then
    local uptime = tonumber(f[3]) + math.max(0, now - tonumber(f[4]))
    table.insert(nodes, {name, tonumber(f[1]), tonumber(f[2]), uptime})
  end
end
return nodes
