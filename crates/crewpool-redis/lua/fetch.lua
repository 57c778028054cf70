-- fetch.lua: lease up to ARGV[1] jobs to one process, after housekeeping.
--
-- KEYS[1] pending  LIST    job records '<id>|<attempt>|<envelope>' (RPOP end: oldest)
-- KEYS[2] leased   HASH    '<lease>:<n>' -> record of the n-th job of a lease
-- KEYS[3] active   ZSET    lease -> deadline (ms, Redis clock)
-- KEYS[4] leases   HASH    '<lease>' -> jobs still leased under it; '<lease>:n' -> jobs
--                          it took; '<lease>:t' -> when it was taken (ms)
-- KEYS[5] fence    STRING  the lease counter (fencing tokens)
-- KEYS[6] delayed  ZSET    record -> due time (ms)
-- KEYS[7] dead     LIST    dead letters (JSON), newest first
-- KEYS[8] stats    HASH    totals: 'succeeded', 'failed', 'expired'
-- ARGV[1] how many jobs to take (may be 0: housekeeping only)
-- ARGV[2] lease length (ms)
-- ARGV[3] max attempts (0: no limit), applied to jobs whose lease expired
-- ARGV[4] dead-letter bound (entries)
-- ARGV[5] at most this many due delayed jobs per call
-- ARGV[6] at most this many expired leases per call
-- ARGV[7] dead-letter bound (bytes of memory)
-- ARGV[8] the largest envelope this worker takes (bytes)
--
-- One fetch is one lease: its jobs are fields '<lease>:1' .. '<lease>:<count>' of
-- `leased`, and the field name is the delivery's fencing token: it exists exactly
-- while that delivery owns the job.
--
-- Housekeeping first: the jobs of expired leases (their process died or stalled) go
-- back to the front of pending as their next attempt, or to dead-letter once out of
-- attempts; delayed jobs that are due go to the back of pending.
--
-- A record taken from pending whose envelope is over the worker's limit is
-- dead-lettered with the reason instead of leased: it never leaves Redis. The rest of
-- the documented format (id, attempt: see `parse_record`) is checked by the worker as
-- it parses each record, before decoding anything; it dead-letters (bury.lua) one
-- that breaks it. Checking every record here would cost Redis a pattern match per job.
--
-- Returns {pending length, next due (ms from now, -1: nothing scheduled; only computed
-- when no job was taken), recovered, buried, refused (records that broke the format),
-- lease (0: none), then the records taken, oldest first}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local max_attempts = tonumber(ARGV[3])
local dead_limit = tonumber(ARGV[4])
local due_bound = tonumber(ARGV[5])
local lease_bound = tonumber(ARGV[6])
local dead_bytes = tonumber(ARGV[7])
local max_envelope = tonumber(ARGV[8])

-- Pushes a list through Lua's unpack stack limit in slices, keeping its order.
local function push(command, key, list)
  for i = 1, #list, 4000 do
    redis.call(command, key, unpack(list, i, math.min(i + 3999, #list)))
  end
end

local recovered, buried, refused = 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, lease_bound)
if #expired > 0 then
  local back = {}
  for _, lease in ipairs(expired) do
    local size = tonumber(redis.call('HGET', KEYS[4], lease .. ':n')) or 0
    if size > 0 then
      local fields = {}
      for i = 1, size do fields[i] = lease .. ':' .. i end
      local records = redis.call('HMGET', KEYS[2], unpack(fields))
      local gone = {}
      for i = 1, size do
        local record = records[i]
        if record then
          gone[#gone + 1] = fields[i]
          local id, attempt, rest = parse_record(record, nil)
          local reason
          if not id then
            reason = attempt
            attempt = nil
          elseif max_attempts > 0 and attempt >= max_attempts then
            reason = 'lease expired on attempt ' .. attempt .. ' of ' .. max_attempts ..
              ' (the worker died or stalled)'
          end
          if reason then
            dead_letter(KEYS[7], record, reason, attempt, now)
            buried = buried + 1
          else
            back[#back + 1] = id .. '|' .. (attempt + 1) .. '|' .. string.sub(record, rest)
          end
        end
      end
      if #gone > 0 then
        redis.call('HDEL', KEYS[2], unpack(gone))
      end
    end
    redis.call('ZREM', KEYS[3], lease)
    redis.call('HDEL', KEYS[4], lease, lease .. ':n', lease .. ':t')
  end
  if #back > 0 then
    -- To the front (the RPOP end), the earliest deadline's first job served first.
    local reversed = {}
    for i = #back, 1, -1 do reversed[#reversed + 1] = back[i] end
    push('RPUSH', KEYS[1], reversed)
    recovered = #back
  end
  redis.call('HINCRBY', KEYS[8], 'expired', recovered + buried)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, due_bound)
if #due > 0 then
  redis.call('ZREM', KEYS[6], unpack(due))
  redis.call('LPUSH', KEYS[1], unpack(due))
end

local out = {0, -1, recovered, buried, 0, 0}
if count > 0 then
  local records = redis.call('RPOP', KEYS[1], count)
  if records then
    local valid = {}
    for i = 1, #records do
      local record = records[i]
      -- Only a record longer than the largest envelope can break the size rule, so
      -- only such a record is parsed here (a length is all a plain job pays).
      local id, reason = true, nil
      if #record > max_envelope then
        id, reason = parse_record(record, max_envelope)
      end
      if id then
        valid[#valid + 1] = record
      else
        dead_letter(KEYS[7], record, reason, nil, now)
        refused = refused + 1
      end
    end
    if #valid > 0 then
      local lease = string.format('%d', redis.call('INCR', KEYS[5]))
      local prefix = lease .. ':'
      local pairs = {}
      for i = 1, #valid do
        pairs[2 * i - 1] = prefix .. i
        pairs[2 * i] = valid[i]
        out[6 + i] = valid[i]
      end
      push('HSET', KEYS[2], pairs)
      redis.call('ZADD', KEYS[3], now + lease_ms, lease)
      redis.call('HSET', KEYS[4], lease, #valid, prefix .. 'n', #valid, prefix .. 't', now)
      out[6] = lease
    end
  end
end
if buried + refused > 0 then
  trim_dead(KEYS[7], dead_limit, dead_bytes)
end
out[5] = refused
out[1] = redis.call('LLEN', KEYS[1])
if out[6] == 0 then
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
