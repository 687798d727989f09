-- The server's word on a quota, on the Redis server's clock.
-- KEYS[1]: the quota. ARGV: remaining, the milliseconds until the server's
-- window resets (with close, the wait), and 1 to close it (a 429) or 0 to
-- tighten it (RateLimit-*). A word can only tighten the state within the
-- same reset (the same to the second: the server gives whole seconds),
-- never loosen it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1] .. ':server'
local remaining, reset, close = tonumber(ARGV[1]), now + tonumber(ARGV[2]), ARGV[3] == '1'
if reset <= now then return 0 end
local h = redis.call('HMGET', key, 'remaining', 'reset')
if h[2] and tonumber(h[2]) > now then
  local current = tonumber(h[2])
  if close then reset = math.max(reset, current)
  elseif math.abs(current - reset) < 1000 then
    remaining, reset = math.min(remaining, tonumber(h[1])), current
  end
end
redis.call('HSET', key, 'remaining', remaining, 'reset', reset)
redis.call('PEXPIREAT', key, reset + 1000)
return 1
