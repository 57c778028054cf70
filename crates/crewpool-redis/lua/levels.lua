-- levels.lua: helpers prepended to the scripts that make jobs available other than by
-- pushing them to the back of the level-0 list (see `scripts.rs`).
--
-- Every idle fetcher blocks in `BLMOVE pending pending LEFT LEFT` on the level-0 list,
-- which returns as soon as that list is non-empty. Jobs of the other priority levels,
-- and a scheduled job due before the fetchers' timers, are announced by a wake marker:
-- the element '~wake', pushed to the front of the level-0 list while that list is empty
-- (a fetcher can be blocked on it only then). Blocked fetchers return at once and fetch.
--
-- The marker is never delivered, and it stays at the front of the list until a fetch
-- that finds nothing to take drops it: that fetch has just read every due time, so its
-- fetcher's timer covers whatever the marker announced. A fetch that takes jobs puts it
-- back, so a fetcher that was between its own empty fetch and its wait when the marker
-- came still finds it there and fetches again. Pushes to the front keep it in front.

local MARKER = '~wake'

-- Wakes the fetchers blocked on the level-0 list `pending`.
local function wake(pending)
  if redis.call('LLEN', pending) == 0 then
    redis.call('RPUSH', pending, MARKER)
  end
end

-- Takes the wake marker off the front of the level-0 list `pending`; returns whether
-- there was one.
local function unmark(pending)
  local marked = false
  while redis.call('LINDEX', pending, -1) == MARKER do
    redis.call('RPOP', pending)
    marked = true
  end
  return marked
end

-- Pushes `records` to the front of the level-0 list `pending` (the last one ends up
-- first in line), keeping a wake marker in front of them.
local function push_front(pending, records)
  local marked = unmark(pending)
  for i = 1, #records, 4000 do
    redis.call('RPUSH', pending, unpack(records, i, math.min(i + 3999, #records)))
  end
  if marked then
    redis.call('RPUSH', pending, MARKER)
  end
end

