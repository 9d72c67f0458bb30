-- Publishes one message, atomically: the channel's next offset, the entry
-- in its capped history, the idempotency record, the fan-out to the nodes.
-- KEYS: meta, history[, retry record]
-- ARGV: node, message JSON up to its offset, history_size, history_ttl ms,
--       meta ttl ms, idempotency window ms, pub/sub topic, key prefix,
--       channel, history_max_channels
-- Returns the offset; for a retry within the window, the original one.
local meta, hist, retry = KEYS[1], KEYS[2], KEYS[3]
local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
if retry then
  local original = redis.call('GET', retry)
  if original then
    return tonumber(original)
  end
end
local epoch = epoch_of(meta, hist, ARGV[1], ARGV[5])
remember(ARGV[8], ARGV[9], tonumber(ARGV[10]))
local offset = redis.call('HINCRBY', meta, 'seq', 1)
local json = ARGV[2] .. fmt(offset) .. '}'
if size > 0 then
  local now = now_ms()
  redis.call('RPUSH', hist, fmt(now) .. ' ' .. fmt(offset) .. ' ' .. json)
  redis.call('LTRIM', hist, -size, -1)
  prune(hist, now, ttl)
  redis.call('PEXPIRE', hist, ttl)
end
if retry then
  redis.call('SET', retry, fmt(offset), 'NX', 'PX', ARGV[6])
end
redis.call('PUBLISH', ARGV[7], fmt(offset) .. ' ' .. epoch .. ' ' .. json)
return offset
