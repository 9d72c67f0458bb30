-- Renews a node's lease, registers its figures for as long, and removes the
-- presence entries and figures of every node whose lease ran out,
-- announcing its users' departures.
-- KEYS: the leases (a sorted set of node names by expiry), the presence
--       version counter
-- ARGV: key prefix, node, lease ms, connections, channels, uptime ms
-- Returns 1 when the node held no lease: new, or removed as dead.
local leases, prefix = KEYS[1], ARGV[1]
local now = now_ms()
local lapsed = redis.call('ZSCORE', leases, ARGV[2]) == false
redis.call('ZADD', leases, fmt(now + tonumber(ARGV[3])), ARGV[2])
local figures = prefix .. 'info:' .. ARGV[2]
redis.call('HSET', figures, 'connections', ARGV[4], 'channels', ARGV[5], 'uptime', ARGV[6], 'at', fmt(now))
redis.call('PEXPIRE', figures, ARGV[3])
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. fmt(now))) do
  local entries = prefix .. 'node:' .. dead
  local flat = redis.call('HGETALL', entries)
  for i = 1, #flat, 2 do
    local channel, user = split_member(flat[i])
    shift(prefix, channel, user, -tonumber(flat[i + 1]), KEYS[2])
  end
  redis.call('DEL', entries, prefix .. 'info:' .. dead)
  redis.call('ZREM', leases, dead)
end
if lapsed then
  return 1
end
return 0
