-- The channels with a user present, those a glob pattern matches ('*' any
-- run of characters; channel names hold no other special character).
-- KEYS: the set of active channels
-- ARGV: pattern ('' for every channel), limit
-- Returns {total, names}: how many match, and the first limit in name order.
local matcher = nil
if ARGV[1] ~= '' then
  local escaped = string.gsub(ARGV[1], '[%^%$%(%)%%%.%[%]%+%-%?]', '%%%0')
  matcher = '^' .. string.gsub(escaped, '%*', '.*') .. '$'
end
local names = {}
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if matcher == nil or string.find(channel, matcher) then
    table.insert(names, channel)
  end
end
table.sort(names)
local total, limit = #names, tonumber(ARGV[2])
local first = {}
for i = 1, math.min(total, limit) do
  first[i] = names[i]
end
return {total, first}
