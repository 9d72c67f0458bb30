-- Helpers every script starts with. Times are milliseconds of the Redis
-- server's clock, so that all nodes share one clock.

local function fmt(n)
  return string.format('%d', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The channel's epoch, created once: a channel with none (new, expired, or
-- lost with a restart of Redis) gets a fresh one, made of the name of the
-- node that asks and the server's clock, and loses any stale history.
local function epoch_of(meta, hist, node, meta_ttl)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    local t = redis.call('TIME')
    epoch = node .. '-' .. t[1] .. '.' .. t[2]
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
    redis.call('DEL', hist)
  end
  redis.call('PEXPIRE', meta, meta_ttl)
  return epoch
end

-- Records a use of the channel in the sorted set of the channels whose
-- state (epoch, offset, history) Redis keeps, scored by a counter of uses.
-- Beyond max channels the least recently used ones lose their state: their
-- next use starts a new epoch, which tells their clients of the loss.
local function remember(prefix, channel, max)
  local channels = prefix .. 'channels'
  local use = redis.call('INCR', channels .. ':uses')
  redis.call('ZADD', channels, use, channel)
  local excess = redis.call('ZCARD', channels) - max
  if excess > 0 then
    local oldest = redis.call('ZPOPMIN', channels, excess)
    for i = 1, #oldest, 2 do
      local base = prefix .. '{' .. oldest[i] .. '}:'
      redis.call('DEL', base .. 'meta', base .. 'history')
    end
  end
end

-- History entries are 'TIME OFFSET JSON'.
local function entry_time(entry)
  return tonumber(string.sub(entry, 1, string.find(entry, ' ', 1, true) - 1))
end

-- The offset of an entry and where its JSON starts.
local function entry_offset(entry)
  local first = string.find(entry, ' ', 1, true)
  local second = string.find(entry, ' ', first + 1, true)
  return tonumber(string.sub(entry, first + 1, second - 1)), second + 1
end

-- Drops the entries at the head of the history older than ttl.
local function prune(hist, now, ttl)
  while true do
    local head = redis.call('LINDEX', hist, 0)
    if not head or entry_time(head) + ttl > now then
      return
    end
    redis.call('LPOP', hist)
  end
end

local function users_key(prefix, channel)
  return prefix .. '{' .. channel .. '}:users'
end

local function topic(prefix, channel)
  return prefix .. channel
end

-- A node's presence entry is 'CHANNEL\nUSER' (channel names have no '\n').
local function split_member(field)
  local newline = string.find(field, '\n', 1, true)
  return string.sub(field, 1, newline - 1), string.sub(field, newline + 1)
end

-- Presence versions: one counter for every channel, raised by each presence
-- change, so that a node can order the changes it hears against the
-- snapshots it reads. A counter that was lost (Redis restarted without
-- persistence, or evicted it) starts again at the server's clock in
-- microseconds: above every version given before, unless more than one was
-- given per microsecond.
local function next_version(counter)
  local version = redis.call('INCR', counter)
  if version == 1 then
    local t = redis.call('TIME')
    version = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', counter, fmt(version))
  end
  return version
end

-- The version of the last presence change.
local function current_version(counter)
  return tonumber(redis.call('GET', counter) or '0')
end

-- Changes a user's connection count in a channel, announcing the user's
-- first arrival ('+VERSION USER') and last departure ('-VERSION USER') to
-- every node following the channel. The set of active channels (prefix
-- 'active') holds every channel with a user present.
local function shift(prefix, channel, user, delta, counter)
  local users = users_key(prefix, channel)
  local channel_topic = topic(prefix, channel)
  local total = redis.call('HINCRBY', users, user, delta)
  local before = total - delta
  if total <= 0 then
    redis.call('HDEL', users, user)
    if redis.call('EXISTS', users) == 0 then
      redis.call('SREM', prefix .. 'active', channel)
    end
  end
  if before <= 0 and total > 0 then
    redis.call('SADD', prefix .. 'active', channel)
    redis.call('PUBLISH', channel_topic, '+' .. fmt(next_version(counter)) .. ' ' .. user)
  elseif before > 0 and total <= 0 then
    redis.call('PUBLISH', channel_topic, '-' .. fmt(next_version(counter)) .. ' ' .. user)
  end
end
