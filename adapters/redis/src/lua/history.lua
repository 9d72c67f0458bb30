-- Reads a channel's history for the HTTP API.
-- KEYS: meta, history
-- ARGV: node, meta ttl ms, history_ttl ms, since epoch, since offset ('' for
--       none), limit, '1' for newest first, key prefix, channel,
--       history_max_channels
-- Returns {epoch, offset, messages}: the messages after since (all of them
-- when since is of another epoch), the oldest limit of them, or the newest
-- limit newest first.
local meta, hist = KEYS[1], KEYS[2]
local epoch = epoch_of(meta, hist, ARGV[1], ARGV[2])
remember(ARGV[8], ARGV[9], tonumber(ARGV[10]))
local seq = tonumber(redis.call('HGET', meta, 'seq'))
prune(hist, now_ms(), tonumber(ARGV[3]))
local after = 0
if ARGV[5] ~= '' and ARGV[4] == epoch then
  after = tonumber(ARGV[5])
end
local limit, reverse = tonumber(ARGV[6]), ARGV[7] == '1'
local entries = redis.call('LRANGE', hist, 0, -1)
local first, last, step = 1, #entries, 1
if reverse then
  first, last, step = #entries, 1, -1
end
local messages = {}
for i = first, last, step do
  if #messages >= limit then
    break
  end
  local offset, start = entry_offset(entries[i])
  if offset > after then
    table.insert(messages, string.sub(entries[i], start))
  end
end
return {epoch, seq, messages}
