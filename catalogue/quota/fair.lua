-- Takes a slot of every shared pool (a per-IP quota a gateway's
-- applications share) for its member, by the fair rule of
-- host/runtime/src/quota/fair.rs (weighted max-min fairness over the members
-- that want the pool now), or in none; on the Redis server's clock.
-- KEYS: per pool, six: its per-IP window, the member's window, the pool's
-- weights (a hash), its hungry members (a hash of until when), its members
-- holding requests (a set), every member's admissions together (a window).
-- ARGV: the prefix of every window's key, a unique request id, then per
-- pool: its limit, its window (ms), the member's name, its weight, how long
-- a refused member stays hungry (ms).
-- Returns {0, 0}, or the 1-based index of the pool refused and the ms to
-- wait; a refused member is hungry in every pool.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, id = ARGV[1], ARGV[2]

-- Forgets what left a window; its count and oldest request.
local function window(key, length)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - length - 1)
  local used = redis.call('ZCARD', key)
  if used == 0 then return 0, nil end
  return used, tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end

-- Each candidate's part of limit, as fair.rs's `parts`.
local function parts(limit, c)
  local out, open, left = {}, {}, limit
  for i = 1, #c do out[i] = 0; open[#open + 1] = i end
  while #open > 0 do
    local weights = 0
    for _, i in ipairs(open) do weights = weights + c[i].weight end
    if weights <= 0 then break end
    local settled, still = {}, {}
    for _, i in ipairs(open) do
      if not c[i].hungry and c[i].used <= left * c[i].weight / weights then
        settled[#settled + 1] = i
      else
        still[#still + 1] = i
      end
    end
    if #settled == 0 then
      for _, i in ipairs(open) do out[i] = left * c[i].weight / weights end
      break
    end
    for _, i in ipairs(settled) do out[i] = c[i].used; left = left - c[i].used end
    open = still
  end
  return out
end

local function leaves(oldest, length)
  if not oldest then return length end
  return math.max(oldest + length + 1 - now, 0)
end

local worst, which = -1, 0
for p = 1, #KEYS / 6 do
  local ip, mine, weights, hungry, active, pooled = KEYS[6 * p - 5], KEYS[6 * p - 4], KEYS[6 * p - 3], KEYS[6 * p - 2], KEYS[6 * p - 1], KEYS[6 * p]
  local a = 2 + 5 * (p - 1)
  local limit, length, me, weight = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
  redis.call('HSET', weights, me, weight)
  local ip_used, ip_oldest = window(ip, length)
  local taken = math.max(ip_used, (window(pooled, length)))
  -- Under its guaranteed share, with room in the pool: admitted, whoever
  -- else wants the pool (fair.rs's `within_guarantee`).
  if taken >= limit or window(mine, length) >= limit * tonumber(weight) then
    -- The candidates, in the order of their names (as the other stores list
    -- them, so that the sums of weights are the same to the last bit).
    local seen, names = {}, {}
    local function list(name) if not seen[name] then seen[name] = true; names[#names + 1] = name end end
    list(me)
    for _, name in ipairs(redis.call('SMEMBERS', active)) do list(name) end
    local until_of = {}
    local flat = redis.call('HGETALL', hungry)
    for i = 1, #flat, 2 do
      local u = tonumber(flat[i + 1])
      if u > now then until_of[flat[i]] = u; list(flat[i]) else redis.call('HDEL', hungry, flat[i]) end
    end
    table.sort(names)
    local weight_of = redis.call('HMGET', weights, unpack(names))
    local c, mine_at, used_all = {}, 0, 0
    for i, name in ipairs(names) do
      local key = prefix .. name
      if name == me then key = mine end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - length - 1)
      local used = redis.call('ZCARD', key)
      if used == 0 then redis.call('SREM', active, name) end
      local is_hungry = name == me or until_of[name] ~= nil
      if used > 0 or is_hungry then
        c[#c + 1] = { weight = tonumber(weight_of[i] or '0'), used = used, hungry = is_hungry }
        if name == me then mine_at = #c end
        used_all = used_all + used
      end
    end
    -- The oldest request of any member is the oldest of the pool's admissions.
    local _, oldest_all = window(pooled, length)
    local _, oldest_mine = window(mine, length)
    local wait = -1
    if math.max(used_all, ip_used) >= limit then
      if ip_oldest and (not oldest_all or ip_oldest < oldest_all) then oldest_all = ip_oldest end
      wait = math.max(leaves(oldest_all, length), 1)
    elseif c[mine_at].used >= parts(limit, c)[mine_at] then
      wait = math.max(leaves(oldest_mine, length), 1)
    end
    if wait > worst then worst, which = wait, p end
  end
end

for p = 1, #KEYS / 6 do
  local a = 2 + 5 * (p - 1)
  local length, me, hungry_for = tonumber(ARGV[a + 2]), ARGV[a + 3], tonumber(ARGV[a + 5])
  local keep = length + hungry_for + 60000
  if worst >= 0 then
    redis.call('HSET', KEYS[6 * p - 2], me, now + hungry_for)
  else
    for _, k in ipairs({KEYS[6 * p - 4], KEYS[6 * p]}) do
      redis.call('ZADD', k, now, id)
      redis.call('PEXPIRE', k, length + 1000)
    end
    redis.call('SADD', KEYS[6 * p - 1], me)
  end
  for k = 3, 1, -1 do redis.call('PEXPIRE', KEYS[6 * p - k], keep) end
end
if worst >= 0 then return {which, worst} end
return {0, 0}
