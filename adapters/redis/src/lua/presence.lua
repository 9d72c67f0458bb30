-- The users present in a channel, sorted. KEYS: users
local users = redis.call('HKEYS', KEYS[1])
table.sort(users)
return users
