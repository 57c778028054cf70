//! The Lua scripts, one per state transition (sources in `lua/`).
//!
//! Each script declares every key it touches in `KEYS`, so it runs on Redis Cluster
//! (all keys of a queue share the `{queue}` hash tag). They are called by SHA
//! (`EVALSHA`); when Redis answers `NOSCRIPT` (a restarted or failed-over server has an
//! empty script cache) the source is loaded and the call repeated.

use redis::Script;

/// The source of `enqueue.lua` after `ids.lua`'s helpers (job ids), for producers in
/// other languages: see "Wire format" in the crate docs.
pub const ENQUEUE_LUA: &str = concat!(
    include_str!("../lua/ids.lua"),
    include_str!("../lua/enqueue.lua")
);
/// The source of `push.lua` after `ids.lua`'s helpers, the enqueue with options
/// (priority level, due time, start deadline, uniqueness key), for producers in other
/// languages: see "Wire format" in the crate docs.
pub const PUSH_LUA: &str = concat!(
    include_str!("../lua/ids.lua"),
    include_str!("../lua/push.lua")
);
/// The source of `reserve.lua` after `ids.lua`'s helpers: takes job ids for a
/// producer that pushes the records itself (bulk enqueues, producers in other
/// languages): see "Wire format" in the crate docs.
pub const RESERVE_LUA: &str = concat!(
    include_str!("../lua/ids.lua"),
    include_str!("../lua/reserve.lua")
);

/// The lease-number helpers: `ids.lua`'s counter helper (`next_number`), then
/// `fence.lua`'s `next_lease`, which uses it.
macro_rules! fencing {
    () => {
        concat!(
            include_str!("../lua/ids.lua"),
            include_str!("../lua/fence.lua")
        )
    };
}

/// `fetch.lua` after `dead.lua`'s helpers (record checks, dead letters),
/// `levels.lua`'s (wake markers) and `ids.lua`'s and `fence.lua`'s (lease numbers).
const FETCH_LUA: &str = concat!(
    fencing!(),
    include_str!("../lua/dead.lua"),
    include_str!("../lua/levels.lua"),
    include_str!("../lua/fetch.lua")
);
const EXTEND_LUA: &str = include_str!("../lua/extend.lua");
pub(crate) const REQUEUE_LUA: &str = concat!(
    include_str!("../lua/levels.lua"),
    include_str!("../lua/requeue.lua")
);
pub(crate) const DELETE_LUA: &str = concat!(
    include_str!("../lua/dead.lua"),
    include_str!("../lua/delete.lua")
);
const SCHEDULE_LUA: &str = concat!(
    include_str!("../lua/levels.lua"),
    include_str!("../lua/schedule.lua")
);
pub(crate) const CONTROL_LUA: &str = concat!(
    include_str!("../lua/levels.lua"),
    include_str!("../lua/control.lua")
);
const FIRE_LUA: &str = concat!(
    include_str!("../lua/ids.lua"),
    include_str!("../lua/levels.lua"),
    include_str!("../lua/fire.lua")
);

/// A settlement script: `lease.lua`'s helpers (for scripts whose `KEYS[1..3]` are
/// leased, active, leases), then the script itself.
macro_rules! settlement {
    ($file:literal) => {
        concat!(
            include_str!("../lua/lease.lua"),
            include_str!(concat!("../lua/", $file))
        )
    };
}

/// A settlement script that reads records and may dead-letter or wake: `lease.lua`'s,
/// `dead.lua`'s and `levels.lua`'s helpers, then the script itself.
macro_rules! burying_settlement {
    ($file:literal) => {
        concat!(
            include_str!("../lua/lease.lua"),
            include_str!("../lua/dead.lua"),
            include_str!("../lua/levels.lua"),
            include_str!(concat!("../lua/", $file))
        )
    };
}

const ACK_LUA: &str = settlement!("ack.lua");
const RELEASE_LUA: &str = burying_settlement!("release.lua");
const RETRY_LUA: &str = burying_settlement!("retry.lua");
const BURY_LUA: &str = burying_settlement!("bury.lua");
/// `abandon.lua` after `ids.lua`'s and `fence.lua`'s helpers (lease numbers) and the
/// settlement helpers.
const ABANDON_LUA: &str = concat!(fencing!(), settlement!("abandon.lua"));

/// The compiled-in scripts with their SHA1s.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) push: Script,
    pub(crate) reserve: Script,
    pub(crate) fetch: Script,
    pub(crate) ack: Script,
    pub(crate) extend: Script,
    pub(crate) release: Script,
    pub(crate) retry: Script,
    pub(crate) bury: Script,
    pub(crate) abandon: Script,
    pub(crate) requeue: Script,
    pub(crate) schedule: Script,
    pub(crate) fire: Script,
    pub(crate) control: Script,
    pub(crate) reply: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            enqueue: Script::new(ENQUEUE_LUA),
            push: Script::new(PUSH_LUA),
            reserve: Script::new(RESERVE_LUA),
            fetch: Script::new(FETCH_LUA),
            ack: Script::new(ACK_LUA),
            extend: Script::new(EXTEND_LUA),
            release: Script::new(RELEASE_LUA),
            retry: Script::new(RETRY_LUA),
            bury: Script::new(BURY_LUA),
            abandon: Script::new(ABANDON_LUA),
            requeue: Script::new(REQUEUE_LUA),
            schedule: Script::new(SCHEDULE_LUA),
            fire: Script::new(FIRE_LUA),
            control: Script::new(CONTROL_LUA),
            reply: Script::new(include_str!("../lua/reply.lua")),
        }
    }
}
