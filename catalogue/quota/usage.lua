-- How full each quota's window is, on the Redis server's clock; changes
-- nothing. KEYS: one sorted set per quota. ARGV: the window (ms) of each.
-- Returns, per key: the requests in the window, the ms since the oldest of
-- them (-1: none), and the server's remaining and ms until its reset (-1
-- when it said nothing that still holds).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local key, window = KEYS[i], tonumber(ARGV[i])
  local count = redis.call('ZCOUNT', key, now - window, '+inf')
  local oldest = redis.call('ZRANGEBYSCORE', key, now - window, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local age = -1
  if oldest[2] then age = now - tonumber(oldest[2]) end
  local hint = redis.call('HMGET', key .. ':server', 'remaining', 'reset')
  local remaining, reset_in = -1, -1
  if hint[2] and tonumber(hint[2]) > now then remaining, reset_in = tonumber(hint[1]), tonumber(hint[2]) - now end
  table.insert(out, count)
  table.insert(out, age)
  table.insert(out, remaining)
  table.insert(out, reset_in)
end
return out
