//! What travels through a queue: the job plus what the runtime needs to know about it.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A job's identity within one pool (in-memory backends) or one queue (Redis).
///
/// In-memory pools number jobs from 1 in submission order; durable backends assign
/// their own ids. `JobId(0)` means "no id was assigned".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A job in a queue, with its id, its attempt number and, for in-process queues, the
/// place its result goes.
///
/// Backends carry envelopes untouched: what was pushed is what a consumer receives
/// (same `job`, `id`, `attempt` and `reply`). Durable backends cannot carry a
/// [`Reply`] across processes: one that implements [`Replies`](crate::Replies) keeps
/// the reply in the submitting process and answers it with the outcome the running
/// process stored; they assign `id` and `attempt` from their own records.
///
/// Build one with [`Envelope::new`] and the `with_*` methods; new fields may be added.
#[derive(Debug)]
#[non_exhaustive]
pub struct Envelope<J> {
    /// The job itself.
    pub job: J,
    /// The job's id.
    pub id: JobId,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Where the job's result goes, if someone is waiting for it.
    pub reply: Option<Reply>,
    /// When the job was pushed ([`Envelope::enqueued_at`]), compact: nanoseconds since
    /// a process-wide anchor, plus one; 0 when unknown. Every queued job carries an
    /// envelope, so its size is memory per queued job: 40 bytes with a `u64` job.
    enqueued: u64,
}

/// The instant stamps count from (the first one taken in this process).
fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

impl<J> Envelope<J> {
    /// An envelope for a first attempt, with no id and no reply.
    pub fn new(job: J) -> Self {
        Envelope {
            job,
            id: JobId::default(),
            attempt: 1,
            reply: None,
            enqueued: 0,
        }
    }

    /// Sets the attempt number (1 for a first attempt).
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets when the job was pushed, for wait-time metrics. In-process pools stamp it
    /// on submit; durable backends may derive it from their own records. Instants
    /// before the process's first stamp count as that first stamp.
    #[must_use]
    pub fn with_enqueued_at(mut self, at: Instant) -> Self {
        let since = at.saturating_duration_since(anchor()).as_nanos();
        self.enqueued = u64::try_from(since).unwrap_or(u64::MAX - 1) + 1;
        self
    }

    /// When the job was pushed, if it was stamped.
    pub fn enqueued_at(&self) -> Option<Instant> {
        (self.enqueued != 0).then(|| anchor() + std::time::Duration::from_nanos(self.enqueued - 1))
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: JobId) -> Self {
        self.id = id;
        self
    }

    /// Sets the reply.
    #[must_use]
    pub fn with_reply(mut self, reply: Reply) -> Self {
        self.reply = Some(reply);
        self
    }
}

/// A one-shot, type-erased place to put a job's result.
///
/// The runtime creates it with the sending end of its own channel inside; queues only
/// carry it. Dropping a `Reply` without sending tells the waiting side that no result
/// will come. It may carry an attachment the runtime reads back when the job is
/// received (a per-job cancellation token, say); queues never look inside.
pub struct Reply(Box<ReplyParts>);

/// What a [`Reply`] holds, behind one thin pointer so an envelope carries 8 bytes
/// for it (nothing extra for jobs without one).
struct ReplyParts {
    deliver: Box<Deliver>,
    attachment: Option<Attachment>,
}

/// Runtime data carried with a [`Reply`].
pub type Attachment = Arc<dyn Any + Send + Sync>;

/// The function inside a [`Reply`].
type Deliver = dyn FnOnce(&mut dyn Any) + Send;

impl Reply {
    /// Creates a reply from a function that receives the value as `&mut Option<T>`
    /// behind `&mut dyn Any` (see [`Reply::send`]).
    pub fn new(deliver: impl FnOnce(&mut dyn Any) + Send + 'static) -> Self {
        Reply(Box::new(ReplyParts {
            deliver: Box::new(deliver),
            attachment: None,
        }))
    }

    /// Attaches runtime data that travels with the reply.
    #[must_use]
    pub fn with_attachment(mut self, attachment: Attachment) -> Self {
        self.0.attachment = Some(attachment);
        self
    }

    /// The attached runtime data, if any.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.0.attachment.as_ref()
    }

    /// Sends `value`. The function given to [`Reply::new`] sees `&mut Option<T>` and
    /// takes the value out of it; a function expecting another type leaves it. Returns
    /// what the function left: `None` when it took the value, `Some` when it only
    /// looked (a durable queue that stores a copy for a producer elsewhere) or did not
    /// expect the type, so the caller can pass the value on.
    pub fn send<T: 'static>(self, value: T) -> Option<T> {
        let mut slot = Some(value);
        (self.0.deliver)(&mut slot);
        slot
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("attachment", &self.0.attachment.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn reply_delivers_a_value_of_the_expected_type() {
        let got = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&got);
        let reply = Reply::new(move |value: &mut dyn Any| {
            if let Some(slot) = value.downcast_mut::<Option<u32>>() {
                *sink.lock().unwrap() = slot.take();
            }
        });
        assert_eq!(reply.send(7_u32), None, "taken");
        assert_eq!(*got.lock().unwrap(), Some(7));
    }

    #[test]
    fn reply_ignores_a_value_of_another_type() {
        let got = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&got);
        let reply = Reply::new(move |value: &mut dyn Any| {
            if let Some(slot) = value.downcast_mut::<Option<u32>>() {
                *sink.lock().unwrap() = slot.take();
            }
        });
        assert_eq!(reply.send("not a u32"), Some("not a u32"), "left");
        assert_eq!(*got.lock().unwrap(), None);
    }

    #[test]
    fn an_envelope_of_a_word_sized_job_is_five_words() {
        assert_eq!(std::mem::size_of::<Envelope<u64>>(), 40);
    }

    #[test]
    fn the_enqueue_stamp_round_trips() {
        // The first stamp fixes the anchor; later ones come back to the nanosecond.
        let first = Envelope::new(0).with_enqueued_at(Instant::now());
        assert!(first.enqueued_at().is_some());
        let at = Instant::now();
        let envelope = Envelope::new(1).with_enqueued_at(at);
        assert_eq!(envelope.enqueued_at(), Some(at));
        assert_eq!(Envelope::new(1).enqueued_at(), None);
    }

    #[test]
    fn envelope_defaults_to_first_attempt() {
        let envelope = Envelope::new("job").with_id(JobId(3));
        assert_eq!(envelope.attempt, 1);
        assert_eq!(envelope.id.to_string(), "#3");
        assert!(envelope.reply.is_none());
    }
}
