-- ids.lua: the job-id counter's helpers, prepended to the scripts that add jobs
-- (enqueue, push, fire, reserve; see `scripts.rs`).

-- The first id a call may give: one more than the last id given (the counter `seq`),
-- and never below Redis's clock in microseconds. A replica promoted by a failover may
-- lack the last increments of the counter (replication is asynchronous), and so the
-- last jobs' ids; its clock has moved on by the failover's length (seconds), so the
-- ids it gives are above every id the old master gave, as long as the two clocks
-- differ by less than that and ids were not given faster than one per microsecond
-- on average (which would put the counter ahead of the clock). Ids stay below 2^53
-- (exact in Lua's doubles and in every language's numbers) until the year 2255.
local function first_id(seq)
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.max((tonumber(redis.call('GET', seq)) or 0) + 1, clock)
end

-- Takes n ids (n >= 1): returns the first; the call owns first .. first + n - 1.
local function take_ids(seq, n)
  local first = first_id(seq)
  redis.call('SET', seq, string.format('%d', first + n - 1))
  return first
end

