-- The users present in a channel, sorted, and the presence version they
-- reflect. KEYS: users, the presence version counter
-- Returns {version, users}.
local users = redis.call('HKEYS', KEYS[1])
table.sort(users)
return {current_version(KEYS[2]), users}
