-- One connection of a user on a node joins (+1) or leaves (-1) a channel.
-- KEYS: users, the node's presence entries, the presence version counter
-- ARGV: user, presence entry, delta, key prefix, channel
local own = redis.call('HINCRBY', KEYS[2], ARGV[2], tonumber(ARGV[3]))
if own <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if own < 0 then
  -- The node had no entry: it was removed as dead and rejoins next.
  return 0
end
shift(ARGV[4], ARGV[5], ARGV[1], tonumber(ARGV[3]), KEYS[3])
return 1
