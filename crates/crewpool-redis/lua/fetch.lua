-- fetch.lua: lease up to ARGV[1] jobs to one consumer, after housekeeping.
--
-- KEYS[1] pending    LIST  ids waiting (RPOP end is the oldest)
-- KEYS[2] jobs       HASH  id -> envelope
-- KEYS[3] active     ZSET  id -> lease deadline (ms, Redis clock)
-- KEYS[4] lease      HASH  id -> fencing token of the current delivery
-- KEYS[5] attempts   HASH  id -> attempt number of the next delivery (absent: 1)
-- KEYS[6] delayed    ZSET  id -> due time (ms)
-- KEYS[7] fence      STRING the fencing-token counter
-- KEYS[8] dead       LIST  dead-lettered ids, newest first
-- KEYS[9] dead_info  HASH  id -> {"reason","attempt","at"} (JSON)
-- ARGV[1] how many jobs to take (may be 0: housekeeping only)
-- ARGV[2] lease length (ms)
-- ARGV[3] max attempts (0: no limit), applied to jobs whose lease expired
-- ARGV[4] dead-letter bound
-- ARGV[5] housekeeping batch: at most this many expired leases and due jobs per call
--
-- Housekeeping first: jobs whose lease expired (their worker died or stalled) go back
-- to the front of pending as their next attempt, or to dead-letter once out of
-- attempts; delayed jobs that are due go to the back of pending.
--
-- Returns {pending length, next due (ms from now, -1: nothing scheduled; only computed
-- when no job was taken), recovered, buried, missing, then id, token, attempt,
-- envelope for each job taken}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local max_attempts = tonumber(ARGV[3])
local dead_limit = tonumber(ARGV[4])
local chores = tonumber(ARGV[5])

local function bury(id, attempt, reason)
  redis.call('LPUSH', KEYS[8], id)
  redis.call('HSET', KEYS[9], id, cjson.encode({reason = reason, attempt = attempt, at = now}))
  redis.call('HDEL', KEYS[5], id)
  while redis.call('LLEN', KEYS[8]) > dead_limit do
    local old = redis.call('RPOP', KEYS[8])
    redis.call('HDEL', KEYS[2], old)
    redis.call('HDEL', KEYS[9], old)
  end
end

local recovered, buried, missing = 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, chores)
if #expired > 0 then
  redis.call('ZREM', KEYS[3], unpack(expired))
  redis.call('HDEL', KEYS[4], unpack(expired))
  local seen = redis.call('HMGET', KEYS[5], unpack(expired))
  local back = {}
  for i = 1, #expired do
    local id = expired[i]
    local attempt = tonumber(seen[i]) or 1
    if max_attempts > 0 and attempt >= max_attempts then
      bury(id, attempt, 'lease expired on attempt ' .. attempt .. ' of ' .. max_attempts ..
        ' (the worker died or stalled)')
      buried = buried + 1
    else
      redis.call('HSET', KEYS[5], id, attempt + 1)
      back[#back + 1] = id
    end
  end
  if #back > 0 then
    -- Front of the queue (the RPOP end), oldest deadline served first.
    local reversed = {}
    for i = #back, 1, -1 do reversed[#reversed + 1] = back[i] end
    redis.call('RPUSH', KEYS[1], unpack(reversed))
    recovered = #back
  end
end

local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, chores)
if #due > 0 then
  redis.call('ZREM', KEYS[6], unpack(due))
  redis.call('LPUSH', KEYS[1], unpack(due))
end

local out = {0, -1, recovered, buried, 0}
if count > 0 then
  local ids = redis.call('RPOP', KEYS[1], count)
  if ids then
    local data = redis.call('HMGET', KEYS[2], unpack(ids))
    local taken, envelopes = {}, {}
    for i = 1, #ids do
      if data[i] then
        taken[#taken + 1] = ids[i]
        envelopes[#envelopes + 1] = data[i]
      else
        -- An id without an envelope (pushed by hand without its data): nothing to run.
        missing = missing + 1
      end
    end
    if #taken > 0 then
      local last = redis.call('INCRBY', KEYS[7], #taken)
      local first = last - #taken + 1
      local deadline = now + lease_ms
      local scores, tokens = {}, {}
      for i = 1, #taken do
        scores[2 * i - 1] = deadline
        scores[2 * i] = taken[i]
        tokens[2 * i - 1] = taken[i]
        tokens[2 * i] = string.format('%d', first + i - 1)
      end
      redis.call('ZADD', KEYS[3], unpack(scores))
      redis.call('HSET', KEYS[4], unpack(tokens))
      local seen = redis.call('HMGET', KEYS[5], unpack(taken))
      for i = 1, #taken do
        out[#out + 1] = taken[i]
        out[#out + 1] = tokens[2 * i]
        out[#out + 1] = tonumber(seen[i]) or 1
        out[#out + 1] = envelopes[i]
      end
    end
  end
end
out[1] = redis.call('LLEN', KEYS[1])
out[5] = missing
if #out == 5 then
  local next_due = -1
  local a = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #a > 0 then next_due = tonumber(a[2]) end
  local d = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  if #d > 0 and (next_due < 0 or tonumber(d[2]) < next_due) then next_due = tonumber(d[2]) end
  if next_due >= 0 then
    next_due = math.max(0, next_due - now)
  end
  out[2] = next_due
end
return out
