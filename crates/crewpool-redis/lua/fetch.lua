-- fetch.lua: lease up to ARGV[1] jobs to one process, after housekeeping.
--
-- KEYS[1]  leased      HASH    '<lease>:<n>' -> record of the n-th job of a lease
--                              ('<level>:' prefix for levels other than 0)
-- KEYS[2]  active      ZSET    lease -> deadline (ms, Redis clock)
-- KEYS[3]  leases      HASH    '<lease>' -> jobs still leased under it; '<lease>:n' -> jobs
--                              it took; '<lease>:t' -> when it was taken (ms)
-- KEYS[4]  fence       STRING  the lease counter (fencing tokens)
-- KEYS[5]  delayed     ZSET    retry record (with level prefix) -> due time (ms)
-- KEYS[6]  scheduled   ZSET    scheduled record (with level prefix) -> due time (ms)
-- KEYS[7]  dead        LIST    dead letters (JSON), newest first
-- KEYS[8]  stats       HASH    totals: 'succeeded', 'failed', 'expired', 'missed_deadline'
-- KEYS[9]  levels      SET     the priority levels other than 0 ever used
-- KEYS[10] priority    HASH    weighted order's state: 'v' and one pass per level
-- KEYS[11] unique      HASH    uniqueness key -> job id
-- KEYS[12] unique_ttl  ZSET    uniqueness key -> when it lapses (ms)
-- KEYS[13] schedver    STRING  the periodic schedules' version counter
-- KEYS[14..23]         LISTs   pending jobs of levels 0 (`pending`) to 9 (`pending:9`)
-- KEYS[24] control     HASH    'paused' (while paused), 'rate_jobs' and 'rate_ms' (the
--                              rate limit, while set): see control.lua
-- KEYS[25] rate        ZSET    the rate limit's window: '<lease>:<jobs>' -> when taken (ms)
-- ARGV[1] how many jobs to take (may be 0: housekeeping only)
-- ARGV[2] lease length (ms)
-- ARGV[3] max attempts (0: no limit), applied to jobs whose lease expired
-- ARGV[4] dead-letter bound (entries)
-- ARGV[5] at most this many due delayed jobs, and as many scheduled ones, per call
-- ARGV[6] at most this many expired leases per call
-- ARGV[7] dead-letter bound (bytes of memory)
-- ARGV[8] the largest envelope this worker takes (bytes)
-- ARGV[9] 'strict' (the highest non-empty level first) or 'weighted'; for 'weighted',
--         ARGV[10..19] the weights of levels 0 to 9 (integers from 1)
--
-- Paused (control.lua), the call does the housekeeping and takes no job. With a rate
-- limit of N jobs per P ms, the jobs taken in any P ms window (Redis clock) by every
-- process together are at most N: each lease that took jobs is logged in `rate` with its
-- count, entries older than P are dropped, and a call takes at most what is left. When
-- nothing is left it reports how long until the oldest entry leaves the window, so the
-- worker sleeps exactly that long instead of asking again.
--
-- One fetch is one lease: its jobs are fields '<lease>:1' .. '<lease>:<count>' of
-- `leased`, and the field name is the delivery's fencing token: it exists exactly
-- while that delivery owns the job.
--
-- Housekeeping first: the jobs of expired leases (their process died or stalled) go
-- back to the front of their level's list as their next attempt, or to dead-letter once
-- out of attempts; due retries go to the back of their level's list, due scheduled jobs
-- to the front (they have waited already); lapsed uniqueness keys are dropped.
--
-- Levels: jobs are taken from the levels' lists by the order in ARGV[9] (see
-- `plan_weighted` for the weighted order and its bound). Level 0 is `pending`, the
-- only list producers without options push to.
--
-- A record taken from a list whose envelope is over the worker's limit is
-- dead-lettered with the reason instead of leased: it never leaves Redis. The rest of
-- the documented format (id, attempt: see `parse_record`) is checked by the worker as
-- it parses each record, before decoding anything; it dead-letters (bury.lua) one
-- that breaks it. Checking every record here would cost Redis a pattern match per job.
--
-- Returns {pending length (all levels), next due (ms from now, -1: nothing scheduled;
-- only computed when no job was taken), recovered, buried, refused (records that broke
-- the format), lease (0: none), now (ms, Redis clock), schedules version, paused (1 or
-- 0), rate wait (ms until the rate limit lets a job be taken; -1 when it did not hold
-- any back), then the records taken in the order to run them, each with its '<level>:'
-- prefix unless 0}.
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
local weighted = ARGV[9] == 'weighted'

-- Paused: housekeeping only. Rate-limited: at most what the window has left.
local control = redis.call('HMGET', KEYS[24], 'paused', 'rate_jobs', 'rate_ms')
local paused = control[1] and 1 or 0
local rate_wait, rate_ms = -1, nil
if paused == 1 then
  count = 0
elseif count > 0 and control[2] then
  local limit, period = tonumber(control[2]), tonumber(control[3])
  if limit and period and limit > 0 and period > 0 then
    rate_ms = period
    redis.call('ZREMRANGEBYSCORE', KEYS[25], '-inf', now - period)
    local window = redis.call('ZRANGE', KEYS[25], 0, -1, 'WITHSCORES')
    local used = 0
    for i = 1, #window, 2 do
      used = used + (tonumber(string.match(window[i], ':(%d+)$')) or 0)
    end
    if used >= limit then
      count = 0
      rate_wait = math.max(1, tonumber(window[2]) + period - now)
    elseif limit - used < count then
      count = limit - used
    end
  end
end

local lists = {}
for level = 0, 9 do
  lists[level] = KEYS[14 + level]
end
-- The levels in use, highest first: 0 and whatever producers used.
local used = {0}
for _, level in ipairs(redis.call('SMEMBERS', KEYS[9])) do
  local n = tonumber(level)
  if n and n >= 1 and n <= 9 then
    used[#used + 1] = n
  end
end
table.sort(used, function(a, b) return a > b end)

-- Pushes a list through Lua's unpack stack limit in slices, keeping its order.
local function push(command, key, list)
  for i = 1, #list, 4000 do
    redis.call(command, key, unpack(list, i, math.min(i + 3999, #list)))
  end
end

-- Records per level, in the order they were collected.
local function by_level()
  local groups = {}
  for level = 0, 9 do
    groups[level] = {}
  end
  return groups
end

-- Levels other than 0 that got jobs from this call's housekeeping.
local announced = false

-- Pushes each level's `records` to the front of its list, the first one first in line.
local function to_front(groups)
  for level = 0, 9 do
    local records = groups[level]
    if #records > 0 then
      local reversed = {}
      for i = #records, 1, -1 do reversed[#reversed + 1] = records[i] end
      if level == 0 then
        push_front(lists[0], reversed)
      else
        push('RPUSH', lists[level], reversed)
        announced = true
      end
    end
  end
end

local recovered, buried, refused = 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, lease_bound)
if #expired > 0 then
  local back = by_level()
  for _, lease in ipairs(expired) do
    local size = tonumber(redis.call('HGET', KEYS[3], lease .. ':n')) or 0
    if size > 0 then
      local fields = {}
      for i = 1, size do fields[i] = lease .. ':' .. i end
      local members = redis.call('HMGET', KEYS[1], unpack(fields))
      local gone = {}
      for i = 1, size do
        local member = members[i]
        if member then
          gone[#gone + 1] = fields[i]
          local level, record = split_level(member)
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
            dead_letter(KEYS[7], member, reason, attempt, now)
            release_unique(member, KEYS[11], KEYS[12])
            buried = buried + 1
          else
            local list = back[level]
            list[#list + 1] = id .. '|' .. (attempt + 1) .. '|' .. string.sub(record, rest)
            recovered = recovered + 1
          end
        end
      end
      if #gone > 0 then
        redis.call('HDEL', KEYS[1], unpack(gone))
      end
    end
    redis.call('ZREM', KEYS[2], lease)
    redis.call('HDEL', KEYS[3], lease, lease .. ':n', lease .. ':t')
  end
  -- To the front, the earliest deadline's first job served first.
  to_front(back)
  redis.call('HINCRBY', KEYS[8], 'expired', recovered + buried)
end

-- Due retries: to the back of their level's list, in due order.
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, due_bound)
if #due > 0 then
  redis.call('ZREM', KEYS[5], unpack(due))
  local groups = by_level()
  for _, member in ipairs(due) do
    local level, record = split_level(member)
    local list = groups[level]
    list[#list + 1] = record
  end
  for level = 0, 9 do
    if #groups[level] > 0 then
      push('LPUSH', lists[level], groups[level])
      if level > 0 then announced = true end
    end
  end
end

-- Due scheduled jobs: to the front of their level's list, the earliest first in line.
local scheduled = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, due_bound)
if #scheduled > 0 then
  redis.call('ZREM', KEYS[6], unpack(scheduled))
  local groups = by_level()
  for _, member in ipairs(scheduled) do
    local level, record = split_level(member)
    local list = groups[level]
    list[#list + 1] = record
  end
  to_front(groups)
end

-- Uniqueness keys past their TTL (their job may still run: the key just no longer
-- holds off another enqueue).
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', now, 'LIMIT', 0, 1000)
if #lapsed > 0 then
  redis.call('HDEL', KEYS[11], unpack(lapsed))
  redis.call('ZREM', KEYS[12], unpack(lapsed))
end

-- The weighted order: stride scheduling. Each level has a pass; a pick takes the
-- non-empty level with the lowest pass (ties: the higher level) and adds 1/weight to
-- it. `v` is the lowest pass at the last pick; a level that was empty rejoins at `v` at
-- least, so an idle level saves no credit. Bound: while level i stays non-empty, the
-- picks between two of its picks are at most sum over the other non-empty levels j of
-- (floor(w_j / w_i) + 1), i.e. (W - w_i) / w_i + (L - 1) for L non-empty levels of total
-- weight W: no level waits forever. The state is shared by every process (one hash).
local function plan_weighted(wanted, lengths)
  local state = redis.call('HGETALL', KEYS[10])
  local pass, v = {}, 0
  for i = 1, #state, 2 do
    if state[i] == 'v' then
      v = tonumber(state[i + 1]) or 0
    else
      pass[tonumber(state[i])] = tonumber(state[i + 1])
    end
  end
  local weight, left, active = {}, {}, {}
  for _, level in ipairs(used) do
    weight[level] = math.max(1, tonumber(ARGV[10 + level]) or 1)
    left[level] = lengths[level]
    if left[level] > 0 then
      pass[level] = math.max(pass[level] or v, v)
      active[#active + 1] = level
    end
  end
  local plan = {}
  while #plan < wanted and #active > 0 do
    local best = 1
    for i = 2, #active do
      -- `used` is highest first, so `active` is too: a tie keeps the higher level.
      if pass[active[i]] < pass[active[best]] then best = i end
    end
    local level = active[best]
    v = pass[level]
    plan[#plan + 1] = level
    pass[level] = pass[level] + 1 / weight[level]
    left[level] = left[level] - 1
    if left[level] == 0 then table.remove(active, best) end
  end
  -- Stored relative to `v`, so the numbers stay small.
  local out = {'v', 0}
  for level, p in pairs(pass) do
    out[#out + 1] = level
    out[#out + 1] = p - v
  end
  redis.call('HSET', KEYS[10], unpack(out))
  return plan
end

local out = {0, -1, recovered, buried, 0, 0, now, tonumber(redis.call('GET', KEYS[13])) or 0,
  paused, rate_wait}
local taken = 0
if count > 0 then
  local marked = unmark(lists[0])
  local valid = {}
  -- Checks a record taken from level `level`'s list and keeps it, with its level
  -- prefix, or dead-letters it with the reason. A marker further back in level 0's
  -- list (pushed when it was empty, then passed) is dropped.
  local function admit(level, records)
    for i = 1, #records do
      local record = records[i]
      if record ~= MARKER then
        -- Only a record longer than the largest envelope can break the size rule, so
        -- only such a record is parsed here (a length is all a plain job pays).
        local id, reason = true, nil
        if #record > max_envelope then
          id, reason = parse_record(record, max_envelope)
        end
        if level > 0 then
          record = level .. ':' .. record
        end
        if id then
          valid[#valid + 1] = record
        else
          dead_letter(KEYS[7], record, reason, nil, now)
          refused = refused + 1
        end
      end
    end
  end
  if weighted and #used > 1 then
    local lengths = {}
    for _, level in ipairs(used) do
      lengths[level] = redis.call('LLEN', lists[level])
    end
    local plan = plan_weighted(count, lengths)
    local wanted = {}
    for _, level in ipairs(plan) do wanted[level] = (wanted[level] or 0) + 1 end
    local popped, next_of = {}, {}
    for level, n in pairs(wanted) do
      popped[level] = redis.call('RPOP', lists[level], n) or {}
      next_of[level] = 1
    end
    -- In the order of the plan, one by one.
    local one = {}
    for _, level in ipairs(plan) do
      one[1] = popped[level][next_of[level]]
      next_of[level] = next_of[level] + 1
      if one[1] then admit(level, one) end
    end
  else
    -- Strict: the highest level first, each list's jobs in one RPOP.
    local left = count
    for _, level in ipairs(used) do
      if left <= 0 then break end
      local records = redis.call('RPOP', lists[level], left)
      if records then
        left = left - #records
        admit(level, records)
      end
    end
  end
  if #valid > 0 then
    local lease = next_lease(KEYS[4])
    local prefix = lease .. ':'
    local fields = {}
    for i = 1, #valid do
      fields[2 * i - 1] = prefix .. i
      fields[2 * i] = valid[i]
      out[10 + i] = valid[i]
    end
    push('HSET', KEYS[1], fields)
    redis.call('ZADD', KEYS[2], now + lease_ms, lease)
    redis.call('HSET', KEYS[3], lease, #valid, prefix .. 'n', #valid, prefix .. 't', now)
    out[6] = lease
    taken = #valid
    if rate_ms then
      redis.call('ZADD', KEYS[25], now, lease .. ':' .. taken)
      redis.call('PEXPIRE', KEYS[25], rate_ms)
    end
  end
  -- A fetch that took nothing read every due time below: its fetcher's timer covers
  -- what the marker announced. Otherwise the marker goes back in front.
  if marked and taken > 0 then
    redis.call('RPUSH', lists[0], MARKER)
  end
end
if buried + refused > 0 then
  trim_dead(KEYS[7], dead_limit, dead_bytes)
end
out[5] = refused

-- Jobs this call put on levels other than 0 and left there: wake the blocked fetchers.
if announced then
  for _, level in ipairs(used) do
    if level > 0 and redis.call('LLEN', lists[level]) > 0 then
      wake(lists[0])
      break
    end
  end
end

local pending = 0
for _, level in ipairs(used) do
  pending = pending + redis.call('LLEN', lists[level])
end
if redis.call('LINDEX', lists[0], -1) == MARKER then
  pending = pending - 1
end
out[1] = pending
if taken == 0 then
  local next_due = -1
  for _, key in ipairs({KEYS[2], KEYS[5], KEYS[6]}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #first > 0 and (next_due < 0 or tonumber(first[2]) < next_due) then
      next_due = tonumber(first[2])
    end
  end
  if next_due >= 0 then
    next_due = math.max(0, next_due - now)
  end
  out[2] = next_due
end
return out
