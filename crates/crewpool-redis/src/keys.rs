//! The Redis keys of one queue.

/// Every key of one queue: `<prefix>:{<queue>}:<name>`. The braces are a Redis Cluster
/// hash tag, so all keys of a queue live in one slot and every script can touch them.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) seq: String,
    pub(crate) pending: String,
    pub(crate) jobs: String,
    pub(crate) active: String,
    pub(crate) lease: String,
    pub(crate) attempts: String,
    pub(crate) delayed: String,
    pub(crate) fence: String,
    pub(crate) dead: String,
    pub(crate) dead_info: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, queue: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{{{queue}}}:{name}");
        Keys {
            seq: key("seq"),
            pending: key("pending"),
            jobs: key("jobs"),
            active: key("active"),
            lease: key("lease"),
            attempts: key("attempts"),
            delayed: key("delayed"),
            fence: key("fence"),
            dead: key("dead"),
            dead_info: key("dead_info"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_share_one_hash_tag() {
        let keys = super::Keys::new("app", "mail");
        assert_eq!(keys.pending, "app:{mail}:pending");
        assert_eq!(keys.dead_info, "app:{mail}:dead_info");
    }
}
