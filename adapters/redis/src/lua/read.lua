-- Reads a channel for a subscription or a catch-up.
-- KEYS: meta, history, users, the presence version counter
-- ARGV: node, meta ttl ms, history_ttl ms, since epoch, since offset ('' for
--       none), '1' to include the users, key prefix, channel,
--       history_max_channels
-- Returns {epoch, offset, recovered, users, messages, version}: recovered is
-- '' without since, '1' when messages holds every publication after since,
-- '0' when the history cannot cover the gap (another epoch, or entries
-- gone); version is the presence version the users reflect.
local meta, hist = KEYS[1], KEYS[2]
local epoch = epoch_of(meta, hist, ARGV[1], ARGV[2])
remember(ARGV[7], ARGV[8], tonumber(ARGV[9]))
local seq = tonumber(redis.call('HGET', meta, 'seq'))
local recovered, messages = '', {}
if ARGV[5] ~= '' then
  local since = tonumber(ARGV[5])
  recovered = '0'
  if ARGV[4] == epoch and since == seq then
    recovered = '1'
  elseif ARGV[4] == epoch and since < seq then
    prune(hist, now_ms(), tonumber(ARGV[3]))
    local head = redis.call('LINDEX', hist, 0)
    if head and entry_offset(head) <= since + 1 then
      recovered = '1'
      local skip = since + 1 - entry_offset(head)
      for _, entry in ipairs(redis.call('LRANGE', hist, skip, -1)) do
        local _, start = entry_offset(entry)
        table.insert(messages, string.sub(entry, start))
      end
    end
  end
end
local users = {}
if ARGV[6] == '1' then
  users = redis.call('HKEYS', KEYS[3])
  table.sort(users)
end
return {epoch, seq, recovered, users, messages, current_version(KEYS[4])}
