-- Makes a node's presence entries exactly the given ones, announcing the
-- users who arrive or leave through the change.
-- KEYS: the node's presence entries, the presence version counter
-- ARGV: key prefix, then pairs of presence entry and connection count
local entries, prefix = KEYS[1], ARGV[1]
local old, new = {}, {}
local flat = redis.call('HGETALL', entries)
for i = 1, #flat, 2 do
  old[flat[i]] = tonumber(flat[i + 1])
end
for i = 2, #ARGV, 2 do
  new[ARGV[i]] = tonumber(ARGV[i + 1])
end
local function apply(field, delta)
  local channel, user = split_member(field)
  shift(prefix, channel, user, delta, KEYS[2])
end
for field, count in pairs(new) do
  local delta = count - (old[field] or 0)
  if delta ~= 0 then
    apply(field, delta)
  end
end
for field, count in pairs(old) do
  if not new[field] then
    apply(field, -count)
  end
end
redis.call('DEL', entries)
for field, count in pairs(new) do
  redis.call('HSET', entries, field, fmt(count))
end
return 0
