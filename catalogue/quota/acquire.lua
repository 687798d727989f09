-- Takes a slot in every quota or in none, on the Redis server's clock.
-- KEYS: one sorted set of departure times per quota.
-- ARGV: the window (ms) and the limit of each key, then a unique member id.
-- Returns {0, 0}, or the 1-based index of the quota that is full and the
-- milliseconds until it has a slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local worst, which = -1, 0
for i = 1, #KEYS do
  local key, window, limit = KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window - 1)
  local wait = -1
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window + 1 - now
  end
  local hint = redis.call('HMGET', key .. ':server', 'remaining', 'reset')
  if hint[2] and tonumber(hint[2]) > now and tonumber(hint[1]) <= 0 then
    wait = math.max(wait, tonumber(hint[2]) - now)
  end
  if wait > worst then worst, which = wait, i end
end
if worst >= 0 then return {which, worst} end
local id = ARGV[2 * #KEYS + 1]
for i = 1, #KEYS do
  local key = KEYS[i]
  redis.call('ZADD', key, now, id)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i - 1]) + 1000)
  local hint = redis.call('HMGET', key .. ':server', 'remaining', 'reset')
  if hint[2] and tonumber(hint[2]) > now then redis.call('HINCRBY', key .. ':server', 'remaining', -1) end
end
return {0, 0}
