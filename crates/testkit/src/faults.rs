//! Fault injection, driven from tests: failing writes, delays, cut watches, stale reads,
//! halting after the k-th write, and a log of every write request.
//!
//! Faults target *writes* (create, update, patch, apply, delete) because that is where an
//! operator's correctness is decided: a controller must survive a write that fails, that
//! times out without effect, or that took effect although the client saw an error.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// What happens to a write selected for failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reject the write with this HTTP code (409, 429, 500, ...) without applying it.
    Status(u16),
    /// Never answer; the write is not applied (a lost request).
    Hang,
    /// Answer 504 Timeout after the delay; the write is not applied.
    Timeout(Duration),
    /// Apply the write, then answer 504 Timeout after the delay (a lost response): the
    /// client sees an error although the change happened.
    AppliedThenTimeout(Duration),
}

/// One write request as received, for counting API writes in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    /// 1-based position among all write requests.
    pub seq: u64,
    /// `create`, `update`, `patch-merge`, `patch-json`, `patch-strategic`, `apply`, `delete`,
    /// `deletecollection`.
    pub verb: String,
    /// API group of the resource ("" for core).
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// `""` or `status`.
    pub subresource: String,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Object name (`""` for collection writes and generateName creates).
    pub name: String,
    /// `fieldManager` query parameter; when absent, the User-Agent's product; when that is
    /// absent too (kube's in-process client sends none), `unknown`.
    pub field_manager: String,
    /// User-Agent header.
    pub user_agent: String,
    /// HTTP status answered (or 0 for a request that never got an answer).
    pub code: u16,
    /// Whether the write changed stored state (false for no-ops and failures).
    pub changed: bool,
}

/// Whether a write request may proceed.
pub(crate) enum WriteAdmission {
    /// The API is halted: answer 503, do not count or log.
    Halted,
    /// Proceed as write number `seq`, failing with `fault` if set.
    Admitted { seq: u64, fault: Option<Fault> },
}

#[derive(Debug, Default)]
struct State {
    fail_next: VecDeque<Fault>,
    /// Faults for the next writes of one field manager each.
    fail_next_by: std::collections::HashMap<String, VecDeque<Fault>>,
    fraction: Option<(f64, Fault)>,
    rng: u64,
    delay: Duration,
    halt_after: Option<u64>,
    /// Halt after this many more write requests from this field manager.
    halt_by: Option<(String, u64)>,
    writes: u64,
    stale_lag: u64,
    log: Vec<WriteRecord>,
}

/// The fault-injection controls of one fake API (shared by all its clients).
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    /// Bumped to cut every open watch stream.
    cut: watch::Sender<u64>,
    /// Becomes true once the halt point is passed.
    halted: watch::Sender<bool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            cut: watch::channel(0).0,
            halted: watch::channel(false).0,
        }
    }
}

/// splitmix64: a tiny deterministic generator, so a seeded fault schedule replays exactly.
fn next_rand(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the next `n` write requests with `fault`.
    pub fn fail_next_writes(&self, n: usize, fault: Fault) {
        self.lock().fail_next.extend(std::iter::repeat_n(fault, n));
    }

    /// Fails the next `n` write requests made by field manager `manager` (see
    /// [`WriteRecord::field_manager`]) with `fault`; other clients' writes are untouched.
    /// These come after any [`Faults::fail_next_writes`] still queued.
    pub fn fail_next_writes_by(&self, manager: &str, n: usize, fault: Fault) {
        self.lock()
            .fail_next_by
            .entry(manager.to_string())
            .or_default()
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Fails each write with probability `fraction`, drawn from a generator seeded with `seed`.
    pub fn fail_fraction_of_writes(&self, fraction: f64, fault: Fault, seed: u64) {
        let mut s = self.lock();
        s.fraction = Some((fraction, fault));
        s.rng = seed;
    }

    /// Delays every response (reads and writes) by `delay`.
    pub fn delay_responses(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Serves get, list and watch from a view `writes` writes behind the latest state, like a
    /// lagging informer cache or apiserver watch cache. Writes still go to the latest state.
    pub fn serve_stale_reads(&self, writes: u64) {
        self.lock().stale_lag = writes;
    }

    /// Ends every open watch stream (clients see the stream close and must re-watch).
    pub fn cut_watches(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// Crash point: halts the API once `k` write requests have been received in total
    /// (counted from the API's creation, as [`Faults::write_count`]; use
    /// `write_count() + n` to halt after `n` more).
    ///
    /// - Writes 1..=k are processed and answered normally (write k gets its real response).
    /// - Right after write k, open watch streams are cut and [`Faults::halted`] resolves.
    /// - From then on **every** request — write k+1 and later, reads, new watches — is
    ///   answered at once (no hang) with `503 ServiceUnavailable` (a `Status` with reason
    ///   `ServiceUnavailable`) and has no effect. These refused requests are neither counted
    ///   nor logged: in the crash model they never reached the API.
    /// - [`Faults::resume`] lifts the halt; a fresh controller then continues from the state
    ///   writes 1..=k left behind.
    pub fn halt_after_writes(&self, k: u64) {
        let mut s = self.lock();
        s.halt_after = Some(k);
        if s.writes >= k {
            drop(s);
            self.halt_now();
        }
    }

    /// Like [`Faults::halt_after_writes`], but counts only write requests made by field
    /// manager `manager`, from now on: `k = 1` halts right after that client's next write.
    /// Other clients (a simulated kubelet, the test itself) keep writing meanwhile, so this
    /// is how a test crashes one controller at each of its own writes deterministically.
    pub fn halt_after_writes_by(&self, manager: &str, k: u64) {
        let mut s = self.lock();
        if k == 0 {
            drop(s);
            self.halt_now();
            return;
        }
        s.halt_by = Some((manager.to_string(), k));
    }

    /// Halts now (see [`Faults::halt_after_writes`]).
    pub fn halt_now(&self) {
        self.halted.send_replace(true);
        self.cut_watches();
    }

    /// Lifts a halt; the next controller can start against the same state.
    pub fn resume(&self) {
        let mut s = self.lock();
        s.halt_after = None;
        s.halt_by = None;
        drop(s);
        self.halted.send_replace(false);
    }

    /// Whether the API is halted.
    pub fn is_halted(&self) -> bool {
        *self.halted.borrow()
    }

    /// Resolves once the API is halted.
    pub async fn halted(&self) {
        let mut rx = self.halted.subscribe();
        let _ = rx.wait_for(|h| *h).await;
    }

    /// Clears every injected fault (the write log and counters are kept).
    pub fn clear(&self) {
        let mut s = self.lock();
        s.fail_next.clear();
        s.fail_next_by.clear();
        s.fraction = None;
        s.delay = Duration::ZERO;
        s.stale_lag = 0;
        s.halt_after = None;
        s.halt_by = None;
        drop(s);
        self.halted.send_replace(false);
    }

    /// Write requests per field manager (see [`WriteRecord::field_manager`]).
    pub fn write_counts_by_manager(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for w in &self.lock().log {
            *out.entry(w.field_manager.clone()).or_insert(0) += 1;
        }
        out
    }

    /// The write requests sent with this field manager (the `fieldManager` query parameter,
    /// e.g. `PatchParams::apply("keyrotor")` or `PostParams { field_manager: .. }`).
    pub fn writes_by_manager(&self, manager: &str) -> Vec<WriteRecord> {
        self.lock()
            .log
            .iter()
            .filter(|w| w.field_manager == manager)
            .cloned()
            .collect()
    }

    /// Number of write requests received so far (refused-while-halted ones excluded).
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    /// Every write request received so far.
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.lock().log.clone()
    }

    /// Write requests that changed state.
    pub fn effective_writes(&self) -> Vec<WriteRecord> {
        self.lock()
            .log
            .iter()
            .filter(|w| w.changed)
            .cloned()
            .collect()
    }

    pub(crate) fn delay(&self) -> Duration {
        self.lock().delay
    }

    pub(crate) fn stale_lag(&self) -> u64 {
        self.lock().stale_lag
    }

    pub(crate) fn cut_receiver(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    /// Called when a write request arrives: refuses it if halted (also when it raced with
    /// the k-th write), else counts it and picks the fault, if any.
    pub(crate) fn on_write(&self, manager: &str) -> WriteAdmission {
        let mut s = self.lock();
        if self.is_halted() || s.halt_after.is_some_and(|k| s.writes >= k) {
            return WriteAdmission::Halted;
        }
        s.writes += 1;
        let seq = s.writes;
        let targeted = |s: &mut State| s.fail_next_by.get_mut(manager)?.pop_front();
        if let Some(f) = s.fail_next.pop_front().or_else(|| targeted(&mut s)) {
            return WriteAdmission::Admitted {
                seq,
                fault: Some(f),
            };
        }
        let mut fault = None;
        if let Some((p, f)) = s.fraction {
            let mut rng = s.rng;
            let roll = next_rand(&mut rng);
            s.rng = rng;
            if roll < p {
                fault = Some(f);
            }
        }
        WriteAdmission::Admitted { seq, fault }
    }

    /// Called after a write request was handled: logs it and halts if it was the k-th.
    pub(crate) fn after_write(&self, record: WriteRecord) {
        let mut s = self.lock();
        let seq = record.seq;
        let mut halt = s.halt_after.is_some_and(|k| seq >= k);
        if let Some((manager, left)) = s.halt_by.as_mut()
            && *manager == record.field_manager
        {
            *left = left.saturating_sub(1);
            halt |= *left == 0;
        }
        s.log.push(record);
        drop(s);
        if halt {
            self.halt_now();
        }
    }
}
