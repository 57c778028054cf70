-- control.lua: pause or resume a queue for every process, or set its rate limit.
--
-- KEYS[1] control  HASH    'paused' -> when the queue was paused (ms, Redis clock), while
--                          it is; 'rate_jobs', 'rate_ms' -> the rate limit, while set
-- KEYS[2] resumed  LIST    one wake marker after a resume; empty (absent) while paused
-- KEYS[3] pending  LIST    level 0's list: a wake marker tells blocked fetchers to look
-- KEYS[4] rate     ZSET    the rate limit's window (see fetch.lua), dropped with the limit
-- ARGV[1] 'pause', 'resume' or 'limit'; for 'limit', ARGV[2] the jobs (0: no limit)
--         and ARGV[3] the period (ms)
--
-- Paused, fetch.lua takes no job (it still does the housekeeping), and its reply says
-- so; the worker's fetcher then blocks on `resumed` (`BLMOVE resumed resumed LEFT LEFT`),
-- which 'pause' has emptied. 'resume' deletes the flag and pushes the marker to
-- `resumed`, and to `pending` while that list is empty (a fetcher that learnt of the
-- pause while it was already blocked there), so every paused fetcher returns at once.
-- The marker stays in `resumed` until the next pause: a fetcher that read "paused" just
-- before the resume finds it there when it blocks, and returns at once too.
--
-- Returns 1 when the state changed, 0 when it already was so.
local op = ARGV[1]
if op == 'pause' then
  if redis.call('HEXISTS', KEYS[1], 'paused') == 1 then
    return 0
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'paused', now)
  redis.call('DEL', KEYS[2])
  return 1
elseif op == 'resume' then
  if redis.call('HDEL', KEYS[1], 'paused') == 0 then
    return 0
  end
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], MARKER)
  wake(KEYS[3])
  return 1
elseif op == 'limit' then
  local jobs, period = tonumber(ARGV[2]), tonumber(ARGV[3])
  if not jobs or jobs < 0 or not period or period < 1 then
    return redis.error_reply('control.lua: a rate limit needs jobs >= 0 and a period >= 1 ms')
  end
  local old_jobs = redis.call('HGET', KEYS[1], 'rate_jobs')
  local old_ms = redis.call('HGET', KEYS[1], 'rate_ms')
  if jobs == 0 then
    redis.call('HDEL', KEYS[1], 'rate_jobs', 'rate_ms')
    redis.call('DEL', KEYS[4])
    if old_jobs then return 1 end
    return 0
  end
  redis.call('HSET', KEYS[1], 'rate_jobs', jobs, 'rate_ms', period)
  if tonumber(old_jobs) == jobs and tonumber(old_ms) == period then
    return 0
  end
  return 1
end
return redis.error_reply('control.lua: unknown operation ' .. tostring(op))
